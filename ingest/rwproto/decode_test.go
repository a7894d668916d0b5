package rwproto

import (
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/strata-tsdb/strata/ingest"
)

// decoded is a Request as the write path reads it: every series with its
// labels resolved (references outside the table kept as such), samples,
// histograms, exemplars and metadata.
type decoded struct {
	Series   []decodedSeries
	Families []ingest.FamilyMetadata
	Empty    bool
}

type decodedSeries struct {
	Labels     []string
	Samples    []string
	Histograms []string
	Exemplars  []string
	Meta       []string
}

func resolve(r *ingest.Request, refs []uint32) []string {
	out := make([]string, len(refs))
	for i, ref := range refs {
		if int(ref) < len(r.Symbols) {
			out[i] = "=" + r.Symbols[ref]
		} else {
			out[i] = fmt.Sprintf("ref %d", ref)
		}
	}
	return out
}

func normalize(r *ingest.Request) decoded {
	d := decoded{Families: r.Families, Empty: r.RejectEmpty}
	for _, s := range r.Series {
		ds := decodedSeries{
			Labels: resolve(r, r.Refs[s.Labels.Lo:s.Labels.Hi]),
			Meta:   append([]string{string(s.Meta.Type)}, resolve(r, []uint32{s.Meta.HelpRef, s.Meta.UnitRef})...),
		}
		for _, smp := range r.Samples[s.Samples.Lo:s.Samples.Hi] {
			ds.Samples = append(ds.Samples, fmt.Sprintf("%d %d %x", smp.ST, smp.T, math.Float64bits(smp.V)))
		}
		for _, h := range r.Histograms[s.Histograms.Lo:s.Histograms.Hi] {
			ds.Histograms = append(ds.Histograms, fmt.Sprintf("%d %d %v %v", h.ST, h.T, h.H, h.FH))
		}
		for _, e := range r.Exemplars[s.Exemplars.Lo:s.Exemplars.Hi] {
			ds.Exemplars = append(ds.Exemplars, fmt.Sprintf("%v %v %d %v", resolve(r, r.Refs[e.Labels.Lo:e.Labels.Hi]), e.V, e.T, e.HasT))
		}
		d.Series = append(d.Series, ds)
	}
	return d
}

// sameDecoding fails unless the flat and the gogo decoders agree on data:
// both refuse it, or both decode the same request. It returns whether the
// flat decoder took the body.
func sameDecoding(t *testing.T, data []byte, v2 bool) bool {
	t.Helper()
	decode, flat := DecodeV1, decodeFlatV1
	if v2 {
		decode, flat = DecodeV2, decodeFlatV2
	}
	var fast, gogo, probe ingest.Request
	errFast, errGogo := decode(data, &fast, true), decode(data, &gogo, false)
	took := flat(data, &probe)
	var unmarshalErr error
	if v2 {
		unmarshalErr = new(writev2.Request).Unmarshal(data)
	} else {
		unmarshalErr = new(prompb.WriteRequest).Unmarshal(data)
	}
	if took && unmarshalErr != nil {
		t.Fatalf("the flat decoder took a body gogo refuses (%v)", unmarshalErr)
	}
	if (errFast == nil) != (errGogo == nil) || errFast != nil && errFast.Error() != errGogo.Error() {
		t.Fatalf("fast decoding: %v; gogo: %v", errFast, errGogo)
	}
	if errGogo != nil {
		return took
	}
	nf, ng := normalize(&fast), normalize(&gogo)
	if !reflect.DeepEqual(nf, ng) && !(len(nf.Series) == 0 && len(ng.Series) == 0) {
		t.Fatalf("fast decoding:\n%+v\ngogo:\n%+v", nf, ng)
	}
	return took
}

