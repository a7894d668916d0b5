package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// The long-horizon test runs the real strata binary, with its compactor on
// the default policy (levels, 7d/30d/1y retention), over weeks of simulated
// node-exporter traffic sent only through remote write, and compares every
// hour of the whole history with a reference Prometheus 3 fed the same
// requests, after compactor runs. Days pass by backfilling: the history ends
// now, so the compactor's real clock sees its windows complete and its
// retention pass, as it would after weeks of running.
//
// The traffic is what a Prometheus sends: scrapes every minute at a phase of
// their own per host, with jitter, never on a window boundary; counters that
// reset when a host reboots or an app restarts; a five-hour outage of the
// sender; a host unreachable for three hours (up=0 and stale markers); a
// host whose samples arrive 45 minutes late now and then (out-of-order); a
// kill -9 of Strata in the middle.
//
// STRATA_LONG_HORIZON_DAYS sets the length (default 42, the make target
// test-long-horizon runs 400: the 1h resolution's retention is passed too).

func longHorizonDays(t *testing.T) int {
	s := os.Getenv("STRATA_LONG_HORIZON_DAYS")
	if s == "" {
		return 42
	}
	d, err := strconv.Atoi(s)
	if err != nil || d < 10 {
		t.Fatalf("STRATA_LONG_HORIZON_DAYS=%q: want a number of days, at least 10", s)
	}
	return d
}

const (
	lhScrape   = time.Minute
	lhBatch    = 30 * time.Minute // simulated time per remote-write request
	lhHosts    = 4
	lhLateBy   = 45 * time.Minute // how late host 2's held-back samples arrive
	lhOOOWindw = 2 * time.Hour
)

var lhModes = []string{"idle", "user", "system", "iowait"}

// lhHost is the state of one simulated host.
type lhHost struct {
	id       int
	instance string
	phase    time.Duration // where in each minute its scrapes fall
	cpu      [4]float64
	net      float64
	reqs     float64
	down     bool // was unreachable at its previous scrape
	rng      *rand.Rand
}

// lhGen generates the traffic of the test: remote-write requests in the
// order a sender would send them.
type lhGen struct {
	start, end time.Time
	hosts      []*lhHost
	// events, as offsets from start
	outage     [2]time.Duration // no scrapes at all (the sender is down)
	unreach    [2]time.Duration // host 3 unreachable
	reboot     map[int]time.Duration
	appRestart time.Duration // period of http_requests_total resets, phase per host
	held       []prompb.TimeSeries
	heldUntil  time.Time
	next       time.Time
}

func newLHGen(start, end time.Time) *lhGen {
	days := end.Sub(start)
	g := &lhGen{
		start: start, end: end, next: start,
		outage:     [2]time.Duration{time.Duration(float64(days) * 0.46), time.Duration(float64(days)*0.46) + 5*time.Hour},
		unreach:    [2]time.Duration{time.Duration(float64(days) * 0.79), time.Duration(float64(days)*0.79) + 3*time.Hour},
		reboot:     map[int]time.Duration{1: time.Duration(float64(days) * 0.36), 2: time.Duration(float64(days) * 0.74)},
		appRestart: 79 * time.Hour,
	}
	for i, ph := range []time.Duration{7311 * time.Millisecond, 23087 * time.Millisecond, 41702 * time.Millisecond, 52911 * time.Millisecond} {
		g.hosts = append(g.hosts, &lhHost{
			id: i, instance: fmt.Sprintf("host-%d:9100", i), phase: ph,
			cpu: [4]float64{1e5 * float64(i+1), 2e4, 7e3, 900}, net: 3.2e11 * float64(i+1), reqs: 5000,
			rng: rand.New(rand.NewPCG(uint64(i), 42)),
		})
	}
	return g
}

func lhLabels(name, instance string, extra ...string) []prompb.Label {
	ls := []prompb.Label{{Name: "__name__", Value: name}, {Name: "instance", Value: instance}, {Name: "job", Value: "node"}}
	for i := 0; i+1 < len(extra); i += 2 {
		ls = append(ls, prompb.Label{Name: extra[i], Value: extra[i+1]})
	}
	slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
	return ls
}

func round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

