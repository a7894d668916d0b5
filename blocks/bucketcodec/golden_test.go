package bucketcodec

import (
	"hash/crc32"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/value"
)

// TestXORAppenderIsStable pins the bytes chunkenc's XOR appender writes for
// fixed samples. Objects already in buckets are decoded by rebuilding their
// chunks with that appender, and the index points at chunk offsets: if a
// Prometheus upgrade made the appender write other bytes for the same
// samples, old bucket objects would no longer decode to their blocks. This
// test fails first; the bucket form would then need a version that carries
// the old appender's choices.
func TestXORAppenderIsStable(t *testing.T) {
	cases := []struct {
		name string
		ts   []int64
		vs   []float64
	}{
		{"counter", seq(120, func(i int) int64 { return 1_700_000_000_000 + int64(i)*15000 }), seqf(120, func(i int) float64 { return float64(10000+i*i*7) / 100 })},
		{"gauge with jitter", seq(120, func(i int) int64 { return int64(i)*15000 + int64(i%3) }), seqf(120, func(i int) float64 { return float64((i*7919)%1000) * 1.37e3 })},
		{"specials", []int64{0, 1, 2, 3, 4}, []float64{math.NaN(), math.Inf(1), math.Copysign(0, -1), math.Float64frombits(value.StaleNaN), 5e-324}},
	}
	for _, tc := range cases {
		b, err := rebuildXOR(tc.ts, tc.vs)
		if err != nil {
			t.Fatal(err)
		}
		got := crc32.Checksum(b, castagnoli)
		t.Logf("%s: %d bytes, crc %#x", tc.name, len(b), got)
		if want := goldenXOR[tc.name]; got != want {
			t.Errorf("%s: XOR appender wrote bytes with crc %#x, pinned %#x", tc.name, got, want)
		}
	}
}

func seq(n int, f func(int) int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func seqf(n int, f func(int) float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// goldenXOR: CRC32C of the XOR chunks prometheus v0.316.0 writes.
var goldenXOR = map[string]uint32{
	"counter":           0x62c60d4d,
	"gauge with jitter": 0xb5a68c1c,
	"specials":          0x6a2fa847,
}
