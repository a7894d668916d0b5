package remotewrite

import (
	"encoding/binary"
	"math"
	"slices"
	"unsafe"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The flat decoders below read remote-write bodies into pooled, flat arrays
// (all labels of a request in one slice, all samples in another) instead of
// the generated gogo types, which allocate every string, every series'
// slices and every sample slice anew for each request: the CPU profile of
// the ingest path under strata-bench showed gogo's Unmarshal and the
// garbage it leaves as the largest cost after the head's own appends.
//
// Strings point into the request body (unsafe.String): the body is reused
// by a later request once this one is answered (see readBody), so what
// outlives the request is copied (labels by labels.ScratchBuilder,
// metadata and HA cluster and replica names explicitly).
//
// Only the common shape is decoded here: series with labels, float samples
// and (2.0) metadata. A series with histograms or exemplars is decoded by
// gogo (rare in practice and complicated to get right), and a body with
// anything malformed or unsupported makes the decoder give up, so that the
// handler decodes the whole body with gogo, which answers with its exact
// error. The decoders are therefore never more permissive than gogo; the
// fuzz tests check that they agree with it.

// bytesString returns b as a string without copying.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// flatV1 is a remote write 1.0 request decoded flat.
type flatV1 struct {
	rb      refBatch
	labels  []prompb.Label
	samples []prompb.Sample
	series  []flatSeries
	complex []prompb.TimeSeries // series with exemplars or histograms, gogo-decoded
}

// flatSeries is one series of a flat request: its labels (1.0) or label
// references (2.0), its samples, and the index+1 of its gogo-decoded form
// when it has histograms or exemplars (0 otherwise).
type flatSeries struct {
	lblLo, lblHi int
	smpLo, smpHi int
	complex      int
	meta         writev2.Metadata
}

func (f *flatV1) reset() {
	f.rb.reset()
	clear(f.labels) // drop the references into the last body
	f.labels, f.samples, f.series = f.labels[:0], f.samples[:0], f.series[:0]
	clear(f.complex)
	f.complex = f.complex[:0]
}

// decode reads a prompb.WriteRequest body. It returns false when the body
// must be decoded by gogo: malformed, or carrying metadata.
func (f *flatV1) decode(body []byte) bool {
	r := wireReader{b: body}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return false
		}
		switch {
		case field == 1 && wt == wireBytes:
			b, ok := r.bytes()
			if !ok || !f.series1(b) {
				return false
			}
		case field == 1 || field == 3:
			// Wrong wire type, or metadata (stored by the gogo path).
			return false
		default:
			if !r.skip(wt) {
				return false
			}
		}
	}
	return true
}

func (f *flatV1) series1(b []byte) bool {
	s := flatSeries{lblLo: len(f.labels), smpLo: len(f.samples)}
	r := wireReader{b: b}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return false
		}
		switch {
		case field == 1 && wt == wireBytes:
			lb, ok := r.bytes()
			if !ok {
				return false
			}
			l, ok := label1(lb)
			if !ok {
				return false
			}
			f.labels = append(f.labels, l)
		case field == 2 && wt == wireBytes:
			sb, ok := r.bytes()
			if !ok {
				return false
			}
			smp, ok := sample1(sb)
			if !ok {
				return false
			}
			f.samples = append(f.samples, smp)
		case (field == 3 || field == 4) && wt == wireBytes:
			// Exemplars or histograms: the whole series goes to gogo.
			var ts prompb.TimeSeries
			if err := ts.Unmarshal(b); err != nil {
				return false
			}
			f.labels, f.samples = f.labels[:s.lblLo], f.samples[:s.smpLo]
			f.complex = append(f.complex, ts)
			f.series = append(f.series, flatSeries{complex: len(f.complex)})
			return true
		case field <= 4:
			return false
		default:
			if !r.skip(wt) {
				return false
			}
		}
	}
	s.lblHi, s.smpHi = len(f.labels), len(f.samples)
	f.series = append(f.series, s)
	return true
}

