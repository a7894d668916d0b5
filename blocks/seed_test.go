package blocks

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/objstore/filesystem"
)

// seedBlock writes a block of a few counters, as a compactor's output, and
// uploads it to bkt for tenant "team" with the compactor's meta.
func seedBlock(t *testing.T, bkt *filesystem.Bucket, start int64) (string, *blockmeta.Meta) {
	t.Helper()
	blockDir := testutil.WriteBlock(t, 2*time.Hour, func(app storage.Appender) error {
		for s := range 3 {
			ls := labels.FromStrings("__name__", "requests_total", "instance", fmt.Sprint("host-", s))
			for i := range 240 {
				if _, err := app.Append(0, ls, start+int64(i)*15000, float64(i*(s+1))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	m, err := blockmeta.ReadDir(blockDir)
	if err != nil {
		t.Fatal(err)
	}
	m.Strata = &blockmeta.Ext{Source: blockmeta.SourceCompactor}
	if err := blockmeta.Upload(context.Background(), bkt, "team", blockDir, m); err != nil {
		t.Fatal(err)
	}
	return blockDir, m
}

// blockFiles returns the content of every file of the block in dir, by
// relative path.
func blockFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// samplesOf reads every sample of the block.
func samplesOf(t *testing.T, blk *tsdb.Block) map[string][]float64 {
	t.Helper()
	q, err := tsdb.NewBlockQuerier(blk, blk.MinTime(), blk.MaxTime())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string][]float64{}
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for set.Next() {
		s := set.At()
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			_, v := it.At()
			out[s.Labels().String()] = append(out[s.Labels().String()], v)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSeedBlock: a block the compactor uploaded and handed to the cache is
// found there by the first query (no download), with exactly the files and
// samples a download gives; seeding twice, or a block already cached, is a
// no-op; and a failed seed leaves the block to be downloaded.
func TestSeedBlock(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	newCache := func() (*blockCache, *storeMetrics) {
		m := newStoreMetrics(prometheus.NewRegistry())
		c, err := newBlockCache(t.TempDir(), 1<<30, bkt, slog.New(slog.DiscardHandler), m)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c, m
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	dir, meta := seedBlock(t, bkt, start)

	seeded, sm := newCache()
	if err := seeded.Seed("team", meta, dir); err != nil {
		t.Fatal(err)
	}
	if err := seeded.Seed("team", meta, dir); err != nil {
		t.Fatal(err)
	}
	if got := promtestutil.ToFloat64(sm.cacheSeeds); got != 1 {
		t.Errorf("seeds: %v, want 1 (the second is a no-op)", got)
	}
	// The compactor removes its copy once it has handed the block over.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	e, err := seeded.Acquire(ctx, "team", meta.ULID)
	if err != nil {
		t.Fatal(err)
	}
	defer seeded.Release(e)
	if hits, misses := promtestutil.ToFloat64(sm.cacheHits), promtestutil.ToFloat64(sm.cacheMisses); hits != 1 || misses != 0 {
		t.Errorf("first query after the seed: %v hits, %v misses; want 1 hit and no download", hits, misses)
	}

	downloaded, dm := newCache()
	d, err := downloaded.Acquire(ctx, "team", meta.ULID)
	if err != nil {
		t.Fatal(err)
	}
	defer downloaded.Release(d)
	if got := promtestutil.ToFloat64(dm.cacheMisses); got != 1 {
		t.Fatalf("downloads into the second cache: %v, want 1", got)
	}
	sf, df := blockFiles(t, e.block.Dir()), blockFiles(t, d.block.Dir())
	if len(sf) != len(df) {
		t.Errorf("seeded block has files %d, downloaded %d", len(sf), len(df))
	}
	for name, b := range df {
		if sf[name] != b {
			t.Errorf("file %s of the seeded block differs from the downloaded one", name)
		}
	}
	ss, ds := samplesOf(t, e.block), samplesOf(t, d.block)
	if len(ss) != 3 || fmt.Sprint(ss) != fmt.Sprint(ds) {
		t.Errorf("samples of the seeded block %v, of the downloaded one %v", ss, ds)
	}

	// A seed that fails (its directory is gone) leaves no trace: the block
	// downloads on first use.
	other, om := newCache()
	dir2, meta2 := seedBlock(t, bkt, start+(2*time.Hour).Milliseconds())
	if err := os.RemoveAll(dir2); err != nil {
		t.Fatal(err)
	}
	if err := other.Seed("team", meta2, dir2); err == nil {
		t.Fatal("seeding from a missing directory succeeded")
	}
	o, err := other.Acquire(ctx, "team", meta2.ULID)
	if err != nil {
		t.Fatalf("acquire after a failed seed: %v", err)
	}
	other.Release(o)
	if got := promtestutil.ToFloat64(om.cacheMisses); got != 1 {
		t.Errorf("downloads after a failed seed: %v, want 1", got)
	}
	if got := len(samplesOf(t, o.block)); got != 3 {
		t.Errorf("series of the block downloaded after a failed seed: %d, want 3", got)
	}
}
