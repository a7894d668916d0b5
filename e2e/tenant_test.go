package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// TestTenantIsolation writes different series to tenants a and b through
// X-Scope-OrgID and checks that every read path shows each tenant only its
// own data, that an unknown tenant sees an empty store, and that tenant IDs
// that could name other paths are rejected with 400 before they reach the disk.
func TestTenantIsolation(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	s := startStrata(t, "", dir)
	writeURL := s.url + "/api/v1/write"

	now := time.Now().UnixMilli()
	T := now + 1 // evaluation time just after the newest sample
	write := func(tenant string, series ...prompb.TimeSeries) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req := &prompb.WriteRequest{
			Timeseries: series,
			Metadata: []prompb.MetricMetadata{{
				Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "tenant_" + tenant + "_only_total", Help: "Only in tenant " + tenant + ".",
			}},
		}
		if code, body, err := sendWriteV1(ctx, http.DefaultClient, writeURL, tenant, req); err != nil || code != http.StatusNoContent {
			t.Fatalf("write as tenant %q: HTTP %d %q %v; want 204", tenant, code, body, err)
		}
	}
	samples := func(v float64) []prompb.Sample {
		return []prompb.Sample{{Timestamp: now - 10_000, Value: v}, {Timestamp: now, Value: v + 1}}
	}
	write("a",
		newSeries(samples(1), "__name__", "tenant_shared", "owner", "a"),
		newSeries(samples(10), "__name__", "tenant_a_only_total", "owner", "a"),
	)
	write("b",
		newSeries(samples(2), "__name__", "tenant_shared", "owner", "b"),
		newSeries(samples(20), "__name__", "tenant_b_only_total", "owner", "b"),
	)

	window := url.Values{"start": {apiTime(now - 60_000)}, "end": {apiTime(T)}}
	withWindow := func(extra url.Values) url.Values {
		v := url.Values{}
		for k, vs := range window {
			v[k] = vs
		}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	instant := func(q string) url.Values { return url.Values{"query": {q}, "time": {apiTime(T)}} }
	ts := apiTime(T) // the timestamp of an instant query's vector
	cases := []struct {
		name   string
		tenant string
		path   string
		params url.Values
		want   string // the whole answer
	}{
		// sort() orders the vector by value, so that the answer is fixed.
		{"a sees its series", "a", "/api/v1/query", instant(`sort({__name__=~"tenant_.+"})`),
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"tenant_shared","owner":"a"},"value":[` + ts + `,"2"]},{"metric":{"__name__":"tenant_a_only_total","owner":"a"},"value":[` + ts + `,"11"]}]}}`},
		{"b sees its series", "b", "/api/v1/query", instant(`sort({__name__=~"tenant_.+"})`),
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"tenant_shared","owner":"b"},"value":[` + ts + `,"3"]},{"metric":{"__name__":"tenant_b_only_total","owner":"b"},"value":[` + ts + `,"21"]}]}}`},
		{"a aggregates only its series", "a", "/api/v1/query", instant(`count(tenant_shared)`),
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[` + apiTime(T) + `,"1"]}]}}`},
		{"a reads only its series by name", "b", "/api/v1/query", instant(`tenant_a_only_total`),
			`{"status":"success","data":{"resultType":"vector","result":[]}}`},
		{"a's series", "a", "/api/v1/series", withWindow(url.Values{"match[]": {`{owner=~".+"}`}}),
			`{"status":"success","data":[{"__name__":"tenant_a_only_total","owner":"a"},{"__name__":"tenant_shared","owner":"a"}]}`},
		{"b's metric names", "b", "/api/v1/label/__name__/values", withWindow(nil),
			`{"status":"success","data":["tenant_b_only_total","tenant_shared"]}`},
		{"b's owners", "b", "/api/v1/label/owner/values", withWindow(nil),
			`{"status":"success","data":["b"]}`},
		{"a's metadata", "a", "/api/v1/metadata", nil,
			`{"status":"success","data":{"tenant_a_only_total":[{"type":"counter","unit":"","help":"Only in tenant a."}]}}`},
		{"unknown tenant: query", "c", "/api/v1/query", instant(`{__name__=~".+"}`),
			`{"status":"success","data":{"resultType":"vector","result":[]}}`},
		{"unknown tenant: range query", "c", "/api/v1/query_range", withWindow(url.Values{"query": {`tenant_shared`}, "step": {"15"}}),
			`{"status":"success","data":{"resultType":"matrix","result":[]}}`},
		{"unknown tenant: series", "c", "/api/v1/series", withWindow(url.Values{"match[]": {`{__name__=~".+"}`}}),
			`{"status":"success","data":[]}`},
		{"unknown tenant: labels", "c", "/api/v1/labels", withWindow(nil),
			`{"status":"success","data":[]}`},
		{"unknown tenant: label values", "c", "/api/v1/label/owner/values", withWindow(nil),
			`{"status":"success","data":[]}`},
		{"unknown tenant: metadata", "c", "/api/v1/metadata", nil,
			`{"status":"success","data":{}}`},
		{"default tenant is another tenant", "", "/api/v1/query", instant(`{__name__=~".+"}`),
			`{"status":"success","data":{"resultType":"vector","result":[]}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newAPIClient(s.url, c.tenant).get(t, c.path, c.params)
			// Series lists are compared as sets: with one match[], their
			// order is the store's, as in Prometheus 3.
			if c.path == "/api/v1/series" && r.code == http.StatusOK {
				got := decodeEnvelope(t, c.path, r)
				want := decodeEnvelope(t, c.path, apiResponse{code: http.StatusOK, body: []byte(c.want)})
				if msg := diffSeriesLists(t, c.path, got.Data, want.Data); msg != "" || got.Status != "success" {
					t.Errorf("tenant %q %s?%s: %s\n%s\nwant (in any order)\n%s", c.tenant, c.path, c.params.Encode(), msg, r.body, c.want)
				}
				return
			}
			if r.code != http.StatusOK || string(r.body) != c.want {
				t.Errorf("tenant %q %s?%s: HTTP %d\n%s\nwant HTTP 200\n%s", c.tenant, c.path, c.params.Encode(), r.code, r.body, c.want)
			}
		})
	}

	t.Run("remote read", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := &prompb.Query{
			StartTimestampMs: now - 60_000, EndTimestampMs: T,
			Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: "tenant_.+"}},
		}
		got, err := remoteRead(ctx, http.DefaultClient, s.url+"/api/v1/read", "a", q, prompb.ReadRequest_SAMPLES)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			seriesKey(newSeries(nil, "__name__", "tenant_a_only_total", "owner", "a").Labels),
			seriesKey(newSeries(nil, "__name__", "tenant_shared", "owner", "a").Labels),
		}
		if have := keysOf(got); !slices.Equal(have, want) {
			t.Errorf("remote read as tenant a returned %v, want %v", have, want)
		}
	})

	// Tenant IDs that are paths, or could become paths, are refused by
	// every endpoint, and nothing is created for them on disk.
	for _, bad := range []string{"../x", "..", "a/b", "../../etc", "x\\y"} {
		t.Run("invalid tenant "+bad, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{newSeries(samples(5), "__name__", "tenant_evil")}}
			code, body, err := sendWriteV1(ctx, http.DefaultClient, writeURL, bad, req)
			if err != nil || code != http.StatusBadRequest {
				t.Errorf("write as tenant %q: HTTP %d %q %v; want 400", bad, code, body, err)
			}
			api := newAPIClient(s.url, bad)
			for _, path := range []string{"/api/v1/query", "/api/v1/series", "/api/v1/labels", "/api/v1/metadata"} {
				params := url.Values{"query": {"tenant_evil"}, "match[]": {"tenant_evil"}}
				r := api.get(t, path, params)
				e := decodeEnvelope(t, path, r)
				if r.code != http.StatusBadRequest || e.Status != "error" || e.ErrorType != "bad_data" {
					t.Errorf("GET %s as tenant %q: HTTP %d %s; want 400 with errorType bad_data", path, bad, r.code, r.body)
				}
			}
			_, err = remoteRead(ctx, http.DefaultClient, s.url+"/api/v1/read", bad, &prompb.Query{
				StartTimestampMs: now - 60_000, EndTimestampMs: T,
				Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "tenant_evil"}},
			}, prompb.ReadRequest_SAMPLES)
			if err == nil || !strings.Contains(err.Error(), "HTTP 400") {
				t.Errorf("remote read as tenant %q: %v; want HTTP 400", bad, err)
			}
		})
	}
	t.Run("nothing on disk for invalid tenants", func(t *testing.T) {
		tenants := filepath.Join(dir, "tenants")
		for _, bad := range []string{"../x", "a/b", "../../etc", "x\\y"} {
			if _, err := os.Lstat(filepath.Join(tenants, bad)); err == nil {
				t.Errorf("tenant %q: %s exists", bad, filepath.Join(tenants, bad))
			}
		}
		entries, err := os.ReadDir(tenants)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"a", "b"}) {
			t.Errorf("tenant directories %v, want [a b]: reads must not create tenants", names)
		}
	})
}

