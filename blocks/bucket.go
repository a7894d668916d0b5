package blocks

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/tenant"
)

// bucketBlocks is the store's view of the blocks in the bucket: per tenant,
// the metadata of every complete block (one whose meta.json is uploaded)
// not marked for deletion.
//
// Sync reads each tenant's bucket index (one GET) when the compactor has
// written one, and lists the tenant's blocks otherwise. Blocks the shipper
// uploads are added at once and kept until an index or listing shows them,
// so a flushed block is queryable without waiting for the compactor.
//
// Invariant: a block leaves the view once the bucket shows it marked or
// gone, however it entered: an added block leaves it when the index marks
// it, or when a listing that began after its upload does not show it (the
// compactor merged, marked and deleted it between two syncs; a listing
// shows every object written before it began). A query that finds a block
// missing from the bucket drops it at once (Forget) and reads the tenant's
// blocks again.
type bucketBlocks struct {
	bkt     objstore.Bucket
	logger  *slog.Logger
	m       *storeMetrics
	now     func() time.Time
	changes ChangeObserver // nil: none told

	mu      sync.RWMutex
	tenants map[string]map[ulid.ULID]*blockmeta.Meta
	added   map[string]map[ulid.ULID]addedBlock // shipped here, not yet seen by a sync
	// held maps each tenant's blocks that other blocks of the view hold
	// (the sources of merged and downsampled blocks); replaced, never
	// changed, so that readers may keep it.
	held map[string]map[ulid.ULID]bool
	// deletions are each tenant's deletion requests (deletion.go), as
	// the last read of the bucket showed them plus those made here since.
	deletions    map[string][]*blockmeta.DeletionRequest
	addedDeletes map[string]map[string]addedDeletion
}

// addedDeletion is a deletion request this process made, and when.
type addedDeletion struct {
	r  *blockmeta.DeletionRequest
	at time.Time
}

// addedBlock is a block this process shipped, and when its upload ended.
type addedBlock struct {
	meta *blockmeta.Meta
	at   time.Time
}

func newBucketBlocks(bkt objstore.Bucket, logger *slog.Logger, m *storeMetrics, now func() time.Time) *bucketBlocks {
	return &bucketBlocks{
		bkt: bkt, logger: logger, m: m, now: now,
		tenants: map[string]map[ulid.ULID]*blockmeta.Meta{},
		added:   map[string]map[ulid.ULID]addedBlock{},
		held:    map[string]map[ulid.ULID]bool{},

		deletions:    map[string][]*blockmeta.DeletionRequest{},
		addedDeletes: map[string]map[string]addedDeletion{},
	}
}

// HeldElsewhere returns whether a block of the tenant is held by another
// block of the view (a merge of it, or one downsampled from it), as of now.
func (b *bucketBlocks) HeldElsewhere(tenantID string) func(ulid.ULID) bool {
	b.mu.RLock()
	held := b.held[tenantID]
	b.mu.RUnlock()
	return func(id ulid.ULID) bool { return held[id] }
}

// updateHeld recomputes the tenant's held blocks. The caller holds b.mu.
func (b *bucketBlocks) updateHeld(tenantID string) {
	held := map[ulid.ULID]bool{}
	for u, m := range b.tenants[tenantID] {
		for _, src := range m.Compaction.Sources {
			if src != u {
				held[src] = true
			}
		}
	}
	b.held[tenantID] = held
}

// tenantView is a tenant's blocks as one read of the bucket showed them.
type tenantView struct {
	blocks map[ulid.ULID]*blockmeta.Meta
	marked map[ulid.ULID]bool
	// listedAt is when the listing behind the view began, by this
	// process's clock.
	listedAt time.Time
	// deletions are the tenant's deletion requests, read after listedAt.
	deletions []*blockmeta.DeletionRequest
}

// Sync refreshes every tenant's block list. Blocks gone (deleted, or
// marked for deletion) are handed to gone.
func (b *bucketBlocks) Sync(ctx context.Context, gone func(tenant string, id ulid.ULID)) error {
	var tenants []string
	err := b.bkt.Iter(ctx, "", func(name string) error {
		id := strings.TrimSuffix(name, "/")
		if strings.HasSuffix(name, "/") && tenant.ValidateID(id) == nil {
			tenants = append(tenants, id)
		}
		return nil
	}, false)
	if err != nil {
		return fmt.Errorf("list tenants in bucket %s: %w", b.bkt.Name(), err)
	}
	seen := map[string]bool{}
	for _, id := range tenants {
		seen[id] = true
		v, err := b.readTenant(ctx, id)
		if err != nil {
			return err
		}
		b.replace(id, v, gone)
	}
	var changed []viewChange
	b.mu.Lock()
	for id, blocks := range b.tenants {
		if seen[id] || len(b.added[id]) > 0 {
			continue
		}
		for u, m := range blocks {
			gone(id, u)
			changed = append(changed, blockChange(id, m))
		}
		delete(b.tenants, id)
		delete(b.held, id)
		b.m.bucketBlocks.DeleteLabelValues(id)
	}
	for id := range b.deletions {
		if !seen[id] && len(b.addedDeletes[id]) == 0 {
			delete(b.deletions, id) // the tenant is gone from the bucket
		}
	}
	b.mu.Unlock()
	b.report(changed)
	return nil
}

