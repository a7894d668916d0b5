package querier

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/strata-tsdb/strata/tenant"
)

// headers records the headers of requests several servers get.
type headers struct {
	mu   sync.Mutex
	list []http.Header
}

// fakeRuler answers the rules API with body (code 200 unless code is set)
// and records the headers of what it was asked.
func fakeRuler(t *testing.T, code int, body string, seen *headers) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.mu.Lock()
		seen.list = append(seen.list, r.Header.Clone())
		seen.mu.Unlock()
		if code != 0 {
			w.WriteHeader(code)
		}
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestRulesHandler(t *testing.T) {
	const (
		groupA     = `{"name":"a","file":"f1","rules":[],"lastEvaluation":"2026-12-07T10:00:00Z"}`
		groupAOld  = `{"name":"a","file":"f1","rules":[{"x":1}],"lastEvaluation":"2026-12-07T09:00:00Z"}`
		groupB     = `{"name":"b","file":"f0","rules":[],"lastEvaluation":"2026-12-07T10:00:00Z"}`
		alertX     = `{"labels":{"alertname":"X","host":"h1"},"state":"firing","activeAt":"2026-12-07T09:00:00Z"}`
		alertY     = `{"labels":{"alertname":"Y"},"state":"pending","activeAt":"2026-12-07T09:00:00Z"}`
		rulesOf    = `{"status":"success","data":{"groups":[%s]}}`
		alertsOf   = `{"status":"success","data":{"alerts":[%s]}}`
		badRequest = `{"status":"error","errorType":"bad_data","error":"bad type"}`
	)
	sprintf := func(f, items string) string { return strings.Replace(f, "%s", items, 1) }
	for _, tc := range []struct {
		name     string
		path     string
		rulers   []string // answers, "500" for a failing ruler, "400" for a refusal
		query    string
		wantCode int
		want     string // the answer's data, or an error substring
	}{
		{name: "groups of two rulers, sorted by file and name", path: "/api/v1/rules",
			rulers: []string{sprintf(rulesOf, groupA), sprintf(rulesOf, groupB)}, wantCode: 200,
			want: `{"groups":[` + groupB + `,` + groupA + `]}`},
		{name: "a group listed by two rulers during a handover: the latest evaluation", path: "/api/v1/rules",
			rulers: []string{sprintf(rulesOf, groupAOld), sprintf(rulesOf, groupA)}, wantCode: 200,
			want: `{"groups":[` + groupA + `]}`},
		{name: "alerts, once each, by labels", path: "/api/v1/alerts",
			rulers: []string{sprintf(alertsOf, alertY+","+alertX), sprintf(alertsOf, alertX)}, wantCode: 200,
			want: `{"alerts":[` + alertX + `,` + alertY + `]}`},
		{name: "no ruler: no groups", path: "/api/v1/rules", wantCode: 200, want: `{"groups":[]}`},
		{name: "no ruler: no alerts", path: "/api/v1/alerts", wantCode: 200, want: `{"alerts":[]}`},
		{name: "a failing ruler fails the answer", path: "/api/v1/rules",
			rulers: []string{sprintf(rulesOf, groupA), "500"}, wantCode: 503, want: "ruler"},
		{name: "a refused request is passed on", path: "/api/v1/rules",
			rulers: []string{sprintf(rulesOf, groupA), "400"}, wantCode: 400, want: "bad type"},
		{name: "pagination is refused", path: "/api/v1/rules", query: "group_limit=1",
			rulers: []string{sprintf(rulesOf, groupA)}, wantCode: 400, want: "group_limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen headers
			var addrs []string
			for _, a := range tc.rulers {
				switch a {
				case "500":
					addrs = append(addrs, fakeRuler(t, 500, "boom", &seen))
				case "400":
					addrs = append(addrs, fakeRuler(t, 400, badRequest, &seen))
				default:
					addrs = append(addrs, fakeRuler(t, 0, a, &seen))
				}
			}
			h := RulesHandler(RulesOptions{
				Rulers: func() ([]string, error) { return addrs, nil },
				Local:  http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("local rules asked") }),
			})
			req := httptest.NewRequest(http.MethodGet, tc.path+"?"+tc.query, nil)
			req.Header.Set("Authorization", "Bearer tok")
			req.Header.Set(tenant.HeaderName, "team-a")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("HTTP %d %s, want %d", rec.Code, rec.Body, tc.wantCode)
			}
			if tc.wantCode != 200 {
				if !strings.Contains(rec.Body.String(), tc.want) {
					t.Errorf("answer %s lacks %q", rec.Body, tc.want)
				}
				return
			}
			var env struct {
				Status string          `json:"status"`
				Data   json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Status != "success" {
				t.Fatalf("answer %s: %v", rec.Body, err)
			}
			if string(env.Data) != tc.want {
				t.Errorf("data\n%s\nwant\n%s", env.Data, tc.want)
			}
			for _, hd := range seen.list {
				if hd.Get("Authorization") != "Bearer tok" || hd.Get(tenant.HeaderName) != "team-a" || hd.Get(LocalRulesHeader) == "" {
					t.Errorf("a ruler was asked with headers %v: want the request's credentials and tenant, and %s", hd, LocalRulesHeader)
				}
			}
		})
	}
}

func TestRulesHandlerLocal(t *testing.T) {
	local := false
	h := RulesHandler(RulesOptions{
		Rulers: func() ([]string, error) { t.Error("rulers asked for a local request"); return nil, nil },
		Local:  http.HandlerFunc(func(http.ResponseWriter, *http.Request) { local = true }),
	})
	req := httptest.NewRequest(http.MethodGet, "/api/v1/rules", nil)
	req.Header.Set(LocalRulesHeader, "1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !local {
		t.Error("a request with the local header was not answered locally")
	}
}
