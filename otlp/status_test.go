package otlp

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/tenant"
)

// unavailable is a store that cannot be written to.
type unavailable struct{}

func (unavailable) Appender(context.Context, string) (storage.AppenderV2, error) {
	return nil, errors.New("disk full")
}
func (unavailable) SetMetadata(string, string, metadata.Metadata) error { return nil }

// TestStatusCodes sends bad, partly bad and refused requests and checks
// the answer the OTLP specification asks for, and that nothing of a
// rejected request is stored.
func TestStatusCodes(t *testing.T) {
	ts := time.Now().Add(-time.Second)
	good := func(ms pmetric.MetricSlice) { gauge(ms, "queue.depth", "", ts, 1) }
	big := func(ms pmetric.MetricSlice) {
		for range 3000 {
			gauge(ms, "queue.depth.with.a.rather.long.name.to.fill.the.body", "", ts, 1)
		}
	}
	for _, tc := range []struct {
		name        string
		cfg         func(*Config)
		mod         func(*Options, *ingest.Options)
		method      string
		contentType string // protobuf when empty
		encoding    string
		body        func(t *testing.T) []byte
		noTenant    bool

		wantCode     int
		wantRejected int64  // of a 200's partial success
		wantMsg      string // in the status or partial success message
		wantStored   []string
	}{
		{name: "ok", body: func(t *testing.T) []byte { return encode(t, metrics(ts, good), false) }, wantCode: 200,
			wantStored: []string{`{__name__="queue_depth", instance="pod-1", job="shop", path="/x"}`, `{__name__="target_info", instance="pod-1", job="shop", region="eu"}`}},
		{name: "GET", method: http.MethodGet, wantCode: 405},
		{name: "wrong content type", contentType: "text/plain", body: func(t *testing.T) []byte { return encode(t, metrics(ts, good), false) }, wantCode: 415, wantMsg: "unsupported Content-Type"},
		{name: "remote write content type", contentType: "application/x-protobuf;proto=prometheus.WriteRequest", body: func(t *testing.T) []byte { return encode(t, metrics(ts, good), false) }, wantCode: 200,
			wantStored: []string{`{__name__="queue_depth", instance="pod-1", job="shop", path="/x"}`, `{__name__="target_info", instance="pod-1", job="shop", region="eu"}`}},
		{name: "no content type", contentType: "-", body: func(t *testing.T) []byte { return encode(t, metrics(ts, good), false) }, wantCode: 415},
		{name: "snappy", encoding: "snappy", body: func(t *testing.T) []byte { return encode(t, metrics(ts, good), false) }, wantCode: 415, wantMsg: "Content-Encoding"},
		{name: "malformed protobuf", body: func(*testing.T) []byte { return []byte("\x0a\xff\xff\xff\x0fnot protobuf") }, wantCode: 400, wantMsg: "decode OTLP protobuf body"},
		{name: "malformed json", contentType: contentTypeJSON, body: func(*testing.T) []byte { return []byte(`{"resourceMetrics": [`) }, wantCode: 400, wantMsg: "decode OTLP json body"},
		{name: "malformed gzip", encoding: "gzip", body: func(*testing.T) []byte { return []byte("not gzip") }, wantCode: 400, wantMsg: "gzip"},
		{name: "malformed zstd", encoding: "zstd", body: func(*testing.T) []byte { return []byte("not zstd at all") }, wantCode: 400, wantMsg: "zstd"},
		{name: "oversized body", mod: func(o *Options, _ *ingest.Options) { o.MaxBodyBytes = 10000 }, body: func(t *testing.T) []byte { return encode(t, metrics(ts, big), false) }, wantCode: 413},
		{name: "oversized gzip bomb", encoding: "gzip", body: func(t *testing.T) []byte { return compress(t, make([]byte, 4<<20), "gzip") }, wantCode: 413, wantMsg: "decompressed"},
		{name: "oversized zstd bomb", encoding: "zstd", body: func(t *testing.T) []byte { return compress(t, make([]byte, 4<<20), "zstd") }, wantCode: 413, wantMsg: "decompressed"},
		{name: "tenant limit of body size", mod: func(o *Options, po *ingest.Options) {
			def := limits.Defaults()
			def.MaxRequestBodyBytes = 100
			ov, err := limits.NewOverrides(def, limits.OverridesConfig{}, nil, nil)
			if err != nil {
				panic(err)
			}
			po.Limits = ov
		}, body: func(t *testing.T) []byte { return encode(t, metrics(ts, good), false) }, wantCode: 413},
		{name: "no tenant", noTenant: true, body: func(t *testing.T) []byte { return encode(t, metrics(ts, good), false) }, wantCode: 401},
		{name: "delta only", body: func(t *testing.T) []byte {
			return encode(t, metrics(ts, func(ms pmetric.MetricSlice) { sum(ms, "http.requests", ts, 3, pmetric.AggregationTemporalityDelta) }), false)
		}, wantCode: 400, wantMsg: "delta temporality are refused"},
		{name: "delta among cumulative", body: func(t *testing.T) []byte {
			return encode(t, metrics(ts, func(ms pmetric.MetricSlice) {
				sum(ms, "http.requests", ts, 3, pmetric.AggregationTemporalityDelta)
				good(ms)
			}), false)
		}, wantCode: 200, wantRejected: 1, wantMsg: "http.requests",
			wantStored: []string{`{__name__="queue_depth", instance="pod-1", job="shop", path="/x"}`, `{__name__="target_info", instance="pod-1", job="shop", region="eu"}`}},
		{name: "delta native", cfg: func(c *Config) { c.DeltaTemporality = DeltaNative }, body: func(t *testing.T) []byte {
			return encode(t, metrics(ts, func(ms pmetric.MetricSlice) { sum(ms, "http.requests", ts, 3, pmetric.AggregationTemporalityDelta) }), false)
		}, wantCode: 200, wantStored: []string{`{__name__="http_requests_total", instance="pod-1", job="shop"}`, `{__name__="target_info", instance="pod-1", job="shop", region="eu"}`}},
		{name: "too far in the future", body: func(t *testing.T) []byte {
			return encode(t, metrics(ts, func(ms pmetric.MetricSlice) {
				gauge(ms, "late", "", ts.Add(time.Hour), 1)
				good(ms)
			}), false)
		}, wantCode: 200, wantRejected: 1, wantMsg: "too far in the future",
			wantStored: []string{`{__name__="queue_depth", instance="pod-1", job="shop", path="/x"}`, `{__name__="target_info", instance="pod-1", job="shop", region="eu"}`}},
		{name: "all in the future, json", contentType: contentTypeJSON, body: func(t *testing.T) []byte {
			fut := ts.Add(time.Hour)
			md := metrics(fut, func(ms pmetric.MetricSlice) { gauge(ms, "late", "", fut, 1) })
			return encode(t, md, true)
		}, wantCode: 400, wantMsg: "too far in the future"},
		{name: "rate limited", mod: func(o *Options, po *ingest.Options) {
			def := limits.Defaults()
			def.IngestionRate, def.IngestionBurst = 1, 1
			ov, err := limits.NewOverrides(def, limits.OverridesConfig{}, nil, nil)
			if err != nil {
				panic(err)
			}
			po.Limits = ov
		}, body: func(t *testing.T) []byte { return encode(t, metrics(ts, good), false) }, wantCode: 429, wantMsg: "ingestion_rate"},
		{name: "store unavailable", mod: func(o *Options, po *ingest.Options) {
			po2 := *po
			po2.Registerer = nil
			o.Pipeline = ingest.New(unavailable{}, po2)
		},
			body: func(t *testing.T) []byte { return encode(t, metrics(ts, good), false) }, wantCode: 503, wantMsg: "disk full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			e := newEnv(t, cfg, func(o *Options, po *ingest.Options) {
				if tc.mod != nil {
					tc.mod(o, po)
				}
			})
			var body []byte
			if tc.body != nil {
				body = tc.body(t)
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, PrometheusPath, bytes.NewReader(body))
			ct := tc.contentType
			switch ct {
			case "":
				ct = contentTypeProtobuf
			case "-":
				ct = ""
			}
			if ct != "" {
				r.Header.Set("Content-Type", ct)
			}
			if tc.encoding != "" {
				r.Header.Set("Content-Encoding", tc.encoding)
			}
			if !tc.noTenant {
				r.Header.Set(tenant.HeaderName, testTenant)
			}
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			if w.Code != tc.wantCode {
				t.Fatalf("code %d, want %d; body %q", w.Code, tc.wantCode, w.Body.String())
			}
			json := strings.HasPrefix(ct, contentTypeJSON)
			var msg string
			switch {
			case w.Code == 200:
				resp := response(t, w, json)
				if n := resp.PartialSuccess().RejectedDataPoints(); n != tc.wantRejected {
					t.Errorf("rejected_data_points %d, want %d (%q)", n, tc.wantRejected, resp.PartialSuccess().ErrorMessage())
				}
				msg = resp.PartialSuccess().ErrorMessage()
			case w.Header().Get("Content-Type") == contentTypeProtobuf || w.Header().Get("Content-Type") == contentTypeJSON:
				st := statusOf(t, w, json)
				msg = st.GetMessage()
				if st.GetCode() == 0 {
					t.Errorf("status code 0 in %v", st)
				}
			default:
				msg = w.Body.String()
			}
			if !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tc.wantMsg)
			}
			if tc.mod != nil && tc.name == "store unavailable" {
				return
			}
			got := names(e.stored(t))
			if strings.Join(got, "\n") != strings.Join(tc.wantStored, "\n") {
				t.Errorf("stored %q, want %q", got, tc.wantStored)
			}
		})
	}
}

