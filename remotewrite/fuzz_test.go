package remotewrite

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/strata-tsdb/strata/internal/testutil"
)

// fuzzTenant is the tenant the fuzz targets write to.
const fuzzTenant = "fuzz"

// allowedCode reports whether a remote-write answer to arbitrary client
// input may have status code c: never a 5xx, which would make the sender
// retry a request that can never succeed.
func allowedCode(c int) bool {
	switch c {
	case http.StatusNoContent, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return true
	}
	return false
}

func checkCode(t *testing.T, what string, w *httptest.ResponseRecorder) {
	t.Helper()
	if !allowedCode(w.Code) {
		t.Fatalf("%s: status %d, want one of 204, 400, 413, 415; body: %s", what, w.Code, w.Body.String())
	}
}

func FuzzWriteV1(f *testing.F) {
	now := time.Now().UnixMilli()
	for _, wr := range seedsV1(now) {
		f.Add(marshalV1(wr))
	}
	// Broken messages.
	valid := marshalV1(seedsV1(now)[0])
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})

	e := newEnv(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := testutil.Metric(t, e.reg, "strata_remote_write_samples_ingested_total", "tenant", fuzzTenant, "kind", "sample")
		beforeH := testutil.Metric(t, e.reg, "strata_remote_write_samples_ingested_total", "tenant", fuzzTenant, "kind", "histogram")
		w := do(e.h, req{contentType: ctV1, encoding: "snappy", tenant: fuzzTenant, body: snappy.Encode(nil, data)})
		checkCode(t, "snappy-encoded body", w)
		if w.Code == http.StatusNoContent {
			// Everything was stored: the metrics count every sample.
			var wr prompb.WriteRequest
			if err := wr.Unmarshal(data); err != nil {
				t.Fatalf("answered 204 for a body that does not decode: %v", err)
			}
			var samples, hists int
			for _, ts := range wr.Timeseries {
				samples += len(ts.Samples)
				hists += len(ts.Histograms)
			}
			after := testutil.Metric(t, e.reg, "strata_remote_write_samples_ingested_total", "tenant", fuzzTenant, "kind", "sample")
			afterH := testutil.Metric(t, e.reg, "strata_remote_write_samples_ingested_total", "tenant", fuzzTenant, "kind", "histogram")
			if int(after-before) != samples || int(afterH-beforeH) != hists {
				t.Fatalf("answered 204 but counted %v samples and %v histograms of %d and %d", after-before, afterH-beforeH, samples, hists)
			}
		}
		checkCode(t, "raw body", do(e.h, req{contentType: ctV1, tenant: fuzzTenant, body: data}))
	})
}

func FuzzWriteV2(f *testing.F) {
	now := time.Now().UnixMilli()
	for _, wr := range seedsV2(now) {
		f.Add(marshalV2(wr))
	}
	valid := marshalV2(seedsV2(now)[0])
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	f.Add([]byte{0x22, 0x00, 0x2a, 0x04, 0x0a, 0x02, 0x00, 0x00})
	f.Add([]byte{0x22, 0x01, 'x'})

	e := newEnv(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		w := do(e.h, req{contentType: ctV2, encoding: "snappy", tenant: fuzzTenant, body: snappy.Encode(nil, data)})
		checkCode(t, "snappy-encoded body", w)
		if w.Code == http.StatusNoContent || w.Code == http.StatusBadRequest && w.Header().Get(HeaderSamplesWritten) != "" {
			var wr writev2.Request
			if err := wr.Unmarshal(data); err != nil {
				if w.Code == http.StatusNoContent {
					t.Fatalf("answered 204 for a body that does not decode: %v", err)
				}
				return
			}
			var samples, hists, exemplars int
			for _, ts := range wr.Timeseries {
				samples += len(ts.Samples)
				hists += len(ts.Histograms)
				exemplars += len(ts.Exemplars)
			}
			got := func(h string) int {
				t.Helper()
				v := w.Header().Get(h)
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					t.Fatalf("answered %d with header %s = %q, want a count", w.Code, h, v)
				}
				return n
			}
			gs, gh, ge := got(HeaderSamplesWritten), got(HeaderHistogramsWritten), got(HeaderExemplarsWritten)
			if w.Code == http.StatusNoContent && (gs != samples || gh != hists) {
				t.Fatalf("answered 204 but wrote %d samples and %d histograms of %d and %d", gs, gh, samples, hists)
			}
			if gs > samples || gh > hists || ge > exemplars {
				t.Fatalf("wrote %d samples, %d histograms, %d exemplars of %d, %d, %d", gs, gh, ge, samples, hists, exemplars)
			}
		}
		checkCode(t, "raw body", do(e.h, req{contentType: ctV2, tenant: fuzzTenant, body: data}))
	})
}

