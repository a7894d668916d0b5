package frontend

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

func fpoints(step int64, ts ...int64) []promql.FPoint {
	out := make([]promql.FPoint, len(ts))
	for i, t := range ts {
		out[i] = promql.FPoint{T: t * step, F: float64(t)}
	}
	return out
}

func ext(start, end int64, annos ...anno) *extent {
	var ts []int64
	for t := start; t <= end; t++ {
		if t%3 != 2 { // some steps without a point
			ts = append(ts, t)
		}
	}
	return &extent{start: start * 10, end: end * 10, annos: annos,
		series: promql.Matrix{{Metric: labels.FromStrings("a", "1"), Floats: fpoints(10, ts...)}}}
}

func spans(xs []*extent) string {
	s := ""
	for _, x := range xs {
		s += fmt.Sprintf("[%d,%d]", x.start/10, x.end/10)
		if len(x.annos) > 0 {
			s += "a"
		}
	}
	return s
}

func TestExtents(t *testing.T) {
	warn := anno{msg: "w"}
	for _, tc := range []struct {
		name      string
		have      []*extent
		add       *extent
		want      string // extents after adding
		from, to  int64
		missing   string // of [from, to] after adding
		coveredPt int    // points of [from, to] covered
	}{
		{"into empty", nil, ext(3, 5), "[3,5]", 0, 9, "[0,2][6,9]", 2},
		{"disjoint", []*extent{ext(0, 2)}, ext(5, 6), "[0,2][5,6]", 0, 9, "[3,4][7,9]", 3},
		{"adjacent joins", []*extent{ext(0, 2)}, ext(3, 6), "[0,6]", 1, 5, "", 3},
		{"overlap joins", []*extent{ext(0, 4), ext(8, 9)}, ext(3, 8), "[0,9]", 0, 9, "", 7},
		{"inside", []*extent{ext(0, 9)}, ext(3, 4), "[0,9]", 0, 9, "", 7},
		{"annotated extent is used whole only", []*extent{ext(2, 4, warn)}, ext(6, 7), "[2,4]a[6,7]", 3, 9, "[3,5][8,9]", 2},
		{"annotated extent covered", []*extent{ext(2, 4, warn)}, ext(6, 7), "[2,4]a[6,7]", 2, 7, "[5,5]", 4},
		{"overlapping an annotated extent drops its rest", []*extent{ext(0, 4, warn)}, ext(3, 6), "[3,6]", 0, 9, "[0,2][7,9]", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := addExtent(tc.have, tc.add, 10)
			if spans(got) != tc.want {
				t.Fatalf("extents %s, want %s", spans(got), tc.want)
			}
			missing, covered := gaps(got, tc.from*10, tc.to*10, 10)
			ms := ""
			for _, m := range missing {
				ms += fmt.Sprintf("[%d,%d]", m[0]/10, m[1]/10)
			}
			n := 0
			for _, c := range covered {
				n += c.points()
				for _, s := range c.series {
					for _, p := range s.Floats {
						if p.T < tc.from*10 || p.T > tc.to*10 || p.F != float64(p.T/10) {
							t.Errorf("covered point %v outside [%d, %d] or wrong", p, tc.from*10, tc.to*10)
						}
					}
				}
			}
			if ms != tc.missing || n != tc.coveredPt {
				t.Errorf("missing %s covering %d points, want %s covering %d", ms, n, tc.missing, tc.coveredPt)
			}
		})
	}
}

func TestCodecRoundTrip(t *testing.T) {
	h := &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, Schema: 1, ZeroThreshold: 0.001, ZeroCount: 2, Count: 9, Sum: -3.25,
		PositiveSpans: []histogram.Span{{Offset: -2, Length: 2}, {Offset: 3, Length: 1}}, PositiveBuckets: []float64{1, 2, 3},
		NegativeSpans: []histogram.Span{{Offset: 1, Length: 1}}, NegativeBuckets: []float64{3}}
	nhcb := &histogram.FloatHistogram{Schema: histogram.CustomBucketsSchema, Count: 3, Sum: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{1, 2}, CustomValues: []float64{0.5, 1}}
	exts := []*extent{
		{start: -60, end: 60, annos: []anno{{info: true, msg: "i (1:2)"}, {msg: "w"}}, series: promql.Matrix{
			{Metric: labels.FromStrings("__name__", "x", "a", "ü"), Floats: []promql.FPoint{{T: -60, F: math.NaN()}, {T: 0, F: math.Float64frombits(value.StaleNaN)}, {T: 60, F: -0.0}}},
			{Metric: labels.EmptyLabels(), Histograms: []promql.HPoint{{T: -30, H: h}, {T: 30, H: nhcb}}},
		}},
		{start: 120, end: 120},
	}
	b := encodeEntry("key", 30, exts)
	got, err := decodeEntry(b, "key", 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].start != 120 || len(got[0].annos) != 2 || got[0].annos[0] != exts[0].annos[0] {
		t.Fatalf("decoded %+v", got)
	}
	if d := diffMatrix(exts[0].series, got[0].series); d != "" {
		t.Fatal(d)
	}
	if _, err := decodeEntry(b, "other key", 30); err == nil {
		t.Error("a value was read under another key")
	}
	for i := range b {
		if _, err := decodeEntry(b[:i], "key", 30); err == nil {
			t.Fatalf("a value cut at %d bytes decoded", i)
		}
	}
}

