package remotewrite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/tenant"
)

func TestWriteV1Floats(t *testing.T) {
	for _, tc := range []struct {
		name        string
		contentType string
		encoding    string
	}{
		{name: "no Content-Type, no Content-Encoding"},
		{name: "protobuf without proto", contentType: ctV1NoProto, encoding: "snappy"},
		{name: "proto=prometheus.WriteRequest", contentType: ctV1, encoding: "snappy"},
		{name: "quoted proto and spaces", contentType: `application/x-protobuf; proto="prometheus.WriteRequest"`, encoding: "snappy"},
		{name: "encoding in upper case", contentType: ctV1, encoding: "SNAPPY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			now := e.nowMs
			wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				ts1(lbls("__name__", "up", "instance", "node-1:9100", "job", "node"),
					floats(float64(now-30_000), 1, float64(now-15_000), 0, float64(now), 1)...),
				ts1(lbls("__name__", "node_load1", "instance", "node-1:9100", "job", "node"),
					floats(float64(now), 0.25)...),
				// A label with an empty value is the same as no label.
				ts1(lbls("__name__", "node_boot_time_seconds", "empty", "", "instance", "node-1:9100"),
					floats(float64(now), 1.7e9)...),
				// A staleness marker is stored as such.
				ts1(lbls("__name__", "gone", "job", "node"),
					prompb.Sample{Timestamp: now - 1000, Value: 3},
					prompb.Sample{Timestamp: now, Value: math.Float64frombits(value.StaleNaN)}),
			}}
			w := do(e.h, req{contentType: tc.contentType, encoding: tc.encoding, tenant: testTenant, body: encodeV1(wr)})
			assertCode(t, w, http.StatusNoContent)
			if w.Body.Len() != 0 {
				t.Errorf("body %q, want empty", w.Body.String())
			}
			e.assertStored(t, testTenant, map[string][]string{
				`{__name__="up", instance="node-1:9100", job="node"}`:         {fs(now-30_000, 1), fs(now-15_000, 0), fs(now, 1)},
				`{__name__="node_load1", instance="node-1:9100", job="node"}`: {fs(now, 0.25)},
				`{__name__="node_boot_time_seconds", instance="node-1:9100"}`: {fs(now, 1.7e9)},
				`{__name__="gone", job="node"}`:                               {fs(now-1000, 3), fs(now, math.NaN())},
			})
			got := e.samples(t, testTenant)[`{__name__="gone", job="node"}`]
			if len(got) != 2 || !value.IsStaleNaN(got[1].V) {
				t.Errorf("staleness marker not stored as such: %v", got)
			}
			if n := testutil.Metric(t, e.reg, "strata_remote_write_samples_ingested_total", "tenant", testTenant, "kind", "sample"); n != 7 {
				t.Errorf("samples ingested metric = %v, want 7", n)
			}
		})
	}
}

func TestWriteV1Histograms(t *testing.T) {
	e := newEnv(t)
	now := e.nowMs
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{
			Labels: lbls("__name__", "rpc_latency_seconds", "kind", "int"),
			Histograms: []prompb.Histogram{
				prompb.FromIntHistogram(now-1000, testHistogram(0)),
				prompb.FromIntHistogram(now, testHistogram(1)),
			},
		},
		{
			Labels:     lbls("__name__", "rpc_latency_seconds", "kind", "float"),
			Histograms: []prompb.Histogram{prompb.FromFloatHistogram(now, testFloatHistogram(0))},
		},
		{
			Labels:     lbls("__name__", "rpc_latency_seconds", "kind", "nhcb"),
			Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, testCustomBucketsHistogram(0))},
		},
	}}
	w := e.postV1(wr)
	assertCode(t, w, http.StatusNoContent)

	got := e.samples(t, testTenant)
	check := func(series string, i int, wantT int64, want any) {
		t.Helper()
		ss := got[series]
		if i >= len(ss) {
			t.Errorf("%s: %d samples, want more than %d", series, len(ss), i)
			return
		}
		s := ss[i]
		if s.T != wantT {
			t.Errorf("%s[%d]: timestamp %d, want %d", series, i, s.T, wantT)
		}
		switch want := want.(type) {
		case *histogram.Histogram:
			if s.H == nil || !s.H.Equals(want) {
				t.Errorf("%s[%d]: got %v, want histogram %v", series, i, s, want)
			}
		case *histogram.FloatHistogram:
			if s.FH == nil || !s.FH.Equals(want) {
				t.Errorf("%s[%d]: got %v, want float histogram %v", series, i, s, want)
			}
		}
	}
	check(`{__name__="rpc_latency_seconds", kind="int"}`, 0, now-1000, testHistogram(0))
	check(`{__name__="rpc_latency_seconds", kind="int"}`, 1, now, testHistogram(1))
	check(`{__name__="rpc_latency_seconds", kind="float"}`, 0, now, testFloatHistogram(0))
	check(`{__name__="rpc_latency_seconds", kind="nhcb"}`, 0, now, testCustomBucketsHistogram(0))
	if len(got) != 3 {
		t.Errorf("%d series stored, want 3: %v", len(got), got)
	}
	if n := testutil.Metric(t, e.reg, "strata_remote_write_samples_ingested_total", "tenant", testTenant, "kind", "histogram"); n != 4 {
		t.Errorf("histograms ingested metric = %v, want 4", n)
	}
}

func TestWriteV1InvalidHistogram(t *testing.T) {
	e := newEnv(t)
	now := e.nowMs
	bad := testHistogram(0)
	bad.Count = 1 // fewer than the buckets hold
	w := e.postV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "bad_hist"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, bad)}},
		{Labels: lbls("__name__", "good_hist"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, testHistogram(0))}},
	}})
	assertCode(t, w, http.StatusBadRequest)
	assertBodyContains(t, w, `bad_hist`)
	e.assertStored(t, testTenant, map[string][]string{`{__name__="good_hist"}`: {hs(now, testHistogram(0))}})
	if n := e.rejected(t, testTenant, reasonHistogram); n != 1 {
		t.Errorf("rejected{reason=%q} = %v, want 1", reasonHistogram, n)
	}
}

