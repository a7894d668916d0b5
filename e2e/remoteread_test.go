package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/strata-tsdb/strata/internal/proctest"
)

// remoteReadTenant is the tenant the remote-read test writes to and reads
// from: the default one (no X-Scope-OrgID header), since Prometheus 2.42
// sends no custom headers with remote-read requests.
const remoteReadTenant = ""

// remoteReadData returns the series TestRemoteRead writes: counters (one
// with a reset), gauges and a classic histogram, one sample every 5s for 10
// minutes from start, in label order. Values have fractional parts so that
// their exact round trip is checked.
func remoteReadData(start int64) []prompb.TimeSeries {
	const n = 120
	step := int64(5000)
	var out []prompb.TimeSeries
	mk := func(value func(i int) float64, nameValues ...string) {
		samples := make([]prompb.Sample, n)
		for i := range samples {
			samples[i] = prompb.Sample{Timestamp: start + int64(i)*step, Value: value(i)}
		}
		out = append(out, newSeries(samples, nameValues...))
	}
	counter := func(rate float64, resetAt int) func(int) float64 {
		return func(i int) float64 {
			from := 0
			if resetAt > 0 && i >= resetAt {
				from = resetAt
			}
			v := 0.0
			for k := from; k <= i; k++ {
				v += rate * float64(k%7+1) / 4
			}
			return v
		}
	}
	mk(func(i int) float64 { return 0.125 * float64(i) }, "__name__", "rr_latency_seconds_bucket", "job", "rr", "instance", "a", "le", "0.1")
	mk(func(i int) float64 { return 0.5 * float64(i) }, "__name__", "rr_latency_seconds_bucket", "job", "rr", "instance", "a", "le", "0.5")
	mk(func(i int) float64 { return 0.875 * float64(i) }, "__name__", "rr_latency_seconds_bucket", "job", "rr", "instance", "a", "le", "1")
	mk(func(i int) float64 { return float64(i) }, "__name__", "rr_latency_seconds_bucket", "job", "rr", "instance", "a", "le", "+Inf")
	mk(counter(3, 0), "__name__", "rr_requests_total", "job", "rr", "instance", "a", "code", "200")
	mk(counter(0.5, 0), "__name__", "rr_requests_total", "job", "rr", "instance", "a", "code", "500")
	mk(counter(2, 0), "__name__", "rr_requests_total", "job", "rr", "instance", "b", "code", "200")
	mk(counter(0.25, 60), "__name__", "rr_requests_total", "job", "rr", "instance", "b", "code", "500")
	mk(func(i int) float64 { return 20 + 5*math.Sin(float64(i)/10) }, "__name__", "rr_temperature_celsius", "job", "rr", "instance", "a")
	mk(func(i int) float64 { return 18.5 + float64(i%13)/3 }, "__name__", "rr_temperature_celsius", "job", "rr", "instance", "b")
	sort.Slice(out, func(i, j int) bool { return seriesKey(out[i].Labels) < seriesKey(out[j].Labels) })
	return out
}

// remoteReadQueries are compared between Strata's query API and a
// Prometheus that reads Strata through remote read.
var remoteReadQueries = []compatQuery{
	{name: "counters", query: `rr_requests_total`},
	{name: "rate", query: `rate(rr_requests_total[1m])`},
	{name: "sum of increase", query: `sum by (code) (increase(rr_requests_total[2m]))`},
	{name: "gauges", query: `rr_temperature_celsius`},
	{name: "avg_over_time", query: `avg_over_time(rr_temperature_celsius[1m])`, prom2: p2Rounding},
	{name: "histogram_quantile", query: `histogram_quantile(0.9, rate(rr_latency_seconds_bucket[1m]))`, prom2: p2Rounding},
	{name: "name regex", query: `{__name__=~"rr_.+", instance="b"}`},
	{name: "offset", query: `rr_requests_total offset 1m`},
	{name: "raw samples", query: `rr_temperature_celsius[30s]`, instantOnly: true},
	{name: "missing", query: `rr_missing`},
}

// writeRemoteReadData writes the test's data to Strata as one remote write
// 1.0 request and returns it by seriesKey.
func writeRemoteReadData(t *testing.T, s *strataProc, start int64) map[string][]prompb.Sample {
	t.Helper()
	series := remoteReadData(start)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, body, err := sendWriteV1(ctx, http.DefaultClient, s.url+"/api/v1/write", remoteReadTenant, &prompb.WriteRequest{Timeseries: series})
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("remote write: HTTP %d %q %v; want 204", code, body, err)
	}
	want := map[string][]prompb.Sample{}
	for _, ts := range series {
		want[seriesKey(ts.Labels)] = ts.Samples
	}
	return want
}

