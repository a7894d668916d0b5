package load

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/remotewrite"
	"github.com/strata-tsdb/strata/tenant"
)

// benchHTTPIngest sends the strata-bench load (20k series, 40 scrapes) over
// HTTP to Strata's remote-write handler on a real store, as the strata
// process receives it: run it with -cpuprofile and -memprofile to profile
// the ingest path. The first scrape, which creates the series, is sent
// before the timer starts.
func benchHTTPIngest(b *testing.B, p Protocol) {
	now := time.Now()
	const steps = 40
	d, err := Generate(DataSpec{Series: 20000, IntervalMs: 15000, Steps: steps + 1, BatchSamples: 2000, Seed: 1,
		StartMs: now.Add(-(steps + 1) * 15 * time.Second).UnixMilli()})
	if err != nil {
		b.Fatal(err)
	}
	var cpu int64
	for b.Loop() {
		b.StopTimer()
		store, err := blocks.Open(blocks.Options{Dir: b.TempDir(), OutOfOrderWindow: 10 * time.Minute, MaxExemplars: 100000, WALCompression: true})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(remotewrite.NewHandler(store, remotewrite.Options{Tenants: tenant.Resolver{Default: "anonymous"}}))
		first := &Data{Spec: d.Spec, V1: d.V1[:1], V2: d.V2[:1]}
		if _, err := Send(context.Background(), srv.URL, first, p, 2); err != nil {
			b.Fatal(err)
		}
		rest := &Data{Spec: d.Spec, V1: d.V1[1:], V2: d.V2[1:]}
		cpu0 := processCPU(b)
		b.StartTimer()
		if _, err := Send(context.Background(), srv.URL, rest, p, 2); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += processCPU(b) - cpu0
		srv.Close()
		if err := store.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	samples := float64(b.N * steps * len(d.Series))
	b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
	// The CPU time of the process per sample (handler, store, garbage
	// collection, the sender's share): steadier than wall time on a shared
	// machine, and what BenchmarkHTTPIngestClusterV2 is compared by.
	b.ReportMetric(float64(cpu)/samples, "cpu-ns/sample")
}

func BenchmarkHTTPIngestV1(b *testing.B) { benchHTTPIngest(b, RW1) }
func BenchmarkHTTPIngestV2(b *testing.B) { benchHTTPIngest(b, RW2) }
