package otlp

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/tenant"
)

const testTenant = "team-a"

// env is a handler over a pipeline writing to a real store.
type env struct {
	store *blocks.Store
	h     *Handler
	reg   *prometheus.Registry
	now   time.Time
}

// defaultConfig is the configuration the flags' defaults give.
func defaultConfig() Config {
	return Config{
		Enabled:                              true,
		TranslationStrategy:                  "UnderscoreEscapingWithSuffixes",
		LabelNameUnderscoreSanitization:      true,
		LabelNamePreserveMultipleUnderscores: true,
		DeltaTemporality:                     DeltaReject,
	}
}

func newEnv(t *testing.T, cfg Config, mods ...func(*Options, *ingest.Options)) *env {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir(), OutOfOrderWindow: 0, MaxExemplars: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	e := &env{store: store, reg: prometheus.NewPedanticRegistry(), now: time.Now().Truncate(time.Second)}
	tr := NewTranslator(cfg, 5*time.Minute)
	po := ingest.Options{Decoders: tr.Decoders(), Registerer: e.reg}
	ho := Options{Translator: tr, Tenants: tenant.Resolver{}, Registerer: e.reg, MaxBodyBytes: 1 << 20}
	for _, m := range mods {
		m(&ho, &po)
	}
	var st ingest.Storage = store
	if po.Limits != nil && ho.Limits == nil {
		ho.Limits = po.Limits
	}
	if ho.Pipeline == nil {
		ho.Pipeline = ingest.New(st, po)
	}
	e.h = NewHandler(ho)
	t.Cleanup(e.h.Close)
	return e
}

// post sends body with the given headers as testTenant.
func (e *env) post(body []byte, contentType, encoding string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		r.Header.Set("Content-Encoding", encoding)
	}
	r.Header.Set(tenant.HeaderName, testTenant)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// stored returns every series of testTenant with its samples rendered.
func (e *env) stored(t *testing.T) map[string][]string {
	t.Helper()
	if len(e.store.Tenants()) == 0 {
		return map[string][]string{}
	}
	ctx := tenant.WithID(context.Background(), testTenant)
	q, err := e.store.Queryable().Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	out := map[string][]string{}
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				_, v := it.At()
				out[s.Labels().String()] = append(out[s.Labels().String()], strconv.FormatFloat(v, 'g', -1, 64))
			case chunkenc.ValHistogram:
				_, h := it.AtHistogram(nil)
				out[s.Labels().String()] = append(out[s.Labels().String()], h.String())
			}
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// names returns the sorted keys of stored.
func names(stored map[string][]string) []string {
	var out []string
	for k := range stored {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// counter returns the sum of the counters name whose labels include lv.
func (e *env) counter(t *testing.T, name string, lv map[string]string) float64 {
	t.Helper()
	fams, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, want := range lv {
				if got[k] != want {
					continue metrics
				}
			}
			v += m.GetCounter().GetValue()
		}
	}
	return v
}

// metrics builds an export request: one resource with service.name,
// service.instance.id and region, one scope, and the metrics add adds.
func metrics(ts time.Time, add func(ms pmetric.MetricSlice)) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "shop")
	rm.Resource().Attributes().PutStr("service.instance.id", "pod-1")
	rm.Resource().Attributes().PutStr("region", "eu")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("shop/lib")
	sm.Scope().SetVersion("1.2")
	add(sm.Metrics())
	return md
}

func gauge(ms pmetric.MetricSlice, name, unit string, ts time.Time, v float64) {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	m.SetDescription("a gauge")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetDoubleValue(v)
	dp.Attributes().PutStr("path", "/x")
}

