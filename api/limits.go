package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/tenant"
)

// queryGate applies the per-tenant limits that hold before a query is
// evaluated: the length of a range query (max_query_length, 400 bad_data)
// and the tenant's concurrent queries (max_concurrent_queries): a query
// over the limit waits up to max_query_queue_wait for a slot, then gets 503
// with errorType unavailable, as Prometheus answers when it cannot serve.
// The limits that hold while a query runs are the engine's (package
// promqlengine).
type queryGate struct {
	overrides *limits.Overrides
	waiting   *prometheus.GaugeVec

	mu    sync.Mutex
	slots map[string]chan struct{} // per tenant; replaced when its limit changes
}

func newQueryGate(o *limits.Overrides, reg prometheus.Registerer) *queryGate {
	return &queryGate{overrides: o, slots: map[string]chan struct{}{},
		waiting: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_query_queue_waiting",
			Help: "Queries waiting for one of their tenant's max_concurrent_queries slots, by tenant.",
		}, []string{"tenant"})}
}

// wrap applies the gate to the query endpoints of next.
func (g *queryGate) wrap(next http.Handler) http.Handler {
	if g.overrides == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/query", "/api/v1/query_range":
		default:
			next.ServeHTTP(w, r)
			return
		}
		id, _ := tenant.FromContext(r.Context())
		l := g.overrides.For(id)
		if r.URL.Path == "/api/v1/query_range" && l.MaxQueryLength > 0 {
			if length, ok := rangeLength(r); ok && length > time.Duration(l.MaxQueryLength) {
				g.overrides.Hit(id, "max_query_length")
				respondError(w, http.StatusBadRequest, "bad_data", fmt.Errorf(
					"the query time range of %s exceeds the limit max_query_length=%s", length, l.MaxQueryLength))
				return
			}
		}
		release, err := g.acquire(r.Context(), id, l)
		if err != nil {
			g.overrides.Hit(id, "max_concurrent_queries")
			respondError(w, http.StatusServiceUnavailable, "unavailable", err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// slot holds one of the tenant's query slots (max_concurrent_queries)
// while next serves: for the endpoints that read as much as a query.
func (g *queryGate) slot(next http.Handler) http.Handler {
	if g.overrides == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := tenant.FromContext(r.Context())
		release, err := g.acquire(r.Context(), id, g.overrides.For(id))
		if err != nil {
			g.overrides.Hit(id, "max_concurrent_queries")
			respondError(w, http.StatusServiceUnavailable, "unavailable", err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// acquire takes one of the tenant's query slots, waiting for one at most
// the tenant's queue wait.
func (g *queryGate) acquire(ctx context.Context, id string, l *limits.Limits) (func(), error) {
	if l.MaxConcurrentQueries <= 0 {
		return func() {}, nil
	}
	g.mu.Lock()
	slots := g.slots[id]
	if cap(slots) != l.MaxConcurrentQueries {
		// Queries holding a slot of the old channel release it there.
		slots = make(chan struct{}, l.MaxConcurrentQueries)
		g.slots[id] = slots
	}
	g.mu.Unlock()
	release := func() { <-slots }
	select {
	case slots <- struct{}{}:
		return release, nil
	default:
	}
	waiting := g.waiting.WithLabelValues(id)
	waiting.Inc()
	defer waiting.Dec()
	t := time.NewTimer(time.Duration(l.MaxQueryQueueWait))
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, fmt.Errorf("tenant %q has %d queries running, the limit max_concurrent_queries, and none ended within %s", id, l.MaxConcurrentQueries, l.MaxQueryQueueWait)
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a query slot: %w", ctx.Err())
	}
}

// rangeLength returns end - start of a range query, if both parse.
func rangeLength(r *http.Request) (time.Duration, bool) {
	start, ok1 := parseAPITime(r.FormValue("start"))
	end, ok2 := parseAPITime(r.FormValue("end"))
	if !ok1 || !ok2 {
		return 0, false // the API answers the malformed parameter
	}
	return end.Sub(start), true
}

// parseAPITime parses a time parameter as the API accepts it: Unix seconds
// with an optional fraction, or RFC 3339.
func parseAPITime(s string) (time.Time, bool) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}
