package remotewrite

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/bench/load"
)

// benchIngest sends pre-generated node-exporter bodies (the load of
// strata-bench, 10k series in requests of 2000 samples) through the handler
// on a real store. The first scrape, which creates the series, is sent
// before the timer starts: the loop measures steady-state ingest. Each
// iteration is one request of 2000 samples.
func benchIngest(b *testing.B, v2 bool) {
	const series, batch = 10000, 2000
	perStep := (series + batch - 1) / batch
	now := time.Now()
	steps := b.N/perStep + 2
	d, err := load.Generate(load.DataSpec{
		Series: series, IntervalMs: 15000, Steps: steps, BatchSamples: batch, Seed: 1,
		StartMs: now.Add(-time.Duration(steps) * 15 * time.Second).UnixMilli(),
	})
	if err != nil {
		b.Fatal(err)
	}
	bodies, ct := d.V1, ctV1
	if v2 {
		bodies, ct = d.V2, ctV2
	}
	e := newEnv(b, func(o *Options) { o.Now = func() time.Time { return now } })
	for _, body := range bodies[0] {
		if w := do(e.h, req{contentType: ct, tenant: testTenant, body: body}); w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	}
	var flat [][]byte
	for _, step := range bodies[1:] {
		flat = append(flat, step...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	samples := 0
	for i := range b.N {
		w := do(e.h, req{contentType: ct, tenant: testTenant, body: flat[i]})
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	}
	samples = b.N * batch
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

func BenchmarkIngestV1(b *testing.B) { benchIngest(b, false) }
func BenchmarkIngestV2(b *testing.B) { benchIngest(b, true) }
