package frontend

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/promqltest"

	"github.com/strata-tsdb/strata/internal/proctest"
)

// TestMemcached runs the memcached backend against Debian's memcached:
// generations are shared by every client, a lost one comes back as a value
// it never had, values round-trip, and a memcached that went away makes
// queries answer without the cache, never fail.
func TestMemcached(t *testing.T) {
	if testing.Short() {
		t.Skip("starts memcached")
	}
	proc, addr := proctest.StartMemcached(t)
	cfg := MemcachedConfig{Addresses: addr, Timeout: model.Duration(time.Second), MaxItemBytes: 1 << 20}
	m := newMetrics(prometheus.NewRegistry())
	a, b := newMemcachedCache(cfg, m, nil), newMemcachedCache(cfg, m, nil)
	defer a.close()
	defer b.close()
	ctx := context.Background()
	keys := []string{"sfg:t", "sfg:t:1", "sfg:u:1"}
	g1, err := a.generations(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := b.generations(ctx, keys)
	if err != nil || !slices.Equal(g1, g2) {
		t.Fatalf("two clients see generations %v and %v (%v)", g1, g2, err)
	}
	if err := a.bump(ctx, keys[1:2]); err != nil {
		t.Fatal(err)
	}
	g3, _ := b.generations(ctx, keys)
	if g3[0] != g1[0] || g3[1] == g1[1] || g3[2] != g1[2] {
		t.Fatalf("after bumping %s: %v, before %v", keys[1], g3, g1)
	}
	// Memcached loses a generation (evicted): it comes back new.
	if err := a.c.Delete(keys[1]); err != nil {
		t.Fatal(err)
	}
	g4, _ := b.generations(ctx, keys)
	if g4[1] == g3[1] || g4[1] == g1[1] {
		t.Fatalf("a lost generation came back as an old value: %v (before %v, %v)", g4[1], g1[1], g3[1])
	}
	// A bump of a lost generation makes a new one too.
	_ = a.c.Delete(keys[2])
	if err := a.bump(ctx, keys[2:]); err != nil {
		t.Fatal(err)
	}
	if g5, _ := b.generations(ctx, keys); g5[2] == g4[2] {
		t.Fatal("a bump of a lost generation left its old value")
	}

	v := encodeEntry("k", 1, []*extent{{start: 0, end: 10}})
	a.store(ctx, "t", "sfe:t:k", v)
	if got := b.fetch(ctx, []string{"sfe:t:k", "sfe:t:none"}); len(got) != 1 || string(got["sfe:t:k"]) != string(v) {
		t.Fatalf("fetched %q", got)
	}
	a.store(ctx, "t", "sfe:t:big", make([]byte, 2<<20)) // zeros: snappy would shrink them
	big := make([]byte, 2<<20)
	for i, r := 0, rand.New(rand.NewPCG(1, 2)); i < len(big); i++ {
		big[i] = byte(r.Uint32()) // incompressible
	}
	before := testutilCounter(t, m.tooLarge)
	a.store(ctx, "t", "sfe:t:big2", big)
	if testutilCounter(t, m.tooLarge) != before+1 {
		t.Error("a value larger than the item size was sent")
	}

	// Without memcached, queries are answered without the cache.
	st := promqltest.LoadedStorage(t, "load 1m\n  x 0+1x120\n")
	fe, eng := testFrontend(t, func(c *Config) {
		c.ResultsCache.Backend = BackendMemcached
		c.ResultsCache.Memcached = cfg
		c.ResultsCache.Memcached.Timeout = model.Duration(200 * time.Millisecond)
	}, func() time.Time { return time.Unix(1e6, 0) })
	defer fe.Close()
	ctxT := withTenant("t")
	want := rangeQuery(t, eng, ctxT, st, "x", 0, 7200e3, time.Minute)
	for _, up := range []bool{true, true, false} {
		if !up {
			proc.Kill()
		}
		got := rangeQuery(t, fe, ctxT, st, "x", 0, 7200e3, time.Minute)
		if d := diffResults("x", want, got); d != "" {
			t.Fatalf("memcached up %t: %s", up, d)
		}
	}
	if testutilCounter(t, fe.m.lookups.WithLabelValues("t", "hit")) == 0 {
		t.Error("no hit while memcached was up")
	}
}
