package ruler

import (
	"context"
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

// TestAnomalyRuleSimulatedWeek runs an anomaly rule with the default
// detector every minute over a simulated week of a daily request-rate metric
// in a real TSDB, through the real PromQL engine: the series without an
// incident never scores above 1; each series with one (a spike, a level
// shift, a value stuck while the day moves on) scores above 1 soon after
// it starts, and not before.
func TestAnomalyRuleSimulatedWeek(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates a rule 10k times")
	}
	const minute = int64(60_000)
	const days = 7
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	engine := promql.NewEngine(promql.EngineOpts{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute})
	query := rules.EngineQueryFunc(engine, db)
	history := func(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
		q, err := engine.NewRangeQuery(ctx, db, nil, expr, start, end, step)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		res := q.Exec(ctx)
		return res.Matrix()
	}

	// Timestamps a few seconds off the minute, as a scrape's are.
	t0 := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC).UnixMilli() + 7_300
	n := days * 1440
	incident := 6*1440 + 10*60 // day 7, 10:00
	rng := rand.New(rand.NewPCG(3, 4))
	normal := make([]float64, n)
	for i := range normal {
		day := float64(i%1440) / 1440
		normal[i] = 200 - 120*math.Cos(2*math.Pi*day) + 8*rng.NormFloat64()
	}
	kinds := []struct {
		instance string
		value    func(i int) float64
		within   int // minutes after the incident by which the score must pass 1
	}{
		{"control", func(i int) float64 { return normal[i] }, 0},
		{"spike", func(i int) float64 {
			if i == incident || i == incident+1 {
				return normal[i] + 250
			}
			return normal[i]
		}, 2},
		{"shift", func(i int) float64 {
			if i >= incident {
				return normal[i] + 120
			}
			return normal[i]
		}, 10},
		{"stuck", func(i int) float64 { return normal[min(i, incident)] }, 6 * 60},
	}
	path := filepath.Join(t.TempDir(), "r.yml")
	if err := os.WriteFile(path, []byte("groups: [{name: g, interval: 1m, rules: [{anomaly: requests, expr: http_requests_rate}]}]"), 0o644); err != nil {
		t.Fatal(err)
	}
	pf, err := parseRuleFile(path, parser.NewParser(parser.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	r := newAnomalyRule(pf.anomalies["g"][0])
	// Each minute a sample arrives; from day 2 on, the rule evaluates on
	// the minute after it (its first evaluation reads the day before as
	// history), as a group would.
	evalStart := t0 + 1440*minute
	for i := range n {
		ts := t0 + int64(i)*minute
		app := db.Appender(context.Background())
		for _, k := range kinds {
			ls := labels.FromStrings("__name__", "http_requests_rate", "instance", k.instance)
			if _, err := app.Append(0, ls, ts, k.value(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if ts < evalStart {
			continue
		}
		out := db.AppenderV2(context.Background())
		if _, err := r.eval(context.Background(), time.UnixMilli(ts/minute*minute+minute), time.Minute, query, history, out, nil); err != nil {
			t.Fatal(err)
		}
		if err := out.Commit(); err != nil {
			t.Fatal(err)
		}
	}

	// Read the scores back from the store.
	q, err := engine.NewRangeQuery(context.Background(), db, nil, `requests:anomaly_score > 1`,
		time.UnixMilli(evalStart), time.UnixMilli(t0+int64(n)*minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	res := q.Exec(context.Background())
	m, err := res.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]int64{}
	for _, s := range m {
		first[s.Metric.Get("instance")] = s.Floats[0].T
	}
	incidentTs := t0 + int64(incident)*minute
	for _, k := range kinds {
		ft, fired := first[k.instance]
		switch {
		case k.within == 0 && fired:
			t.Errorf("%s: scored above 1 at %s, want never", k.instance, time.UnixMilli(ft).UTC())
		case k.within == 0:
		case !fired:
			t.Errorf("%s: never scored above 1, want within %d minutes of the incident", k.instance, k.within)
		case ft < incidentTs:
			t.Errorf("%s: scored above 1 at %s, before the incident at %s", k.instance, time.UnixMilli(ft).UTC(), time.UnixMilli(incidentTs).UTC())
		case ft > incidentTs+int64(k.within)*minute:
			t.Errorf("%s: first scored above 1 %d minutes after the incident, want within %d", k.instance, (ft-incidentTs)/minute, k.within)
		}
	}
}
