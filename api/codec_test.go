package api

import (
	"bytes"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// TestJSONCodecEncodesAsPrometheus: the codec's bytes are v1.JSONCodec's,
// whatever the answer's shape, also when the size hint is far too small.
func TestJSONCodecEncodesAsPrometheus(t *testing.T) {
	h := &histogram.FloatHistogram{Schema: 1, ZeroThreshold: 0.001, ZeroCount: 2, Count: 9, Sum: -3.25,
		PositiveSpans: []histogram.Span{{Offset: -2, Length: 2}}, PositiveBuckets: []float64{1, 2}}
	odd := labels.FromStrings("__name__", "x", "a", "<&>\"\\\n\u2028ü", "b", "")
	var long promql.Matrix
	for i := range 50 {
		s := promql.Series{Metric: labels.FromStrings("__name__", "y", "i", string(rune('a'+i%26)), "j", string(rune('a'+i/26)))}
		for j := range 200 {
			// Long decimals, so the hint of 40 bytes a point is short.
			s.Floats = append(s.Floats, promql.FPoint{T: 1796617920123 + int64(j)*15000, F: -1e-300 * float64(j*7+i) / 3})
		}
		long = append(long, s)
	}
	for _, tc := range []struct {
		name string
		resp *v1.Response
	}{
		{"matrix", &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: promql.Matrix{
			{Metric: odd, Floats: []promql.FPoint{{T: -1500, F: math.NaN()}, {T: 0, F: math.Inf(-1)}, {T: 1, F: math.Copysign(0, -1)}, {T: 1796617920123, F: 0.11665537925696595}}},
			{Metric: labels.EmptyLabels(), Histograms: []promql.HPoint{{T: 30000, H: h}}},
		}}, Warnings: []string{"w <1>"}, Infos: []string{"i"}}},
		{"long matrix", &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: long}}},
		{"empty matrix", &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: promql.Matrix{}}}},
		{"vector", &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeVector, Result: promql.Vector{
			{Metric: odd, T: 1000, F: 1e300}, {Metric: labels.FromStrings("a", "b"), T: 2000, H: h},
		}}}},
		{"scalar", &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeScalar, Result: promql.Scalar{T: 5, V: 2.5}}}},
		{"other data", &v1.Response{Status: "success", Data: []string{"a", "b"}}},
		{"no data", &v1.Response{Status: "success"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := v1.JSONCodec{}.Encode(tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second from a pooled stream
				got, err := jsonCodec{}.Encode(tc.resp)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("encoded\n%.500s\nwant\n%.500s", got, want)
				}
			}
		})
	}
}
