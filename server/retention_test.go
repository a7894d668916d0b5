package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/objstore/filesystem"
)

// TestTenantRetentionFromOverrides checks that the compactor the server
// builds keeps each tenant's data as long as its limits say, as the runtime
// overrides file says them at each run.
func TestTenantRetentionFromOverrides(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	bkt, err := filesystem.New(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	// Three days of one series per tenant, ending two days ago, through a
	// head, cut and shipped.
	store, err := blocks.Open(blocks.Options{Dir: filepath.Join(dir, "writer"), Bucket: bkt})
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(-48 * time.Hour)
	for _, id := range []string{"short", "long"} {
		app, err := store.Appender(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for ts := end.Add(-72 * time.Hour); ts.Before(end); ts = ts.Add(time.Minute) {
			if _, err := app.Append(0, labels.FromStrings("__name__", "up", "job", id), 0, ts.UnixMilli(), 1, nil, nil, storage.AppendV2Options{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(dir, "overrides.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("overrides: {short: {retention_raw: 1d}}")
	cfg, err := LoadConfig([]string{"-storage.path=" + dir, "-overrides.file=" + file, "-compactor.deletion-delay=1ms",
		// The blocks were written a moment ago; the grace is another test's.
		"-compactor.retention-grace=0s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	overrides, err := limits.NewOverrides(cfg.Limits, cfg.Overrides, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	comp, err := newCompactor(cfg, bkt, overrides, nil, nil, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	// oldestRaw returns the start of the tenant's oldest raw block left.
	oldestRaw := func(id string) time.Time {
		t.Helper()
		if err := comp.RunOnce(ctx); err != nil { // marks
			t.Fatal(err)
		}
		if err := comp.RunOnce(ctx); err != nil { // deletes
			t.Fatal(err)
		}
		inv, err := compactor.LoadInventory(ctx, bkt, id)
		if err != nil {
			t.Fatal(err)
		}
		oldest := time.Now()
		for _, m := range inv.Live {
			if at := time.UnixMilli(m.MinTime); m.Resolution() == blockmeta.ResRaw && at.Before(oldest) {
				oldest = at
			}
		}
		return oldest
	}
	if o := oldestRaw("short"); o.Before(time.Now().Add(-26 * time.Hour)) {
		t.Errorf("tenant short (raw retention 1d) keeps raw data from %s", o)
	}
	if o := oldestRaw("long"); o.After(end.Add(-71 * time.Hour)) {
		t.Errorf("tenant long (default raw retention 7d) lost raw data before %s", o)
	}
	// The file changes while Strata runs: the next run applies it.
	write("overrides: {short: {retention_raw: 1d}, long: {retention_raw: 1d}}")
	if _, err := overrides.Reload(); err != nil {
		t.Fatal(err)
	}
	if o := oldestRaw("long"); o.Before(time.Now().Add(-26 * time.Hour)) {
		t.Errorf("after the overrides changed, tenant long keeps raw data from %s", o)
	}
	// Whatever retention deleted, its 1m and 1h blocks hold.
	for _, id := range []string{"short", "long"} {
		inv, err := compactor.LoadInventory(ctx, bkt, id)
		if err != nil {
			t.Fatal(err)
		}
		levels, _ := compactor.LevelsFor(2 * time.Hour)
		if h := compactor.Holes(inv, levels, 4*time.Hour, compactor.DefaultRetention, time.Now()); len(h) > 0 {
			t.Errorf("tenant %s: %d coverage holes", id, len(h))
		}
		res := map[int64]int{}
		for _, m := range inv.Live {
			res[m.Resolution()]++
		}
		if res[blockmeta.Res1m] == 0 || res[blockmeta.Res1h] == 0 {
			t.Errorf("tenant %s: blocks by resolution %v, want 1m and 1h blocks", id, res)
		}
	}
}