func sum(ms pmetric.MetricSlice, name string, ts time.Time, v int64, temporality pmetric.AggregationTemporality) {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetDescription("a counter")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(temporality)
	dp := s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(ts.Add(-time.Minute)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetIntValue(v)
}

func hist(ms pmetric.MetricSlice, name string, ts time.Time) {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit("s")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetCount(6)
	dp.SetSum(4.5)
	dp.ExplicitBounds().FromRaw([]float64{0.5, 1})
	dp.BucketCounts().FromRaw([]uint64{2, 3, 1})
}

func expHist(ms pmetric.MetricSlice, name string, ts time.Time) {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit("By")
	h := m.SetEmptyExponentialHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetScale(1)
	dp.SetCount(5)
	dp.SetSum(20)
	dp.SetZeroCount(1)
	dp.Positive().SetOffset(2)
	dp.Positive().BucketCounts().FromRaw([]uint64{1, 3})
}

func summary(ms pmetric.MetricSlice, name string, ts time.Time) {
	m := ms.AppendEmpty()
	m.SetName(name)
	dp := m.SetEmptySummary().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetCount(10)
	dp.SetSum(100)
	q := dp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(9)
}

func encode(t *testing.T, md pmetric.Metrics, json bool) []byte {
	t.Helper()
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	var b []byte
	var err error
	if json {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func compress(t *testing.T, b []byte, enc string) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch enc {
	case "gzip":
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
	case "zstd":
		w, _ := zstd.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
	default:
		return b
	}
	return buf.Bytes()
}

// response decodes a 200 answer's ExportMetricsServiceResponse.
func response(t *testing.T, w *httptest.ResponseRecorder, json bool) pmetricotlp.ExportResponse {
	t.Helper()
	resp := pmetricotlp.NewExportResponse()
	var err error
	if json {
		err = resp.UnmarshalJSON(w.Body.Bytes())
	} else {
		err = resp.UnmarshalProto(w.Body.Bytes())
	}
	if err != nil {
		t.Fatalf("decode response %q: %v", w.Body.String(), err)
	}
	return resp
}

// statusOf decodes an error answer's google.rpc.Status.
func statusOf(t *testing.T, w *httptest.ResponseRecorder, json bool) *status.Status {
	t.Helper()
	st := &status.Status{}
	var err error
	if json {
		err = protojson.Unmarshal(w.Body.Bytes(), st)
	} else {
		err = proto.Unmarshal(w.Body.Bytes(), st)
	}
	if err != nil {
		t.Fatalf("decode status %q: %v", w.Body.String(), err)
	}
	return st
}

func TestEveryKindEveryEncoding(t *testing.T) {
	for _, json := range []bool{false, true} {
		for _, enc := range []string{"", "gzip", "zstd"} {
			name := "protobuf"
			ct := contentTypeProtobuf
			if json {
				name, ct = "json", contentTypeJSON+"; charset=utf-8"
			}
			t.Run(name+"/"+enc, func(t *testing.T) {
				e := newEnv(t, defaultConfig())
				ts := e.now.Add(-time.Second)
				md := metrics(ts, func(ms pmetric.MetricSlice) {
					gauge(ms, "queue.depth", "{item}", ts, 3.5)
					sum(ms, "http.requests", ts, 7, pmetric.AggregationTemporalityCumulative)
					hist(ms, "http.duration", ts)
					expHist(ms, "payload.size", ts)
					summary(ms, "rpc.latency", ts)
				})
				w := e.post(compress(t, encode(t, md, json), enc), ct, enc)
				if w.Code != http.StatusOK {
					t.Fatalf("code %d, body %q", w.Code, w.Body.String())
				}
				if got := w.Header().Get("Content-Type"); got != contentType(map[bool]string{false: ProtoProtobuf, true: ProtoJSON}[json]) {
					t.Errorf("Content-Type %q", got)
				}
				resp := response(t, w, json)
				if n := resp.PartialSuccess().RejectedDataPoints(); n != 0 {
					t.Errorf("rejected %d: %s", n, resp.PartialSuccess().ErrorMessage())
				}
				got := e.stored(t)
				want := map[string][]string{
					`{__name__="queue_depth", instance="pod-1", job="shop", path="/x"}`:                  {"3.5"},
					`{__name__="http_requests_total", instance="pod-1", job="shop"}`:                     {"7"},
					`{__name__="http_duration_seconds_bucket", instance="pod-1", job="shop", le="0.5"}`:  {"2"},
					`{__name__="http_duration_seconds_bucket", instance="pod-1", job="shop", le="1"}`:    {"5"},
					`{__name__="http_duration_seconds_bucket", instance="pod-1", job="shop", le="+Inf"}`: {"6"},
					`{__name__="http_duration_seconds_count", instance="pod-1", job="shop"}`:             {"6"},
					`{__name__="http_duration_seconds_sum", instance="pod-1", job="shop"}`:               {"4.5"},
					`{__name__="rpc_latency", instance="pod-1", job="shop", quantile="0.5"}`:             {"9"},
					`{__name__="rpc_latency_count", instance="pod-1", job="shop"}`:                       {"10"},
					`{__name__="rpc_latency_sum", instance="pod-1", job="shop"}`:                         {"100"},
					`{__name__="target_info", instance="pod-1", job="shop", region="eu"}`:                {"1"},
				}
				for k, v := range want {
					if strings.Join(got[k], ",") != strings.Join(v, ",") {
						t.Errorf("%s: got %v, want %v", k, got[k], v)
					}
				}
				hk := `{__name__="payload_size_bytes", instance="pod-1", job="shop"}`
				if len(got[hk]) != 1 || !strings.Contains(got[hk][0], "count:5") {
					t.Errorf("%s: got %v, want one native histogram of count 5", hk, got[hk])
				}
				if len(got) != len(want)+1 {
					t.Errorf("stored %d series, want %d: %v", len(got), len(want)+1, names(got))
				}
				md2, err := e.store.MetricMetadata(testTenant, "http_duration_seconds")
				if err != nil || len(md2) != 1 || md2[0].Entries[0] != (metadata.Metadata{Type: "histogram", Unit: "seconds"}) {
					t.Errorf("metadata of http_duration_seconds: %+v, %v", md2, err)
				}
				if v := e.counter(t, "strata_remote_write_requests_total", map[string]string{"protocol": "otlp", "code": "200"}); v != 1 {
					t.Errorf("requests{protocol=otlp,code=200} = %v", v)
				}
			})
		}
	}
}

// TestDecodersForHA: the bodies HA keeps are decoded again by
// Translator.Decoders, under the Request.Proto the handler set, into the
// Request the handler wrote.
func TestDecodersForHA(t *testing.T) {
	e := newEnv(t, defaultConfig())
	ts := e.now.Add(-time.Second)
	md := metrics(ts, func(ms pmetric.MetricSlice) {
		sum(ms, "http.requests", ts, 7, pmetric.AggregationTemporalityCumulative)
		hist(ms, "http.duration", ts)
	})
	for _, json := range []bool{false, true} {
		proto := ProtoProtobuf
		if json {
			proto = ProtoJSON
		}
		body := encode(t, md, json)
		var tr translation
		want := &ingest.Request{}
		if err := e.h.opts.Translator.translate(context.Background(), body, proto, want, &tr); err != nil {
			t.Fatal(err)
		}
		got := &ingest.Request{}
		if err := e.h.opts.Translator.Decoders()[proto](body, got); err != nil {
			t.Fatal(err)
		}
		if got.Proto != proto || len(got.Series) != len(want.Series) || len(got.Samples) != len(want.Samples) ||
			strings.Join(got.Symbols, ",") != strings.Join(want.Symbols, ",") {
			t.Errorf("%s: decoder's Request differs from the handler's: %d series, %d samples, proto %q; want %d, %d", proto, len(got.Series), len(got.Samples), got.Proto, len(want.Series), len(want.Samples))
		}
		if tr.points != 2 || tr.stored != 2 {
			t.Errorf("%s: %d points, %d stored, want 2, 2", proto, tr.points, tr.stored)
		}
		if n := len(want.Series); n != 7 { // counter, 3 buckets, sum, count, target_info
			t.Errorf("%s: %d series, want 7", proto, n)
		}
	}
}
