package rwproto

import (
	"encoding/binary"
	"math"
	"net/http"
	"slices"

	"github.com/prometheus/common/model"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/strata-tsdb/strata/ingest"
)

// ProtoV2 is the protobuf message of remote write 2.0.
const ProtoV2 = "io.prometheus.write.v2.Request"

// DecodeV2 decodes a remote write 2.0 body into req, as DecodeV1 does.
func DecodeV2(body []byte, req *ingest.Request, fast bool) *ingest.Error {
	if err := decodeV2(body, req, fast); err != nil {
		return err
	}
	if len(req.Symbols) > 0 && req.Symbols[0] != "" {
		return ingest.Errorf(http.StatusBadRequest, "symbols table must start with an empty string")
	}
	return nil
}

func decodeV2(body []byte, req *ingest.Request, fast bool) *ingest.Error {
	req.Proto, req.Body, req.RejectEmpty = ProtoV2, body, true
	if fast {
		if decodeFlatV2(body, req) {
			return nil
		}
		req.Reset()
		req.Proto, req.Body, req.RejectEmpty = ProtoV2, body, true
	}
	var wr writev2.Request
	if err := wr.Unmarshal(body); err != nil {
		return ingest.Errorf(http.StatusBadRequest, "decode remote write 2.0 request (%s): %v", ProtoV2, err)
	}
	req.Symbols = append(req.Symbols, wr.Symbols...)
	for i := range wr.Timeseries {
		appendSeriesV2(req, &wr.Timeseries[i])
	}
	return nil
}

// appendSeriesV2 appends a gogo-decoded 2.0 series to req, whose symbols
// are the request's.
func appendSeriesV2(req *ingest.Request, ts *writev2.TimeSeries) {
	s := ingest.Series{
		Labels:     ingest.Span{Lo: len(req.Refs)},
		Samples:    ingest.Span{Lo: len(req.Samples)},
		Histograms: ingest.Span{Lo: len(req.Histograms)},
		Exemplars:  ingest.Span{Lo: len(req.Exemplars)},
		Meta:       metadataV2(ts.Metadata),
	}
	req.Refs = append(req.Refs, ts.LabelsRefs...)
	s.Labels.Hi = len(req.Refs)
	for _, smp := range ts.Samples {
		req.Samples = append(req.Samples, ingest.Sample{ST: smp.StartTimestamp, T: smp.Timestamp, V: smp.Value})
	}
	for i := range ts.Histograms {
		hp := &ts.Histograms[i]
		h := ingest.Histogram{ST: hp.StartTimestamp, T: hp.Timestamp}
		if hp.IsFloatHistogram() {
			h.FH = hp.ToFloatHistogram()
		} else {
			h.H = hp.ToIntHistogram()
		}
		req.Histograms = append(req.Histograms, h)
	}
	for _, e := range ts.Exemplars {
		lo := len(req.Refs)
		req.Refs = append(req.Refs, e.LabelsRefs...)
		req.Exemplars = append(req.Exemplars, ingest.Exemplar{Labels: ingest.Span{Lo: lo, Hi: len(req.Refs)}, V: e.Value, T: e.Timestamp, HasT: e.Timestamp != 0})
	}
	s.Samples.Hi, s.Histograms.Hi, s.Exemplars.Hi = len(req.Samples), len(req.Histograms), len(req.Exemplars)
	req.Series = append(req.Series, s)
}

// metadataV2 converts a series' metadata.
func metadataV2(m writev2.Metadata) ingest.Metadata {
	md := ingest.Metadata{HelpRef: m.HelpRef, UnitRef: m.UnitRef}
	switch m.Type {
	case writev2.Metadata_METRIC_TYPE_COUNTER:
		md.Type = model.MetricTypeCounter
	case writev2.Metadata_METRIC_TYPE_GAUGE:
		md.Type = model.MetricTypeGauge
	case writev2.Metadata_METRIC_TYPE_HISTOGRAM:
		md.Type = model.MetricTypeHistogram
	case writev2.Metadata_METRIC_TYPE_GAUGEHISTOGRAM:
		md.Type = model.MetricTypeGaugeHistogram
	case writev2.Metadata_METRIC_TYPE_SUMMARY:
		md.Type = model.MetricTypeSummary
	case writev2.Metadata_METRIC_TYPE_INFO:
		md.Type = model.MetricTypeInfo
	case writev2.Metadata_METRIC_TYPE_STATESET:
		md.Type = model.MetricTypeStateset
	}
	return md
}

