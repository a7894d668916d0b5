package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// clusterForgetAfter is the test cluster's -ring.forget-after: longer than
// an ingester of the test is down before it is restarted.
const clusterForgetAfter = 30 * time.Second

// A cluster on loopback: processes started with their roles, sharing a
// filesystem bucket and finding each other through memberlist.
type testCluster struct {
	t       *testing.T
	bucket  string
	join    string // memberlist addresses of the ingesters, comma-separated
	mlAddrs map[string]string
}

// clusterFlags are the flags every process of the test's cluster gets:
// heartbeats every second so that a killed ingester is unhealthy after 5s.
func (c *testCluster) flags(name string) []string {
	if c.mlAddrs[name] == "" {
		// Reserved only now: a port reserved long before may have been
		// given to some connection meanwhile.
		c.mlAddrs[name] = proctest.FreeAddr(c.t)
	}
	host, port, _ := strings.Cut(c.mlAddrs[name], ":")
	return []string{
		"-bucket.filesystem.dir", c.bucket,
		"-compactor.enabled=false",
		"-memberlist.bind-addr", host,
		"-memberlist.bind-port", port,
		"-memberlist.join", c.join,
		"-ring.heartbeat-period", "1s",
		"-ring.heartbeat-timeout", "5s",
		"-ring.forget-after", clusterForgetAfter.String(),
	}
}

// start starts process name (its memberlist address reserved by
// newTestCluster) with target and the HTTP address addr (fresh when empty).
func (c *testCluster) start(name, target, addr, dir string, extra ...string) *strataProc {
	c.t.Helper()
	if addr == "" {
		addr = proctest.FreeAddr(c.t)
	}
	args := append(c.flags(name), "-target", target, "-ring.instance-id", name, "-ring.instance-addr", addr)
	args = append(args, extra...)
	return startStrata(c.t, addr, dir, args...)
}

// newTestCluster reserves the memberlist addresses of the ingesters named,
// which every process joins.
func newTestCluster(t *testing.T, names ...string) *testCluster {
	c := &testCluster{t: t, bucket: filepath.Join(t.TempDir(), "bucket"), mlAddrs: map[string]string{}}
	var ingesters []string
	for _, n := range names {
		c.mlAddrs[n] = proctest.FreeAddr(t)
		if strings.HasPrefix(n, "ingester") {
			ingesters = append(ingesters, c.mlAddrs[n])
		}
	}
	c.join = strings.Join(ingesters, ",")
	return c
}

// ringMember is one member of the ring as /ring answers it in JSON.
type ringMember struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Address   string `json:"address"`
	Timestamp string `json:"timestamp"`
}

// ringMembers reads the ring as the process at base sees it.
func ringMembers(base string) ([]ringMember, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/ring", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Shards []ringMember `json:"shards"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	return r.Shards, nil
}

// waitActive waits until the process at base sees exactly the members ids,
// every one ACTIVE with a heartbeat at or after since.
func waitActive(t *testing.T, base string, since time.Time, ids ...string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, fmt.Sprintf("%s sees %v ACTIVE in the ring", base, ids), func() bool {
		ms, err := ringMembers(base)
		if err != nil || len(ms) != len(ids) {
			return false
		}
		active := map[string]bool{}
		for _, m := range ms {
			ts, err := time.Parse(time.RFC3339, m.Timestamp)
			if m.State == "ACTIVE" && err == nil && !ts.Before(since.Truncate(time.Second)) {
				active[m.ID] = true
			}
		}
		for _, id := range ids {
			if !active[id] {
				return false
			}
		}
		return true
	})
}

// Shape of the cluster test's writes: clusterWriters senders, each with
// clusterSeries counters and as many gauges, one sample per series per batch,
// one batch per simulated second with per-series jitter.
const (
	clusterWriters = 3
	clusterSeries  = 10
)

// clusterBatch is batch k of writer w: timestamps base + k seconds plus a
// jitter of up to 0.9s that differs by series (unaligned, as scrapes are),
// counters that reset every 97 batches, gauges that move both ways.
func clusterBatch(w, k int, base int64) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for s := range clusterSeries {
		ts := base + int64(k)*1000 + int64((w*7+s*13)%10)*90
		counter := float64((k%97)*(s+1)) + float64(w)/4
		gauge := float64((k*31+s*17+w*5)%200) - 100 + 0.5
		req.Timeseries = append(req.Timeseries,
			newSeries([]prompb.Sample{{Timestamp: ts, Value: counter}},
				"__name__", "cluster_counter_total", "writer", strconv.Itoa(w), "series", strconv.Itoa(s)),
			newSeries([]prompb.Sample{{Timestamp: ts, Value: gauge}},
				"__name__", "cluster_gauge", "writer", strconv.Itoa(w), "series", strconv.Itoa(s)))
	}
	return req
}

