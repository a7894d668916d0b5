package remotewrite

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/strata-tsdb/strata/bench/load"
)

// checkFlatV1 fails unless the flat decoder either gives up on data or
// decodes exactly what gogo decodes.
func checkFlatV1(t *testing.T, data []byte) bool {
	t.Helper()
	var f flatV1
	ok := f.decode(data)
	var wr prompb.WriteRequest
	err := wr.Unmarshal(data)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("flat decoder accepted a body gogo rejects (%v)", err)
	}
	if len(wr.Metadata) > 0 {
		t.Fatal("flat decoder accepted a body with metadata")
	}
	if len(f.series) != len(wr.Timeseries) {
		t.Fatalf("flat decoder found %d series, gogo %d", len(f.series), len(wr.Timeseries))
	}
	for i, s := range f.series {
		want := wr.Timeseries[i]
		if s.complex > 0 {
			if got := f.complex[s.complex-1]; !reflect.DeepEqual(got, want) {
				t.Fatalf("series %d: flat %+v, gogo %+v", i, got, want)
			}
			continue
		}
		if len(want.Exemplars)+len(want.Histograms) > 0 {
			t.Fatalf("series %d: flat decoder missed exemplars or histograms", i)
		}
		got := prompb.TimeSeries{Labels: f.labels[s.lblLo:s.lblHi], Samples: f.samples[s.smpLo:s.smpHi]}
		if len(got.Labels) != len(want.Labels) || len(got.Samples) != len(want.Samples) {
			t.Fatalf("series %d: flat %+v, gogo %+v", i, got, want)
		}
		for j := range got.Labels {
			if got.Labels[j].Name != want.Labels[j].Name || got.Labels[j].Value != want.Labels[j].Value {
				t.Fatalf("series %d: flat labels %v, gogo %v", i, got.Labels, want.Labels)
			}
		}
		for j := range got.Samples {
			g, w := got.Samples[j], want.Samples[j]
			if g.Timestamp != w.Timestamp || !sameFloat(g.Value, w.Value) {
				t.Fatalf("series %d: flat samples %v, gogo %v", i, got.Samples, want.Samples)
			}
		}
	}
	return true
}

func checkFlatV2(t *testing.T, data []byte) bool {
	t.Helper()
	var f flatV2
	ok := f.decode(data)
	var wr writev2.Request
	err := wr.Unmarshal(data)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("flat decoder accepted a body gogo rejects (%v)", err)
	}
	if !reflect.DeepEqual(f.symbols, wr.Symbols) && (len(f.symbols) != 0 || len(wr.Symbols) != 0) {
		t.Fatalf("symbols: flat %q, gogo %q", f.symbols, wr.Symbols)
	}
	if len(f.series) != len(wr.Timeseries) {
		t.Fatalf("flat decoder found %d series, gogo %d", len(f.series), len(wr.Timeseries))
	}
	for i, s := range f.series {
		want := wr.Timeseries[i]
		if s.complex > 0 {
			if got := f.complex[s.complex-1]; !reflect.DeepEqual(got, want) {
				t.Fatalf("series %d: flat %+v, gogo %+v", i, got, want)
			}
			continue
		}
		if len(want.Exemplars)+len(want.Histograms) > 0 {
			t.Fatalf("series %d: flat decoder missed exemplars or histograms", i)
		}
		refs, smp := f.refs[s.lblLo:s.lblHi], f.samples[s.smpLo:s.smpHi]
		if !reflect.DeepEqual(refs, want.LabelsRefs) && (len(refs) != 0 || len(want.LabelsRefs) != 0) {
			t.Fatalf("series %d: label refs flat %v, gogo %v", i, refs, want.LabelsRefs)
		}
		if len(smp) != len(want.Samples) {
			t.Fatalf("series %d: flat samples %v, gogo %v", i, smp, want.Samples)
		}
		for j := range smp {
			g, w := smp[j], want.Samples[j]
			if g.Timestamp != w.Timestamp || g.StartTimestamp != w.StartTimestamp || !sameFloat(g.Value, w.Value) {
				t.Fatalf("series %d: flat samples %v, gogo %v", i, smp, want.Samples)
			}
		}
		m, wm := s.meta, want.Metadata
		if m.Type != wm.Type || m.HelpRef != wm.HelpRef || m.UnitRef != wm.UnitRef {
			t.Fatalf("series %d: flat metadata %+v, gogo %+v", i, m, wm)
		}
	}
	return true
}

func sameFloat(a, b float64) bool { return a == b || a != a && b != b }

