package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/objstore/miniotest"
)

// scrapeTarget serves metrics that change deterministically with each
// scrape: counters that reset every 40 scrapes, gauges that move both
// ways, and a classic histogram.
type scrapeTarget struct{ n atomic.Int64 }

func (s *scrapeTarget) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	n := s.n.Add(1)
	var b strings.Builder
	b.WriteString("# HELP cluster_scrape_requests_total Requests, by path.\n# TYPE cluster_scrape_requests_total counter\n")
	for i, path := range []string{"/a", "/b", "/c"} {
		fmt.Fprintf(&b, "cluster_scrape_requests_total{path=%q} %g\n", path, float64((n%40)*int64(i+1))*1.5)
	}
	b.WriteString("# HELP cluster_scrape_temperature A gauge, by room.\n# TYPE cluster_scrape_temperature gauge\n")
	for i := range 3 {
		fmt.Fprintf(&b, "cluster_scrape_temperature{room=\"r%d\"} %g\n", i, float64((n*37+int64(i)*11)%100-50)+0.25)
	}
	b.WriteString("# HELP cluster_scrape_latency_seconds A classic histogram.\n# TYPE cluster_scrape_latency_seconds histogram\n")
	for i, le := range []string{"0.1", "0.5", "1", "+Inf"} {
		fmt.Fprintf(&b, "cluster_scrape_latency_seconds_bucket{le=%q} %d\n", le, n*int64(2+i*i))
	}
	fmt.Fprintf(&b, "cluster_scrape_latency_seconds_sum %g\ncluster_scrape_latency_seconds_count %d\n", float64(n)*4.25, n*11)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}