// TestTranslationStrategies checks the names each strategy gives, and
// that a name a strategy cannot translate is rejected alone.
func TestTranslationStrategies(t *testing.T) {
	ts := time.Now().Add(-time.Second)
	for _, tc := range []struct {
		strategy string
		name     string // the OTLP metric's name (unit "s", a gauge)
		want     string // the stored series; "" when rejected
	}{
		{"UnderscoreEscapingWithSuffixes", "http.server.duration", `{__name__="http_server_duration_seconds", instance="pod-1", job="shop", path="/x"}`},
		{"UnderscoreEscapingWithoutSuffixes", "http.server.duration", `{__name__="http_server_duration", instance="pod-1", job="shop", path="/x"}`},
		{"NoUTF8EscapingWithSuffixes", "http.server.duration", `{__name__="http.server.duration_seconds", instance="pod-1", job="shop", path="/x"}`},
		{"NoTranslation", "http.server.duration", `{__name__="http.server.duration", instance="pod-1", job="shop", path="/x"}`},
		// As in Prometheus: only the unit's suffix is left.
		{"UnderscoreEscapingWithSuffixes", "!!!", `{__name__="seconds", instance="pod-1", job="shop", path="/x"}`},
		{"UnderscoreEscapingWithoutSuffixes", "!!!", ""},
		{"UnderscoreEscapingWithoutSuffixes", "", ""},
		{"NoUTF8EscapingWithSuffixes", "bad\xffname", ""},
		{"NoTranslation", "bad\xffname", ""},
		{"NoTranslation", "", ""},
	} {
		t.Run(tc.strategy+"/"+tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.TranslationStrategy = tc.strategy
			e := newEnv(t, cfg)
			md := metrics(ts, func(ms pmetric.MetricSlice) {
				gauge(ms, tc.name, "s", ts, 1)
				gauge(ms, "other", "", ts, 2)
			})
			w := e.post(encode(t, md, false), contentTypeProtobuf, "")
			if w.Code != 200 {
				t.Fatalf("code %d: %q", w.Code, w.Body.String())
			}
			resp := response(t, w, false)
			stored := e.stored(t)
			if tc.want == "" {
				if n := resp.PartialSuccess().RejectedDataPoints(); n != 1 || resp.PartialSuccess().ErrorMessage() == "" {
					t.Errorf("partial success %d %q, want 1 rejected with a reason", n, resp.PartialSuccess().ErrorMessage())
				}
				if len(stored) != 2 { // other and target_info
					t.Errorf("stored %q, want other and target_info", names(stored))
				}
				return
			}
			if n := resp.PartialSuccess().RejectedDataPoints(); n != 0 {
				t.Errorf("rejected %d: %s", n, resp.PartialSuccess().ErrorMessage())
			}
			if _, ok := stored[tc.want]; !ok {
				t.Errorf("stored %q, want %s", names(stored), tc.want)
			}
		})
	}
}
