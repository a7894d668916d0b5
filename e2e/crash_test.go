package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/testutil"
)

// Shape of the crash test's writes: crashWriters goroutines each send
// batches of crashSeries series with crashSamples samples per series.
const (
	crashWriters = 3
	crashSeries  = 4
	crashSamples = 5
	// crashBatchSpan is the time one batch spans, in ms: batch k of a writer
	// holds timestamps base+k*crashBatchSpan+j for j < crashSamples.
	crashBatchSpan = 10
)

// crashValue is the value of sample j of series s in batch k of writer w:
// distinct for every sample, and exact in float64 and in the API's JSON.
func crashValue(w, s, k, j int) float64 {
	return float64(k)*1000 + float64(s*10+j) + float64(w)/4
}

// crashBatch is batch k of writer w.
func crashBatch(w, k int, base int64) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for s := range crashSeries {
		samples := make([]prompb.Sample, crashSamples)
		for j := range samples {
			samples[j] = prompb.Sample{Timestamp: base + int64(k)*crashBatchSpan + int64(j), Value: crashValue(w, s, k, j)}
		}
		req.Timeseries = append(req.Timeseries, newSeries(samples,
			"__name__", "crash_test", "writer", strconv.Itoa(w), "series", strconv.Itoa(s)))
	}
	return req
}

// crashWriter sends remote-write 1.0 batches to Strata from crashWriters
// goroutines, as fast as Strata acknowledges them, and records every batch
// that got a 204. A batch that failed (connection refused or reset while
// Strata is down, 5xx) is sent again until acknowledged, as Prometheus does;
// any other answer is recorded as unexpected.
type crashWriter struct {
	url  string
	base int64

	inflight atomic.Int32 // requests sent and not yet answered

	mu         sync.Mutex
	acked      [crashWriters][]int // acknowledged batch numbers per writer
	nAcked     int
	unexpected []string
}

// run writes until ctx is done.
func (cw *crashWriter) run(ctx context.Context) {
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cw.writer(ctx, w)
		}()
	}
	wg.Wait()
}

func (cw *crashWriter) writer(ctx context.Context, w int) {
	hc := &http.Client{Timeout: 10 * time.Second}
	for k := 0; ; k++ {
		req := crashBatch(w, k, cw.base)
		for {
			if ctx.Err() != nil {
				return
			}
			cw.inflight.Add(1)
			code, body, err := sendWriteV1(ctx, hc, cw.url, "", req)
			cw.inflight.Add(-1)
			if err == nil && code == http.StatusNoContent {
				cw.mu.Lock()
				cw.acked[w] = append(cw.acked[w], k)
				cw.nAcked++
				cw.mu.Unlock()
				break
			}
			if err == nil && code < 500 {
				cw.mu.Lock()
				cw.unexpected = append(cw.unexpected, fmt.Sprintf("writer %d batch %d: HTTP %d %s", w, k, code, body))
				cw.mu.Unlock()
				break
			}
			// Strata is down or failing: the client backs off and retries
			// (a sender's pause, not the test waiting for anything).
			time.Sleep(20 * time.Millisecond)
		}
		// A random pause of 0-2ms between batches varies when requests
		// are in flight relative to the kills.
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
	}
}

// count returns how many batches were acknowledged so far.
func (cw *crashWriter) count() int {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.nAcked
}

// snapshot returns the acknowledged batches so far and the unexpected answers.
func (cw *crashWriter) snapshot() ([crashWriters][]int, []string) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	var out [crashWriters][]int
	for w := range out {
		out[w] = append([]int(nil), cw.acked[w]...)
	}
	return out, append([]string(nil), cw.unexpected...)
}