func TestWriteV1Exemplars(t *testing.T) {
	e := newEnv(t)
	now := e.nowMs
	ex := func(t int64, v float64, kv ...string) prompb.Exemplar {
		return prompb.Exemplar{Labels: lbls(kv...), Value: v, Timestamp: t}
	}
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		// Samples and exemplars in one entry, exemplars out of order.
		{
			Labels:  lbls("__name__", "http_requests_total", "code", "200"),
			Samples: floats(float64(now-1000), 10, float64(now), 12),
			Exemplars: []prompb.Exemplar{
				ex(now, 0.5, "trace_id", "bbb"),
				ex(now-1000, 0.25, "trace_id", "aaa"),
			},
		},
		// Prometheus sends samples and exemplars of a series in separate
		// entries: the exemplars of the second entry belong to the first.
		{
			Labels:  lbls("__name__", "http_requests_total", "code", "500"),
			Samples: floats(float64(now), 3),
		},
		{
			Labels:    lbls("__name__", "http_requests_total", "code", "500"),
			Exemplars: []prompb.Exemplar{ex(now, 1.5, "span_id", "s1", "trace_id", "ccc")},
		},
		// Exemplars of a series that has no samples are dropped quietly.
		{
			Labels:    lbls("__name__", "never_written"),
			Exemplars: []prompb.Exemplar{ex(now, 1, "trace_id", "ddd")},
		},
		// Exemplars too far in the future are dropped quietly.
		{
			Labels:    lbls("__name__", "future_exemplar"),
			Samples:   floats(float64(now), 1),
			Exemplars: []prompb.Exemplar{ex(now+time.Hour.Milliseconds(), 1, "trace_id", "eee")},
		},
	}}
	w := e.postV1(wr)
	assertCode(t, w, http.StatusNoContent)

	got := e.exemplars(t, testTenant)
	want := map[string][]exemplar.Exemplar{
		`{__name__="http_requests_total", code="200"}`: {
			{Labels: labels.FromStrings("trace_id", "aaa"), Value: 0.25, Ts: now - 1000, HasTs: true},
			{Labels: labels.FromStrings("trace_id", "bbb"), Value: 0.5, Ts: now, HasTs: true},
		},
		`{__name__="http_requests_total", code="500"}`: {
			{Labels: labels.FromStrings("span_id", "s1", "trace_id", "ccc"), Value: 1.5, Ts: now, HasTs: true},
		},
	}
	assertExemplars(t, got, want)
	if n := testutil.Metric(t, e.reg, "strata_remote_write_samples_ingested_total", "tenant", testTenant, "kind", "exemplar"); n != 3 {
		t.Errorf("exemplars ingested metric = %v, want 3", n)
	}
}

func assertExemplars(t *testing.T, got, want map[string][]exemplar.Exemplar) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("exemplars of %d series, want %d: %v", len(got), len(want), got)
	}
	for series, w := range want {
		g := got[series]
		if len(g) != len(w) {
			t.Errorf("%s: exemplars %v, want %v", series, g, w)
			continue
		}
		for i := range w {
			if !g[i].Equals(w[i]) || g[i].Value != w[i].Value {
				t.Errorf("%s: exemplar %d is %v, want %v", series, i, g[i], w[i])
			}
		}
	}
}

func TestWriteV1Metadata(t *testing.T) {
	e := newEnv(t)
	now := e.nowMs
	wr := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{ts1(lbls("__name__", "http_requests_total"), floats(float64(now), 1)...)},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests served."},
			{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "http_request_duration_seconds", Help: "Latency.", Unit: "seconds"},
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "node_load1", Help: "1m load average."},
			{Type: prompb.MetricMetadata_SUMMARY, MetricFamilyName: "rpc_duration_seconds"},
			{Type: prompb.MetricMetadata_STATESET, MetricFamilyName: "state"},
			{Type: prompb.MetricMetadata_MetricType(99), MetricFamilyName: "odd_type"},
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "", Help: "no family: dropped"},
		},
	}
	w := e.postV1(wr)
	assertCode(t, w, http.StatusNoContent)
	got := e.metadataOf(t, testTenant)
	want := map[string][]metadata.Metadata{
		"http_requests_total":           {{Type: model.MetricTypeCounter, Help: "Requests served."}},
		"http_request_duration_seconds": {{Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"}},
		"node_load1":                    {{Type: model.MetricTypeGauge, Help: "1m load average."}},
		"rpc_duration_seconds":          {{Type: model.MetricTypeSummary}},
		"state":                         {{Type: model.MetricTypeStateset}},
		"odd_type":                      {{Type: model.MetricTypeUnknown}},
	}
	assertMetadata(t, got, want)
}

func assertMetadata(t *testing.T, got, want map[string][]metadata.Metadata) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metadata:\n got  %v\n want %v", got, want)
	}
}

func TestWriteV2(t *testing.T) {
	e := newEnv(t)
	now := e.nowMs
	b := newV2()

	// A counter with a start timestamp, exemplars and metadata.
	c := b.floats([]string{"__name__", "http_requests_total", "code", "200", "job", "api"})
	c.Samples = []writev2.Sample{
		{Value: 10, Timestamp: now - 15_000, StartTimestamp: now - 3_600_000},
		{Value: 12, Timestamp: now, StartTimestamp: now - 3_600_000},
	}
	c.Exemplars = []writev2.Exemplar{
		b.exemplar(now, 0.5, "trace_id", "bbb"),
		b.exemplar(now-15_000, 0.25, "trace_id", "aaa"),
	}
	b.meta(c, writev2.Metadata_METRIC_TYPE_COUNTER, "Requests served.", "")

	// A gauge with a unit.
	g := b.floats([]string{"__name__", "node_memory_MemFree_bytes", "instance", "node-1:9100"}, float64(now), 1<<30)
	b.meta(g, writev2.Metadata_METRIC_TYPE_GAUGE, "Free memory.", "bytes")

	// A classic histogram: its series carry the family's metadata.
	for _, s := range []fseries{
		{[]string{"__name__", "http_request_duration_seconds_bucket", "le", "0.1"}, []float64{float64(now), 3}},
		{[]string{"__name__", "http_request_duration_seconds_bucket", "le", "+Inf"}, []float64{float64(now), 5}},
		{[]string{"__name__", "http_request_duration_seconds_count"}, []float64{float64(now), 5}},
		{[]string{"__name__", "http_request_duration_seconds_sum"}, []float64{float64(now), 1.25}},
	} {
		b.meta(b.floats(s.kv, s.tv...), writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Request latency.", "seconds")
	}

	// A summary.
	for _, s := range []fseries{
		{[]string{"__name__", "rpc_duration_seconds", "quantile", "0.5"}, []float64{float64(now), 0.01}},
		{[]string{"__name__", "rpc_duration_seconds_count"}, []float64{float64(now), 7}},
		{[]string{"__name__", "rpc_duration_seconds_sum"}, []float64{float64(now), 0.2}},
	} {
		b.meta(b.floats(s.kv, s.tv...), writev2.Metadata_METRIC_TYPE_SUMMARY, "RPC latency.", "seconds")
	}

	// Native histograms, integer and float, with start timestamps.
	ih := b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "rpc_latency_seconds", "kind", "int"),
		Histograms: []writev2.Histogram{
			writev2.FromIntHistogram(now-60_000, now-1000, testHistogram(0)),
			writev2.FromIntHistogram(now-60_000, now, testHistogram(1)),
		},
		Exemplars: []writev2.Exemplar{b.exemplar(now, 0.003, "trace_id", "hhh")},
	})
	b.meta(ih, writev2.Metadata_METRIC_TYPE_HISTOGRAM, "RPC latency, native.", "seconds")
	b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "rpc_latency_seconds", "kind", "float"),
		Histograms: []writev2.Histogram{writev2.FromFloatHistogram(0, now, testFloatHistogram(0))},
	})
	// A gauge histogram named like a classic histogram's bucket series.
	gh := b.add(writev2.TimeSeries{
		LabelsRefs: b.refs("__name__", "queue_size_bucket"),
		Histograms: []writev2.Histogram{writev2.FromIntHistogram(0, now, testCustomBucketsHistogram(0))},
	})
	b.meta(gh, writev2.Metadata_METRIC_TYPE_GAUGEHISTOGRAM, "Queue sizes.", "")
	// A series without metadata stores none.
	b.floats([]string{"__name__", "no_metadata"}, float64(now), 1)

	w := e.postV2(b.build())
	assertCode(t, w, http.StatusNoContent)
	assertWritten(t, w, 11, 4, 3)

	e.assertStored(t, testTenant, map[string][]string{
		`{__name__="http_requests_total", code="200", job="api"}`:        {fs(now-15_000, 10), fs(now, 12)},
		`{__name__="node_memory_MemFree_bytes", instance="node-1:9100"}`: {fs(now, 1<<30)},
		`{__name__="http_request_duration_seconds_bucket", le="0.1"}`:    {fs(now, 3)},
		`{__name__="http_request_duration_seconds_bucket", le="+Inf"}`:   {fs(now, 5)},
		`{__name__="http_request_duration_seconds_count"}`:               {fs(now, 5)},
		`{__name__="http_request_duration_seconds_sum"}`:                 {fs(now, 1.25)},
		`{__name__="rpc_duration_seconds", quantile="0.5"}`:              {fs(now, 0.01)},
		`{__name__="rpc_duration_seconds_count"}`:                        {fs(now, 7)},
		`{__name__="rpc_duration_seconds_sum"}`:                          {fs(now, 0.2)},
		`{__name__="rpc_latency_seconds", kind="int"}`:                   {hs(now-1000, testHistogram(0)), hs(now, testHistogram(1))},
		`{__name__="rpc_latency_seconds", kind="float"}`:                 {fhs(now, testFloatHistogram(0))},
		`{__name__="queue_size_bucket"}`:                                 {hs(now, testCustomBucketsHistogram(0))},
		`{__name__="no_metadata"}`:                                       {fs(now, 1)},
	})
	got := e.samples(t, testTenant)
	for i, want := range []*histogram.Histogram{testHistogram(0), testHistogram(1)} {
		if s := got[`{__name__="rpc_latency_seconds", kind="int"}`]; len(s) != 2 || !s[i].H.Equals(want) {
			t.Errorf("integer histogram %d read back as %v, want %v", i, s, want)
		}
	}
	if s := got[`{__name__="rpc_latency_seconds", kind="float"}`]; len(s) != 1 || !s[0].FH.Equals(testFloatHistogram(0)) {
		t.Errorf("float histogram read back as %v, want %v", s, testFloatHistogram(0))
	}

	assertExemplars(t, e.exemplars(t, testTenant), map[string][]exemplar.Exemplar{
		`{__name__="http_requests_total", code="200", job="api"}`: {
			{Labels: labels.FromStrings("trace_id", "aaa"), Value: 0.25, Ts: now - 15_000, HasTs: true},
			{Labels: labels.FromStrings("trace_id", "bbb"), Value: 0.5, Ts: now, HasTs: true},
		},
		`{__name__="rpc_latency_seconds", kind="int"}`: {
			{Labels: labels.FromStrings("trace_id", "hhh"), Value: 0.003, Ts: now, HasTs: true},
		},
	})

	assertMetadata(t, e.metadataOf(t, testTenant), map[string][]metadata.Metadata{
		"http_requests_total":           {{Type: model.MetricTypeCounter, Help: "Requests served."}},
		"node_memory_MemFree_bytes":     {{Type: model.MetricTypeGauge, Help: "Free memory.", Unit: "bytes"}},
		"http_request_duration_seconds": {{Type: model.MetricTypeHistogram, Help: "Request latency.", Unit: "seconds"}},
		"rpc_duration_seconds":          {{Type: model.MetricTypeSummary, Help: "RPC latency.", Unit: "seconds"}},
		"rpc_latency_seconds":           {{Type: model.MetricTypeHistogram, Help: "RPC latency, native.", Unit: "seconds"}},
		"queue_size":                    {{Type: model.MetricTypeGaugeHistogram, Help: "Queue sizes."}},
	})
}

