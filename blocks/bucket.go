package blocks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/tenant"
)

// bucketBlocks is the store's view of the blocks in the bucket: per tenant,
// the metadata of every complete block (one whose meta.json is uploaded).
// Sync refreshes it from the bucket; the shipper adds what it uploads at once,
// so a flushed block is queryable from the bucket without waiting for a sync.
type bucketBlocks struct {
	bkt    objstore.Bucket
	logger *slog.Logger
	m      *storeMetrics

	mu      sync.RWMutex
	tenants map[string]map[ulid.ULID]tsdb.BlockMeta
}

func newBucketBlocks(bkt objstore.Bucket, logger *slog.Logger, m *storeMetrics) *bucketBlocks {
	return &bucketBlocks{bkt: bkt, logger: logger, m: m, tenants: map[string]map[ulid.ULID]tsdb.BlockMeta{}}
}

// Sync lists the bucket's tenants and blocks and reads the metadata of
// blocks it has not seen. Blocks gone from the bucket are forgotten and
// handed to gone.
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
		if err := b.syncTenant(ctx, id, gone); err != nil {
			return err
		}
	}
	b.mu.Lock()
	for id, blocks := range b.tenants {
		if seen[id] {
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

func (b *bucketBlocks) syncTenant(ctx context.Context, id string, gone func(string, ulid.ULID)) error {
	var ids []ulid.ULID
	err := b.bkt.Iter(ctx, id+"/", func(name string) error {
		u, err := ulid.Parse(strings.TrimSuffix(path.Base(name), "/"))
		if err == nil && strings.HasSuffix(name, "/") {
			ids = append(ids, u)
		}
		return nil
	}, false)
	if err != nil {
		return fmt.Errorf("list blocks of tenant %q: %w", id, err)
	}
	b.mu.RLock()
	known := make(knownSet, len(b.tenants[id]))
	for u, meta := range b.tenants[id] {
		known[u] = meta
	}
	b.mu.RUnlock()
	next := make(map[ulid.ULID]tsdb.BlockMeta, len(ids))
	for _, u := range ids {
		if meta, ok := known[u]; ok {
			next[u] = meta
			continue
		}
		meta, err := readBucketMeta(ctx, b.bkt, id, u)
		if b.bkt.IsNotFound(err) {
			continue // partial upload: no meta.json yet
		}
		if err != nil {
			return err
		}
		next[u] = *meta
	}
	b.mu.Lock()
	for u, meta := range b.tenants[id] {
		switch _, listed := next[u]; {
		case listed:
		case known.has(u):
			gone(id, u) // deleted from the bucket
		default:
			next[u] = meta // added by the shipper since the listing started
		}
	}
	b.tenants[id] = next
	b.m.bucketBlocks.WithLabelValues(id).Set(float64(len(next)))
	b.mu.Unlock()
	return nil
}

// knownSet is a tenant's block list as it was before a listing.
type knownSet map[ulid.ULID]tsdb.BlockMeta

func (k knownSet) has(u ulid.ULID) bool { _, ok := k[u]; return ok }

// readBucketMeta reads <tenant>/<id>/meta.json.
func readBucketMeta(ctx context.Context, bkt objstore.Bucket, tenantID string, id ulid.ULID) (*tsdb.BlockMeta, error) {
	r, err := bkt.Get(ctx, path.Join(tenantID, id.String(), metaFilename))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read meta.json of block %s/%s: %w", tenantID, id, err)
	}
	var meta tsdb.BlockMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, fmt.Errorf("parse meta.json of block %s/%s: %w", tenantID, id, err)
	}
	if meta.ULID != id {
		return nil, fmt.Errorf("meta.json of block %s/%s names block %s", tenantID, id, meta.ULID)
	}
	return &meta, nil
}

// Add records a block just uploaded.
func (b *bucketBlocks) Add(tenantID string, meta tsdb.BlockMeta) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tenants[tenantID] == nil {
		b.tenants[tenantID] = map[ulid.ULID]tsdb.BlockMeta{}
	}
	b.tenants[tenantID][meta.ULID] = meta
	b.m.bucketBlocks.WithLabelValues(tenantID).Set(float64(len(b.tenants[tenantID])))
}

// Blocks returns the tenant's bucket blocks overlapping [mint, maxt], oldest first.
func (b *bucketBlocks) Blocks(tenantID string, mint, maxt int64) []tsdb.BlockMeta {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []tsdb.BlockMeta
	for _, meta := range b.tenants[tenantID] {
		// Block time ranges are half-open: [MinTime, MaxTime).
		if meta.MinTime <= maxt && mint < meta.MaxTime {
			out = append(out, meta)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MinTime < out[j].MinTime })
	return out
}

// Has reports whether the tenant has blocks in the bucket.
func (b *bucketBlocks) Has(tenantID string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.tenants[tenantID]) > 0
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