// scrape returns the samples of one scrape of host h at ts, by series key.
func (g *lhGen) scrape(h *lhHost, ts time.Time) map[string]prompb.TimeSeries {
	out := map[string]prompb.TimeSeries{}
	ms := ts.UnixMilli()
	add := func(v float64, name string, extra ...string) {
		ls := lhLabels(name, h.instance, extra...)
		out[seriesKey(ls)] = prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: ms, Value: v}}}
	}
	off := ts.Sub(g.start)
	if h.id == 3 && off >= g.unreach[0] && off < g.unreach[1] {
		add(0, "up")
		if !h.down {
			// The scrape failed: Prometheus marks the host's other series stale.
			stale := math.Float64frombits(value.StaleNaN)
			for _, m := range lhModes {
				add(stale, "node_cpu_seconds_total", "cpu", "0", "mode", m)
			}
			add(stale, "node_network_receive_bytes_total", "device", "eth0")
			add(stale, "http_requests_total", "code", "200")
			add(stale, "node_load1")
			add(stale, "node_memory_MemAvailable_bytes")
			add(stale, "node_filesystem_avail_bytes", "mountpoint", "/")
		}
		h.down = true
		return out
	}
	h.down = false
	if at, ok := g.reboot[h.id]; ok && off >= at && off < at+lhScrape {
		h.cpu, h.net = [4]float64{}, 0
	}
	if math.Mod(float64(off+time.Duration(h.id)*17*time.Hour), float64(g.appRestart)) < float64(lhScrape) {
		h.reqs = 0
	}
	day := float64(off) / float64(24*time.Hour)
	busy := 0.25 + 0.2*math.Sin(2*math.Pi*day+float64(h.id)) + 0.05*h.rng.Float64()
	secs := lhScrape.Seconds()
	for i, share := range []float64{1 - busy, busy * 0.7, busy * 0.25, busy * 0.05} {
		h.cpu[i] = round(h.cpu[i]+secs*share, 2) // USER_HZ ticks / 100
		add(h.cpu[i], "node_cpu_seconds_total", "cpu", "0", "mode", lhModes[i])
	}
	h.net += math.Floor(1e6 * (1 + busy) * (1 + h.rng.Float64()))
	add(h.net, "node_network_receive_bytes_total", "device", "eth0")
	h.reqs += math.Floor(300 * busy * (1 + h.rng.Float64()))
	add(h.reqs, "http_requests_total", "code", "200")
	add(round(4*busy+0.3*h.rng.Float64(), 2), "node_load1")
	add(4096*math.Floor(2e6*(1-busy)+1e3*h.rng.Float64()), "node_memory_MemAvailable_bytes")
	add(math.Floor(5e11-day*1e9+1e7*h.rng.Float64()), "node_filesystem_avail_bytes", "mountpoint", "/")
	add(1, "up")
	return out
}

// nextRequest returns the next remote-write request, the end of the
// simulated time it covers, and false when the history is written.
func (g *lhGen) nextRequest() (*prompb.WriteRequest, time.Time, bool) {
	if !g.next.Before(g.end) {
		if len(g.held) == 0 {
			return nil, g.end, false
		}
		req := &prompb.WriteRequest{Timeseries: g.held}
		g.held = nil
		return req, g.end, true
	}
	from, to := g.next, earliest(g.next.Add(lhBatch), g.end)
	g.next = to
	series := map[string]*prompb.TimeSeries{}
	var order []string
	var late []prompb.TimeSeries
	for _, h := range g.hosts {
		// Scrapes at minute k + phase + jitter of at most ±400ms: never on
		// a minute, so never on any window boundary.
		k0 := from.Add(-h.phase).Truncate(lhScrape)
		for ts := k0.Add(h.phase); ts.Before(to); ts = ts.Add(lhScrape) {
			jittered := ts.Add(time.Duration(h.rng.IntN(801)-400) * time.Millisecond)
			if jittered.Before(from) || !jittered.Before(to) {
				continue
			}
			off := jittered.Sub(g.start)
			if off >= g.outage[0] && off < g.outage[1] {
				continue
			}
			samples := g.scrape(h, jittered)
			// Every six hours host 2 has ten minutes of samples delivered
			// late, after newer ones of the same series.
			holdBack := h.id == 2 && (off%(6*time.Hour)) >= 2*time.Hour+13*time.Minute && (off%(6*time.Hour)) < 2*time.Hour+23*time.Minute
			keys := make([]string, 0, len(samples))
			for k := range samples {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				s := samples[k]
				if holdBack {
					late = append(late, s)
					continue
				}
				if cur, ok := series[k]; ok {
					cur.Samples = append(cur.Samples, s.Samples...)
				} else {
					series[k] = &s
					order = append(order, k)
				}
			}
		}
	}
	req := &prompb.WriteRequest{}
	for _, k := range order {
		req.Timeseries = append(req.Timeseries, *series[k])
	}
	// Samples held back earlier are sent once lhLateBy has passed.
	if len(g.held) > 0 && !to.Before(g.heldUntil) {
		req.Timeseries = append(req.Timeseries, g.held...)
		g.held = nil
	}
	if len(late) > 0 {
		if len(g.held) == 0 {
			g.heldUntil = to.Add(lhLateBy)
		}
		g.held = append(g.held, late...)
	}
	return req, to, true
}