func TestWriteV2Empty(t *testing.T) {
	e := newEnv(t)
	for _, body := range [][]byte{encodeV2(&writev2.Request{}), encodeV2(&writev2.Request{Symbols: []string{""}})} {
		w := do(e.h, req{contentType: ctV2, tenant: testTenant, body: body})
		assertCode(t, w, http.StatusNoContent)
		assertWritten(t, w, 0, 0, 0)
	}
}

func TestWriteV2StartTimestampZeroIngestion(t *testing.T) {
	e := newEnvWithStore(t, blocks.Options{StartTimestampZeroIngestion: true})
	now := e.nowMs
	b := newV2()
	c := b.floats([]string{"__name__", "jobs_total"})
	c.Samples = []writev2.Sample{{Value: 5, Timestamp: now, StartTimestamp: now - 60_000}}
	w := e.postV2(b.build())
	assertCode(t, w, http.StatusNoContent)
	assertWritten(t, w, 1, 0, 0)
	e.assertStored(t, testTenant, map[string][]string{
		`{__name__="jobs_total"}`: {fs(now-60_000, 0), fs(now, 5)},
	})
}

func TestUnsupportedMediaType(t *testing.T) {
	v1 := encodeV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts1(lbls("__name__", "x"), floats(0, 1)...)}})
	b := newV2()
	b.floats([]string{"__name__", "x"}, 0, 1)
	v2 := encodeV2(b.build())
	for _, tc := range []struct {
		name        string
		contentType string
		encoding    string
		body        []byte
		wantBody    string
	}{
		{name: "text/plain", contentType: "text/plain", body: v1, wantBody: "unsupported Content-Type"},
		{name: "application/json", contentType: "application/json", body: v1, wantBody: "unsupported Content-Type"},
		{name: "openmetrics", contentType: "application/openmetrics-text; version=1.0.0", body: v1, wantBody: "unsupported Content-Type"},
		{name: "malformed Content-Type", contentType: "application/x-protobuf; proto", body: v1, wantBody: "invalid Content-Type"},
		{name: "unknown proto message", contentType: "application/x-protobuf;proto=io.prometheus.write.v3.Request", body: v2, wantBody: "unsupported protobuf message"},
		{name: "empty proto message", contentType: "application/x-protobuf;proto=", body: v1, wantBody: "invalid Content-Type"},
		{name: "quoted empty proto message", contentType: `application/x-protobuf;proto=""`, body: v1, wantBody: "unsupported protobuf message"},
		{name: "v2 with gzip", contentType: ctV2, encoding: "gzip", body: v2, wantBody: "unsupported Content-Encoding"},
		{name: "v1 with gzip", contentType: ctV1, encoding: "gzip", body: v1, wantBody: "unsupported Content-Encoding"},
		{name: "v1 with zstd", contentType: ctV1NoProto, encoding: "zstd", body: v1, wantBody: "unsupported Content-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			w := do(e.h, req{contentType: tc.contentType, encoding: tc.encoding, tenant: testTenant, body: tc.body})
			assertCode(t, w, http.StatusUnsupportedMediaType)
			assertBodyContains(t, w, tc.wantBody)
			assertNoWritten(t, w)
			e.assertNothingStored(t)
		})
	}
}

