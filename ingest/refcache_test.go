package ingest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// requestOf is a request of one series with the name, value pairs kv, each
// string a symbol of its own, as the 1.0 decoder makes it.
func requestOf(kv ...string) *Request {
	r := &Request{}
	for i := 0; i+1 < len(kv); i += 2 {
		r.AddLabel(kv[i], kv[i+1])
	}
	r.Series = []Series{{Labels: Span{0, len(r.Refs)}, Samples: Span{0, 1}}}
	r.symHashes = make([]uint64, len(r.Symbols))
	return r
}

// hashOf is the cache key of the labels kv.
func hashOf(kv ...string) uint64 {
	r := requestOf(kv...)
	return r.key(&r.Series[0], "")
}

// TestCacheKeyLookup checks that a cached label set is found exactly when
// the received pairs (less empty values and the dropped HA replica label)
// are its labels, in order, and that 1.0 and 2.0 series of the same labels
// have the same key.
func TestCacheKeyLookup(t *testing.T) {
	long := strings.Repeat("x", 300)
	ls := labels.FromStrings("__name__", "up", "job", "node", "long", long)
	c := newRefCache()
	c.put(hashOf("__name__", "up", "job", "node", "long", long), ls, 7)
	for _, tc := range []struct {
		name  string
		pairs []string
		drop  string
		want  bool
	}{
		{"equal", []string{"__name__", "up", "job", "node", "long", long}, "", true},
		{"empty values skipped", []string{"__name__", "up", "a", "", "job", "node", "long", long, "z", ""}, "", true},
		{"dropped label skipped", []string{"__name__", "up", "job", "node", "long", long, "replica", "r1"}, "replica", true},
		{"label not dropped", []string{"__name__", "up", "job", "node", "long", long, "replica", "r1"}, "", false},
		{"other value", []string{"__name__", "up", "job", "nodes", "long", long}, "", false},
		{"other long value", []string{"__name__", "up", "job", "node", "long", long + "y"}, "", false},
		{"fewer", []string{"__name__", "up", "job", "node"}, "", false},
		{"more", []string{"__name__", "up", "job", "node", "long", long, "x", "y"}, "", false},
		{"other order", []string{"job", "node", "__name__", "up", "long", long}, "", false},
		{"none", nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The same labels as a 1.0 decoder sends them (a symbol per
			// string) and as a 2.0 request does (a shared table).
			one := requestOf(tc.pairs...)
			two := &Request{Symbols: []string{""}}
			idx := map[string]uint32{"": 0}
			for _, str := range tc.pairs {
				if _, ok := idx[str]; !ok {
					idx[str] = two.AddSymbol(str)
				}
				two.Refs = append(two.Refs, idx[str])
			}
			two.Series = []Series{{Labels: Span{0, len(two.Refs)}, Samples: Span{0, 1}}}
			two.symHashes = make([]uint64, len(two.Symbols))
			k1, k2 := one.key(&one.Series[0], tc.drop), two.key(&two.Series[0], tc.drop)
			// (Without labels, the 1.0 request has no symbols at all: its
			// metadata references are out of range, and it is not looked up.)
			if k1 != k2 && len(tc.pairs) > 0 {
				t.Fatalf("1.0 key %x, 2.0 key %x", k1, k2)
			}
			var rb refBatch
			rb.start(1)
			rb.hashes[0] = k1
			c.getMany(rb.hashes, rb.found)
			hit1, hit2 := rb.found[0].found, rb.found[0].found
			if hit1 {
				r := rb.encoded(0)
				hit1 = one.match(&r, &one.Series[0], tc.drop)
				r = rb.encoded(0)
				hit2 = two.match(&r, &two.Series[0], tc.drop)
			}
			if hit1 != tc.want || hit2 != tc.want {
				t.Fatalf("hit %v (1.0), %v (2.0); want %v", hit1, hit2, tc.want)
			}
			if got, ref, _ := rb.hit(0); tc.want && (ref != 7 || !labels.Equal(got, ls)) {
				t.Fatalf("entry %v %v", got, ref)
			}
		})
	}
	// A colliding entry (another label set under the same hash) is a miss.
	h := hashOf("__name__", "down")
	c.put(h, ls, 8)
	var rb refBatch
	rb.start(1)
	rb.hashes[0] = h
	c.getMany(rb.hashes, rb.found)
	r := rb.encoded(0)
	down := requestOf("__name__", "down")
	if !rb.found[0].found || down.match(&r, &down.Series[0], "") {
		t.Fatalf("colliding entry %v not found, or taken for a hit", rb.found[0])
	}
}

