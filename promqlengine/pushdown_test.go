package promqlengine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"

	"github.com/strata-tsdb/strata/internal/testutil"
)

// pushdownTestExprs exercise every pushed-down function and selector kind,
// and the places pushdown must leave alone.
var pushdownTestExprs = []struct {
	expr string
	// pushed is the number of pushed-down calls and selectors.
	pushed int
}{
	{`rate(c[1m])`, 1},
	{`rate(c[1m] offset 2m)`, 1},
	{`rate(c[1m] offset -1m)`, 1},
	{`increase(c[2m])`, 1},
	{`irate(c[1m])`, 1},
	{`delta(g[2m])`, 1},
	{`idelta(g[2m])`, 1},
	{`deriv(g[3m])`, 1},
	{`resets(c[5m])`, 1},
	{`changes(g[5m])`, 1},
	{`predict_linear(g[5m], 600)`, 1},
	{`avg_over_time(g[2m])`, 1},
	{`min_over_time(g[2m])`, 1},
	{`max_over_time(g[45s])`, 1},
	{`sum_over_time(g[2m])`, 1},
	{`count_over_time(g[2m])`, 1},
	{`stddev_over_time(g[2m])`, 1},
	{`stdvar_over_time(g[2m])`, 1},
	{`last_over_time(g[2m])`, 1},
	{`present_over_time(g[2m])`, 1},
	{`quantile_over_time(0.75, g[3m])`, 1},
	{`quantile_over_time(1.5, g[3m])`, 1},
	{`mad_over_time(g[3m])`, 1},
	{`rate(g[1m])`, 1}, // not a counter: an info annotation per name
	{`sum by (instance) (rate(c{mode!="idle"}[1m]))`, 1},
	{`avg by (mode) (rate(c[1m]))`, 1},
	{`topk(3, rate(c[1m]))`, 1},
	{`sum(rate(c[1m]))`, 1},
	{`g`, 1},
	{`g offset 1m`, 1},
	{`g offset -2m`, 1},
	{`gap`, 1},
	{`rate(gap[5m])`, 1},
	{`count(gap)`, 1},
	{`max by (instance) (1 - g / g2)`, 2},
	{`quantile(0.9, g)`, 1},
	{`count by (__name__) ({job="node"})`, 1},
	{`count({job="node"})`, 1},
	{`count without (cpu) (g)`, 1},
	{`count without (cpu) ({job="node"})`, 1},
	{`count by (mode, nonexistent) (g offset 1m)`, 1},
	{`group by (mode) (g)`, 1},
	{`group(g)`, 1},
	{`count(rate(c[1m]))`, 1},
	{`count by (instance) (g) > 5`, 1},
	{`sum by (instance) (rate({__name__=~"c|c2"}[1m]))`, 1}, // same labels after the name goes: runs again without pushdown
	{`rate({__name__=~"c|c2", cpu="1"}[1m])`, 1},            // different labels: stays pushed down
	{`rate(h[1m])`, 1},                                      // native histograms: runs again without pushdown
	{`count(h)`, 1},
	{`label_replace(rate(c[1m]), "mode", "m", "", "")`, 1},
	{`sum by (instance) (max_over_time(g[5m:1m]))`, 0},
	{`max_over_time(rate(c[1m])[5m:1m])`, 0},
	{`sum by (instance) (g @ 300)`, 0},
	{`rate(c[1m] @ 300)`, 0},
	{`absent(nonexistent)`, 0},
	{`absent_over_time(g[1m])`, 0},
	{`timestamp(g)`, 0},
	{`rate(nonexistent[1m])`, 1},
	{`g * scalar(g3)`, 2},
	{`double_exponential_smoothing(g[5m], 0.5, 0.5)`, 0},
	{`topk(scalar(g3), g)`, 1},
}

