package promqlengine

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
)

func TestPlanShards(t *testing.T) {
	for _, tc := range []struct {
		expr   string
		ok     bool
		series bool
		key    shardKey
	}{
		{`sum by (instance) (rate(c[5m]))`, true, false, shardKey{by: true, names: []string{"instance"}}},
		{`avg by (mode, cpu) (rate(c[5m]))`, true, false, shardKey{by: true, names: []string{"cpu", "mode"}}},
		{`sum without (cpu) (g)`, true, false, shardKey{names: []string{"cpu"}}},
		{`count by (__name__) ({job="node"})`, true, true, shardKey{}},
		{`count(g)`, true, true, shardKey{}},
		{`group by (mode) (g)`, true, true, shardKey{}},
		{`sum by (__name__) ({job="node"})`, true, false, shardKey{by: true, names: []string{"__name__"}}},
		{`sum by (__name__) (rate({job="node"}[5m]))`, false, false, shardKey{}},
		{`rate(c[5m])`, true, false, shardKey{names: []string{"le"}}},
		{`max by (instance) (1 - g / g2)`, true, false, shardKey{by: true, names: []string{"instance"}}},
		{`sum by (instance) (g) / sum by (instance) (g2)`, true, false, shardKey{by: true, names: []string{"instance"}}},
		{`sum by (instance) (g) / on (mode) sum by (instance, mode) (g2)`, false, false, shardKey{}},
		{`sum by (instance) (g) / ignoring (instance) g2`, false, false, shardKey{}},
		{`sum by (instance, mode) (g) / on (instance) group_left sum by (instance) (g2)`, false, false, shardKey{}},
		{`sum by (instance, mode) (g) / on (instance, mode) group_left sum by (instance, mode, cpu) (g2)`, true, false, shardKey{by: true, names: []string{"instance", "mode"}}},
		{`histogram_quantile(0.9, sum by (le, instance) (rate(h_bucket[5m])))`, true, false, shardKey{by: true, names: []string{"instance"}}},
		{`histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))`, false, false, shardKey{}},
		{`sum by (le) (rate(h_bucket[5m]))`, true, false, shardKey{by: true, names: []string{"le"}}},
		{`histogram_quantile(0.9, rate(h_bucket[5m]))`, true, false, shardKey{names: []string{"le"}}},
		{`topk(5, rate(c[5m]))`, false, false, shardKey{}},
		{`topk by (instance) (2, g)`, true, false, shardKey{by: true, names: []string{"instance"}}},
		{`topk(scalar(g3), g)`, false, false, shardKey{}},
		{`sum(rate(c[5m]))`, false, false, shardKey{}},
		{`quantile(0.9, g)`, false, false, shardKey{}},
		{`sum by (instance) (label_replace(g, "instance", "x", "", ""))`, false, false, shardKey{}},
		{`sum by (instance) (g) or vector(1)`, false, false, shardKey{}},
		{`absent(g)`, false, false, shardKey{}},
		{`g * scalar(g3)`, false, false, shardKey{}},
		{`sum by (mode) (sum by (mode, instance) (g))`, true, false, shardKey{by: true, names: []string{"mode"}}},
		{`sum by (mode) (sum by (instance) (g))`, false, false, shardKey{}},
		{`sum by (mode) (sum without (instance) (g))`, true, false, shardKey{by: true, names: []string{"mode"}}},
		{`sum by (mode) (sum without (mode) (g))`, false, false, shardKey{}},
		{`sum by (instance) (max_over_time(g[5m:1m]))`, true, false, shardKey{by: true, names: []string{"instance"}}},
		{`count(rate({__name__=~"c|c2"}[5m]))`, false, false, shardKey{}},
		{`count(rate(c[5m]))`, true, true, shardKey{}},
		{`count(g / g2)`, false, false, shardKey{}},
		{`time()`, false, false, shardKey{}},
		{`vector(1)`, false, false, shardKey{}},
		{`count_values by (mode) ("v", g)`, true, false, shardKey{by: true, names: []string{"mode"}}},
		{`minute()`, false, false, shardKey{}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			plan, ok := planShards(expr)
			if ok != tc.ok {
				t.Fatalf("sharded: %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if plan.series != tc.series || plan.key.by != tc.key.by || strings.Join(plan.key.names, ",") != strings.Join(tc.key.names, ",") {
				t.Fatalf("plan %+v, want series %v key %+v", plan, tc.series, tc.key)
			}
		})
	}
}

