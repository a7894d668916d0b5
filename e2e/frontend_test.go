package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

func memcachedAddr(t *testing.T) string {
	_, addr := proctest.StartMemcached(t)
	return addr
}

// cacheGen writes node-exporter-like and request-counter series with
// unaligned timestamps (each series has its own phase within the 15s
// interval), counter resets and decimal gauges.
type cacheGen struct{ seed float64 }

func (g cacheGen) request(from, to int64, extra string) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	const interval = 15000
	for i := range 3 {
		inst := fmt.Sprintf("host-%d%s", i, extra)
		phase := int64(137*i+41) + int64(g.seed*1000)
		var load, reqs, errs []prompb.Sample
		for ts := from/interval*interval + phase; ts <= to; ts += interval {
			if ts < from {
				continue
			}
			k := float64(ts / interval)
			load = append(load, prompb.Sample{Timestamp: ts, Value: math.Round((1.5+math.Sin(k/40+g.seed+float64(i)))*100) / 100})
			// Counters reset every 1000 intervals.
			n := float64(int64(k) % 1000)
			reqs = append(reqs, prompb.Sample{Timestamp: ts, Value: n * float64(3+i) * (1 + g.seed)})
			errs = append(errs, prompb.Sample{Timestamp: ts, Value: math.Floor(n * 0.07 * float64(i+1))})
		}
		req.Timeseries = append(req.Timeseries,
			newSeries(load, "__name__", "node_load1", "job", "node", "instance", inst),
			newSeries(reqs, "__name__", "http_requests_total", "job", "api", "instance", inst, "code", "200"),
			newSeries(errs, "__name__", "http_requests_total", "job", "api", "instance", inst, "code", "500"),
		)
	}
	return req
}

// cacheQueries are dashboard-like range queries, time-relative ones included.
func cacheQueries(at int64) []string {
	return []string{
		`rate(http_requests_total[5m])`,
		`sum by (code) (rate(http_requests_total[5m]))`,
		`sum(increase(http_requests_total[1h] offset 30m))`,
		`max_over_time(node_load1[10m])`,
		`count(node_load1)`,
		`node_load1 / on(instance) group_left() (sum by (instance) (rate(http_requests_total[5m])) > 0)`,
		`time() - timestamp(node_load1)`,
		`max_over_time((time() - timestamp(node_load1))[30m:1m])`,
		fmt.Sprintf(`node_load1 - node_load1 @ %s`, strconv.FormatFloat(float64(at)/1000, 'f', 3, 64)),
		`quantile(0.9, node_load1)`,
	}
}

// TestResultsCacheStaysCorrect runs the binary with its results cache
// (in memory, and in a real memcached) beside Prometheus 3 fed the same
// remote-write requests, through what makes caches stale: a tenant whose
// sender lags hours behind and catches up (every sample older than the
// freshness horizon, into ranges already cached, the shape of mimir#2275),
// out-of-order samples into a cached range, and a new series backfilled
// into it. After each, every range query (cached parts answered from the
// cache, as the hit metrics show) equals Prometheus's answer byte for byte.
// Tenants never see each other's cached answers, and with memcached the
// cache survives a restart of Strata and stays correct.
func TestResultsCacheStaysCorrect(t *testing.T) {
	requireE2E(t)
	for _, backend := range []string{"inmemory", "memcached"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			flags := cacheFlags(t, backend)
			strata := startStrata(t, "", dir, flags...)
			sys := &cacheSystem{write: strata, query: strata, invalidating: []*strataProc{strata}}
			if backend == "memcached" {
				// The cache outlives the process: a restart finds it.
				sys.restart = func() {
					strata.Kill()
					strata = startStrata(t, strata.addr, dir, flags...)
					sys.write, sys.query, sys.invalidating = strata, strata, []*strataProc{strata}
				}
			}
			testResultsCache(t, sys)
		})
	}
}

