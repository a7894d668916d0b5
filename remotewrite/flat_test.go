package remotewrite

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"

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
			var lbls []prompb.Label
			f := &flatV2{symbols: []string{""}}
			s := flatSeries{lblLo: 0, smpHi: 1}
			for i := 0; i < len(tc.pairs); i += 2 {
				lbls = append(lbls, prompb.Label{Name: tc.pairs[i], Value: tc.pairs[i+1]})
				f.refs = append(f.refs, uint32(len(f.symbols)), uint32(len(f.symbols)+1))
				f.symbols = append(f.symbols, tc.pairs[i], tc.pairs[i+1])
			}
			s.lblHi = len(f.refs)
			f.symHashes = make([]uint64, len(f.symbols))
			k1, k2 := keyV1(lbls, tc.drop), f.keyV2(&s, tc.drop)
			if k1 != k2 {
				t.Fatalf("1.0 key %x, 2.0 key %x", k1, k2)
			}
			var rb refBatch
			rb.start(1)
			rb.hashes[0] = k1
			c.getMany(rb.hashes, rb.found)
			hit1, hit2 := rb.found[0].found, rb.found[0].found
			if hit1 {
				r := rb.encoded(0)
				hit1 = matchV1(&r, lbls, tc.drop)
				r = rb.encoded(0)
				hit2 = f.matchV2(&r, f.refs, tc.drop)
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
	if !rb.found[0].found || matchV1(&r, []prompb.Label{{Name: "__name__", Value: "down"}}, "") {
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
	var lbls []prompb.Label
	for i := 0; i < len(kv); i += 2 {
		lbls = append(lbls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return keyV1(lbls, "")
}

func mustSnappyDecode(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := snappy.Decode(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetadataV2Interleaved checks that the metadata of a 2.0 request is
// stored whole when families interleave and repeat, and when series of one
// family carry different entries, sent twice so that the second request
// hits the reference cache.
func TestMetadataV2Interleaved(t *testing.T) {
	e := newEnv(t)
	gauge, counter := writev2.Metadata_METRIC_TYPE_GAUGE, writev2.Metadata_METRIC_TYPE_COUNTER
	for i := range 2 {
		ts := e.nowMs - int64(2-i)*1000
		b := newV2()
		for _, s := range []struct {
			kv   []string
			typ  writev2.Metadata_MetricType
			help string
		}{
			{[]string{"__name__", "a", "i", "1"}, gauge, "A."},
			{[]string{"__name__", "b_total", "i", "1"}, counter, "B."},
			{[]string{"__name__", "a", "i", "2"}, gauge, "A."},
			{[]string{"__name__", "b_total", "i", "2"}, counter, "B."},
			{[]string{"__name__", "a", "i", "3"}, gauge, "A, other help."},
			{[]string{"__name__", "a", "i", "4"}, gauge, "A."},
		} {
			b.meta(b.floats(s.kv, float64(ts), 1), s.typ, s.help, "")
		}
		assertCode(t, e.postV2(b.build()), http.StatusNoContent)
	}
	assertMetadata(t, e.metadataOf(t, testTenant), map[string][]metadata.Metadata{
		"a":       {{Type: model.MetricTypeGauge, Help: "A."}, {Type: model.MetricTypeGauge, Help: "A, other help."}},
		"b_total": {{Type: model.MetricTypeCounter, Help: "B."}},
	})
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
