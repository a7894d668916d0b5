package ruler

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/tsdb"
)

// BenchmarkAnomalyRuleEval measures one evaluation of an anomaly rule with
// the default detector over 100k series, as the ruler runs it: an instant
// PromQL query on a TSDB head, one detector step per series, and the
// score and band appended to the same head and committed. The series are
// warm (70 one-minute samples each, detectors past their warm-up). Writing
// each evaluation's new input samples is outside the timing.
// cpu-share@1m is the share of one core the rule takes at a one-minute
// evaluation interval.
func BenchmarkAnomalyRuleEval(b *testing.B) {
	const series = 100_000
	const minute = int64(60_000)
	db, err := tsdb.Open(b.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	engine := promql.NewEngine(promql.EngineOpts{Timeout: time.Minute, MaxSamples: 1e9, LookbackDelta: 5 * time.Minute})
	query := rules.EngineQueryFunc(engine, db)
	history := func(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
		q, err := engine.NewRangeQuery(ctx, db, nil, expr, start, end, step)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		res := q.Exec(ctx)
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Matrix()
	}
	lsets := make([]labels.Labels, series)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "node_load", "instance", fmt.Sprintf("host-%06d", i), "job", "node")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Minute).UnixMilli()
	write := func(ts int64) {
		app := db.Appender(context.Background())
		for i, ls := range lsets {
			v := 10 + float64(i%50) + 3*math.Sin(float64(ts)/3.6e6) + rng.NormFloat64()
			if _, err := app.Append(0, ls, ts, v); err != nil {
				b.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "r.yml")
	if err := os.WriteFile(path, []byte("groups: [{name: g, rules: [{anomaly: load, expr: node_load}]}]"), 0o644); err != nil {
		b.Fatal(err)
	}
	pf, err := parseRuleFile(path, parser.NewParser(parser.Options{}))
	if err != nil {
		b.Fatal(err)
	}
	r := newAnomalyRule(pf.anomalies["g"][0])
	eval := func(ts int64) int {
		app := db.AppenderV2(context.Background())
		n, err := r.eval(context.Background(), time.UnixMilli(ts), time.Minute, query, history, app, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
		return n
	}
	// 70 minutes of input, then a first evaluation that warms every
	// detector from that history.
	ts := t0
	for ; ts < t0+70*minute; ts += minute {
		write(ts)
	}
	eval(ts - minute)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		write(ts)
		b.StartTimer()
		if n := eval(ts); n != 3*series {
			b.Fatalf("evaluation wrote %d series, want %d", n, 3*series)
		}
		ts += minute
	}
	perEval := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perEval, "s/eval")
	b.ReportMetric(perEval/60, "cpu-share@1m")
}
