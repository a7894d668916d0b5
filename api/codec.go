package api

import (
	jsoniter "github.com/json-iterator/go"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/prometheus/prometheus/promql"
)

// jsonCodec is Prometheus's JSON codec (v1.JSONCodec), writing into a
// buffer sized for the answer up front. It encodes with the same jsoniter
// configuration, whose encoders of PromQL's types Prometheus's API package
// registers, so the bytes are the same; but jsoniter starts from a small
// buffer and doubles it, and for a range query's answer (megabytes) the
// copies and the zeroing of the grown buffers took about as much CPU as
// formatting the numbers (make bench-dashboard's profiles).
type jsonCodec struct{ v1.JSONCodec }

func (jsonCodec) Encode(resp *v1.Response) ([]byte, error) {
	json := jsoniter.ConfigCompatibleWithStandardLibrary
	stream := json.BorrowStream(nil)
	defer json.ReturnStream(stream)
	stream.SetBuffer(make([]byte, 0, encodedSizeHint(resp)))
	stream.WriteVal(resp)
	if stream.Error != nil {
		return nil, stream.Error
	}
	b := stream.Buffer()
	stream.SetBuffer(nil) // b is the caller's; the pooled stream must not keep it
	return b, nil
}

// encodedSizeHint is about the size of resp encoded, a little more for
// the answers of range and instant queries, 4 KiB for others.
func encodedSizeHint(resp *v1.Response) int {
	const other = 4 << 10
	qd, ok := resp.Data.(*v1.QueryData)
	if !ok {
		return other
	}
	n := other
	series := func(ls int, floats, hists int) {
		// A float point: [1700000000.123,"0.123456789012345"]; a
		// histogram's size depends on its buckets.
		n += 32 + 2*ls + 40*floats + 400*hists
	}
	switch v := qd.Result.(type) {
	case promql.Matrix:
		for _, s := range v {
			series(int(s.Metric.ByteSize()), len(s.Floats), len(s.Histograms))
		}
	case promql.Vector:
		for _, s := range v {
			h := 0
			if s.H != nil {
				h = 1
			}
			series(int(s.Metric.ByteSize()), 1-h, h)
		}
	}
	return n
}