func TestRequestEntityTooLarge(t *testing.T) {
	const limit = 4096
	incompressible := make([]byte, 2*limit)
	for i := range incompressible {
		incompressible[i] = byte(i*7919 + i>>8)
	}
	// A valid request that compresses well below the limit but decompresses
	// far above it.
	bomb := encodeV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		ts1(lbls("__name__", "x", "big", strings.Repeat("a", 10*limit)), floats(0, 1)...),
	}})
	if len(bomb) >= limit {
		t.Fatalf("test request is %d bytes compressed, want fewer than %d", len(bomb), limit)
	}
	// A snappy header that declares 1 GiB, followed by a few literal bytes.
	lying := binary.AppendUvarint(nil, 1<<30)
	lying = append(lying, 0x0c, 'h', 'e', 'l', 'l', 'o')

	for _, tc := range []struct {
		name          string
		contentType   string
		body          []byte
		unknownLength bool
		wantBody      string
	}{
		{name: "compressed body over the limit", contentType: ctV1, body: incompressible, wantBody: "exceeds the limit"},
		{name: "compressed body over the limit, v2", contentType: ctV2, body: incompressible, wantBody: "exceeds the limit"},
		{name: "compressed body over the limit, no Content-Length", contentType: ctV1, body: incompressible, unknownLength: true, wantBody: "exceeds the limit"},
		{name: "decompressed body over the limit", contentType: ctV1, body: bomb, wantBody: "decompressed body"},
		{name: "snappy header declares a length over the limit", contentType: ctV2, body: lying, wantBody: "decompressed body of 1073741824 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.MaxBodyBytes = limit })
			hr := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(tc.body))
			hr.Header.Set("Content-Type", tc.contentType)
			hr.Header.Set("Content-Encoding", "snappy")
			hr.Header.Set(tenant.HeaderName, testTenant)
			if tc.unknownLength {
				hr.ContentLength = -1
				hr.Body = io.NopCloser(bytes.NewReader(tc.body))
			}
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, hr)
			assertCode(t, w, http.StatusRequestEntityTooLarge)
			assertBodyContains(t, w, tc.wantBody)
			assertNoWritten(t, w)
			e.assertNothingStored(t)
		})
	}
}

func TestBadRequestBody(t *testing.T) {
	garbage := []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x08}
	for _, tc := range []struct {
		name        string
		contentType string
		body        []byte
		wantBody    string
	}{
		{name: "bad snappy v1", contentType: ctV1, body: []byte("this is not snappy at all"), wantBody: "snappy"},
		{name: "bad snappy v2", contentType: ctV2, body: []byte("this is not snappy at all"), wantBody: "snappy"},
		{name: "empty body v1", contentType: ctV1, body: nil, wantBody: "snappy"},
		{name: "empty body v2", contentType: ctV2, body: nil, wantBody: "snappy"},
		{name: "uncompressed protobuf", contentType: ctV1, body: marshalV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts1(lbls("__name__", "some_metric_name", "job", "some-job"), floats(1, 1)...)}}), wantBody: "snappy"},
		{name: "bad protobuf v1", contentType: ctV1, body: snappy.Encode(nil, garbage), wantBody: "decode remote write 1.0 request"},
		{name: "bad protobuf v2", contentType: ctV2, body: snappy.Encode(nil, garbage), wantBody: "decode remote write 2.0 request"},
		{name: "truncated protobuf v1", contentType: ctV1, body: snappy.Encode(nil, truncate(marshalV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts1(lbls("__name__", "x"), floats(1, 1)...)}}))), wantBody: "decode remote write 1.0 request"},
		{name: "symbols table not starting with empty string", contentType: ctV2, body: encodeV2(&writev2.Request{
			Symbols:    []string{"__name__", "x"},
			Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{0, 1}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}}},
		}), wantBody: "symbols table must start with an empty string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			w := do(e.h, req{contentType: tc.contentType, encoding: "snappy", tenant: testTenant, body: tc.body})
			assertCode(t, w, http.StatusBadRequest)
			assertBodyContains(t, w, tc.wantBody)
			e.assertNothingStored(t)
		})
	}
}

func truncate(b []byte) []byte { return b[:len(b)-1] }

// invalidSeries are series that remote write must reject, with the part of
// the 400 message that says why. Each carries two samples; seriesMarker
// (when set) is how the message names the series.
var invalidSeriesCases = []struct {
	name         string
	kv           []string
	wantMsg      string
	seriesMarker string
}{
	{"unsorted labels", []string{"__name__", "bad_metric", "z", "1", "case", "unsorted"}, "not sorted", `case="unsorted"`},
	{"duplicate label names", []string{"__name__", "bad_metric", "case", "dup", "case", "dup2"}, `duplicate label name "case"`, `case="dup"`},
	{"missing __name__", []string{"case", "missing-name", "job", "x"}, "missing metric name", `case="missing-name"`},
	{"empty __name__", []string{"__name__", "", "case", "empty-name"}, "missing metric name", `case="empty-name"`},
	{"invalid UTF-8 label value", []string{"__name__", "bad_metric", "case", "bad-utf8", "v", "a\xffb"}, `invalid UTF-8 in value of label "v"`, `case="bad-utf8"`},
	{"invalid UTF-8 metric name", []string{"__name__", "bad\xc3", "case", "bad-utf8-name"}, `invalid UTF-8 in value of label "__name__"`, `case="bad-utf8-name"`},
	{"empty label name", []string{"", "x", "__name__", "bad_metric", "case", "empty-label-name"}, `invalid label name ""`, `case="empty-label-name"`},
	{"invalid UTF-8 label name", []string{"__name__", "bad_metric", "case", "bad-utf8-label-name", "\xffname", "v"}, "invalid label name", `case="bad-utf8-label-name"`},
}

func TestPartialAcceptanceV1(t *testing.T) {
	for _, tc := range invalidSeriesCases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			now := float64(e.nowMs)
			w := e.postFloats(false,
				fseries{[]string{"__name__", "good", "n", "1"}, []float64{now - 1000, 1, now, 2}},
				fseries{tc.kv, []float64{now - 1000, 3, now, 4}},
				fseries{[]string{"__name__", "good", "n", "2"}, []float64{now, 5}},
			)
			assertCode(t, w, http.StatusBadRequest)
			assertBodyContains(t, w, tc.wantMsg, tc.seriesMarker)
			e.assertStored(t, testTenant, map[string][]string{
				`{__name__="good", n="1"}`: {fs(e.nowMs-1000, 1), fs(e.nowMs, 2)},
				`{__name__="good", n="2"}`: {fs(e.nowMs, 5)},
			})
			if n := e.rejected(t, testTenant, reasonInvalidLabels); n != 2 {
				t.Errorf("rejected{reason=%q} = %v, want 2", reasonInvalidLabels, n)
			}
		})
	}
}