// TestTenantHeaderRequired runs Strata with -tenant.require-header: requests
// without X-Scope-OrgID get 401 on every endpoint, requests with it work.
func TestTenantHeaderRequired(t *testing.T) {
	requireE2E(t)
	s := startStrata(t, "", t.TempDir(), "-tenant.require-header")
	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		newSeries([]prompb.Sample{{Timestamp: now, Value: 1}}, "__name__", "header_test"),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code, body, err := sendWriteV1(ctx, http.DefaultClient, s.url+"/api/v1/write", "", req); err != nil || code != http.StatusUnauthorized {
		t.Errorf("write without tenant: HTTP %d %q %v; want 401", code, body, err)
	}
	if code, body, err := sendWriteV1(ctx, http.DefaultClient, s.url+"/api/v1/write", "t1", req); err != nil || code != http.StatusNoContent {
		t.Fatalf("write as tenant t1: HTTP %d %q %v; want 204", code, body, err)
	}
	params := url.Values{"query": {"header_test"}, "time": {apiTime(now)}}
	r := newAPIClient(s.url, "").get(t, "/api/v1/query", params)
	if e := decodeEnvelope(t, "query without tenant", r); r.code != http.StatusUnauthorized || e.Status != "error" {
		t.Errorf("query without tenant: HTTP %d %s; want 401 and status error", r.code, r.body)
	}
	r = newAPIClient(s.url, "t1").get(t, "/api/v1/query", params)
	want := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"header_test"},"value":[` + apiTime(now) + `,"1"]}]}}`
	if r.code != http.StatusOK || string(r.body) != want {
		t.Errorf("query as tenant t1: HTTP %d\n%s\nwant HTTP 200\n%s", r.code, r.body, want)
	}
	_, err := remoteRead(ctx, http.DefaultClient, s.url+"/api/v1/read", "", &prompb.Query{
		StartTimestampMs: now - 1000, EndTimestampMs: now,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "header_test"}},
	}, prompb.ReadRequest_SAMPLES)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("remote read without tenant: %v; want HTTP 401", err)
	}
}
