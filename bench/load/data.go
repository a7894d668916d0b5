// Package load is Strata's comparative load test: it pre-generates
// node-exporter-shaped remote-write bodies once, sends the same bodies to a
// Prometheus 3 and to a Strata process, and measures both the same way
// (server CPU from /proc, resident memory, bytes of blocks on disk, query
// latency), checking that both answer the queries alike.
package load

import (
	"fmt"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/strata-tsdb/strata/internal/gen"
)

// DataSpec is the shape of the generated data.
type DataSpec struct {
	// Series is the number of active series wanted; whole hosts of
	// node-exporter series are generated, so the count is rounded up.
	Series int
	// IntervalMs is the scrape interval; Steps the number of scrapes.
	IntervalMs int64
	Steps      int
	// StartMs is the timestamp of the first scrape.
	StartMs int64
	// BatchSamples is the number of samples per request (Prometheus's
	// default max_samples_per_send is 2000).
	BatchSamples int
	Seed         uint64
}

// Data is the pre-generated load: the same samples encoded as remote
// write 1.0 and 2.0 request bodies, snappy-compressed.
type Data struct {
	Spec    DataSpec
	Series  []gen.Series
	Samples int
	// V1 and V2 hold, per scrape step, the request bodies of that step.
	// A series is in the same position of every step, so sending the steps
	// in order keeps each series' samples in time order whatever the
	// order of the requests within a step.
	V1, V2     [][][]byte
	V1Bytes    int64
	V2Bytes    int64
	hostsCount int
}

// Hosts is the number of node-exporter hosts generated.
func (d *Data) Hosts() int { return d.hostsCount }

// EndMs is the timestamp of the last scrape.
func (d *Data) EndMs() int64 { return d.Spec.StartMs + int64(d.Spec.Steps-1)*d.Spec.IntervalMs }

// Generate builds the request bodies of spec.
func Generate(spec DataSpec) (*Data, error) {
	if spec.BatchSamples <= 0 || spec.Steps <= 0 || spec.IntervalMs <= 0 || spec.Series <= 0 {
		return nil, fmt.Errorf("invalid data spec %+v", spec)
	}
	per := gen.SeriesPerHost()
	hosts := (spec.Series + per - 1) / per
	series := gen.NodeExporterSeries(hosts)
	d := &Data{Spec: spec, Series: series, hostsCount: hosts}
	g := gen.NewGenerator(series, spec.IntervalMs, spec.Seed)
	enc := newEncoder(series)
	values := make([]float64, len(series))
	for step := range spec.Steps {
		t := spec.StartMs + int64(step)*spec.IntervalMs
		g.Next(t, func(i int, v float64) { values[i] = v })
		var v1, v2 [][]byte
		for lo := 0; lo < len(series); lo += spec.BatchSamples {
			hi := min(lo+spec.BatchSamples, len(series))
			b1, err := enc.v1(lo, hi, t, values)
			if err != nil {
				return nil, err
			}
			b2, err := enc.v2(lo, hi, t, values)
			if err != nil {
				return nil, err
			}
			v1, v2 = append(v1, b1), append(v2, b2)
			d.V1Bytes += int64(len(b1))
			d.V2Bytes += int64(len(b2))
			d.Samples += hi - lo
		}
		d.V1, d.V2 = append(d.V1, v1), append(d.V2, v2)
	}
	return d, nil
}

// encoder builds request bodies, reusing its buffers between requests.
type encoder struct {
	series []gen.Series
	lbls   [][]prompb.Label // 1.0 labels of each series
	wr1    prompb.WriteRequest
	wr2    writev2.Request
	syms   map[string]uint32
	buf    []byte
}

func newEncoder(series []gen.Series) *encoder {
	e := &encoder{series: series, lbls: make([][]prompb.Label, len(series)), syms: map[string]uint32{}}
	for i, s := range series {
		s.Labels.Range(func(l labels.Label) {
			e.lbls[i] = append(e.lbls[i], prompb.Label{Name: l.Name, Value: l.Value})
		})
	}
	return e
}

func (e *encoder) compress() []byte {
	return snappy.Encode(nil, e.buf)
}

// v1 encodes series [lo, hi) at time t as a remote write 1.0 request, the
// way Prometheus's 1.0 sender does: labels and one sample per series, no
// metadata (1.0 sends metadata in separate, periodic requests).
func (e *encoder) v1(lo, hi int, t int64, values []float64) ([]byte, error) {
	e.wr1.Timeseries = e.wr1.Timeseries[:0]
	for i := lo; i < hi; i++ {
		e.wr1.Timeseries = append(e.wr1.Timeseries, prompb.TimeSeries{
			Labels:  e.lbls[i],
			Samples: []prompb.Sample{{Value: values[i], Timestamp: t}},
		})
	}
	n := e.wr1.Size()
	if cap(e.buf) < n {
		e.buf = make([]byte, n)
	}
	e.buf = e.buf[:n]
	if _, err := e.wr1.MarshalToSizedBuffer(e.buf); err != nil {
		return nil, fmt.Errorf("marshal 1.0 request: %w", err)
	}
	return e.compress(), nil
}

func (e *encoder) symbol(s string) uint32 {
	if r, ok := e.syms[s]; ok {
		return r
	}
	r := uint32(len(e.wr2.Symbols))
	e.wr2.Symbols = append(e.wr2.Symbols, s)
	e.syms[s] = r
	return r
}

// v2 encodes series [lo, hi) at time t as a remote write 2.0 request, the
// way Prometheus's 2.0 sender does: one symbols table per request, label
// references, one sample and the type and help metadata per series.
func (e *encoder) v2(lo, hi int, t int64, values []float64) ([]byte, error) {
	clear(e.syms)
	e.wr2.Symbols = e.wr2.Symbols[:0]
	e.symbol("")
	e.wr2.Timeseries = e.wr2.Timeseries[:0]
	for i := lo; i < hi; i++ {
		s := e.series[i]
		refs := make([]uint32, 0, 2*s.Labels.Len())
		s.Labels.Range(func(l labels.Label) {
			refs = append(refs, e.symbol(l.Name), e.symbol(l.Value))
		})
		typ := writev2.Metadata_METRIC_TYPE_GAUGE
		if s.Kind == gen.Counter {
			typ = writev2.Metadata_METRIC_TYPE_COUNTER
		}
		name := s.Labels.Get(labels.MetricName)
		e.wr2.Timeseries = append(e.wr2.Timeseries, writev2.TimeSeries{
			LabelsRefs: refs,
			Samples:    []writev2.Sample{{Value: values[i], Timestamp: t}},
			Metadata:   writev2.Metadata{Type: typ, HelpRef: e.symbol(gen.Help(name))},
		})
	}
	n := e.wr2.Size()
	if cap(e.buf) < n {
		e.buf = make([]byte, n)
	}
	e.buf = e.buf[:n]
	if _, err := e.wr2.MarshalToSizedBuffer(e.buf); err != nil {
		return nil, fmt.Errorf("marshal 2.0 request: %w", err)
	}
	return e.compress(), nil
}