// seedsV1 are valid 1.0 requests of every kind, and a few invalid ones.
func seedsV1(now int64) []*prompb.WriteRequest {
	return []*prompb.WriteRequest{
		{Timeseries: []prompb.TimeSeries{
			ts1(lbls("__name__", "up", "instance", "node-1:9100", "job", "node"), floats(float64(now-15_000), 1, float64(now), 1)...),
			ts1(lbls("__name__", "node_load1", "instance", "node-1:9100", "job", "node"), floats(float64(now), 0.5)...),
		}},
		{Timeseries: []prompb.TimeSeries{
			{Labels: lbls("__name__", "rpc_latency_seconds"), Histograms: []prompb.Histogram{
				prompb.FromIntHistogram(now-1000, testHistogram(0)),
				prompb.FromIntHistogram(now, testHistogram(1)),
			}},
			{Labels: lbls("__name__", "rpc_latency_seconds", "kind", "float"), Histograms: []prompb.Histogram{prompb.FromFloatHistogram(now, testFloatHistogram(0))}},
			{Labels: lbls("__name__", "rpc_latency_seconds", "kind", "nhcb"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, testCustomBucketsHistogram(0))}},
		}},
		{Timeseries: []prompb.TimeSeries{
			{
				Labels:    lbls("__name__", "http_requests_total", "code", "200"),
				Samples:   floats(float64(now), 7),
				Exemplars: []prompb.Exemplar{{Labels: lbls("trace_id", "abc"), Value: 0.5, Timestamp: now}},
			},
			{
				Labels:    lbls("__name__", "http_requests_total", "code", "200"),
				Exemplars: []prompb.Exemplar{{Labels: lbls("trace_id", "def"), Value: 0.7, Timestamp: now - 1}},
			},
		}},
		{
			Timeseries: []prompb.TimeSeries{ts1(lbls("__name__", "http_requests_total"), floats(float64(now), 1)...)},
			Metadata: []prompb.MetricMetadata{
				{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests.", Unit: ""},
				{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "rpc_latency_seconds", Help: "Latency.", Unit: "seconds"},
			},
		},
		{Timeseries: []prompb.TimeSeries{
			ts1(lbls("__name__", "stale"), prompb.Sample{Timestamp: now, Value: math.Float64frombits(value.StaleNaN)}),
			ts1(lbls("__name__", "special"), floats(float64(now), math.Inf(1), float64(now+1), math.NaN())...),
		}},
		// Invalid: unsorted and duplicate labels, no name, bad UTF-8,
		// too far in the future, too old, an invalid histogram.
		{Timeseries: []prompb.TimeSeries{
			ts1(lbls("__name__", "x", "z", "1", "a", "2"), floats(float64(now), 1)...),
			ts1(lbls("__name__", "x", "a", "1", "a", "2"), floats(float64(now), 1)...),
			ts1(lbls("job", "x"), floats(float64(now), 1)...),
			ts1(lbls("__name__", "x", "a", "\xff"), floats(float64(now), 1)...),
			ts1(lbls("__name__", "x"), floats(float64(now+time.Hour.Milliseconds()), 1, float64(now-time.Hour.Milliseconds()), 1)...),
			{Labels: lbls("__name__", "h"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, &histogram.Histogram{Count: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{1}})}},
		}},
	}
}

