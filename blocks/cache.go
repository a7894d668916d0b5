package blocks

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/objstore"
)

// blockCache keeps whole bucket blocks on local disk, opened, bounded in
// bytes with least-recently-used eviction.
//
// Design choice (measured trade-off, see bench/): a query that needs a bucket
// block downloads the whole block once and then reads it at local-disk speed,
// instead of range-reading index and chunks for every query. Strata's blocks
// are per tenant and mostly queried over recent ranges, where the same few
// blocks serve many queries; a range-reading store gateway pays off for
// very large blocks queried sparsely, which the compactor's downsampled
// blocks keep rare.
//
// Invariants: an entry in use by a query (refs > 0) is never closed or
// removed; a directory under the cache root that has a meta.json is a
// complete block (downloads go to a temporary directory and are renamed).
type blockCache struct {
	dir      string
	maxBytes int64
	bkt      objstore.Bucket
	logger   *slog.Logger
	m        *storeMetrics

	mu      sync.Mutex
	entries map[string]*cacheEntry // key: tenant/ULID
	lru     *list.List             // front: most recently used; values are *cacheEntry
	size    int64
	loading map[string]*loadCall
}

type cacheEntry struct {
	key   string
	block *tsdb.Block
	size  int64
	refs  int
	elem  *list.Element
}

type loadCall struct {
	done  chan struct{}
	entry *cacheEntry
	err   error
}

func newBlockCache(dir string, maxBytes int64, bkt objstore.Bucket, logger *slog.Logger, m *storeMetrics) (*blockCache, error) {
	c := &blockCache{
		dir: dir, maxBytes: maxBytes, bkt: bkt, logger: logger, m: m,
		entries: map[string]*cacheEntry{}, lru: list.New(), loading: map[string]*loadCall{},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create block cache directory: %w", err)
	}
	if err := c.loadExisting(); err != nil {
		return nil, err
	}
	return c, nil
}

// loadExisting opens the complete blocks left in the cache directory by a
// previous run and removes incomplete ones.
func (c *blockCache) loadExisting() error {
	tenants, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("read block cache: %w", err)
	}
	for _, t := range tenants {
		if !t.IsDir() {
			continue
		}
		blocks, err := os.ReadDir(filepath.Join(c.dir, t.Name()))
		if err != nil {
			return fmt.Errorf("read block cache: %w", err)
		}
		for _, b := range blocks {
			dir := filepath.Join(c.dir, t.Name(), b.Name())
			if _, err := ulid.Parse(b.Name()); err != nil || !fileExists(filepath.Join(dir, metaFilename)) {
				_ = os.RemoveAll(dir)
				continue
			}
			blk, err := tsdb.OpenBlock(c.logger, dir, nil, nil)
			if err != nil {
				c.logger.Warn("removing unreadable cached block", "dir", dir, "err", err)
				_ = os.RemoveAll(dir)
				continue
			}
			c.insert(t.Name()+"/"+b.Name(), blk)
		}
	}
	c.evict()
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// insert adds an opened block. The caller holds c.mu or is the constructor.
func (c *blockCache) insert(key string, blk *tsdb.Block) *cacheEntry {
	e := &cacheEntry{key: key, block: blk, size: blk.Size()}
	e.elem = c.lru.PushFront(e)
	c.entries[key] = e
	c.size += e.size
	c.m.cacheBytes.Set(float64(c.size))
	c.m.cacheBlocks.Set(float64(len(c.entries)))
	return e
}

// Acquire returns the opened block id of tenant, downloading it when it is
// not cached. The caller must Release it.
func (c *blockCache) Acquire(ctx context.Context, tenantID string, id ulid.ULID) (*cacheEntry, error) {
	key := tenantID + "/" + id.String()
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		e.refs++
		c.lru.MoveToFront(e.elem)
		c.mu.Unlock()
		c.m.cacheHits.Inc()
		return e, nil
	}
	if call, ok := c.loading[key]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if call.err != nil {
			return nil, call.err
		}
		return c.Acquire(ctx, tenantID, id)
	}
	call := &loadCall{done: make(chan struct{})}
	c.loading[key] = call
	c.mu.Unlock()
	c.m.cacheMisses.Inc()

	blk, err := c.download(ctx, tenantID, id)
	c.mu.Lock()
	delete(c.loading, key)
	if err != nil {
		call.err = err
		c.mu.Unlock()
		close(call.done)
		return nil, err
	}
	e := c.insert(key, blk)
	e.refs++
	c.mu.Unlock()
	close(call.done)
	c.evict()
	return e, nil
}

// Release returns an entry acquired with Acquire.
func (c *blockCache) Release(e *cacheEntry) {
	c.mu.Lock()
	e.refs--
	c.mu.Unlock()
	c.evict()
}

