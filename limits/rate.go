package limits

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiters keep one token bucket per tenant for its ingestion rate.
// Each request takes one bucket's lock once, never one per sample.
type RateLimiters struct {
	overrides *Overrides
	mu        sync.RWMutex
	buckets   map[string]*bucket
}

type bucket struct {
	lim   *rate.Limiter
	rate  float64
	burst int
}

// NewRateLimiters returns the ingestion rate limiters of the tenants of o.
func NewRateLimiters(o *Overrides) *RateLimiters {
	return &RateLimiters{overrides: o, buckets: map[string]*bucket{}}
}

// AllowN reports whether tenant id may write n samples at now, and takes
// them from its bucket if so. A tenant without a rate is always allowed.
// The bucket follows changes of the tenant's limits.
func (r *RateLimiters) AllowN(id string, now time.Time, n int) bool {
	l := r.overrides.For(id)
	if l.IngestionRate <= 0 {
		return true
	}
	r.mu.RLock()
	b := r.buckets[id]
	r.mu.RUnlock()
	if b == nil {
		r.mu.Lock()
		if b = r.buckets[id]; b == nil {
			b = &bucket{lim: rate.NewLimiter(rate.Limit(l.IngestionRate), l.IngestionBurst), rate: l.IngestionRate, burst: l.IngestionBurst}
			r.buckets[id] = b
		}
		r.mu.Unlock()
	}
	r.mu.RLock()
	if b.rate != l.IngestionRate || b.burst != l.IngestionBurst {
		r.mu.RUnlock()
		r.mu.Lock()
		// The limiter keeps its tokens across a change of its limits.
		b.lim.SetLimitAt(now, rate.Limit(l.IngestionRate))
		b.lim.SetBurstAt(now, l.IngestionBurst)
		b.rate, b.burst = l.IngestionRate, l.IngestionBurst
		r.mu.Unlock()
	} else {
		r.mu.RUnlock()
	}
	return b.lim.AllowN(now, n)
}

// Tokens returns the samples tenant id could write at t without waiting:
// the tokens in its bucket. It is 0 for a tenant without a bucket yet.
func (r *RateLimiters) Tokens(id string, t time.Time) float64 {
	r.mu.RLock()
	b := r.buckets[id]
	r.mu.RUnlock()
	if b == nil {
		return 0
	}
	return b.lim.TokensAt(t)
}
