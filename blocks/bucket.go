package blocks

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"

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
type bucketBlocks struct {
	bkt    objstore.Bucket
	logger *slog.Logger
	m      *storeMetrics

	mu      sync.RWMutex
	tenants map[string]map[ulid.ULID]*blockmeta.Meta
	added   map[string]map[ulid.ULID]*blockmeta.Meta // shipped here, not yet seen by a sync
}

func newBucketBlocks(bkt objstore.Bucket, logger *slog.Logger, m *storeMetrics) *bucketBlocks {
	return &bucketBlocks{
		bkt: bkt, logger: logger, m: m,
		tenants: map[string]map[ulid.ULID]*blockmeta.Meta{},
		added:   map[string]map[ulid.ULID]*blockmeta.Meta{},
	}
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
		blocks, err := b.readTenant(ctx, id)
		if err != nil {
			return err
		}
		b.replace(id, blocks, gone)
	}
	b.mu.Lock()
	for id, blocks := range b.tenants {
		if seen[id] || len(b.added[id]) > 0 {
			continue
		}
		for u := range blocks {
			gone(id, u)
		}
		delete(b.tenants, id)
		b.m.bucketBlocks.DeleteLabelValues(id)
	}
	b.mu.Unlock()
	return nil
}

// readTenant returns the tenant's blocks from its bucket index, or from a
// listing when there is no index yet.
func (b *bucketBlocks) readTenant(ctx context.Context, id string) (map[ulid.ULID]*blockmeta.Meta, error) {
	ix, err := blockmeta.ReadIndex(ctx, b.bkt, id)
	switch {
	case err == nil:
		marked := make(map[ulid.ULID]bool, len(ix.Marked))
		for _, u := range ix.Marked {
			marked[u] = true
		}
		out := make(map[ulid.ULID]*blockmeta.Meta, len(ix.Blocks))
		for _, m := range ix.Blocks {
			if !marked[m.ULID] {
				out[m.ULID] = m
			}
		}
		return out, nil
	case !b.bkt.IsNotFound(err):
		b.logger.Warn("unreadable bucket index, listing blocks instead", "tenant", id, "err", err)
	}
	return b.listTenant(ctx, id)
}

func (b *bucketBlocks) listTenant(ctx context.Context, id string) (map[ulid.ULID]*blockmeta.Meta, error) {
	var ids []ulid.ULID
	err := b.bkt.Iter(ctx, id+"/", func(name string) error {
		u, err := ulid.Parse(strings.TrimSuffix(path.Base(name), "/"))
		if err == nil && strings.HasSuffix(name, "/") {
			ids = append(ids, u)
		}
		return nil
	}, false)
	if err != nil {
		return nil, fmt.Errorf("list blocks of tenant %q: %w", id, err)
	}
	b.mu.RLock()
	known := make(map[ulid.ULID]*blockmeta.Meta, len(b.tenants[id]))
	for u, m := range b.tenants[id] {
		known[u] = m
	}
	b.mu.RUnlock()
	out := make(map[ulid.ULID]*blockmeta.Meta, len(ids))
	for _, u := range ids {
		if m, ok := known[u]; ok {
			out[u] = m
			continue
		}
		m, err := blockmeta.Read(ctx, b.bkt, id, u)
		if b.bkt.IsNotFound(err) {
			continue // incomplete upload: no meta.json yet
		}
		if err != nil {
			return nil, err
		}
		// Blocks marked for deletion are kept: a listing is not atomic, and
		// may miss a merged block uploaded after it began while seeing the
		// marks of its sources, written later. Their data is also in the
		// block that replaces them, and the merge returns it once. Only the
		// bucket index, written with both at once, hides marked blocks.
		out[u] = m
	}
	return out, nil
}

// replace installs a tenant's freshly read block list, keeping blocks the
// shipper added that the list does not show yet.
func (b *bucketBlocks) replace(id string, next map[ulid.ULID]*blockmeta.Meta, gone func(string, ulid.ULID)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for u, m := range b.added[id] {
		if _, ok := next[u]; ok {
			delete(b.added[id], u)
			continue
		}
		next[u] = m
	}
	for u := range b.tenants[id] {
		if _, ok := next[u]; !ok {
			gone(id, u)
		}
	}
	b.tenants[id] = next
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
		b.added[tenantID] = map[ulid.ULID]*blockmeta.Meta{}
	}
	b.tenants[tenantID][m.ULID] = m
	b.added[tenantID][m.ULID] = m
	b.m.bucketBlocks.WithLabelValues(tenantID).Set(float64(len(b.tenants[tenantID])))
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