// shardTestData is a promqltest load of node-exporter-like series whose
// values span many orders of magnitude, so that adding them in another
// order changes the last bits of sums and averages, with gaps, NaNs and
// stale markers.
func shardTestData(seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("load 15s\n")
	val := func() string {
		switch r.IntN(40) {
		case 0:
			return "NaN"
		case 1:
			return "_"
		case 2:
			return "stale"
		}
		mag := math.Pow(10, float64(r.IntN(32)-8))
		return fmt.Sprint((r.Float64() - 0.3) * mag)
	}
	const points = 80
	series := func(ls string, counter bool) {
		b.WriteString("  " + ls + " ")
		v := 0.0
		for i := range points {
			if counter {
				v += r.Float64() * math.Pow(10, float64(r.IntN(12)))
				if r.IntN(60) == 0 {
					v = 0 // reset
				}
				fmt.Fprintf(&b, "%v ", v)
				continue
			}
			b.WriteString(val() + " ")
			_ = i
		}
		b.WriteString("\n")
	}
	modes := []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
	for inst := range 7 {
		for cpu := range 3 {
			for _, m := range modes[:3+inst%6] {
				series(fmt.Sprintf(`c{job="node",instance="i%d",cpu="%d",mode="%s"}`, inst, cpu, m), true)
				series(fmt.Sprintf(`g{job="node",instance="i%d",cpu="%d",mode="%s"}`, inst, cpu, m), false)
				series(fmt.Sprintf(`g2{job="node",instance="i%d",cpu="%d",mode="%s"}`, inst, cpu, m), false)
			}
		}
		series(fmt.Sprintf(`c2{job="node",instance="i%d",cpu="0",mode="idle"}`, inst), true)
		for _, le := range []string{"0.1", "1", "10", "+Inf"} {
			series(fmt.Sprintf(`h_bucket{job="node",instance="i%d",le="%s"}`, inst, le), true)
		}
	}
	series(`g3{job="other"}`, false)
	return b.String()
}

// shardTestExprs are evaluated both sharded and by the plain upstream
// engine; the answers must be identical, bit for bit.
var shardTestExprs = []string{
	`sum by (instance) (rate(c[1m]))`,
	`sum by (instance) (rate(c{mode!="idle"}[1m]))`,
	`avg by (mode) (rate(c[1m]))`,
	`avg by (mode) (g)`,
	`sum by (mode) (g)`,
	`sum by (cpu, mode) (g)`,
	`sum without (cpu) (g)`,
	`sum without (cpu, instance) (g)`,
	`count by (__name__) ({job="node"})`,
	`count({job="node"})`,
	`count without (cpu) (g)`,
	`group by (mode) (g)`,
	`group(g)`,
	`count(rate(c[1m]))`,
	`sum by (__name__) ({job="node"})`,
	`max by (instance) (1 - g / g2)`,
	`min by (instance) (g) < 0.1`,
	`stddev by (instance) (g)`,
	`stdvar by (mode) (g)`,
	`quantile by (mode) (0.9, g)`,
	`topk by (instance) (2, g)`,
	`bottomk by (mode) (3, rate(c[1m]))`,
	`topk(3, g)`,
	`count_values by (mode) ("v", round(g))`,
	`rate(c[1m])`,
	`irate(c[1m]) * 2`,
	`g > 0.5`,
	`-g`,
	`abs(g) + time()`,
	`sum by (instance) (g) / sum by (instance) (g2)`,
	`sum by (instance, mode) (g) / on (instance) group_left sum by (instance) (g2)`,
	`sum by (instance) (g) and on (instance) count by (instance) (g2) > 5`,
	`g or g2`,
	`g unless g2 > 0`,
	`histogram_quantile(0.9, sum by (le, instance) (rate(h_bucket[1m])))`,
	`histogram_quantile(0.9, rate(h_bucket[1m]))`,
	`sum by (le) (rate(h_bucket[1m]))`,
	`sum by (mode) (sum by (mode, instance) (g))`,
	`sum by (mode) (sum without (instance) (g))`,
	`sum by (instance) (max_over_time(g[5m:1m]))`,
	`sum by (instance) (avg_over_time(g[2m] offset 1m))`,
	`sum by (instance) (rate({__name__=~"c|c2"}[1m]))`,
	`count(rate({__name__=~"c|c2"}[1m]))`,
	`sum by (instance) (label_replace(g, "instance", "x", "", ""))`,
	`sum(g)`,
	`quantile(0.9, g)`,
	`absent(nonexistent)`,
	`sum by (instance) (g) or vector(1)`,
	`g * scalar(g3)`,
	`sum by (instance) (g @ 300)`,
	`sum by (instance) (rate(nonexistent[1m]))`,
}

