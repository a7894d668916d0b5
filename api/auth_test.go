package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

// TestAuthAnswers checks what the API answers around authentication: a CORS
// preflight is served without credentials (browsers send none with it),
// 401 and 403 carry their own errorType, and an empty or repeated tenant
// header is refused instead of falling back to another tenant.
func TestAuthAnswers(t *testing.T) {
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	eng, err := promqlengine.New(promqlengine.Options{Timeout: time.Minute, MaxSamples: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := tenant.ParseAuth([]byte("tenants:\n  a: {bearer_token: tok-a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	newAPI := func(res tenant.Resolver) *httptest.Server {
		srv := httptest.NewServer(New(Options{
			Engine: eng, Parser: eng.Parser, Queryable: store.Queryable(), Tenants: res,
			QueryTimeout: time.Minute, Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry(),
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	withAuth := newAPI(tenant.Resolver{Auth: auth})
	noAuth := newAPI(tenant.Resolver{Default: "anonymous"})

	for _, tc := range []struct {
		name     string
		srv      *httptest.Server
		method   string
		headers  map[string][]string
		wantCode int
		wantType string // errorType; "" for success
	}{
		{"preflight without credentials", withAuth, http.MethodOptions, map[string][]string{
			"Origin": {"https://grafana.example"}, "Access-Control-Request-Method": {"GET"},
		}, http.StatusNoContent, ""}, // as Prometheus 3 answers it
		{"no credentials", withAuth, http.MethodGet, nil, http.StatusUnauthorized, "unauthorized"},
		{"wrong token", withAuth, http.MethodGet, map[string][]string{"Authorization": {"Bearer nope"}}, http.StatusUnauthorized, "unauthorized"},
		{"other tenant", withAuth, http.MethodGet, map[string][]string{"Authorization": {"Bearer tok-a"}, tenant.HeaderName: {"b"}}, http.StatusForbidden, "forbidden"},
		{"own tenant", withAuth, http.MethodGet, map[string][]string{"Authorization": {"Bearer tok-a"}, tenant.HeaderName: {"a"}}, http.StatusOK, ""},
		{"empty tenant header", noAuth, http.MethodGet, map[string][]string{tenant.HeaderName: {""}}, http.StatusBadRequest, "bad_data"},
		{"two tenant headers", noAuth, http.MethodGet, map[string][]string{tenant.HeaderName: {"a", "b"}}, http.StatusBadRequest, "bad_data"},
		{"hidden-directory tenant", noAuth, http.MethodGet, map[string][]string{tenant.HeaderName: {"..."}}, http.StatusBadRequest, "bad_data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.srv.URL+"/api/v1/query?query=1", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range tc.headers {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("HTTP %d %s, want %d", resp.StatusCode, body, tc.wantCode)
			}
			if tc.method == http.MethodOptions {
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://grafana.example" {
					t.Errorf("Access-Control-Allow-Origin = %q, want the request's origin", got)
				}
				return
			}
			var env struct {
				Status    string `json:"status"`
				ErrorType string `json:"errorType"`
			}
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("answer %s: %v", body, err)
			}
			if env.ErrorType != tc.wantType {
				t.Errorf("errorType %q (%s), want %q", env.ErrorType, body, tc.wantType)
			}
		})
	}
}