// clusterWriter sends batches to a distributor, resending each until it is
// answered 204 (as Prometheus resends on 5xx or a lost connection), and
// sends every batch answered 204 to the reference Prometheus too: the
// reference holds exactly the acknowledged samples.
type clusterWriter struct {
	url, promURL string
	base         int64
	from         int // first batch of each writer

	acked      atomic.Int64 // batches answered 204
	failed     atomic.Int64 // answers 5xx or no answer, each resent
	mu         sync.Mutex
	unexpected []string
	last       [clusterWriters]int // last batch acknowledged per writer
}

func (cw *clusterWriter) run(ctx context.Context) {
	var wg sync.WaitGroup
	for w := range clusterWriters {
		wg.Go(func() { cw.writer(ctx, w) })
	}
	wg.Wait()
}

// writer sends its batches in order until ctx is done; a batch started is
// sent until acknowledged, so that the reference never lacks what Strata
// acknowledged and never has what it did not. The resend loop is bounded
// by the test's deadline.
func (cw *clusterWriter) writer(ctx context.Context, w int) {
	hc := &http.Client{Timeout: 15 * time.Second}
	for k := cw.from; ctx.Err() == nil; k++ {
		req := clusterBatch(w, k, cw.base)
		for deadline := time.Now().Add(2 * time.Minute); ; {
			code, body, err := sendWriteV1(context.Background(), hc, cw.url, "", req)
			if err == nil && code == http.StatusNoContent {
				break
			}
			if (err == nil && code < 500) || time.Now().After(deadline) {
				cw.mu.Lock()
				cw.unexpected = append(cw.unexpected, fmt.Sprintf("writer %d batch %d: HTTP %d %s %v", w, k, code, body, err))
				cw.mu.Unlock()
				return
			}
			cw.failed.Add(1)
			// The sender's back-off before it retries (not the test
			// waiting for anything).
			time.Sleep(50 * time.Millisecond)
		}
		if code, body, err := sendWriteV1(context.Background(), hc, cw.promURL, "", req); err != nil || code != http.StatusNoContent {
			cw.mu.Lock()
			cw.unexpected = append(cw.unexpected, fmt.Sprintf("reference Prometheus, writer %d batch %d: HTTP %d %s %v", w, k, code, body, err))
			cw.mu.Unlock()
			return
		}
		cw.mu.Lock()
		cw.last[w] = k
		cw.mu.Unlock()
		cw.acked.Add(1)
		// The sender's pace: batches spread over the ingesters' kill,
		// restart and hand-over.
		time.Sleep(20 * time.Millisecond)
	}
}

func (cw *clusterWriter) problems() []string {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return append([]string(nil), cw.unexpected...)
}

