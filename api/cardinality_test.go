package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/objstore/filesystem"
	"github.com/strata-tsdb/strata/tenant"
)

// TestCardinalityEndpoints checks the cardinality endpoints against data
// whose cardinality is known, some of it flushed to the bucket and some in
// the head: the head alone without start and end, both over a range.
func TestCardinalityEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	bkt, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir(), Bucket: bkt, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	now := time.Now()
	write := func(at time.Time, series ...labels.Labels) {
		t.Helper()
		app, err := store.Appender(context.Background(), "a")
		if err != nil {
			t.Fatal(err)
		}
		for _, ls := range series {
			for j := range 10 {
				if _, err := app.Append(0, ls, 0, at.UnixMilli()+int64(j)*15000+7, float64(j), nil, nil, storage.AppendV2Options{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	series := func(name, label string, n int) []labels.Labels {
		var out []labels.Labels
		for i := range n {
			out = append(out, labels.FromStrings("__name__", name, label, fmt.Sprintf("v%d", i)))
		}
		return out
	}
	// In the bucket: old_m{pod} 10 series, shared{i} 3 series.
	old := now.Add(-3 * time.Hour)
	write(old, append(series("old_m", "pod", 10), series("shared", "i", 3)...)...)
	if err := store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(store.BucketBlocks("a")); n == 0 {
		t.Fatal("no block in the bucket after the flush")
	}
	// In the head: new_m{pod} 5 series, and the same 3 shared series.
	write(now.Add(-10*time.Minute), append(series("new_m", "pod", 5), series("shared", "i", 3)...)...)

	srv := httptest.NewServer(New(Options{
		Tenants:              tenant.Resolver{Default: "a"},
		Cardinality:          store,
		CardinalityMaxSeries: 100,
		Registerer:           prometheus.NewRegistry(),
		Gatherer:             reg,
	}))
	t.Cleanup(srv.Close)
	get := func(t *testing.T, path string, q url.Values) (int, []byte) {
		t.Helper()
		resp, err := http.PostForm(srv.URL+path, q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	sec := func(tm time.Time) string { return fmt.Sprint(tm.Unix()) }
	all := url.Values{"start": {sec(now.Add(-4 * time.Hour))}, "end": {sec(now)}}
	bucketOnly := url.Values{"start": {sec(now.Add(-4 * time.Hour))}, "end": {sec(now.Add(-2 * time.Hour))}}
	with := func(base url.Values, kv ...string) url.Values {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			q.Add(kv[i], kv[i+1])
		}
		return q
	}

	t.Run("label_names", func(t *testing.T) {
		tests := []struct {
			name   string
			params url.Values
			want   labelNamesResponse
		}{
			{"head", url.Values{}, labelNamesResponse{LabelValuesCountTotal: 2 + 5 + 3, LabelNamesCount: 3, Cardinality: []labelNameCount{{"pod", 5}, {"i", 3}, {"__name__", 2}}}},
			{"head, inmemory", url.Values{"count_method": {"inmemory"}}, labelNamesResponse{LabelValuesCountTotal: 10, LabelNamesCount: 3, Cardinality: []labelNameCount{{"pod", 5}, {"i", 3}, {"__name__", 2}}}},
			{"head and bucket", all, labelNamesResponse{LabelValuesCountTotal: 3 + 10 + 3, LabelNamesCount: 3, Cardinality: []labelNameCount{{"pod", 10}, {"__name__", 3}, {"i", 3}}}},
			{"bucket only", bucketOnly, labelNamesResponse{LabelValuesCountTotal: 2 + 10 + 3, LabelNamesCount: 3, Cardinality: []labelNameCount{{"pod", 10}, {"i", 3}, {"__name__", 2}}}},
			{"limit", with(all, "limit", "1"), labelNamesResponse{LabelValuesCountTotal: 16, LabelNamesCount: 3, Cardinality: []labelNameCount{{"pod", 10}}}},
			{"selector", with(all, "selector", `{__name__=~"new_m|shared"}`), labelNamesResponse{LabelValuesCountTotal: 2 + 5 + 3, LabelNamesCount: 3, Cardinality: []labelNameCount{{"pod", 5}, {"i", 3}, {"__name__", 2}}}},
			{"nothing matches", with(all, "selector", `{__name__="none"}`), labelNamesResponse{Cardinality: []labelNameCount{}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, body := get(t, "/api/v1/cardinality/label_names", tc.params)
				if code != http.StatusOK {
					t.Fatalf("HTTP %d: %s", code, body)
				}
				var got labelNamesResponse
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("%v: %s", err, body)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got  %+v\nwant %+v", got, tc.want)
				}
			})
		}
	})

	t.Run("label_values", func(t *testing.T) {
		tests := []struct {
			name   string
			params url.Values
			want   labelValuesResponse
		}{
			{"head", url.Values{"label_names[]": {"__name__", "pod"}}, labelValuesResponse{SeriesCountTotal: 8, Labels: []labelValuesItem{
				{LabelName: "__name__", LabelValuesCount: 2, SeriesCount: 8, Cardinality: []labelValueCount{{"new_m", 5}, {"shared", 3}}},
				{LabelName: "pod", LabelValuesCount: 5, SeriesCount: 5, Cardinality: []labelValueCount{{"v0", 1}, {"v1", 1}, {"v2", 1}, {"v3", 1}, {"v4", 1}}},
			}}},
			{"head and bucket, limit", with(all, "label_names[]", "pod", "label_names[]", "__name__", "limit", "2"), labelValuesResponse{SeriesCountTotal: 18, Labels: []labelValuesItem{
				{LabelName: "__name__", LabelValuesCount: 3, SeriesCount: 18, Cardinality: []labelValueCount{{"old_m", 10}, {"new_m", 5}}},
				{LabelName: "pod", LabelValuesCount: 10, SeriesCount: 15, Cardinality: []labelValueCount{{"v0", 2}, {"v1", 2}}},
			}}},
			{"selector, absent label", with(all, "label_names[]", "i", "label_names[]", "missing", "selector", `{__name__="shared"}`), labelValuesResponse{SeriesCountTotal: 3, Labels: []labelValuesItem{
				{LabelName: "i", LabelValuesCount: 3, SeriesCount: 3, Cardinality: []labelValueCount{{"v0", 1}, {"v1", 1}, {"v2", 1}}},
				{LabelName: "missing", Cardinality: []labelValueCount{}},
			}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, body := get(t, "/api/v1/cardinality/label_values", tc.params)
				if code != http.StatusOK {
					t.Fatalf("HTTP %d: %s", code, body)
				}
				var got labelValuesResponse
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("%v: %s", err, body)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got  %+v\nwant %+v", got, tc.want)
				}
			})
		}
	})

	t.Run("status/tsdb over a range", func(t *testing.T) {
		code, body := get(t, "/api/v1/status/tsdb", with(all, "limit", "2"))
		if code != http.StatusOK {
			t.Fatalf("HTTP %d: %s", code, body)
		}
		var got struct {
			Data tsdbStatus `json:"data"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if hs := got.Data.HeadStats; hs.NumSeries != 8 {
			t.Errorf("headStats.numSeries %d, want the head's 8", hs.NumSeries)
		}
		wantRange := tsdbRange{Start: now.Add(-4*time.Hour).Unix() * 1000, End: now.Unix() * 1000, NumSeries: 18, NumLabelPairs: 16}
		if got.Data.Range == nil || *got.Data.Range != wantRange {
			t.Errorf("range %+v, want %+v", got.Data.Range, wantRange)
		}
		if want := []v1.TSDBStat{{Name: "old_m", Value: 10}, {Name: "new_m", Value: 5}}; !reflect.DeepEqual(got.Data.SeriesCountByMetricName, want) {
			t.Errorf("seriesCountByMetricName %v, want %v", got.Data.SeriesCountByMetricName, want)
		}
		if want := []v1.TSDBStat{{Name: "pod", Value: 10}, {Name: "__name__", Value: 3}}; !reflect.DeepEqual(got.Data.LabelValueCountByLabelName, want) {
			t.Errorf("labelValueCountByLabelName %v, want %v", got.Data.LabelValueCountByLabelName, want)
		}
		if want := []v1.TSDBStat{{Name: "__name__=old_m", Value: 10}, {Name: "__name__=new_m", Value: 5}}; !reflect.DeepEqual(got.Data.SeriesCountByLabelValuePair, want) {
			t.Errorf("seriesCountByLabelValuePair %v, want %v", got.Data.SeriesCountByLabelValuePair, want)
		}
		// Sizes as the head counts them: every series carries __name__.
		if m := got.Data.MemoryInBytesByLabelName; len(m) != 2 || m[0].Name != "__name__" || m[1].Name != "pod" || m[1].Value == 0 {
			t.Errorf("memoryInBytesByLabelName %v, want __name__ then pod", m)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		tests := []struct {
			name, path string
			params     url.Values
			code       int
			errType    string
			errHas     string
		}{
			{"no label_names[]", "/api/v1/cardinality/label_values", url.Values{}, 400, "bad_data", "label_names[] is required"},
			{"empty label name", "/api/v1/cardinality/label_values", url.Values{"label_names[]": {""}}, 400, "bad_data", "not empty"},
			{"too many label names", "/api/v1/cardinality/label_values", url.Values{"label_names[]": manyNames(101)}, 400, "bad_data", "at most 100"},
			{"limit too large", "/api/v1/cardinality/label_names", url.Values{"limit": {"501"}}, 400, "bad_data", "must not exceed 500"},
			{"limit not a number", "/api/v1/cardinality/label_names", url.Values{"limit": {"x"}}, 400, "bad_data", "positive number"},
			{"bad selector", "/api/v1/cardinality/label_names", url.Values{"selector": {"{"}}, 400, "bad_data", "invalid selector"},
			{"start alone", "/api/v1/cardinality/label_names", url.Values{"start": {"1"}}, 400, "bad_data", "start and end go together"},
			{"end before start", "/api/v1/cardinality/label_names", url.Values{"start": {"10"}, "end": {"1"}}, 400, "bad_data", "before start"},
			{"bad time", "/api/v1/cardinality/label_names", url.Values{"start": {"x"}, "end": {"1"}}, 400, "bad_data", "cannot parse"},
			{"unknown count_method", "/api/v1/cardinality/label_names", url.Values{"count_method": {"active"}}, 400, "bad_data", "not supported"},
			{"status/tsdb limit too large", "/api/v1/status/tsdb", url.Values{"limit": {"10001"}}, 400, "bad_data", "must not exceed 10000"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, body := get(t, tc.path, tc.params)
				var e struct{ Status, ErrorType, Error string }
				_ = json.Unmarshal(body, &e)
				if code != tc.code || e.Status != "error" || e.ErrorType != tc.errType || !strings.Contains(e.Error, tc.errHas) {
					t.Errorf("HTTP %d %s, want %d %s containing %q", code, body, tc.code, tc.errType, tc.errHas)
				}
			})
		}
	})

	t.Run("over the series limit", func(t *testing.T) {
		small := httptest.NewServer(New(Options{
			Tenants:              tenant.Resolver{Default: "a"},
			Cardinality:          store,
			CardinalityMaxSeries: 17,
			Registerer:           prometheus.NewRegistry(),
		}))
		defer small.Close()
		for _, tc := range []struct {
			params url.Values
			code   int
		}{
			{all, http.StatusUnprocessableEntity},
			{with(all, "selector", `{__name__!="shared"}`), http.StatusOK}, // 15 series
			{url.Values{}, http.StatusOK},                                  // the head's 8
		} {
			resp, err := http.PostForm(small.URL+"/api/v1/cardinality/label_names", tc.params)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("%v: HTTP %d %s, want %d", tc.params, resp.StatusCode, b, tc.code)
			}
			if tc.code == http.StatusUnprocessableEntity && !strings.Contains(string(b), `"errorType":"cost_limit"`) {
				t.Errorf("over the limit: %s, want errorType cost_limit", b)
			}
		}
	})
}

func manyNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("l%d", i)
	}
	return out
}
