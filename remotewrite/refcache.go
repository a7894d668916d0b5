package remotewrite

import (
	"bytes"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// refCache remembers, per tenant, the series each label set sent before
// resolved to: its validated labels.Labels and the store's SeriesRef. A hit
// skips building and validating the labels and the store's lookup by
// labels (hashing them and searching the head's series map), which the CPU
// profile of steady-state ingest showed as the largest cost of appending.
//
// Keys are the xxhash of the non-empty label names and values as received
// (see labelKey); every hit is verified by comparing them with the cached
// labels, so a hash collision only costs a miss.
//
// A cached ref may go stale (the head drops series without samples when it
// cuts a block): the store then finds the series by the labels passed along
// and returns its new ref, which replaces the old one. This relies on the
// store never reusing a ref for another series (Prometheus's head numbers
// series from an ever-increasing counter).
//
// Entries live two generations of refCacheGeneration: an entry not used for
// that long is dropped, so the cache does not grow with series churn.
type refCache struct {
	shards [refCacheShards]refShard
}

const (
	refCacheShards     = 16
	refCacheGeneration = time.Hour
)

type refShard struct {
	mu        sync.Mutex
	cur, prev map[uint64]refEntry
	rotated   time.Time
}

type refEntry struct {
	ref storage.SeriesRef
	ls  labels.Labels
}

func newRefCache() *refCache {
	c := &refCache{}
	now := time.Now()
	for i := range c.shards {
		c.shards[i].cur = map[uint64]refEntry{}
		c.shards[i].rotated = now
	}
	return c
}

func (c *refCache) shard(h uint64) *refShard { return &c.shards[h%refCacheShards] }

// get returns the entry of hash h, or false.
func (c *refCache) get(h uint64) (refEntry, bool) {
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cur[h]
	if !ok {
		if e, ok = s.prev[h]; ok {
			s.cur[h] = e
		}
	}
	return e, ok
}

// put records that the series of hash h with labels ls has ref.
func (c *refCache) put(h uint64, ls labels.Labels, ref storage.SeriesRef) {
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.rotated) > refCacheGeneration {
		s.prev, s.cur, s.rotated = s.cur, make(map[uint64]refEntry, len(s.cur)), now
	}
	s.cur[h] = refEntry{ref: ref, ls: ls}
}

// len is the number of cached series (for tests).
func (c *refCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.cur)
		for h := range s.prev {
			if _, ok := s.cur[h]; !ok {
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// labelKey is the key of a label set as received: its non-empty pairs,
// each name and value preceded by its length (one byte below 255, else 255
// and three bytes little-endian). That is how labels.Labels stores a label
// set in Prometheus's default (stringlabels) build, so a hit is verified by
// comparing the key with the cached labels' bytes, with no copy of the label
// set kept for the purpose. In other builds the comparison never holds, and
// every lookup misses: slower, never wrong.
type labelKey struct {
	buf []byte
	ok  bool // false when a name or value is too long to encode
}

func (k *labelKey) reset() { k.buf, k.ok = k.buf[:0], true }

func (k *labelKey) appendSize(n int) {
	switch {
	case n < 255:
		k.buf = append(k.buf, byte(n))
	case n < 1<<24:
		k.buf = append(k.buf, 255, byte(n), byte(n>>8), byte(n>>16))
	default:
		k.ok = false
	}
}

// add adds a label pair; pairs with an empty value are skipped, as the
// handler drops them.
func (k *labelKey) add(name, value string) {
	if value == "" {
		return
	}
	k.appendSize(len(name))
	k.buf = append(k.buf, name...)
	k.appendSize(len(value))
	k.buf = append(k.buf, value...)
}

// lookup returns the cached entry of the label set in k, verified, and the
// hash to store a new entry under. scratch is a reusable buffer.
func (c *refCache) lookup(k *labelKey, scratch *[]byte) (refEntry, uint64, bool) {
	if !k.ok {
		return refEntry{}, 0, false
	}
	h := xxhash.Sum64(k.buf)
	e, ok := c.get(h)
	if !ok {
		return refEntry{}, h, false
	}
	*scratch = e.ls.Bytes(*scratch)
	if !bytes.Equal(*scratch, k.buf) {
		return refEntry{}, h, false
	}
	return e, h, true
}

// refCaches holds the ref cache of every tenant.
type refCaches struct {
	mu sync.RWMutex
	m  map[string]*refCache
}

func (rc *refCaches) get(tenant string) *refCache {
	rc.mu.RLock()
	c, ok := rc.m[tenant]
	rc.mu.RUnlock()
	if ok {
		return c
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if c, ok = rc.m[tenant]; ok {
		return c
	}
	if rc.m == nil {
		rc.m = map[string]*refCache{}
	}
	c = newRefCache()
	rc.m[tenant] = c
	return c
}
