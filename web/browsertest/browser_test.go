package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

const (
	tenant      = "demo"
	otherTenant = "team-b"
	history     = 6 * time.Hour
	interval    = 15 * time.Second
)

// The demo tenant's data: 12 request counters (4 instances × 3 methods),
// 3 temperatures, one of which leaves its band in the last 20 minutes, and
// a large answer: 2000 shards' load every minute for the last hour.
var (
	instances = []string{"api-0:8080", "api-1:8080", "api-2:8080", "api-3:8080"}
	methods   = []string{"GET", "POST", "PUT"}
	rooms     = []string{"lab", "office", "server-room"}
	shards    = 2000
)

// rulesYAML are the demo tenant's rules: an anomaly rule, an alert that
// fires on the data, a recording rule, and a recording rule whose every
// evaluation fails (two series with one label set), which the status page
// lists as a failing rule.
const rulesYAML = `groups:
  - name: demo
    interval: 5s
    rules:
      - anomaly: demo:temperature
        expr: demo_temperature
        detector: adaptive
        params: {half_life: 1h, k: 3, warmup: 4}
      - alert: DemoTemperatureHigh
        expr: demo_temperature > 30
        labels: {severity: warning}
        annotations:
          summary: "{{ $labels.room }} is at {{ $value }}°C"
      - record: job:demo_requests:rate5m
        expr: sum by (job) (rate(demo_requests_total[5m]))
      - record: demo:broken
        expr: label_replace(demo_requests_total, "instance", "same", "instance", ".*")
`

// series is one written series: its labels and the value at a time.
type series struct {
	labels []prompb.Label
	value  func(t time.Time) float64
	offset time.Duration // of its timestamps from its grid: senders' clocks are not aligned
	every  time.Duration // between samples; interval when zero
	since  time.Time     // no sample before; none when zero
}

func demoSeries(now time.Time) []series {
	var out []series
	i := 0
	for _, inst := range instances {
		for _, m := range methods {
			base := 2 + float64(i)
			reset := i == 5 // one counter restarts halfway, as a process restart does
			start := now.Add(-history)
			out = append(out, series{
				labels: labelsOf("__name__", "demo_requests_total", "instance", inst, "job", "api", "method", m),
				offset: time.Duration(i*137) * time.Millisecond,
				value: func(t time.Time) float64 {
					s := t.Sub(start).Seconds()
					if reset && t.After(start.Add(history/2)) {
						s = t.Sub(start.Add(history / 2)).Seconds()
					}
					// The integral of base·(1 + 0.3·sin(2πs/3600)).
					return base * (s - 0.3*3600/(2*math.Pi)*(math.Cos(2*math.Pi*s/3600)-1))
				},
			})
			i++
		}
	}
	for j, room := range rooms {
		rng := rand.New(rand.NewPCG(uint64(j), 7))
		phase := float64(j)
		spike := room == "server-room"
		out = append(out, series{
			labels: labelsOf("__name__", "demo_temperature", "room", room),
			offset: time.Duration(j*311) * time.Millisecond,
			value: func(t time.Time) float64 {
				v := 21 + 2*math.Sin(2*math.Pi*float64(t.Unix())/7200+phase) + 0.2*rng.NormFloat64()
				if spike && now.Sub(t) < 20*time.Minute {
					v += 12
				}
				return v
			},
		})
	}
	for j := range shards {
		out = append(out, series{
			labels: labelsOf("__name__", "demo_shard_load", "shard", fmt.Sprintf("%04d", j)),
			offset: time.Duration(j%60) * time.Second,
			every:  time.Minute,
			since:  now.Add(-time.Hour),
			value: func(t time.Time) float64 {
				return float64(j%50) + 10*math.Sin(2*math.Pi*float64(t.Unix())/1800+float64(j))
			},
		})
	}
	return out
}

func otherSeries() []series {
	var out []series
	for j := range 3 {
		out = append(out, series{
			labels: labelsOf("__name__", "other_metric", "shard", fmt.Sprint(j)),
			offset: time.Duration(j*71) * time.Millisecond,
			value:  func(t time.Time) float64 { return float64(j) + math.Mod(float64(t.Unix()), 60) },
		})
	}
	return out
}

func labelsOf(nv ...string) []prompb.Label {
	ls := make([]prompb.Label, 0, len(nv)/2)
	for i := 0; i+1 < len(nv); i += 2 {
		ls = append(ls, prompb.Label{Name: nv[i], Value: nv[i+1]})
	}
	sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
	return ls
}