// TestCrashRecovery kills Strata with SIGKILL while remote-write requests
// are in flight, restarts it on the same data directory, and checks that
// every sample it acknowledged with 204 before the kill is there with its
// timestamp and value. Three kill cycles, then a graceful SIGTERM shutdown
// (which must exit 0) and a last check, of the samples and of the metric
// metadata written before the shutdown.
func TestCrashRecovery(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	s := startStrata(t, "", dir)
	addr := s.addr

	base := (time.Now().Add(-time.Minute).UnixMilli() / 1000) * 1000
	cw := &crashWriter{url: s.url + "/api/v1/write", base: base}
	ctx, cancel := context.WithCancel(context.Background())
	writersDone := make(chan struct{})
	go func() {
		defer close(writersDone)
		cw.run(ctx)
	}()
	stopWriters := func() {
		cancel()
		<-writersDone
	}
	t.Cleanup(stopWriters)

	const cycles = 3
	for cycle := 1; cycle <= cycles; cycle++ {
		// Let the writers get some batches acknowledged by this process,
		// then kill it at a moment that varies relative to the requests.
		target := cw.count() + 150
		testutil.Eventually(t, 30*time.Second, fmt.Sprintf("cycle %d: %d batches acknowledged", cycle, target), func() bool {
			return cw.count() >= target
		})
		// The random delay is the point: the kill's moment relative to
		// the requests varies.
		time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
		// A request is in flight for well under testutil.Wait's polling
		// intervals, so this polls every 100µs; finding none within 5s
		// kills anyway (the count in flight is logged).
		for deadline := time.Now().Add(5 * time.Second); cw.inflight.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Microsecond)
		}
		inflight := cw.inflight.Load()
		s.Kill()
		acked, unexpected := cw.snapshot()
		t.Logf("cycle %d: killed Strata (%v) with %d requests in flight and %d batches acknowledged", cycle, s.WaitErr(), inflight, cw.count())

		s = startStrata(t, addr, dir)
		checkAcked(t, fmt.Sprintf("after kill %d", cycle), s, base, acked)
		if len(unexpected) > 0 {
			t.Fatalf("unexpected remote-write answers: %v", unexpected)
		}
	}

	// Writes go on against the last process; then a graceful shutdown keeps
	// everything acknowledged too.
	target := cw.count() + 30
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d batches acknowledged by the last process", target), func() bool {
		return cw.count() >= target
	})
	stopWriters()
	acked, unexpected := cw.snapshot()
	if len(unexpected) > 0 {
		t.Fatalf("unexpected remote-write answers: %v", unexpected)
	}
	// Metric metadata is kept across a graceful restart (the store persists
	// it on close; after a crash, senders resend it).
	meta := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{
		Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "crash_test", Help: "Samples of the crash test.", Unit: "widgets",
	}}}
	if code, body, err := sendWriteV1(context.Background(), http.DefaultClient, s.url+"/api/v1/write", "", meta); err != nil || code != http.StatusNoContent {
		t.Fatalf("write metadata: HTTP %d %q %v; want 204", code, body, err)
	}
	if err := s.Stop(30 * time.Second); err != nil {
		t.Errorf("graceful shutdown with SIGTERM: %v, want exit status 0", err)
	}
	s = startStrata(t, addr, dir)
	checkAcked(t, "after graceful shutdown", s, base, acked)
	r := newAPIClient(s.url, "").get(t, "/api/v1/metadata", url.Values{"metric": {"crash_test"}})
	want := `{"status":"success","data":{"crash_test":[{"type":"gauge","unit":"widgets","help":"Samples of the crash test."}]}}`
	if r.code != http.StatusOK || string(r.body) != want {
		t.Errorf("metadata after graceful restart: HTTP %d %s, want HTTP 200 %s", r.code, r.body, want)
	}
}

// checkAcked checks that Strata returns every sample of the acknowledged
// batches with its exact timestamp and value, and that every crash_test
// sample it returns is one that was written (acknowledged or not).
func checkAcked(t *testing.T, when string, s *strataProc, base int64, acked [crashWriters][]int) {
	t.Helper()
	// One instant query with a range selector returns the raw samples; its
	// window covers every timestamp the writers can reach.
	at := base + (30 * time.Minute).Milliseconds()
	api := newAPIClient(s.url, "")
	api.hc.Timeout = 2 * time.Minute
	data := mustSucceed(t, when, api.query(t, `crash_test[1h]`, at))
	type seriesID struct{ w, s int }
	have := map[seriesID]map[int64]float64{}
	for _, ps := range decodeResult(t, when, data) {
		w, err1 := strconv.Atoi(ps.Metric["writer"])
		sr, err2 := strconv.Atoi(ps.Metric["series"])
		if err1 != nil || err2 != nil || len(ps.Metric) != 3 {
			t.Fatalf("%s: unexpected series %v", when, ps.Metric)
		}
		m := map[int64]float64{}
		for _, smp := range ps.Samples {
			off := smp.T - base
			k, j := int(off/crashBatchSpan), int(off%crashBatchSpan)
			if off < 0 || j >= crashSamples {
				t.Fatalf("%s: series %v has a sample at %d, which no batch holds", when, ps.Metric, smp.T)
			}
			if want := crashValue(w, sr, k, j); smp.V != want {
				t.Errorf("%s: series %v sample at %d is %v, want %v (batch %d)", when, ps.Metric, smp.T, smp.V, want, k)
			}
			m[smp.T] = smp.V
		}
		have[seriesID{w, sr}] = m
	}
	missing, total := 0, 0
	for w := range crashWriters {
		for _, k := range acked[w] {
			for sr := range crashSeries {
				for j := range crashSamples {
					total++
					ts := base + int64(k)*crashBatchSpan + int64(j)
					if _, ok := have[seriesID{w, sr}][ts]; !ok {
						if missing < 10 {
							t.Errorf("%s: acknowledged sample of writer %d series %d batch %d at %d is missing", when, w, sr, k, ts)
						}
						missing++
					}
				}
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%s: %d of %d acknowledged samples are missing", when, missing, total)
	}
	t.Logf("%s: all %d acknowledged samples are there", when, total)
}
