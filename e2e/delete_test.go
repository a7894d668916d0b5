package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// TestDeleteSeriesMatchesPrometheus writes four days of node-exporter-like
// traffic through remote write into Strata and a Prometheus 3, lets Strata
// ship, merge and downsample it (raw, 1m and 1h blocks in the bucket), then
// deletes the same series from both with delete_series: one host over
// whole hours across two days, and one series of another host over all
// time. Every comparison (raw samples around the deleted range's edges, 5m
// windows of 1m data, hourly and daily windows) must agree with Prometheus:
// at once, after the compactor has rewritten the blocks, and after the
// deletion request is gone from the bucket. Nothing else may change.
func TestDeleteSeriesMatchesPrometheus(t *testing.T) {
	requireE2E(t)
	promBin := prometheus3Bin(t)
	dir := t.TempDir()
	strata := startStrata(t, "", dir,
		"-api.enable-admin",
		"-storage.out-of-order-window", lhOOOWindw.String(),
		"-storage.ship-interval", "1s",
		"-storage.bucket-sync-interval", "2s",
		"-compactor.interval", "2s",
		"-compactor.deletion-delay", "10s")
	promCfg := fmt.Sprintf("global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: %s\n", lhOOOWindw)
	prom := startPrometheus(t, "prometheus3", promBin, proctest.FreeAddr(t), promCfg,
		"--web.enable-remote-write-receiver", "--web.enable-admin-api", "--storage.tsdb.retention.time=5y")
	sapi, papi := newAPIClient(strata.url, ""), newAPIClient(prom.url, "")

	end := time.Now().Add(-30 * time.Minute)
	start := end.Add(-4 * 24 * time.Hour).Add(-17*time.Minute - 3*time.Second)
	gen := newLHGen(start, end)
	snd := &lhSender{hc: &http.Client{Timeout: time.Minute}, strata: strata.url + "/api/v1/write", prom: prom.url + "/api/v1/write"}
	for {
		req, _, ok := gen.nextRequest()
		if !ok {
			break
		}
		snd.send(t, req)
	}
	if req := gen.flushHeld(); req != nil {
		snd.send(t, req)
	}
	if r := sapi.post(t, "/api/v1/admin/flush", nil); r.code != http.StatusOK {
		t.Fatalf("flush: %d %s", r.code, r.body)
	}
	metric := func(name string, labelPairs ...string) float64 {
		return testutil.Metric(t, strata.metrics(), name, labelPairs...)
	}
	// Two whole days are complete long enough to be merged and downsampled.
	testutil.Eventually(t, 5*time.Minute, "two days downsampled to 1m and 1h", func() bool {
		return metric("strata_compactor_downsampled_blocks_total", "resolution", "1m0s") >= 2 &&
			metric("strata_compactor_downsampled_blocks_total", "resolution", "1h0m0s") >= 2
	})
	settle := func() {
		t.Helper()
		runs := metric("strata_compactor_runs_total")
		testutil.Eventually(t, 5*time.Minute, "two compactor runs", func() bool {
			return metric("strata_compactor_runs_total") >= runs+2
		})
		if f := metric("strata_compactor_run_failures_total"); f > 0 {
			t.Fatalf("%v compactor runs failed:\n%s", f, strata.Tail(40))
		}
		since := float64(time.Now().Unix())
		testutil.Eventually(t, time.Minute, "a bucket sync", func() bool {
			return metric("strata_bucket_last_sync_timestamp_seconds") >= since
		})
	}
	settle()

	day1 := start.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	// [delFrom, delTo): whole hours across two days. Its edges, and the hour
	// either side of each compared sample by sample, must be outside the
	// sender's five-hour outage, which the time of day the test runs at
	// moves across the second day (delFrom is always hours before it).
	delFrom := day1.Add(5 * time.Hour)
	outFrom, outTo := start.Add(gen.outage[0]), start.Add(gen.outage[1])
	var delTo time.Time
	for _, h := range []time.Duration{35, 30, 40, 26, 45} {
		if delTo = day1.Add(h * time.Hour); delTo.Add(time.Hour).Before(outFrom) || delTo.Add(-time.Hour).After(outTo) {
			break
		}
	}
	compare := func(name string) {
		t.Helper()
		checked := 0
		hStart, hEnd := start.Truncate(time.Hour).Add(2*time.Hour), end.Truncate(time.Hour)
		c, _ := lhCompare(t, sapi, papi, name+" hourly", lhChecks("1h", 60), hStart, hEnd, time.Hour)
		checked += c
		c, _ = lhCompare(t, sapi, papi, name+" daily", lhChecks("1d", 1440), day1, day1.Add(48*time.Hour), 24*time.Hour)
		checked += c
		for _, edge := range []time.Time{delFrom, delTo} {
			c, _ = lhCompare(t, sapi, papi, name+" 5m windows", lhChecks("5m", 5), edge.Add(-2*time.Hour), edge.Add(2*time.Hour), 5*time.Minute)
			checked += c
			c, _ = lhCompare(t, sapi, papi, name+" raw", []lhCheck{{query: `{job="node"}`}}, edge.Add(-time.Hour), edge.Add(time.Hour), time.Minute)
			checked += c
		}
		t.Logf("%s: %d points compared", name, checked)
		if t.Failed() {
			ls, _ := exec.Command(strataBin, "tools", "bucket", "ls", "-storage.path", dir).CombinedOutput()
			t.Fatalf("blocks in the bucket:\n%s", ls)
		}
	}
	compare("before the deletion")

	del := func(c *apiClient, params url.Values) {
		t.Helper()
		r := c.post(t, "/api/v1/admin/tsdb/delete_series", params)
		if r.code != http.StatusNoContent {
			t.Fatalf("delete_series %v on %s: HTTP %d %s", params, c.base, r.code, r.body)
		}
	}
	for _, c := range []*apiClient{sapi, papi} {
		del(c, url.Values{"match[]": {`{instance="host-1:9100"}`}, "start": {apiTime(delFrom.UnixMilli())}, "end": {apiTime(delTo.UnixMilli() - 1)}})
		del(c, url.Values{"match[]": {`node_load1{instance="host-0:9100"}`}})
	}
	// The deletion shows: host-1 has no sample in the deleted range (the
	// raw samples of a matrix selector, read from the bucket's blocks).
	r := sapi.query(t, fmt.Sprintf(`{instance="host-1:9100"}[%dh]`, int(delTo.Sub(delFrom).Hours())), delTo.UnixMilli()-1)
	if data := mustSucceed(t, "host-1 in the deleted range", r); !strings.Contains(string(data), `"result":[]`) {
		t.Errorf("host-1 still has samples in the deleted range: %s", clip(r.body))
	}
	compare("at once")

	testutil.Eventually(t, 5*time.Minute, "blocks rewritten without the deleted series", func() bool {
		return metric("strata_compactor_blocks_marked_total", "reason", "deleted-series") > 0
	})
	settle()
	compare("after the rewrite")

	deletions := filepath.Join(dir, "bucket", "anonymous", "deletions")
	testutil.Eventually(t, 5*time.Minute, "the deletion requests done and removed", func() bool {
		files, _ := filepath.Glob(filepath.Join(deletions, "*.json"))
		return len(files) == 0
	})
	settle()
	compare("after the requests are gone")
	if out, err := exec.Command(strataBin, "tools", "bucket", "verify", "-storage.path", dir).CombinedOutput(); err != nil {
		t.Errorf("strata tools bucket verify: %v\n%s", err, out)
	}
	if _, err := os.Stat(deletions); err == nil {
		entries, _ := os.ReadDir(deletions)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) > 0 {
			t.Errorf("deletion requests left: %s", strings.Join(names, ", "))
		}
	}
}