func TestPartialAcceptanceV2(t *testing.T) {
	type tcase struct {
		name         string
		series       func(b *v2Builder) // adds the invalid series, with 2 samples if any
		wantMsg      string
		seriesMarker string
		wantRejected map[string]float64
		alsoStored   map[string][]string // stored besides the valid series around the invalid one
	}
	// The cases are built before their handler: its clock is pinned to this.
	now := time.Now().Truncate(time.Second).UnixMilli()
	var cases []tcase
	for _, c := range invalidSeriesCases {
		cases = append(cases, tcase{
			name: c.name,
			series: func(b *v2Builder) {
				b.floats(c.kv, float64(now-1000), 3, float64(now), 4)
			},
			wantMsg: c.wantMsg, seriesMarker: c.seriesMarker,
			wantRejected: map[string]float64{reasonInvalidLabels: 2},
		})
	}
	cases = append(cases,
		tcase{
			name: "label name ref outside the symbols table",
			series: func(b *v2Builder) {
				ts := b.floats([]string{"__name__", "bad_metric"}, float64(now-1000), 3, float64(now), 4)
				ts.LabelsRefs = append(ts.LabelsRefs, 1000, b.syms.Symbolize("v"))
			},
			wantMsg: "outside the symbols table", seriesMarker: "1000",
			wantRejected: map[string]float64{reasonInvalidLabels: 2},
		},
		tcase{
			name: "label value ref outside the symbols table",
			series: func(b *v2Builder) {
				ts := b.floats([]string{"__name__", "bad_metric"}, float64(now-1000), 3, float64(now), 4)
				ts.LabelsRefs = append(ts.LabelsRefs, b.syms.Symbolize("v"), math.MaxUint32)
			},
			wantMsg: "outside the symbols table", seriesMarker: "4294967295",
			wantRejected: map[string]float64{reasonInvalidLabels: 2},
		},
		tcase{
			name: "odd number of refs",
			series: func(b *v2Builder) {
				ts := b.floats([]string{"__name__", "bad_metric"}, float64(now-1000), 3, float64(now), 4)
				ts.LabelsRefs = append(ts.LabelsRefs, b.syms.Symbolize("case"))
			},
			wantMsg: "odd number of references", seriesMarker: "references [",
			wantRejected: map[string]float64{reasonInvalidLabels: 2},
		},
		tcase{
			name: "no samples",
			series: func(b *v2Builder) {
				ts := b.floats([]string{"__name__", "bad_metric", "case", "no-samples"})
				ts.Exemplars = []writev2.Exemplar{b.exemplar(now, 1, "trace_id", "x")}
			},
			wantMsg: "no samples", seriesMarker: `case="no-samples"`,
			wantRejected: map[string]float64{reasonNoSamples: 0},
		},
		tcase{
			name: "metadata help ref outside the symbols table",
			series: func(b *v2Builder) {
				ts := b.floats([]string{"__name__", "bad_metric", "case", "bad-help"}, float64(now-1000), 3, float64(now), 4)
				ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: 500}
			},
			wantMsg: "help_ref 500", seriesMarker: `case="bad-help"`,
			wantRejected: map[string]float64{reasonInvalidMeta: 2},
		},
		tcase{
			name: "metadata unit ref outside the symbols table",
			series: func(b *v2Builder) {
				ts := b.floats([]string{"__name__", "bad_metric", "case", "bad-unit"}, float64(now-1000), 3, float64(now), 4)
				ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, UnitRef: 501}
			},
			wantMsg: "unit_ref 501", seriesMarker: `case="bad-unit"`,
			wantRejected: map[string]float64{reasonInvalidMeta: 2},
		},
		tcase{
			name: "exemplar label ref outside the symbols table",
			series: func(b *v2Builder) {
				ts := b.floats([]string{"__name__", "good", "n", "3"}, float64(now-1000), 3, float64(now), 4)
				ts.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{b.syms.Symbolize("trace_id"), 999}, Value: 1, Timestamp: now}}
			},
			wantMsg: "exemplar of series", seriesMarker: `n="3"`,
			// The series is valid; only its exemplar is not.
			alsoStored: map[string][]string{`{__name__="good", n="3"}`: {fs(now-1000, 3), fs(now, 4)}},
		},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				// Pin the handler's clock to the one the cases were built with.
				o.Now = func() time.Time { return time.UnixMilli(now) }
			})
			b := newV2()
			b.floats([]string{"__name__", "good", "n", "1"}, float64(now-1000), 1, float64(now), 2)
			tc.series(b)
			b.floats([]string{"__name__", "good", "n", "2"}, float64(now), 5)
			w := e.postV2(b.build())
			assertCode(t, w, http.StatusBadRequest)
			assertBodyContains(t, w, tc.wantMsg, tc.seriesMarker)
			want := map[string][]string{
				`{__name__="good", n="1"}`: {fs(now-1000, 1), fs(now, 2)},
				`{__name__="good", n="2"}`: {fs(now, 5)},
			}
			for k, v := range tc.alsoStored {
				want[k] = v
			}
			e.assertStored(t, testTenant, want)
			assertWritten(t, w, 3+2*len(tc.alsoStored), 0, 0)
			for reason, n := range tc.wantRejected {
				if got := e.rejected(t, testTenant, reason); got != n {
					t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, n)
				}
			}
		})
	}
}

// TestPartialAcceptanceManyInvalid sends every kind of invalid series in one
// request: all are named (up to the message's limit) and all valid series stored.
func TestPartialAcceptanceManyInvalid(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t)
			now := float64(e.nowMs)
			ss := []fseries{{[]string{"__name__", "good", "n", "1"}, []float64{now, 1}}}
			for _, c := range invalidSeriesCases {
				ss = append(ss, fseries{c.kv, []float64{now - 1000, 3, now, 4}})
			}
			// More invalid series than one message names.
			for i := range maxReportedErrors {
				ss = append(ss, fseries{[]string{"__name__", "dup", "a", "1", "a", strconv.Itoa(i)}, []float64{now, 1}})
			}
			ss = append(ss, fseries{[]string{"__name__", "good", "n", "2"}, []float64{now, 2}})
			w := e.postFloats(p.v2, ss...)
			assertCode(t, w, http.StatusBadRequest)
			for _, c := range invalidSeriesCases {
				assertBodyContains(t, w, c.seriesMarker)
			}
			assertBodyContains(t, w, fmt.Sprintf("and %d more", len(invalidSeriesCases)))
			e.assertStored(t, testTenant, map[string][]string{
				`{__name__="good", n="1"}`: {fs(e.nowMs, 1)},
				`{__name__="good", n="2"}`: {fs(e.nowMs, 2)},
			})
			if p.v2 {
				assertWritten(t, w, 2, 0, 0)
			}
			if n, want := e.rejected(t, testTenant, reasonInvalidLabels), float64(2*len(invalidSeriesCases)+maxReportedErrors); n != want {
				t.Errorf("rejected{reason=%q} = %v, want %v", reasonInvalidLabels, n, want)
			}
		})
	}
}

func TestOutOfOrder(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t)
			now := float64(e.nowMs)
			min := float64(time.Minute.Milliseconds())
			a := []string{"__name__", "ooo_a"}
			bb := []string{"__name__", "ooo_b"}
			steps := []struct {
				name     string
				series   []fseries
				code     int
				written  int // samples, for RW 2.0
				wantBody []string
			}{
				{"newest sample", []fseries{{a, []float64{now, 1}}}, http.StatusNoContent, 1, nil},
				{"5 minutes older: accepted", []fseries{{a, []float64{now - 5*min, 2}}}, http.StatusNoContent, 1, nil},
				{"retry of the out-of-order sample", []fseries{{a, []float64{now - 5*min, 2}}}, http.StatusNoContent, 1, nil},
				{"20 minutes older: rejected, rest stored", []fseries{{a, []float64{now - 20*min, 3}}, {bb, []float64{now, 4}}}, http.StatusBadRequest, 1,
					[]string{`{__name__="ooo_a"}`, storage.ErrTooOldSample.Error(), strconv.FormatInt(e.nowMs-20*time.Minute.Milliseconds(), 10)}},
				{"duplicate timestamp, other value", []fseries{{a, []float64{now, 5}}}, http.StatusBadRequest, 0,
					[]string{`{__name__="ooo_a"}`, "duplicate sample for timestamp"}},
				{"identical resend", []fseries{{a, []float64{now, 1}}, {bb, []float64{now, 4}}}, http.StatusNoContent, 2, nil},
			}
			for _, s := range steps {
				w := e.postFloats(p.v2, s.series...)
				if w.Code != s.code {
					t.Fatalf("%s: status %d, want %d; body %s", s.name, w.Code, s.code, w.Body.String())
				}
				assertBodyContains(t, w, s.wantBody...)
				if p.v2 {
					assertWritten(t, w, s.written, 0, 0)
				}
			}
			e.assertStored(t, testTenant, map[string][]string{
				`{__name__="ooo_a"}`: {fs(e.nowMs-5*time.Minute.Milliseconds(), 2), fs(e.nowMs, 1)},
				`{__name__="ooo_b"}`: {fs(e.nowMs, 4)},
			})
			for reason, want := range map[string]float64{reasonTooOld: 1, reasonDuplicate: 1, reasonOutOfOrder: 0} {
				if n := e.rejected(t, testTenant, reason); n != want {
					t.Errorf("rejected{reason=%q} = %v, want %v", reason, n, want)
				}
			}
		})
	}
}

