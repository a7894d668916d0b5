package compactor_test

import (
	"context"
	"errors"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/filesystem"
)

func fsBucket(t *testing.T) objstore.Bucket {
	t.Helper()
	b, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLockedTenantIsSkipped checks that a tenant locked by another live
// compactor is left alone, and taken over once the lock expires.
func TestLockedTenantIsSkipped(t *testing.T) {
	bkt := fsBucket(t)
	d := newTestData()
	d.backfill(t, bkt, "team", d.end.Add(-1*day), d.end, 2*time.Hour)
	now := d.end.Add(5 * time.Hour)
	lock := `{"owner":"other","expires":` + itoa(now.Add(time.Hour).UnixMilli()) + `}`
	if err := bkt.Upload(context.Background(), "team/compactor-lock.json", strings.NewReader(lock)); err != nil {
		t.Fatal(err)
	}
	run := func(at time.Time) {
		c, err := compactor.New(compactor.Options{Bucket: bkt, Dir: t.TempDir(), Owner: "me", Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	run(now)
	if _, err := blockmeta.ReadIndex(context.Background(), bkt, "team"); !bkt.IsNotFound(err) {
		t.Fatalf("a locked tenant was compacted (index: %v)", err)
	}
	run(now.Add(2 * time.Hour)) // the other compactor's lock expired
	ix, err := blockmeta.ReadIndex(context.Background(), bkt, "team")
	if err != nil {
		t.Fatalf("tenant not compacted after the lock expired: %v", err)
	}
	if len(ix.Blocks) != 3 { // 1 day: 24h raw block, its 1m and 1h blocks
		t.Fatalf("index holds %d blocks, want 3", len(ix.Blocks))
	}
	if ok, _ := bkt.Exists(context.Background(), "team/compactor-lock.json"); ok {
		t.Fatal("lock not released")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRepairAfterCrash recreates what a compactor that crashed leaves
// behind: a merged block uploaded while its sources are not yet marked, and
// a half-uploaded block. The next run marks the duplicates and deletes the
// partial upload, and no data is served twice.
func TestRepairAfterCrash(t *testing.T) {
	bkt := fsBucket(t)
	d := newTestData()
	ctx := context.Background()
	d.backfill(t, bkt, "team", d.end.Add(-12*time.Hour), d.end, 2*time.Hour)
	now := d.end.Add(5 * time.Hour)

	// A full run merges the six 2h blocks into one 12h block; then put the
	// sources back unmarked, as if the run had crashed before marking them.
	c, _ := compactor.New(compactor.Options{Bucket: bkt, Dir: t.TempDir(), Levels: []time.Duration{2 * time.Hour, 12 * time.Hour}, Now: func() time.Time { return now }})
	if err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	inv, err := compactor.LoadInventory(ctx, bkt, "team")
	if err != nil {
		t.Fatal(err)
	}
	if raw(inv) != 1 || len(inv.Live) != 3 || len(inv.Marks) != 6 {
		t.Fatalf("after the merge: %d live (%d raw), %d marked; want 3 (12h raw, 1m, 1h) and 6", len(inv.Live), raw(inv), len(inv.Marks))
	}
	for u := range inv.Marks {
		if err := bkt.Delete(ctx, path.Join("team", u.String(), compactor.DeletionMarkFile)); err != nil {
			t.Fatal(err)
		}
	}
	partial := ulid.MustNew(ulid.Timestamp(d.end.Add(-24*time.Hour)), strings.NewReader(strings.Repeat("p", 16)))
	if err := bkt.Upload(ctx, path.Join("team", partial.String(), "index"), strings.NewReader("half")); err != nil {
		t.Fatal(err)
	}

	if err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	inv, err = compactor.LoadInventory(ctx, bkt, "team")
	if err != nil {
		t.Fatal(err)
	}
	if raw(inv) != 1 || len(inv.Live) != 3 || len(inv.Marks) != 6 {
		t.Fatalf("after repair: %d live (%d raw), %d marked; want 3 and 6", len(inv.Live), raw(inv), len(inv.Marks))
	}
	if len(inv.Partial) != 0 {
		t.Fatalf("partial upload not cleaned: %v", inv.Partial)
	}
	for _, m := range inv.Live {
		if m.Resolution() == blockmeta.ResRaw && m.MaxTime-m.MinTime != (12*time.Hour).Milliseconds() {
			t.Fatalf("the surviving block spans %v, want the 12h merged block", time.Duration(m.MaxTime-m.MinTime)*time.Millisecond)
		}
	}
}

func raw(inv *compactor.Inventory) int {
	n := 0
	for _, m := range inv.Live {
		if m.Resolution() == blockmeta.ResRaw {
			n++
		}
	}
	return n
}

// TestOnlyOwnedTenantsCompacted: a compactor whose Owned gives it some
// tenants compacts those and leaves the others untouched; a failing Owned
// (not in the ring) fails the pass and touches nothing.
func TestOnlyOwnedTenantsCompacted(t *testing.T) {
	tests := []struct {
		name      string
		owned     func() (func(string) bool, error)
		wantIndex map[string]bool
		wantErr   bool
	}{
		{"no sharding compacts all", nil, map[string]bool{"team-a": true, "team-b": true}, false},
		{"owns team-a", func() (func(string) bool, error) {
			return func(id string) bool { return id == "team-a" }, nil
		}, map[string]bool{"team-a": true, "team-b": false}, false},
		{"owns none", func() (func(string) bool, error) {
			return func(string) bool { return false }, nil
		}, map[string]bool{"team-a": false, "team-b": false}, false},
		{"not in the ring", func() (func(string) bool, error) {
			return nil, errors.New("not a healthy member")
		}, map[string]bool{"team-a": false, "team-b": false}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bkt := fsBucket(t)
			d := newTestData()
			for id := range tc.wantIndex {
				d.backfill(t, bkt, id, d.end.Add(-1*day), d.end, 2*time.Hour)
			}
			reg := prometheus.NewRegistry()
			c, err := compactor.New(compactor.Options{Bucket: bkt, Dir: t.TempDir(), Owned: tc.owned, Registerer: reg,
				Now: func() time.Time { return d.end.Add(5 * time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.RunOnce(context.Background()); (err != nil) != tc.wantErr {
				t.Fatalf("RunOnce: %v, want error: %v", err, tc.wantErr)
			}
			owned := 0
			for id, want := range tc.wantIndex {
				_, err := blockmeta.ReadIndex(context.Background(), bkt, id)
				if got := err == nil; got != want {
					t.Errorf("%s compacted: %v, want %v (%v)", id, got, want, err)
				}
				if runs := testutil.Metric(t, reg, "strata_compactor_runs_total", "tenant", id); (runs > 0) != want {
					t.Errorf("%s: %v runs", id, runs)
				}
				if want {
					owned++
				}
			}
			if !tc.wantErr {
				if got := testutil.Metric(t, reg, "strata_compactor_tenants_owned"); got != float64(owned) {
					t.Errorf("strata_compactor_tenants_owned = %v, want %d", got, owned)
				}
			}
		})
	}
}
