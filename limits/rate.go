package limits

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiters keep one token bucket per tenant for its ingestion rate.
// Each request takes its tenant's bucket lock once, never a lock per sample
// nor one shared by tenants.
type RateLimiters struct {
	overrides *Overrides
	buckets   sync.Map // tenant ID → *bucket
	// share, when set, is how many processes share each tenant's rate
	// (the healthy distributors of a cluster): each allows its part.
	share func() int
}

type bucket struct {
	mu    sync.Mutex
	lim   *rate.Limiter
	rate  float64 // the limits lim was set to
	burst int
}

// NewRateLimiters returns the ingestion rate limiters of the tenants of o.
func NewRateLimiters(o *Overrides) *RateLimiters {
	return &RateLimiters{overrides: o}
}

// NewSharedRateLimiters returns rate limiters of the tenants of o for one
// of share() processes that receive a tenant's writes evenly (a cluster's
// distributors behind a load balancer): each allows 1/share of the rate, so
// that the tenant's limit holds for the cluster. The burst stays whole, as
// one request must fit in one process's bucket. A share below 1 counts as 1.
func NewSharedRateLimiters(o *Overrides, share func() int) *RateLimiters {
	return &RateLimiters{overrides: o, share: share}
}

// AllowN reports whether tenant id may write n samples at now, and takes
// them from its bucket if so. A tenant without a rate is always allowed.
// The bucket follows changes of the tenant's limits and keeps its tokens
// across them.
func (r *RateLimiters) AllowN(id string, now time.Time, n int) bool {
	l := r.overrides.For(id)
	if l.IngestionRate <= 0 {
		return true
	}
	lim := l.IngestionRate
	if r.share != nil {
		lim /= float64(max(1, r.share()))
	}
	v, ok := r.buckets.Load(id)
	if !ok {
		v, _ = r.buckets.LoadOrStore(id, &bucket{
			lim:  rate.NewLimiter(rate.Limit(lim), l.IngestionBurst),
			rate: lim, burst: l.IngestionBurst,
		})
	}
	b := v.(*bucket)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rate != lim || b.burst != l.IngestionBurst {
		b.lim.SetLimitAt(now, rate.Limit(lim))
		b.lim.SetBurstAt(now, l.IngestionBurst)
		b.rate, b.burst = lim, l.IngestionBurst
	}
	return b.lim.AllowN(now, n)
}

// Tokens returns the samples tenant id could write at t without waiting:
// the tokens in its bucket. It is 0 for a tenant without a bucket yet.
func (r *RateLimiters) Tokens(id string, t time.Time) float64 {
	v, ok := r.buckets.Load(id)
	if !ok {
		return 0
	}
	return v.(*bucket).lim.TokensAt(t)
}
