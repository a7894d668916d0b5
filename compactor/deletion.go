package compactor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
)

// reasonDeletedSeries is the reason of the marks of blocks rewritten
// without the data of a deletion request.
const reasonDeletedSeries = "deleted-series"

// applyDeletions rewrites every live block, of any resolution, that holds
// data of the tenant's deletion requests, without it (Prometheus's TSDB
// compactor writing the block through the requests' tombstones), uploads
// the new block with the old one's sources, level and resolution, then
// marks the old one. A block each request has checked is never read again
// for it.
func (t *tenantRun) applyDeletions(ctx context.Context) error {
	reqs, err := blockmeta.ReadDeletions(ctx, t.c.o.Bucket, t.id)
	if err != nil {
		return err
	}
	t.deletions, t.deletionsChanged = reqs, map[string]bool{}
	if len(reqs) == 0 {
		return nil
	}
	for _, id := range t.sortedLive() {
		m, ok := t.live[id]
		if !ok {
			continue
		}
		var todo []*blockmeta.DeletionRequest
		for _, r := range reqs {
			if !r.IsChecked(id) && r.Overlaps(m.MinTime, m.MaxTime, m.Resolution()) {
				todo = append(todo, r)
			}
		}
		if len(todo) == 0 {
			continue
		}
		written, err := t.rewrite(ctx, m, todo)
		if err != nil {
			return fmt.Errorf("rewrite block %s without deleted series: %w", id, err)
		}
		for _, r := range todo {
			r.Checked = append(r.Checked, id)
			t.deletionsChanged[r.ID] = true
		}
		if written != nil {
			t.derived([]*blockmeta.Meta{m}, *written)
		}
	}
	return nil
}

// rewrite writes block m without the data of reqs, uploads it and marks m;
// nil when m holds none of it. A block left empty is only marked.
func (t *tenantRun) rewrite(ctx context.Context, m *blockmeta.Meta, reqs []*blockmeta.DeletionRequest) (*ulid.ULID, error) {
	dir, err := t.download(ctx, m.ULID)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	blk, err := tsdb.OpenBlock(t.c.logger, dir, nil, nil)
	if err != nil {
		return nil, err
	}
	defer blk.Close()
	ir, err := blk.Index()
	if err != nil {
		return nil, err
	}
	stones, n, err := blockmeta.Tombstones(ctx, ir, m.Resolution(), reqs)
	_ = ir.Close()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	if err := blockmeta.AddOwnTombstones(stones, blk); err != nil {
		return nil, err
	}
	out := filepath.Join(t.work, "rewrite")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, t.c.logger, []int64{t.c.o.Levels[0].Milliseconds()}, nil, tsdb.LeveledCompactorOptions{})
	if err != nil {
		return nil, err
	}
	base := m.BlockMeta
	ids, err := comp.Write(out, blockmeta.WithTombstones(blk, stones), m.MinTime, m.MaxTime, &base)
	if err != nil {
		return nil, err
	}
	var written *ulid.ULID
	for _, id := range ids {
		nm, err := blockmeta.ReadDir(filepath.Join(out, id.String()))
		if err != nil {
			return nil, err
		}
		// The new block holds the same raw data less the deleted: readers
		// and the compactor tell what it holds by its sources.
		nm.Compaction.Sources = slices.Clone(m.Compaction.Sources)
		if len(nm.Compaction.Sources) == 0 {
			nm.Compaction.Sources = []ulid.ULID{m.ULID}
		}
		nm.Compaction.Level = m.Compaction.Level
		nm.Compaction.Hints = slices.Clone(m.Compaction.Hints)
		if m.Strata != nil {
			ext := *m.Strata
			nm.Strata = &ext
		}
		if err := t.upload(ctx, filepath.Join(out, id.String()), nm); err != nil {
			return nil, err
		}
		written = &nm.ULID
	}
	if err := t.mark(ctx, m.ULID, reasonDeletedSeries); err != nil {
		return nil, err
	}
	t.c.logger.Info("block rewritten without deleted series", "tenant", t.id, "block", m.ULID, "new", written, "series", n, "resolution", resName(m.Resolution()))
	return written, nil
}

// derived records that block out was written from blocks in alone: a
// request that checked each of them, or does not overlap it, has nothing
// to delete in out either.
func (t *tenantRun) derived(in []*blockmeta.Meta, out ulid.ULID) {
	for _, r := range t.deletions {
		all := true
		for _, m := range in {
			all = all && (r.IsChecked(m.ULID) || !r.Overlaps(m.MinTime, m.MaxTime, m.Resolution()))
		}
		if all {
			r.Checked = append(r.Checked, out)
			t.deletionsChanged[r.ID] = true
		}
	}
}

// recordDeletions stores the requests' progress, and removes those done:
// every live block they overlap was checked, and was already at a run at
// least the deletion delay ago (the blocks they replaced are deleted, and
// every reader's view of the bucket has lost them).
func (t *tenantRun) recordDeletions(ctx context.Context) error {
	for _, r := range t.deletions {
		done := true
		for id, m := range t.live {
			if r.Overlaps(m.MinTime, m.MaxTime, m.Resolution()) && !r.IsChecked(id) {
				done = false
				break
			}
		}
		kept := slices.DeleteFunc(slices.Clone(r.Checked), func(id ulid.ULID) bool { return t.live[id] == nil })
		if len(kept) != len(r.Checked) {
			r.Checked = kept
			t.deletionsChanged[r.ID] = true
		}
		now := t.now.UnixMilli()
		switch {
		case done && r.DoneAt == 0:
			r.DoneAt = now
			t.deletionsChanged[r.ID] = true
		case !done && r.DoneAt != 0:
			r.DoneAt = 0
			t.deletionsChanged[r.ID] = true
		case done && now-r.DoneAt >= t.c.o.DeletionDelay.Milliseconds():
			if err := t.lease.check(ctx); err != nil {
				return err
			}
			if err := blockmeta.RemoveDeletion(ctx, t.c.o.Bucket, t.id, r.ID); err != nil {
				return err
			}
			t.c.logger.Info("series deletion done", "tenant", t.id, "request", r.ID)
			continue
		}
		if t.deletionsChanged[r.ID] {
			if err := t.lease.check(ctx); err != nil {
				return err
			}
			if err := blockmeta.WriteDeletion(ctx, t.c.o.Bucket, t.id, r); err != nil {
				return err
			}
		}
	}
	return nil
}