// TestClusterSurvivesIngesterKill runs a cluster of real processes on
// loopback (three ingesters, one distributor, one querier, a shared
// bucket) under remote-write load, kills one ingester with SIGKILL, keeps
// writing and querying while it is gone and after it is unhealthy in the
// ring, restarts it, adds a fourth, and then requires every query answer
// of the querier to be byte for byte a reference Prometheus 3's, fed
// exactly the batches the distributor acknowledged; then again after
// another ingester left with SIGTERM, and after a third was killed for good
// and forgotten by the ring.
func TestClusterSurvivesIngesterKill(t *testing.T) {
	requireE2E(t)
	prom := startPrometheus(t, "prometheus3", prometheus3Bin(t), proctest.FreeAddr(t), "global: {}\n", "--web.enable-remote-write-receiver")
	c := newTestCluster(t, "ingester-1", "ingester-2", "ingester-3")
	start := time.Now()
	ing := map[string]*strataProc{}
	for _, n := range []string{"ingester-1", "ingester-2", "ingester-3"} {
		ing[n] = c.start(n, "ingester", "", t.TempDir())
	}
	dist := c.start("distributor", "distributor", "", t.TempDir())
	q := c.start("querier", "querier", "", t.TempDir())
	for _, p := range []*strataProc{dist, q} {
		waitActive(t, p.url, start, "ingester-1", "ingester-2", "ingester-3")
	}

	base := (time.Now().Add(-time.Hour).UnixMilli() / 1000) * 1000
	var (
		cw   *clusterWriter
		stop func()
	)
	write := func(from int) {
		cw = &clusterWriter{url: dist.url + "/api/v1/write", promURL: prom.url + "/api/v1/write", base: base, from: from}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			cw.run(ctx)
		}()
		stop = func() {
			cancel()
			<-done
		}
		t.Cleanup(stop)
	}
	write(0)
	waitAcked := func(what string, n int64) {
		t.Helper()
		target := cw.acked.Load() + n
		testutil.Eventually(t, 60*time.Second, fmt.Sprintf("%s: %d batches acknowledged", what, target), func() bool {
			if p := cw.problems(); len(p) > 0 {
				t.Fatalf("%s: unexpected answers: %v", what, p)
			}
			return cw.acked.Load() >= target
		})
	}
	waitAcked("before the kill", 100)

	// Metric metadata sent to the distributor is answered by the querier.
	meta := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{
		Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "cluster_gauge", Help: "A gauge of the cluster test.", Unit: "widgets",
	}}}
	if code, body, err := sendWriteV1(context.Background(), http.DefaultClient, dist.url+"/api/v1/write", "", meta); err != nil || code != http.StatusNoContent {
		t.Fatalf("write metadata: HTTP %d %q %v; want 204", code, body, err)
	}
	wantMeta := `{"status":"success","data":{"cluster_gauge":[{"type":"gauge","unit":"widgets","help":"A gauge of the cluster test."}]}}`
	testutil.Eventually(t, 30*time.Second, "the querier answers the metadata", func() bool {
		r := newAPIClient(q.url, "").get(t, "/api/v1/metadata", url.Values{"metric": {"cluster_gauge"}})
		return r.code == http.StatusOK && string(r.body) == wantMeta
	})
	// Exemplars, sent as remote write 1.0 senders do (an entry of their
	// own), are answered by the querier from the ingesters.
	exTs := base + 500
	exReq := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:    []prompb.Label{{Name: "__name__", Value: "cluster_counter_total"}, {Name: "series", Value: "0"}, {Name: "writer", Value: "0"}},
		Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc123"}}, Value: 1, Timestamp: exTs}},
	}}}
	if code, body, err := sendWriteV1(context.Background(), http.DefaultClient, dist.url+"/api/v1/write", "", exReq); err != nil || code != http.StatusNoContent {
		t.Fatalf("write exemplar: HTTP %d %q %v; want 204", code, body, err)
	}
	exParams := url.Values{"query": {`cluster_counter_total{writer="0",series="0"}`}, "start": {apiTime(base)}, "end": {apiTime(base + 3600_000)}}
	wantEx := `{"status":"success","data":[{"seriesLabels":{"__name__":"cluster_counter_total","series":"0","writer":"0"},"exemplars":[{"labels":{"trace_id":"abc123"},"value":"1","timestamp":` + apiTime(exTs) + `}]}]}`
	if r := newAPIClient(q.url, "").get(t, "/api/v1/query_exemplars", exParams); r.code != http.StatusOK || string(r.body) != wantEx {
		t.Errorf("exemplars from the querier: HTTP %d %s, want 200 %s", r.code, r.body, wantEx)
	}

	victim := ing["ingester-2"]
	victim.Kill()
	t.Logf("killed ingester-2 (%v) after %d batches acknowledged", victim.WaitErr(), cw.acked.Load())
	failedBefore := cw.failed.Load()
	waitAcked("ingester-2 killed, still in the ring as healthy", 100)
	// Once its heartbeat is older than the timeout, the ring counts it
	// unhealthy and each series' write set is the other two.
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
	waitAcked("ingester-2 unhealthy", 100)
	// Queries answer through the loss, every series there.
	r := newAPIClient(q.url, "").query(t, "count(last_over_time(cluster_gauge[2h]))", time.Now().UnixMilli())
	if data := string(mustSucceedResult(t, r)); !strings.Contains(data, fmt.Sprintf(`"%d"`, clusterWriters*clusterSeries)) {
		t.Errorf("count of cluster_gauge series with ingester-2 down: %s, want %d", data, clusterWriters*clusterSeries)
	}
	t.Logf("while ingester-2 was down: %d writes answered 5xx or not at all and resent", cw.failed.Load()-failedBefore)

	restarted := time.Now()
	ing["ingester-2"] = c.start("ingester-2", "ingester", victim.addr, victim.dir)
	waitActive(t, dist.url, restarted, "ingester-1", "ingester-2", "ingester-3")
	waitAcked("after the restart", 100)

	// A fourth ingester joins while writes go on: it takes a share of the
	// series from now on; what was written before stays on the others.
	joined := time.Now()
	ing["ingester-4"] = c.start("ingester-4", "ingester", "", t.TempDir())
	waitActive(t, dist.url, joined, "ingester-1", "ingester-2", "ingester-3", "ingester-4")
	waitAcked("after ingester-4 joined", 100)
	stop()
	if p := cw.problems(); len(p) > 0 {
		t.Fatalf("unexpected answers: %v", p)
	}
	t.Logf("%d batches acknowledged in all, %d answers 5xx or none (resent)", cw.acked.Load(), cw.failed.Load())

	lastBatch := compareCluster(t, "after the kill and restart", q.url, prom.url, base, cw)

	// A graceful stop: ingester-3 goes LEAVING, ships its heads to the
	// bucket, leaves the ring and exits 0; writes go on to the other two.
	blocksBefore := bucketBlocks(t, c.bucket)
	if err := ing["ingester-3"].Stop(2 * time.Minute); err != nil {
		t.Fatalf("ingester-3 on SIGTERM: %v, want exit status 0", err)
	}
	if after := bucketBlocks(t, c.bucket); after <= blocksBefore {
		t.Errorf("ingester-3 left the ring with %d blocks in the bucket, %d before: its heads were not flushed", after, blocksBefore)
	}
	waitActive(t, dist.url, time.Now(), "ingester-1", "ingester-2", "ingester-4")
	write(lastBatch + 1)
	waitAcked("after ingester-3 left", 100)
	stop()
	if p := cw.problems(); len(p) > 0 {
		t.Fatalf("unexpected answers: %v", p)
	}
	lastBatch = compareCluster(t, "after ingester-3 left", q.url, prom.url, base, cw)

	// An ingester lost for good is forgotten by the others after
	// -ring.forget-after; writes go on meanwhile.
	ing["ingester-4"].Kill()
	write(lastBatch + 1)
	testutil.Eventually(t, clusterForgetAfter+time.Minute, "the killed ingester-4 forgotten", func() bool {
		ms, err := ringMembers(dist.url)
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.ID == "ingester-4" {
				return false
			}
		}
		return len(ms) == 2
	})
	waitAcked("after ingester-4 was forgotten", 100)
	stop()
	if p := cw.problems(); len(p) > 0 {
		t.Fatalf("unexpected answers: %v", p)
	}
	compareCluster(t, "after ingester-4 was forgotten", q.url, prom.url, base, cw)
}

