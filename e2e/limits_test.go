package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/testutil"
)

// TestLimitsThroughTheBinary runs the strata binary with a configuration
// file of default limits and an overrides file, and checks that the limits
// are wired in: a tenant over its series limit gets 400 and keeps only the
// series within it, a tenant over its rate gets 429 while another is
// unaffected, the overrides file's changes take effect without a restart
// (by polling, and by POST /-/reload), and the hits show in /metrics.
func TestLimitsThroughTheBinary(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	overrides := filepath.Join(dir, "overrides.yaml")
	writeFile := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(overrides, `
overrides:
  small:
    max_active_series: 3
  slow:
    ingestion_rate: 1
    ingestion_burst: 10
`)
	cfg := filepath.Join(dir, "strata.yaml")
	writeFile(cfg, fmt.Sprintf(`
limits:
  max_label_names_per_series: 10
overrides:
  file: %s
  reload_period: 200ms
`, overrides))
	s := startStrata(t, "", filepath.Join(dir, "data"), "-config.file", cfg)
	now := time.Now().UnixMilli()
	write := func(tenant string, n int, ts int64) (int, string) {
		t.Helper()
		req := &prompb.WriteRequest{}
		for i := range n {
			req.Timeseries = append(req.Timeseries, newSeries([]prompb.Sample{{Timestamp: ts, Value: float64(i)}}, "__name__", "limited", "i", fmt.Sprint(i)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, body, err := sendWriteV1(ctx, http.DefaultClient, s.url+"/api/v1/write", tenant, req)
		if err != nil {
			t.Fatalf("write as %s: %v", tenant, err)
		}
		return code, body
	}
	count := func(tenant string) float64 {
		t.Helper()
		v, _ := scalarValue(t, newAPIClient(s.url, tenant), `count(limited)`, now+3000)
		return v
	}

	if code, body := write("small", 5, now); code != http.StatusBadRequest || !strings.Contains(body, "max_active_series") {
		t.Errorf("5 series for a tenant limited to 3: HTTP %d %q, want 400 naming max_active_series", code, body)
	}
	if n := count("small"); n != 3 {
		t.Errorf("tenant small stores %v series, want 3", n)
	}
	if code, _ := write("slow", 10, now); code != http.StatusNoContent {
		t.Errorf("first request of slow: HTTP %d", code)
	}
	if code, body := write("slow", 10, now+1000); code != http.StatusTooManyRequests || !strings.Contains(body, "ingestion_rate") {
		t.Errorf("second request of slow: HTTP %d %q, want 429 naming ingestion_rate", code, body)
	}
	for i := range 3 {
		if code, body := write("other", 10, now+int64(i)*1000); code != http.StatusNoContent {
			t.Errorf("tenant other: HTTP %d %q", code, body)
		}
	}

	// Raise small's limit in the file: the poller picks it up.
	writeFile(overrides, `
overrides:
  small:
    max_active_series: 10
`)
	testutil.Eventually(t, 30*time.Second, "the overrides change to apply", func() bool {
		code, _ := write("small", 5, now+1000)
		return code == http.StatusNoContent
	})
	if n := count("small"); n != 5 {
		t.Errorf("after the change tenant small stores %v series, want 5", n)
	}
	// Lower it again and apply it at once with POST /-/reload.
	writeFile(overrides, "overrides: {small: {max_active_series: 5, max_label_names_per_series: 1}}\n")
	resp, err := http.Post(s.url+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /-/reload: HTTP %d", resp.StatusCode)
	}
	if code, body := write("small", 1, now+2000); code != http.StatusBadRequest || !strings.Contains(body, "max_label_names_per_series") {
		t.Errorf("after /-/reload: HTTP %d %q, want 400 naming max_label_names_per_series", code, body)
	}

	for _, lim := range []string{"max_active_series", "ingestion_rate", "max_label_names_per_series"} {
		if v := testutil.RequireMetric(t, s.metrics(), "strata_limit_hits_total", "limit", lim); v == 0 {
			t.Errorf("strata_limit_hits_total{limit=%q} is 0", lim)
		}
	}
	if v := testutil.RequireMetric(t, s.metrics(), "strata_active_series", "tenant", "small"); v != 5 {
		t.Errorf("strata_active_series{tenant=small} = %v, want 5", v)
	}
}
