package remotewrite

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/tenant"
)

// newLimitsEnv is newEnv with per-tenant limits: defaults mod applied to the
// flag defaults, overrides the content of an overrides file (none when empty).
func newLimitsEnv(tb testing.TB, mod func(*limits.Limits), overrides string) (*env, *limits.Overrides) {
	tb.Helper()
	def := limits.Defaults()
	if mod != nil {
		mod(&def)
	}
	var cfg limits.OverridesConfig
	if overrides != "" {
		cfg.File = filepath.Join(tb.TempDir(), "overrides.yaml")
		if err := os.WriteFile(cfg.File, []byte(overrides), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	reg := testRegistry()
	o, err := limits.NewOverrides(def, cfg, nil, reg)
	if err != nil {
		tb.Fatalf("overrides: %v", err)
	}
	sl := limits.NewSeriesLimiter(o, reg)
	e := newEnvWithStore(tb, blocks.Options{SeriesCallback: func(id string) blocks.SeriesCallback { return sl.Tracker(id) }},
		func(opts *Options) { opts.Limits = o })
	return e, o
}

// postAs sends an RW 1.0 request as tenant id.
func (e *env) postAs(id string, wr *prompb.WriteRequest) int {
	return do(e.h, req{contentType: ctV1, encoding: "snappy", tenant: id, body: encodeV1(wr)}).Code
}

// nSeries is a request of n series of metric, one sample each at t.
func nSeries(metric string, n int, t int64) *prompb.WriteRequest {
	wr := &prompb.WriteRequest{}
	for i := range n {
		wr.Timeseries = append(wr.Timeseries, ts1(lbls("__name__", metric, "i", fmt.Sprintf("%04d", i)), floats(float64(t), float64(i))...))
	}
	return wr
}

func TestRateLimitIsPerTenant(t *testing.T) {
	e, _ := newLimitsEnv(t, nil, `
overrides:
  team-a:
    ingestion_rate: 1
    ingestion_burst: 100
`)
	// The burst holds one request of 100 samples; the next is over the rate.
	assertCode(t, do(e.h, req{contentType: ctV1, tenant: testTenant, body: encodeV1(nSeries("m", 100, e.nowMs))}), http.StatusNoContent)
	w := do(e.h, req{contentType: ctV1, tenant: testTenant, body: encodeV1(nSeries("m", 10, e.nowMs+1000))})
	assertCode(t, w, http.StatusTooManyRequests)
	if !strings.Contains(w.Body.String(), "ingestion_rate") {
		t.Errorf("429 message does not name the limit: %s", w.Body.String())
	}
	if got := e.rejected(t, testTenant, reasonRateLimited); got != 10 {
		t.Errorf("rejected rate_limited = %v, want 10", got)
	}
	// Another tenant, with the default (no) rate, is unaffected.
	for i := range 5 {
		if code := e.postAs("team-b", nSeries("m", 100, e.nowMs+int64(i)*1000)); code != http.StatusNoContent {
			t.Fatalf("team-b request %d: status %d", i, code)
		}
	}
	if n := len(e.samples(t, testTenant)); n != 100 {
		t.Errorf("team-a stored %d series, want 100", n)
	}
}

func TestActiveSeriesLimits(t *testing.T) {
	for _, tc := range []struct {
		name, overrides, limit string
		// wr is written after 3 series of metric a exist.
		wr        *prompb.WriteRequest
		wantTotal int
	}{
		{
			name:      "per tenant",
			overrides: "overrides: {team-a: {max_active_series: 5}}",
			limit:     "max_active_series",
			wr:        nSeries("b", 4, 0),
			wantTotal: 5,
		},
		{
			name:      "per metric",
			overrides: "overrides: {team-a: {max_active_series_per_metric: 4}}",
			limit:     "max_active_series_per_metric",
			// Metric a may get one more series, metric b four.
			wr:        &prompb.WriteRequest{Timeseries: append(nSeries("a", 6, 0).Timeseries[3:], nSeries("b", 4, 0).Timeseries...)},
			wantTotal: 8,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newLimitsEnv(t, nil, tc.overrides)
			assertCode(t, e.postV1(nSeries("a", 3, e.nowMs)), http.StatusNoContent)
			for i := range tc.wr.Timeseries {
				tc.wr.Timeseries[i].Samples[0].Timestamp = e.nowMs
			}
			w := e.postV1(tc.wr)
			assertCode(t, w, http.StatusBadRequest)
			if !strings.Contains(w.Body.String(), tc.limit) {
				t.Errorf("400 message does not name %s: %s", tc.limit, w.Body.String())
			}
			if n := len(e.samples(t, testTenant)); n != tc.wantTotal {
				t.Errorf("stored %d series, want %d", n, tc.wantTotal)
			}
			// Existing series still take samples at the limit.
			assertCode(t, e.postV1(nSeries("a", 3, e.nowMs+1000)), http.StatusNoContent)
			if n := len(e.samples(t, testTenant)); n != tc.wantTotal {
				t.Errorf("after more samples: stored %d series, want %d", n, tc.wantTotal)
			}
			// Other tenants have their own count.
			if code := e.postAs("team-b", nSeries("a", 10, e.nowMs)); code != http.StatusNoContent {
				t.Errorf("team-b: status %d", code)
			}
		})
	}
}

func TestLabelLimits(t *testing.T) {
	e, _ := newLimitsEnv(t, func(l *limits.Limits) {
		l.MaxLabelNamesPerSeries = 3
		l.MaxLabelNameLength = 10
		l.MaxLabelValueLength = 8
	}, "")
	for _, tc := range []struct {
		name   string
		labels []prompb.Label
		limit  string
	}{
		{"too many labels", lbls("__name__", "m", "a", "1", "b", "2", "c", "3"), "max_label_names_per_series"},
		{"long name", lbls("__name__", "m", "abcdefghijk", "1"), "max_label_name_length"},
		{"long value", lbls("__name__", "m", "a", "123456789"), "max_label_value_length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok := ts1(lbls("__name__", "ok", "case", strings.ReplaceAll(tc.name, " ", "_")[:8]), floats(float64(e.nowMs), 1)...)
			w := e.postV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ok, ts1(tc.labels, floats(float64(e.nowMs), 1)...)}})
			assertCode(t, w, http.StatusBadRequest)
			if !strings.Contains(w.Body.String(), tc.limit) {
				t.Errorf("message does not name %s: %s", tc.limit, w.Body.String())
			}
			if got := e.rejected(t, testTenant, tc.limit); got != 1 {
				t.Errorf("rejected %s = %v, want 1", tc.limit, got)
			}
		})
	}
	// Only the valid series were stored.
	for k := range e.samples(t, testTenant) {
		if !strings.HasPrefix(k, `{__name__="ok"`) {
			t.Errorf("stored series over a limit: %s", k)
		}
	}
	if n := len(e.samples(t, testTenant)); n != 3 {
		t.Errorf("stored %d series, want 3", n)
	}
}

