package strata_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/grafana-plugin/pkg/internal/stratatest"
	"github.com/strata-tsdb/strata/grafana-plugin/pkg/strata"
)

const tenant = "team-a"

// rules are the tenant's rule file: an alert that fires at once, one that
// stays pending, one the test switches on and off, and an anomaly rule.
const rules = `groups:
  - name: plugin-test
    interval: 1s
    rules:
      - anomaly: test:latency
        expr: test_latency
        detector: static
        params: {upper: 150, lower: 50}
      - alert: HotRoom
        expr: test_temperature > 25
        labels: {severity: critical}
        annotations: {summary: "Room {{ $labels.room }} is hot"}
      - alert: WarmRoom
        expr: test_temperature > 15
        for: 1h
        labels: {severity: info}
      - alert: FlagUp
        expr: test_flag > 0
        labels: {severity: warning}
`

// fixture is a Strata that requires a tenant and holds known data of tenant
// team-a, written at 15s intervals over the 30 minutes before now:
//   - test_temperature{room="a"} = 20, {room="b"} = 30 (gauge, with metadata);
//   - test_requests_total{job="api"} growing by 15 per sample (rate 1/s);
//   - test_latency{svc="checkout"} = 100 + 5·sin(i), except 1000 at spikeAt.
type fixture struct {
	strata  *stratatest.Server
	now     time.Time
	spikeAt time.Time
}

func setup(t *testing.T) *fixture {
	if testing.Short() {
		t.Skip("starts a real Strata; not run with -short")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, tenant), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tenant, "rules.yml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := stratatest.Start(t, stratatest.Options{TenantRulesDir: dir, Args: []string{"-tenant.require-header"}})
	// Samples on multiples of 15s, as the steps of 15s queries are: each
	// evaluation then sees the sample of its own timestamp.
	f := &fixture{strata: srv, now: time.Now().Truncate(15 * time.Second)}
	f.spikeAt = f.now.Add(-10 * time.Minute)
	var temp, reqs, lat []stratatest.Sample
	var tempB []stratatest.Sample
	for i := 0; i <= 120; i++ {
		ts := f.now.Add(time.Duration(i-120) * 15 * time.Second)
		temp = append(temp, stratatest.Sample{T: ts, V: 20})
		tempB = append(tempB, stratatest.Sample{T: ts, V: 30})
		reqs = append(reqs, stratatest.Sample{T: ts, V: float64(15 * i)})
		v := 100 + 5*math.Sin(float64(i))
		if ts.Equal(f.spikeAt) {
			v = 1000
		}
		lat = append(lat, stratatest.Sample{T: ts, V: v})
	}
	srv.WriteMetadata(t, tenant, "test_temperature", prompb.MetricMetadata_GAUGE, "Room temperature in °C.")
	srv.Write(t, tenant,
		stratatest.Series{Labels: map[string]string{"__name__": "test_temperature", "room": "a"}, Samples: temp},
		stratatest.Series{Labels: map[string]string{"__name__": "test_temperature", "room": "b"}, Samples: tempB},
		stratatest.Series{Labels: map[string]string{"__name__": "test_requests_total", "job": "api"}, Samples: reqs},
		stratatest.Series{Labels: map[string]string{"__name__": "test_latency", "svc": "checkout"}, Samples: lat},
	)
	return f
}

// settings are instance settings of a data source.
func settings(t *testing.T, rawURL string, jsonData map[string]any, secure map[string]string) backend.DataSourceInstanceSettings {
	t.Helper()
	js, err := json.Marshal(jsonData)
	if err != nil {
		t.Fatal(err)
	}
	return backend.DataSourceInstanceSettings{UID: "strata", Name: "Strata", URL: rawURL, JSONData: js, DecryptedSecureJSONData: secure}
}

