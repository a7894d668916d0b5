package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/alerting/ruler"
	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/filesystem"
	"github.com/strata-tsdb/strata/tenant"
)

// statusFixture is a store with a filesystem bucket holding blocks of
// tenants a and b, and a compactor over that bucket.
type statusFixture struct {
	store *blocks.Store
	bkt   objstore.Bucket
	comp  *compactor.Compactor
	reg   *prometheus.Registry
	start int64
}

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	bkt, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Shipped blocks stay on disk for a day, as by default.
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir(), Bucket: bkt, Registerer: reg, Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	// Five hours of samples: three 2h windows, so three blocks each once flushed.
	start := time.Now().Truncate(2*time.Hour).Add(-4*time.Hour).UnixMilli() + 7_123
	write := func(store *blocks.Store, id string, series int) {
		app, err := store.Appender(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for i := range series {
			ls := labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
			for ts := start; ts < start+5*3600_000; ts += 60_000 {
				if _, err := app.Append(0, ls, 0, ts, float64(ts), nil, nil, storage.AppendV2Options{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	write(store, "a", 3)
	write(store, "b", 1)
	if err := store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Tenant c is written after the flush: its data is all in its head.
	write(store, "c", 2)
	// Tenant d is written through another store sharing the bucket: this
	// store learns of its blocks at its next bucket sync.
	other, err := blocks.Open(blocks.Options{Dir: t.TempDir(), Bucket: bkt, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	write(other, "d", 1)
	if err := other.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.SyncBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	comp, err := compactor.New(compactor.Options{Bucket: bkt, Dir: t.TempDir(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return &statusFixture{store: store, bkt: bkt, comp: comp, reg: reg, start: start}
}

func getJSON(t *testing.T, srv *httptest.Server, path, tenantID string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tenantID != "" {
		req.Header.Set("X-Scope-OrgID", tenantID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("%s: not JSON: %s", path, body)
		}
		return resp.StatusCode
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			t.Fatalf("%s: %v in %s", path, err, env.Data)
		}
	}
	return resp.StatusCode
}

func TestStatusBlocksListsTheBucket(t *testing.T) {
	f := newStatusFixture(t)
	srv := httptest.NewServer(New(Options{Tenants: tenant.Resolver{Default: "a"}, Store: f.store, Registerer: prometheus.NewRegistry(), Gatherer: f.reg}))
	t.Cleanup(srv.Close)
	for _, id := range []string{"a", "b", "none"} {
		t.Run(id, func(t *testing.T) {
			// The bucket's own listing, read independently of the store.
			inv, err := compactor.LoadInventory(context.Background(), f.bkt, id)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for u := range inv.Live {
				want = append(want, u.String())
			}
			sort.Strings(want)
			var got struct {
				Blocks []*blockmeta.Meta `json:"blocks"`
			}
			if code := getJSON(t, srv, "/api/v1/status/tsdb/blocks", id, &got); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			var ids []string
			for i, m := range got.Blocks {
				ids = append(ids, m.ULID.String())
				if i > 0 && got.Blocks[i-1].MinTime > m.MinTime {
					t.Errorf("blocks not oldest first: %d after %d", m.MinTime, got.Blocks[i-1].MinTime)
				}
				if m.Strata == nil || m.Strata.Resolution != blockmeta.ResRaw || m.Stats.NumSamples == 0 {
					t.Errorf("block %s lacks its resolution or stats: %+v", m.ULID, m)
				}
			}
			sort.Strings(ids)
			if id != "none" && len(want) != 3 {
				t.Fatalf("the bucket holds %d blocks of %s, want 3 (one per 2h window)", len(want), id)
			}
			if !reflect.DeepEqual(ids, want) {
				t.Errorf("listed %v, the bucket holds %v", ids, want)
			}
		})
	}
}

func TestStatusTenants(t *testing.T) {
	f := newStatusFixture(t)
	ingested := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_remote_write_samples_ingested_total"}, []string{"tenant", "kind"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_remote_write_samples_rejected_total"}, []string{"tenant", "reason"})
	f.reg.MustRegister(ingested, rejected)
	ingested.WithLabelValues("a", "sample").Add(900)
	ingested.WithLabelValues("a", "exemplar").Add(3)
	rejected.WithLabelValues("a", "too_old").Add(2)
	rejected.WithLabelValues("a", "out_of_order").Add(1)
	ingested.WithLabelValues("b", "sample").Add(300)
	def := limits.Defaults()
	def.MaxActiveSeries = 1000
	o, err := limits.NewOverrides(def, limits.OverridesConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := tenant.ParseAuth([]byte("tenants:\n  a:\n    bearer_token: ta\n  b:\n    bearer_token: tb\n"))
	if err != nil {
		t.Fatal(err)
	}
	open := httptest.NewServer(New(Options{Tenants: tenant.Resolver{Default: "a"}, Store: f.store, Limits: o, Registerer: prometheus.NewRegistry(), Gatherer: f.reg}))
	t.Cleanup(open.Close)
	authed := httptest.NewServer(New(Options{Tenants: tenant.Resolver{Auth: auth}, Store: f.store, Limits: o, Registerer: prometheus.NewRegistry(), Gatherer: f.reg}))
	t.Cleanup(authed.Close)

	type answer struct {
		Time    float64      `json:"time"`
		Tenants []TenantInfo `json:"tenants"`
	}
	var got answer
	before := float64(time.Now().UnixMilli()) / 1000
	if code := getJSON(t, open, "/api/v1/status/tenants", "", &got); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if got.Time < before || got.Time > float64(time.Now().UnixMilli())/1000 {
		t.Errorf("time %v is not the time of the answer", got.Time)
	}
	if len(got.Tenants) != 4 || got.Tenants[0].Tenant != "a" || got.Tenants[1].Tenant != "b" || got.Tenants[2].Tenant != "c" || got.Tenants[3].Tenant != "d" {
		t.Fatalf("tenants %+v, want a, b, c and d", got.Tenants)
	}
	if d := got.Tenants[3]; !d.BucketOnly || d.Open || d.BucketBlocks != 3 || d.HeadSeries != 0 {
		t.Errorf("tenant d, in the bucket only: %+v", d)
	}
	for _, ti := range got.Tenants[:3] {
		if ti.BucketOnly {
			t.Errorf("tenant %s is on this store's disk, not in the bucket only", ti.Tenant)
		}
	}
	a := got.Tenants[0]
	// The flush cut a's whole head into blocks, all shipped.
	if !a.Open || a.HeadSeries != 0 || a.HeadMinTime != 0 || a.LocalBlocks != 3 || a.BucketBlocks != 3 || a.PendingBlocks != 0 || a.MaxActiveSeries != 1000 {
		t.Errorf("tenant a: %+v", a)
	}
	// (c's head may have cut its oldest window into a local block meanwhile:
	// it spans more than 1.5 block ranges.)
	if c := got.Tenants[2]; !c.Open || c.HeadSeries != 2 || c.HeadMinTime < f.start || c.HeadMaxTime <= c.HeadMinTime || c.BucketBlocks != 0 || len(c.Ingested) != 0 {
		t.Errorf("tenant c: %+v", c)
	}
	if !reflect.DeepEqual(a.Ingested, map[string]float64{"sample": 900, "exemplar": 3}) || !reflect.DeepEqual(a.Rejected, map[string]float64{"too_old": 2, "out_of_order": 1}) {
		t.Errorf("tenant a's counters: ingested %v, rejected %v", a.Ingested, a.Rejected)
	}
	if b := got.Tenants[1]; b.BucketBlocks != 3 || len(b.Rejected) != 0 || b.Ingested["sample"] != 300 {
		t.Errorf("tenant b: %+v", b)
	}

	// With tenant authentication, a tenant sees only itself.
	req, _ := http.NewRequest(http.MethodGet, authed.URL+"/api/v1/status/tenants", nil)
	req.Header.Set("Authorization", "Bearer tb")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"a"`) || !strings.Contains(string(body), `"tenant":"b"`) {
		t.Errorf("with authentication, tenant b got %d %s", resp.StatusCode, body)
	}
	if code := getJSON(t, authed, "/api/v1/status/tenants", "", nil); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", code)
	}
}

func TestStatusCompactor(t *testing.T) {
	f := newStatusFixture(t)
	var nilCompactor *compactor.Compactor
	tests := []struct {
		name    string
		comp    CompactorStatus
		run     bool
		enabled bool
		served  bool
	}{
		{name: "not wired", comp: nil},
		{name: "disabled", comp: nilCompactor, served: true},
		{name: "before its first pass", comp: f.comp, served: true, enabled: true},
		{name: "after a pass", comp: f.comp, run: true, served: true, enabled: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.run {
				if err := f.comp.RunOnce(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			srv := httptest.NewServer(New(Options{Tenants: tenant.Resolver{Default: "a"}, Store: f.store, Compactor: tc.comp, Registerer: prometheus.NewRegistry(), Gatherer: f.reg}))
			defer srv.Close()
			var got struct {
				Enabled  bool          `json:"enabled"`
				Passes   int           `json:"passes"`
				LastPass *CompactorRun `json:"lastPass"`
				Tenant   *CompactorRun `json:"tenant"`
			}
			code := getJSON(t, srv, "/api/v1/status/compactor", "b", &got)
			if !tc.served {
				if code != http.StatusNotFound {
					t.Fatalf("status %d, want 404 (Prometheus's router has no such path)", code)
				}
				return
			}
			if code != http.StatusOK || got.Enabled != tc.enabled {
				t.Fatalf("status %d, %+v", code, got)
			}
			if !tc.run {
				if got.LastPass != nil || got.Tenant != nil {
					t.Errorf("runs reported before any: %+v", got)
				}
				return
			}
			if got.Passes != 1 || got.LastPass == nil || got.LastPass.Error != "" || got.LastPass.End.Before(got.LastPass.Start) {
				t.Errorf("last pass: %+v", got)
			}
			if got.Tenant == nil || got.Tenant.Error != "" || got.Tenant.Skipped {
				t.Errorf("tenant b's run: %+v", got.Tenant)
			}
		})
	}
}

func TestStatusRuntimeInfoAndWALReplay(t *testing.T) {
	f := newStatusFixture(t)
	lastLoad := prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_rules_last_load_success_timestamp_seconds"})
	loadOK := prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_rules_last_load_successful"})
	f.reg.MustRegister(lastLoad, loadOK)
	lastLoad.Set(1700000000)
	loadOK.Set(1)
	def := limits.Defaults()
	def.RetentionRaw = model.Duration(48 * time.Hour)
	def.Retention1h = 0
	o, err := limits.NewOverrides(def, limits.OverridesConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{
		Tenants: tenant.Resolver{Default: "a"}, Store: f.store, Limits: o,
		Flags: map[string]string{"runtime.gogc": "75"}, Registerer: prometheus.NewRegistry(), Gatherer: f.reg,
	}))
	t.Cleanup(srv.Close)

	var info v1.RuntimeInfo
	if code := getJSON(t, srv, "/api/v1/status/runtimeinfo", "a", &info); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if info.GOMAXPROCS != runtime.GOMAXPROCS(0) || info.GoroutineCount == 0 || info.GOGC != "75" || info.CWD == "" || info.Hostname == "" {
		t.Errorf("runtime fields: %+v", info)
	}
	if info.StartTime.IsZero() || info.StartTime.After(time.Now()) || time.Since(info.ServerTime) > time.Minute {
		t.Errorf("start %v, server time %v", info.StartTime, info.ServerTime)
	}
	if !info.ReloadConfigSuccess || !info.LastConfigTime.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("reload: %v at %v", info.ReloadConfigSuccess, info.LastConfigTime)
	}
	if !strings.HasPrefix(info.StorageRetention, "raw: 2d, ") || !strings.HasSuffix(info.StorageRetention, "1h: forever") {
		t.Errorf("storage retention %q", info.StorageRetention)
	}
	loadOK.Set(0)
	if getJSON(t, srv, "/api/v1/status/runtimeinfo", "a", &info); info.ReloadConfigSuccess {
		t.Error("a failed last load of the rules is reported as a success")
	}

	type replay struct{ Min, Max, Current int }
	var r replay
	if code := getJSON(t, srv, "/api/v1/status/walreplay", "a", &r); code != http.StatusOK || r.Current != r.Max {
		t.Errorf("tenant a's replay, done: %d %+v", code, r)
	}
	if getJSON(t, srv, "/api/v1/status/walreplay", "never-written", &r); r != (replay{}) {
		t.Errorf("a tenant never opened: %+v", r)
	}
}

// TestWALReplayAfterRestart reopens a store whose tenant's WAL has a
// segment per earlier opening: the replay reported is the tenant's, done.
func TestWALReplayAfterRestart(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-time.Hour).UnixMilli()
	for run := range 3 {
		store, err := blocks.Open(blocks.Options{Dir: dir, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		app, err := store.Appender(context.Background(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.Append(0, labels.FromStrings("__name__", "m"), 0, start+int64(run)*1000, 1, nil, nil, storage.AppendV2Options{}); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
	}
	store, err := blocks.Open(blocks.Options{Dir: dir, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, ok := store.WALReplayStatus("a"); ok {
		t.Error("a replay reported before the tenant opened")
	}
	if store.DB("a") == nil {
		t.Fatal("tenant a has no TSDB after the restart")
	}
	s, ok := store.WALReplayStatus("a")
	if !ok || s.Max < 2 || s.Current != s.Max {
		t.Errorf("replay of a WAL written by three openings: min %d, max %d, current %d (%v)", s.Min, s.Max, s.Current, ok)
	}
}

func TestDetectorsAndAnomalyRules(t *testing.T) {
	rulesOf := map[string][]ruler.AnomalyRule{
		"a": {
			{Tenant: "a", File: "f.yml", Group: "g1", Name: "x", Expr: "up", Detector: "adaptive", Params: map[string]string{"k": "3"}, Series: 2, LastEvaluation: time.Unix(100, 0)},
			{Tenant: "a", File: "f.yml", Group: "g1", Name: "y", Expr: "down", Detector: "static", LastError: fmt.Errorf("boom")},
			{Tenant: "a", File: "f.yml", Group: "g2", Name: "z", Expr: "z", Detector: "surprise"},
		},
	}
	srv := httptest.NewServer(New(Options{
		Tenants:      tenant.Resolver{Default: "a"},
		AnomalyQuery: http.NotFoundHandler(),
		AnomalyRules: func(ctx context.Context) []ruler.AnomalyRule {
			id, _ := tenant.FromContext(ctx)
			return rulesOf[id]
		},
		Registerer: prometheus.NewRegistry(),
	}))
	t.Cleanup(srv.Close)

	var det struct {
		Default   string     `json:"default"`
		Detectors []Detector `json:"detectors"`
	}
	if code := getJSON(t, srv, "/api/v1/anomaly/detectors", "a", &det); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	names := map[string]Detector{}
	for _, d := range det.Detectors {
		names[d.Name] = d
	}
	if _, ok := names[det.Default]; !ok || len(names) < 5 {
		t.Errorf("default %q among %v", det.Default, det.Detectors)
	}
	if k := names["adaptive"].Params; len(k) == 0 || !strings.Contains(fmt.Sprint(k), "k") {
		t.Errorf("adaptive's parameters: %+v", k)
	}

	var got struct {
		Groups []AnomalyRuleGroup `json:"groups"`
	}
	if code := getJSON(t, srv, "/api/v1/anomaly/rules", "a", &got); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if len(got.Groups) != 2 || got.Groups[0].Name != "g1" || len(got.Groups[0].Rules) != 2 || got.Groups[1].Name != "g2" {
		t.Fatalf("groups: %+v", got.Groups)
	}
	x, y, z := got.Groups[0].Rules[0], got.Groups[0].Rules[1], got.Groups[1].Rules[0]
	if x.Health != "ok" || x.Series != 2 || x.Params["k"] != "3" || x.Type != "anomaly" || x.Query != "up" {
		t.Errorf("rule x: %+v", x)
	}
	if y.Health != "err" || y.LastError != "boom" {
		t.Errorf("rule y: %+v", y)
	}
	if z.Health != "unknown" || z.Params == nil {
		t.Errorf("rule z: %+v", z)
	}
	if code := getJSON(t, srv, "/api/v1/anomaly/rules", "b", &got); code != http.StatusOK || len(got.Groups) != 0 {
		t.Errorf("tenant b: %d %+v", code, got.Groups)
	}
}