// bucketBlocks counts the blocks in a filesystem bucket (their meta.json).
func bucketBlocks(t *testing.T, dir string) int {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(dir, "*", "*", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	return len(metas)
}

// compareCluster requires the querier's answers to be the reference's, over
// everything written since base, and returns the last batch written.
func compareCluster(t *testing.T, when, querierURL, promURL string, base int64, cw *clusterWriter) int {
	t.Helper()
	// The newest sample of any series is before base + (last batch + 1)s.
	cw.mu.Lock()
	lastBatch := 0
	for _, k := range cw.last {
		lastBatch = max(lastBatch, k)
	}
	cw.mu.Unlock()
	end := base + int64(lastBatch+1)*1000
	strata, ref := newAPIClient(querierURL, ""), newAPIClient(promURL, "")
	// An instant vector's order is the order the storage returns series
	// in, which for Prometheus's head is the order the series were created
	// (here, as concurrent writers' requests arrived): compared as sets.
	instant := []string{
		`cluster_gauge[1h]`,
		`cluster_counter_total[1h]`,
		`count(cluster_gauge)`,
		`sum by (writer) (cluster_counter_total)`,
		`cluster_gauge`,
	}
	for _, expr := range instant {
		compareAnswers(t, when+": instant "+expr, strata.query(t, expr, end), ref.query(t, expr, end), p2Unsorted)
	}
	rangeQueries := []string{
		`rate(cluster_counter_total[1m])`,
		`sum by (series) (cluster_gauge)`,
		`count_over_time(cluster_gauge[30s])`,
		`max_over_time(cluster_gauge[1m])`,
	}
	for _, expr := range rangeQueries {
		compareAnswers(t, when+": range "+expr, strata.queryRange(t, expr, base, end, 7*time.Second), ref.queryRange(t, expr, base, end, 7*time.Second), 0)
	}
	params := url.Values{"start": {apiTime(base)}, "end": {apiTime(end)}}
	for _, path := range []string{"/api/v1/labels", "/api/v1/label/series/values"} {
		compareAnswers(t, when+": "+path, strata.get(t, path, params), ref.get(t, path, params), 0)
	}
	series := url.Values{"match[]": {"cluster_gauge"}, "start": {apiTime(base)}, "end": {apiTime(end)}}
	compareAnswers(t, when+": series", strata.get(t, "/api/v1/series", series), ref.get(t, "/api/v1/series", series), p2Unsorted)
	return lastBatch
}

// TestClusterReplicasCompactedToOneCopy writes through a cluster of three
// ingesters, has each ship its head to the bucket (three overlapping
// copies of every series, and out-of-order blocks of replicas that got a
// batch late), and runs a compactor process: the bucket ends
// with one block holding every acknowledged sample once, and the querier's
// answers stay the reference Prometheus's.
func TestClusterReplicasCompactedToOneCopy(t *testing.T) {
	requireE2E(t)
	prom := startPrometheus(t, "prometheus3", prometheus3Bin(t), proctest.FreeAddr(t), "global: {}\n", "--web.enable-remote-write-receiver")
	c := newTestCluster(t, "ingester-1", "ingester-2", "ingester-3")
	start := time.Now()
	var ings []*strataProc
	for _, n := range []string{"ingester-1", "ingester-2", "ingester-3"} {
		ings = append(ings, c.start(n, "ingester", "", t.TempDir()))
	}
	dist := c.start("distributor", "distributor", "", t.TempDir())
	q := c.start("querier", "querier", "", t.TempDir())
	for _, p := range []*strataProc{dist, q} {
		waitActive(t, p.url, start, "ingester-1", "ingester-2", "ingester-3")
	}

	// The samples fall in one 2h window that ended more than 2h ago: the
	// compactor merges a window's blocks once it is complete.
	window := time.Now().Truncate(2 * time.Hour).Add(-4 * time.Hour)
	base := window.Add(time.Minute).UnixMilli()
	cw := &clusterWriter{url: dist.url + "/api/v1/write", promURL: prom.url + "/api/v1/write", base: base}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		cw.run(ctx)
	}()
	testutil.Eventually(t, 60*time.Second, "300 batches acknowledged", func() bool { return cw.acked.Load() >= 300 })
	cancel()
	<-done
	if p := cw.problems(); len(p) > 0 {
		t.Fatalf("unexpected answers: %v", p)
	}
	acked := cw.acked.Load()

	for _, ing := range ings {
		resp, err := http.Post(ing.url+"/api/v1/admin/flush", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("flush of %s: HTTP %d", ing.addr, resp.StatusCode)
		}
	}
	// One block per replica, and an out-of-order block of a replica that
	// got a batch after the next one: the distributor answers once two
	// replicas have a batch, so the writer's next batch can reach the
	// third before it (seen in CI: 20 samples).
	flushed := len(liveBlocks(t, c.bucket))
	if flushed < 3 || flushed > 6 {
		t.Fatalf("%d blocks in the bucket after the three ingesters flushed, want 3 to 6 (one per replica, and at most one out-of-order block each)", flushed)
	}

	c.start("compactor", "compactor", "", t.TempDir(), "-compactor.enabled=true", "-compactor.interval=1s", "-compactor.compaction-delay=0s")
	var merged blockMeta
	testutil.Eventually(t, 60*time.Second, "the compactor merged the replicas into one block", func() bool {
		live := liveBlocks(t, c.bucket)
		if len(live) != 1 {
			return false
		}
		merged = live[0]
		return true
	})
	t.Logf("merged block %s: %d samples from %v, %d batches acknowledged", merged.ULID, merged.Stats.NumSamples, merged.Compaction.Sources, acked)
	// Every batch has one sample of each of its 2*clusterSeries series.
	if want := acked * 2 * clusterSeries; merged.Stats.NumSamples != want {
		t.Errorf("the merged block holds %d samples, want %d: each acknowledged sample once", merged.Stats.NumSamples, want)
	}
	if len(merged.Compaction.Sources) != flushed {
		t.Errorf("the merged block's sources are %v, want the %d blocks the replicas shipped", merged.Compaction.Sources, flushed)
	}
	compareCluster(t, "after compaction", q.url, prom.url, base, cw)
}

// blockMeta is what the test reads of a block's meta.json.
type blockMeta struct {
	ULID  string `json:"ulid"`
	Stats struct {
		NumSamples int64 `json:"numSamples"`
	} `json:"stats"`
	Compaction struct {
		Sources []string `json:"sources"`
	} `json:"compaction"`
}

// liveBlocks reads the meta.json of the blocks in a filesystem bucket that
// carry no deletion mark.
func liveBlocks(t *testing.T, dir string) []blockMeta {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(dir, "*", "*", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []blockMeta
	for _, p := range metas {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "deletion-mark.json")); err == nil {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue // deleted meanwhile
		}
		var m blockMeta
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, m)
	}
	return out
}
