package blocks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/filesystem"
)

// runStore runs s's background work until the test ends or the returned
// function is called.
func runStore(t *testing.T, s *blocks.Store) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

// TestIdleTenantsClose: a tenant unused for the idle timeout has its head
// cut into blocks, shipped and its TSDB closed; its data stay readable (the
// read opens it again), and a restart leaves it closed until used, while a
// tenant open at the stop is opened again in the background.
func TestIdleTenantsClose(t *testing.T) {
	dir := t.TempDir()
	bkt, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	open := func(idle time.Duration) (*blocks.Store, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		// Shipping every 50ms, far more often than the idle timeout: the
		// store's own work is not use.
		s, err := blocks.Open(blocks.Options{Dir: dir, Bucket: objstore.Bucket(bkt), IdleTimeout: idle, ShipInterval: 50 * time.Millisecond, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		return s, reg
	}
	s, reg := open(300 * time.Millisecond)
	now := time.Now().UnixMilli()
	ls := labels.FromStrings("__name__", "m")
	appendSamples(t, s, "idle", ls, []sample{{now - 1000, 1}, {now, 2}})
	if got := testutil.RequireMetric(t, reg, "strata_tenants_open"); got != 1 {
		t.Fatalf("open tenants after a write: %v", got)
	}
	stop := runStore(t, s)
	testutil.Eventually(t, 30*time.Second, "the idle tenant to close", func() bool {
		_, err := os.Stat(filepath.Join(dir, "tenants", "idle", "closed"))
		return err == nil
	})
	if got := testutil.RequireMetric(t, reg, "strata_tenants_open"); got != 0 {
		t.Errorf("open tenants once the idle one closed: %v", got)
	}
	var shipped int
	_ = bkt.Iter(context.Background(), "idle/", func(string) error { shipped++; return nil }, false)
	if shipped == 0 {
		t.Errorf("the idle tenant's head was not shipped before it closed")
	}
	if got := readAll(t, s, "idle")[ls.String()]; len(got) != 2 {
		t.Errorf("samples of the closed tenant: %v, want 2", got)
	}
	// A tenant with samples in its head at the stop.
	stop()
	appendSamples(t, s, "busy", ls, []sample{{now, 3}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, reg = open(0)
	defer s.Close()
	if got := testutil.RequireMetric(t, reg, "strata_tenants"); got != 2 {
		t.Errorf("tenants known after a restart: %v, want 2", got)
	}
	if got := testutil.RequireMetric(t, reg, "strata_tenants_open"); got != 0 {
		t.Errorf("tenants open right after a restart: %v, want 0", got)
	}
	// A flush (before scaling down) ships the head of the tenant not yet
	// opened since the restart.
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var busyShipped int
	_ = bkt.Iter(context.Background(), "busy/", func(string) error { busyShipped++; return nil }, false)
	if busyShipped == 0 {
		t.Errorf("Flush did not ship the head of the tenant not yet opened")
	}
	runStore(t, s)
	testutil.Eventually(t, 30*time.Second, "the tenant open at the stop to open again", func() bool { return testutil.RequireMetric(t, reg, "strata_tenants_open") == 1 })
	if got := readAll(t, s, "idle")[ls.String()]; len(got) != 2 {
		t.Errorf("samples of the closed tenant after a restart: %v, want 2", got)
	}
	if got := readAll(t, s, "busy")[ls.String()]; len(got) != 1 {
		t.Errorf("samples of the other tenant after a restart: %v, want 1", got)
	}
}

// TestTenantLimit: beyond MaxTenants a new tenant's write fails with a
// limits.Error and leaves no directory; existing tenants, and tenants
// always admitted, still write.
func TestTenantLimit(t *testing.T) {
	dir := t.TempDir()
	s, err := blocks.Open(blocks.Options{Dir: dir, MaxTenants: 2, AlwaysAdmit: func(id string) bool { return id == "vip" }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ls := labels.FromStrings("__name__", "m")
	appendSamples(t, s, "a", ls, []sample{{1000, 1}})
	appendSamples(t, s, "b", ls, []sample{{1000, 1}})
	_, err = s.Appender(context.Background(), "c")
	var le *limits.Error
	if !errors.As(err, &le) || le.Limit != "max_tenants" {
		t.Fatalf("third tenant: %v, want the max_tenants limit", err)
	}
	if err := s.SetMetadata("c", "m", metadata.Metadata{Type: model.MetricTypeCounter}); !errors.As(err, &le) {
		t.Errorf("metadata of a refused tenant: %v, want the max_tenants limit", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tenants", "c")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused tenant left %v on disk", err)
	}
	appendSamples(t, s, "a", ls, []sample{{2000, 2}})
	appendSamples(t, s, "vip", ls, []sample{{1000, 1}})
	if got := len(readAll(t, s, "c")); got != 0 {
		t.Errorf("the refused tenant has %d series", got)
	}
}

// TestBrokenTenantDoesNotStopTheStore: a tenant whose TSDB cannot open
// neither fails the store's opening nor other tenants; it answers
// ErrTenantUnavailable, is counted, and is retried until it opens.
func TestBrokenTenantDoesNotStopTheStore(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ls := labels.FromStrings("__name__", "m")
	appendSamples(t, s, "good", ls, []sample{{1000, 1}})
	appendSamples(t, s, "broken", ls, []sample{{1000, 1}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The broken tenant's WAL directory is a file: its TSDB cannot open.
	wal := filepath.Join(dir, "tenants", "broken", "wal")
	if err := os.Rename(wal, wal+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wal, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := blocks.Open(blocks.Options{Dir: dir, Registerer: reg})
	if err != nil {
		t.Fatalf("the store failed to open because of one tenant: %v", err)
	}
	defer s.Close()
	runStore(t, s)
	if got := readAll(t, s, "good")[ls.String()]; len(got) != 1 {
		t.Errorf("samples of the good tenant: %v", got)
	}
	appendSamples(t, s, "good", ls, []sample{{2000, 2}})
	testutil.Eventually(t, 30*time.Second, "the broken tenant's failure to be reported", func() bool {
		return testutil.RequireMetric(t, reg, "strata_tenants_unavailable") == 1 && testutil.RequireMetric(t, reg, "strata_tenant_open_failures_total") >= 1
	})
	if _, err := s.Appender(context.Background(), "broken"); !errors.Is(err, blocks.ErrTenantUnavailable) {
		t.Errorf("write to the broken tenant: %v, want ErrTenantUnavailable", err)
	}
	// Repaired, it opens at a retry, without a restart.
	if err := os.Remove(wal); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(wal+".away", wal); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the repaired tenant to open", func() bool { return testutil.RequireMetric(t, reg, "strata_tenants_unavailable") == 0 })
	if got := readAll(t, s, "broken")[ls.String()]; len(got) != 1 {
		t.Errorf("samples of the repaired tenant: %v", got)
	}
}

// TestMemoryPerIdleTenant reports the heap a tenant with one series costs
// while open (its head's structures), and after it is closed as idle.
func TestMemoryPerIdleTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 100 tenants")
	}
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	s, err := blocks.Open(blocks.Options{Dir: dir, MaxExemplars: 100000, IdleTimeout: 100 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	const n = 100
	before := heap()
	ls := labels.FromStrings("__name__", "m")
	for i := range n {
		appendSamples(t, s, "t"+string(rune('a'+i/26))+string(rune('a'+i%26)), ls, []sample{{1000, 1}})
	}
	open := heap()
	runStore(t, s)
	testutil.Eventually(t, 30*time.Second, "every tenant to close", func() bool {
		markers, _ := filepath.Glob(filepath.Join(dir, "tenants", "*", "closed"))
		return len(markers) == n
	})
	closed := heap()
	t.Logf("heap per tenant: %.0f KiB open, %.0f KiB closed", float64(open-before)/n/1024, float64(max(closed, before)-before)/n/1024)
	if perTenant := (open - before) / n; perTenant > 1<<20 {
		t.Errorf("an open tenant with one series costs %d bytes of heap", perTenant)
	}
}

// TestPendingTenantsSettleAfterRestart: tenants whose heads held samples at
// a stop (all of them after an upgrade from a store without markers) are
// opened in the background one at a time, their heads cut into blocks and
// shipped, and closed again once unused.
func TestPendingTenantsSettleAfterRestart(t *testing.T) {
	dir := t.TempDir()
	bkt, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	ls := labels.FromStrings("__name__", "m")
	now := time.Now().UnixMilli()
	ids := []string{"p1", "p2", "p3", "p4", "p5"}
	for _, id := range ids {
		appendSamples(t, s, id, ls, []sample{{now, 1}})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err = blocks.Open(blocks.Options{Dir: dir, Bucket: objstore.Bucket(bkt), IdleTimeout: 300 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runStore(t, s)
	testutil.Eventually(t, 30*time.Second, "every pending tenant to be flushed and closed", func() bool {
		markers, _ := filepath.Glob(filepath.Join(dir, "tenants", "*", "closed"))
		return len(markers) == len(ids)
	})
	if got := testutil.RequireMetric(t, reg, "strata_tenants_open"); got != 0 {
		t.Errorf("%v tenants open once settled", got)
	}
	for _, id := range ids {
		var shipped int
		_ = bkt.Iter(context.Background(), id+"/", func(string) error { shipped++; return nil }, false)
		if shipped == 0 {
			t.Errorf("tenant %s's head was not shipped", id)
		}
		if got := readAll(t, s, id)[ls.String()]; len(got) != 1 {
			t.Errorf("samples of %s: %v", id, got)
		}
	}
}

// TestTenantResumesAfterIdleClose: a tenant closed while idle (its head cut
// into blocks) takes new samples when it resumes, in the same block range,
// without an out-of-order window: the flush ends at its newest sample, not at
// the end of the block range.
func TestTenantResumesAfterIdleClose(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s, err := blocks.Open(blocks.Options{Dir: dir, IdleTimeout: 200 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ls := labels.FromStrings("__name__", "m")
	now := time.Now().UnixMilli()
	appendSamples(t, s, "r", ls, []sample{{now - 1000, 1}, {now, 2}})
	runStore(t, s)
	testutil.Eventually(t, 30*time.Second, "the idle tenant to close", func() bool {
		_, err := os.Stat(filepath.Join(dir, "tenants", "r", "closed"))
		return err == nil
	})
	appendSamples(t, s, "r", ls, []sample{{now + 1000, 3}})
	if got := readAll(t, s, "r")[ls.String()]; len(got) != 3 {
		t.Errorf("samples after resuming: %v, want 3", got)
	}
}
