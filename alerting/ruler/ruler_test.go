package ruler

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
)

func TestParseRuleFile(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, tc := range []struct {
		name      string
		file      string
		anomalies int
		err       string
	}{
		{"prometheus only", "groups: [{name: g, rules: [{record: a:b, expr: up}]}]", 0, ""},
		{"mixed", `groups:
  - name: g
    rules:
      - anomaly: node:cpu
        expr: rate(x[5m])
        detector: seasonal
        params: {season: 1w, k: 3}
      - alert: A
        expr: node:cpu:anomaly_score > 1
        for: 5m
`, 1, ""},
		{"only anomaly rules", "groups: [{name: g, rules: [{anomaly: a, expr: up}]}]", 1, ""},
		{"unknown detector", "groups: [{name: g, rules: [{anomaly: a, expr: up, detector: x}]}]", 0, "unknown detector"},
		{"bad parameter", "groups: [{name: g, rules: [{anomaly: a, expr: up, params: {nope: 1}}]}]", 0, "no parameter"},
		{"bad expression", "groups: [{name: g, rules: [{anomaly: a, expr: 'up{'}]}]", 0, "expr"},
		{"range vector", "groups: [{name: g, rules: [{anomaly: a, expr: 'up[5m]'}]}]", 0, "instant vector"},
		{"unknown field", "groups: [{name: g, rules: [{anomaly: a, expr: up, for: 5m}]}]", 0, "unknown field"},
		{"repeated", "groups: [{name: g, rules: [{anomaly: a, expr: up}, {anomaly: a, expr: up}]}]", 0, "repeated"},
		{"bad label", "groups: [{name: g, rules: [{anomaly: a, expr: up, labels: {__name__: x}}]}]", 0, "label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.yml")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			pf, err := parseRuleFile(path, p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := len(pf.anomalies["g"]); n != tc.anomalies {
				t.Errorf("%d anomaly rules, want %d", n, tc.anomalies)
			}
			// What remains must be a valid Prometheus rule file.
			rgs, errs := (fileLoader{parser: p, logger: nil}).Load(path, false, model.UTF8Validation)
			if len(errs) > 0 {
				t.Fatalf("Prometheus part invalid: %v", errs)
			}
			if len(rgs.Groups) != 1 {
				t.Errorf("groups = %d", len(rgs.Groups))
			}
		})
	}
}

// recordingAppender records appended float samples.
type recordingAppender struct {
	samples map[string][]float64
}

func (a *recordingAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, _ int64, v float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	a.samples[ls.String()] = append(a.samples[ls.String()], v)
	return 0, nil
}
func (a *recordingAppender) Commit() error   { return nil }
func (a *recordingAppender) Rollback() error { return nil }

func TestAnomalyRuleEval(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	path := filepath.Join(t.TempDir(), "r.yml")
	_ = os.WriteFile(path, []byte("groups: [{name: g, rules: [{anomaly: cpu, expr: x, detector: adaptive, params: {warmup: 3, half_life: 1h}, labels: {team: a}}]}]"), 0o644)
	pf, err := parseRuleFile(path, p)
	if err != nil {
		t.Fatal(err)
	}
	r := newAnomalyRule(pf.anomalies["g"][0])
	series := labels.FromStrings("__name__", "x", "instance", "h1")
	current := map[string]float64{"h1": 10}
	query := func(_ context.Context, _ string, ts time.Time) (promql.Vector, error) {
		var v promql.Vector
		for inst, f := range current {
			v = append(v, promql.Sample{Metric: labels.FromStrings("__name__", "x", "instance", inst), T: ts.UnixMilli(), F: f})
		}
		return v, nil
	}
	historyCalls := 0
	history := func(_ context.Context, _ string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
		historyCalls++
		s := promql.Series{Metric: series}
		for ts := start; !ts.After(end); ts = ts.Add(step) {
			s.Floats = append(s.Floats, promql.FPoint{T: ts.UnixMilli(), F: 10 + float64(ts.Unix()%2)})
		}
		return promql.Matrix{s}, nil
	}
	app := &recordingAppender{samples: map[string][]float64{}}
	ts := time.Unix(100000, 0)
	if _, err := r.eval(context.Background(), ts, time.Minute, query, history, app, nil); err != nil {
		t.Fatal(err)
	}
	if historyCalls != 1 {
		t.Errorf("history read %d times, want once for the new series", historyCalls)
	}
	score := `{__name__="cpu:anomaly_score", instance="h1", team="a"}`
	if len(app.samples[score]) != 1 || len(app.samples[`{__name__="cpu:upper", instance="h1", team="a"}`]) != 1 {
		t.Fatalf("after warm-up the first evaluation writes score and band: %v", app.samples)
	}
	// A spike scores above 1; the series then disappears and gets a staleness marker.
	current["h1"] = 1000
	_, _ = r.eval(context.Background(), ts.Add(time.Minute), time.Minute, query, history, app, nil)
	if s := app.samples[score]; s[len(s)-1] <= 1 {
		t.Errorf("spike scored %v, want > 1", s[len(s)-1])
	}
	delete(current, "h1")
	_, _ = r.eval(context.Background(), ts.Add(2*time.Minute), time.Minute, query, history, app, nil)
	if s := app.samples[score]; !value.IsStaleNaN(s[len(s)-1]) {
		t.Errorf("gone series ended with %v, want a staleness marker", s[len(s)-1])
	}
	if historyCalls != 1 || math.IsNaN(0) {
		t.Errorf("history read again: %d", historyCalls)
	}
}