// TestRemoteRead writes known samples to Strata and reads them back through
// remote read: with a Go client, in both response types, and through
// Prometheus 2 and 3 configured to read Strata (read_recent, no scrape
// targets), whose query answers must equal Strata's own.
func TestRemoteRead(t *testing.T) {
	requireE2E(t)
	prom2 := prometheus2Bin(t)
	prom3 := prometheus3Bin(t)
	s := startStrata(t, "", t.TempDir())

	nowSec := time.Now().Unix()
	start := (nowSec-600)*1000 + 250 // a phase of 250ms: no sample is on a query window boundary
	want := writeRemoteReadData(t, s, start)
	end := start + 119*5000
	T := (nowSec - 10) * 1000

	t.Run("go client", func(t *testing.T) {
		for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
			t.Run(rt.String(), func(t *testing.T) { checkGoRemoteRead(t, s, rt, want, start, end) })
		}
	})

	for _, c := range []struct {
		name  string
		bin   string
		prom2 bool
	}{
		{"prometheus2", prom2, true},
		{"prometheus3", prom3, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := proctest.FreeAddr(t)
			cfg := fmt.Sprintf(`global:
  scrape_interval: 15s
remote_read:
  - url: %s/api/v1/read
    read_recent: true
`, s.url)
			p := startPrometheus(t, c.name+"-reader", c.bin, addr, cfg)
			strataAPI, promAPI := newAPIClient(s.url, remoteReadTenant), newAPIClient(p.url, "")
			from := T - (5 * time.Minute).Milliseconds()
			for _, q := range remoteReadQueries {
				var allowed prom2Diff
				if c.prom2 {
					allowed = q.prom2 | p2Unsorted
				}
				t.Run(q.name, func(t *testing.T) {
					compareAnswers(t, "instant query "+q.query, strataAPI.query(t, q.query, T), promAPI.query(t, q.query, T), allowed)
					if q.instantOnly {
						return
					}
					compareAnswers(t, "range query "+q.query,
						strataAPI.queryRange(t, q.query, from, T, 15*time.Second),
						promAPI.queryRange(t, q.query, from, T, 15*time.Second), allowed&^p2Unsorted)
				})
			}
			t.Run("series", func(t *testing.T) {
				params := url.Values{"match[]": {`{__name__=~"rr_.+"}`}, "start": {apiTime(from)}, "end": {apiTime(T)}}
				var allowed prom2Diff
				if c.prom2 {
					allowed = p2Unsorted
				}
				compareAnswers(t, "/api/v1/series", strataAPI.get(t, "/api/v1/series", params), promAPI.get(t, "/api/v1/series", params), allowed)
			})
		})
	}
}

// checkGoRemoteRead reads Strata's /api/v1/read with the Go client in
// response type rt and checks the answers against the written samples:
// everything, a time range within the data, and another tenant (nothing).
func checkGoRemoteRead(t *testing.T, s *strataProc, rt prompb.ReadRequest_ResponseType, want map[string][]prompb.Sample, start, end int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	readURL := s.url + "/api/v1/read"
	all := &prompb.Query{
		StartTimestampMs: start,
		EndTimestampMs:   end,
		Matchers:         []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: "rr_.+"}},
	}
	got, err := remoteRead(ctx, http.DefaultClient, readURL, remoteReadTenant, all, rt)
	if err != nil {
		t.Fatalf("remote read: %v", err)
	}
	if msg := diffSampleSets(got, want); msg != "" {
		t.Errorf("remote read of all data: %s", msg)
	}

	// A narrower range and an equality matcher. SAMPLES answers hold exactly
	// the samples in [mint, maxt]; chunked answers hold whole chunks that
	// overlap it, so there the range's samples must be among those returned.
	mint, maxt := start+100_000, start+200_000
	narrow := &prompb.Query{
		StartTimestampMs: mint,
		EndTimestampMs:   maxt,
		Matchers: []*prompb.LabelMatcher{
			{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "rr_temperature_celsius"},
			{Type: prompb.LabelMatcher_NEQ, Name: "instance", Value: "b"},
		},
	}
	got, err = remoteRead(ctx, http.DefaultClient, readURL, remoteReadTenant, narrow, rt)
	if err != nil {
		t.Fatalf("remote read: %v", err)
	}
	key := seriesKey(newSeries(nil, "__name__", "rr_temperature_celsius", "job", "rr", "instance", "a").Labels)
	var inRange []prompb.Sample
	for _, smp := range want[key] {
		if smp.Timestamp >= mint && smp.Timestamp <= maxt {
			inRange = append(inRange, smp)
		}
	}
	if len(got) != 1 || got[key] == nil {
		t.Fatalf("narrow remote read returned series %v, want only %s", keysOf(got), key)
	}
	if rt == prompb.ReadRequest_SAMPLES {
		if msg := diffSampleSets(got, map[string][]prompb.Sample{key: inRange}); msg != "" {
			t.Errorf("narrow remote read: %s", msg)
		}
	} else {
		have := map[int64]float64{}
		for _, smp := range got[key] {
			have[smp.Timestamp] = smp.Value
		}
		for _, smp := range inRange {
			if v, ok := have[smp.Timestamp]; !ok || math.Float64bits(v) != math.Float64bits(smp.Value) {
				t.Errorf("narrow remote read: sample at %d is %v (present %v), want %v", smp.Timestamp, v, ok, smp.Value)
			}
		}
	}

	// Another tenant has none of this data.
	got, err = remoteRead(ctx, http.DefaultClient, readURL, "someone-else", all, rt)
	if err != nil {
		t.Fatalf("remote read as another tenant: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("remote read as another tenant returned series %v, want none", keysOf(got))
	}
}

// diffSampleSets describes the first difference between two sets of series
// (bit-exact values), or returns "".
func diffSampleSets(got, want map[string][]prompb.Sample) string {
	if a, b := keysOf(got), keysOf(want); fmt.Sprint(a) != fmt.Sprint(b) {
		return fmt.Sprintf("series %v, want %v", a, b)
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			return fmt.Sprintf("series %s has %d samples, want %d", k, len(g), len(w))
		}
		for i := range w {
			if g[i].Timestamp != w[i].Timestamp || math.Float64bits(g[i].Value) != math.Float64bits(w[i].Value) {
				return fmt.Sprintf("series %s sample %d is (%d, %s), want (%d, %s)", k, i,
					g[i].Timestamp, strconv.FormatFloat(g[i].Value, 'g', -1, 64), w[i].Timestamp, strconv.FormatFloat(w[i].Value, 'g', -1, 64))
			}
		}
	}
	return ""
}

// keysOf returns the sorted keys of m.
func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