// viewChange is a block that entered or left a tenant's view.
type viewChange struct {
	tenant     string
	mint, maxt int64 // both included
}

// blockChange is block m of tenant id entering or leaving the view.
func blockChange(id string, m *blockmeta.Meta) viewChange {
	// Block ranges are half-open: [MinTime, MaxTime).
	return viewChange{id, m.MinTime, m.MaxTime - 1}
}

// report tells the change observer of blocks that entered or left the
// view, once queries read the new view.
func (b *bucketBlocks) report(changed []viewChange) {
	if b.changes == nil {
		return
	}
	for _, c := range changed {
		b.changes.BucketChanged(c.tenant, c.mint, c.maxt)
	}
}

// SyncTenant refreshes one tenant's block list.
func (b *bucketBlocks) SyncTenant(ctx context.Context, id string, gone func(tenant string, id ulid.ULID)) error {
	v, err := b.readTenant(ctx, id)
	if err != nil {
		return err
	}
	b.replace(id, v, gone)
	return nil
}

// readTenant returns the tenant's blocks: those a listing of the bucket
// shows, less those the bucket index marks for deletion and those another
// listed block covers (blockmeta.Covers). The index spares a GET of the
// meta.json of every block it lists; the listing shows what it cannot: the
// blocks shipped or written since the compactor last wrote it (after a
// restart, this process's own), and the blocks deleted since.
func (b *bucketBlocks) readTenant(ctx context.Context, id string) (tenantView, error) {
	v := tenantView{marked: map[ulid.ULID]bool{}, blocks: map[ulid.ULID]*blockmeta.Meta{}}
	known := map[ulid.ULID]*blockmeta.Meta{}
	b.mu.RLock()
	for u, m := range b.tenants[id] {
		known[u] = m
	}
	b.mu.RUnlock()
	ix, err := blockmeta.ReadIndex(ctx, b.bkt, id)
	switch {
	case err == nil:
		for _, u := range ix.Marked {
			v.marked[u] = true
		}
		for _, m := range ix.Blocks {
			known[m.ULID] = m
		}
	case !b.bkt.IsNotFound(err):
		b.logger.Warn("unreadable bucket index, reading blocks' meta.json instead", "tenant", id, "err", err)
	}
	v.listedAt = b.now()
	var ids []ulid.ULID
	hasDeletions := false
	err = b.bkt.Iter(ctx, id+"/", func(name string) error {
		u, err := ulid.Parse(strings.TrimSuffix(path.Base(name), "/"))
		if err == nil && strings.HasSuffix(name, "/") {
			ids = append(ids, u)
		}
		if name == path.Join(id, blockmeta.DeletionsDir)+"/" {
			hasDeletions = true
		}
		return nil
	}, false)
	if err != nil {
		return v, fmt.Errorf("list blocks of tenant %q: %w", id, err)
	}
	if hasDeletions {
		if v.deletions, err = blockmeta.ReadDeletions(ctx, b.bkt, id); err != nil {
			return v, err
		}
	}
	for _, u := range ids {
		if v.marked[u] {
			continue
		}
		if m, ok := known[u]; ok {
			v.blocks[u] = m
			continue
		}
		m, err := blockmeta.Read(ctx, b.bkt, id, u)
		if b.bkt.IsNotFound(err) {
			continue // incomplete upload: no meta.json yet
		}
		if err != nil {
			return v, err
		}
		// Blocks marked for deletion since the index was written are
		// kept: their marks are not read. The blocks that replace them
		// cover them, and their data is held elsewhere.
		v.blocks[u] = m
	}
	dropCovered(v.blocks)
	return v, nil
}

// dropCovered removes from blocks every block another one covers: the
// sources of a merge and the downsampled blocks of a raw block merged
// since, still in the bucket until the compactor deletes them. Readers
// must not merge them with their replacement: downsampled aggregates of
// part of a window are not the window's.
func dropCovered(blocks map[ulid.ULID]*blockmeta.Meta) {
	all := make([]*blockmeta.Meta, 0, len(blocks))
	for _, m := range blocks {
		all = append(all, m)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].MinTime < all[j].MinTime })
	for i, a := range all {
		// Only blocks starting no later than a can cover it.
		for _, c := range all[:i+1] {
			if c != a && blockmeta.Covers(c, a) {
				delete(blocks, a.ULID)
				break
			}
		}
		for _, c := range all[i+1:] {
			if c.MinTime > a.MinTime {
				break
			}
			if blockmeta.Covers(c, a) {
				delete(blocks, a.ULID)
				break
			}
		}
	}
}