func label1(b []byte) (prompb.Label, bool) {
	var l prompb.Label
	r := wireReader{b: b}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return l, false
		}
		switch {
		case (field == 1 || field == 2) && wt == wireBytes:
			s, ok := r.bytes()
			if !ok {
				return l, false
			}
			if field == 1 {
				l.Name = bytesString(s)
			} else {
				l.Value = bytesString(s)
			}
		case field <= 2:
			return l, false
		default:
			if !r.skip(wt) {
				return l, false
			}
		}
	}
	return l, true
}

func sample1(b []byte) (prompb.Sample, bool) {
	var s prompb.Sample
	r := wireReader{b: b}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return s, false
		}
		switch {
		case field == 1 && wt == wireFixed64:
			v, ok := r.fixed64()
			if !ok {
				return s, false
			}
			s.Value = math.Float64frombits(v)
		case field == 2 && wt == wireVarint:
			v, ok := r.varint()
			if !ok {
				return s, false
			}
			s.Timestamp = int64(v)
		case field <= 2:
			return s, false
		default:
			if !r.skip(wt) {
				return s, false
			}
		}
	}
	return s, true
}

// flatV2 is a remote write 2.0 request decoded flat.
type flatV2 struct {
	rb        refBatch
	symbols   []string
	symHashes []uint64 // symHash's, by symbol; 0 when not computed yet
	refs      []uint32
	samples   []writev2.Sample
	series    []flatSeries
	complex   []writev2.TimeSeries // series with exemplars or histograms, gogo-decoded
	// valid are the series appended, whose metadata is stored after the
	// commit.
	valid []validSeries
	// metaSeen and metaRefSeen hold the metadata entries the request stored.
	metaSeen    map[familyMetadata]struct{}
	metaRefSeen map[metadataRefs]struct{}
}

func (f *flatV2) reset() {
	f.rb.reset()
	clear(f.metaSeen)
	clear(f.metaRefSeen)
	clear(f.valid)
	f.valid = f.valid[:0]
	clear(f.symbols)
	f.symbols, f.refs, f.samples, f.series = f.symbols[:0], f.refs[:0], f.samples[:0], f.series[:0]
	clear(f.complex)
	f.complex = f.complex[:0]
}

// decode reads a writev2.Request body. It returns false when the body must
// be decoded by gogo.
func (f *flatV2) decode(body []byte) bool {
	r := wireReader{b: body}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return false
		}
		switch {
		case field == 4 && wt == wireBytes:
			b, ok := r.bytes()
			if !ok {
				return false
			}
			f.symbols = append(f.symbols, bytesString(b))
		case field == 5 && wt == wireBytes:
			b, ok := r.bytes()
			if !ok || !f.series2(b) {
				return false
			}
		case field == 4 || field == 5:
			return false
		default:
			if !r.skip(wt) {
				return false
			}
		}
	}
	return true
}

func (f *flatV2) series2(b []byte) bool {
	s := flatSeries{lblLo: len(f.refs), smpLo: len(f.samples)}
	r := wireReader{b: b}
	for !r.done() {
		// The usual fields (packed label references, samples, metadata)
		// with a length below 128, read inline; everything else below.
		if c := b[r.i]; (c == 1<<3|wireBytes || c == 2<<3|wireBytes || c == 5<<3|wireBytes) && r.i+1 < len(b) && b[r.i+1] < 0x80 {
			lo := r.i + 2
			hi := lo + int(b[r.i+1])
			if hi > len(b) {
				return false
			}
			r.i = hi
			switch c {
			case 1<<3 | wireBytes:
				if !f.packedRefs(b[lo:hi]) {
					return false
				}
			case 2<<3 | wireBytes:
				smp, ok := sample2(b[lo:hi])
				if !ok {
					return false
				}
				f.samples = append(f.samples, smp)
			default:
				if !metadata2(b[lo:hi], &s.meta) {
					return false
				}
			}
			continue
		}
		field, wt, ok := r.tag()
		if !ok {
			return false
		}
		switch {
		case field == 1 && wt == wireBytes: // packed label references
			pb, ok := r.bytes()
			if !ok {
				return false
			}
			if !f.packedRefs(pb) {
				return false
			}
		case field == 1 && wt == wireVarint: // unpacked label reference
			v, ok := r.varint()
			if !ok {
				return false
			}
			f.refs = append(f.refs, uint32(v))
		case field == 2 && wt == wireBytes:
			sb, ok := r.bytes()
			if !ok {
				return false
			}
			smp, ok := sample2(sb)
			if !ok {
				return false
			}
			f.samples = append(f.samples, smp)
		case (field == 3 || field == 4) && wt == wireBytes:
			var ts writev2.TimeSeries
			if err := ts.Unmarshal(b); err != nil {
				return false
			}
			f.refs, f.samples = f.refs[:s.lblLo], f.samples[:s.smpLo]
			f.complex = append(f.complex, ts)
			f.series = append(f.series, flatSeries{complex: len(f.complex)})
			return true
		case field == 5 && wt == wireBytes:
			mb, ok := r.bytes()
			if !ok || !metadata2(mb, &s.meta) {
				return false
			}
		case field <= 5:
			return false
		default:
			if !r.skip(wt) {
				return false
			}
		}
	}
	s.lblHi, s.smpHi = len(f.refs), len(f.samples)
	f.series = append(f.series, s)
	return true
}