func TestOutOfOrderHistograms(t *testing.T) {
	e := newEnv(t)
	now := e.nowMs
	series := lbls("__name__", "ooo_hist")
	post := func(ts int64, h *histogram.Histogram) *httptest.ResponseRecorder {
		return e.postV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series, Histograms: []prompb.Histogram{prompb.FromIntHistogram(ts, h)}}}})
	}
	assertCode(t, post(now, testHistogram(2)), http.StatusNoContent)
	assertCode(t, post(now-5*time.Minute.Milliseconds(), testHistogram(1)), http.StatusNoContent)
	assertCode(t, post(now-20*time.Minute.Milliseconds(), testHistogram(0)), http.StatusBadRequest)
	assertCode(t, post(now, testHistogram(2)), http.StatusNoContent)
	w := post(now, testHistogram(3))
	assertCode(t, w, http.StatusBadRequest)
	assertBodyContains(t, w, "duplicate sample for timestamp")
	e.assertStored(t, testTenant, map[string][]string{
		`{__name__="ooo_hist"}`: {hs(now-5*time.Minute.Milliseconds(), testHistogram(1)), hs(now, testHistogram(2))},
	})
}

func TestFutureSamples(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t) // MaxFutureTime is 10m
			now := float64(e.nowMs)
			min := float64(time.Minute.Milliseconds())
			w := e.postFloats(p.v2,
				fseries{[]string{"__name__", "near_future"}, []float64{now, 1, now + 9*min, 2}},
				fseries{[]string{"__name__", "far_future"}, []float64{now + 11*min, 3}},
				fseries{[]string{"__name__", "mixed"}, []float64{now, 4, now + 24*60*min, 5}},
			)
			assertCode(t, w, http.StatusBadRequest)
			assertBodyContains(t, w, "too far in the future", `{__name__="far_future"}`, `{__name__="mixed"}`)
			if p.v2 {
				assertWritten(t, w, 3, 0, 0)
			}
			e.assertStored(t, testTenant, map[string][]string{
				`{__name__="near_future"}`: {fs(e.nowMs, 1), fs(e.nowMs+9*time.Minute.Milliseconds(), 2)},
				`{__name__="mixed"}`:       {fs(e.nowMs, 4)},
			})
			if n := e.rejected(t, testTenant, reasonFuture); n != 2 {
				t.Errorf("rejected{reason=%q} = %v, want 2", reasonFuture, n)
			}
		})
	}
}

func TestFutureHistogram(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxFutureTime = time.Minute })
	now := e.nowMs
	w := e.postV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:     lbls("__name__", "h"),
		Histograms: []prompb.Histogram{prompb.FromIntHistogram(now+2*time.Minute.Milliseconds(), testHistogram(0))},
	}}})
	assertCode(t, w, http.StatusBadRequest)
	assertBodyContains(t, w, "too far in the future")
	e.assertNothingStored(t)
}

// TestTenantRefusedByLimit: a tenant the max_tenants limit refuses cannot
// succeed by retrying, so its writes get 400 naming the limit, not 503.
func TestTenantRefusedByLimit(t *testing.T) {
	m := &mockStorage{appenderErr: fmt.Errorf("open: %w", &limits.Error{Limit: "max_tenants", Msg: "full"})}
	h := NewHandler(m, Options{Tenants: tenant.Resolver{Default: defaultTenant}, Registerer: testRegistry()})
	w := do(h, req{contentType: ctV1, body: encodeV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		ts1(lbls("__name__", "good"), floats(float64(time.Now().UnixMilli()), 1)...),
	}})})
	assertCode(t, w, http.StatusBadRequest)
	assertBodyContains(t, w, "max_tenants")
	if len(m.apps) != 0 {
		t.Errorf("%d appenders opened for a refused tenant", len(m.apps))
	}
}

func TestStoreFailures(t *testing.T) {
	errDisk := errors.New("disk on fire")
	for _, tc := range []struct {
		name     string
		storage  *mockStorage
		wantCode int
		check    func(t *testing.T, m *mockStorage)
	}{
		{
			name: "commit fails", storage: &mockStorage{commitErr: errDisk}, wantCode: http.StatusInternalServerError,
			check: func(t *testing.T, m *mockStorage) {
				if len(m.apps) != 1 || !m.apps[0].committed || m.apps[0].appended == 0 {
					t.Errorf("want one appender with appended samples that was committed")
				}
			},
		},
		{
			name: "appender unavailable", storage: &mockStorage{appenderErr: errDisk}, wantCode: http.StatusServiceUnavailable,
		},
		{
			name: "append fails for a reason that is not the sample's", storage: &mockStorage{appendErr: errDisk}, wantCode: http.StatusInternalServerError,
			check: func(t *testing.T, m *mockStorage) {
				if len(m.apps) != 1 || m.apps[0].committed || !m.apps[0].rolledBack {
					t.Errorf("want one appender rolled back and not committed")
				}
			},
		},
	} {
		for _, p := range protocols {
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				m := *tc.storage
				reg := testRegistry()
				h := NewHandler(&m, Options{Tenants: tenant.Resolver{Default: defaultTenant}, Registerer: reg})
				now := time.Now().UnixMilli()
				var w *httptest.ResponseRecorder
				if p.v2 {
					b := newV2()
					ts := b.floats([]string{"__name__", "good", "n", "1"}, float64(now), 1)
					b.meta(ts, writev2.Metadata_METRIC_TYPE_GAUGE, "help", "")
					b.floats([]string{"bad", "no-name"}, float64(now), 1)
					b.add(writev2.TimeSeries{
						LabelsRefs: b.refs("__name__", "hist"),
						Histograms: []writev2.Histogram{writev2.FromIntHistogram(0, now, testHistogram(0))},
					})
					w = do(h, req{contentType: ctV2, body: encodeV2(b.build())})
				} else {
					w = do(h, req{contentType: ctV1, body: encodeV1(&prompb.WriteRequest{
						Timeseries: []prompb.TimeSeries{
							ts1(lbls("__name__", "good", "n", "1"), floats(float64(now), 1)...),
							ts1(lbls("bad", "no-name"), floats(float64(now), 1)...),
						},
						Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "good", Help: "help"}},
					})})
				}
				assertCode(t, w, tc.wantCode)
				assertNoWritten(t, w)
				assertBodyContains(t, w, errDisk.Error())
				for _, kind := range []string{"sample", "histogram", "exemplar"} {
					if n := testutil.Metric(t, reg, "strata_remote_write_samples_ingested_total", "kind", kind); n != 0 {
						t.Errorf("ingested{kind=%q} = %v, want 0", kind, n)
					}
				}
				if n := testutil.Metric(t, reg, "strata_remote_write_samples_rejected_total", "reason", reasonInvalidLabels); n != 0 {
					t.Errorf("rejected = %v, want 0: a failed request reports nothing", n)
				}
				if len(m.meta) != 0 {
					t.Errorf("metadata stored by a failed request: %v", m.meta)
				}
				if tc.check != nil {
					tc.check(t, &m)
				}
			})
		}
	}
}