// flushHeld returns the samples still held back, as one request.
func (g *lhGen) flushHeld() *prompb.WriteRequest {
	if len(g.held) == 0 {
		return nil
	}
	req := &prompb.WriteRequest{Timeseries: g.held}
	g.held = nil
	return req
}

// lhMatrix is a range query's answer: series key -> timestamp (ms) -> value.
type lhMatrix map[string]map[int64]float64

func parseMatrix(t *testing.T, what string, r apiResponse) lhMatrix {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("%s: HTTP %d: %s", what, r.code, clip(r.body))
	}
	var body struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("%s: %v: %s", what, err, clip(r.body))
	}
	out := lhMatrix{}
	for _, s := range body.Data.Result {
		pts := map[int64]float64{}
		for _, p := range s.Values {
			ts := int64(math.Round(p[0].(float64) * 1000))
			v, err := strconv.ParseFloat(p[1].(string), 64)
			if err != nil {
				t.Fatalf("%s: value %v: %v", what, p[1], err)
			}
			pts[ts] = v
		}
		out[mapKey(s.Metric)] = pts
	}
	return out
}

func lhQueryRange(t *testing.T, c *apiClient, q string, start, end time.Time, step time.Duration, extra url.Values) apiResponse {
	t.Helper()
	params := url.Values{
		"query": {q},
		"start": {apiTime(start.UnixMilli())},
		"end":   {apiTime(end.UnixMilli())},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	for k, v := range extra {
		params[k] = v
	}
	return c.post(t, "/api/v1/query_range", params)
}

// lhCheck is a query compared at every step of a range, and how.
type lhCheck struct {
	query string
	tol   float64 // relative; 0 is exact
	// full, when set, names the count query that decides which points are
	// compared: only windows holding fullCount raw samples, one a minute,
	// with no gap. Rate and increase extrapolate to a window's edges from
	// the spacing of its samples; where a series starts, stops or pauses
	// inside a window, that spacing is what downsampled data no longer has
	// (Thanos has the same limit). Every other point is compared.
	full      string
	fullCount float64
}

// lhMetrics are the metric names of the traffic.
var lhMetrics = []string{"node_cpu_seconds_total", "node_network_receive_bytes_total", "http_requests_total", "node_load1", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes", "up"}

func lhChecks(rng string, perWindow float64) []lhCheck {
	var checks []lhCheck
	// Functions drop the metric name: one query per metric.
	for _, m := range lhMetrics {
		for _, f := range []string{"count_over_time", "max_over_time", "min_over_time"} {
			checks = append(checks, lhCheck{query: fmt.Sprintf(`%s(%s[%s])`, f, m, rng)})
		}
	}
	return append(checks,
		lhCheck{query: fmt.Sprintf(`sum_over_time(node_load1[%s])`, rng), tol: 1e-9},
		lhCheck{query: fmt.Sprintf(`avg_over_time(node_memory_MemAvailable_bytes[%s])`, rng), tol: 1e-9},
		lhCheck{query: fmt.Sprintf(`avg_over_time(node_filesystem_avail_bytes[%s])`, rng), tol: 1e-9},
		lhCheck{query: fmt.Sprintf(`increase(http_requests_total[%s])`, rng), tol: 0.01,
			full: fmt.Sprintf(`count_over_time(http_requests_total[%s])`, rng), fullCount: perWindow},
		lhCheck{query: fmt.Sprintf(`rate(node_cpu_seconds_total[%s])`, rng), tol: 0.01,
			full: fmt.Sprintf(`count_over_time(node_cpu_seconds_total[%s])`, rng), fullCount: perWindow},
		lhCheck{query: fmt.Sprintf(`sum by (instance) (rate(node_network_receive_bytes_total[%s]))`, rng), tol: 0.01,
			full: fmt.Sprintf(`sum by (instance) (count_over_time(node_network_receive_bytes_total[%s]))`, rng), fullCount: perWindow},
	)
}

// lhCompare compares the checks on Strata and Prometheus over [start, end]
// at step, returning how many points it compared and skipped.
func lhCompare(t *testing.T, strata, prom *apiClient, what string, checks []lhCheck, start, end time.Time, step time.Duration) (compared, skipped int) {
	t.Helper()
	for _, c := range checks {
		got := parseMatrix(t, "Strata "+c.query, lhQueryRange(t, strata, c.query, start, end, step, nil))
		want := parseMatrix(t, "Prometheus "+c.query, lhQueryRange(t, prom, c.query, start, end, step, nil))
		var fullOf lhMatrix
		if c.full != "" {
			fullOf = parseMatrix(t, "Prometheus "+c.full, lhQueryRange(t, prom, c.full, start, end, step, nil))
		}
		var diffs []string
		for k, wpts := range want {
			gpts := got[k]
			var counts map[int64]float64
			if fullOf != nil {
				counts = fullOf[k] // both answers drop the metric name
			}
			for ts, w := range wpts {
				if fullOf != nil && counts[ts] < c.fullCount {
					skipped++
					continue
				}
				compared++
				g, ok := gpts[ts]
				switch {
				case !ok:
					diffs = append(diffs, fmt.Sprintf("%s at %s: missing, want %v", k, time.UnixMilli(ts).UTC().Format(time.RFC3339), w))
				case !lhClose(g, w, c.tol):
					diffs = append(diffs, fmt.Sprintf("%s at %s: %v, want %v (tolerance %g)", k, time.UnixMilli(ts).UTC().Format(time.RFC3339), g, w, c.tol))
				}
			}
			for ts := range gpts {
				if _, ok := wpts[ts]; !ok {
					diffs = append(diffs, fmt.Sprintf("%s at %s: %v where Prometheus has no point", k, time.UnixMilli(ts).UTC().Format(time.RFC3339), gpts[ts]))
				}
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("series %s only in Strata's answer", k))
			}
		}
		if len(want) == 0 {
			diffs = append(diffs, "Prometheus answered no series: the comparison would prove nothing")
		}
		if len(diffs) > 0 {
			slices.Sort(diffs)
			t.Errorf("%s: %s over [%s, %s] step %s: %d differences; first ones:\n  %s", what, c.query,
				start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), step, len(diffs), strings.Join(diffs[:min(len(diffs), 8)], "\n  "))
		}
	}
	return compared, skipped
}

