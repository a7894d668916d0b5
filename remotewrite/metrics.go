package remotewrite

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/strata-tsdb/strata/ingest"
)

// Metrics are the ingest metrics of the write protocols: remote write's
// handler and any other receiver over the same pipeline (OTLP) record
// into one set, told apart by the protocol label of the request metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
}

// NewMetrics registers the ingest metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_remote_write_requests_total",
			Help: "Write requests (remote write and OTLP), by tenant, protocol (v1, v2, otlp) and status code.",
		}, []string{"tenant", "protocol", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                           "strata_remote_write_request_duration_seconds",
			Help:                           "Time to answer a write request (remote write and OTLP), by protocol (v1, v2, otlp).",
			Buckets:                        prometheus.DefBuckets,
			NativeHistogramBucketFactor:    1.1,
			NativeHistogramMaxBucketNumber: 100,
		}, []string{"protocol"}),
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_remote_write_samples_ingested_total",
			Help: "Samples, histograms and exemplars stored from remote write and OTLP, by tenant and kind.",
		}, []string{"tenant", "kind"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_remote_write_samples_rejected_total",
			Help: "Samples rejected from remote write and OTLP, by tenant and reason.",
		}, []string{"tenant", "reason"}),
	}
}

// ObserveRequest counts one request of protocol answered with code, begun
// at start.
func (m *Metrics) ObserveRequest(tenant, protocol string, code int, start time.Time) {
	m.requests.WithLabelValues(tenant, protocol, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(protocol).Observe(time.Since(start).Seconds())
}

// Record counts what a request stored and rejected.
func (m *Metrics) Record(tenant string, res *ingest.Result) {
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