// evict closes and removes least recently used unreferenced blocks while
// the cache is over its size limit.
func (c *blockCache) evict() {
	c.mu.Lock()
	var victims []*cacheEntry
	for el := c.lru.Back(); el != nil && c.size > c.maxBytes; {
		e := el.Value.(*cacheEntry)
		prev := el.Prev()
		if e.refs == 0 {
			c.lru.Remove(el)
			delete(c.entries, e.key)
			c.size -= e.size
			victims = append(victims, e)
		}
		el = prev
	}
	c.m.cacheBytes.Set(float64(c.size))
	c.m.cacheBlocks.Set(float64(len(c.entries)))
	c.mu.Unlock()
	for _, e := range victims {
		c.m.cacheEvictions.Inc()
		if err := e.block.Close(); err != nil {
			c.logger.Warn("closing evicted block", "block", e.key, "err", err)
		}
		if err := os.RemoveAll(e.block.Dir()); err != nil {
			c.logger.Warn("removing evicted block", "block", e.key, "err", err)
		}
	}
}

// Drop removes block id of tenant from the cache if it is there and unused;
// it is used when the block disappears from the bucket.
func (c *blockCache) Drop(tenantID string, id ulid.ULID) {
	key := tenantID + "/" + id.String()
	c.mu.Lock()
	e, ok := c.entries[key]
	if !ok || e.refs > 0 {
		c.mu.Unlock()
		return
	}
	c.lru.Remove(e.elem)
	delete(c.entries, key)
	c.size -= e.size
	c.m.cacheBytes.Set(float64(c.size))
	c.m.cacheBlocks.Set(float64(len(c.entries)))
	c.mu.Unlock()
	_ = e.block.Close()
	_ = os.RemoveAll(e.block.Dir())
}

// Seed installs the block in dir, which this process has just uploaded to
// the bucket as m (the compactor's merged and downsampled blocks), so that
// the first query over it reads it from local disk instead of downloading
// and decoding the objects just encoded from these same files. The block's
// files are hard-linked where dir is on the cache's filesystem and copied
// otherwise, with m as its meta.json, which is what a download restores
// byte for byte. A block cached or being downloaded already is left alone.
// A failure leaves the block to be downloaded when a query needs it: a
// query waiting on a failed seed loads the block itself.
func (c *blockCache) Seed(tenantID string, m *blockmeta.Meta, dir string) error {
	key := tenantID + "/" + m.ULID.String()
	c.mu.Lock()
	_, cached := c.entries[key]
	_, loading := c.loading[key]
	if cached || loading {
		c.mu.Unlock()
		return nil
	}
	call := &loadCall{done: make(chan struct{})}
	c.loading[key] = call
	c.mu.Unlock()

	blk, err := c.install(tenantID, m, dir)
	c.mu.Lock()
	delete(c.loading, key)
	if err == nil {
		c.insert(key, blk)
		c.m.cacheSeeds.Inc()
	}
	c.mu.Unlock()
	close(call.done)
	if err != nil {
		return fmt.Errorf("seed block cache with %s: %w", key, err)
	}
	c.evict()
	return nil
}

// install links or copies the block in src into the cache as block m of
// tenant and opens it.
func (c *blockCache) install(tenantID string, m *blockmeta.Meta, src string) (*tsdb.Block, error) {
	final := filepath.Join(c.dir, tenantID, m.ULID.String())
	tmp := final + ".seed"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(tmp, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case rel == metaFilename || filepath.Ext(rel) == ".tmp":
			return nil // meta.json is m, written last; .tmp files are no part of a block
		}
		return linkOrCopy(p, dst)
	})
	if err == nil {
		err = blockmeta.WriteDir(tmp, m)
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	blk, err := tsdb.OpenBlock(c.logger, final, nil, nil)
	if err != nil {
		_ = os.RemoveAll(final)
		return nil, fmt.Errorf("open seeded block: %w", err)
	}
	return blk, nil
}

// linkOrCopy hard-links src to dst, or copies it when they are on
// different filesystems (or links are refused).
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// download fetches block id into the cache and opens it.
func (c *blockCache) download(ctx context.Context, tenantID string, id ulid.ULID) (*tsdb.Block, error) {
	final := filepath.Join(c.dir, tenantID, id.String())
	tmp := final + ".download"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := blockmeta.Download(ctx, c.bkt, tenantID, id, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("install cached block: %w", err)
	}
	blk, err := tsdb.OpenBlock(c.logger, final, nil, nil)
	if err != nil {
		_ = os.RemoveAll(final)
		return nil, fmt.Errorf("open cached block %s/%s: %w", tenantID, id, err)
	}
	return blk, nil
}

// Close closes every cached block; the files stay for the next run.
func (c *blockCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, e := range c.entries {
		errs = append(errs, e.block.Close())
	}
	c.entries = map[string]*cacheEntry{}
	c.lru.Init()
	return errors.Join(errs...)
}

// SeedBlock gives the store's block cache the block in dir that this
// process has just uploaded as m for tenant (a compactor's output), so that
// queries read it without downloading it. Without a bucket it does nothing.
// A failure is logged and leaves the block to be downloaded on first use.
func (s *Store) SeedBlock(tenant, dir string, m *blockmeta.Meta) {
	if s.cache == nil {
		return
	}
	if err := s.cache.Seed(tenant, m, dir); err != nil {
		s.logger.Warn("keeping an uploaded block in the block cache failed; the first query over it downloads it", "tenant", tenant, "block", m.ULID, "err", err)
	}
}