func lhClose(got, want, tol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	if tol == 0 {
		return got == want
	}
	d := math.Abs(got - want)
	return d <= tol*math.Abs(want) || d <= 1e-9
}

// lhSender sends every request to Strata and Prometheus alike.
type lhSender struct {
	hc            *http.Client
	strata, prom  string
	requests      int
	samples       int
	lastAttemptOK bool
}

func (s *lhSender) send(t *testing.T, req *prompb.WriteRequest) {
	t.Helper()
	for _, ts := range req.Timeseries {
		s.samples += len(ts.Samples)
	}
	s.requests++
	for _, dst := range []struct{ name, url string }{{"Strata", s.strata}, {"Prometheus", s.prom}} {
		code, body, err := sendWriteV1(context.Background(), s.hc, dst.url, "", req)
		if err != nil || code/100 != 2 {
			t.Fatalf("remote write %d to %s: %d %s %v", s.requests, dst.name, code, body, err)
		}
	}
}

func TestLongHorizonRetentionMatchesPrometheus(t *testing.T) {
	requireE2E(t)
	testStart := time.Now()
	days := longHorizonDays(t)
	promBin := prometheus3Bin(t)

	dir := t.TempDir()
	if keep := os.Getenv("STRATA_LONG_HORIZON_DIR"); keep != "" {
		dir = keep // kept after the test, to look into
	}
	strataFlags := []string{
		"-storage.out-of-order-window", lhOOOWindw.String(),
		"-storage.ship-interval", "1s",
		"-storage.bucket-sync-interval", "2s",
		"-compactor.interval", "2s",
		// Longer than the bucket sync interval, as the flag's help asks.
		"-compactor.deletion-delay", "10s",
		// Days pass in seconds here, so raw blocks are past raw retention
		// moments after they are written. The kill -9 replays the WAL and
		// out-of-order log, writing samples already shipped once more; the
		// grace (an hour by default) keeps the raw blocks they are merged
		// with. Two minutes is long after the restart, in this test's time.
		"-compactor.retention-grace", "2m",
	}
	addr := proctest.FreeAddr(t)
	strata := startStrata(t, addr, dir, strataFlags...)
	promCfg := fmt.Sprintf("global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: %s\n", lhOOOWindw)
	prom := startPrometheus(t, "prometheus3", promBin, proctest.FreeAddr(t), promCfg,
		"--web.enable-remote-write-receiver", "--storage.tsdb.retention.time=5y")

	sapi, papi := newAPIClient(strata.url, ""), newAPIClient(prom.url, "")
	end := time.Now().Add(-30 * time.Minute)
	start := end.Add(-time.Duration(days) * 24 * time.Hour).Add(-17*time.Minute - 3*time.Second)
	gen := newLHGen(start, end)
	snd := &lhSender{hc: &http.Client{Timeout: time.Minute}, strata: strata.url + "/api/v1/write", prom: prom.url + "/api/v1/write"}

	// Queries run all along, and none may fail because of compaction.
	var (
		bgMu     sync.Mutex
		bgErrs   []string
		bgRan    int
		bgPaused = true
		// bgReq is held by each background query: pause waits for the
		// one in flight.
		bgReq sync.Mutex
	)
	bgCtx, bgStop := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	bgWG.Add(1)
	go func() {
		defer bgWG.Done()
		hc := &http.Client{Timeout: time.Minute}
		for bgCtx.Err() == nil {
			bgReq.Lock()
			bgMu.Lock()
			paused, base := bgPaused, "http://"+addr
			bgMu.Unlock()
			if !paused {
				q := url.Values{"query": {`sum by (instance) (count_over_time(node_load1[1d]))`}, "start": {apiTime(start.UnixMilli())}, "end": {apiTime(end.UnixMilli())}, "step": {"21600"}}
				resp, err := hc.PostForm(base+"/api/v1/query_range", q)
				bgMu.Lock()
				bgRan++
				if err != nil {
					bgErrs = append(bgErrs, err.Error())
				} else {
					if resp.StatusCode != http.StatusOK {
						var b strings.Builder
						_, _ = fmt.Fprintf(&b, "HTTP %d", resp.StatusCode)
						bgErrs = append(bgErrs, b.String())
					}
					resp.Body.Close()
				}
				bgMu.Unlock()
			}
			bgReq.Unlock()
			select {
			case <-bgCtx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	pause := func(p bool) {
		bgReq.Lock()
		defer bgReq.Unlock()
		bgMu.Lock()
		bgPaused = p
		bgMu.Unlock()
	}
	defer func() {
		bgStop()
		bgWG.Wait()
	}()
	pause(false)

	metric := func(name string, labelPairs ...string) float64 {
		return testutil.Metric(t, strata.metrics(), name, labelPairs...)
	}

	// settle waits until Strata has shipped the blocks cut so far, a
	// compactor run that began afterwards has ended, and the querier has
	// read the bucket since.
	settle := func() {
		t.Helper()
		testutil.Eventually(t, 3*time.Minute, "the shipper to catch up", func() bool {
			return metric("strata_shipper_pending_blocks") == 0
		})
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

	// checkpoint compares the whole history written so far, hour by hour
	// and day by day, then the finer resolutions where they are kept.
	checkpoint := func(name string, upTo time.Time) {
		t.Helper()
		if req := gen.flushHeld(); req != nil {
			snd.send(t, req)
		}
		now := time.Now()
		settle()
		settled := time.Now()
		// Within the 1h resolution's retention, less a day: past it
		// Strata deletes what Prometheus (retention 5y) keeps.
		from := latest(start, now.Add(-364*24*time.Hour))
		hStart := from.Truncate(time.Hour).Add(time.Hour)
		hEnd := upTo.Truncate(time.Hour)
		c, s := lhCompare(t, sapi, papi, name+" hourly", lhChecks("1h", 60), hStart, hEnd, time.Hour)
		dStart := from.Truncate(24 * time.Hour).Add(24 * time.Hour)
		dEnd := upTo.Truncate(24 * time.Hour)
		if dEnd.After(dStart) {
			c2, s2 := lhCompare(t, sapi, papi, name+" daily", lhChecks("1d", 1440), dStart, dEnd, 24*time.Hour)
			c, s = c+c2, s+s2
		}
		// The 1m resolution's span: one day of 5-minute windows, the
		// newest day older than raw retention.
		if mEnd := earliest(upTo, now.Add(-8*24*time.Hour)).Truncate(24 * time.Hour); mEnd.Sub(start) > 2*24*time.Hour && mEnd.After(now.Add(-29*24*time.Hour)) {
			c2, s2 := lhCompare(t, sapi, papi, name+" 5m windows", lhChecks("5m", 5), mEnd.Add(-24*time.Hour), mEnd, 5*time.Minute)
			c, s = c+c2, s+s2
		}
		// Raw data, sample for sample: six-hour spans across the raw
		// retention, or, where the history is older than that, the last
		// hour written (still in the head).
		rawChecks := []lhCheck{{query: `{job="node"}`}}
		spans := [][2]time.Time{{upTo.Add(-50 * time.Minute), upTo}}
		if upTo.After(now.Add(-6 * 24 * time.Hour)) {
			spans = nil
			for _, back := range []time.Duration{0, 2, 4, 6} {
				to := upTo.Add(-back * 24 * time.Hour)
				if to.Add(-6 * time.Hour).After(latest(start, now.Add(-6*24*time.Hour-12*time.Hour))) {
					spans = append(spans, [2]time.Time{to.Add(-6 * time.Hour), to})
				}
			}
		}
		for _, sp := range spans {
			c2, _ := lhCompare(t, sapi, papi, name+" raw", rawChecks, sp[0].Truncate(time.Minute).Add(time.Minute), sp[1].Truncate(time.Minute), time.Minute)
			c += c2
		}
		t.Logf("%s (history up to %s, %d requests, %d samples; settled in %s, compared in %s, %s since the start): %d points compared, %d rate points at a series' start, stop or gap skipped",
			name, upTo.UTC().Format(time.RFC3339), snd.requests, snd.samples, settled.Sub(now).Round(time.Second), time.Since(settled).Round(time.Second), time.Since(testStart).Round(time.Second), c, s)
		if t.Failed() {
			ls, _ := exec.Command(strataBin, "tools", "bucket", "ls", "-storage.path", dir).CombinedOutput()
			if os.Getenv("STRATA_LONG_HORIZON_DIR") != "" {
				for i := 0; i < 3; i++ {
					for _, res := range []string{"1h", "1m", "0s"} {
						r := lhQueryRange(t, sapi, `count_over_time(node_load1{instance="host-0:9100"}[1h])`, hStart, hEnd, time.Hour, url.Values{"max_source_resolution": {res}})
						t.Logf("at %s resolution %s: %s", time.Now().Format(time.RFC3339Nano), res, r.body)
					}
					time.Sleep(3 * time.Second) // diagnostics of a failure: the answers a few seconds apart
				}
			}
			t.Fatalf("blocks in the bucket:\n%s", ls)
		}
	}

	checkpoints := []float64{0.3, 0.6, 0.85}
	killAt := start.Add(time.Duration(float64(end.Sub(start)) * 0.52))
	killed := false
	for {
		req, upTo, ok := gen.nextRequest()
		if !ok {
			break
		}
		snd.send(t, req)
		if snd.requests%8 == 0 {
			// Real time never outruns the head's compaction; days written
			// in seconds do (a 2h block a fraction of a second, fsyncs
			// included). Left unpaced, the head would hold months and
			// every query read them from memory, which no real Strata does.
			testutil.Eventually(t, 3*time.Minute, "the head to compact down to 6h", func() bool {
				return metric("prometheus_tsdb_head_max_time")-metric("prometheus_tsdb_head_min_time") <= float64(6*time.Hour/time.Millisecond)
			})
		}
		if !killed && !upTo.Before(killAt) {
			// kill -9 in the middle: nothing acknowledged may be lost.
			killed = true
			pause(true)
			strata.Kill()
			strata = startStrata(t, addr, dir, strataFlags...)
			pause(false)
		}
		if len(checkpoints) > 0 && !upTo.Before(start.Add(time.Duration(float64(end.Sub(start))*checkpoints[0]))) {
			checkpoint(fmt.Sprintf("checkpoint at %.0f%%", checkpoints[0]*100), upTo)
			checkpoints = checkpoints[1:]
		}
	}
	checkpoint("end", end)

	// The bucket ends as the policy says: raw data of the last week only,
	// 1m data of the last month, 1h data of the last year, and nothing
	// that a kept resolution lacks.
	var lsOut []byte
	testutil.Eventually(t, 5*time.Minute, "retention to settle (nothing held back, in the retention grace or awaiting downsampling, marked blocks deleted)", func() bool {
		var err error
		if lsOut, err = exec.Command(strataBin, "tools", "bucket", "ls", "-storage.path", dir).CombinedOutput(); err != nil {
			t.Fatalf("strata tools bucket ls: %v\n%s", err, lsOut)
		}
		return metric("strata_compactor_blocks_retention_held") == 0 &&
			metric("strata_compactor_blocks_retention_grace") == 0 &&
			metric("strata_compactor_blocks_awaiting_downsampling", "state", "ready") == 0 &&
			!strings.Contains(string(lsOut), " marked ")
	})
	// The compactor's blocks went into the query side's block cache as they
	// were uploaded (blocks.Store.SeedBlock), where the comparisons with
	// Prometheus above found whatever of them they read. This checks the
	// seeding ran; TestSeedBlock checks a seeded block reads as a
	// downloaded one.
	if seeded := metric("strata_block_cache_seeded_total"); seeded == 0 {
		t.Errorf("no block of the compactor's was kept in the block cache (strata_block_cache_seeded_total 0)")
	}
	out, err := exec.Command(strataBin, "tools", "bucket", "verify", "-storage.path", dir).CombinedOutput()
	if err != nil {
		t.Errorf("strata tools bucket verify: %v\n%s", err, out)
	}
	now := time.Now()
	oldest := map[string]time.Time{}
	for _, line := range strings.Split(string(lsOut), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 11 || f[len(f)-1] != "live" {
			continue
		}
		from, err := time.Parse(time.RFC3339, f[2])
		if err != nil {
			t.Fatalf("bucket ls line %q: %v", line, err)
		}
		if o, ok := oldest[f[5]]; !ok || from.Before(o) {
			oldest[f[5]] = from
		}
	}
	t.Logf("oldest live block per resolution: %v\n%s", oldest, lsOut)
	for res, keep := range map[string]time.Duration{"raw": 7 * 24 * time.Hour, "1m0s": 30 * 24 * time.Hour, "1h0m0s": 365 * 24 * time.Hour} {
		o, ok := oldest[res]
		wantData := start.Before(now.Add(-keep))
		switch {
		case !ok:
			t.Errorf("no live %s block in the bucket", res)
		case wantData && o.Before(now.Add(-keep-2*24*time.Hour)):
			t.Errorf("oldest %s block starts %s, past its retention of %s", res, o.UTC().Format(time.RFC3339), keep)
		case o.After(latest(start, now.Add(-keep)).Add(25 * time.Hour)):
			t.Errorf("oldest %s block starts %s: the resolution lost data it should keep (history starts %s)", res, o.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
		}
	}

	bgStop()
	bgWG.Wait()
	bgMu.Lock()
	defer bgMu.Unlock()
	if len(bgErrs) > 0 || bgRan < 10 {
		t.Errorf("%d of %d queries run during compaction failed; first: %v", len(bgErrs), bgRan, bgErrs[:min(len(bgErrs), 5)])
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