// TestClusterResultsCacheStaysCorrect is TestResultsCacheStaysCorrect for
// a cluster (three ingesters, a distributor, a querier) sharing a real
// memcached: the querier splits and caches, and the ingesters, where the
// late and out-of-order samples are committed, invalidate what they make
// stale before the distributor acknowledges them.
func TestClusterResultsCacheStaysCorrect(t *testing.T) {
	requireE2E(t)
	flags := cacheFlags(t, "memcached")
	names := []string{"ingester-1", "ingester-2", "ingester-3"}
	c := newTestCluster(t, names...)
	started := time.Now()
	sys := &cacheSystem{}
	for _, n := range names {
		sys.invalidating = append(sys.invalidating, c.start(n, "ingester", "", t.TempDir(), flags...))
	}
	sys.write = c.start("distributor", "distributor", "", t.TempDir(), flags...)
	sys.query = c.start("querier", "querier", "", t.TempDir(), flags...)
	for _, p := range []*strataProc{sys.write, sys.query} {
		waitActive(t, p.url, started, names...)
	}
	testResultsCache(t, sys)
}

// cacheFlags are the flags of the Strata processes of a results-cache test.
func cacheFlags(t *testing.T, backend string) []string {
	flags := []string{
		// Parts of an hour: a 6h window is split into six or seven parts.
		"-query.split-interval", "1h",
		"-query.results-cache.backend", backend,
		"-query.results-cache.max-freshness", "10m",
		"-storage.out-of-order-window", "10m",
		"-compactor.enabled=false",
	}
	if backend == "memcached" {
		flags = append(flags, "-query.results-cache.memcached.addresses", memcachedAddr(t), "-query.results-cache.memcached.max-item-bytes", strconv.Itoa(4<<20))
	}
	return flags
}

// cacheSystem is the Strata a results-cache test writes to and queries.
type cacheSystem struct {
	write, query *strataProc
	// invalidating are the processes whose writes invalidate the cache.
	invalidating []*strataProc
	// restart restarts the system; nil when its cache would not survive it.
	restart func()
}

func (s *cacheSystem) invalidations(t *testing.T, tenant string) float64 {
	var n float64
	for _, p := range s.invalidating {
		n += testutil.Metric(t, p.metrics(), "strata_results_cache_invalidations_total", "tenant", tenant)
	}
	return n
}

