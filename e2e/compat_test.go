package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// Timing of the scrape comparison tests.
const (
	scrapeFor       = 36 * time.Second // how long Prometheus scrapes before the comparison (see compatQueries), counted in scrapes
	evalLag         = 3 * time.Second  // how far before now the evaluation time lies
	compareRange    = 15 * time.Second // range of the range queries, ending at the evaluation time
	catchUpTimeout  = 45 * time.Second // how long Strata may take to hold every sample up to it
	scrapeReadyWait = 30 * time.Second // how long the first successful scrapes may take
)

// compatQuery is a PromQL query whose answers Strata and Prometheus must agree on.
type compatQuery struct {
	name  string
	query string
	// instantOnly marks queries that are not valid range queries.
	instantOnly bool
	// annotated marks queries whose answer carries PromQL warnings or infos;
	// Strata's answer must carry one.
	annotated bool
	// prom2 lists how Prometheus 2's answer legitimately differs from
	// Prometheus 3's, and so from Strata's (which runs Prometheus 3's engine).
	prom2 prom2Diff
	// nativeHistograms marks queries of native histograms, which only the
	// Prometheus 3 test scrapes (Prometheus 2.42 has them behind a flag and
	// cannot send them with remote write 1.0 as 3 does with 2.0).
	nativeHistograms bool
}

// prom2Diff is a set of known differences between Prometheus 2.42's and
// Prometheus 3's answers to the same query over the same samples. Against
// Prometheus 2 a query's answer must be byte-for-byte Prometheus's, or differ
// only in the ways its prom2 names.
type prom2Diff uint8

const (
	// p2Unsorted: Prometheus 2 sorted the vector of every instant query and
	// the series of /api/v1/series by labels. Prometheus 3 (and so Strata)
	// returns series in the order of the TSDB's postings, which is the order
	// in which the series were created (remote write preserves it), and
	// aggregation groups in the order of their first input series. Against
	// Prometheus 2, instant-query vectors and series lists are compared as
	// sets; range-query matrices are sorted by both.
	p2Unsorted prom2Diff = 1 << iota
	// p2Rounding: Prometheus 3 computes some functions with different float
	// arithmetic (histogram_quantile's interpolation within a bucket, the
	// compensated sums of avg_over_time), so results may differ in the last
	// bits. Values are compared to a relative 1e-12.
	p2Rounding
	// p2Annotations: Prometheus 2 had no PromQL warnings and infos.
	p2Annotations
	// p2RangeErrorPrefix: Prometheus 3 prefixes errors of query_range's
	// query parameter with `invalid parameter "query": `, as 2 did only for
	// instant queries.
	p2RangeErrorPrefix
	// p2ErrorText: Prometheus 3 words some parameter errors differently
	// ("invalid time value" for "Invalid time value", "unknown position" for
	// the position of an empty query). Status, HTTP code and errorType must
	// still be the same.
	p2ErrorText
)

// compatQueries run at the evaluation time T (instant) and over [T-15s, T]
// with a 1s step (range) on both Strata and the Prometheus that wrote to it.
//
// Range windows are at most 10s and offsets 5s, so every window lies within
// the scraped period: for a counter that starts within a window, Prometheus
// 2 and 3 extrapolate rate and increase differently.
var compatQueries = []compatQuery{
	{name: "up", query: `up`},
	{name: "counter rate", query: `rate(node_cpu_seconds_total[10s])`},
	{name: "sum by mode", query: `sum by (mode) (rate(node_cpu_seconds_total[10s]))`},
	{name: "gauge", query: `node_memory_MemAvailable_bytes`},
	{name: "gauge arithmetic", query: `1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes`},
	{name: "topk", query: `topk(3, node_cpu_seconds_total)`},
	{name: "name regex", query: `{__name__=~"node_load.*"}`},
	{name: "count by name", query: `count by (__name__) ({job="node"})`},
	{name: "histogram_quantile", query: `histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[10s])))`, prom2: p2Rounding},
	{name: "synthetic scrape series", query: `scrape_samples_scraped`},
	{name: "over_time", query: `max_over_time(scrape_duration_seconds[10s])`},
	{name: "increase with offset", query: `increase(prometheus_tsdb_head_samples_appended_total[10s] offset 5s)`},
	{name: "range selector", query: `node_load1[10s]`, instantOnly: true},
	// Every raw sample of every series in the 20s up to T: the stores must
	// hold the same series, timestamps and values.
	{name: "all raw samples", query: `{__name__=~".+"}[20s]`, instantOnly: true},
	{name: "syntax error", query: `sum(rate(up[1m])`, prom2: p2RangeErrorPrefix},
	{name: "range selector in range query", query: `up[1m]`, prom2: p2RangeErrorPrefix},
	{name: "native histogram", query: `prometheus_http_request_duration_seconds{handler="/api/v1/query"}`, nativeHistograms: true},
	{name: "native histogram quantile", query: `histogram_quantile(0.9, sum(rate(prometheus_http_request_duration_seconds[10s])))`, nativeHistograms: true},
	{name: "native histogram count", query: `histogram_count(rate(prometheus_http_request_duration_seconds[10s]))`, nativeHistograms: true},
	{name: "info: rate of a gauge", query: `rate(node_memory_MemAvailable_bytes[10s])`, annotated: true, prom2: p2Annotations},
	{name: "warning: quantile without le", query: `histogram_quantile(0.9, rate(prometheus_http_request_duration_seconds_count[10s]))`, annotated: true, prom2: p2Annotations},
}

