package frontend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/annotations"
)

// The cached form of a part's extents.
//
// A value holds the key material it was stored under (checked on read, so
// that a hash collision can never answer another query, or another
// tenant's), the query's step, and the extents, oldest first. Floats are
// kept as their IEEE 754 bits and point times as step counts, so that a
// value decodes to exactly the answer that was encoded. The format is
// Strata's own: Mimir's and Thanos's cache protobufs carry JSON-shaped
// samples and would need a conversion of each point both ways.

const codecMagic = "SFE1"

var errCorrupt = errors.New("corrupt cached value")

// anno is an annotation as the query's answer shows it: rendered against the
// query string, a warning or an info.
type anno struct {
	info bool
	msg  string
}

// extent is the answer of a query over its steps from start to end, both
// included (start and end are step times of the query).
type extent struct {
	start, end int64
	series     promql.Matrix // points within [start, end] only
	annos      []anno
	// merged are annotations that summarise all the steps they arose at
	// (mergeable: see renderAnnos); an extent with any is never cached.
	merged annotations.Annotations
}

// points returns the number of points of e.
func (e *extent) points() int {
	n := 0
	for _, s := range e.series {
		n += len(s.Floats) + len(s.Histograms)
	}
	return n
}

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) f64(v float64)    { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

// encodeEntry encodes the extents of one cache key.
func encodeEntry(material string, step int64, exts []*extent) []byte {
	size := 64 + len(material)
	for _, x := range exts {
		for _, s := range x.series {
			// A float point is its step delta (a byte, mostly) and 8 bytes.
			size += 8 + int(s.Metric.ByteSize()) + 10*len(s.Floats) + 100*len(s.Histograms)
		}
	}
	e := &encoder{b: make([]byte, 0, size)}
	e.b = append(e.b, codecMagic...)
	e.str(material)
	e.varint(step)
	e.uvarint(uint64(len(exts)))
	for _, x := range exts {
		e.varint(x.start)
		e.varint(x.end)
		e.uvarint(uint64(len(x.annos)))
		for _, a := range x.annos {
			if a.info {
				e.b = append(e.b, 1)
			} else {
				e.b = append(e.b, 0)
			}
			e.str(a.msg)
		}
		e.uvarint(uint64(len(x.series)))
		for _, s := range x.series {
			e.uvarint(uint64(s.Metric.Len()))
			s.Metric.Range(func(l labels.Label) {
				e.str(l.Name)
				e.str(l.Value)
			})
			e.uvarint(uint64(len(s.Floats)))
			prev := x.start
			for _, p := range s.Floats {
				e.uvarint(uint64((p.T - prev) / step))
				prev = p.T
				e.f64(p.F)
			}
			e.uvarint(uint64(len(s.Histograms)))
			prev = x.start
			for _, p := range s.Histograms {
				e.uvarint(uint64((p.T - prev) / step))
				prev = p.T
				e.histogram(p.H)
			}
		}
	}
	return e.b
}

func (e *encoder) histogram(h *histogram.FloatHistogram) {
	e.b = append(e.b, byte(h.CounterResetHint))
	e.varint(int64(h.Schema))
	e.f64(h.ZeroThreshold)
	e.f64(h.ZeroCount)
	e.f64(h.Count)
	e.f64(h.Sum)
	for _, spans := range [][]histogram.Span{h.PositiveSpans, h.NegativeSpans} {
		e.uvarint(uint64(len(spans)))
		for _, s := range spans {
			e.varint(int64(s.Offset))
			e.uvarint(uint64(s.Length))
		}
	}
	for _, fs := range [][]float64{h.PositiveBuckets, h.NegativeBuckets, h.CustomValues} {
		e.uvarint(uint64(len(fs)))
		for _, f := range fs {
			e.f64(f)
		}
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) f64() float64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errCorrupt
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errCorrupt
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a length and checks it against the bytes left, each element
// taking at least min bytes, so that a corrupt length never allocates much.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.err = errCorrupt
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

// decodeEntry decodes a value stored under material; it fails unless the
// value was encoded for exactly that material and step.
func decodeEntry(b []byte, material string, step int64) ([]*extent, error) {
	if len(b) < len(codecMagic) || string(b[:len(codecMagic)]) != codecMagic {
		return nil, errCorrupt
	}
	d := &decoder{b: b[len(codecMagic):]}
	if m := d.str(); d.err == nil && m != material {
		return nil, fmt.Errorf("cached value of another key")
	}
	if s := d.varint(); d.err == nil && s != step {
		return nil, errCorrupt
	}
	n := d.count(3)
	exts := make([]*extent, 0, n)
	var lb labels.ScratchBuilder
	for range n {
		x := &extent{start: d.varint(), end: d.varint()}
		na := d.count(2)
		for range na {
			info := d.byte() == 1
			x.annos = append(x.annos, anno{info: info, msg: d.str()})
		}
		ns := d.count(3)
		x.series = make(promql.Matrix, 0, ns)
		for range ns {
			var s promql.Series
			nl := d.count(2)
			lb.Reset()
			for range nl {
				name := d.str()
				lb.Add(name, d.str())
			}
			s.Metric = lb.Labels()
			nf := d.count(9)
			if nf > 0 {
				s.Floats = make([]promql.FPoint, nf)
			}
			t := x.start
			for i := range nf {
				t += int64(d.uvarint()) * step
				s.Floats[i] = promql.FPoint{T: t, F: d.f64()}
			}
			nh := d.count(9)
			if nh > 0 {
				s.Histograms = make([]promql.HPoint, nh)
			}
			t = x.start
			for i := range nh {
				t += int64(d.uvarint()) * step
				s.Histograms[i] = promql.HPoint{T: t, H: d.histogram()}
			}
			x.series = append(x.series, s)
		}
		if d.err != nil {
			return nil, d.err
		}
		exts = append(exts, x)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return exts, d.err
}

func (d *decoder) histogram() *histogram.FloatHistogram {
	h := &histogram.FloatHistogram{CounterResetHint: histogram.CounterResetHint(d.byte())}
	h.Schema = int32(d.varint())
	h.ZeroThreshold = d.f64()
	h.ZeroCount = d.f64()
	h.Count = d.f64()
	h.Sum = d.f64()
	for _, spans := range []*[]histogram.Span{&h.PositiveSpans, &h.NegativeSpans} {
		n := d.count(2)
		if n > 0 {
			*spans = make([]histogram.Span, n)
		}
		for i := range n {
			(*spans)[i] = histogram.Span{Offset: int32(d.varint()), Length: uint32(d.uvarint())}
		}
	}
	for _, fs := range []*[]float64{&h.PositiveBuckets, &h.NegativeBuckets, &h.CustomValues} {
		n := d.count(8)
		if n > 0 {
			*fs = make([]float64, n)
		}
		for i := range n {
			(*fs)[i] = d.f64()
		}
	}
	return h
}