func TestShardedMatchesEngine(t *testing.T) {
	st := promqltest.LoadedStorage(t, shardTestData(7))
	opts := promql.EngineOpts{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute, EnableAtModifier: true, EnableNegativeOffset: true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() }}
	plain := promql.NewEngine(opts)
	start, end, step := time.Unix(0, 0), time.Unix(20*60, 0), 30*time.Second
	for _, shards := range []int{2, 3, 5} {
		e, err := New(Options{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute, Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		for _, qs := range shardTestExprs {
			t.Run(fmt.Sprintf("%d/%s", shards, qs), func(t *testing.T) {
				ctx := context.Background()
				want := rangeQuery(t, plain, st, qs, start, end, step)
				q, err := e.NewRangeQuery(ctx, st, nil, qs, start, end, step)
				if err != nil {
					t.Fatal(err)
				}
				expr, _ := e.Parser.ParseExpr(qs)
				_, shardable := planShards(expr)
				sharded := isSharded(q)
				if sharded != shardable {
					t.Fatalf("sharded %v, planned %v", sharded, shardable)
				}
				got := q.Exec(ctx)
				defer q.Close()
				compareResults(t, want, got)
			})
		}
	}
}

func rangeQuery(t *testing.T, e *promql.Engine, st storage.Queryable, qs string, start, end time.Time, step time.Duration) *promql.Result {
	t.Helper()
	q, err := e.NewRangeQuery(context.Background(), st, nil, qs, start, end, step)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q.Exec(context.Background())
}

// compareResults fails unless got is want, floats compared bit for bit.
func compareResults(t *testing.T, want, got *promql.Result) {
	t.Helper()
	if (want.Err == nil) != (got.Err == nil) || want.Err != nil && want.Err.Error() != got.Err.Error() {
		t.Fatalf("error %v, want %v", got.Err, want.Err)
	}
	if ws, gs := slices.Sorted(maps.Keys(want.Warnings)), slices.Sorted(maps.Keys(got.Warnings)); !slices.Equal(ws, gs) {
		t.Fatalf("annotations\n%q\nwant\n%q", gs, ws)
	}
	if want.Err != nil {
		return
	}
	wm, gm := want.Value.(promql.Matrix), got.Value.(promql.Matrix)
	if len(wm) != len(gm) {
		t.Fatalf("%d series, want %d", len(gm), len(wm))
	}
	for i := range wm {
		if !labels.Equal(wm[i].Metric, gm[i].Metric) {
			t.Fatalf("series %d: %s, want %s", i, gm[i].Metric, wm[i].Metric)
		}
		if len(wm[i].Floats) != len(gm[i].Floats) || len(wm[i].Histograms) != len(gm[i].Histograms) {
			t.Fatalf("series %s: %d/%d points, want %d/%d", wm[i].Metric, len(gm[i].Floats), len(gm[i].Histograms), len(wm[i].Floats), len(wm[i].Histograms))
		}
		for j, p := range wm[i].Floats {
			g := gm[i].Floats[j]
			if p.T != g.T || math.Float64bits(p.F) != math.Float64bits(g.F) {
				t.Fatalf("series %s point %d: %v@%d, want %v@%d", wm[i].Metric, j, g.F, g.T, p.F, p.T)
			}
		}
	}
}

// TestShardTestDataIsOrderSensitive shows that the test data tells float
// summation orders apart: a sum of partial sums (what sharding a sum by
// series would compute) differs from the sum in the engine's order.
func TestShardTestDataIsOrderSensitive(t *testing.T) {
	st := promqltest.LoadedStorage(t, shardTestData(7))
	e := promql.NewEngine(promql.EngineOpts{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute})
	start, end, step := time.Unix(0, 0), time.Unix(20*60, 0), 30*time.Second
	whole := rangeQuery(t, e, st, `sum by (mode) (g)`, start, end, step).Value.(promql.Matrix)
	parts := rangeQuery(t, e, st, `sum by (mode) (sum by (mode, cpu) (g))`, start, end, step).Value.(promql.Matrix)
	differ := 0
	for i := range whole {
		for j, p := range whole[i].Floats {
			if math.Float64bits(p.F) != math.Float64bits(parts[i].Floats[j].F) {
				differ++
			}
		}
	}
	if differ == 0 {
		t.Fatal("a sum of partial sums equals the sum at every point: the data cannot tell summation orders apart")
	}
	t.Logf("%d points differ", differ)
}

// TestShardedHeadChunks evaluates sharded queries over a TSDB head whose
// series have several in-memory chunks, which TSDB's head chunk reader
// caches per reader: the parts must not share a reader.
func TestShardedHeadChunks(t *testing.T) {
	var b strings.Builder
	b.WriteString("load 15s\n")
	for inst := range 20 {
		for cpu := range 10 {
			fmt.Fprintf(&b, "  c{instance=\"i%d\",cpu=\"%d\"} 0+%dx600\n", inst, cpu, 1+inst*cpu)
		}
	}
	st := promqltest.LoadedStorage(t, b.String())
	plain := promql.NewEngine(promql.EngineOpts{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute})
	e, err := New(Options{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute, Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	start, end, step := time.Unix(0, 0), time.Unix(150*60, 0), time.Minute
	for _, qs := range []string{`sum by (instance) (rate(c[5m]))`, `count by (cpu) (c)`, `rate(c[5m])`} {
		t.Run(qs, func(t *testing.T) {
			want := rangeQuery(t, plain, st, qs, start, end, step)
			q, err := e.NewRangeQuery(context.Background(), st, nil, qs, start, end, step)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if !isSharded(q) {
				t.Fatal("not sharded")
			}
			compareResults(t, want, q.Exec(context.Background()))
		})
	}
}

// isSharded reports whether q is evaluated in parts.
func isSharded(q promql.Query) bool {
	inner := q.(resQuery).Query
	if f, ok := inner.(*fallbackQuery); ok {
		inner = f.Query
	}
	_, ok := inner.(*shardedQuery)
	return ok
}
