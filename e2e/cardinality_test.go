package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// cardinalityWrite sends n samples 15s apart from start (unaligned) for
// every series of ls to Strata as tenant.
func cardinalityWrite(t *testing.T, s *strataProc, tenant string, start time.Time, series ...[]string) {
	t.Helper()
	req := &prompb.WriteRequest{}
	for _, nv := range series {
		var samples []prompb.Sample
		for j := range 10 {
			samples = append(samples, prompb.Sample{Timestamp: start.UnixMilli() + int64(j)*15000, Value: float64(j)})
		}
		req.Timeseries = append(req.Timeseries, newSeries(samples, nv...))
	}
	code, body, err := sendWriteV1(context.Background(), http.DefaultClient, s.url+"/api/v1/write", tenant, req)
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("remote write: %d %s %v", code, body, err)
	}
}

// TestCardinalityHeadAndBucket writes series whose cardinality the test
// knows through remote write, flushes part of them to the bucket, and asks
// the cardinality endpoints of the Strata that wrote them (head, local
// blocks, bucket) and of a second Strata that shares only the bucket.
func TestCardinalityHeadAndBucket(t *testing.T) {
	requireE2E(t)
	bucketDir := t.TempDir()
	flags := []string{"-bucket.filesystem.dir", bucketDir, "-compactor.enabled=false"}
	a := startStrata(t, "", t.TempDir(), flags...)

	now := time.Now()
	old := now.Add(-5*time.Hour + 13*time.Second + 170*time.Millisecond)
	var oldSeries, newSeries [][]string
	// In the bucket: 20 paths x 2 codes of http_requests_total.
	for p := range 20 {
		for _, code := range []string{"200", "500"} {
			oldSeries = append(oldSeries, []string{"__name__", "http_requests_total", "path", fmt.Sprintf("/p%d", p), "code", code})
		}
	}
	// In the head: 5 of those series again, and the blow-up: a label per user.
	for p := range 5 {
		newSeries = append(newSeries, []string{"__name__", "http_requests_total", "path", fmt.Sprintf("/p%d", p), "code", "200"})
	}
	for u := range 100 {
		newSeries = append(newSeries, []string{"__name__", "user_logins_total", "user_id", fmt.Sprintf("u%03d", u)})
	}
	cardinalityWrite(t, a, "team-a", old, oldSeries...)
	cardinalityWrite(t, a, "team-b", old, []string{"__name__", "other", "x", "1"})
	ac := newAPIClient(a.url, "team-a")
	if r := ac.post(t, "/api/v1/admin/flush", nil); r.code != http.StatusOK {
		t.Fatalf("flush: %d %s", r.code, r.body)
	}
	cardinalityWrite(t, a, "team-a", now.Add(-5*time.Minute), newSeries...)

	rangeAll := url.Values{"start": {apiTime(now.Add(-6 * time.Hour).UnixMilli())}, "end": {apiTime(now.UnixMilli())}}
	rangeOld := url.Values{"start": {apiTime(now.Add(-6 * time.Hour).UnixMilli())}, "end": {apiTime(now.Add(-4 * time.Hour).UnixMilli())}}
	plus := func(base url.Values, kv ...string) url.Values {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			q.Add(kv[i], kv[i+1])
		}
		return q
	}
	type nameCount struct {
		LabelName        string `json:"label_name"`
		LabelValuesCount int    `json:"label_values_count"`
	}
	type labelNames struct {
		LabelValuesCountTotal int         `json:"label_values_count_total"`
		LabelNamesCount       int         `json:"label_names_count"`
		Cardinality           []nameCount `json:"cardinality"`
	}
	type valueCount struct {
		LabelValue  string `json:"label_value"`
		SeriesCount int    `json:"series_count"`
	}
	type labelItem struct {
		LabelName        string       `json:"label_name"`
		LabelValuesCount int          `json:"label_values_count"`
		SeriesCount      int          `json:"series_count"`
		Cardinality      []valueCount `json:"cardinality"`
	}
	type labelValues struct {
		SeriesCountTotal int         `json:"series_count_total"`
		Labels           []labelItem `json:"labels"`
	}
	ask := func(t *testing.T, c *apiClient, path string, q url.Values, into any) {
		t.Helper()
		r := c.get(t, path, q)
		if r.code != http.StatusOK {
			t.Fatalf("%s %v: HTTP %d %s", path, q, r.code, r.body)
		}
		if err := json.Unmarshal(r.body, into); err != nil {
			t.Fatalf("%s: %v: %s", path, err, r.body)
		}
	}
	checkNames := func(t *testing.T, c *apiClient, what string, q url.Values, want labelNames) {
		t.Helper()
		var got labelNames
		ask(t, c, "/api/v1/cardinality/label_names", q, &got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: label_names\n got %+v\nwant %+v", what, got, want)
		}
	}
	checkValues := func(t *testing.T, c *apiClient, what string, q url.Values, want labelValues) {
		t.Helper()
		var got labelValues
		ask(t, c, "/api/v1/cardinality/label_values", q, &got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: label_values\n got %+v\nwant %+v", what, got, want)
		}
	}

	// The Strata that wrote them: the head alone, then head and blocks.
	checkNames(t, ac, "head", nil, labelNames{LabelValuesCountTotal: 2 + 5 + 1 + 100, LabelNamesCount: 4,
		Cardinality: []nameCount{{"user_id", 100}, {"path", 5}, {"__name__", 2}, {"code", 1}}})
	checkNames(t, ac, "head and blocks", rangeAll, labelNames{LabelValuesCountTotal: 2 + 20 + 2 + 100, LabelNamesCount: 4,
		Cardinality: []nameCount{{"user_id", 100}, {"path", 20}, {"__name__", 2}, {"code", 2}}})
	checkValues(t, ac, "head and blocks", plus(rangeAll, "label_names[]", "__name__", "label_names[]", "code", "limit", "3"), labelValues{SeriesCountTotal: 140, Labels: []labelItem{
		{"__name__", 2, 140, []valueCount{{"user_logins_total", 100}, {"http_requests_total", 40}}},
		{"code", 2, 40, []valueCount{{"200", 20}, {"500", 20}}},
	}})
	checkValues(t, ac, "a selector", plus(rangeAll, "label_names[]", "path", "selector", `{code="500"}`, "limit", "2"), labelValues{SeriesCountTotal: 20, Labels: []labelItem{
		{"path", 20, 20, []valueCount{{"/p0", 1}, {"/p1", 1}}},
	}})
	var status struct {
		Data struct {
			HeadStats struct {
				NumSeries int `json:"numSeries"`
			} `json:"headStats"`
			SeriesCountByMetricName []struct {
				Name  string `json:"name"`
				Value int    `json:"value"`
			} `json:"seriesCountByMetricName"`
			Range struct {
				NumSeries int `json:"numSeries"`
			} `json:"range"`
		} `json:"data"`
	}
	ask(t, ac, "/api/v1/status/tsdb", rangeAll, &status)
	if d := status.Data; d.HeadStats.NumSeries != 105 || d.Range.NumSeries != 140 || len(d.SeriesCountByMetricName) != 2 ||
		d.SeriesCountByMetricName[0].Name != "user_logins_total" || d.SeriesCountByMetricName[0].Value != 100 || d.SeriesCountByMetricName[1].Value != 40 {
		t.Errorf("status/tsdb over the range: %+v, want 105 head series, 140 in the range, user_logins_total 100 then http_requests_total 40", d)
	}
	// Another tenant sees its own series only.
	checkNames(t, newAPIClient(a.url, "team-b"), "team-b", rangeAll, labelNames{LabelValuesCountTotal: 2, LabelNamesCount: 2,
		Cardinality: []nameCount{{"__name__", 1}, {"x", 1}}})

	// A Strata with its own disk and the same bucket: the flushed blocks
	// only, read from the bucket.
	b := startStrata(t, "", filepath.Join(t.TempDir(), "b"), flags...)
	bc := newAPIClient(b.url, "team-a")
	checkNames(t, bc, "bucket only, no head", nil, labelNames{Cardinality: []nameCount{}})
	for _, q := range []url.Values{rangeAll, rangeOld} {
		checkValues(t, bc, "bucket only", plus(q, "label_names[]", "path", "label_names[]", "user_id", "limit", "1"), labelValues{SeriesCountTotal: 40, Labels: []labelItem{
			{"path", 20, 40, []valueCount{{"/p0", 2}}},
			{"user_id", 0, 0, []valueCount{}},
		}})
	}
	if r := bc.get(t, "/api/v1/cardinality/label_names", plus(rangeAll, "selector", "{")); r.code != http.StatusBadRequest {
		t.Errorf("bad selector: HTTP %d %s, want 400", r.code, r.body)
	}

	// Bounded: a Strata allowed to count 39 series refuses the bucket's 40
	// with 422, and answers a narrower selector.
	c := startStrata(t, "", filepath.Join(t.TempDir(), "c"), append(flags, "-query.cardinality-max-series", "39")...)
	cc := newAPIClient(c.url, "team-a")
	if r := cc.get(t, "/api/v1/cardinality/label_names", rangeAll); r.code != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"errorType":"cost_limit"`) {
		t.Errorf("40 series over a bound of 39: HTTP %d %s, want 422 cost_limit", r.code, r.body)
	}
	checkNames(t, cc, "under the bound", plus(rangeAll, "selector", `{code="500"}`), labelNames{LabelValuesCountTotal: 1 + 20 + 1, LabelNamesCount: 3,
		Cardinality: []nameCount{{"path", 20}, {"__name__", 1}, {"code", 1}}})
}
