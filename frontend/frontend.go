// Package frontend is the query front end: it splits range queries into
// parts aligned to the split interval (UTC days by default), evaluates them
// in parallel, and caches the answer of every part's steps that can no
// longer change, so that a dashboard asking the same queries again over a
// moving window gets the old steps from the cache and evaluates only what
// is new.
//
// It sits in front of the query engine as a promql.QueryEngine, so that
// Prometheus's own API handler parses the request, encodes the answer and
// reports errors exactly as it does without it; parts are evaluated by the
// engine behind it.
//
// Invariants:
//
//   - A cached answer equals a fresh evaluation of the same steps on the
//     data at the time of the query, bit for bit: answers at a step depend
//     only on the step's time, the query and the data (queries using
//     @ start() or @ end() are not split); steps whose data reaches into
//     the newest MaxFreshness are never cached; and every change to older
//     data (a late or backfilled sample, a rule writing history, a block
//     appearing in or leaving the bucket: deletion, merges, downsampling)
//     is reported (Committed, BucketChanged) after it is visible to queries
//     and changes the keys of every part that reads its time range.
//   - Keys are per tenant: a tenant's entries are found only under keys
//     naming it, and each value carries its full key, checked on read.
//
// The rules for what is not split nor cached are in bypassReason.
package frontend

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/tenant"
)

// Pinner is implemented by engines that decide something for a range query
// as a whole (Strata's: the resolution it reads, and whether it is
// rewritten onto downsampled aggregates). PinRange returns a context that
// makes the engine decide for a part of the query as it decided for the
// whole, and a string naming the decision, part of the cache key.
type Pinner interface {
	PinRange(ctx context.Context, expr parser.Expr, start, end time.Time, step time.Duration) (context.Context, string)
}

// Options configure a Frontend.
type Options struct {
	Config Config
	// Engine evaluates the parts, and the queries the front end passes on
	// whole. Nil for a front end that only invalidates a shared cache (a
	// cluster's ingester): it answers no query.
	Engine promql.QueryEngine
	// Parser parses queries as Engine does; the default parser when nil.
	Parser parser.Parser
	// LookbackDelta is Engine's default lookback (5m when 0).
	LookbackDelta time.Duration
	// OutOfOrderWindow is the store's: MaxFreshness is at least this.
	OutOfOrderWindow time.Duration
	// TenantMaxBytes returns a tenant's share of the cache in bytes; 0 (or
	// a nil function) means the whole cache.
	TenantMaxBytes func(tenant string) int64
	// Tenant returns the tenant of a query's context; tenant.FromContext
	// when nil. Queries without a tenant are passed on whole.
	Tenant func(context.Context) (string, bool)

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Frontend splits and caches range queries. It implements promql.QueryEngine.
type Frontend struct {
	inner       promql.QueryEngine
	pinner      Pinner
	parser      parser.Parser
	interval    int64 // ms; 0: off
	parallelism int
	freshness   int64 // ms
	lookback    time.Duration
	tenantOf    func(context.Context) (string, bool)
	now         func() time.Time
	logger      *slog.Logger
	m           *metrics
	cache       cache // nil: none
}

// New returns a front end over opts.Engine. Close releases its cache.
func New(opts Options) (*Frontend, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Parser == nil {
		opts.Parser = parser.NewParser(parser.Options{})
	}
	if opts.LookbackDelta <= 0 {
		opts.LookbackDelta = 5 * time.Minute
	}
	if opts.Tenant == nil {
		opts.Tenant = tenant.FromContext
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Frontend{
		inner:       opts.Engine,
		parser:      opts.Parser,
		interval:    time.Duration(opts.Config.SplitInterval).Milliseconds(),
		parallelism: opts.Config.Parallelism,
		freshness:   max(time.Duration(opts.Config.ResultsCache.MaxFreshness), opts.OutOfOrderWindow).Milliseconds(),
		lookback:    opts.LookbackDelta,
		tenantOf:    opts.Tenant,
		now:         opts.Now,
		logger:      opts.Logger,
		m:           newMetrics(opts.Registerer),
	}
	if f.parallelism <= 0 {
		f.parallelism = runtime.GOMAXPROCS(0)
	}
	f.pinner, _ = opts.Engine.(Pinner)
	if f.interval > 0 {
		switch opts.Config.ResultsCache.Backend {
		case BackendInMemory:
			f.cache = newMemCache(opts.Config.ResultsCache.MaxBytes, opts.TenantMaxBytes, f.m)
		case BackendMemcached:
			f.cache = newMemcachedCache(opts.Config.ResultsCache.Memcached, f.m, opts.Logger)
		}
	}
	return f, nil
}

// Close releases the cache's connections.
func (f *Frontend) Close() error {
	if f.cache == nil {
		return nil
	}
	return f.cache.close()
}

// NewInstantQuery implements promql.QueryEngine: instant queries go to the engine.
func (f *Frontend) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	return f.inner.NewInstantQuery(ctx, q, opts, qs, ts)
}

// Committed is told of a commit of samples of tenant with timestamps in
// [mint, maxt], once they are visible to queries. Samples older than the
// freshness horizon invalidate the cached parts that read them. It waits
// for the invalidation: a write acknowledged afterwards is never hidden by
// the cache.
func (f *Frontend) Committed(tenant string, mint, maxt int64) {
	if f.cache == nil {
		return
	}
	horizon := f.now().UnixMilli() - f.freshness
	if mint >= horizon {
		return
	}
	f.invalidate(tenant, mint, min(maxt, horizon), "write")
}

// BucketChanged is told that blocks of tenant with data in [mint, maxt]
// appeared in or left the bucket view queries read (merges, downsampling,
// retention, deletion), once queries see the change.
func (f *Frontend) BucketChanged(tenant string, mint, maxt int64) {
	if f.cache == nil {
		return
	}
	f.invalidate(tenant, mint, maxt, "bucket")
}

// maxBumpBuckets is the most buckets an invalidation bumps one by one;
// wider ones bump the tenant's generation, which every key includes.
const maxBumpBuckets = 64

func (f *Frontend) invalidate(tenant string, mint, maxt int64, cause string) {
	var keys []string
	b0, b1 := floorDiv(mint, f.interval), floorDiv(maxt, f.interval)
	if b1-b0 >= maxBumpBuckets {
		keys = []string{tenantGenKey(tenant)}
	} else {
		for b := b0; b <= b1; b++ {
			keys = append(keys, bucketGenKey(tenant, b))
		}
	}
	f.m.invalidations.WithLabelValues(tenant, cause).Inc()
	// The context is not the caller's: an invalidation must not be cut short.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.cache.bump(ctx, keys); err != nil {
		f.m.invalidationFailures.Inc()
		f.logger.Error("invalidating cached query results failed; answers of this time range may be stale until the cache drops them", "tenant", tenant, "mint", mint, "maxt", maxt, "err", err)
	}
}