// decodeFlatV2 reads a writev2.Request body into req. It returns false
// when the body must be decoded by gogo.
func decodeFlatV2(body []byte, req *ingest.Request) bool {
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
			req.Symbols = append(req.Symbols, bytesString(b))
		case field == 5 && wt == wireBytes:
			b, ok := r.bytes()
			if !ok || !flatSeriesV2(req, b) {
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

func flatSeriesV2(req *ingest.Request, b []byte) bool {
	s := ingest.Series{Labels: ingest.Span{Lo: len(req.Refs)}, Samples: ingest.Span{Lo: len(req.Samples)},
		Histograms: ingest.Span{Lo: len(req.Histograms), Hi: len(req.Histograms)}, Exemplars: ingest.Span{Lo: len(req.Exemplars), Hi: len(req.Exemplars)}}
	var meta writev2.Metadata
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
				if !packedRefs(req, b[lo:hi]) {
					return false
				}
			case 2<<3 | wireBytes:
				smp, ok := sample2(b[lo:hi])
				if !ok {
					return false
				}
				req.Samples = append(req.Samples, ingest.Sample{ST: smp.StartTimestamp, T: smp.Timestamp, V: smp.Value})
			default:
				if !metadata2(b[lo:hi], &meta) {
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
			if !packedRefs(req, pb) {
				return false
			}
		case field == 1 && wt == wireVarint: // unpacked label reference
			v, ok := r.varint()
			if !ok {
				return false
			}
			req.Refs = append(req.Refs, uint32(v))
		case field == 2 && wt == wireBytes:
			sb, ok := r.bytes()
			if !ok {
				return false
			}
			smp, ok := sample2(sb)
			if !ok {
				return false
			}
			req.Samples = append(req.Samples, ingest.Sample{ST: smp.StartTimestamp, T: smp.Timestamp, V: smp.Value})
		case (field == 3 || field == 4) && wt == wireBytes:
			// Exemplars or histograms: the whole series goes to gogo.
			var ts writev2.TimeSeries
			if err := ts.Unmarshal(b); err != nil {
				return false
			}
			req.Refs, req.Samples = req.Refs[:s.Labels.Lo], req.Samples[:s.Samples.Lo]
			appendSeriesV2(req, &ts)
			return true
		case field == 5 && wt == wireBytes:
			mb, ok := r.bytes()
			if !ok || !metadata2(mb, &meta) {
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
	s.Labels.Hi, s.Samples.Hi = len(req.Refs), len(req.Samples)
	s.Meta = metadataV2(meta)
	req.Series = append(req.Series, s)
	return true
}

// packedRefs appends the label references of a packed field to r.Refs.
// References below 16384 (one or two bytes) are decoded inline: a request's
// symbols table is rarely larger.
func packedRefs(r *ingest.Request, pb []byte) bool {
	r.Refs = slices.Grow(r.Refs, len(pb)) // at most one reference per byte
	for i := 0; i < len(pb); {
		c := pb[i]
		if c < 0x80 {
			r.Refs = append(r.Refs, uint32(c))
			i++
			continue
		}
		if i+1 < len(pb) && pb[i+1] < 0x80 {
			r.Refs = append(r.Refs, uint32(c&0x7f)|uint32(pb[i+1])<<7)
			i += 2
			continue
		}
		v, n := binary.Uvarint(pb[i:])
		if n <= 0 {
			return false
		}
		r.Refs = append(r.Refs, uint32(v))
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