func TestMemCacheLimits(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	const item = 1000 + memItemOverhead + 2 // value, overhead and a 2-byte key
	c := newMemCache(10*item, func(tenant string) int64 {
		if tenant == "small" {
			return 3 * item
		}
		return 0
	}, m)
	ctx := context.Background()
	v := make([]byte, 1000)
	for i := range 5 {
		c.store(ctx, "small", fmt.Sprintf("s%d", i), v)
	}
	if got := c.fetch(ctx, []string{"s0", "s1", "s2", "s3", "s4"}); len(got) != 3 || got["s4"] == nil || got["s1"] != nil {
		t.Fatalf("tenant small over its share holds %d entries, want its 3 newest", len(got))
	}
	for i := range 9 {
		c.store(ctx, "big", fmt.Sprintf("b%d", i), v)
	}
	if c.bytes > 10*item {
		t.Fatalf("the cache holds %d bytes, more than its %d", c.bytes, 10*item)
	}
	// Reading s4 made it recent: the global eviction took small's older ones.
	if got := c.fetch(ctx, []string{"b0", "b8"}); got["b8"] == nil || got["b0"] == nil {
		t.Errorf("the newest entries of big were evicted: %v", got)
	}
	c.store(ctx, "big", "xx", make([]byte, 11*item))
	if testutilCounter(t, m.tooLarge) != 1 {
		t.Error("an entry larger than the cache was stored")
	}
}

// testFrontend returns a front end over a plain engine, tenant "t", its
// clock at now.
func testFrontend(t *testing.T, mod func(*Config), now func() time.Time) (*Frontend, promql.QueryEngine) {
	t.Helper()
	eng := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	cfg := testConfig()
	if mod != nil {
		mod(&cfg)
	}
	fe, err := New(Options{Config: cfg, Engine: eng, Now: now, Registerer: prometheus.NewRegistry(), Parser: parser.NewParser(promqltest.TestParserOpts),
		Tenant: func(ctx context.Context) (string, bool) {
			id, ok := ctx.Value(tenantKey{}).(string)
			return id, ok
		}})
	if err != nil {
		t.Fatal(err)
	}
	return fe, eng
}

type tenantKey struct{}

func withTenant(id string) context.Context {
	return context.WithValue(context.Background(), tenantKey{}, id)
}

func rangeQuery(t *testing.T, e promql.QueryEngine, ctx context.Context, q storage.Queryable, qs string, start, end int64, step time.Duration) *promql.Result {
	t.Helper()
	qry, err := e.NewRangeQuery(ctx, q, nil, qs, time.UnixMilli(start), time.UnixMilli(end), step)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(qry.Close)
	res := qry.Exec(ctx)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return res
}

// blockingQueryable holds the first Select of a query until released.
type blockingQueryable struct {
	storage.Queryable
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := b.Queryable.Querier(mint, maxt)
	return blockingQuerier{q, b}, err
}

type blockingQuerier struct {
	storage.Querier
	b *blockingQueryable
}

func (q blockingQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	q.b.once.Do(func() {
		close(q.b.entered)
		<-q.b.release
	})
	return q.Querier.Select(ctx, sorted, hints, ms...)
}

