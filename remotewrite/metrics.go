package remotewrite

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/strata-tsdb/strata/ingest"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_remote_write_requests_total",
			Help: "Remote-write requests, by tenant, protocol version and status code.",
		}, []string{"tenant", "protocol", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                           "strata_remote_write_request_duration_seconds",
			Help:                           "Time to answer a remote-write request, by protocol version.",
			Buckets:                        prometheus.DefBuckets,
			NativeHistogramBucketFactor:    1.1,
			NativeHistogramMaxBucketNumber: 100,
		}, []string{"protocol"}),
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_remote_write_samples_ingested_total",
			Help: "Samples, histograms and exemplars stored from remote write, by tenant and kind.",
		}, []string{"tenant", "kind"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_remote_write_samples_rejected_total",
			Help: "Samples rejected from remote write, by tenant and reason.",
		}, []string{"tenant", "reason"}),
	}
}

func (m *metrics) record(tenant string, res *ingest.Result) {
	if res.Samples > 0 {
		m.received.WithLabelValues(tenant, "sample").Add(float64(res.Samples))
	}
	if res.Histograms > 0 {
		m.received.WithLabelValues(tenant, "histogram").Add(float64(res.Histograms))
	}
	if res.Exemplars > 0 {
		m.received.WithLabelValues(tenant, "exemplar").Add(float64(res.Exemplars))
	}
	for reason, n := range res.Rejected {
		m.rejected.WithLabelValues(tenant, reason).Add(float64(n))
	}
}