func marshal(t testing.TB, m interface{ Marshal() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func labels1(kv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// seedsV1 are 1.0 requests of the usual shape (as Prometheus sends them)
// and of every other kind.
func seedsV1(now int64) []*prompb.WriteRequest {
	h := &histogram.Histogram{Count: 3, Sum: 2, ZeroThreshold: 0.001, Schema: 0, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 1}}
	var node prompb.WriteRequest
	for i := range 50 {
		node.Timeseries = append(node.Timeseries, prompb.TimeSeries{
			Labels:  labels1("__name__", "node_cpu_seconds_total", "cpu", fmt.Sprint(i%4), "instance", fmt.Sprintf("host-%d:9100", i/4), "job", "node", "mode", "idle"),
			Samples: []prompb.Sample{{Timestamp: now - 15000, Value: float64(i) * 1.5}, {Timestamp: now, Value: float64(i)*1.5 + 0.25}},
		})
	}
	return []*prompb.WriteRequest{
		&node,
		{Timeseries: []prompb.TimeSeries{
			{Labels: labels1("__name__", "rpc_seconds"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, h), prompb.FromFloatHistogram(now+1, h.ToFloat(nil))}},
			{Labels: labels1("__name__", "http_requests_total", "code", "200"), Samples: []prompb.Sample{{Timestamp: now, Value: 7}},
				Exemplars: []prompb.Exemplar{{Labels: labels1("trace_id", "abc"), Value: 0.5, Timestamp: now}}},
			{Labels: labels1("__name__", "stale"), Samples: []prompb.Sample{{Timestamp: now, Value: math.Float64frombits(value.StaleNaN)}}},
		}},
		{
			Timeseries: []prompb.TimeSeries{{Labels: labels1("__name__", "up"), Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}},
			Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "up", Help: "Up.", Unit: "1"}},
		},
	}
}

// seedsV2 are 2.0 requests of the usual shape and of every other kind.
func seedsV2(now int64) []*writev2.Request {
	st := writev2.NewSymbolTable()
	refs := func(kv ...string) []uint32 { return st.SymbolizeLabels(labels.FromStrings(kv...), nil) }
	var node writev2.Request
	for i := range 50 {
		node.Timeseries = append(node.Timeseries, writev2.TimeSeries{
			LabelsRefs: refs("__name__", "node_cpu_seconds_total", "cpu", fmt.Sprint(i%4), "instance", fmt.Sprintf("host-%d:9100", i/4), "job", "node", "mode", "idle"),
			Samples:    []writev2.Sample{{Timestamp: now, Value: float64(i), StartTimestamp: now - 60000}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("CPU seconds.")},
		})
	}
	h := &histogram.Histogram{Count: 1, Sum: 1, Schema: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{1}}
	odd := writev2.TimeSeries{LabelsRefs: append(refs("__name__", "odd"), 1), Samples: []writev2.Sample{{Timestamp: now, Value: 1}}}
	outside := writev2.TimeSeries{LabelsRefs: []uint32{1, 999}, Samples: []writev2.Sample{{Timestamp: now, Value: 1}}, Metadata: writev2.Metadata{HelpRef: 998}}
	complexSeries := writev2.TimeSeries{
		LabelsRefs: refs("__name__", "rpc_seconds"),
		Histograms: []writev2.Histogram{writev2.FromIntHistogram(now-1000, now, h)},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: refs("trace_id", "t1"), Value: 0.1, Timestamp: now}},
	}
	node.Timeseries = append(node.Timeseries, odd, outside, complexSeries, writev2.TimeSeries{LabelsRefs: refs("__name__", "empty")})
	node.Symbols = st.Symbols()
	return []*writev2.Request{&node, {Symbols: []string{"__name__", "x"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{0, 1}}}}}
}

func TestDecodersAgreeOnSeeds(t *testing.T) {
	for i, wr := range seedsV1(1_700_000_000_000) {
		took := sameDecoding(t, marshal(t, wr), false)
		if want := len(wr.Metadata) == 0; took != want {
			t.Errorf("1.0 seed %d: the flat decoder took it: %v, want %v", i, took, want)
		}
	}
	for i, wr := range seedsV2(1_700_000_000_000) {
		if !sameDecoding(t, marshal(t, wr), true) {
			t.Errorf("2.0 seed %d: the flat decoder gave up", i)
		}
	}
}

// FuzzDecodeV1 checks that the flat 1.0 decoder never accepts what gogo
// rejects and, when it accepts, decodes the same request.
func FuzzDecodeV1(f *testing.F) {
	for _, wr := range seedsV1(1_700_000_000_000) {
		b, _ := wr.Marshal()
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x0a, 0x04, 0x12, 0x02, 0x10, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) { sameDecoding(t, data, false) })
}

// FuzzDecodeV2 is FuzzDecodeV1 for remote write 2.0.
func FuzzDecodeV2(f *testing.F) {
	for _, wr := range seedsV2(1_700_000_000_000) {
		b, _ := wr.Marshal()
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{0x22, 0x00, 0x2a, 0x04, 0x0a, 0x02, 0x00, 0x00})
	f.Add([]byte{0x22, 0x00, 0x2a, 0x04, 0x08, 0x01, 0x08, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) { sameDecoding(t, data, true) })
}