// TestClusterPrometheusRemoteWrite runs a cluster on a real MinIO bucket
// (three ingesters, a distributor, a querier) and a real Prometheus 3
// scraping a target every second and remote-writing (2.0) to the
// distributor. One ingester is killed with SIGKILL while Prometheus writes,
// and restarted. Prometheus's writes all succeed (no failed samples), and
// once it has sent everything up to the evaluation time, the querier's
// answers over the whole window are byte for byte Prometheus's own.
func TestClusterPrometheusRemoteWrite(t *testing.T) {
	requireE2E(t)
	minio := miniotest.Start(t)
	s3 := []string{"-bucket.backend=s3", "-bucket.s3.endpoint", minio.Endpoint, "-bucket.s3.bucket", minio.Bucket,
		"-bucket.s3.access-key", minio.AccessKey, "-bucket.s3.secret-key", minio.SecretKey, "-bucket.s3.insecure", "-bucket.s3.path-style"}
	names := []string{"ingester-1", "ingester-2", "ingester-3"}
	c := newTestCluster(t, names...)
	start := time.Now()
	ing := map[string]*strataProc{}
	for _, n := range names {
		ing[n] = c.start(n, "ingester", "", t.TempDir(), s3...)
	}
	dist := c.start("distributor", "distributor", "", t.TempDir(), s3...)
	q := c.start("querier", "querier", "", t.TempDir(), s3...)
	for _, p := range []*strataProc{dist, q} {
		waitActive(t, p.url, start, names...)
	}

	target := httptest.NewServer(&scrapeTarget{})
	t.Cleanup(target.Close)
	promAddr := proctest.FreeAddr(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: target
    static_configs:
      - targets: [%q]
remote_write:
  - url: %s/api/v1/write
    protobuf_message: io.prometheus.write.v2.Request
    queue_config:
      batch_send_deadline: 1s
      min_shards: 1
      max_shards: 1
      capacity: 10000
      max_samples_per_send: 2000
      min_backoff: 100ms
      max_backoff: 1s
`, strings.TrimPrefix(target.URL, "http://"), dist.url)
	prom := startPrometheus(t, "prometheus3", prometheus3Bin(t), promAddr, cfg)
	promAPI, qAPI := newAPIClient(prom.url, ""), newAPIClient(q.url, "")
	scrapes := func() float64 {
		v, _ := scalarValue(t, promAPI, `count_over_time(up[1h])`, nowMs())
		return v
	}
	waitScrapes := func(what string, n float64) {
		t.Helper()
		testutil.Eventually(t, time.Duration(n)*time.Second+scrapeReadyWait, fmt.Sprintf("%s: %v scrapes", what, n), func() bool { return scrapes() >= n })
	}
	waitScrapes("before the kill", 10)

	victim := ing["ingester-2"]
	victim.Kill()
	t.Logf("killed ingester-2 (%v) after %v scrapes", victim.WaitErr(), scrapes())
	// Until its heartbeat times out the ring counts it healthy (pushes to it
	// fail, the two others make the quorum); then the others are the
	// write set.
	testutil.Eventually(t, 30*time.Second, "the distributor sees ingester-2 unhealthy", func() bool {
		ms, err := ringMembers(dist.url)
		if err != nil {
			return false
		}
		for _, m := range ms {
			ts, err := time.Parse(time.RFC3339, m.Timestamp)
			if m.ID == "ingester-2" && err == nil && time.Since(ts) > 6*time.Second {
				return true
			}
		}
		return false
	})
	waitScrapes("ingester-2 unhealthy", scrapes()+3)
	restarted := time.Now()
	ing["ingester-2"] = c.start("ingester-2", "ingester", victim.addr, victim.dir, s3...)
	waitActive(t, dist.url, restarted, names...)
	waitScrapes("after the restart", scrapes()+5)

	env := &scrapeEnv{strata: q, prom: prom, strataAPI: qAPI, promAPI: promAPI}
	T := env.pickEvalTime(t)
	// Prometheus sends through one shard in the order it scraped: once its
	// highest sent timestamp passes T+2s and nothing is pending, every
	// scrape up to T was acknowledged. Cross-check: both count the same
	// samples.
	const countQ = `sum(count_over_time(cluster_scrape_requests_total[1h])) + sum(count_over_time(cluster_scrape_temperature[1h])) + sum(count_over_time(cluster_scrape_latency_seconds_bucket[1h])) + sum(count_over_time(up[1h]))`
	want, _ := scalarValue(t, promAPI, countQ, T)
	promMetrics := testutil.Scrape(prom.url + "/metrics")
	testutil.Eventually(t, catchUpTimeout, "Prometheus to have sent every scrape up to the evaluation time", func() bool {
		sent := testutil.RequireMetric(t, promMetrics, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds")
		have, _ := scalarValue(t, qAPI, countQ, T)
		return sent*1000 >= float64(T+2000) && have == want
	})
	g := testutil.Scrape(prom.url + "/metrics")
	failed := testutil.RequireMetric(t, g, "prometheus_remote_storage_samples_failed_total")
	retried := testutil.RequireMetric(t, g, "prometheus_remote_storage_samples_retried_total")
	total := testutil.RequireMetric(t, g, "prometheus_remote_storage_samples_total")
	t.Logf("Prometheus sent %v samples (%v retried, %v failed); %v of its samples before T", total, retried, failed, want)
	if failed != 0 {
		t.Errorf("prometheus_remote_storage_samples_failed_total is %v: writes failed through the loss of an ingester", failed)
	}
	// The distributor answered every write 2xx: a quorum of the ingesters
	// had it through the loss.
	dm := dist.metrics()
	if n := testutil.RequireMetric(t, dm, "strata_remote_write_requests_total", "code", "204"); n == 0 {
		t.Errorf("the distributor answered no write 204")
	}
	for _, code := range []string{"400", "500", "503"} {
		if n := testutil.Metric(t, dm, "strata_remote_write_requests_total", "code", code); n != 0 {
			t.Errorf("the distributor answered %v writes %s", n, code)
		}
	}

	// The whole window: from before the first scrape to T.
	from := start.UnixMilli() / 1000 * 1000
	instant := []string{
		`{job="target"}[1h]`,
		`cluster_scrape_temperature`,
		`rate(cluster_scrape_requests_total[10s])`,
		`sum(cluster_scrape_requests_total)`,
		`histogram_quantile(0.9, rate(cluster_scrape_latency_seconds_bucket[15s]))`,
		`count_over_time(up[1h])`,
	}
	for _, expr := range instant {
		compareAnswers(t, "instant "+expr, qAPI.query(t, expr, T), promAPI.query(t, expr, T), p2Unsorted)
	}
	for _, expr := range []string{
		`cluster_scrape_temperature`,
		`rate(cluster_scrape_requests_total[5s])`,
		`increase(cluster_scrape_requests_total[10s])`,
		`max_over_time(cluster_scrape_temperature[7s])`,
		`histogram_quantile(0.5, sum by (le) (rate(cluster_scrape_latency_seconds_bucket[5s])))`,
		`scrape_samples_scraped`,
	} {
		compareAnswers(t, "range "+expr, qAPI.queryRange(t, expr, from, T, time.Second), promAPI.queryRange(t, expr, from, T, time.Second), 0)
	}
}
