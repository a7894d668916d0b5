package remotewrite

import (
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
// Keys are the xxhash of the non-empty label names and values as received;
// every hit is verified by comparing them with the cached labels, so a hash
// collision only costs a miss.
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

// labelHasher hashes label pairs as received, skipping empty values as the
// handler does.
type labelHasher struct{ d xxhash.Digest }

var sep = []byte{0xff}

func (lh *labelHasher) reset() { lh.d.Reset() }

func (lh *labelHasher) add(name, value string) {
	if value == "" {
		return
	}
	_, _ = lh.d.WriteString(name)
	_, _ = lh.d.Write(sep)
	_, _ = lh.d.WriteString(value)
	_, _ = lh.d.Write(sep)
}

func (lh *labelHasher) sum() uint64 { return lh.d.Sum64() }

// sameLabels reports whether ls holds exactly the pairs pair(0..n-1) yields,
// less those with empty values, in the same order.
func sameLabels(ls labels.Labels, n int, pair func(i int) (string, string)) bool {
	i, same := 0, true
	next := func() (string, string, bool) {
		for ; i < n; i++ {
			name, value := pair(i)
			if value != "" {
				i++
				return name, value, true
			}
		}
		return "", "", false
	}
	ls.Range(func(l labels.Label) {
		if !same {
			return
		}
		name, value, ok := next()
		same = ok && name == l.Name && value == l.Value
	})
	if !same {
		return false
	}
	_, _, more := next()
	return !more
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