func TestPushdownMatchesEngine(t *testing.T) {
	data := shardTestData(11) + "  h{job=\"node\",instance=\"i0\"} {{schema:0 sum:5 count:4 buckets:[1 2 1]}}x40\n" +
		// Gaps of exactly the lookback (20 × 15s) and longer, a stale marker.
		"  gap{job=\"node\",instance=\"i9\"} 1 _x20 2 _x40 3 stale _x10 4 5\n"
	st := promqltest.LoadedStorage(t, data)
	base := promql.EngineOpts{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute, EnableAtModifier: true, EnableNegativeOffset: true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   parser.NewParser(parser.Options{EnableExperimentalFunctions: true})}
	plain := promql.NewEngine(base)
	ranges := []struct{ start, end, step time.Duration }{
		{0, 20 * time.Minute, 30 * time.Second},
		{-3 * time.Minute, 25 * time.Minute, time.Minute},
		{7 * time.Second, 19 * time.Minute, 17 * time.Second},
		{time.Minute, 21 * time.Minute, 7 * time.Minute},
		{5 * time.Minute, 5 * time.Minute, time.Second},
		{0, 20 * time.Minute, 15 * time.Second},
		{0, time.Second, 500 * time.Microsecond},
		{time.Minute, 0, time.Minute},
	}
	for _, shards := range []int{1, 2} {
		e, err := New(Options{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute, Shards: shards, ExperimentalFunctions: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range pushdownTestExprs {
			expr, err := e.Parser.ParseExpr(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if _, specs := pushdownRewrite(expr); len(specs) != tc.pushed {
				t.Errorf("%s: %d pushed down, want %d", tc.expr, len(specs), tc.pushed)
			}
			for _, r := range ranges {
				t.Run(fmt.Sprintf("%d/%s/%v-%v-%v", shards, tc.expr, r.start, r.end, r.step), func(t *testing.T) {
					ctx := context.Background()
					start, end := time.Unix(0, 0).Add(r.start), time.Unix(0, 0).Add(r.end)
					want := rangeQuery(t, plain, st, tc.expr, start, end, r.step)
					q, err := e.NewRangeQuery(ctx, st, nil, tc.expr, start, end, r.step)
					if err != nil {
						t.Fatal(err)
					}
					defer q.Close()
					_, pushed := q.(resQuery).Query.(*fallbackQuery)
					if canPush := r.step >= time.Millisecond && r.end >= r.start; pushed != (tc.pushed > 0 && canPush) {
						t.Fatalf("pushed down: %v", pushed)
					}
					compareResults(t, want, q.Exec(ctx))
				})
			}
		}
	}
}

// TestPushdownFallsBack checks that queries whose data pushdown cannot
// answer exactly run again without it, and that others do not.
func TestPushdownFallsBack(t *testing.T) {
	st := promqltest.LoadedStorage(t, shardTestData(3)+"  h{job=\"node\",instance=\"i0\"} {{schema:0 sum:5 count:4 buckets:[1 2 1]}}x40\n")
	e, err := New(Options{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		expr string
		back bool
	}{
		{`rate(c[1m])`, false},
		{`count(c)`, false},
		{`count({job="node"})`, true},
		{`rate({__name__=~"c|c2"}[1m])`, true},
		{`rate(h[1m])`, true},
		{`sum(h)`, true},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			q, err := e.NewRangeQuery(context.Background(), st, nil, tc.expr, time.Unix(0, 0), time.Unix(600, 0), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			fq := q.(resQuery).Query.(*fallbackQuery)
			q.Exec(context.Background()) // answers: TestPushdownMatchesEngine
			if back := fq.fellBack != nil; back != tc.back {
				t.Fatalf("ran again without pushdown: %v (%v), want %v", back, fq.fellBack, tc.back)
			}
		})
	}
}

func TestPushdownMarkerInQuery(t *testing.T) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(`rate(c{` + pushdownLabel + `="0"}[1m]) + g`)
	if err != nil {
		t.Fatal(err)
	}
	if _, specs := pushdownRewrite(expr); len(specs) != 0 {
		t.Fatalf("a query naming the marker label was rewritten: %d", len(specs))
	}
	if !strings.HasPrefix(pushdownLabel, "__") {
		t.Fatal("the marker label must be reserved")
	}
}

// TestPushdownSampleLimit checks that pushdown holds no more precomputed
// points than the engine's sample limit: past it, the query runs without
// pushdown and answers as the engine does, error included.
func TestPushdownSampleLimit(t *testing.T) {
	st := promqltest.LoadedStorage(t, shardTestData(5))
	start, end, step := time.Unix(0, 0), time.Unix(1200, 0), 30*time.Second
	for _, tc := range []struct {
		expr       string
		maxSamples int
		back       bool
	}{
		{`rate(c[1m])`, 1e6, false},
		{`rate(c[1m])`, 500, true},
		{`sum by (instance) (rate(c[1m]))`, 3000, true},
		{`count by (mode) (g)`, 1e6, false},
		{`count by (mode) (g)`, 100, true},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.expr, tc.maxSamples), func(t *testing.T) {
			plain := promql.NewEngine(promql.EngineOpts{Timeout: time.Minute, MaxSamples: tc.maxSamples, LookbackDelta: 5 * time.Minute})
			want := rangeQuery(t, plain, st, tc.expr, start, end, step)
			// Unsharded: each part of a sharded query has the whole limit.
			e, err := New(Options{Timeout: time.Minute, MaxSamples: tc.maxSamples, LookbackDelta: 5 * time.Minute, Shards: 1})
			if err != nil {
				t.Fatal(err)
			}
			q, err := e.NewRangeQuery(context.Background(), st, nil, tc.expr, start, end, step)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			fq := q.(resQuery).Query.(*fallbackQuery)
			compareResults(t, want, q.Exec(context.Background()))
			if back := fq.fellBack != nil; back != tc.back {
				t.Fatalf("ran again without pushdown: %v (%v), want %v", back, fq.fellBack, tc.back)
			}
		})
	}
}

// TestPushdownEngineMetrics checks that pushed-down queries show in the
// engine's metrics, told apart by the engine label.
func TestPushdownEngineMetrics(t *testing.T) {
	st := promqltest.LoadedStorage(t, shardTestData(2))
	reg := prometheus.NewRegistry()
	e, err := New(Options{Timeout: time.Minute, MaxSamples: 1e6, Registerer: reg, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, qs := range []string{`rate(c[1m])`, `vector(1)`} {
		q, err := e.NewRangeQuery(context.Background(), st, nil, qs, time.Unix(0, 0), time.Unix(600, 0), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if r := q.Exec(context.Background()); r.Err != nil {
			t.Fatal(r.Err)
		}
		q.Close()
	}
	const name = "prometheus_engine_query_duration_seconds" // a summary: its count
	pushed := testutil.RequireMetric(t, reg, name, "engine", "pushdown", "slice", "inner_eval")
	plain := testutil.RequireMetric(t, reg, name, "engine", "plain", "slice", "inner_eval")
	if pushed != 1 || plain != 1 {
		t.Fatalf("inner evaluations: %v pushed down, %v plain; want one of each", pushed, plain)
	}
}