// samplesBetween returns the write request of ss's samples in [from, to).
func samplesBetween(ss []series, from, to time.Time) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for _, s := range ss {
		ts := prompb.TimeSeries{Labels: s.labels}
		every := s.every
		if every == 0 {
			every = interval
		}
		first := from.Truncate(every).Add(s.offset)
		for t := first; t.Before(to); t = t.Add(every) {
			if t.Before(from) || t.Before(s.since) {
				continue
			}
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t.UnixMilli(), Value: s.value(t)})
		}
		if len(ts.Samples) > 0 {
			req.Timeseries = append(req.Timeseries, ts)
		}
	}
	return req
}

// write sends req with remote write 1.0 and returns the status code.
func write(ctx context.Context, url, tenant string, req *prompb.WriteRequest) (int, string, error) {
	raw, err := req.Marshal()
	if err != nil {
		return 0, "", err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return 0, "", err
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	hr.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}

func mustWrite(t *testing.T, url, tenant string, req *prompb.WriteRequest) {
	t.Helper()
	code, body, err := write(context.Background(), url, tenant, req)
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("remote write for %s: %d %s %v", tenant, code, body, err)
	}
}

// headBlocks is the number of blocks a head holding samples at times (in
// milliseconds, sorted) cuts: while it spans more than 1.5 block ranges,
// its oldest window (aligned to the range) becomes a block and the head
// starts at its first sample after that window, as Prometheus's TSDB does.
func headBlocks(times []int64, rng time.Duration) int {
	if len(times) == 0 {
		return 0
	}
	r := rng.Milliseconds()
	n, i, maxt := 0, 0, times[len(times)-1]
	for maxt-times[i] > r/2*3 {
		end := (times[i]/r + 1) * r
		for times[i] < end {
			i++
		}
		n++
	}
	return n
}