func newDatasource(t *testing.T, s backend.DataSourceInstanceSettings) *strata.Datasource {
	t.Helper()
	inst, err := strata.NewDatasource(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return inst.(*strata.Datasource)
}

func (f *fixture) datasource(t *testing.T) *strata.Datasource {
	return newDatasource(t, settings(t, f.strata.URL, map[string]any{"tenant": tenant}, nil))
}

// query runs one query of model over [from, to] with Grafana's interval.
func query(t *testing.T, ds *strata.Datasource, model map[string]any, from, to time.Time, interval time.Duration) backend.DataResponse {
	t.Helper()
	js, err := json.Marshal(model)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{
		Queries: []backend.DataQuery{{RefID: "A", JSON: js, Interval: interval, MaxDataPoints: 1000,
			TimeRange: backend.TimeRange{From: from, To: to}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Responses["A"]
}

func frameNames(frames data.Frames) []string {
	var out []string
	for _, f := range frames {
		out = append(out, f.Name)
	}
	return out
}

func floats(t *testing.T, f *data.Frame) []float64 {
	t.Helper()
	if len(f.Fields) != 2 {
		t.Fatalf("frame %q has %d fields, want 2", f.Name, len(f.Fields))
	}
	out := make([]float64, f.Fields[1].Len())
	for i := range out {
		out[i] = f.Fields[1].At(i).(float64)
	}
	return out
}

func TestAgainstStrata(t *testing.T) {
	f := setup(t)
	t.Run("PromQL", f.testPromQL)
	t.Run("Anomaly", f.testAnomaly)
	t.Run("Alerts", f.testAlerts)
	t.Run("Health", f.testHealth)
	t.Run("Resources", f.testResources)
}

func (f *fixture) testPromQL(t *testing.T) {
	ds := f.datasource(t)
	from, to := f.now.Add(-20*time.Minute), f.now
	tests := []struct {
		name      string
		model     map[string]any
		interval  time.Duration
		names     []string
		values    map[string]float64 // every value of the named frame
		stepMs    float64
		executed  string
		wantError string
	}{{
		name:     "range, default legend",
		model:    map[string]any{"queryType": "promql", "expr": "test_temperature"},
		interval: 15 * time.Second,
		names:    []string{`test_temperature{room="a"}`, `test_temperature{room="b"}`},
		values:   map[string]float64{`test_temperature{room="a"}`: 20, `test_temperature{room="b"}`: 30},
		stepMs:   15000,
	}, {
		name:     "legend format",
		model:    map[string]any{"expr": "test_temperature", "legendFormat": "room {{room}} ({{ __name__ }})"},
		interval: 15 * time.Second,
		names:    []string{"room a (test_temperature)", "room b (test_temperature)"},
	}, {
		name:     "no labels takes the expression",
		model:    map[string]any{"expr": "sum(test_temperature)"},
		interval: 30 * time.Second,
		names:    []string{"sum(test_temperature)"},
		values:   map[string]float64{"sum(test_temperature)": 50},
		stepMs:   30000,
	}, {
		name:     "rate interval",
		model:    map[string]any{"expr": "rate(test_requests_total[$__rate_interval])", "legendFormat": "{{job}}"},
		interval: 15 * time.Second,
		names:    []string{"api"},
		values:   map[string]float64{"api": 1},
		executed: "rate(test_requests_total[1m])",
	}, {
		name:     "interval variable",
		model:    map[string]any{"expr": `count_over_time(test_temperature{room="a"}[$__interval])`, "legendFormat": "{{room}}"},
		interval: time.Minute,
		names:    []string{"a"},
		values:   map[string]float64{"a": 4},
		stepMs:   60000,
		executed: "[1m]",
	}, {
		name:     "min step wins over a smaller interval",
		model:    map[string]any{"expr": `test_temperature{room="a"}`, "interval": "2m"},
		interval: 15 * time.Second,
		names:    []string{`test_temperature{room="a"}`},
		stepMs:   120000,
	}, {
		name:     "instant",
		model:    map[string]any{"expr": "sum by (room) (test_temperature)", "instant": true, "legendFormat": "{{room}}"},
		interval: 15 * time.Second,
		names:    []string{"a", "b"},
		values:   map[string]float64{"a": 20, "b": 30},
		executed: "Type: instant",
	}, {
		name:     "no series",
		model:    map[string]any{"expr": "no_such_metric"},
		interval: 15 * time.Second,
		names:    []string{""},
	}, {
		name:      "bad PromQL",
		model:     map[string]any{"expr": "sum(test_temperature"},
		interval:  15 * time.Second,
		wantError: "parse error",
	}, {
		name:      "empty expression",
		model:     map[string]any{"expr": " "},
		wantError: "expression is empty",
	}, {
		name:      "unknown query type",
		model:     map[string]any{"queryType": "sql", "expr": "up"},
		wantError: "unknown queryType",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := query(t, ds, tc.model, from, to, tc.interval)
			if tc.wantError != "" {
				if r.Error == nil || !strings.Contains(r.Error.Error(), tc.wantError) {
					t.Fatalf("error = %v, want one containing %q", r.Error, tc.wantError)
				}
				if r.Status != backend.StatusBadRequest {
					t.Errorf("status = %d, want 400", r.Status)
				}
				return
			}
			if r.Error != nil {
				t.Fatal(r.Error)
			}
			if got := frameNames(r.Frames); !slices.Equal(got, tc.names) {
				t.Fatalf("frame names = %q, want %q", got, tc.names)
			}
			for _, fr := range r.Frames {
				if fr.Meta == nil || fr.Meta.Type != data.FrameTypeTimeSeriesMulti {
					t.Errorf("frame %q meta = %+v, want type timeseries-multi", fr.Name, fr.Meta)
				}
				wantType := "matrix"
				if tc.model["instant"] == true {
					wantType = "vector"
				}
				if got := fr.Meta.Custom.(map[string]string)["resultType"]; got != wantType {
					t.Errorf("frame %q result type %q, want %q", fr.Name, got, wantType)
				}
				if fr.RefID != "A" {
					t.Errorf("frame %q refId = %q", fr.Name, fr.RefID)
				}
				if fr.Name == "" {
					continue
				}
				if fr.Fields[0].Name != "Time" || fr.Fields[1].Name != "Value" {
					t.Errorf("fields = %s, %s; want Time, Value", fr.Fields[0].Name, fr.Fields[1].Name)
				}
				if got := fr.Fields[1].Config.DisplayNameFromDS; got != fr.Name {
					t.Errorf("display name = %q, want %q", got, fr.Name)
				}
				if tc.stepMs != 0 && fr.Fields[0].Config.Interval != tc.stepMs {
					t.Errorf("time field interval = %v ms, want %v", fr.Fields[0].Config.Interval, tc.stepMs)
				}
				if want, ok := tc.values[fr.Name]; ok {
					vs := floats(t, fr)
					if len(vs) == 0 {
						t.Fatalf("frame %q has no values", fr.Name)
					}
					for i, v := range vs {
						if math.Abs(v-want) > 1e-9 {
							t.Fatalf("frame %q value %d = %v, want %v", fr.Name, i, v, want)
						}
					}
				}
			}
			if len(r.Frames) > 0 && r.Frames[0].Fields != nil && len(r.Frames[0].Fields) == 2 {
				if got := r.Frames[0].Fields[1].Labels["__name__"]; tc.name == "range, default legend" && got != "test_temperature" {
					t.Errorf("labels of the value field lack __name__: %v", r.Frames[0].Fields[1].Labels)
				}
			}
			if tc.executed != "" && !strings.Contains(r.Frames[0].Meta.ExecutedQueryString, tc.executed) {
				t.Errorf("executed query %q does not contain %q", r.Frames[0].Meta.ExecutedQueryString, tc.executed)
			}
		})
	}

	t.Run("range and instant together", func(t *testing.T) {
		r := query(t, ds, map[string]any{"expr": `test_temperature{room="b"}`, "instant": true, "range": true}, from, to, 15*time.Second)
		if r.Error != nil {
			t.Fatal(r.Error)
		}
		if len(r.Frames) != 2 || r.Frames[0].Rows() < 60 || r.Frames[1].Rows() != 1 {
			t.Fatalf("want a range frame and a one-row instant frame, got %d frames", len(r.Frames))
		}
	})
}

func (f *fixture) testAnomaly(t *testing.T) {
	ds := f.datasource(t)
	from, to := f.now.Add(-20*time.Minute), f.now
	base := `test_latency{svc="checkout"}`

	t.Run("static band", func(t *testing.T) {
		r := query(t, ds, map[string]any{"queryType": "anomaly", "expr": "test_latency", "detector": "static",
			"params": map[string]any{"upper": 150, "lower": 50}}, from, to, 15*time.Second)
		if r.Error != nil {
			t.Fatal(r.Error)
		}
		want := []string{base, base + " upper", base + " lower", base + " score"}
		if got := frameNames(r.Frames); !slices.Equal(got, want) {
			t.Fatalf("frames = %q, want %q", got, want)
		}
		for i, edge := range []float64{150, 50} {
			for _, v := range floats(t, r.Frames[i+1]) {
				if v != edge {
					t.Fatalf("%s = %v, want %v", r.Frames[i+1].Name, v, edge)
				}
			}
		}
		upper := r.Frames[1].Fields[1].Config.Custom
		if upper["fillBelowTo"] != base+" lower" {
			t.Errorf("upper field config = %v, want fillBelowTo the lower edge", upper)
		}
		if r.Frames[2].Fields[1].Labels["anomaly"] != "lower" {
			t.Errorf("lower labels = %v", r.Frames[2].Fields[1].Labels)
		}
		score := r.Frames[3]
		found := false
		for i := 0; i < score.Rows(); i++ {
			ts := score.Fields[0].At(i).(time.Time)
			v := score.Fields[1].At(i).(float64)
			switch {
			case ts.Equal(f.spikeAt):
				found = true
				if math.Abs(v-18) > 1e-9 { // (1000-100)/50
					t.Errorf("score at the spike = %v, want 18", v)
				}
			case v > 0.11: // |5·sin|/50 ≤ 0.1 elsewhere
				t.Errorf("score at %s = %v, want ≤ 0.1", ts, v)
			}
		}
		if !found {
			t.Errorf("no score at the spike %s", f.spikeAt)
		}
	})

	t.Run("adaptive detector finds the spike", func(t *testing.T) {
		r := query(t, ds, map[string]any{"queryType": "anomaly", "expr": "test_latency", "detector": "adaptive",
			"params": map[string]any{"k": "3", "warmup": 10}, "legendFormat": "{{svc}}"}, from, to, 15*time.Second)
		if r.Error != nil {
			t.Fatal(r.Error)
		}
		var score *data.Frame
		for _, fr := range r.Frames {
			if fr.Name == "checkout score" {
				score = fr
			}
		}
		if score == nil {
			t.Fatalf("no score frame in %q", frameNames(r.Frames))
		}
		best, bestAt := 0.0, time.Time{}
		for i := 0; i < score.Rows(); i++ {
			if v := score.Fields[1].At(i).(float64); v > best {
				best, bestAt = v, score.Fields[0].At(i).(time.Time)
			}
		}
		if best <= 1 || !bestAt.Equal(f.spikeAt) {
			t.Errorf("highest score %v at %s, want > 1 at the spike %s", best, bestAt, f.spikeAt)
		}
	})

	t.Run("band drawn by the anomaly rule", func(t *testing.T) {
		// The rule writes test:latency:upper every second; wait for one.
		var r backend.DataResponse
		if !stratatest.Wait(30*time.Second, func() bool {
			r = query(t, ds, map[string]any{"expr": "test:latency:upper", "instant": true}, from, time.Now(), 15*time.Second)
			return r.Error == nil && len(r.Frames) == 1 && r.Frames[0].Name != ""
		}) {
			t.Fatalf("no test:latency:upper series after 30s (last: %v, %q)", r.Error, frameNames(r.Frames))
		}
		if v := floats(t, r.Frames[0]); v[0] != 150 {
			t.Fatalf("test:latency:upper = %v, want 150", v)
		}
	})

	for _, tc := range []struct{ name, detector, want string }{
		{"unknown detector", "prophet", "prophet"},
		{"static without thresholds", "static", "upper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := query(t, ds, map[string]any{"queryType": "anomaly", "expr": "test_latency", "detector": tc.detector}, from, to, 15*time.Second)
			if r.Error == nil || !strings.Contains(r.Error.Error(), tc.want) || r.Status != backend.StatusBadRequest {
				t.Fatalf("error = %v (status %d), want a 400 naming %q", r.Error, r.Status, tc.want)
			}
		})
	}
}

// waitAlert waits until alertname is (or, with active false, is no longer)
// among Strata's active alerts in state.
func (f *fixture) waitAlert(t *testing.T, alertname, state string, active bool) {
	t.Helper()
	stratatest.Eventually(t, 30*time.Second, fmt.Sprintf("alert %s %s active=%v", alertname, state, active), func() bool {
		req, _ := http.NewRequest(http.MethodGet, f.strata.URL+"/api/v1/alerts", nil)
		req.Header.Set("X-Scope-OrgID", tenant)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range body.Data.Alerts {
			found = found || a.Labels["alertname"] == alertname && a.State == state
		}
		return found == active
	})
}

func (f *fixture) testAlerts(t *testing.T) {
	ds := f.datasource(t)
	// FlagUp fires, then resolves.
	f.strata.Write(t, tenant, stratatest.Series{Labels: map[string]string{"__name__": "test_flag"},
		Samples: []stratatest.Sample{{T: time.Now(), V: 1}}})
	f.waitAlert(t, "FlagUp", "firing", true)
	// FlagUp's firing stretch in its ALERTS series: two evaluations.
	stratatest.Eventually(t, 30*time.Second, `two samples of ALERTS{alertname="FlagUp",alertstate="firing"}`, func() bool {
		r := query(t, ds, map[string]any{"expr": `count_over_time(ALERTS{alertname="FlagUp",alertstate="firing"}[1m])`, "instant": true}, f.now.Add(-time.Hour), time.Now(), time.Second)
		return r.Error == nil && len(r.Frames) == 1 && len(r.Frames[0].Fields) == 2 && floats(t, r.Frames[0])[0] >= 2
	})
	f.strata.Write(t, tenant, stratatest.Series{Labels: map[string]string{"__name__": "test_flag"},
		Samples: []stratatest.Sample{{T: time.Now(), V: 0}}})
	f.waitAlert(t, "FlagUp", "firing", false)
	f.waitAlert(t, "HotRoom", "firing", true)

	type row struct{ title, state, tags, text string }
	run := func(t *testing.T, model map[string]any) ([]row, backend.DataResponse) {
		model["queryType"] = "alerts"
		r := query(t, ds, model, f.now.Add(-time.Hour), time.Now(), time.Second)
		if r.Error != nil {
			return nil, r
		}
		if len(r.Frames) != 1 {
			t.Fatalf("%d frames, want 1", len(r.Frames))
		}
		fr := r.Frames[0]
		var rows []row
		for i := 0; i < fr.Rows(); i++ {
			get := func(name string) string {
				fld, _ := fr.FieldByName(name)
				return fld.At(i).(string)
			}
			start, _ := fr.FieldByName("time")
			end, _ := fr.FieldByName("timeEnd")
			if end.At(i).(time.Time).Before(start.At(i).(time.Time)) {
				t.Errorf("row %d ends before it starts", i)
			}
			rows = append(rows, row{get("title"), get("state"), get("tags"), get("text")})
		}
		return rows, r
	}
	titles := func(rows []row) []string {
		var out []string
		for _, r := range rows {
			out = append(out, r.title)
		}
		slices.Sort(out)
		return out
	}

	// FlagUp's firing stretch reads as resolved once it ended more than a
	// step and a half (1.5s) before the query's end: wait for that rather
	// than a fixed time; the cases below check every row.
	stratatest.Eventually(t, 30*time.Second, "the alerts query to show FlagUp resolved", func() bool {
		rows, r := run(t, map[string]any{"states": []string{"resolved"}})
		return r.Error == nil && slices.Contains(titles(rows), "FlagUp resolved")
	})

	tests := []struct {
		name   string
		model  map[string]any
		titles []string
		check  func(t *testing.T, rows []row)
	}{{
		name:   "all states",
		model:  map[string]any{},
		titles: []string{"FlagUp resolved", "HotRoom firing", "WarmRoom pending", "WarmRoom pending"},
		check: func(t *testing.T, rows []row) {
			for _, r := range rows {
				if r.title == "HotRoom firing" {
					if !strings.Contains(r.text, "Room b is hot") || !strings.Contains(r.text, "Rule: test_temperature > 25") {
						t.Errorf("HotRoom text = %q, want the summary and the rule", r.text)
					}
					if r.tags != "firing,HotRoom,room=b,severity=critical" {
						t.Errorf("HotRoom tags = %q", r.tags)
					}
				}
			}
		},
	}, {
		name:   "firing only",
		model:  map[string]any{"states": []string{"firing"}},
		titles: []string{"HotRoom firing"},
	}, {
		name:   "resolved only",
		model:  map[string]any{"states": []string{"resolved"}},
		titles: []string{"FlagUp resolved"},
	}, {
		name:   "alert name regex and matchers",
		model:  map[string]any{"alertName": "Warm.*|Hot.*", "matchers": `{room="a"}`},
		titles: []string{"WarmRoom pending"},
	}, {
		name:   "matchers only",
		model:  map[string]any{"matchers": `{severity=~"crit.*"}`},
		titles: []string{"HotRoom firing"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, r := run(t, tc.model)
			if r.Error != nil {
				t.Fatal(r.Error)
			}
			if got := titles(rows); !slices.Equal(got, tc.titles) {
				t.Fatalf("annotations %q, want %q", got, tc.titles)
			}
			if tc.check != nil {
				tc.check(t, rows)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		model map[string]any
		want  string
	}{
		{"bad matchers", map[string]any{"matchers": `{severity=}`}, "parse error"},
		{"matchers without braces", map[string]any{"matchers": `severity="x"`}, "braces"},
		{"bad regex", map[string]any{"alertName": "("}, "regular expression"},
		{"bad state", map[string]any{"states": []string{"burning"}}, "unknown alert state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r := run(t, tc.model)
			if r.Error == nil || !strings.Contains(r.Error.Error(), tc.want) || r.Status != backend.StatusBadRequest {
				t.Fatalf("error = %v (status %d), want a 400 containing %q", r.Error, r.Status, tc.want)
			}
		})
	}
}

// authStrata starts a second Strata that authenticates its tenants with
// an authentication file (-tenant.auth-file): tenant team-a by the basic-auth
// user grafana with password s3cret, or by the bearer token tok-123.
func authStrata(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "auth.yaml")
	auth := "tenants:\n  team-a:\n    username: grafana\n    password: s3cret\n    bearer_token: tok-123\n  team-b:\n    bearer_token: tok-b\n"
	if err := os.WriteFile(path, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	return stratatest.Start(t, stratatest.Options{Args: []string{"-tenant.auth-file=" + path}}).URL
}

func (f *fixture) testHealth(t *testing.T) {
	basicURL := authStrata(t)
	bearerURL := basicURL
	notStrata := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notStrata.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String()
	_ = l.Close()

	tests := []struct {
		name     string
		url      string
		jsonData map[string]any
		secure   map[string]string
		ok       bool
		want     []string
	}{
		{"ok", f.strata.URL, map[string]any{"tenant": tenant}, nil, true, []string{"Strata 0.1.0-dev", `tenant "team-a"`}},
		{"nothing listening", closedURL, map[string]any{"tenant": tenant}, nil, false, []string{"cannot reach Strata at " + closedURL}},
		{"not Strata", notStrata.URL, map[string]any{"tenant": tenant}, nil, false, []string{"no Prometheus API found", "base URL"}},
		{"no tenant", f.strata.URL, map[string]any{}, nil, false, []string{"requires a tenant", "X-Scope-OrgID"}},
		{"invalid tenant", f.strata.URL, map[string]any{"tenant": "../etc"}, nil, false, []string{`rejected the tenant "../etc"`}},
		{"basic auth", basicURL, map[string]any{"tenant": tenant, "authType": "basic", "basicAuthUser": "grafana"},
			map[string]string{"basicAuthPassword": "s3cret"}, true, []string{"Strata 0.1.0-dev"}},
		{"wrong password", basicURL, map[string]any{"tenant": tenant, "authType": "basic", "basicAuthUser": "grafana"},
			map[string]string{"basicAuthPassword": "guess"}, false, []string{"authentication failed", "HTTP 401", "password"}},
		{"no credentials", basicURL, map[string]any{"tenant": tenant}, nil, false, []string{"authentication failed"}},
		{"bearer token", bearerURL, map[string]any{"tenant": tenant, "authType": "bearer"},
			map[string]string{"bearerToken": "tok-123"}, true, []string{"Strata 0.1.0-dev"}},
		{"wrong token", bearerURL, map[string]any{"tenant": tenant, "authType": "bearer"},
			map[string]string{"bearerToken": "tok-999"}, false, []string{"authentication failed", "bearer token"}},
		{"another tenant's token", bearerURL, map[string]any{"tenant": tenant, "authType": "bearer"},
			map[string]string{"bearerToken": "tok-b"}, false, []string{`rejected the tenant "team-a"`, "credentials not valid"}},
		{"empty URL", "", nil, nil, false, []string{"Invalid settings", "URL is empty"}},
		{"relative URL", "strata:9201", nil, nil, false, []string{"Invalid settings", "absolute"}},
		{"unknown auth type", f.strata.URL, map[string]any{"authType": "oauth"}, nil, false, []string{"unknown authType"}},
		{"timeout", f.strata.URL, map[string]any{"tenant": tenant, "timeoutSeconds": 0.000001}, nil, false, []string{"timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDatasource(t, settings(t, tc.url, tc.jsonData, tc.secure))
			res, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if ok := res.Status == backend.HealthStatusOk; ok != tc.ok {
				t.Fatalf("status %v (%s), want ok=%v", res.Status, res.Message, tc.ok)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.Message, w) {
					t.Errorf("message %q does not contain %q", res.Message, w)
				}
			}
		})
	}

	t.Run("queries report wrong credentials too", func(t *testing.T) {
		ds := newDatasource(t, settings(t, basicURL, map[string]any{"tenant": tenant, "authType": "basic", "basicAuthUser": "grafana"},
			map[string]string{"basicAuthPassword": "guess"}))
		r := query(t, ds, map[string]any{"expr": "up"}, f.now.Add(-time.Hour), f.now, 15*time.Second)
		if r.Error == nil || r.Status != backend.StatusUnauthorized || !strings.Contains(r.Error.Error(), "authentication failed") {
			t.Fatalf("error = %v (status %d), want 401 authentication failed", r.Error, r.Status)
		}
	})
}

type collect struct {
	resps []*backend.CallResourceResponse
}

func (c *collect) Send(r *backend.CallResourceResponse) error {
	c.resps = append(c.resps, r)
	return nil
}

func (f *fixture) testResources(t *testing.T) {
	ds := f.datasource(t)
	start := fmt.Sprint(f.now.Add(-time.Hour).Unix())
	tests := []struct {
		name, path, query string
		status            int
		check             func(t *testing.T, data json.RawMessage)
	}{
		{"labels", "labels", "start=" + start, 200, func(t *testing.T, d json.RawMessage) {
			var names []string
			mustDecode(t, d, &names)
			for _, n := range []string{"__name__", "room", "svc", "job"} {
				if !slices.Contains(names, n) {
					t.Errorf("labels %q lack %q", names, n)
				}
			}
		}},
		{"metric names", "label/__name__/values", "start=" + start, 200, func(t *testing.T, d json.RawMessage) {
			var names []string
			mustDecode(t, d, &names)
			for _, n := range []string{"test_temperature", "test_latency", "test_requests_total"} {
				if !slices.Contains(names, n) {
					t.Errorf("metric names %q lack %q", names, n)
				}
			}
		}},
		{"label values with a matcher", "label/room/values", url.Values{"match[]": {"test_temperature"}, "start": {start}}.Encode(), 200,
			func(t *testing.T, d json.RawMessage) {
				var vals []string
				mustDecode(t, d, &vals)
				if !slices.Equal(vals, []string{"a", "b"}) {
					t.Errorf("room values = %q, want a, b", vals)
				}
			}},
		{"series", "series", url.Values{"match[]": {"test_temperature"}, "start": {start}}.Encode(), 200,
			func(t *testing.T, d json.RawMessage) {
				var series []map[string]string
				mustDecode(t, d, &series)
				if len(series) != 2 || series[0]["__name__"] != "test_temperature" {
					t.Errorf("series = %v", series)
				}
			}},
		{"metadata", "metadata", "metric=test_temperature", 200, func(t *testing.T, d json.RawMessage) {
			var md map[string][]struct{ Type, Help string }
			mustDecode(t, d, &md)
			if m := md["test_temperature"]; len(m) != 1 || m[0].Type != "gauge" || m[0].Help != "Room temperature in °C." {
				t.Errorf("metadata = %v", md)
			}
		}},
		{"bad matcher", "series", "match[]=" + url.QueryEscape("{room="), 400, nil},
		{"unknown resource", "query", "query=up", 404, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c collect
			err := ds.CallResource(context.Background(), &backend.CallResourceRequest{
				Path: tc.path, Method: http.MethodGet, URL: tc.path + "?" + tc.query,
			}, &c)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.resps) != 1 {
				t.Fatalf("%d responses, want 1", len(c.resps))
			}
			r := c.resps[0]
			var env struct {
				Status string          `json:"status"`
				Data   json.RawMessage `json:"data"`
				Error  string          `json:"error"`
			}
			mustDecode(t, r.Body, &env)
			if r.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.Status, r.Body, tc.status)
			}
			if tc.check != nil {
				tc.check(t, env.Data)
			} else if env.Error == "" {
				t.Errorf("error answer without a message: %s", r.Body)
			}
		})
	}
}

func mustDecode(t *testing.T, b []byte, into any) {
	t.Helper()
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}