func testResultsCache(t *testing.T, sys *cacheSystem) {
	promAddr := proctest.FreeAddr(t)
	prom := startPrometheus(t, "prometheus", prometheus3Bin(t), promAddr,
		"global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: 10m\n",
		"--web.enable-remote-write-receiver")

	ctx := context.Background()
	hc := &http.Client{Timeout: 30 * time.Second}
	send := func(tenant string, req *prompb.WriteRequest, toProm bool) {
		t.Helper()
		code, body, err := sendWriteV1(ctx, hc, sys.write.url+"/api/v1/write", tenant, req)
		if err != nil || code/100 != 2 {
			t.Fatalf("write to Strata (tenant %s): %d %s %v", tenant, code, body, err)
		}
		if toProm {
			code, body, err = sendWriteV1(ctx, hc, prom.url+"/api/v1/write", "", req)
			if err != nil || code/100 != 2 {
				t.Fatalf("write to Prometheus: %d %s %v", code, body, err)
			}
		}
	}

	const minute = 60000
	now := time.Now().UnixMilli() / minute * minute
	start, end := now-6*60*minute, now
	lagEnd := now - 3*60*minute // the sender is 3h behind
	genA := cacheGen{seed: 0}
	send("a", genA.request(start-30*minute, lagEnd, ""), true)

	sa := newAPIClient(sys.query.url, "a")
	pc := newAPIClient(prom.url, "")
	queries := cacheQueries(start + 90*minute)
	hits := func() float64 {
		return testutil.Metric(t, sys.query.metrics(), "strata_results_cache_lookups_total", "tenant", "a", "result", "hit") +
			testutil.Metric(t, sys.query.metrics(), "strata_results_cache_lookups_total", "tenant", "a", "result", "partial")
	}
	compareAll := func(when string, wantCached bool) {
		t.Helper()
		before := hits()
		for round := range 2 {
			for _, q := range queries {
				want := mustSucceed(t, "Prometheus: "+q, pc.queryRange(t, q, start, end, time.Minute))
				got := mustSucceed(t, "Strata: "+q, sa.queryRange(t, q, start, end, time.Minute))
				if !bytes.Equal(got, want) {
					t.Errorf("%s, run %d: %s differs from Prometheus's answer: %s", when, round+1, q, diffBodies(got, want))
				}
			}
		}
		if after := hits(); wantCached && after <= before {
			t.Errorf("%s: no part of the second run was answered from the cache", when)
		}
	}
	compareAll("history written up to 3h ago", true)

	// Out-of-order samples of existing series, and a new series, into the
	// cached range (within the out-of-order window of the tenant's newest sample).
	inv := sys.invalidations(t, "a")
	ooo := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		newSeries([]prompb.Sample{{Timestamp: lagEnd - 7*minute + 3, Value: 9.75}}, "__name__", "node_load1", "job", "node", "instance", "host-1"),
		newSeries([]prompb.Sample{{Timestamp: lagEnd - 8*minute, Value: 4.5}, {Timestamp: lagEnd - 2*minute, Value: 4.25}}, "__name__", "node_load1", "job", "node", "instance", "late-host"),
	}}
	send("a", ooo, true)
	if got := sys.invalidations(t, "a"); got <= inv {
		t.Errorf("out-of-order samples 3h old did not invalidate the cache (invalidations %v, before %v)", got, inv)
	}
	compareAll("after out-of-order samples into the cached range", true)

	// Tenant b: the same series names, other values. Its answers are its
	// own, the same with and without the cache.
	send("b", cacheGen{seed: 2}.request(start-30*minute, lagEnd, ""), false)
	sb := newAPIClient(sys.query.url, "b")
	for _, q := range queries {
		a := mustSucceed(t, "a: "+q, sa.queryRange(t, q, start, end, time.Minute))
		b1 := mustSucceed(t, "b: "+q, sb.queryRange(t, q, start, end, time.Minute))
		b2 := mustSucceed(t, "b again: "+q, sb.queryRange(t, q, start, end, time.Minute))
		uncached := mustSucceed(t, "b uncached: "+q, sb.queryRangeNoCache(t, q, start, end, time.Minute))
		if !bytes.Equal(b1, uncached) || !bytes.Equal(b2, uncached) {
			t.Errorf("tenant b, %s: cached answers differ from the uncached one: %s", q, diffBodies(b2, uncached))
		}
		if bytes.Equal(a, b1) && q != `count(node_load1)` {
			t.Errorf("tenant b, %s: the same answer as tenant a's", q)
		}
	}

	// The sender catches up: three hours of samples, all older than the
	// freshness horizon but its last minutes, into ranges cached as empty.
	send("a", genA.request(lagEnd+1, now-30000, ""), true)
	compareAll("after the sender caught up", true)

	if sys.restart != nil {
		sys.restart()
		sa = newAPIClient(sys.query.url, "a")
		compareAll("after a restart", true)
	}
}

// queryRangeNoCache is queryRange with Cache-Control: no-cache, which the
// front end answers without its cache.
func (c *apiClient) queryRangeNoCache(t *testing.T, q string, start, end int64, step time.Duration) apiResponse {
	t.Helper()
	params := url.Values{
		"query": {q},
		"start": {apiTime(start)},
		"end":   {apiTime(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	req, err := http.NewRequest(http.MethodPost, c.base+"/api/v1/query_range", strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatalf("POST query_range: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cache-Control", "no-cache")
	return c.do(t, req)
}
