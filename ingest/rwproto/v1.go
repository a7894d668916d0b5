package rwproto

import (
	"math"
	"net/http"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/ingest"
)

// ProtoV1 is the protobuf message of remote write 1.0.
const ProtoV1 = "prometheus.WriteRequest"

// DecodeV1 decodes a remote write 1.0 body into req: with the flat decoder
// (flat.go) when fast is set and the body has the usual shape, else with
// the generated (gogo) decoder, which is the reference and gives the exact
// error of a malformed body.
func DecodeV1(body []byte, req *ingest.Request, fast bool) *ingest.Error {
	req.Proto, req.Body = ProtoV1, body
	if fast {
		if decodeFlatV1(body, req) {
			return nil
		}
		req.Reset()
		req.Proto, req.Body = ProtoV1, body
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(body); err != nil {
		return ingest.Errorf(http.StatusBadRequest, "decode remote write 1.0 request (%s): %v", ProtoV1, err)
	}
	for i := range wr.Timeseries {
		appendSeriesV1(req, &wr.Timeseries[i])
	}
	for _, m := range wr.Metadata {
		req.Families = append(req.Families, ingest.FamilyMetadata{Family: m.MetricFamilyName, Type: metricTypeV1(m.Type), Help: m.Help, Unit: m.Unit})
	}
	return nil
}

// appendSeriesV1 appends a gogo-decoded 1.0 series to req.
func appendSeriesV1(req *ingest.Request, ts *prompb.TimeSeries) {
	s := ingest.Series{
		Labels:     ingest.Span{Lo: len(req.Refs)},
		Samples:    ingest.Span{Lo: len(req.Samples)},
		Histograms: ingest.Span{Lo: len(req.Histograms)},
		Exemplars:  ingest.Span{Lo: len(req.Exemplars)},
	}
	for _, l := range ts.Labels {
		req.AddLabel(l.Name, l.Value)
	}
	s.Labels.Hi = len(req.Refs)
	for _, smp := range ts.Samples {
		req.Samples = append(req.Samples, ingest.Sample{T: smp.Timestamp, V: smp.Value})
	}
	for i := range ts.Histograms {
		hp := &ts.Histograms[i]
		h := ingest.Histogram{T: hp.Timestamp}
		if hp.IsFloatHistogram() {
			h.FH = hp.ToFloatHistogram()
		} else {
			h.H = hp.ToIntHistogram()
		}
		req.Histograms = append(req.Histograms, h)
	}
	for _, e := range ts.Exemplars {
		lo := len(req.Refs)
		for _, l := range e.Labels {
			req.AddLabel(l.Name, l.Value)
		}
		req.Exemplars = append(req.Exemplars, ingest.Exemplar{Labels: ingest.Span{Lo: lo, Hi: len(req.Refs)}, V: e.Value, T: e.Timestamp, HasT: true})
	}
	s.Samples.Hi, s.Histograms.Hi, s.Exemplars.Hi = len(req.Samples), len(req.Histograms), len(req.Exemplars)
	req.Series = append(req.Series, s)
}

func metricTypeV1(t prompb.MetricMetadata_MetricType) model.MetricType {
	switch t {
	case prompb.MetricMetadata_COUNTER:
		return model.MetricTypeCounter
	case prompb.MetricMetadata_GAUGE:
		return model.MetricTypeGauge
	case prompb.MetricMetadata_HISTOGRAM:
		return model.MetricTypeHistogram
	case prompb.MetricMetadata_GAUGEHISTOGRAM:
		return model.MetricTypeGaugeHistogram
	case prompb.MetricMetadata_SUMMARY:
		return model.MetricTypeSummary
	case prompb.MetricMetadata_INFO:
		return model.MetricTypeInfo
	case prompb.MetricMetadata_STATESET:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}

// decodeFlatV1 reads a prompb.WriteRequest body into req. It returns false
// when the body must be decoded by gogo: malformed, or carrying metadata.
func decodeFlatV1(body []byte, req *ingest.Request) bool {
	r := wireReader{b: body}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return false
		}
		switch {
		case field == 1 && wt == wireBytes:
			b, ok := r.bytes()
			if !ok || !flatSeriesV1(req, b) {
				return false
			}
		case field == 1 || field == 3:
			// Wrong wire type, or metadata (decoded by gogo).
			return false
		default:
			if !r.skip(wt) {
				return false
			}
		}
	}
	return true
}

func flatSeriesV1(req *ingest.Request, b []byte) bool {
	symLo := len(req.Symbols)
	s := ingest.Series{Labels: ingest.Span{Lo: len(req.Refs)}, Samples: ingest.Span{Lo: len(req.Samples)},
		Histograms: ingest.Span{Lo: len(req.Histograms), Hi: len(req.Histograms)}, Exemplars: ingest.Span{Lo: len(req.Exemplars), Hi: len(req.Exemplars)}}
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
			name, value, ok := label1(lb)
			if !ok {
				return false
			}
			req.AddLabel(name, value)
		case field == 2 && wt == wireBytes:
			sb, ok := r.bytes()
			if !ok {
				return false
			}
			t, v, ok := sample1(sb)
			if !ok {
				return false
			}
			req.Samples = append(req.Samples, ingest.Sample{T: t, V: v})
		case (field == 3 || field == 4) && wt == wireBytes:
			// Exemplars or histograms: the whole series goes to gogo.
			var ts prompb.TimeSeries
			if err := ts.Unmarshal(b); err != nil {
				return false
			}
			clear(req.Symbols[symLo:])
			req.Symbols, req.Refs, req.Samples = req.Symbols[:symLo], req.Refs[:s.Labels.Lo], req.Samples[:s.Samples.Lo]
			appendSeriesV1(req, &ts)
			return true
		case field <= 4:
			return false
		default:
			if !r.skip(wt) {
				return false
			}
		}
	}
	s.Labels.Hi, s.Samples.Hi = len(req.Refs), len(req.Samples)
	req.Series = append(req.Series, s)
	return true
}

func label1(b []byte) (name, value string, ok bool) {
	r := wireReader{b: b}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return "", "", false
		}
		switch {
		case (field == 1 || field == 2) && wt == wireBytes:
			s, ok := r.bytes()
			if !ok {
				return "", "", false
			}
			if field == 1 {
				name = bytesString(s)
			} else {
				value = bytesString(s)
			}
		case field <= 2:
			return "", "", false
		default:
			if !r.skip(wt) {
				return "", "", false
			}
		}
	}
	return name, value, true
}

func sample1(b []byte) (t int64, v float64, ok bool) {
	r := wireReader{b: b}
	for !r.done() {
		field, wt, ok := r.tag()
		if !ok {
			return 0, 0, false
		}
		switch {
		case field == 1 && wt == wireFixed64:
			x, ok := r.fixed64()
			if !ok {
				return 0, 0, false
			}
			v = math.Float64frombits(x)
		case field == 2 && wt == wireVarint:
			x, ok := r.varint()
			if !ok {
				return 0, 0, false
			}
			t = int64(x)
		case field <= 2:
			return 0, 0, false
		default:
			if !r.skip(wt) {
				return 0, 0, false
			}
		}
	}
	return t, v, true
}
