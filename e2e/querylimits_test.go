package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/internal/proctest"
)

// TestQueryLimitsBesidePrometheus sends Strata and Prometheus 3 the same
// costly queries. A query nested 30000 parentheses deep, which Prometheus
// parses for seconds, Strata refuses at once, unparsed (400 bad_data naming
// the limit); one within the limits whose timeout passes while it is being
// parsed is a timeout (503, errorType timeout), as Prometheus answers it,
// not bad data.
func TestQueryLimitsBesidePrometheus(t *testing.T) {
	requireE2E(t)
	strata := startStrata(t, "", t.TempDir())
	prom := startPrometheus(t, "prometheus3", prometheus3Bin(t), proctest.FreeAddr(t), "global: {}\n")
	nest := func(n int) string { return strings.Repeat("(", n) + "vector(1)" + strings.Repeat(")", n) }
	now := apiTime(time.Now().UnixMilli())
	type answer struct {
		code      int
		errorType string
		error     string
		took      time.Duration
	}
	ask := func(base string, params url.Values) answer {
		c := newAPIClient(base, "")
		c.hc.Timeout = 2 * time.Minute
		start := time.Now()
		r := c.post(t, "/api/v1/query", params)
		took := time.Since(start)
		e := decodeEnvelope(t, base, r)
		return answer{r.code, e.ErrorType, e.Error, took}
	}

	deep := url.Values{"query": {nest(30000)}, "time": {now}}
	s, p := ask(strata.url, deep), ask(prom.url, deep)
	t.Logf("30000 parentheses: Strata HTTP %d in %s, Prometheus 3 HTTP %d in %s", s.code, s.took, p.code, p.took)
	if s.code != http.StatusBadRequest || s.errorType != "bad_data" || !strings.Contains(s.error, "max-nesting-depth") {
		t.Errorf("Strata: HTTP %d %s %q, want 400 bad_data naming the nesting limit", s.code, s.errorType, s.error)
	}

	// 900 parentheses are within the limit and take milliseconds to parse:
	// a 1ms timeout passes while the query is parsed or just after. Strata
	// answers a timeout each time; Prometheus 3 mostly does, and sometimes
	// 422 execution "context deadline exceeded" (logged, not required).
	slow := url.Values{"query": {nest(900)}, "time": {now}, "timeout": {"1ms"}}
	promAnswers := map[string]int{}
	for range 5 {
		s, p = ask(strata.url, slow), ask(prom.url, slow)
		if s.code != http.StatusServiceUnavailable || s.errorType != "timeout" {
			t.Errorf("Strata: HTTP %d %s %q, want 503 timeout", s.code, s.errorType, s.error)
		}
		promAnswers[fmt.Sprintf("%d %s %q", p.code, p.errorType, p.error)]++
	}
	t.Logf("900 parentheses, timeout 1ms, 5 times: Prometheus 3 answered %v", promAnswers)

	long := url.Values{"query": {`vector(1) # ` + strings.Repeat("x", 1<<20)}, "time": {now}}
	if s = ask(strata.url, long); s.code != http.StatusBadRequest || !strings.Contains(s.error, "max-length") {
		t.Errorf("a query over 1 MiB: HTTP %d %s %q, want 400 naming the length limit", s.code, s.errorType, s.error)
	}
}