func TestExemplarLimit(t *testing.T) {
	e, _ := newLimitsEnv(t, func(l *limits.Limits) { l.MaxExemplarsPerSeries = 2 }, "")
	ts := ts1(lbls("__name__", "m"), floats(float64(e.nowMs), 1)...)
	for i := range 4 {
		ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: lbls("trace_id", fmt.Sprint(i)), Value: 1, Timestamp: e.nowMs - int64(4-i)})
	}
	w := e.postV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}})
	assertCode(t, w, http.StatusBadRequest)
	if !strings.Contains(w.Body.String(), "max_exemplars_per_series") {
		t.Errorf("message does not name the limit: %s", w.Body.String())
	}
	n := 0
	for _, exs := range e.exemplars(t, testTenant) {
		n += len(exs)
	}
	if n != 2 {
		t.Errorf("stored %d exemplars, want 2", n)
	}
	if len(e.samples(t, testTenant)) != 1 {
		t.Errorf("the series' sample was not stored")
	}
}

func TestBodyLimitPerTenant(t *testing.T) {
	e, _ := newLimitsEnv(t, nil, "overrides: {team-a: {max_request_body_bytes: 100}}")
	body := encodeV1(nSeries("m", 50, e.nowMs))
	assertCode(t, do(e.h, req{contentType: ctV1, tenant: testTenant, body: body}), http.StatusRequestEntityTooLarge)
	assertCode(t, do(e.h, req{contentType: ctV1, tenant: "team-b", body: body}), http.StatusNoContent)
	e.assertStored(t, testTenant, nil)
}

