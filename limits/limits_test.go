package limits

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/strata-tsdb/strata/internal/testutil"
)

func TestFlagsAndYAMLShareOneDefinition(t *testing.T) {
	var l Limits
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	l.RegisterFlags(fs)
	if err := fs.Parse([]string{"-limits.ingestion-rate=5", "-limits.max-query-length=1h"}); err != nil {
		t.Fatal(err)
	}
	m, err := ParseOverrides([]byte("overrides:\n  a: {ingestion_rate: 7}\n  b: {}\n"), l)
	if err != nil {
		t.Fatal(err)
	}
	if m["a"].IngestionRate != 7 || time.Duration(m["a"].MaxQueryLength) != time.Hour {
		t.Errorf("a = %+v: want ingestion_rate 7 and the default max_query_length 1h", *m["a"])
	}
	if m["b"].IngestionRate != 5 || m["b"].IngestionBurst != 200000 {
		t.Errorf("b = %+v, want the defaults", *m["b"])
	}
}

func TestParseOverridesErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "overrides: {a: {ingestion_rte: 1}}", "ingestion_rte"},
		{"bad tenant", "overrides: {'../x': {ingestion_rate: 1}}", "tenant"},
		{"negative", "overrides: {a: {max_active_series: -1}}", "negative"},
		{"not yaml", "overrides: [", "parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOverrides([]byte(tc.yaml), Defaults())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestOverridesFileIsPolled: a change of the file takes effect without a
// restart, and a broken file keeps the previous overrides.
func TestOverridesFileIsPolled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.yaml")
	// The file is replaced by a rename, so that a reload never reads it
	// half written.
	write := func(s string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("overrides: {a: {ingestion_rate: 10}}")
	reg := prometheus.NewPedanticRegistry()
	o, err := NewOverrides(Defaults(), OverridesConfig{File: path, ReloadPeriod: 0}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	o.period = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if o.For("a").IngestionRate != 10 || o.For("b").IngestionRate != 0 {
		t.Fatalf("initial overrides wrong")
	}
	write("overrides: {a: {ingestion_rate: 20}, b: {ingestion_rate: 30}}")
	testutil.Eventually(t, 5*time.Second, "the new file to apply", func() bool {
		return o.For("a").IngestionRate == 20 && o.For("b").IngestionRate == 30
	})
	if got := testutil.RequireMetric(t, reg, "strata_overrides_tenants"); got != 2 {
		t.Errorf("strata_overrides_tenants %v after loading two tenants, want 2", got)
	}
	// A broken file is read (a failed reload is counted) and keeps the
	// previous overrides.
	failures := testutil.Metric(t, reg, "strata_overrides_reloads_total", "result", "failure")
	write("overrides: {a: {ingestion_rate: oops}}")
	testutil.Eventually(t, 5*time.Second, `a reload of the broken file to fail (strata_overrides_reloads_total{result="failure"} to grow, strata_overrides_last_reload_successful 0)`, func() bool {
		return testutil.Metric(t, reg, "strata_overrides_reloads_total", "result", "failure") > failures &&
			testutil.RequireMetric(t, reg, "strata_overrides_last_reload_successful") == 0
	})
	if o.For("a").IngestionRate != 20 {
		t.Errorf("a broken file replaced the overrides")
	}
	write("overrides: {}")
	testutil.Eventually(t, 5*time.Second, "the emptied file to apply (strata_overrides_last_reload_successful 1 again)", func() bool {
		return o.For("a").IngestionRate == 0 && testutil.RequireMetric(t, reg, "strata_overrides_last_reload_successful") == 1
	})
}

func TestSeriesTracker(t *testing.T) {
	o, err := NewOverrides(Limits{MaxActiveSeries: 3, MaxActiveSeriesPerMetric: 2}, OverridesConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewSeriesLimiter(o, prometheus.NewPedanticRegistry()).Tracker("a")
	s := func(name, v string) labels.Labels { return labels.FromStrings("__name__", name, "v", v) }
	// Before it is armed (WAL replay), nothing is refused.
	for _, ls := range []labels.Labels{s("x", "1"), s("x", "2"), s("x", "3")} {
		if err := tr.PreCreation(ls); err != nil {
			t.Fatalf("unarmed tracker refused %s: %v", ls, err)
		}
		tr.PostCreation(ls)
	}
	tr.Arm()
	if err := tr.PreCreation(s("y", "1")); err == nil || !strings.Contains(err.Error(), "max_active_series") {
		t.Errorf("over the tenant limit: %v", err)
	}
	tr.PostDeletion(map[chunks.HeadSeriesRef]labels.Labels{1: s("x", "1")})
	if err := tr.PreCreation(s("y", "1")); err != nil {
		t.Errorf("under both limits: %v", err)
	}
	if err := tr.PreCreation(s("x", "4")); err == nil || !strings.Contains(err.Error(), "max_active_series_per_metric") {
		t.Errorf("over the metric limit: %v", err)
	}
	if tr.Active() != 2 || tr.ActiveForMetric("x") != 2 {
		t.Errorf("active %d, x %d; want 2, 2", tr.Active(), tr.ActiveForMetric("x"))
	}
}

func TestLocalLimit(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		limit, rf, ingesters, want int
	}{
		{"no limit stays none", 0, 3, 6, 0},
		{"as many ingesters as replicas: whole", 1000, 3, 3, 1000},
		{"fewer ingesters than replicas: whole", 1000, 3, 2, 1000},
		{"ring not seen yet: whole", 1000, 3, 0, 1000},
		{"four ingesters", 1000, 3, 4, 750},
		{"six ingesters", 1000, 3, 6, 500},
		{"rounded down", 1000, 3, 7, 428},
		{"replication factor 1", 1000, 1, 4, 250},
		{"at least one series", 1, 3, 100, 1},
		{"no overflow", 1 << 40, 3, 4, 3 << 38},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LocalLimit(tc.limit, tc.rf, tc.ingesters); got != tc.want {
				t.Errorf("LocalLimit(%d, %d, %d) = %d, want %d", tc.limit, tc.rf, tc.ingesters, got, tc.want)
			}
		})
	}
}

