package anomalyapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/alerting/detect"
	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

func TestQueryRange(t *testing.T) {
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir(), OutOfOrderWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	engine, err := promqlengine.New(promqlengine.Options{LookbackDelta: 5 * time.Minute, Timeout: time.Minute, MaxSamples: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	now := time.Now().Truncate(time.Minute)
	start := now.Add(-2 * time.Hour)
	app, err := store.Appender(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	ls := labels.FromStrings("__name__", "load", "instance", "a")
	var pts []detect.Point
	for ts := start.Add(-3 * time.Hour); !ts.After(now); ts = ts.Add(time.Minute) {
		v := 10 + float64(ts.Minute()%3)
		if ts.Equal(now.Add(-30 * time.Minute)) {
			v = 100
		}
		if _, err := app.Append(0, ls, 0, ts.UnixMilli(), v, nil, nil, storage.AOptions{}); err != nil {
			t.Fatal(err)
		}
		pts = append(pts, detect.Point{T: ts.UnixMilli(), V: v})
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	h := Handler(engine, store.Queryable(), time.Minute)
	get := func(params url.Values, tenantID string) (int, map[string]any) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/anomaly/query_range?"+params.Encode(), nil)
		req = req.WithContext(tenant.WithID(req.Context(), tenantID))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body
	}
	q := url.Values{"query": {"load"}, "start": {start.Format(time.RFC3339)}, "end": {now.Format(time.RFC3339)}, "step": {"60"},
		"detector": {"adaptive"}, "half_life": {"1h"}, "history": {"3h"}}
	code, body := get(q, "t1")
	if code != 200 {
		t.Fatalf("status %d: %v", code, body)
	}
	result := body["data"].(map[string]any)["result"].([]any)
	roles := map[string][]any{}
	for _, s := range result {
		m := s.(map[string]any)
		role := m["metric"].(map[string]any)[Label].(string)
		roles[role] = m["values"].([]any)
	}
	for _, r := range []string{"value", "upper", "lower", "score"} {
		if len(roles[r]) != 121 {
			t.Errorf("%s: %d points, want 121", r, len(roles[r]))
		}
	}
	// The scores are those of the detector run over the same points in order.
	fac, _ := detect.New(detect.Spec{Detector: "adaptive", Params: map[string]string{"half_life": "1h"}})
	want := detect.Score(fac, pts)
	last := roles["score"][120].([]any)
	if got := last[1].(string); got != strings.TrimSpace(formatFloat(want[len(want)-1].Score)) {
		t.Errorf("last score %s, want %v", got, want[len(want)-1].Score)
	}
	spike, _ := strconv.ParseFloat(roles["score"][90].([]any)[1].(string), 64)
	if spike <= 1 {
		t.Errorf("spike scored %v, want > 1", spike)
	}

	for _, tc := range []struct {
		name string
		mod  func(url.Values)
		code int
	}{
		{"unknown detector", func(v url.Values) { v.Set("detector", "nope") }, 400},
		{"bad parameter", func(v url.Values) { v.Set("k", "-3") }, 400},
		{"no query", func(v url.Values) { v.Del("query") }, 400},
		{"bad step", func(v url.Values) { v.Set("step", "0") }, 400},
		{"too many points", func(v url.Values) { v.Set("step", "0.1") }, 400},
		{"bad expression", func(v url.Values) { v.Set("query", "load{") }, 400},
	} {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		tc.mod(v)
		if code, body := get(v, "t1"); code != tc.code || body["status"] != "error" {
			t.Errorf("%s: %d %v, want %d", tc.name, code, body, tc.code)
		}
	}
	// Another tenant sees nothing.
	if _, body := get(q, "t2"); len(body["data"].(map[string]any)["result"].([]any)) != 0 {
		t.Errorf("tenant t2 sees t1's series")
	}
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
