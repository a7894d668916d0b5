package remotewrite

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/limits"
)

// BenchmarkWriteV1Limits is BenchmarkWriteV1 with every ingestion limit on
// (none hit) and the series of an HA pair's elected replica, whose replica
// label is dropped: compared with BenchmarkWriteV1 it is the cost of the
// limits on the hot path.
func BenchmarkWriteV1Limits(b *testing.B) {
	for _, tc := range []struct {
		name string
		on   bool
	}{{"off", false}, {"on", true}} {
		b.Run(tc.name, func(b *testing.B) {
			e, _ := newLimitsEnv(b, func(l *limits.Limits) {
				if !tc.on {
					return
				}
				l.IngestionRate, l.IngestionBurst = 1e12, 1e9
				l.MaxActiveSeries, l.MaxActiveSeriesPerMetric = 1e7, 1e6
				l.MaxLabelNamesPerSeries, l.MaxLabelNameLength, l.MaxLabelValueLength = 30, 1024, 2048
				l.MaxExemplarsPerSeries = 10
				l.AcceptHASamples = true
			}, "")
			e.h.opts.Now = func() time.Time { return time.Now().Add(365 * 24 * time.Hour) }
			series := nodeExporterSeries(benchSamples)
			wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(series))}
			for i, s := range series {
				var kv []string
				labels.FromStrings(append(slices.Clone(s.kv), "__replica__", "r1", "cluster", "c1")...).Range(func(l labels.Label) {
					kv = append(kv, l.Name, l.Value)
				})
				wr.Timeseries[i] = prompb.TimeSeries{Labels: lbls(kv...), Samples: make([]prompb.Sample, 1)}
			}
			body := func(ts int64) []byte {
				for i := range wr.Timeseries {
					wr.Timeseries[i].Samples[0] = prompb.Sample{Timestamp: ts, Value: float64(ts/1000 + int64(i))}
				}
				return encodeV1(wr)
			}
			start := e.nowMs
			if w := do(e.h, req{contentType: ctV1, tenant: testTenant, body: body(start)}); w.Code != http.StatusNoContent {
				b.Fatalf("status %d: %s", w.Code, w.Body.String())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				data := body(start + int64(i+1)*1000)
				b.SetBytes(int64(len(data)))
				b.StartTimer()
				if w := do(e.h, req{contentType: ctV1, tenant: testTenant, body: data}); w.Code != http.StatusNoContent {
					b.Fatalf("status %d: %s", w.Code, w.Body.String())
				}
			}
			b.ReportMetric(float64(benchSamples*b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
