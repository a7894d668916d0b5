package remotewrite

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
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

// benchBodiesV2 returns the decompressed 2.0 bodies of one scrape of the
// strata-bench load (10k series, requests of 2000 samples).
func benchBodiesV2(b *testing.B) [][]byte {
	d, err := load.Generate(load.DataSpec{Series: 10000, IntervalMs: 15000, Steps: 1, BatchSamples: 2000, Seed: 1, StartMs: time.Now().UnixMilli()})
	if err != nil {
		b.Fatal(err)
	}
	var out [][]byte
	for _, c := range d.V2[0] {
		body, err := snappy.Decode(nil, c)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, body)
	}
	return out
}

// BenchmarkDecodeFlatV2 measures the flat 2.0 decoder alone, per request
// of 2000 samples.
func BenchmarkDecodeFlatV2(b *testing.B) {
	bodies := benchBodiesV2(b)
	f := &flatV2{}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.reset()
		if !f.decode(bodies[i%len(bodies)]) {
			b.Fatal("flat decoder gave up")
		}
		i++
	}
}

// BenchmarkRefLookupV2 measures the reference cache's part of a 2.0
// request of 2000 series, all cached: keys, lookups and verification.
func BenchmarkRefLookupV2(b *testing.B) {
	bodies := benchBodiesV2(b)
	c := newRefCache()
	fs := make([]*flatV2, len(bodies))
	for i, body := range bodies {
		f := &flatV2{}
		if !f.decode(body) {
			b.Fatal("flat decoder gave up")
		}
		f.rb.start(len(f.series))
		f.symHashes = make([]uint64, len(f.symbols))
		for j := range f.series {
			s := &f.series[j]
			var bl labels.ScratchBuilder
			refs := f.refs[s.lblLo:s.lblHi]
			for k := 0; k < len(refs); k += 2 {
				bl.Add(f.symbols[refs[k]], f.symbols[refs[k+1]])
			}
			f.rb.hashes[j] = f.keyV2(s, "")
			c.put(f.rb.hashes[j], bl.Labels(), storage.SeriesRef(j+1))
		}
		fs[i] = f
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f := fs[i%len(fs)]
		i++
		rb := &f.rb
		rb.start(len(f.series))
		clear(f.symHashes)
		for j := range f.series {
			rb.hashes[j] = f.keyV2(&f.series[j], "")
		}
		c.getMany(rb.hashes, rb.found)
		for j := range f.series {
			r := rb.encoded(j)
			if !rb.found[j].found || !f.matchV2(&r, f.refs[f.series[j].lblLo:f.series[j].lblHi], "") {
				b.Fatal("cached series missed")
			}
		}
	}
}
