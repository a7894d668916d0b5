package objstore

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation names, the values of the operation label of the metrics.
const (
	OpGet        = "get"
	OpGetRange   = "get_range"
	OpUpload     = "upload"
	OpDelete     = "delete"
	OpIter       = "iter"
	OpExists     = "exists"
	OpAttributes = "attributes"
)

var allOps = []string{OpGet, OpGetRange, OpUpload, OpDelete, OpIter, OpExists, OpAttributes}

// bucketMetrics are the metrics of Instrument, shared by the buckets
// instrumented on one registry (the bucket label tells them apart).
type bucketMetrics struct {
	ops      *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newBucketMetrics(reg prometheus.Registerer) *bucketMetrics {
	m := &bucketMetrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_objstore_operations_total",
			Help: "Bucket operations started.",
		}, []string{"bucket", "operation"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_objstore_operation_failures_total",
			Help: "Bucket operations that failed, after any retries. A missing object is not a failure of get, get_range, exists or attributes.",
		}, []string{"bucket", "operation"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_objstore_operation_duration_seconds",
			Help:    "Duration of bucket operations, after any retries; for get and get_range until the reader is closed.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"bucket", "operation"}),
	}
	if reg != nil {
		m.ops = register(reg, m.ops)
		m.failures = register(reg, m.failures)
		m.duration = register(reg, m.duration)
	}
	return m
}

// register registers c, or returns the equal collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// Instrument returns b with metrics on reg (none when reg is nil):
// strata_objstore_operations_total, strata_objstore_operation_failures_total
// and strata_objstore_operation_duration_seconds, each by bucket (b.Name())
// and operation (OpGet, ...). A missing object is not a failure of get,
// get_range, exists or attributes; a failed read from the reader of get or
// get_range is. Buckets may share reg as long as their names differ.
// Wrap it around WithRetry to count calls rather than attempts. Instrument
// panics when reg refuses the metrics for a reason other than their having
// been registered by an earlier call.
func Instrument(b Bucket, reg prometheus.Registerer) Bucket {
	m := newBucketMetrics(reg)
	ib := &instrumentedBucket{b: b, m: m, name: b.Name()}
	for _, op := range allOps {
		m.ops.WithLabelValues(ib.name, op)
		m.failures.WithLabelValues(ib.name, op)
		m.duration.WithLabelValues(ib.name, op)
	}
	return ib
}

type instrumentedBucket struct {
	b    Bucket
	m    *bucketMetrics
	name string
}

// track counts op and returns the function that records its end.
func (ib *instrumentedBucket) track(op string) func(err error, notFoundOK bool) {
	ib.m.ops.WithLabelValues(ib.name, op).Inc()
	start := time.Now()
	return func(err error, notFoundOK bool) {
		ib.m.duration.WithLabelValues(ib.name, op).Observe(time.Since(start).Seconds())
		if err != nil && !(notFoundOK && ib.b.IsNotFound(err)) {
			ib.m.failures.WithLabelValues(ib.name, op).Inc()
		}
	}
}

func (ib *instrumentedBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	end := ib.track(OpGet)
	rc, err := ib.b.Get(ctx, name)
	if err != nil {
		end(err, true)
		return nil, err
	}
	return &timedReader{ReadCloser: rc, end: end}, nil
}

func (ib *instrumentedBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	end := ib.track(OpGetRange)
	rc, err := ib.b.GetRange(ctx, name, off, length)
	if err != nil {
		end(err, true)
		return nil, err
	}
	return &timedReader{ReadCloser: rc, end: end}, nil
}

// timedReader ends its operation when closed, as failed if a read failed.
type timedReader struct {
	io.ReadCloser
	end     func(err error, notFoundOK bool)
	readErr error
	once    sync.Once
}

func (r *timedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF && r.readErr == nil {
		r.readErr = err
	}
	return n, err
}

func (r *timedReader) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(func() { r.end(r.readErr, false) })
	return err
}

func (ib *instrumentedBucket) Upload(ctx context.Context, name string, r io.Reader) error {
	end := ib.track(OpUpload)
	err := ib.b.Upload(ctx, name, r)
	end(err, false)
	return err
}

func (ib *instrumentedBucket) Delete(ctx context.Context, name string) error {
	end := ib.track(OpDelete)
	err := ib.b.Delete(ctx, name)
	end(err, false)
	return err
}

func (ib *instrumentedBucket) Iter(ctx context.Context, dir string, f func(name string) error, recursive bool) error {
	end := ib.track(OpIter)
	err := ib.b.Iter(ctx, dir, f, recursive)
	end(err, false)
	return err
}

func (ib *instrumentedBucket) Exists(ctx context.Context, name string) (bool, error) {
	end := ib.track(OpExists)
	ok, err := ib.b.Exists(ctx, name)
	end(err, true)
	return ok, err
}

func (ib *instrumentedBucket) Attributes(ctx context.Context, name string) (Attributes, error) {
	end := ib.track(OpAttributes)
	attrs, err := ib.b.Attributes(ctx, name)
	end(err, true)
	return attrs, err
}

func (ib *instrumentedBucket) IsNotFound(err error) bool { return ib.b.IsNotFound(err) }
func (ib *instrumentedBucket) Name() string              { return ib.name }
func (ib *instrumentedBucket) Close() error              { return ib.b.Close() }