// TestPairsReader checks the verification against labels' encoding,
// lengths of 255 and more included, and that it never reads past a
// truncated encoding.
func TestPairsReader(t *testing.T) {
	long := strings.Repeat("v", 255)
	ls := labels.FromStrings("a", long)
	enc := ls.Bytes(nil)
	r := pairsReader{b: enc}
	if !r.next("a", long) || !r.done() {
		t.Fatal("pair with a 255-byte value not matched")
	}
	for n := range len(enc) {
		r := pairsReader{b: enc[:n]}
		if r.next("a", long) && r.done() {
			t.Fatalf("truncated encoding (%d of %d bytes) matched", n, len(enc))
		}
	}
}

func TestRefCacheGenerations(t *testing.T) {
	c := newRefCache()
	ls := labels.FromStrings("__name__", "up")
	c.put(1, ls, 10)
	c.put(2, ls, 20)
	c.rotated = time.Now().Add(-2 * refCacheGeneration)
	c.put(3, ls, 30) // rotates: entries 1 and 2 move to the previous generation
	if c.len() != 3 {
		t.Fatalf("cache holds %d series, want 3", c.len())
	}
	if e, ok := c.get(1); !ok || e.ref != 10 {
		t.Fatalf("entry 1 not found in the previous generation: %v %v", e, ok)
	}
	// get promoted entry 1; two more rotations drop entry 2, unused.
	c.rotated = time.Now().Add(-2 * refCacheGeneration)
	c.put(4, ls, 40)
	if e, ok := c.get(1); !ok || e.ref != 10 {
		t.Fatalf("promoted entry 1 lost: %v %v", e, ok)
	}
	c.rotated = time.Now().Add(-2 * refCacheGeneration)
	c.put(5, ls, 50)
	if _, ok := c.get(2); ok {
		t.Fatal("entry unused for two generations still cached")
	}
	if e, ok := c.get(1); !ok || e.ref != 10 {
		t.Fatalf("entry 1, used in every generation, lost: %v %v", e, ok)
	}
}

// TestRefTableGrows fills a table past several growths and finds every
// entry, and replaces an entry put again.
func TestRefTableGrows(t *testing.T) {
	var tb refTable
	ls := labels.FromStrings("__name__", "up")
	const n = 5000
	key := func(i uint64) uint64 { return i*0x9e3779b97f4a7c15 | 1 }
	for i := uint64(1); i <= n; i++ {
		tb.set(key(i), refEntry{ref: storage.SeriesRef(i), ls: ls})
	}
	tb.set(key(7), refEntry{ref: 70000, ls: ls})
	if tb.n != n || tb.n*4 > len(tb.slots)*3 {
		t.Fatalf("%d entries in %d slots", tb.n, len(tb.slots))
	}
	for i := uint64(1); i <= n; i++ {
		want := storage.SeriesRef(i)
		if i == 7 {
			want = 70000
		}
		if s := tb.find(key(i)); s == nil || s.ref != want {
			t.Fatalf("entry %d: %v", i, s)
		}
	}
	if s := tb.find(2); s != nil {
		t.Fatalf("absent key found: %v", s)
	}
}

// TestRefCacheConcurrent has requests look up and record series at the
// same time (run with -race): every entry found is one a request recorded
// for its hash.
func TestRefCacheConcurrent(t *testing.T) {
	c := newRefCache()
	ls := labels.FromStrings("__name__", "up")
	const n = 2000
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs := make([]uint64, n)
			found := make([]refLookup, n)
			for round := range 20 {
				var puts []refPut
				for i := range hs {
					hs[i] = uint64((i*7+w*13+round)%(3*n)) + 1
				}
				c.getMany(hs, found)
				for i, f := range found {
					if f.found && f.ref != storage.SeriesRef(hs[i]*10) {
						t.Errorf("hash %d found with ref %d", hs[i], f.ref)
						return
					}
					if !f.found {
						puts = append(puts, refPut{hash: hs[i], refEntry: refEntry{ref: storage.SeriesRef(hs[i] * 10), ls: ls}})
					}
				}
				c.putMany(puts)
			}
		}()
	}
	wg.Wait()
	if c.len() == 0 || c.len() > 3*n {
		t.Fatalf("cache holds %d series", c.len())
	}
}