// TestSharedSeriesTracker checks that an ingester of a cluster enforces its
// share of the tenant's limits, following the healthy ingesters as the ring
// changes, and says so when it refuses a series.
func TestSharedSeriesTracker(t *testing.T) {
	o, err := NewOverrides(Limits{MaxActiveSeries: 8, MaxActiveSeriesPerMetric: 4}, OverridesConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ingesters atomic.Int64
	ingesters.Store(6)
	tr := NewSharedSeriesLimiter(o, prometheus.NewPedanticRegistry(), 3, func() int { return int(ingesters.Load()) }).Tracker("a")
	tr.Arm()
	create := func(name string, i int) error {
		ls := labels.FromStrings("__name__", name, "i", fmt.Sprint(i))
		if err := tr.PreCreation(ls); err != nil {
			return err
		}
		tr.PostCreation(ls)
		return nil
	}
	// Six ingesters: 8 × 3 / 6 = 4 series, 4 × 3 / 6 = 2 of one metric.
	for i := range 2 {
		if err := create("x", i); err != nil {
			t.Fatalf("series %d of x under the shares: %v", i, err)
		}
	}
	err = create("x", 2)
	if err == nil || !strings.Contains(err.Error(), "max_active_series_per_metric") ||
		!strings.Contains(err.Error(), "cluster's limit of 4 (4 × 3 replicas / 6 healthy ingesters)") {
		t.Errorf("third series of x with a share of 2: %v", err)
	}
	for i := range 2 {
		if err := create("y", i); err != nil {
			t.Fatalf("series %d of y under the shares: %v", i, err)
		}
	}
	err = create("z", 0)
	if err == nil || !strings.Contains(err.Error(), "tenant has 4 active series in this ingester") ||
		!strings.Contains(err.Error(), "(limit max_active_series)") {
		t.Errorf("fifth series with a share of 4: %v", err)
	}
	// An ingester fewer: the share grows to 8 × 3 / 5 = 4 (rounded down),
	// then with three ingesters to the whole limit.
	ingesters.Store(5)
	if err := create("z", 0); err == nil {
		t.Error("fifth series with a share of 4 (five ingesters) accepted")
	}
	ingesters.Store(3)
	for i := range 4 {
		if err := create("z", i); err != nil {
			t.Fatalf("series %d of z with the whole limit: %v", i, err)
		}
	}
	if err := create("w", 0); err == nil || !strings.Contains(err.Error(), "tenant has 8 active series") {
		t.Errorf("ninth series with the whole limit of 8: %v", err)
	}
	if tr.Active() != 8 {
		t.Errorf("active %d, want 8", tr.Active())
	}
}

func TestRateLimitersFollowOverrides(t *testing.T) {
	o, err := NewOverrides(Limits{IngestionRate: 10, IngestionBurst: 10}, OverridesConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRateLimiters(o)
	now := time.Unix(1000, 0)
	if !r.AllowN("a", now, 10) || r.AllowN("a", now, 1) {
		t.Fatal("burst of 10 not enforced")
	}
	if !r.AllowN("a", now.Add(time.Second), 10) {
		t.Error("10 tokens not refilled after 1s at 10/s")
	}
	if !r.AllowN("b", now, 10) {
		t.Error("tenant b shares a's bucket")
	}
	m := map[string]*Limits{"a": {IngestionRate: 100, IngestionBurst: 100}}
	o.tenants.Store(&m)
	// The bucket keeps its 10 tokens across the change, then fills at the new rate.
	if r.AllowN("a", now.Add(2*time.Second), 100) {
		t.Error("tokens appeared with the change of limits")
	}
	if !r.AllowN("a", now.Add(3*time.Second), 100) {
		t.Error("new rate and burst of 100 not applied")
	}
}

// TestSharedRateLimiters checks that each of n processes sharing a tenant's
// rate allows 1/n of it, with the whole burst, and follows n as it changes.
func TestSharedRateLimiters(t *testing.T) {
	o, err := NewOverrides(Limits{IngestionRate: 100, IngestionBurst: 100}, OverridesConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		share        int
		perSecond    int // samples allowed per second after the burst
		notPerSecond int
	}{
		{share: 0, perSecond: 100, notPerSecond: 101},
		{share: 1, perSecond: 100, notPerSecond: 101},
		{share: 4, perSecond: 25, notPerSecond: 26},
	} {
		t.Run(fmt.Sprint(tc.share), func(t *testing.T) {
			r := NewSharedRateLimiters(o, func() int { return tc.share })
			now := time.Unix(1000, 0)
			if !r.AllowN("a", now, 100) || r.AllowN("a", now, 1) {
				t.Fatal("the whole burst of 100 not allowed once")
			}
			if r.AllowN("a", now.Add(time.Second), tc.notPerSecond) {
				t.Errorf("%d samples allowed 1s after the burst, want at most %d", tc.notPerSecond, tc.perSecond)
			}
			if !r.AllowN("a", now.Add(time.Second), tc.perSecond) {
				t.Errorf("%d samples refused 1s after the burst", tc.perSecond)
			}
		})
	}
	// One process of two, then alone: its part of the rate doubles.
	n := 2
	r := NewSharedRateLimiters(o, func() int { return n })
	now := time.Unix(2000, 0)
	r.AllowN("b", now, 100)
	if r.AllowN("b", now.Add(time.Second), 51) {
		t.Error("more than half the rate allowed with two processes")
	}
	n = 1
	if !r.AllowN("b", now.Add(2*time.Second), 100) {
		t.Error("the whole rate refused once alone")
	}
}