func TestHADeduplication(t *testing.T) {
	const failover = 300 * time.Millisecond
	e, _ := newLimitsEnv(t, func(l *limits.Limits) {
		l.AcceptHASamples = true
		l.HAFailoverTimeout = model.Duration(failover)
	}, "")
	write := func(replica string, ts ...int64) int {
		var ss []prompb.Sample
		for _, t := range ts {
			ss = append(ss, prompb.Sample{Timestamp: t, Value: float64(t - e.nowMs)})
		}
		wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: lbls("__name__", "up", "__replica__", replica, "cluster", "c1", "job", "node"), Samples: ss},
		}}
		return e.postV1(wr).Code
	}
	base := e.nowMs
	for _, step := range []struct {
		replica string
		ts      []int64
		want    int
	}{
		{"r1", []int64{base}, http.StatusNoContent},
		{"r2", []int64{base + 500}, http.StatusAccepted}, // kept: newer than r1's
		{"r1", []int64{base + 1000}, http.StatusNoContent},
		{"r2", []int64{base + 1500}, http.StatusAccepted}, // kept, and r1 falls silent
	} {
		if code := write(step.replica, step.ts...); code != step.want {
			t.Fatalf("%s %v: status %d, want %d", step.replica, step.ts, code, step.want)
		}
	}
	time.Sleep(failover + 100*time.Millisecond)
	// r2 takes over: its kept request at base+1500 is stored first, and its
	// sample at base+800, older than r1's newest, is dropped.
	if code := write("r2", base+800, base+2000); code != http.StatusNoContent {
		t.Fatalf("after failover: status %d, want 204", code)
	}
	if code := write("r1", base+2500); code != http.StatusAccepted {
		t.Fatalf("old replica after failover: status %d, want 202", code)
	}
	// A series without the HA labels is not de-duplicated.
	assertCode(t, e.postV1(nSeries("plain", 1, base)), http.StatusNoContent)
	e.assertStored(t, testTenant, map[string][]string{
		`{__name__="up", cluster="c1", job="node"}`: {fs(base, 0), fs(base+1000, 1000), fs(base+1500, 1500), fs(base+2000, 2000)},
		`{__name__="plain", i="0000"}`:              {fs(base, 0)},
	})
	if got := counterValue(t, e.reg, "strata_remote_write_ha_deduplicated_samples_total", map[string]string{"tenant": testTenant, "cluster": "c1"}); got != 3 {
		t.Errorf("deduplicated samples = %v, want 3", got)
	}
}

func TestOverridesReloadTakesEffect(t *testing.T) {
	e, o := newLimitsEnv(t, nil, "overrides: {team-a: {max_label_names_per_series: 2}}")
	assertCode(t, e.postV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts1(lbls("__name__", "m", "a", "1", "b", "2"), floats(float64(e.nowMs), 1)...)}}), http.StatusBadRequest)
	path := o.File()
	if err := os.WriteFile(path, []byte("overrides: {team-a: {max_label_names_per_series: 5}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := o.Reload(); err != nil || !changed {
		t.Fatalf("reload: changed %v, err %v", changed, err)
	}
	assertCode(t, e.postV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts1(lbls("__name__", "m", "a", "1", "b", "2"), floats(float64(e.nowMs), 1)...)}}), http.StatusNoContent)
}