// packedRefs appends the label references of a packed field to f.refs.
// References below 16384 (one or two bytes) are decoded inline: a request's
// symbols table is rarely larger.
func (f *flatV2) packedRefs(pb []byte) bool {
	f.refs = slices.Grow(f.refs, len(pb)) // at most one reference per byte
	for i := 0; i < len(pb); {
		c := pb[i]
		if c < 0x80 {
			f.refs = append(f.refs, uint32(c))
			i++
			continue
		}
		if i+1 < len(pb) && pb[i+1] < 0x80 {
			f.refs = append(f.refs, uint32(c&0x7f)|uint32(pb[i+1])<<7)
			i += 2
			continue
		}
		v, n := binary.Uvarint(pb[i:])
		if n <= 0 {
			return false
		}
		f.refs = append(f.refs, uint32(v))
		i += n
	}
	return true
}

func sample2(b []byte) (writev2.Sample, bool) {
	var s writev2.Sample
	// The usual encoding, as gogo marshals a sample with a value and a
	// timestamp and no start timestamp: value (field 1, fixed64), then
	// timestamp (field 2, varint) to the end.
	if len(b) > 10 && b[0] == 1<<3|wireFixed64 && b[9] == 2<<3|wireVarint {
		if t, n := binary.Uvarint(b[10:]); n > 0 && 10+n == len(b) {
			s.Value = math.Float64frombits(binary.LittleEndian.Uint64(b[1:9]))
			s.Timestamp = int64(t)
			return s, true
		}
	}
	r := wireReader{b: b}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return s, false
		}
		switch {
		case field == 1 && wt == wireFixed64:
			v, ok := r.fixed64()
			if !ok {
				return s, false
			}
			s.Value = math.Float64frombits(v)
		case (field == 2 || field == 3) && wt == wireVarint:
			v, ok := r.varint()
			if !ok {
				return s, false
			}
			if field == 2 {
				s.Timestamp = int64(v)
			} else {
				s.StartTimestamp = int64(v)
			}
		case field <= 3:
			return s, false
		default:
			if !r.skip(wt) {
				return s, false
			}
		}
	}
	return s, true
}

// metadata2 merges a Metadata message into m, as protobuf merges repeated
// occurrences of a message field.
func metadata2(b []byte, m *writev2.Metadata) bool {
	r := wireReader{b: b}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return false
		}
		switch {
		case (field == 1 || field == 3 || field == 4) && wt == wireVarint:
			v, ok := r.varint()
			if !ok {
				return false
			}
			switch field {
			case 1:
				m.Type = writev2.Metadata_MetricType(int32(v))
			case 3:
				m.HelpRef = uint32(v)
			case 4:
				m.UnitRef = uint32(v)
			}
		case field == 1 || field == 3 || field == 4:
			return false
		default:
			if !r.skip(wt) {
				return false
			}
		}
	}
	return true
}
