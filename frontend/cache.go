package frontend

import (
	"container/list"
	"context"
	"sync"
)

// cache keeps encoded extents by key, and the generations that make keys
// change when the data behind them does.
//
// Generations: every key names, beside the query, the current generation
// of the tenant and of every time bucket (split interval) the part reads.
// Invalidating a bucket changes its generation, so every key reading it
// changes: entries stored under the old key are never read again (they
// age out), including one stored by an evaluation that read the old data
// while the invalidation happened. That is what makes invalidation safe
// without locks between writers and queries, and what lets several
// processes share memcached: they share the generations too.
type cache interface {
	// fetch returns the values found for keys; errors count as misses.
	fetch(ctx context.Context, keys []string) map[string][]byte
	// store keeps value under key for tenant, unless it exceeds a limit.
	store(ctx context.Context, tenant, key string, value []byte)
	// generations returns the current generation of each key.
	generations(ctx context.Context, keys []string) ([]uint64, error)
	// bump changes the generation of each key.
	bump(ctx context.Context, keys []string) error
	close() error
}

// memCache is the in-process cache: least recently used entries go first,
// within the cache's size and within each tenant's share.
//
// A small LRU of its own: the per-tenant byte accounting is what the
// common LRU libraries (hashicorp/golang-lru counts entries) do not do.
type memCache struct {
	maxBytes  int64
	tenantMax func(tenant string) int64 // 0: only maxBytes
	m         *metrics

	mu      sync.Mutex
	bytes   int64
	all     list.List // *memItem; front: most recently used
	items   map[string]*memItem
	tenants map[string]*memTenant
	gens    map[string]uint64
}

type memItem struct {
	key, tenant string
	value       []byte
	size        int64
	inAll, inT  *list.Element
}

type memTenant struct {
	bytes int64
	lru   list.List
}

// memItemOverhead approximates the bookkeeping of an entry beside its key and value.
const memItemOverhead = 160

func newMemCache(maxBytes int64, tenantMax func(string) int64, m *metrics) *memCache {
	return &memCache{maxBytes: maxBytes, tenantMax: tenantMax, m: m, items: map[string]*memItem{}, tenants: map[string]*memTenant{}, gens: map[string]uint64{}}
}

func (c *memCache) fetch(_ context.Context, keys []string) map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		it := c.items[k]
		if it == nil {
			continue
		}
		c.all.MoveToFront(it.inAll)
		c.tenants[it.tenant].lru.MoveToFront(it.inT)
		out[k] = it.value
	}
	return out
}

func (c *memCache) store(_ context.Context, tenant, key string, value []byte) {
	size := int64(len(key)+len(value)) + memItemOverhead
	var tmax int64
	if c.tenantMax != nil {
		tmax = c.tenantMax(tenant)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.items[key]; old != nil {
		c.remove(old)
	}
	if size > c.maxBytes || tmax > 0 && size > tmax {
		c.m.tooLarge.Inc()
		return
	}
	t := c.tenants[tenant]
	if t == nil {
		t = &memTenant{}
		c.tenants[tenant] = t
	}
	for tmax > 0 && t.bytes+size > tmax {
		c.evict(t.lru.Back().Value.(*memItem))
	}
	for c.bytes+size > c.maxBytes {
		c.evict(c.all.Back().Value.(*memItem))
	}
	it := &memItem{key: key, tenant: tenant, value: value, size: size}
	it.inAll = c.all.PushFront(it)
	it.inT = t.lru.PushFront(it)
	c.items[key] = it
	c.bytes += size
	t.bytes += size
	c.m.storedBytes.Add(float64(len(value)))
	c.m.bytes.Set(float64(c.bytes))
	c.m.items.Set(float64(len(c.items)))
}

func (c *memCache) evict(it *memItem) {
	c.m.evictions.Inc()
	c.remove(it)
}

// remove drops it. The caller holds c.mu.
func (c *memCache) remove(it *memItem) {
	t := c.tenants[it.tenant]
	c.all.Remove(it.inAll)
	t.lru.Remove(it.inT)
	delete(c.items, it.key)
	c.bytes -= it.size
	t.bytes -= it.size
	if t.lru.Len() == 0 {
		delete(c.tenants, it.tenant)
	}
	c.m.bytes.Set(float64(c.bytes))
	c.m.items.Set(float64(len(c.items)))
}

func (c *memCache) generations(_ context.Context, keys []string) ([]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]uint64, len(keys))
	for i, k := range keys {
		out[i] = c.gens[k]
	}
	return out, nil
}

// bump advances generations. They are kept for the process's life (a key
// per tenant and invalidated bucket, a few bytes each): forgetting one
// would make the entries stored under its first value readable again.
func (c *memCache) bump(_ context.Context, keys []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.gens[k]++
	}
	return nil
}

func (c *memCache) close() error { return nil }
