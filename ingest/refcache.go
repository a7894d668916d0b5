package ingest

import (
	"math/bits"
	"slices"
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
// Keys are a hash of the non-empty label names and values as received,
// combined from one hash per name and value (keyHash): a 2.0 request hashes
// each symbol of its table once, however many series use it. Every hit is
// verified by comparing the received pairs with the cached labels' bytes
// (pairsReader), so a hash collision only costs a miss.
//
// A request looks all its series up at once (getMany, under one read lock)
// and records what it learnt at the end (putMany, under one write lock):
// the lookups of one request are independent memory accesses that the CPU
// overlaps, where one lookup per series between appends waited for each
// cache miss in turn; and the lock's cache line moves between cores once
// per request rather than once per series. The table is open addressing
// over one flat array rather than a Go map: a lookup touches one slot
// holding hash, ref and labels together, instead of the map's control word
// and then its slot.
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
	mu        sync.RWMutex
	cur, prev refTable
	rotated   time.Time
}

const refCacheGeneration = time.Hour

// refEntry is what the cache holds for a label set.
type refEntry struct {
	ref storage.SeriesRef
	ls  labels.Labels
}

// refSlot is one slot of a refTable; hash 0 marks it empty.
type refSlot struct {
	hash uint64
	refEntry
}

// refTable is an open-addressing hash table with linear probing, at most
// three quarters full. Keys are never deleted: a generation is dropped
// whole.
type refTable struct {
	slots []refSlot // length a power of two, or 0
	n     int
}

// find returns the slot of hash h, or nil.
func (t *refTable) find(h uint64) *refSlot {
	if len(t.slots) == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.hash == h {
			return s
		}
		if s.hash == 0 {
			return nil
		}
	}
}

// set stores e under h, replacing the entry of h if there is one.
func (t *refTable) set(h uint64, e refEntry) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.hash == h {
			s.refEntry = e
			return
		}
		if s.hash == 0 {
			*s = refSlot{hash: h, refEntry: e}
			t.n++
			return
		}
	}
}

func (t *refTable) grow() {
	old := t.slots
	n := 2 * len(old)
	if n == 0 {
		n = 64
	}
	t.slots, t.n = make([]refSlot, n), 0
	for i := range old {
		if old[i].hash != 0 {
			t.set(old[i].hash, old[i].refEntry)
		}
	}
}

func newRefCache() *refCache {
	return &refCache{rotated: time.Now()}
}

// refLookup is the outcome of a lookup: the cached entry, and whether it
// was found and in which generation.
type refLookup struct {
	refEntry
	found   bool
	fromOld bool // found in the previous generation: to be promoted by putMany
}

// getMany looks up hs[i] (0: nothing to look up) into out[i], out being at
// least as long as hs. Entries are returned unverified.
func (c *refCache) getMany(hs []uint64, out []refLookup) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, h := range hs {
		out[i] = refLookup{}
		if h == 0 {
			continue
		}
		if s := c.cur.find(h); s != nil {
			out[i] = refLookup{refEntry: s.refEntry, found: true}
		} else if s := c.prev.find(h); s != nil {
			out[i] = refLookup{refEntry: s.refEntry, found: true, fromOld: true}
		}
	}
}

// get returns the entry of hash h, or false (for tests).
func (c *refCache) get(h uint64) (refEntry, bool) {
	var out [1]refLookup
	c.getMany([]uint64{h}, out[:])
	if out[0].fromOld {
		c.putMany([]refPut{{hash: h, refEntry: out[0].refEntry}})
	}
	return out[0].refEntry, out[0].found
}

// refPut is an entry to record.
type refPut struct {
	hash uint64
	refEntry
}

// putMany records the entries ps, starting a new generation first when the
// current one is old enough.
func (c *refCache) putMany(ps []refPut) {
	if len(ps) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.rotated) > refCacheGeneration {
		c.prev, c.rotated = c.cur, now
		c.cur = refTable{slots: make([]refSlot, len(c.cur.slots))}
	}
	for _, p := range ps {
		c.cur.set(p.hash, p.refEntry)
	}
}

// put records that the series of hash h with labels ls has ref (for tests).
func (c *refCache) put(h uint64, ls labels.Labels, ref storage.SeriesRef) {
	c.putMany([]refPut{{hash: h, refEntry: refEntry{ref: ref, ls: ls}}})
}

// len is the number of cached series (for tests).
func (c *refCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := c.cur.n
	for _, s := range c.prev.slots {
		if s.hash != 0 && c.cur.find(s.hash) == nil {
			n++
		}
	}
	return n
}

// keyHash accumulates the cache key of a label set from the hashes of its
// names and values, in order. Pairs with an empty value, and the label the
// handler drops (the HA replica label), are left out by the callers, as the
// handler leaves them out of the labels it builds.
type keyHash uint64

// keySeed is the key of an empty label set.
const keySeed keyHash = 0x9e3779b97f4a7c15

// add mixes in the hash of a name or value.
func (k keyHash) add(h uint64) keyHash {
	return keyHash(bits.RotateLeft64(uint64(k)^h, 31) * 0xbf58476d1ce4e5b9)
}

// sum finishes the key: well spread in its low bits, which index the
// table, and never 0, which marks an empty slot.
func (k keyHash) sum() uint64 {
	x := uint64(k)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	if x == 0 {
		x = 1
	}
	return x
}

// stringHash is the hash of one name or value, never 0 (which the 2.0
// path's table of symbol hashes uses for "not computed yet").
func stringHash(s string) uint64 {
	if h := xxhash.Sum64String(s); h != 0 {
		return h
	}
	return 1
}