// TestTwoTenantsKeepTheirRates is the load test: two tenants write as fast as
// they can at once, and each gets its own ingestion rate within 5%. It
// measures accepted samples, which the token bucket governs, not CPU speed.
func TestTwoTenantsKeepTheirRates(t *testing.T) {
	if testing.Short() {
		t.Skip("load test takes seconds")
	}
	// Rates low enough that two writers per tenant offer more than the
	// rate even under the race detector on a shared machine: the test
	// checks that each tenant gets its rate, not more and not less.
	rates := map[string]float64{"tenant-1": 1500, "tenant-2": 3000}
	const burst, batch = 500, 50
	e, _ := newLimitsEnv(t, nil, fmt.Sprintf(`
overrides:
  tenant-1: {ingestion_rate: %g, ingestion_burst: %d}
  tenant-2: {ingestion_rate: %g, ingestion_burst: %d}
`, rates["tenant-1"], burst, rates["tenant-2"], burst))
	const window, warmup = 6 * time.Second, time.Second
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted = map[string][]time.Time{} // when each accepted request was answered
		limited  = map[string]int{}
	)
	start := time.Now()
	for id := range rates {
		for w := range 2 { // two writers per tenant
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; time.Since(start) < window; k++ {
					wr := nSeries(fmt.Sprintf("load_%d", w), batch, e.nowMs+int64(k))
					code := e.postAs(id, wr)
					now := time.Now()
					mu.Lock()
					switch code {
					case http.StatusNoContent:
						accepted[id] = append(accepted[id], now)
					case http.StatusTooManyRequests:
						limited[id]++
					default:
						t.Errorf("%s: status %d", id, code)
					}
					mu.Unlock()
					if code == http.StatusTooManyRequests {
						time.Sleep(time.Millisecond)
					}
				}
			}()
		}
	}
	wg.Wait()
	for id, r := range rates {
		// The accepted rate after the warm-up (in which the full bucket's
		// burst is spent): samples accepted after the first answer of the
		// measurement, over the time to the last one. Answer times lag the
		// bucket's decisions by about the same request latency at both
		// ends, so the latency does not bias the rate.
		var times []time.Time
		for _, at := range accepted[id] {
			if at.Sub(start) >= warmup {
				times = append(times, at)
			}
		}
		slices.SortFunc(times, time.Time.Compare)
		if len(times) < 10 {
			t.Fatalf("%s: only %d requests accepted after the warm-up", id, len(times))
		}
		span := times[len(times)-1].Sub(times[0])
		got := float64((len(times)-1)*batch) / span.Seconds()
		t.Logf("%s: limit %g samples/s, accepted %.0f samples/s (%d requests over %s, %d requests limited)", id, r, got, len(times)-1, span, limited[id])
		if limited[id] == 0 {
			t.Errorf("%s was never limited: the writers did not offer more than the rate", id)
		}
		if got < r*0.95 || got > r*1.05 {
			t.Errorf("%s accepted %.0f samples/s, want %g ±5%%", id, got, r)
		}
	}
}

// TestSeriesLimitAfterRestart: the active-series counts are rebuilt from the
// WAL when the store reopens, so the limit holds across a restart.
func TestSeriesLimitAfterRestart(t *testing.T) {
	dir := t.TempDir()
	def := limits.Defaults()
	def.MaxActiveSeries = 3
	o, err := limits.NewOverrides(def, limits.OverridesConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sl := limits.NewSeriesLimiter(o, nil)
	open := func() (*blocks.Store, *Handler) {
		store, err := blocks.Open(blocks.Options{Dir: dir, SeriesCallback: func(id string) blocks.SeriesCallback { return sl.Tracker(id) }})
		if err != nil {
			t.Fatal(err)
		}
		return store, NewHandler(store, Options{Tenants: tenant.Resolver{Default: defaultTenant}, Limits: o, Registerer: testRegistry()})
	}
	now := time.Now().UnixMilli()
	store, h := open()
	if w := do(h, req{contentType: ctV1, tenant: testTenant, body: encodeV1(nSeries("m", 3, now))}); w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store, h = open()
	defer store.Close()
	// The three series are known again: their samples are accepted, a
	// fourth series is not.
	if w := do(h, req{contentType: ctV1, tenant: testTenant, body: encodeV1(nSeries("m", 3, now+1000))}); w.Code != http.StatusNoContent {
		t.Errorf("existing series after restart: status %d: %s", w.Code, w.Body.String())
	}
	w := do(h, req{contentType: ctV1, tenant: testTenant, body: encodeV1(nSeries("m", 4, now+2000))})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "max_active_series") {
		t.Errorf("a fourth series after restart: status %d: %s", w.Code, w.Body.String())
	}
}

func TestWriteAuthentication(t *testing.T) {
	auth, err := tenant.ParseAuth([]byte("tenants: {team-a: {bearer_token: tok-a}, team-b: {bearer_token: tok-b}}"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.Tenants = tenant.Resolver{Default: defaultTenant, Auth: auth} })
	body := encodeV1(nSeries("m", 1, e.nowMs))
	for _, tc := range []struct {
		name, token, header string
		want                int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong token", "nope", "", http.StatusUnauthorized},
		{"token of another tenant", "tok-b", "team-a", http.StatusForbidden},
		{"token", "tok-a", "", http.StatusNoContent},
		{"token and its tenant", "tok-a", "team-a", http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
			r.Header.Set("Content-Type", ctV1)
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.header != "" {
				r.Header.Set(tenant.HeaderName, tc.header)
			}
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			assertCode(t, w, tc.want)
		})
	}
	if n := len(e.samples(t, testTenant)); n != 1 {
		t.Errorf("team-a holds %d series, want 1", n)
	}
	e.assertStored(t, "team-b", nil)
	e.assertStored(t, defaultTenant, nil)
}
