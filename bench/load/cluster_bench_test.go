package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/distributor"
	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/ingest/rwproto"
	"github.com/strata-tsdb/strata/remotewrite"
	"github.com/strata-tsdb/strata/tenant"
)

// threeIngesters is a ring of three ingesters with replication factor 3:
// every series on all three, a quorum of two, as dskit's ring places every
// token when there are as many ingesters as replicas.
type threeIngesters []ring.InstanceDesc

func (r threeIngesters) Get(uint32, ring.Operation, []ring.InstanceDesc, []string, []string) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: r, MaxErrors: 1}, nil
}
func (r threeIngesters) GetAllHealthy(ring.Operation) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: r}, nil
}
func (r threeIngesters) ReplicationFactor() int { return 3 }
func (r threeIngesters) InstancesCount() int    { return 3 }

// BenchmarkHTTPIngestClusterV2 is BenchmarkHTTPIngestV2's load sent to a
// distributor writing to three ingesters over HTTP (each its own store and
// receiver, as a -target=ingester process serves /ingester/push), all in
// this process: its cpu-ns/sample against BenchmarkHTTPIngestV2's, in the
// same run, is the CPU cost of a sample in a cluster against one process
// (about three times the storing, plus the distributor's encoding and the
// internal requests).
func BenchmarkHTTPIngestClusterV2(b *testing.B) {
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
		var ings threeIngesters
		var closers []func()
		for range 3 {
			store, err := blocks.Open(blocks.Options{Dir: b.TempDir(), OutOfOrderWindow: 10 * time.Minute, MaxExemplars: 100000, WALCompression: true})
			if err != nil {
				b.Fatal(err)
			}
			pipe := ingest.New(store, ingest.Options{Decoders: rwproto.Decoders(true)})
			mux := http.NewServeMux()
			mux.Handle(distributor.PushPath, remotewrite.NewHandler(store, remotewrite.Options{Tenants: tenant.Resolver{}, Pipeline: pipe}))
			srv := httptest.NewServer(mux)
			ings = append(ings, ring.InstanceDesc{Addr: strings.TrimPrefix(srv.URL, "http://"), State: ring.ACTIVE})
			closers = append(closers, func() {
				srv.Close()
				if err := store.Close(); err != nil {
					b.Error(err)
				}
			})
		}
		dist := distributor.New(distributor.Options{Ring: ings})
		srv := httptest.NewServer(remotewrite.NewHandler(dist, remotewrite.Options{
			Tenants: tenant.Resolver{Default: "anonymous"}, Pipeline: ingest.New(dist, ingest.Options{}),
		}))
		first := &Data{Spec: d.Spec, V1: d.V1[:1], V2: d.V2[:1]}
		if _, err := Send(context.Background(), srv.URL, first, RW2, 2); err != nil {
			b.Fatal(err)
		}
		rest := &Data{Spec: d.Spec, V1: d.V1[1:], V2: d.V2[1:]}
		cpu0 := processCPU(b)
		b.StartTimer()
		if _, err := Send(context.Background(), srv.URL, rest, RW2, 2); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += processCPU(b) - cpu0
		srv.Close()
		for _, c := range closers {
			c()
		}
		b.StartTimer()
	}
	samples := float64(b.N * steps * len(d.Series))
	b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(cpu)/samples, "cpu-ns/sample")
}