// bucketBlocks lists the ULIDs of the complete blocks of tenant in the
// filesystem bucket under dataDir (directories holding a meta.json).
func bucketBlocks(t *testing.T, dataDir, tenant string) []string {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(dataDir, "bucket", tenant, "*", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range metas {
		ids = append(ids, filepath.Base(filepath.Dir(m)))
	}
	sort.Strings(ids)
	return ids
}

// uiDir is web/ui of this repository.
func uiDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "ui"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestBrowser runs the UI's browser checks (web/ui/tests/browser/run.js) in
// headless Chromium against a Strata holding known data: 6 hours of two
// tenants' series written by remote write, shipped to the bucket, with
// rules evaluating and samples arriving while the pages are open.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts strata and Chromium; skipped with -short")
	}
	node := proctest.RequireProgram(t, "node")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is needed by this test (%v); run `make deps` (scripts/deps.sh installs Debian's chromium) or set CHROMIUM", err)
	}
	ui := uiDir(t)
	if _, err := os.Stat(filepath.Join(ui, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("web/ui's npm packages are not installed (%v); run `make deps` (or `make -C web/ui deps`)", err)
	}

	dir := t.TempDir()
	rulesDir := filepath.Join(t.TempDir(), "rules")
	if err := os.MkdirAll(filepath.Join(rulesDir, tenant), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rulesDir, tenant, "demo.yml"), []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := proctest.FreeAddr(t)
	url := "http://" + addr
	p := proctest.Start(t, "strata", strataBin,
		"-http.listen-address", addr,
		"-storage.path", dir,
		"-rules.tenants-dir", rulesDir,
		"-compactor.interval", "1m",
		"-storage.ship-interval", "1s",
		"-log.level", "info",
	)
	t.Cleanup(func() {
		p.KillCheckRace(t)
	})
	p.WaitHTTP(t, url+"/-/ready", 2*time.Minute)

	// History, in 10-minute requests in time order, as a sender catching up
	// after an outage sends it.
	now := time.Now()
	demo, other := demoSeries(now), otherSeries()
	start := now.Add(-history)
	var written []int64 // the demo tenant's sample times
	for from := start; from.Before(now); from = from.Add(10 * time.Minute) {
		to := from.Add(10 * time.Minute)
		if to.After(now) {
			to = now
		}
		req := samplesBetween(demo, from, to)
		for _, ts := range req.Timeseries {
			for _, smp := range ts.Samples {
				written = append(written, smp.Timestamp)
			}
		}
		mustWrite(t, url, tenant, req)
		mustWrite(t, url, otherTenant, samplesBetween(other, from, to))
	}
	// A sample from last month is refused (too old) and counted as rejected.
	old := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: labelsOf("__name__", "demo_temperature", "room", "lab"), Samples: []prompb.Sample{{Timestamp: now.Add(-30 * 24 * time.Hour).UnixMilli(), Value: 1}},
	}}}
	if code, body, err := write(context.Background(), url, tenant, old); err != nil || code != http.StatusBadRequest {
		t.Fatalf("a month-old sample: want 400, got %d %s %v", code, body, err)
	}
	// The head cuts its oldest 2h windows into blocks once it spans more
	// than 3h (1.5 block ranges, as Prometheus's TSDB), and the shipper
	// uploads them: the bucket comes to hold the history but its last hours.
	slices.Sort(written)
	want := headBlocks(written, 2*time.Hour)
	var blocks []string
	if !testutil.Wait(2*time.Minute, func() bool {
		blocks = bucketBlocks(t, dir, tenant)
		return len(blocks) >= want
	}) {
		t.Fatalf("the bucket holds %d blocks of %s after 2 minutes, want %d", len(blocks), tenant, want)
	}
	if len(blocks) != want {
		t.Fatalf("the bucket holds %d blocks of %s, want %d: %v", len(blocks), tenant, want, blocks)
	}

	// Samples keep arriving while the pages are open, every second, as
	// from a sender; the status page measures the ingest rate from them.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := now
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			next := time.Now()
			for _, w := range []struct {
				id string
				ss []series
			}{{tenant, demo}, {otherTenant, other}} {
				req := samplesBetween(w.ss, last, next)
				if len(req.Timeseries) == 0 {
					continue
				}
				if code, body, err := write(ctx, url, w.id, req); err == nil && code != http.StatusNoContent {
					t.Errorf("live remote write for %s: %d %s", w.id, code, body)
				}
			}
			last = next
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	// A second Strata with tenant authentication, holding the demo tenant
	// and another one, for the sign-in check.
	authDir := t.TempDir()
	authFile := filepath.Join(authDir, "auth.yml")
	if err := os.WriteFile(authFile, []byte("tenants:\n  "+tenant+":\n    bearer_token: demo-token\n  "+otherTenant+":\n    bearer_token: other-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authAddr := proctest.FreeAddr(t)
	authURL := "http://" + authAddr
	ap := proctest.Start(t, "strata-auth", strataBin,
		"-http.listen-address", authAddr,
		"-storage.path", filepath.Join(authDir, "data"),
		"-tenant.auth-file", authFile,
		"-compactor.enabled=false",
	)
	t.Cleanup(ap.Kill)
	ap.WaitHTTP(t, authURL+"/-/ready", 2*time.Minute)
	for id, token := range map[string]string{tenant: "demo-token", otherTenant: "other-token"} {
		raw, err := samplesBetween(other, now.Add(-time.Minute), now).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, authURL+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("remote write as %s with its token: %s", id, resp.Status)
		}
	}

	expect, err := json.Marshal(map[string]any{
		"tenant":        tenant,
		"otherTenant":   otherTenant,
		"querySeries":   len(instances) * len(methods),
		"largeQuery":    "demo_shard_load",
		"largeSeries":   shards,
		"query":         "demo_requests_total",
		"anomalyExpr":   "demo_temperature",
		"anomalySeries": len(rooms),
		"blocks":        blocks,
		"alert":         "DemoTemperatureHigh",
		"anomalyRule":   "demo:temperature",
		"failingRule":   "demo:broken",
		"ruleGroups":    1, // rulesYAML's
		"rules":         4,
		"authURL":       authURL,
		"authToken":     "demo-token",
		"authTenant":    tenant,
	})
	if err != nil {
		t.Fatal(err)
	}
	shots := os.Getenv("STRATA_WEBUI_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(ui, "tests", "browser", "build")
	}
	cmd := exec.Command(node, filepath.Join(ui, "tests", "browser", "run.js"))
	cmd.Dir = ui
	cmd.Env = append(os.Environ(), "STRATA_URL="+url, "STRATA_EXPECT="+string(expect), "CHROMIUM="+chromium, "SCREENSHOT_DIR="+shots)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("browser checks:\n%s", out.String())
	if err != nil {
		t.Fatalf("browser checks failed: %v", err)
	}
}