// seedsV2 are valid 2.0 requests of every kind, and a few invalid ones.
func seedsV2(now int64) []*writev2.Request {
	var out []*writev2.Request

	b := newV2()
	ts := b.floats([]string{"__name__", "http_requests_total", "code", "200"})
	ts.Samples = []writev2.Sample{{Value: 1, Timestamp: now - 15_000, StartTimestamp: now - 60_000}, {Value: 3, Timestamp: now, StartTimestamp: now - 60_000}}
	ts.Exemplars = []writev2.Exemplar{b.exemplar(now, 0.5, "trace_id", "abc")}
	b.meta(ts, writev2.Metadata_METRIC_TYPE_COUNTER, "Requests.", "")
	b.meta(b.floats([]string{"__name__", "node_memory_MemFree_bytes"}, float64(now), 1e9), writev2.Metadata_METRIC_TYPE_GAUGE, "Free memory.", "bytes")
	out = append(out, b.build())

	b = newV2()
	ih := b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "rpc_latency_seconds"),
		Histograms: []writev2.Histogram{writev2.FromIntHistogram(now-60_000, now-1000, testHistogram(0)), writev2.FromIntHistogram(now-60_000, now, testHistogram(1))},
		Exemplars:  []writev2.Exemplar{b.exemplar(now, 0.01, "trace_id", "h1")},
	})
	b.meta(ih, writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Latency.", "seconds")
	b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "rpc_latency_seconds", "kind", "float"),
		Histograms: []writev2.Histogram{writev2.FromFloatHistogram(0, now, testFloatHistogram(0))},
	})
	b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "rpc_latency_seconds", "kind", "nhcb"),
		Histograms: []writev2.Histogram{writev2.FromIntHistogram(0, now, testCustomBucketsHistogram(0))},
	})
	for _, name := range []string{"req_duration_seconds_bucket", "req_duration_seconds_sum", "req_duration_seconds_count"} {
		b.meta(b.floats([]string{"__name__", name}, float64(now), 1), writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Classic.", "seconds")
	}
	out = append(out, b.build())

	// Invalid series of every kind next to a valid one.
	b = newV2()
	b.floats([]string{"__name__", "ok"}, float64(now), 1)
	b.floats([]string{"__name__", "x", "z", "1", "a", "2"}, float64(now), 1)
	b.floats([]string{"job", "x"}, float64(now), 1)
	b.floats([]string{"__name__", "x", "a", "\xff"}, float64(now), 1)
	b.floats([]string{"__name__", "no_samples"})
	b.floats([]string{"__name__", "future"}, float64(now+time.Hour.Milliseconds()), 1)
	bad := b.floats([]string{"__name__", "bad_refs"}, float64(now), 1)
	bad.LabelsRefs = append(bad.LabelsRefs, 99)
	badMeta := b.floats([]string{"__name__", "bad_meta"}, float64(now), 1)
	badMeta.Metadata.HelpRef = 99
	out = append(out, b.build())

	// A symbols table that does not start with "".
	out = append(out, &writev2.Request{Symbols: []string{"__name__", "x"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{0, 1}, Samples: []writev2.Sample{{Value: 1, Timestamp: now}}}}})
	return out
}

// TestFuzzSeeds keeps the seed corpora honest: the valid seeds are stored
// whole, the invalid ones rejected.
func TestFuzzSeeds(t *testing.T) {
	e := newEnv(t)
	for i, wr := range seedsV1(e.nowMs) {
		want := http.StatusNoContent
		if i == len(seedsV1(e.nowMs))-1 {
			want = http.StatusBadRequest
		}
		if w := e.postV1(wr); w.Code != want {
			t.Errorf("1.0 seed %d: status %d, want %d; body %s", i, w.Code, want, w.Body.String())
		}
	}
	e = newEnv(t)
	for i, wr := range seedsV2(e.nowMs) {
		want := http.StatusNoContent
		if i >= 2 {
			want = http.StatusBadRequest
		}
		if w := e.postV2(wr); w.Code != want {
			t.Errorf("2.0 seed %d: status %d, want %d; body %s", i, w.Code, want, w.Body.String())
		}
	}
}