// scrapeSetup describes the Prometheus of a scrape comparison test.
type scrapeSetup struct {
	name        string   // process name in logs
	global      string   // extra YAML of the global section
	bin         string   // binary
	flags       []string // extra flags
	remoteWrite string   // YAML of the remote_write entry, after "url:"
	prom2       bool     // whether this is Prometheus 2 (see prom2Diff)
	protocol    string   // remote-write protocol label in strata_remote_write_requests_total
	histograms  bool     // whether Prometheus sends native histograms
	// flushMidway: Strata's heads are cut into blocks (POST
	// /api/v1/admin/flush) halfway through the scrapes, while Prometheus
	// goes on writing: every later write must still be taken, and the
	// answers span blocks and head.
	flushMidway bool
}

// scrapeEnv is a Strata and a Prometheus that scrapes node exporter and
// itself and remote-writes everything to Strata.
type scrapeEnv struct {
	strata    *strataProc
	prom      *promProc
	strataAPI *apiClient
	promAPI   *apiClient
}

// startScrapeEnv starts node exporter, Strata and the Prometheus of setup,
// and waits until Prometheus scrapes both targets.
func startScrapeEnv(t *testing.T, setup scrapeSetup) *scrapeEnv {
	t.Helper()
	node := startNodeExporter(t)
	s := startStrata(t, "", t.TempDir())
	promAddr := proctest.FreeAddr(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
%sscrape_configs:
  - job_name: node
    static_configs:
      - targets: [%q]
  - job_name: prometheus
    static_configs:
      - targets: [%q]
remote_write:
  - url: %s/api/v1/write
%s`, setup.global, node, promAddr, s.url, setup.remoteWrite)
	p := startPrometheus(t, setup.name, setup.bin, promAddr, cfg, setup.flags...)
	env := &scrapeEnv{
		strata:    s,
		prom:      p,
		strataAPI: newAPIClient(s.url, ""),
		promAPI:   newAPIClient(p.url, ""),
	}
	testutil.Eventually(t, scrapeReadyWait, "Prometheus to scrape both targets (count(up == 1) == 2)", func() bool {
		v, ok := scalarValue(t, env.promAPI, `count(up == 1)`, nowMs())
		return ok && v == 2
	})
	return env
}

// nowMs is the current time in Unix milliseconds.
func nowMs() int64 { return time.Now().UnixMilli() }

// pickEvalTime returns an evaluation time about evalLag before now whose
// millisecond phase is as far as possible from the phases of the scrape
// timestamps. With one-second scrapes, no sample then sits on the boundary
// of a range or lookback window, where Prometheus 2 (closed windows) and 3
// (left-open windows) differ by design.
func (e *scrapeEnv) pickEvalTime(t *testing.T) int64 {
	t.Helper()
	now := nowMs()
	res := decodeResult(t, "timestamp(up)", mustSucceed(t, "timestamp(up)", e.promAPI.query(t, `timestamp(up)`, now)))
	var phases []int64
	for _, s := range res {
		ms := int64(math.Round(s.Samples[0].V * 1000))
		phases = append(phases, ((ms%1000)+1000)%1000)
	}
	best, bestDist := int64(500), int64(-1)
	for cand := int64(0); cand < 1000; cand += 10 {
		d := int64(1000)
		for _, p := range phases {
			diff := (cand - p + 1000) % 1000
			d = min(d, diff, 1000-diff)
		}
		if d > bestDist {
			best, bestDist = cand, d
		}
	}
	T := (now-evalLag.Milliseconds())/1000*1000 + best
	if T > now-evalLag.Milliseconds() {
		T -= 1000
	}
	t.Logf("scrape timestamp phases %v ms; evaluation time %s (phase %d ms, %d ms from the nearest)", phases, apiTime(T), best, bestDist)
	return T
}

// waitCaughtUp waits until Strata holds every sample Prometheus holds up to
// T. Prometheus sends through a single remote-write shard, in the order it
// appended; its highest sent timestamp is set once Strata acknowledged a
// batch. Once that passes T+2s, every scrape at or before T (each done within
// its 1s interval) was sent and acknowledged. As a cross-check, both must
// count the same samples of the synthetic scrape series before T.
func (e *scrapeEnv) waitCaughtUp(t *testing.T, T int64) {
	t.Helper()
	const countQ = `sum(count_over_time(scrape_samples_scraped[2m])) + sum(count_over_time(up[2m]))`
	want, ok := scalarValue(t, e.promAPI, countQ, T)
	if !ok || want == 0 {
		t.Fatalf("Prometheus has no samples before the evaluation time")
	}
	var sent, have float64
	var sentOK bool
	if !testutil.Wait(catchUpTimeout, func() bool {
		sent, sentOK = scalarValue(t, e.promAPI, `max(prometheus_remote_storage_queue_highest_sent_timestamp_seconds)`, nowMs())
		have, _ = scalarValue(t, e.strataAPI, countQ, T)
		return sentOK && sent*1000 >= float64(T+2000) && have == want
	}) {
		t.Fatalf("Strata did not catch up within %v: %s is %v on Strata and %v on Prometheus; Prometheus's highest sent timestamp %v (found %v), T %s",
			catchUpTimeout, countQ, have, want, sent, sentOK, apiTime(T))
	}
	t.Logf("Strata caught up: Prometheus sent up to %s", apiTime(int64(sent*1000)))
}

// compareAnswers fails t unless Strata's and Prometheus's answers have the
// same status code and byte-for-byte the same body, or bodies that differ
// only in the ways allowed names.
func compareAnswers(t *testing.T, what string, strata, prom apiResponse, allowed prom2Diff) {
	t.Helper()
	if strata.code != prom.code {
		t.Errorf("%s: Strata answered HTTP %d, Prometheus HTTP %d\n  strata:     %s\n  prometheus: %s", what, strata.code, prom.code, clip(strata.body), clip(prom.body))
		return
	}
	if strata.contentType != prom.contentType {
		t.Errorf("%s: Strata's answer has Content-Type %q, Prometheus's %q", what, strata.contentType, prom.contentType)
	}
	if bytes.Equal(strata.body, prom.body) {
		return
	}
	if allowed == 0 {
		t.Errorf("%s: answers differ: %s", what, diffBodies(strata.body, prom.body))
		return
	}
	se, pe := decodeEnvelope(t, what+" (strata)", strata), decodeEnvelope(t, what+" (prometheus)", prom)
	if allowed&p2RangeErrorPrefix != 0 {
		se.Error = strings.TrimPrefix(se.Error, `invalid parameter "query": `)
	}
	if allowed&p2ErrorText != 0 && se.Error != "" && pe.Error != "" {
		se.Error = pe.Error
	}
	if allowed&p2Annotations != 0 {
		se.Warnings, se.Infos = nil, nil
	}
	if se.Status != pe.Status || se.ErrorType != pe.ErrorType || se.Error != pe.Error ||
		fmt.Sprint(se.Warnings, se.Infos) != fmt.Sprint(pe.Warnings, pe.Infos) {
		t.Errorf("%s: answers differ beyond the known differences of Prometheus 2 (%b):\n  strata:     %s\n  prometheus: %s", what, allowed, clip(strata.body), clip(prom.body))
		return
	}
	if bytes.Equal(se.Data, pe.Data) {
		return
	}
	if allowed&(p2Unsorted|p2Rounding) == 0 || len(se.Data) == 0 || len(pe.Data) == 0 {
		t.Errorf("%s: data differ: %s", what, diffBodies(se.Data, pe.Data))
		return
	}
	if allowed&p2Unsorted != 0 && bytes.HasPrefix(se.Data, []byte("[")) {
		// A list of series, as /api/v1/series answers.
		if msg := diffSeriesLists(t, what, se.Data, pe.Data); msg != "" {
			t.Errorf("%s: data differ beyond the known differences of Prometheus 2 (%b): %s\n  strata:     %s\n  prometheus: %s", what, allowed, msg, clip(se.Data), clip(pe.Data))
		}
		return
	}
	ss, ps := decodeResult(t, what, se.Data), decodeResult(t, what, pe.Data)
	if allowed&p2Unsorted != 0 {
		sortSeries(ss)
		sortSeries(ps)
	}
	tolerance := 0.0
	if allowed&p2Rounding != 0 {
		tolerance = 1e-12
	}
	if msg := diffSeries(ss, ps, tolerance); msg != "" {
		t.Errorf("%s: data differ beyond the known differences of Prometheus 2 (%b): %s\n  strata:     %s\n  prometheus: %s", what, allowed, msg, clip(se.Data), clip(pe.Data))
	}
}

// diffSeriesLists compares two lists of label sets as sets and describes the
// first difference, or returns "".
func diffSeriesLists(t *testing.T, what string, a, b json.RawMessage) string {
	t.Helper()
	keys := func(raw json.RawMessage) []string {
		var list []map[string]string
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatalf("%s: decode series list: %v\n%s", what, err, raw)
		}
		out := make([]string, 0, len(list))
		for _, m := range list {
			out = append(out, mapKey(m))
		}
		sort.Strings(out)
		return out
	}
	ka, kb := keys(a), keys(b)
	if strings.Join(ka, "\n") != strings.Join(kb, "\n") {
		return fmt.Sprintf("series sets differ: %v and %v", ka, kb)
	}
	return ""
}

// sortSeries sorts a query result by labels.
func sortSeries(ss []promSeries) {
	sort.Slice(ss, func(i, j int) bool { return mapKey(ss[i].Metric) < mapKey(ss[j].Metric) })
}

// diffSeries describes the first difference between two query results, with
// values compared to a relative tolerance, or returns "".
func diffSeries(a, b []promSeries, tolerance float64) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d series and %d series", len(a), len(b))
	}
	for i := range a {
		ka, kb := mapKey(a[i].Metric), mapKey(b[i].Metric)
		if ka != kb {
			return fmt.Sprintf("series %d is %s and %s", i, ka, kb)
		}
		if len(a[i].Samples) != len(b[i].Samples) {
			return fmt.Sprintf("series %s has %d and %d samples", ka, len(a[i].Samples), len(b[i].Samples))
		}
		for j, sa := range a[i].Samples {
			sb := b[i].Samples[j]
			if sa.T != sb.T || !closeEnough(sa.V, sb.V, tolerance) {
				return fmt.Sprintf("series %s sample %d is %v and %v", ka, j, sa, sb)
			}
		}
	}
	return ""
}

// closeEnough reports whether a and b are equal to a relative tolerance
// (NaNs are equal to NaNs).
func closeEnough(a, b, tolerance float64) bool {
	if a == b || (math.IsNaN(a) && math.IsNaN(b)) {
		return true
	}
	return math.Abs(a-b) <= tolerance*math.Max(math.Abs(a), math.Abs(b))
}

// clip shortens a body for a message.
func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// compareQueries runs compatQueries against both and compares the answers;
// prom2 allows the known differences of Prometheus 2.
//
// flushed (Strata's heads were cut into blocks during the scrapes) compares
// instant-query vectors as sets too: Strata's series then come from a block
// and the head, merged in label order, Prometheus's from its head in the
// order they were created (Prometheus's own order changes alike once it
// compacts its head). Range-query matrices are sorted either way.
func (e *scrapeEnv) compareQueries(t *testing.T, T int64, prom2, flushed bool) {
	t.Helper()
	start := T - compareRange.Milliseconds()
	for _, q := range compatQueries {
		if prom2 && q.nativeHistograms {
			continue
		}
		var allowed prom2Diff
		if prom2 {
			allowed = q.prom2
		}
		t.Run(q.name, func(t *testing.T) {
			s, p := e.strataAPI.query(t, q.query, T), e.promAPI.query(t, q.query, T)
			instantAllowed := allowed &^ p2RangeErrorPrefix
			if prom2 || flushed {
				instantAllowed |= p2Unsorted
			}
			compareAnswers(t, "instant query "+q.query, s, p, instantAllowed)
			if q.annotated {
				requireAnnotation(t, "instant query "+q.query, s)
			}
			if q.instantOnly {
				return
			}
			s = e.strataAPI.queryRange(t, q.query, start, T, time.Second)
			p = e.promAPI.queryRange(t, q.query, start, T, time.Second)
			compareAnswers(t, "range query "+q.query, s, p, allowed)
			if q.annotated {
				requireAnnotation(t, "range query "+q.query, s)
			}
		})
	}
}

// requireAnnotation fails t unless Strata's answer carries a warning or info.
func requireAnnotation(t *testing.T, what string, r apiResponse) {
	t.Helper()
	e := decodeEnvelope(t, what, r)
	if len(e.Warnings) == 0 && len(e.Infos) == 0 {
		t.Errorf("%s: Strata's answer has no warnings or infos: %s", what, clip(r.body))
	}
}

// compareMetadataAPIs compares the answers of the series, label names,
// label values, exemplars and formatting endpoints over [T-15s, T], and some
// of their errors; prom2 allows Prometheus 2's sorted series lists, and
// flushed compares series lists as sets (see compareQueries).
func (e *scrapeEnv) compareMetadataAPIs(t *testing.T, T int64, prom2, flushed bool) {
	t.Helper()
	window := url.Values{"start": {apiTime(T - compareRange.Milliseconds())}, "end": {apiTime(T)}}
	with := func(extra url.Values) url.Values {
		v := url.Values{}
		for k, vs := range window {
			v[k] = vs
		}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	cases := []struct {
		path   string
		params url.Values
		// prom3Only marks parameters Prometheus 2 did not have.
		prom3Only bool
		prom2     prom2Diff
	}{
		{path: "/api/v1/series", params: with(url.Values{"match[]": {"up"}})},
		{path: "/api/v1/series", params: with(url.Values{"match[]": {`{__name__=~"node_load.*"}`, `scrape_duration_seconds`}})},
		{path: "/api/v1/series", params: with(url.Values{"match[]": {`node_cpu_seconds_total{mode="idle"}`}, "limit": {"1"}}), prom3Only: true},
		{path: "/api/v1/series", params: with(nil)}, // no match[]: an error
		{path: "/api/v1/series", params: url.Values{"match[]": {"up{"}}},
		{path: "/api/v1/labels", params: with(nil)},
		{path: "/api/v1/labels", params: with(url.Values{"match[]": {`node_cpu_seconds_total`}})},
		{path: "/api/v1/label/job/values", params: with(nil)},
		{path: "/api/v1/label/mode/values", params: with(url.Values{"match[]": {`node_cpu_seconds_total`}})},
		{path: "/api/v1/label/__name__/values", params: with(url.Values{"match[]": {`{__name__=~"node_(load|memory_Mem).*"}`}})},
		{path: "/api/v1/query_exemplars", params: with(url.Values{"query": {`up`}})},
		{path: "/api/v1/format_query", params: url.Values{"query": {`sum(rate(up[1m]))by(job)`}}},
		{path: "/api/v1/query", params: url.Values{"query": {`up`}, "time": {"yesterday"}}, prom2: p2ErrorText},
		{path: "/api/v1/query", params: url.Values{}, prom2: p2ErrorText},
		{path: "/api/v1/query_range", params: with(url.Values{"query": {`up`}, "step": {"0"}})},
		{path: "/api/v1/query_range", params: url.Values{"query": {`up`}, "start": {apiTime(T)}, "end": {apiTime(T - 1000)}, "step": {"1"}}},
	}
	for _, c := range cases {
		if prom2 && c.prom3Only {
			continue
		}
		what := c.path + "?" + c.params.Encode()
		var allowed prom2Diff
		if prom2 {
			allowed = c.prom2
		}
		if (prom2 || flushed) && c.path == "/api/v1/series" {
			allowed |= p2Unsorted
		}
		compareAnswers(t, what, e.strataAPI.get(t, c.path, c.params), e.promAPI.get(t, c.path, c.params), allowed)
	}
}

// compareMetricMetadata waits until Strata has the metadata of
// node_cpu_seconds_total (sent by remote write) and checks that it is a
// counter and that it equals what Prometheus took from its scrapes (byte
// for byte unless prom2).
func (e *scrapeEnv) compareMetricMetadata(t *testing.T, prom2 bool) {
	t.Helper()
	params := url.Values{"metric": {"node_cpu_seconds_total"}}
	type entry struct {
		Type string `json:"type"`
		Help string `json:"help"`
		Unit string `json:"unit"`
	}
	var have map[string][]entry
	var data json.RawMessage
	if !testutil.Wait(20*time.Second, func() bool {
		data = mustSucceed(t, "strata metadata", e.strataAPI.get(t, "/api/v1/metadata", params))
		have = nil
		if err := json.Unmarshal(data, &have); err != nil {
			t.Fatalf("decode Strata's metadata: %v\n%s", err, data)
		}
		return len(have["node_cpu_seconds_total"]) > 0
	}) {
		t.Fatalf("Strata's /api/v1/metadata has no node_cpu_seconds_total after 20s: %s", data)
	}
	if got := have["node_cpu_seconds_total"]; len(got) != 1 || got[0].Type != string(model.MetricTypeCounter) {
		t.Errorf("Strata's metadata of node_cpu_seconds_total is %+v, want one counter entry", got)
	}
	var want map[string][]entry
	pdata := mustSucceed(t, "prometheus metadata", e.promAPI.get(t, "/api/v1/metadata", params))
	if err := json.Unmarshal(pdata, &want); err != nil {
		t.Fatalf("decode Prometheus's metadata: %v\n%s", err, pdata)
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Errorf("metadata of node_cpu_seconds_total: Strata has %+v, Prometheus %+v", have, want)
	}
	if !prom2 {
		// Prometheus 2 wrote the fields of an entry in another order.
		compareAnswers(t, "/api/v1/metadata?metric=node_cpu_seconds_total",
			e.strataAPI.get(t, "/api/v1/metadata", params), e.promAPI.get(t, "/api/v1/metadata", params), 0)
	}

	// The metadata of every family: Strata's, from remote write, must be
	// what Prometheus has from its scrapes. Entries are compared as sets:
	// both APIs list them from maps.
	decode := func(who string, r apiResponse) map[string][]string {
		var m map[string][]entry
		data := mustSucceed(t, who+" /api/v1/metadata", r)
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("decode %s's metadata: %v", who, err)
		}
		out := map[string][]string{}
		for fam, es := range m {
			for _, e := range es {
				out[fam] = append(out[fam], fmt.Sprintf("%+v", e))
			}
			sort.Strings(out[fam])
		}
		return out
	}
	sm := decode("Strata", e.strataAPI.get(t, "/api/v1/metadata", nil))
	pm := decode("Prometheus", e.promAPI.get(t, "/api/v1/metadata", nil))
	var diffs []string
	for _, fam := range keysOf(pm) {
		if fmt.Sprint(sm[fam]) != fmt.Sprint(pm[fam]) {
			diffs = append(diffs, fmt.Sprintf("%s: Strata %v, Prometheus %v", fam, sm[fam], pm[fam]))
		}
	}
	for _, fam := range keysOf(sm) {
		// Prometheus 3 writes metadata records for the series it makes up
		// for each scrape (up, scrape_*) to its WAL and so sends them with
		// remote write 2.0, while its own metadata API lists only what the
		// targets exposed.
		if !prom2 && (fam == "up" || strings.HasPrefix(fam, "scrape_")) {
			continue
		}
		if _, ok := pm[fam]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: Strata %v, Prometheus has none", fam, sm[fam]))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("/api/v1/metadata: %d of %d families differ:\n%s", len(diffs), len(pm), strings.Join(diffs, "\n"))
	}
}

// compareTSDBStatus checks Strata's /api/v1/status/tsdb for the tenant
// against Prometheus's own head, which holds what it remote-wrote. The
// Prometheus job scrapes Prometheus itself, and the test's own API calls
// keep adding series there that reach Strata a moment later, so the
// node exporter's metrics are compared exactly (series per metric name)
// and the totals only bounded.
func (e *scrapeEnv) compareTSDBStatus(t *testing.T) {
	type stat struct {
		Name  string `json:"name"`
		Value uint64 `json:"value"`
	}
	type status struct {
		HeadStats struct {
			NumSeries uint64 `json:"numSeries"`
		} `json:"headStats"`
		SeriesCountByMetricName []stat `json:"seriesCountByMetricName"`
	}
	nodeMetrics := func(what string, r apiResponse) (status, map[string]uint64) {
		var st status
		if err := json.Unmarshal(mustSucceed(t, what, r), &st); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		m := map[string]uint64{}
		for _, s := range st.SeriesCountByMetricName {
			if strings.HasPrefix(s.Name, "node_") {
				m[s.Name] = s.Value
			}
		}
		return st, m
	}
	params := url.Values{"limit": {"10000"}}
	var (
		strata, prom         status
		strataNode, promNode map[string]uint64
	)
	// Asked again for up to 20s until both agree; the checks below report
	// the last answers.
	testutil.Wait(20*time.Second, func() bool {
		strata, strataNode = nodeMetrics("strata tsdb status", e.strataAPI.get(t, "/api/v1/status/tsdb", params))
		prom, promNode = nodeMetrics("prometheus tsdb status", e.promAPI.get(t, "/api/v1/status/tsdb", params))
		return reflect.DeepEqual(strataNode, promNode)
	})
	if len(promNode) < 10 {
		t.Fatalf("Prometheus's tsdb status names %d node_ metrics, want many", len(promNode))
	}
	if !reflect.DeepEqual(strataNode, promNode) {
		t.Errorf("series per node_ metric differ:\nstrata:     %v\nprometheus: %v", strataNode, promNode)
	}
	if strata.HeadStats.NumSeries == 0 || strata.HeadStats.NumSeries > prom.HeadStats.NumSeries {
		t.Errorf("Strata's head has %d series, Prometheus's %d: want between 1 and Prometheus's", strata.HeadStats.NumSeries, prom.HeadStats.NumSeries)
	}
}

// runScrapeComparison is the body of the remote-write comparison tests.
func runScrapeComparison(t *testing.T, setup scrapeSetup) {
	env := startScrapeEnv(t, setup)
	// Each target scraped once a second for scrapeFor: one more scrape than
	// seconds, so that they span it.
	scrapes := float64(scrapeFor/time.Second + 1)
	if setup.flushMidway {
		testutil.Eventually(t, scrapeFor+scrapeReadyWait, fmt.Sprintf("Prometheus to scrape each target %v times", scrapes/2), func() bool {
			v, ok := scalarValue(t, env.promAPI, `min(count_over_time(up[1h]))`, nowMs())
			return ok && v >= scrapes/2
		})
		if r := env.strataAPI.post(t, "/api/v1/admin/flush", nil); r.code != http.StatusOK {
			t.Fatalf("flush: HTTP %d %s", r.code, r.body)
		}
		t.Logf("Strata's heads cut into blocks halfway through the scrapes")
	}
	testutil.Eventually(t, 2*scrapeFor+scrapeReadyWait, fmt.Sprintf("Prometheus to scrape each target %v times (min(count_over_time(up[1h])))", scrapes), func() bool {
		v, ok := scalarValue(t, env.promAPI, `min(count_over_time(up[1h]))`, nowMs())
		return ok && v >= scrapes
	})
	T := env.pickEvalTime(t)
	env.waitCaughtUp(t, T)
	t.Run("queries", func(t *testing.T) { env.compareQueries(t, T, setup.prom2, setup.flushMidway) })
	t.Run("series and labels", func(t *testing.T) { env.compareMetadataAPIs(t, T, setup.prom2, setup.flushMidway) })
	t.Run("metadata", func(t *testing.T) { env.compareMetricMetadata(t, setup.prom2) })
	if !setup.prom2 {
		t.Run("tsdb status", env.compareTSDBStatus)
	}
	t.Run("write metrics", func(t *testing.T) {
		labels := []string{"protocol", setup.protocol, "code", "204", "tenant", "anonymous"}
		if n := testutil.RequireMetric(t, env.strata.metrics(), "strata_remote_write_requests_total", labels...); n <= 0 {
			t.Errorf("strata_remote_write_requests_total%v is %v, want > 0", labels, n)
		}
		kinds := []string{"sample"}
		if setup.histograms {
			kinds = append(kinds, "histogram")
		}
		for _, kind := range kinds {
			labels := []string{"kind", kind, "tenant", "anonymous"}
			if n := testutil.RequireMetric(t, env.strata.metrics(), "strata_remote_write_samples_ingested_total", labels...); n <= 0 {
				t.Errorf("strata_remote_write_samples_ingested_total%v is %v, want > 0", labels, n)
			}
		}
		for _, code := range []string{"400", "413", "415", "500", "503"} {
			labels := []string{"code", code}
			if n := testutil.RequireMetric(t, env.strata.metrics(), "strata_remote_write_requests_total", labels...); n != 0 {
				t.Errorf("strata_remote_write_requests_total%v is %v, want 0: Prometheus's writes must all succeed", labels, n)
			}
		}
	})
}

// TestRemoteWrite1MatchesPrometheus: Prometheus 2 scrapes node exporter and
// itself every second and remote-writes (1.0) to Strata; Strata's query API
// then answers exactly as that Prometheus answers from its own TSDB, which
// holds exactly the samples it sent (staleness markers included).
func TestRemoteWrite1MatchesPrometheus(t *testing.T) {
	requireE2E(t)
	// The scrape comparisons mostly wait for scrapes; they run side by side.
	t.Parallel()
	runScrapeComparison(t, scrapeSetup{
		name: "prometheus2",
		bin:  prometheus2Bin(t),
		remoteWrite: `    queue_config:
      batch_send_deadline: 1s
      min_shards: 1
      max_shards: 1
      capacity: 10000
      max_samples_per_send: 2000
    metadata_config:
      send: true
      send_interval: 1s
`,
		prom2:    true,
		protocol: "v1",
	})
}

// TestRemoteWrite2MatchesPrometheus is TestRemoteWrite1MatchesPrometheus with
// Prometheus 3 sending remote write 2.0 (io.prometheus.write.v2.Request),
// metadata and native histograms included. Against the same engine version
// every answer must be byte for byte Prometheus's, with no exceptions.
func TestRemoteWrite2MatchesPrometheus(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	runScrapeComparison(t, prometheus3Setup(t, false))
}

// TestRemoteWrite2AcrossFlushMatchesPrometheus is
// TestRemoteWrite2MatchesPrometheus with Strata's heads flushed into blocks
// halfway through the scrapes, as an operator's POST /api/v1/admin/flush
// does: Prometheus's writes after it must all be taken, and the answers,
// over blocks and head, equal Prometheus's but for the order of
// instant-query vectors and series lists (see compareQueries).
func TestRemoteWrite2AcrossFlushMatchesPrometheus(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	runScrapeComparison(t, prometheus3Setup(t, true))
}

// prometheus3Setup is the scrape comparison's Prometheus 3, remote-writing
// 2.0; flush flushes Strata halfway.
func prometheus3Setup(t *testing.T, flush bool) scrapeSetup {
	return scrapeSetup{
		name: "prometheus3",
		bin:  prometheus3Bin(t),
		// Remote write 2.0 sends metadata only from WAL metadata records.
		flags: []string{"--enable-feature=metadata-wal-records"},
		// Prometheus exposes its request latencies as native histograms too;
		// keep the classic buckets for the queries Prometheus 2 also runs.
		global: `  scrape_native_histograms: true
  always_scrape_classic_histograms: true
`,
		remoteWrite: `    protobuf_message: io.prometheus.write.v2.Request
    send_native_histograms: true
    queue_config:
      batch_send_deadline: 1s
      min_shards: 1
      max_shards: 1
      capacity: 10000
      max_samples_per_send: 2000
`,
		protocol:    "v2",
		histograms:  true,
		flushMidway: flush,
	}
}
