package promqlengine

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/strata-tsdb/strata/tenant"
)

// Per-tenant query limits ride on the engine's query-cost limits: each
// query's options carry its tenant's max_query_series, max_query_samples
// and query_timeout as per-query overrides, which the engine enforces while
// it evaluates and reports as Prometheus does (ErrTooManySeries and
// ErrTooManySamplesRead answer 422 cost_limit, ErrQueryTimeout 503 timeout).
// A limit the request itself asks for (the API's max_series and similar
// parameters) is kept when it is lower.

// engineFor returns the upstream engine to evaluate a query of the tenant
// of ctx and the query's options: the costed engine, with the tenant's
// limits in the options, when the tenant has query limits, and the plain
// engine otherwise.
func (e *Engine) engineFor(ctx context.Context, opts promql.QueryOpts) (*promql.Engine, promql.QueryOpts) {
	if lo, ok := e.limitOpts(ctx, opts); ok {
		return e.costed, lo
	}
	return e.Engine, opts
}

// limitOpts returns opts with the limits of the tenant of ctx, and whether
// the tenant has any.
func (e *Engine) limitOpts(ctx context.Context, opts promql.QueryOpts) (promql.QueryOpts, bool) {
	if e.limits == nil {
		return opts, false
	}
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return opts, false
	}
	l := e.limits.For(id)
	timeout := time.Duration(l.QueryTimeout)
	if timeout > e.timeout && e.timeout > 0 {
		timeout = e.timeout // the engine's timeout is the ceiling
	}
	if l.MaxQuerySeries == 0 && l.MaxQuerySamples == 0 && timeout == 0 {
		return opts, false
	}
	var (
		perStep  bool
		lookback time.Duration
		useST    *bool
		series   uint64
		samples  uint64
		duration time.Duration
	)
	if opts != nil {
		perStep, lookback, useST = opts.EnablePerStepStats(), opts.LookbackDelta(), opts.UseStartTimestamps()
		if c, ok := opts.(promql.QueryCostOpts); ok {
			series, samples, duration = c.MaxSeries(), c.MaxSamplesRead(), c.MaxQueryDuration()
		}
	}
	series = lowest(series, uint64(l.MaxQuerySeries))
	samples = lowest(samples, uint64(l.MaxQuerySamples))
	duration = lowest(duration, timeout)
	return promql.NewPrometheusQueryOptsWithLimits(perStep, lookback, series, samples, duration, useST), true
}

// lowest returns the lower of two limits where 0 means none.
func lowest[T uint64 | time.Duration](a, b T) T {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// limitHits counts the limit a query's result ran into, if any.
func (e *Engine) limitHits(ctx context.Context, err error) {
	if e.limits == nil || err == nil {
		return
	}
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return
	}
	var (
		series  promql.ErrTooManySeries
		samples promql.ErrTooManySamplesRead
		timeout promql.ErrQueryTimeout
	)
	switch {
	case errors.As(err, &series):
		e.limits.Hit(id, "max_query_series")
	case errors.As(err, &samples):
		e.limits.Hit(id, "max_query_samples")
	case errors.As(err, &timeout):
		e.limits.Hit(id, "query_timeout")
	}
}
