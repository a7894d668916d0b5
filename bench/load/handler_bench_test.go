package load

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/remotewrite"
	"github.com/strata-tsdb/strata/tenant"
)

// benchIngest sends pre-generated node-exporter bodies (the load of
// strata-bench, 10k series in requests of 2000 samples) through the
// remote-write handler on a real store, with the fast decoders or gogo's
// only. The first scrape, which creates the series, is sent before the
// timer starts: the loop measures steady-state ingest. Each iteration is
// one request of 2000 samples.
func benchIngest(b *testing.B, v2, gogoOnly bool) {
	const series, batch = 10000, 2000
	perStep := (series + batch - 1) / batch
	now := time.Now()
	steps := b.N/perStep + 2
	d, err := Generate(DataSpec{
		Series: series, IntervalMs: 15000, Steps: steps, BatchSamples: batch, Seed: 1,
		StartMs: now.Add(-time.Duration(steps) * 15 * time.Second).UnixMilli(),
	})
	if err != nil {
		b.Fatal(err)
	}
	bodies, ct := d.V1, "application/x-protobuf;proto="+remotewrite.ProtoV1
	if v2 {
		bodies, ct = d.V2, "application/x-protobuf;proto="+remotewrite.ProtoV2
	}
	store, err := blocks.Open(blocks.Options{Dir: b.TempDir(), OutOfOrderWindow: 10 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	h := remotewrite.NewHandler(store, remotewrite.Options{
		Tenants: tenant.Resolver{Default: "bench"}, Now: func() time.Time { return now }, DisableFastDecode: gogoOnly,
	})
	send := func(body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Content-Encoding", "snappy")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	}
	for _, body := range bodies[0] {
		send(body)
	}
	var flat [][]byte
	for _, step := range bodies[1:] {
		flat = append(flat, step...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for i := range b.N {
		send(flat[i])
	}
	samples := b.N * batch
	// The machine these benchmarks run on is shared, so wall time is noisy;
	// the CPU time of the process per sample (handler, store and garbage
	// collection; the loop's own overhead is small) is the steadier figure.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(samples), "cpu-ns/sample")
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
}

// processCPU is the CPU time (user and system) the process has used, in ns.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkIngestV1(b *testing.B)     { benchIngest(b, false, false) }
func BenchmarkIngestV2(b *testing.B)     { benchIngest(b, true, false) }
func BenchmarkIngestV1Gogo(b *testing.B) { benchIngest(b, false, true) }
func BenchmarkIngestV2Gogo(b *testing.B) { benchIngest(b, true, true) }