// Generation keys, in memcached's key alphabet (tenant IDs are letters,
// digits and !-_.*'()).
func tenantGenKey(tenant string) string { return "sfg:" + tenant }
func bucketGenKey(tenant string, b int64) string {
	return fmt.Sprintf("sfg:%s:%d", tenant, b)
}

// floorDiv is a/b rounded towards minus infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

type noCacheKey struct{}

// Handler marks the range queries the front end must pass on whole: those
// asking for statistics (their figures are the work done, which the cache
// changes) and those sent with Cache-Control: no-cache or no-store.
func Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/query_range" {
			cc := strings.ToLower(r.Header.Get("Cache-Control"))
			// FormValue parses the form as Prometheus's handler does
			// (errors ignored), which then reads the same parse.
			if r.FormValue("stats") != "" || strings.Contains(cc, "no-cache") || strings.Contains(cc, "no-store") {
				r = r.WithContext(context.WithValue(r.Context(), noCacheKey{}, true))
			}
		}
		next.ServeHTTP(w, r)
	})
}

type metrics struct {
	queries              *prometheus.CounterVec
	lookups              *prometheus.CounterVec
	points               *prometheus.CounterVec
	invalidations        *prometheus.CounterVec
	invalidationFailures prometheus.Counter
	evaluations          prometheus.Counter
	bytes, items         prometheus.Gauge
	storedBytes          prometheus.Counter
	evictions, tooLarge  prometheus.Counter
	backendErrors        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		queries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_query_frontend_queries_total",
			Help: "Range queries the front end received, by what it did: split, or passed on whole and why.",
		}, []string{"handling"}),
		lookups: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_results_cache_lookups_total",
			Help: "Parts of range queries looked up in the results cache: hit (answered whole from the cache), partial, or miss.",
		}, []string{"tenant", "result"}),
		points: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_results_cache_points_total",
			Help: "Points (samples of answers) of split range queries, by source: cache or evaluated.",
		}, []string{"tenant", "source"}),
		invalidations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_results_cache_invalidations_total",
			Help: "Invalidations of cached results, by cause: write (samples older than the freshness horizon) or bucket (blocks appeared or left).",
		}, []string{"tenant", "cause"}),
		invalidationFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_results_cache_invalidation_failures_total",
			Help: "Invalidations the cache backend failed to record.",
		}),
		evaluations: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_query_frontend_evaluations_total",
			Help: "Range queries the front end sent to the engine for steps not cached.",
		}),
		bytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_results_cache_bytes",
			Help: "Bytes the in-memory results cache holds.",
		}),
		items: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_results_cache_items",
			Help: "Entries the in-memory results cache holds.",
		}),
		storedBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_results_cache_stored_bytes_total",
			Help: "Bytes written to the results cache (compressed, for memcached).",
		}),
		evictions: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_results_cache_evictions_total",
			Help: "Entries evicted from the in-memory results cache to stay within its size or a tenant's share.",
		}),
		tooLarge: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_results_cache_too_large_total",
			Help: "Results not cached because they exceed the cache's, the tenant's or memcached's item size.",
		}),
		backendErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_results_cache_backend_errors_total",
			Help: "Failed operations of the memcached results cache, by operation; a failed read is a miss.",
		}, []string{"op"}),
	}
}

// Changes passes the store's reports of changed data (blocks.ChangeObserver)
// to a front end created after the store, as the front end needs the engine
// and the engine the store. Reports before Set are dropped: the cache is
// empty then, unless it is memcached's, whose entries a restart keeps (see
// docs/architecture.md for what that leaves).
type Changes struct{ fe atomic.Pointer[Frontend] }

// Set makes f receive the reports.
func (c *Changes) Set(f *Frontend) { c.fe.Store(f) }

// Committed implements blocks.ChangeObserver.
func (c *Changes) Committed(tenant string, mint, maxt int64) {
	if f := c.fe.Load(); f != nil {
		f.Committed(tenant, mint, maxt)
	}
}

// BucketChanged implements blocks.ChangeObserver.
func (c *Changes) BucketChanged(tenant string, mint, maxt int64) {
	if f := c.fe.Load(); f != nil {
		f.BucketChanged(tenant, mint, maxt)
	}
}
