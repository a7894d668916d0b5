package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// otlpTenant is the tenant the OTLP test writes as.
const otlpTenant = "otel"

// TestOTLPMatchesPrometheus sends the same metrics (a counter, a gauge, an
// explicit-bucket histogram and an exponential histogram, with resource
// attributes) with the OpenTelemetry Go SDK's OTLP/HTTP exporter to Strata
// and to a Prometheus 3 with its OTLP receiver, and compares series,
// label values and query answers; then checks Strata's metadata and its
// answers to bad requests.
func TestOTLPMatchesPrometheus(t *testing.T) {
	requireE2E(t)
	promBin := prometheus3Bin(t)
	strata := startStrata(t, "", t.TempDir(),
		"-otlp.promote-resource-attributes", "deployment.environment,region",
		"-remote-write.max-body-bytes", "262144")
	prom := startPrometheus(t, "prometheus3-otlp", promBin, proctest.FreeAddr(t), `
global:
  scrape_interval: 1h
otlp:
  promote_resource_attributes: [deployment.environment, region]
`, "--web.enable-otlp-receiver")

	ctx := context.Background()
	res, err := resource.New(ctx, resource.WithAttributes(
		attribute.String("service.name", "checkout"),
		attribute.String("service.namespace", "shop"),
		attribute.String("service.instance.id", "pod-7"),
		attribute.String("deployment.environment", "prod"),
		attribute.String("region", "eu-west"),
		attribute.String("host.arch", "amd64"),
	))
	if err != nil {
		t.Fatal(err)
	}
	// One reader collects; both exporters send each collection, so that the
	// two servers receive the same data points.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Name: "payload.size"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}},
		)))
	defer func() { _ = mp.Shutdown(ctx) }()
	exporter := func(endpoint string, extra ...otlpmetrichttp.Option) *otlpmetrichttp.Exporter {
		opts := append([]otlpmetrichttp.Option{
			otlpmetrichttp.WithEndpointURL(endpoint),
			otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression),
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
		}, extra...)
		e, err := otlpmetrichttp.New(ctx, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Shutdown(ctx) })
		return e
	}
	toStrata := exporter(strata.url+"/otlp/v1/metrics", otlpmetrichttp.WithHeaders(map[string]string{"X-Scope-OrgID": otlpTenant}))
	toProm := exporter(prom.url + "/api/v1/otlp/v1/metrics")

	meter := mp.Meter("shop/checkout", metric.WithInstrumentationVersion("1.4.2"))
	requests, _ := meter.Int64Counter("http.server.requests", metric.WithDescription("Requests served."), metric.WithUnit("{request}"))
	depth, _ := meter.Float64Gauge("queue.depth", metric.WithDescription("Items waiting."), metric.WithUnit("{item}"))
	duration, _ := meter.Float64Histogram("http.server.duration", metric.WithDescription("Time to serve a request."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.01, 0.05, 0.1, 0.5, 1))
	size, _ := meter.Int64Histogram("payload.size", metric.WithDescription("Request payload size."), metric.WithUnit("By"))

	const rounds = 8
	var last time.Time
	for i := range rounds {
		for j := range 5 + i {
			route := []string{"/cart", "/pay"}[j%2]
			code := []string{"200", "500"}[(i+j)%5/4]
			requests.Add(ctx, int64(1+j), metric.WithAttributes(attribute.String("http.route", route), attribute.String("http.response.status_code", code)))
			duration.Record(ctx, 0.003*float64(1+i*j), metric.WithAttributes(attribute.String("http.route", route)))
			size.Record(ctx, int64(100*(1+j*i)))
		}
		depth.Record(ctx, float64(10-i)+0.25, metric.WithAttributes(attribute.String("queue", "orders")))
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		if err := toStrata.Export(ctx, &rm); err != nil {
			t.Fatalf("export to Strata, round %d: %v", i, err)
		}
		if err := toProm.Export(ctx, &rm); err != nil {
			t.Fatalf("export to Prometheus, round %d: %v", i, err)
		}
		last = time.Now()
		// The export interval of an SDK (a pacing, not a wait for
		// anything): each round's points get their own timestamps.
		time.Sleep(time.Second)
	}
	T := last.Add(500 * time.Millisecond).UnixMilli()
	start := T - 20_000

	sAPI, pAPI := newAPIClient(strata.url, otlpTenant), newAPIClient(prom.url, "")
	series := url.Values{"match[]": {`{__name__=~".+"}`}, "start": {apiTime(start)}, "end": {apiTime(T)}}
	s, p := sAPI.get(t, "/api/v1/series", series), pAPI.get(t, "/api/v1/series", series)
	compareAnswers(t, "series", s, p, p2Unsorted)
	if !bytes.Contains(s.body, []byte(`"__name__":"http_server_requests_total"`)) || !bytes.Contains(s.body, []byte(`"region":"eu-west"`)) ||
		!bytes.Contains(s.body, []byte(`"job":"shop/checkout"`)) || !bytes.Contains(s.body, []byte(`"__name__":"target_info"`)) {
		t.Errorf("series lack the translated names and promoted attributes: %s", clip(s.body))
	}
	for _, name := range []string{"__name__", "job", "http_route", "le"} {
		path := "/api/v1/label/" + name + "/values"
		compareAnswers(t, "values of "+name, sAPI.get(t, path, url.Values{"start": {apiTime(start)}, "end": {apiTime(T)}}), pAPI.get(t, path, url.Values{"start": {apiTime(start)}, "end": {apiTime(T)}}), 0)
	}
	queries := []string{
		`http_server_requests_total`,
		`sum by (http_route) (rate(http_server_requests_total[5s]))`,
		`queue_depth`,
		`histogram_quantile(0.9, sum by (le) (rate(http_server_duration_seconds_bucket[5s])))`,
		`http_server_duration_seconds_count`,
		`payload_size_bytes`,
		`histogram_count(rate(payload_size_bytes[5s]))`,
		`histogram_quantile(0.5, payload_size_bytes)`,
		`target_info`,
		`http_server_requests_total * on (job, instance) group_left (host_arch) target_info`,
	}
	for _, q := range queries {
		si := sAPI.query(t, q, T)
		if si.code != 200 || bytes.Contains(si.body, []byte(`"result":[]`)) {
			t.Errorf("instant %s: Strata's answer is empty or an error, nothing compared: %s", q, clip(si.body))
		}
		compareAnswers(t, "instant "+q, si, pAPI.query(t, q, T), 0)
		compareAnswers(t, "range "+q, sAPI.queryRange(t, q, T-6000, T, time.Second), pAPI.queryRange(t, q, T-6000, T, time.Second), 0)
	}
	// Every raw sample of every series.
	all := `{__name__=~".+"}[20s]`
	sa := sAPI.query(t, all, T)
	compareAnswers(t, "all raw samples", sa, pAPI.query(t, all, T), 0)
	if n := bytes.Count(sa.body, []byte(`"metric":`)); n < 20 {
		t.Errorf("all raw samples: %d series, want at least 20: %s", n, clip(sa.body))
	}
	t.Logf("all raw samples: %d series, %d bytes, the same in both", bytes.Count(sa.body, []byte(`"metric":`)), len(sa.body))

	// Metadata: Prometheus answers /api/v1/metadata from its scrape targets
	// only, so it has none for OTLP metrics; Strata keeps what the SDK sent.
	var md struct {
		Data map[string][]struct {
			Type, Help, Unit string
		} `json:"data"`
	}
	mr := sAPI.get(t, "/api/v1/metadata", nil)
	if err := json.Unmarshal(mr.body, &md); err != nil {
		t.Fatalf("metadata: %v: %s", err, mr.body)
	}
	want := map[string]string{
		"http_server_requests_total":   "counter|Requests served.|",
		"queue_depth":                  "gauge|Items waiting.|",
		"http_server_duration_seconds": "histogram|Time to serve a request.|seconds",
		"payload_size_bytes":           "histogram|Request payload size.|bytes",
		"target_info":                  "gauge|Target metadata|",
	}
	for name, w := range want {
		e := md.Data[name]
		if len(e) != 1 || e[0].Type+"|"+e[0].Help+"|"+e[0].Unit != w {
			t.Errorf("metadata of %s: %+v, want %s", name, e, w)
		}
	}
	if v := testutil.RequireMetric(t, strata.metrics(), "strata_remote_write_requests_total", "protocol", "otlp", "code", "200", "tenant", otlpTenant); v != rounds {
		t.Errorf("strata_remote_write_requests_total{protocol=otlp,code=200} = %v, want %d", v, rounds)
	}

	// Bad requests, as the OTLP specification answers them, and nothing of
	// them stored.
	post := func(path, contentType, encoding string, body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, strata.url+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		req.Header.Set("X-Scope-OrgID", "otel-bad")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	for _, bad := range []struct {
		name, path, contentType, encoding string
		body                              []byte
		code                              int
	}{
		{"malformed protobuf", "/otlp/v1/metrics", "application/x-protobuf", "", []byte("\x0a\xff\xff\xff\x0fgarbage"), 400},
		{"malformed json", "/api/v1/otlp/v1/metrics", "application/json", "", []byte(`{"resourceMetrics":[{`), 400},
		{"wrong content type", "/otlp/v1/metrics", "text/plain", "", []byte("x"), 415},
		{"unknown encoding", "/otlp/v1/metrics", "application/x-protobuf", "br", []byte("x"), 415},
		{"oversized", "/otlp/v1/metrics", "application/x-protobuf", "", make([]byte, 300<<10), 413},
	} {
		code, ct := post(bad.path, bad.contentType, bad.encoding, bad.body)
		if code != bad.code {
			t.Errorf("%s: HTTP %d, want %d", bad.name, code, bad.code)
		}
		if bad.code == 400 && ct != bad.contentType {
			t.Errorf("%s: answer's Content-Type %q, want %q (a google.rpc.Status)", bad.name, ct, bad.contentType)
		}
	}
	badAPI := newAPIClient(strata.url, "otel-bad")
	r := badAPI.get(t, "/api/v1/series", url.Values{"match[]": {`{__name__=~".+"}`}})
	if !strings.Contains(string(r.body), `"data":[]`) {
		t.Errorf("the bad requests' tenant holds series: %s", clip(r.body))
	}
	names := []string{}
	for n := range md.Data {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("Strata's metadata names: %v", names)
}