// TestInvalidationDuringEvaluation writes into a range while a query of
// it is being evaluated: the query may answer with the old data or the
// new, but what it stores must never answer a later query.
func TestInvalidationDuringEvaluation(t *testing.T) {
	st := promqltest.LoadedStorage(t, "load 1m\n  x{i=\"a\"} 0+1x600\n")
	// The clock is far ahead: every step is final.
	fe, eng := testFrontend(t, func(c *Config) {
		c.SplitInterval = model.Duration(time.Hour)
		c.Parallelism = 1 // the first part blocks, with its querier open
	}, func() time.Time { return time.Unix(1e6, 0) })
	bq := &blockingQueryable{Queryable: st, entered: make(chan struct{}), release: make(chan struct{})}
	ctx := withTenant("t")
	const qs = `sum_over_time(x[10m])`
	done := make(chan *promql.Result)
	go func() {
		qry, err := fe.NewRangeQuery(ctx, bq, nil, qs, time.UnixMilli(0), time.UnixMilli(5*3600e3), time.Minute)
		if err != nil {
			panic(err)
		}
		defer qry.Close()
		done <- qry.Exec(ctx)
	}()
	<-bq.entered
	app := st.AppenderV2(context.Background())
	// Into the first part, which reads the data as it was before.
	if _, err := app.Append(0, labels.FromStrings("__name__", "x", "i", "b"), 0, 30*60e3, 100, nil, nil, storage.AppendV2Options{}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	fe.Committed("t", 30*60e3, 30*60e3)
	close(bq.release)
	if r := <-done; r.Err != nil {
		t.Fatal(r.Err)
	}
	want := rangeQuery(t, eng, ctx, st, qs, 0, 5*3600e3, time.Minute)
	got := rangeQuery(t, fe, ctx, st, qs, 0, 5*3600e3, time.Minute)
	if d := diffResults(qs, want, got); d != "" {
		t.Fatalf("after a write during an evaluation: %s", d)
	}
	if testutilCounter(t, fe.m.lookups.WithLabelValues("t", "hit")) == 0 {
		t.Error("parts the write did not touch were not answered from the cache")
	}
}

// TestFreshStepsNotCached: steps whose data is newer than the freshness
// horizon are evaluated at every query, so that a sample written there,
// which is never reported, shows at once; older steps come from the cache.
func TestFreshStepsNotCached(t *testing.T) {
	st := promqltest.LoadedStorage(t, "load 1m\n  x 0+1x120\n")
	now := time.UnixMilli(120 * 60e3)
	fe, eng := testFrontend(t, nil, func() time.Time { return now })
	ctx := withTenant("t")
	const qs = `max_over_time(x[5m])`
	rangeQuery(t, fe, ctx, st, qs, 0, now.UnixMilli(), time.Minute)
	app := st.AppenderV2(context.Background())
	if _, err := app.Append(0, labels.FromStrings("__name__", "x", "new", "1"), 0, now.UnixMilli()-3*60e3+1, 1000, nil, nil, storage.AppendV2Options{}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	fe.Committed("t", now.UnixMilli()-3*60e3+1, now.UnixMilli()-3*60e3+1) // newer than the horizon: no invalidation
	evals := testutilCounter(t, fe.m.evaluations)
	got := rangeQuery(t, fe, ctx, st, qs, 0, now.UnixMilli(), time.Minute)
	want := rangeQuery(t, eng, ctx, st, qs, 0, now.UnixMilli(), time.Minute)
	if d := diffResults(qs, want, got); d != "" {
		t.Fatal(d)
	}
	if n := testutilCounter(t, fe.m.evaluations) - evals; n != 1 {
		t.Errorf("the second query made %v evaluations, want 1 (its fresh steps)", n)
	}
	cached := testutilCounter(t, fe.m.points.WithLabelValues("t", "cache"))
	fresh := testutilCounter(t, fe.m.points.WithLabelValues("t", "evaluated"))
	// 121 steps: the first query evaluated them all, the second the
	// newest 10m and a step (11 points of x, 3 of the new series).
	if cached != 110 || fresh != 121+11+3 {
		t.Errorf("points from cache %v, evaluated %v; want 110 and 135", cached, fresh)
	}
	if testutilCounter(t, fe.m.invalidations.WithLabelValues("t", "write")) != 0 {
		t.Error("a fresh sample invalidated the cache")
	}
}

func TestWholeQueries(t *testing.T) {
	st := promqltest.LoadedStorage(t, "load 1m\n  x 0+1x120\n")
	fe, eng := testFrontend(t, func(c *Config) { c.SplitInterval = model.Duration(10 * time.Minute) }, func() time.Time { return time.Unix(1e6, 0) })
	for _, tc := range []struct {
		name, qs, handling string
		ctx                context.Context
	}{
		{"split", `x`, "split", withTenant("t")},
		{"@ end()", `x @ end()`, "whole: @ start() or @ end()", withTenant("t")},
		{"start()", `x - start()`, "whole: start()", withTenant("t")},
		{"range() in a range", `rate(x[range()])`, "whole: range() in a duration", withTenant("t")},
		{"no tenant", `x`, "whole: no tenant", context.Background()},
		{"no cache asked", `x`, "whole: stats or no-cache requested", context.WithValue(withTenant("t"), noCacheKey{}, true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fe.m.queries.WithLabelValues(tc.handling)
			before := testutilCounter(t, c)
			got := rangeQuery(t, fe, tc.ctx, st, tc.qs, 0, 7200e3, time.Minute)
			want := rangeQuery(t, eng, tc.ctx, st, tc.qs, 0, 7200e3, time.Minute)
			if d := diffResults(tc.qs, want, got); d != "" {
				t.Error(d)
			}
			if testutilCounter(t, c) != before+1 {
				t.Errorf("not handled as %q", tc.handling)
			}
		})
	}
}

func TestRenderedAnnotations(t *testing.T) {
	var a annotations.Annotations
	a.Add(renderedAnno{info: true, msg: "PromQL info: x (1:1)"})
	a.Add(renderedAnno{msg: "PromQL warning: y (1:2)"})
	w, i := a.AsStrings("q", 10, 10)
	if len(w) != 1 || len(i) != 1 || i[0] != "PromQL info: x (1:1)" || w[0] != "PromQL warning: y (1:2)" {
		t.Fatalf("warnings %q infos %q", w, i)
	}
}