// replace installs a tenant's freshly read block list, keeping blocks the
// shipper added that the list does not show yet, and dropping those it
// shows marked or gone.
func (b *bucketBlocks) replace(id string, v tenantView, gone func(string, ulid.ULID)) {
	var changed []viewChange
	defer func() { b.report(changed) }() // after the unlock: queries see the new view
	b.mu.Lock()
	defer b.mu.Unlock()
	next := v.blocks
	for u, a := range b.added[id] {
		switch {
		case next[u] != nil:
			delete(b.added[id], u) // the bucket shows it: no longer ours to keep
		case v.marked[u], a.at.Before(v.listedAt):
			delete(b.added[id], u) // merged into another block, or deleted
		default:
			next[u] = a.meta
		}
	}
	for u, m := range b.tenants[id] {
		if _, ok := next[u]; !ok {
			gone(id, u)
			changed = append(changed, blockChange(id, m))
		}
	}
	for u, m := range next {
		if _, ok := b.tenants[id][u]; !ok {
			changed = append(changed, blockChange(id, m))
		}
	}
	dels := v.deletions
	for rid, a := range b.addedDeletes[id] {
		switch {
		case slices.ContainsFunc(dels, func(r *blockmeta.DeletionRequest) bool { return r.ID == rid }):
			delete(b.addedDeletes[id], rid)
		case a.at.Before(v.listedAt):
			delete(b.addedDeletes[id], rid) // done and removed by the compactor
		default:
			dels = append(dels, a.r)
		}
	}
	// A deletion request another process stored hides data from now on.
	for _, r := range dels {
		if !slices.ContainsFunc(b.deletions[id], func(o *blockmeta.DeletionRequest) bool { return o.ID == r.ID }) {
			changed = append(changed, viewChange{id, r.MinTime, r.MaxTime})
		}
	}
	if len(dels) == 0 {
		delete(b.deletions, id)
	} else {
		b.deletions[id] = dels
	}
	b.tenants[id] = next
	b.updateHeld(id)
	b.m.bucketBlocks.WithLabelValues(id).Set(float64(len(next)))
}

// Add records a block just uploaded by this process's shipper.
func (b *bucketBlocks) Add(tenantID string, m *blockmeta.Meta) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tenants[tenantID] == nil {
		b.tenants[tenantID] = map[ulid.ULID]*blockmeta.Meta{}
	}
	if b.added[tenantID] == nil {
		b.added[tenantID] = map[ulid.ULID]addedBlock{}
	}
	b.tenants[tenantID][m.ULID] = m
	b.added[tenantID][m.ULID] = addedBlock{meta: m, at: b.now()}
	b.m.bucketBlocks.WithLabelValues(tenantID).Set(float64(len(b.tenants[tenantID])))
}

// AddDeletion records a deletion request this process just uploaded.
func (b *bucketBlocks) AddDeletion(tenantID string, r *blockmeta.DeletionRequest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.addedDeletes[tenantID] == nil {
		b.addedDeletes[tenantID] = map[string]addedDeletion{}
	}
	b.addedDeletes[tenantID][r.ID] = addedDeletion{r: r, at: b.now()}
	b.deletions[tenantID] = append(slices.Clone(b.deletions[tenantID]), r)
}

// Deletions returns the tenant's deletion requests; the slice is never
// changed.
func (b *bucketBlocks) Deletions(tenantID string) []*blockmeta.DeletionRequest {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.deletions[tenantID]
}

// Forget drops a block the bucket no longer has from the view.
func (b *bucketBlocks) Forget(tenantID string, id ulid.ULID) {
	var changed []viewChange
	defer func() { b.report(changed) }()
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.added[tenantID], id)
	if m, ok := b.tenants[tenantID][id]; ok {
		changed = append(changed, blockChange(tenantID, m))
		delete(b.tenants[tenantID], id)
		b.updateHeld(tenantID)
		b.m.bucketBlocks.WithLabelValues(tenantID).Set(float64(len(b.tenants[tenantID])))
	}
}

// Blocks returns the tenant's bucket blocks overlapping [mint, maxt], of
// every resolution, oldest first.
func (b *bucketBlocks) Blocks(tenantID string, mint, maxt int64) []*blockmeta.Meta {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []*blockmeta.Meta
	for _, m := range b.tenants[tenantID] {
		// Block time ranges are half-open: [MinTime, MaxTime).
		if m.MinTime <= maxt && mint < m.MaxTime {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MinTime != out[j].MinTime {
			return out[i].MinTime < out[j].MinTime
		}
		return out[i].ULID.Compare(out[j].ULID) < 0
	})
	return out
}

// Tenants returns the tenants with blocks in the bucket.
func (b *bucketBlocks) Tenants() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]string, 0, len(b.tenants))
	for id := range b.tenants {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Count returns the number of the tenant's blocks in the view.
func (b *bucketBlocks) Count(tenantID string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.tenants[tenantID])
}
