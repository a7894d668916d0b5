package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/ingest/rwproto"
	"github.com/strata-tsdb/strata/internal/testutil"
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
	e.advance(failover + 100*time.Millisecond)
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
	if got := testutil.Metric(t, e.reg, "strata_remote_write_ha_deduplicated_samples_total", "tenant", testTenant, "cluster", "c1"); got != 3 {
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

// stepClock is the time the pipeline sees in TestTwoTenantsKeepTheirRates:
// it stands still until the test advances it.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	gen  int64         // advances so far
	tick chan struct{} // closed when the clock next advances
}

func newStepClock(start time.Time) *stepClock {
	return &stepClock{now: start, tick: make(chan struct{})}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// next returns a channel closed when the clock next advances, and the
// number of advances so far.
func (c *stepClock) next() (<-chan struct{}, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tick, c.gen
}

func (c *stepClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.gen++
	close(c.tick)
	c.tick = make(chan struct{})
	return c.now
}

// admissionClock wraps the store, recording at which time of the clock the
// pipeline opens an appender per tenant: right after a request passed its
// tenant's token bucket, so the recorded times are the bucket's decisions.
type admissionClock struct {
	Storage
	clock *stepClock
	mu    sync.Mutex
	times map[string][]time.Time
}

func (a *admissionClock) Appender(ctx context.Context, id string) (storage.AppenderV2, error) {
	now := a.clock.Now()
	a.mu.Lock()
	a.times[id] = append(a.times[id], now)
	a.mu.Unlock()
	return a.Storage.Appender(ctx, id)
}

// TestTwoTenantsKeepTheirRates is the load test: two tenants write as fast as
// they can at once, and each gets its own ingestion rate. The pipeline's
// clock is injected and advanced in steps; after each step the test waits
// until every writer has been refused, so that the buckets are drained and
// never overflow however slowly the writers run, and the tokens granted
// over the measurement are exactly the rate times its length.
func TestTwoTenantsKeepTheirRates(t *testing.T) {
	// Four writers per tenant, each resending one encoded request.
	rates := map[string]float64{"tenant-1": 1000, "tenant-2": 2000}
	const batch, writers = 100, 4
	def := limits.Defaults()
	path := filepath.Join(t.TempDir(), "overrides.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`
overrides:
  tenant-1: {ingestion_rate: %g, ingestion_burst: %d}
  tenant-2: {ingestion_rate: %g, ingestion_burst: %d}
`, rates["tenant-1"], int(rates["tenant-1"]), rates["tenant-2"], int(rates["tenant-2"]))), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := limits.NewOverrides(def, limits.OverridesConfig{File: path}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	clock := newStepClock(e.now)
	adm := &admissionClock{Storage: e.store, clock: clock, times: map[string][]time.Time{}}
	buckets := limits.NewRateLimiters(o)
	reg := testRegistry()
	pipe := ingest.New(adm, ingest.Options{Limits: o, Rates: buckets, Decoders: rwproto.Decoders(true), Registerer: reg, Now: clock.Now})
	h := NewHandler(adm, Options{Tenants: tenant.Resolver{Default: defaultTenant}, Limits: o, Registerer: reg, Pipeline: pipe, Now: clock.Now})

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		limited = map[string]int{}
		stop    = make(chan struct{})
		// refusedAt[i] is the clock's advance at which writer i was last
		// refused; it makes no request until the next advance.
		refusedAt = make([]atomic.Int64, len(rates)*writers)
	)
	for i := range refusedAt {
		refusedAt[i].Store(-1)
	}
	i := 0
	for id := range rates {
		for w := range writers {
			refused := &refusedAt[i]
			i++
			body := encodeV1(nSeries(fmt.Sprintf("load_%d", w), batch, e.nowMs))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					// Taken before the request: an advance during it
					// lets the writer try again at once.
					tick, gen := clock.next()
					switch code := do(h, req{contentType: ctV1, encoding: "snappy", tenant: id, body: body}).Code; code {
					case http.StatusNoContent:
						continue
					case http.StatusTooManyRequests:
						mu.Lock()
						limited[id]++
						mu.Unlock()
						refused.Store(gen)
					default:
						t.Errorf("%s: status %d", id, code)
					}
					select { // refused: nothing to take until the clock advances
					case <-stop:
						return
					case <-tick:
					}
				}
			}()
		}
	}
	defer func() { close(stop); wg.Wait() }()

	// A step lets each tenant write one or two requests. After it, once
	// every writer has been refused at the new time (and so read that time
	// before its bucket was asked, and sends nothing until the next step),
	// both buckets hold less than one request's samples.
	const step, warmup, measure = 70 * time.Millisecond, 5, 50
	now := clock.Now()
	drained := func() {
		t.Helper()
		_, gen := clock.next()
		testutil.Eventually(t, 30*time.Second, "every writer to be refused at the clock's time", func() bool {
			for i := range refusedAt {
				if refusedAt[i].Load() != gen {
					return false
				}
			}
			return true
		})
		for id := range rates {
			if tokens := buckets.Tokens(id, now); tokens >= batch {
				t.Fatalf("%s: %.0f tokens left after every writer was refused", id, tokens)
			}
		}
	}
	drained()
	for range warmup {
		now = clock.advance(step)
		drained()
	}
	t1 := now
	level1 := map[string]float64{}
	for id := range rates {
		level1[id] = buckets.Tokens(id, t1)
	}
	for range measure {
		now = clock.advance(step)
		drained()
	}
	t2 := now
	level2 := map[string]float64{}
	for id := range rates {
		level2[id] = buckets.Tokens(id, t2)
	}
	adm.mu.Lock()
	defer adm.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	for id, r := range rates {
		n := 0
		for _, at := range adm.times[id] {
			if at.After(t1) && !at.After(t2) {
				n++
			}
		}
		span := t2.Sub(t1).Seconds()
		// Tokens granted over the measurement: those taken by accepted
		// requests plus the change of the bucket's level.
		got := (float64(n*batch) + level2[id] - level1[id]) / span
		t.Logf("%s: limit %g samples/s, granted %.0f samples/s: %d requests accepted (%.0f samples/s), bucket %.0f → %.0f tokens; %d requests limited",
			id, r, got, n, float64(n*batch)/span, level1[id], level2[id], limited[id])
		if n == 0 || limited[id] < n {
			t.Errorf("%s: %d requests limited, %d accepted: the writers did not offer more than the rate", id, limited[id], n)
		}
		if got < r*0.999 || got > r*1.001 {
			t.Errorf("%s was granted %.1f samples/s, want %g", id, got, r)
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

// TestReusedBodyKeepsNothing checks that nothing a request leaves behind
// (stored labels, metadata, HA metrics) points into its body, which a later
// request reuses: later requests of the same layout and other strings must
// not change it.
func TestReusedBodyKeepsNothing(t *testing.T) {
	e, _ := newLimitsEnv(t, func(l *limits.Limits) { l.AcceptHASamples = true }, "")
	post := func(cluster, replica, name, help string, ts int64) int {
		b := newV2()
		b.meta(b.floats([]string{"__name__", name, "__replica__", replica, "cluster", cluster}, float64(ts), 1), writev2.Metadata_METRIC_TYPE_GAUGE, help, "")
		return e.postV2(b.build()).Code
	}
	now := e.nowMs
	if code := post("c1", "r1", "aaa", "Help of aaa.", now); code != http.StatusNoContent {
		t.Fatalf("status %d, want 204", code)
	}
	if code := post("c1", "r2", "aaa", "Help of aaa.", now); code != http.StatusAccepted {
		t.Fatalf("status %d, want 202", code)
	}
	for i := range 20 {
		if code := post("x9", "r1", "zzz", "Help of zzz.", now+int64(i)); code != http.StatusNoContent {
			t.Fatalf("status %d, want 204", code)
		}
	}
	e.assertStored(t, testTenant, map[string][]string{
		`{__name__="aaa", cluster="c1"}`: {fs(now, 1)},
		`{__name__="zzz", cluster="x9"}`: func() (out []string) {
			for i := range 20 {
				out = append(out, fs(now+int64(i), 1))
			}
			return out
		}(),
	})
	assertMetadata(t, e.metadataOf(t, testTenant), map[string][]metadata.Metadata{
		"aaa": {{Type: model.MetricTypeGauge, Help: "Help of aaa."}},
		"zzz": {{Type: model.MetricTypeGauge, Help: "Help of zzz."}},
	})
	if got := testutil.Metric(t, e.reg, "strata_remote_write_ha_deduplicated_samples_total", "tenant", testTenant, "cluster", "c1"); got != 1 {
		t.Errorf("deduplicated samples of cluster c1 = %v, want 1", got)
	}
}
