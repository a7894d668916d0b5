package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/objstore/filesystem"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

// storeAdmin is the server's admin over a bare store: no compactor.
type storeAdmin struct{ s *blocks.Store }

func (a storeAdmin) DeleteSeries(ctx context.Context, id string, mint, maxt int64, ms []*labels.Matcher) error {
	return a.s.DeleteSeries(ctx, id, mint, maxt, ms)
}
func (a storeAdmin) CleanTombstones(_ context.Context, id string) error {
	return a.s.CleanTombstones(id)
}

// TestDeleteSeriesEndpoints checks delete_series and clean_tombstones:
// off unless enabled, per tenant, authenticated as the tenant, Prometheus's
// parameters and answers; the head's data and the flushed blocks' data
// leave queries at once, other series and tenants keep theirs.
func TestDeleteSeriesEndpoints(t *testing.T) {
	bkt, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir(), Bucket: bkt, OutOfOrderWindow: 4 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	eng, err := promqlengine.New(promqlengine.Options{Timeout: time.Minute, MaxSamples: 1e6, LookbackDelta: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Samples every minute over 4h, 3s past the minute, for two series of
	// each of two tenants; the older half is flushed to blocks. The flush
	// ends at a block boundary (now), so the newer half is in order:
	// Prometheus's Delete leaves the out-of-order head alone
	// (prometheus/prometheus#11790).
	now := time.Now().Truncate(2 * time.Hour)
	write := func(id string, from, to time.Time) {
		t.Helper()
		app, err := store.Appender(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for ts := from; ts.Before(to); ts = ts.Add(time.Minute) {
			for _, name := range []string{"keep", "gone"} {
				ls := labels.FromStrings("__name__", name, "job", "x")
				if _, err := app.Append(0, ls, 0, ts.Add(3*time.Second).UnixMilli(), 1, nil, nil, storage.AppendV2Options{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b"} {
		write(id, now.Add(-4*time.Hour), now.Add(-2*time.Hour))
	}
	if err := store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		write(id, now.Add(-2*time.Hour), now)
	}

	auth, err := tenant.ParseAuth([]byte("tenants:\n  a: {bearer_token: tok-a}\n  b: {bearer_token: tok-b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	newAPI := func(admin TSDBAdmin, res tenant.Resolver) *httptest.Server {
		srv := httptest.NewServer(New(Options{
			Engine: eng, Parser: eng.Parser, Queryable: store.Queryable(), Tenants: res, Admin: admin,
			QueryTimeout: time.Minute, Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry(),
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	enabled := newAPI(storeAdmin{store}, tenant.Resolver{Auth: auth})
	disabled := newAPI(nil, tenant.Resolver{Auth: auth})
	post := func(srv *httptest.Server, path, token string, form url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// count returns count_over_time of name over the last 4h for the
	// tenant of token.
	count := func(token, name string) float64 {
		t.Helper()
		code, body := post(enabled, "/api/v1/query", token, url.Values{"query": {"count_over_time(" + name + "[4h])"}, "time": {strconvTime(now)}})
		if code != http.StatusOK {
			t.Fatalf("query: %d %s", code, body)
		}
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Data.Result) == 0 {
			return 0
		}
		var v float64
		_ = json.Unmarshal([]byte(r.Data.Result[0].Value[1].(string)), &v)
		return v
	}
	// And out-of-order samples of tenant a's gone in the range to delete,
	// 33s past the minute: the TSDB's Delete does not reach them in the
	// head (prometheus/prometheus#11790).
	app, err := store.Appender(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	for ts := now.Add(-3 * time.Hour); ts.Before(now.Add(-time.Hour)); ts = ts.Add(time.Minute) {
		if _, err := app.Append(0, labels.FromStrings("__name__", "gone", "job", "x"), 0, ts.Add(33*time.Second).UnixMilli(), 1, nil, nil, storage.AppendV2Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := count("tok-a", "gone"); n != 360 {
		t.Fatalf("before: %v samples of gone, want 360", n)
	}

	// The deleted range spans the flushed blocks and the head: 3h to 1h ago.
	delFrom, delTo := now.Add(-3*time.Hour), now.Add(-time.Hour)
	for _, tc := range []struct {
		name     string
		srv      *httptest.Server
		path     string
		token    string
		form     url.Values
		wantCode int
		wantBody string
	}{
		{"disabled", disabled, "/api/v1/admin/tsdb/delete_series", "tok-a", url.Values{"match[]": {"gone"}}, http.StatusInternalServerError, "admin APIs disabled"},
		{"disabled clean", disabled, "/api/v1/admin/tsdb/clean_tombstones", "tok-a", nil, http.StatusInternalServerError, "admin APIs disabled"},
		{"no credentials", enabled, "/api/v1/admin/tsdb/delete_series", "", url.Values{"match[]": {"gone"}}, http.StatusUnauthorized, "unauthorized"},
		{"no match[]", enabled, "/api/v1/admin/tsdb/delete_series", "tok-a", nil, http.StatusBadRequest, "no match[] parameter provided"},
		{"bad match[]", enabled, "/api/v1/admin/tsdb/delete_series", "tok-a", url.Values{"match[]": {"{"}}, http.StatusBadRequest, "parse error"},
		{"bad start", enabled, "/api/v1/admin/tsdb/delete_series", "tok-a", url.Values{"match[]": {"gone"}, "start": {"x"}}, http.StatusBadRequest, "invalid time value for 'start'"},
		{"delete", enabled, "/api/v1/admin/tsdb/delete_series", "tok-a", url.Values{"match[]": {`gone{job="x"}`}, "start": {strconvTime(delFrom)}, "end": {strconvTime(delTo)}}, http.StatusNoContent, ""},
		{"clean", enabled, "/api/v1/admin/tsdb/clean_tombstones", "tok-a", nil, http.StatusNoContent, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.srv, tc.path, tc.token, tc.form)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Errorf("HTTP %d %s, want %d containing %q", code, body, tc.wantCode, tc.wantBody)
			}
		})
	}
	for _, tc := range []struct {
		token, name string
		want        float64
	}{
		// tenant a's gone: the in-order samples in the range are gone at
		// once, the out-of-order head's as far as the TSDB's head reads
		// its tombstones; all of them once cut into a block, below.
		{"tok-a", "keep", 240},
		{"tok-b", "gone", 240},
		{"tok-b", "keep", 240},
	} {
		if n := count(tc.token, tc.name); n != tc.want {
			t.Errorf("tenant of %s, %s: %v samples, want %v", tc.token, tc.name, n, tc.want)
		}
	}
	// Cut into a block, the out-of-order samples meet the deletion request.
	if err := store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := count("tok-a", "gone"); n != 120 {
		t.Errorf("after the out-of-order head is cut: %v samples of gone, want the 120 outside the range", n)
	}
	if n := count("tok-b", "gone"); n != 240 {
		t.Errorf("tenant b after the flush: %v samples of gone, want 240", n)
	}
}

func strconvTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