func TestStoreClosed(t *testing.T) {
	e := newEnv(t)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	w := e.postFloats(true, fseries{[]string{"__name__", "x"}, []float64{float64(e.nowMs), 1}})
	if w.Code < 500 {
		t.Fatalf("status %d, want 5xx; body %s", w.Code, w.Body.String())
	}
	assertNoWritten(t, w)
}

func TestTenancy(t *testing.T) {
	body := func(now int64) []byte {
		return encodeV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts1(lbls("__name__", "x"), floats(float64(now), 1)...)}})
	}
	for _, tc := range []struct {
		name       string
		resolver   tenant.Resolver
		method     string
		tenant     string
		wantCode   int
		wantTenant string // where the sample is stored, if anywhere
		wantBody   string
	}{
		{name: "header routes", resolver: tenant.Resolver{Default: defaultTenant}, tenant: "team-b", wantCode: http.StatusNoContent, wantTenant: "team-b"},
		{name: "no header: default tenant", resolver: tenant.Resolver{Default: defaultTenant}, wantCode: http.StatusNoContent, wantTenant: defaultTenant},
		{name: "no header, no default", resolver: tenant.Resolver{}, wantCode: http.StatusUnauthorized, wantBody: tenant.HeaderName},
		{name: "header without default", resolver: tenant.Resolver{}, tenant: "team-c", wantCode: http.StatusNoContent, wantTenant: "team-c"},
		{name: "path traversal", resolver: tenant.Resolver{Default: defaultTenant}, tenant: "../x", wantCode: http.StatusBadRequest, wantBody: "tenant ID"},
		{name: "dot dot", resolver: tenant.Resolver{Default: defaultTenant}, tenant: "..", wantCode: http.StatusBadRequest, wantBody: "tenant ID"},
		{name: "too long", resolver: tenant.Resolver{Default: defaultTenant}, tenant: strings.Repeat("a", tenant.MaxIDLength+1), wantCode: http.StatusBadRequest, wantBody: "tenant ID"},
		{name: "GET", resolver: tenant.Resolver{Default: defaultTenant}, method: http.MethodGet, wantCode: http.StatusMethodNotAllowed, wantBody: "POST"},
		{name: "PUT", resolver: tenant.Resolver{Default: defaultTenant}, method: http.MethodPut, tenant: "team-b", wantCode: http.StatusMethodNotAllowed, wantBody: "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Tenants = tc.resolver })
			w := do(e.h, req{method: tc.method, contentType: ctV1, tenant: tc.tenant, body: body(e.nowMs)})
			assertCode(t, w, tc.wantCode)
			assertBodyContains(t, w, tc.wantBody)
			if tc.wantCode == http.StatusMethodNotAllowed && w.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q, want POST", w.Header().Get("Allow"))
			}
			if tc.wantTenant == "" {
				e.assertNothingStored(t)
				return
			}
			if got := e.store.Tenants(); len(got) != 1 || got[0] != tc.wantTenant {
				t.Errorf("tenants %v, want only %s", got, tc.wantTenant)
			}
			e.assertStored(t, tc.wantTenant, map[string][]string{`{__name__="x"}`: {fs(e.nowMs, 1)}})
		})
	}
}

// TestTenantIsolation checks that one tenant's samples are invisible to another.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	now := e.nowMs
	for _, id := range []string{"team-a", "team-b"} {
		w := do(e.h, req{contentType: ctV1, tenant: id, body: encodeV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			ts1(lbls("__name__", "owner", "tenant", id), floats(float64(now), 1)...),
		}})})
		assertCode(t, w, http.StatusNoContent)
	}
	for _, id := range []string{"team-a", "team-b"} {
		e.assertStored(t, id, map[string][]string{fmt.Sprintf(`{__name__="owner", tenant=%q}`, id): {fs(now, 1)}})
	}
	e.assertStored(t, "team-c", nil)
}

func TestRejectedMetrics(t *testing.T) {
	e := newEnv(t)
	now := float64(e.nowMs)
	min := float64(time.Minute.Milliseconds())
	assertCode(t, e.postFloats(false, fseries{[]string{"__name__", "a"}, []float64{now, 1}}), http.StatusNoContent)
	w := e.postFloats(false,
		fseries{[]string{"__name__", "a"}, []float64{now - 20*min, 1, now - 30*min, 1, now, 2}}, // 2 too old, 1 duplicate
		fseries{[]string{"z", "1", "__name__", "b"}, []float64{now, 1, now + 1, 2, now + 2, 3}}, // 3 invalid labels
		fseries{[]string{"__name__", "c"}, []float64{now + 60*min, 1}},                          // 1 in the future
		fseries{[]string{"__name__", "d"}, []float64{now, 1}},                                   // stored
	)
	assertCode(t, w, http.StatusBadRequest)
	b := newV2()
	b.floats([]string{"__name__", "e"})
	b.floats([]string{"__name__", "f"}, now, 1)
	assertCode(t, e.postV2(b.build()), http.StatusBadRequest) // no samples

	want := `
# HELP strata_remote_write_samples_rejected_total Samples rejected from remote write and OTLP, by tenant and reason.
# TYPE strata_remote_write_samples_rejected_total counter
strata_remote_write_samples_rejected_total{reason="duplicate_timestamp",tenant="team-a"} 1
strata_remote_write_samples_rejected_total{reason="invalid_labels",tenant="team-a"} 3
strata_remote_write_samples_rejected_total{reason="no_samples",tenant="team-a"} 0
strata_remote_write_samples_rejected_total{reason="too_far_in_future",tenant="team-a"} 1
strata_remote_write_samples_rejected_total{reason="too_old",tenant="team-a"} 2
# HELP strata_remote_write_samples_ingested_total Samples, histograms and exemplars stored from remote write and OTLP, by tenant and kind.
# TYPE strata_remote_write_samples_ingested_total counter
strata_remote_write_samples_ingested_total{kind="sample",tenant="team-a"} 3
`
	if err := promtestutil.GatherAndCompare(e.reg, strings.NewReader(want),
		"strata_remote_write_samples_rejected_total", "strata_remote_write_samples_ingested_total"); err != nil {
		t.Error(err)
	}
	wantReq := `
# HELP strata_remote_write_requests_total Write requests (remote write and OTLP), by tenant, protocol (v1, v2, otlp) and status code.
# TYPE strata_remote_write_requests_total counter
strata_remote_write_requests_total{code="204",protocol="v1",tenant="team-a"} 1
strata_remote_write_requests_total{code="400",protocol="v1",tenant="team-a"} 1
strata_remote_write_requests_total{code="400",protocol="v2",tenant="team-a"} 1
`
	if err := promtestutil.GatherAndCompare(e.reg, strings.NewReader(wantReq), "strata_remote_write_requests_total"); err != nil {
		t.Error(err)
	}
	if n := promtestutil.CollectAndCount(e.reg, "strata_remote_write_request_duration_seconds"); n != 2 {
		t.Errorf("%d request duration series, want 2 (v1, v2)", n)
	}
}