// FuzzFlatV1 checks that the flat 1.0 decoder never accepts what gogo
// rejects and, when it accepts, decodes the same request.
func FuzzFlatV1(f *testing.F) {
	now := time.Now().UnixMilli()
	for _, wr := range seedsV1(now) {
		f.Add(marshalV1(wr))
	}
	valid := marshalV1(seedsV1(now)[0])
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x0a, 0x04, 0x12, 0x02, 0x10, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) { checkFlatV1(t, data) })
}

// FuzzFlatV2 is FuzzFlatV1 for remote write 2.0.
func FuzzFlatV2(f *testing.F) {
	now := time.Now().UnixMilli()
	for _, wr := range seedsV2(now) {
		f.Add(marshalV2(wr))
	}
	valid := marshalV2(seedsV2(now)[0])
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{0x22, 0x00, 0x2a, 0x04, 0x0a, 0x02, 0x00, 0x00})
	f.Add([]byte{0x22, 0x00, 0x2a, 0x04, 0x08, 0x01, 0x08, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) { checkFlatV2(t, data) })
}

// TestFlatDecodesPrometheusShapedRequests checks that the requests
// Prometheus sends in the common case (float samples, 2.0 metadata) take
// the flat path, and that requests with 1.0 metadata do not.
func TestFlatDecodesPrometheusShapedRequests(t *testing.T) {
	d, err := load.Generate(load.DataSpec{Series: 500, IntervalMs: 15000, Steps: 2, StartMs: 1, BatchSamples: 200, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range d.V1 {
		for _, body := range step {
			if !checkFlatV1(t, mustSnappyDecode(t, body)) {
				t.Fatal("flat decoder gave up on a plain 1.0 request")
			}
		}
	}
	for _, step := range d.V2 {
		for _, body := range step {
			if !checkFlatV2(t, mustSnappyDecode(t, body)) {
				t.Fatal("flat decoder gave up on a plain 2.0 request")
			}
		}
	}
	now := time.Now().UnixMilli()
	for i, wr := range seedsV1(now) {
		ok := checkFlatV1(t, marshalV1(wr))
		if wantOK := len(wr.Metadata) == 0; ok != wantOK {
			t.Errorf("1.0 seed %d: flat decoder accepted = %v, want %v", i, ok, wantOK)
		}
	}
	for i, wr := range seedsV2(now) {
		if !checkFlatV2(t, marshalV2(wr)) {
			t.Errorf("2.0 seed %d: flat decoder gave up", i)
		}
	}
}

// TestLabelKeyLookup checks that a cached label set is found exactly when
// the received pairs (less empty values) are its labels, in order.
func TestLabelKeyLookup(t *testing.T) {
	ls := labels.FromStrings("__name__", "up", "job", "node", "long", strings.Repeat("x", 300))
	c := newRefCache()
	var k labelKey
	k.reset()
	ls.Range(func(l labels.Label) { k.add(l.Name, l.Value) })
	c.put(xxhash.Sum64(k.buf), ls, 7)
	for _, tc := range []struct {
		name  string
		pairs []string
		want  bool
	}{
		{"equal", []string{"__name__", "up", "job", "node", "long", strings.Repeat("x", 300)}, true},
		{"empty values skipped", []string{"__name__", "up", "a", "", "job", "node", "long", strings.Repeat("x", 300), "z", ""}, true},
		{"other value", []string{"__name__", "up", "job", "nodes", "long", strings.Repeat("x", 300)}, false},
		{"fewer", []string{"__name__", "up", "job", "node"}, false},
		{"more", []string{"__name__", "up", "job", "node", "long", strings.Repeat("x", 300), "x", "y"}, false},
		{"other order", []string{"job", "node", "__name__", "up", "long", strings.Repeat("x", 300)}, false},
		{"none", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k.reset()
			for i := 0; i < len(tc.pairs); i += 2 {
				k.add(tc.pairs[i], tc.pairs[i+1])
			}
			var scratch []byte
			e, _, hit := c.lookup(&k, &scratch)
			if hit != tc.want || hit && (e.ref != 7 || !labels.Equal(e.ls, ls)) {
				t.Fatalf("lookup = %v, %v; want hit %v", e, hit, tc.want)
			}
		})
	}
	// A colliding entry (another label set under the same hash) is a miss.
	k.reset()
	k.add("__name__", "down")
	c.put(xxhash.Sum64(k.buf), ls, 8)
	var scratch []byte
	if e, _, hit := c.lookup(&k, &scratch); hit {
		t.Fatalf("colliding entry %v taken for a hit", e)
	}
}

func TestRefCacheGenerations(t *testing.T) {
	c := newRefCache()
	ls := labels.FromStrings("__name__", "up")
	c.put(1, ls, 10)
	for i := range c.shards {
		c.shards[i].rotated = time.Now().Add(-2 * refCacheGeneration)
	}
	c.put(2, ls, 20) // rotates shard 2: entry 1 is in another shard
	if e, ok := c.get(1); !ok || e.ref != 10 {
		t.Fatalf("entry 1 lost: %v %v", e, ok)
	}
	s := c.shard(1)
	s.rotated = time.Now().Add(-2 * refCacheGeneration)
	c.put(1+refCacheShards, ls, 30) // rotates shard 1: entry 1 moves to prev
	if e, ok := c.get(1); !ok || e.ref != 10 {
		t.Fatalf("entry 1 not found in the previous generation: %v %v", e, ok)
	}
	// get promoted it; two more rotations without use drop it.
	s.rotated = time.Now().Add(-2 * refCacheGeneration)
	c.put(1+2*refCacheShards, ls, 40)
	s.rotated = time.Now().Add(-2 * refCacheGeneration)
	c.put(1+3*refCacheShards, ls, 50)
	if _, ok := c.get(1); ok {
		t.Fatal("entry unused for two generations still cached")
	}
}

// TestCachedSeriesAreStoredAndRejectedAlike sends the same requests several
// times, so that later ones hit the reference cache, and checks that what
// is stored and rejected does not depend on the cache: also when a cached
// reference went stale or a cache entry belongs to another label set (a
// hash collision).
func TestCachedSeriesAreStoredAndRejectedAlike(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		name := "1.0"
		if v2 {
			name = "2.0"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			now := e.nowMs
			post := func(ts int64) *httptest.ResponseRecorder {
				if v2 {
					b := newV2()
					b.meta(b.floats([]string{"__name__", "up", "job", "node"}, float64(ts), 1), writev2.Metadata_METRIC_TYPE_GAUGE, "Up.", "")
					b.floats([]string{"__name__", "load", "job", "node"}, float64(ts), 2)
					b.floats([]string{"__name__", "x", "z", "1", "a", "2"}, float64(ts), 3)
					return e.postV2(b.build())
				}
				return e.postV1(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
					ts1(lbls("__name__", "up", "job", "node"), floats(float64(ts), 1)...),
					ts1(lbls("__name__", "load", "job", "node", "empty", ""), floats(float64(ts), 2)...),
					ts1(lbls("__name__", "x", "z", "1", "a", "2"), floats(float64(ts), 3)...),
				}})
			}
			for i := range 3 {
				if w := post(now - int64(3-i)*1000); w.Code != http.StatusBadRequest {
					t.Fatalf("request %d: status %d, want 400: %s", i, w.Code, w.Body.String())
				}
			}
			c := e.h.fast.refs.get(testTenant)
			if c.len() != 2 {
				t.Fatalf("cache holds %d series, want the 2 valid ones", c.len())
			}
			// Make the cached refs wrong: one stale, one pointing at the other series.
			upKey, loadKey := hashOf("__name__", "up", "job", "node"), hashOf("__name__", "load", "job", "node")
			up, _ := c.get(upKey)
			load, _ := c.get(loadKey)
			c.put(upKey, up.ls, 1<<40)
			c.put(loadKey, up.ls, up.ref) // a colliding entry: labels of another series
			if w := post(now); w.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", w.Code, w.Body.String())
			}
			if got, _ := c.get(loadKey); got.ref != load.ref || !labels.Equal(got.ls, load.ls) {
				t.Errorf("colliding entry not replaced: %v, want %v", got, load)
			}
			want := map[string][]string{
				`{__name__="up", job="node"}`:   {fs(now-3000, 1), fs(now-2000, 1), fs(now-1000, 1), fs(now, 1)},
				`{__name__="load", job="node"}`: {fs(now-3000, 2), fs(now-2000, 2), fs(now-1000, 2), fs(now, 2)},
			}
			e.assertStored(t, testTenant, want)
			if got := e.rejected(t, testTenant, reasonInvalidLabels); got != 4 {
				t.Errorf("rejected %v samples for invalid labels, want 4", got)
			}
		})
	}
}

func hashOf(kv ...string) uint64 {
	var k labelKey
	k.reset()
	for i := 0; i < len(kv); i += 2 {
		k.add(kv[i], kv[i+1])
	}
	return xxhash.Sum64(k.buf)
}

func mustSnappyDecode(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := snappy.Decode(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