// pairsReader walks a label set in labels.Labels' own encoding, as in
// Prometheus's default (stringlabels) build: each name and value preceded
// by its length, one byte below 255, else 255 and three bytes
// little-endian. It verifies a cache hit without building the label set
// received. In other builds the encoding differs and every verification
// fails: slower, never wrong.
type pairsReader struct {
	b []byte
	i int
}

// next reports whether the next pair is name=value, and moves past it.
func (r *pairsReader) next(name, value string) bool {
	ln, lv := len(name), len(value)
	if ln < 255 && lv < 255 {
		// Both lengths in one byte, the usual case: one bounds check.
		i, end := r.i, r.i+2+ln+lv
		if end > len(r.b) || r.b[i] != byte(ln) || r.b[i+1+ln] != byte(lv) ||
			string(r.b[i+1:i+1+ln]) != name || string(r.b[i+2+ln:end]) != value {
			return false
		}
		r.i = end
		return true
	}
	return r.str(name) && r.str(value)
}

// str reads one name or value of any length.
func (r *pairsReader) str(s string) bool {
	if r.i >= len(r.b) {
		return false
	}
	n := int(r.b[r.i])
	r.i++
	if n == 255 {
		if len(r.b)-r.i < 3 {
			return false
		}
		n = int(r.b[r.i]) | int(r.b[r.i+1])<<8 | int(r.b[r.i+2])<<16
		r.i += 3
	}
	if n != len(s) || len(r.b)-r.i < n || string(r.b[r.i:r.i+n]) != s {
		return false
	}
	r.i += n
	return true
}

// done reports whether every pair was read.
func (r *pairsReader) done() bool { return r.i == len(r.b) }

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

// symHash returns the hash of symbol i, computing it on first use: a
// request's symbols are each hashed once, however many series use them.
func (r *Request) symHash(i uint32) uint64 {
	if h := r.symHashes[i]; h != 0 {
		return h
	}
	h := stringHash(r.Symbols[i])
	r.symHashes[i] = h
	return h
}

// key is the cache key of series s: its label pairs with a value, less the
// label drop, combined from one hash per name and value. It is 0 when the
// series is not looked up: only a series the pipeline would accept may hit,
// so one it rejects for its shape (odd or out-of-range label references, no
// samples where RejectEmpty, metadata references out of range) is
// validated instead.
func (r *Request) key(s *Series, drop string) uint64 {
	refs := r.Refs[s.Labels.Lo:s.Labels.Hi]
	if len(refs)%2 != 0 || r.RejectEmpty && s.count() == 0 ||
		int(s.Meta.UnitRef) >= len(r.Symbols) || int(s.Meta.HelpRef) >= len(r.Symbols) {
		return 0
	}
	k := keySeed
	for i := 0; i < len(refs); i += 2 {
		n, v := refs[i], refs[i+1]
		if int(n) >= len(r.Symbols) || int(v) >= len(r.Symbols) {
			return 0
		}
		if r.Symbols[v] == "" || drop != "" && r.Symbols[n] == drop {
			continue
		}
		k = k.add(r.symHash(n)).add(r.symHash(v))
	}
	return k.sum()
}

// match reports whether the label pairs of series s, as key sees them, are
// the label set pr reads. key has checked the references.
func (r *Request) match(pr *pairsReader, s *Series, drop string) bool {
	refs := r.Refs[s.Labels.Lo:s.Labels.Hi]
	for i := 0; i+1 < len(refs); i += 2 {
		name, value := r.Symbols[refs[i]], r.Symbols[refs[i+1]]
		if value == "" || drop != "" && name == drop {
			continue
		}
		if !pr.next(name, value) {
			return false
		}
	}
	return pr.done()
}

// refBatch is the reference cache's part of one request: the key of each
// series (0 for series not looked up), the verified lookups, and the
// entries to record once the request is appended.
type refBatch struct {
	hashes  []uint64
	found   []refLookup
	puts    []refPut
	scratch []byte
}

// start prepares the batch for n series.
func (rb *refBatch) start(n int) {
	rb.hashes = slices.Grow(rb.hashes[:0], n)[:n]
	clear(rb.hashes)
	rb.found = slices.Grow(rb.found[:0], n)[:n]
	rb.puts = rb.puts[:0]
}

// reset drops the references to labels, for the pool.
func (rb *refBatch) reset() {
	clear(rb.found)
	clear(rb.puts)
	rb.found, rb.puts = rb.found[:0], rb.puts[:0]
}

// encoded returns a reader of the labels found for series i.
func (rb *refBatch) encoded(i int) pairsReader {
	rb.scratch = rb.found[i].ls.Bytes(rb.scratch)
	return pairsReader{b: rb.scratch}
}

// hit returns the verified cache entry of series i, if there is one.
func (rb *refBatch) hit(i int) (labels.Labels, storage.SeriesRef, bool) {
	lk := &rb.found[i]
	if !lk.found {
		return labels.EmptyLabels(), 0, false
	}
	return lk.ls, lk.ref, true
}

// appended records that series i, whose ref was first before its samples
// were appended and is ref after, has labels ls.
func (rb *refBatch) appended(i int, ls labels.Labels, first, ref storage.SeriesRef) {
	lk := &rb.found[i]
	if rb.hashes[i] != 0 && ref != 0 && (!lk.found || ref != first || lk.fromOld) {
		rb.puts = append(rb.puts, refPut{hash: rb.hashes[i], refEntry: refEntry{ref: ref, ls: ls}})
	}
}