// TestRequestDurationUsesRealClock checks that the request duration is
// measured with the real clock, not Options.Now, which may be pinned.
func TestRequestDurationUsesRealClock(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Now = func() time.Time { return time.Unix(0, 0) }
	})
	w := e.postFloats(false, fseries{[]string{"__name__", "x"}, []float64{0, 1}})
	assertCode(t, w, http.StatusNoContent)
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "strata_remote_write_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if s := m.GetHistogram().GetSampleSum(); s < 0 || s > 60 {
				t.Errorf("request duration sum %v s, want a real duration", s)
			}
		}
	}
}

// TestRealHTTP sends requests through a real HTTP server and client.
func TestRealHTTP(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxBodyBytes = 1 << 16 })
	srv := httptest.NewServer(e.h)
	defer srv.Close()

	post := func(ct string, body io.Reader) *http.Response {
		t.Helper()
		r, err := http.NewRequest(http.MethodPost, srv.URL, body)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Content-Encoding", "snappy")
		r.Header.Set(tenant.HeaderName, testTenant)
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}

	b := newV2()
	b.floats([]string{"__name__", "x"}, float64(e.nowMs), 1)
	resp := post(ctV2, bytes.NewReader(encodeV2(b.build())))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get(HeaderSamplesWritten) != "1" {
		t.Errorf("status %d, samples written %q; want 204 and 1", resp.StatusCode, resp.Header.Get(HeaderSamplesWritten))
	}

	// A chunked body (no Content-Length) over the limit.
	big := bytes.Repeat([]byte{0xff, 0x00, 0x13}, 1<<16)
	resp = post(ctV1, io.MultiReader(bytes.NewReader(big))) // hides the length
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d for a chunked oversized body, want 413", resp.StatusCode)
	}
	e.assertStored(t, testTenant, map[string][]string{`{__name__="x"}`: {fs(e.nowMs, 1)}})
}

func TestOutOfOrderDisabled(t *testing.T) {
	e := newEnvWithStore(t, blocks.Options{OutOfOrderWindow: -1})
	now := float64(e.nowMs)
	min := float64(time.Minute.Milliseconds())
	assertCode(t, e.postFloats(true, fseries{[]string{"__name__", "a"}, []float64{now, 1}}), http.StatusNoContent)
	w := e.postFloats(true,
		fseries{[]string{"__name__", "a"}, []float64{now - min, 2}},      // older than the series' newest
		fseries{[]string{"__name__", "b"}, []float64{now - 3*60*min, 3}}, // older than the head accepts
		fseries{[]string{"__name__", "c"}, []float64{now, 4}},
	)
	assertCode(t, w, http.StatusBadRequest)
	assertBodyContains(t, w, storage.ErrOutOfOrderSample.Error(), `{__name__="a"}`, storage.ErrOutOfBounds.Error(), `{__name__="b"}`)
	assertWritten(t, w, 1, 0, 0)
	e.assertStored(t, testTenant, map[string][]string{
		`{__name__="a"}`: {fs(e.nowMs, 1)},
		`{__name__="c"}`: {fs(e.nowMs, 4)},
	})
	if n := e.rejected(t, testTenant, reasonOutOfOrder); n != 1 {
		t.Errorf("rejected{reason=%q} = %v, want 1", reasonOutOfOrder, n)
	}
	if n := e.rejected(t, testTenant, reasonTooOld); n != 1 {
		t.Errorf("rejected{reason=%q} = %v, want 1", reasonTooOld, n)
	}
}

// TestExemplarsBestEffort checks that an exemplar the store refuses neither
// fails the request nor counts as written.
func TestExemplarsBestEffort(t *testing.T) {
	e := newEnv(t)
	now := e.nowMs
	b := newV2()
	ts := b.floats([]string{"__name__", "x"}, float64(now-1000), 1, float64(now), 2)
	ts.Exemplars = []writev2.Exemplar{
		b.exemplar(now-1000, 1, "trace_id", "ok"),
		b.exemplar(now, 2, "trace_id", strings.Repeat("x", 200)), // longer than exemplar labels may be
	}
	w := e.postV2(b.build())
	assertCode(t, w, http.StatusNoContent)
	assertWritten(t, w, 2, 0, 1)
	assertExemplars(t, e.exemplars(t, testTenant), map[string][]exemplar.Exemplar{
		`{__name__="x"}`: {{Labels: labels.FromStrings("trace_id", "ok"), Value: 1, Ts: now - 1000, HasTs: true}},
	})

	// Exemplars of a series whose samples were all rejected still go to
	// the series, which exists.
	b = newV2()
	ts = b.floats([]string{"__name__", "x"}, float64(now-time.Hour.Milliseconds()), 1)
	ts.Exemplars = []writev2.Exemplar{b.exemplar(now, 3, "trace_id", "late")}
	w = e.postV2(b.build())
	assertCode(t, w, http.StatusBadRequest)
	assertWritten(t, w, 0, 0, 1)
}

// TestConcurrentWrites sends requests of both protocols from several
// goroutines at once; run with -race it checks that requests share no state
// they should not (pooled buffers, builders).
func TestConcurrentWrites(t *testing.T) {
	e := newEnv(t)
	const writers, requests = 6, 15
	errs := make(chan error, writers)
	for g := range writers {
		go func() {
			var err error
			defer func() { errs <- err }()
			id := []string{testTenant, "team-b"}[g%2]
			for i := range requests {
				ts := float64(e.nowMs - int64(requests-i)*1000)
				v2 := (g+i)%2 == 0
				series := []string{"__name__", "concurrent", "writer", strconv.Itoa(g)}
				var r req
				if v2 {
					b := newV2()
					b.floats(series, ts, float64(i))
					r = req{contentType: ctV2, tenant: id, body: encodeV2(b.build())}
				} else {
					r = req{contentType: ctV1, tenant: id, body: encodeV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts1(lbls(series...), floats(ts, float64(i))...)}})}
				}
				if w := do(e.h, r); w.Code != http.StatusNoContent {
					err = fmt.Errorf("writer %d request %d: status %d: %s", g, i, w.Code, w.Body.String())
					return
				}
			}
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for g := range writers {
		id := []string{testTenant, "team-b"}[g%2]
		got := e.samples(t, id)[fmt.Sprintf(`{__name__="concurrent", writer="%d"}`, g)]
		if len(got) != requests {
			t.Errorf("writer %d: %d samples stored, want %d", g, len(got), requests)
			continue
		}
		for i, s := range got {
			if s.V != float64(i) || s.T != e.nowMs-int64(requests-i)*1000 {
				t.Errorf("writer %d: sample %d is %v", g, i, s)
			}
		}
	}
}

// TestLyingSnappyHeader: a 7-byte body whose snappy header claims 64 MiB
// (within the body limit) is answered 400 without the 64 MiB being
// allocated: the claim is checked against what 7 bytes can decode to.
func TestLyingSnappyHeader(t *testing.T) {
	body := binary.AppendUvarint(nil, 64<<20)
	body = append(body, make([]byte, 7-len(body))...)
	e := newEnv(t, func(o *Options) { o.MaxBodyBytes = 64 << 20 })
	for _, ct := range []string{ctV1, ctV2} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w := do(e.h, req{contentType: ct, encoding: "snappy", tenant: testTenant, body: body})
		runtime.ReadMemStats(&after)
		assertCode(t, w, http.StatusBadRequest)
		assertBodyContains(t, w, "claims 67108864 bytes")
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("%s: answering the 7-byte body allocated %d bytes", ct, alloc)
		}
	}
	e.assertNothingStored(t)
}
