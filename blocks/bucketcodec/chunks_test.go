package bucketcodec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
)

// segment lays chunks out as tsdb's chunks.Writer does: the segment
// header, then per chunk its data length, encoding, data and CRC32.
func segment(chks ...chunkenc.Chunk) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0x85BD40DD)
	b = append(b, 1, 0, 0, 0)
	for _, c := range chks {
		b = binary.AppendUvarint(b, uint64(len(c.Bytes())))
		n := len(b)
		b = append(b, byte(c.Encoding()))
		b = append(b, c.Bytes()...)
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[n:], castagnoli))
	}
	return b
}

// xorChunk appends values at a 15s interval from t0 (with a little jitter
// when jitter is set) with chunkenc's XOR appender.
func xorChunk(t *testing.T, t0 int64, jitter bool, vs ...float64) chunkenc.Chunk {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		t.Fatal(err)
	}
	ts := t0
	for i, v := range vs {
		if jitter && i%7 == 3 {
			ts += int64(i % 5)
		}
		app.Append(0, ts, v)
		ts += 15000
	}
	return c
}

func series(n int, f func(i int) float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func roundTrip(t *testing.T, orig []byte) ([]byte, encodeStats) {
	t.Helper()
	var enc bytes.Buffer
	st, err := encodeChunks(&enc, bytes.NewReader(orig))
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var dec bytes.Buffer
	if err := DecodeChunks(&dec, bytes.NewReader(enc.Bytes())); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !bytes.Equal(dec.Bytes(), orig) {
		t.Fatalf("decoded %d bytes differ from the %d original bytes", dec.Len(), len(orig))
	}
	return enc.Bytes(), st
}

func TestChunksRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const t0 = 1_700_000_000_000
	hist := chunkenc.NewHistogramChunk()
	happ, _ := hist.Appender()
	for i, h := range tsdbutil.GenerateTestHistograms(20) {
		if _, _, _, err := happ.AppendHistogram(nil, 0, t0+int64(i)*15000, h, false); err != nil {
			t.Fatal(err)
		}
	}
	fhist := chunkenc.NewFloatHistogramChunk()
	fapp, _ := fhist.Appender()
	for i, h := range tsdbutil.GenerateTestFloatHistograms(5) {
		if _, _, _, err := fapp.AppendFloatHistogram(nil, 0, t0+int64(i)*15000, h, false); err != nil {
			t.Fatal(err)
		}
	}
	_ = histogram.Histogram{}

	cases := []struct {
		name string
		chks []chunkenc.Chunk
		// wantXOR and wantRaw are the chunks expected in each form.
		wantXOR, wantRaw int
	}{
		{"decimal counter (cpu ticks / 100)", []chunkenc.Chunk{xorChunk(t, t0, false, series(120, func(i int) float64 { return float64(123456+i*180+i%7) / 100 })...)}, 1, 0},
		{"integer bytes", []chunkenc.Chunk{xorChunk(t, t0, true, series(120, func(i int) float64 { return float64(1e12 + i*3_000_017) })...)}, 1, 0},
		{"constant", []chunkenc.Chunk{xorChunk(t, t0, false, series(120, func(int) float64 { return 1 })...)}, 1, 0},
		{"gauge two decimals", []chunkenc.Chunk{xorChunk(t, t0, false, series(120, func(int) float64 { return math.Round(150+rng.NormFloat64()*7) / 100 })...)}, 1, 0},
		{"nanoseconds", []chunkenc.Chunk{xorChunk(t, t0, false, series(120, func(int) float64 { return float64(20_000_000+rng.IntN(2_000_000)) / 1e9 })...)}, 1, 0},
		{"random floats", []chunkenc.Chunk{xorChunk(t, t0, false, series(120, func(int) float64 { return rng.NormFloat64() })...)}, 0, 1},
		{"stale NaN at the end", []chunkenc.Chunk{xorChunk(t, t0, false, append(series(30, func(i int) float64 { return float64(i) }), math.Float64frombits(value.StaleNaN))...)}, 1, 0},
		{"NaN, ±Inf and -0", []chunkenc.Chunk{xorChunk(t, t0, false, 1, math.NaN(), 2, math.Inf(1), 3, math.Inf(-1), math.Copysign(0, -1), 4, 0, 5)}, 1, 0},
		{"only specials", []chunkenc.Chunk{xorChunk(t, t0, false, math.NaN(), math.Inf(1), math.Copysign(0, -1))}, 0, 1},
		{"huge exponents", []chunkenc.Chunk{xorChunk(t, t0, false, 1e300, -1e300, math.MaxFloat64, 1e22, 9.007199254740993e15)}, 0, 1},
		{"tiny exponents", []chunkenc.Chunk{xorChunk(t, t0, false, 1e-300, 5e-324, 1e-22, 1.5e-22, math.SmallestNonzeroFloat64)}, 0, 1},
		{"22 decimals", []chunkenc.Chunk{xorChunk(t, t0, false, 1e-22, 2e-22, 3e-22)}, 1, 0},
		{"mixed magnitudes", []chunkenc.Chunk{xorChunk(t, t0, false, 0.001, 1e15, 0.5, 3, 1e-9)}, 1, 0},
		{"single sample", []chunkenc.Chunk{xorChunk(t, t0, false, 42.5)}, 1, 0},
		{"single sample at time 0", []chunkenc.Chunk{xorChunk(t, 0, false, 0)}, 1, 0},
		{"negative times", []chunkenc.Chunk{xorChunk(t, -1e12, true, series(10, func(i int) float64 { return -float64(i) })...)}, 1, 0},
		{"250 samples", []chunkenc.Chunk{xorChunk(t, t0, true, series(250, func(i int) float64 { return float64(i*i) / 1000 })...)}, 1, 0},
		{"histograms pass raw", []chunkenc.Chunk{hist, fhist}, 0, 2},
		{"mixed series", []chunkenc.Chunk{
			xorChunk(t, t0, false, series(120, func(i int) float64 { return float64(i) })...),
			hist,
			xorChunk(t, t0+1800000, false, series(120, func(i int) float64 { return float64(i) / 10 })...),
			xorChunk(t, t0, false, series(120, func(int) float64 { return rng.Float64() })...),
			xorChunk(t, t0, false, 7),
		}, 3, 2},
		{"no chunks", nil, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := segment(tc.chks...)
			enc, st := roundTrip(t, orig)
			if st.xorChunks != tc.wantXOR || st.rawChunks != tc.wantRaw {
				t.Errorf("%d xor and %d raw chunks, want %d and %d (%+v)", st.xorChunks, st.rawChunks, tc.wantXOR, tc.wantRaw, st)
			}
			if st.rawFrames != 1 { // the segment header
				t.Errorf("%d raw frames, want 1", st.rawFrames)
			}
			t.Logf("%d → %d bytes", len(orig), len(enc))
		})
	}
}

// TestChunksRoundTripOddFiles covers files that are not well-formed
// segments: they must come back byte for byte too.
func TestChunksRoundTripOddFiles(t *testing.T) {
	good := segment(xorChunk(t, 0, false, 1, 2, 3), xorChunk(t, 0, false, 4, 5))
	badCRC := bytes.Clone(good)
	badCRC[len(good)-1] ^= 0xff
	longVarint := append(bytes.Clone(good[:8]), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1)
	nonCanonical := append(bytes.Clone(good[:8]), 0x81, 0x00)
	huge := append(bytes.Clone(good), binary.AppendUvarint(nil, 1<<30)...)
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", []byte{0x85, 0xBD}},
		{"header only", good[:8]},
		{"truncated chunk", good[:len(good)-3]},
		{"bad crc", badCRC},
		{"overlong varint", longVarint},
		{"non-canonical varint", nonCanonical},
		{"length beyond the file", huge},
		{"trailing garbage", append(bytes.Clone(good), 0xde, 0xad, 0xbe, 0xef)},
		{"not a segment", bytes.Repeat([]byte("hello world "), 1000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			roundTrip(t, tc.b)
		})
	}
}

// TestChunksManyFrames spans several frames and checks they are independent.
func TestChunksManyFrames(t *testing.T) {
	defer func(n int) { frameTarget = n }(frameTarget)
	frameTarget = 64 << 10
	rng := rand.New(rand.NewPCG(3, 4))
	var chks []chunkenc.Chunk
	for len(chks) < 2000 {
		base := rng.IntN(1 << 20)
		chks = append(chks, xorChunk(t, int64(rng.IntN(1<<30)), true, series(120, func(i int) float64 { return float64(base+i*rng.IntN(300)) / 100 })...))
	}
	orig := segment(chks...)
	if len(orig) < 2*frameTarget {
		t.Fatalf("test segment of %d bytes spans fewer than 3 frames", len(orig))
	}
	enc, st := roundTrip(t, orig)
	if st.xorChunks != len(chks) {
		t.Errorf("%d of %d chunks transcoded", st.xorChunks, len(chks))
	}
	t.Logf("%d chunks: %d → %d bytes (%.2f)", len(chks), len(orig), len(enc), float64(len(enc))/float64(len(orig)))
}

func TestDecodeChunksRejectsCorruption(t *testing.T) {
	orig := segment(xorChunk(t, 0, false, series(120, func(i int) float64 { return float64(i) / 100 })...))
	var enc bytes.Buffer
	if err := EncodeChunks(&enc, bytes.NewReader(orig)); err != nil {
		t.Fatal(err)
	}
	b := enc.Bytes()
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"no magic", append([]byte("XXXXXXXX"), b[8:]...)},
		{"truncated", b[:len(b)-1]},
		{"truncated mid frame", b[:len(b)/2]},
		{"trailing bytes", append(bytes.Clone(b), 0)},
		{"unknown frame", append([]byte(chunksMagic), 9)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := DecodeChunks(&bytes.Buffer{}, bytes.NewReader(tc.b)); err == nil {
				t.Fatal("decoded a corrupt object without error")
			}
		})
	}
}

func TestDecimal(t *testing.T) {
	cases := []struct {
		v    float64
		m    int64
		k    int
		okay bool
	}{
		{0, 0, 0, true},
		{math.Copysign(0, -1), 0, 0, false},
		{1, 1, 0, true},
		{-17, -17, 0, true},
		{0.29, 29, 2, true},
		{float64(12345) / 100, 12345, 2, true},
		{1.7e9, 1_700_000_000, 0, true},
		{0.000123, 123, 6, true},
		{1e-22, 1, 22, true},
		{1e-23, 0, 0, false},
		{math.NaN(), 0, 0, false},
		{math.Inf(-1), 0, 0, false},
		{1 << 53, 1 << 53, 0, true},
		{1<<53 + 2, 0, 0, false},
		{math.Pi, 3141592653589793, 15, true},
		{math.Nextafter(0.3, 1), 0, 0, false}, // 0.30000000000000004: 17 digits
	}
	for _, tc := range cases {
		m, k, ok := decimal(tc.v)
		if ok != tc.okay || (ok && (m != tc.m || k != tc.k)) {
			t.Errorf("decimal(%v) = %d, %d, %v; want %d, %d, %v", tc.v, m, k, ok, tc.m, tc.k, tc.okay)
		}
		if ok && math.Float64bits(decimalValue(m, k)) != math.Float64bits(tc.v) {
			t.Errorf("decimal(%v) does not round-trip", tc.v)
		}
	}
}

func TestZigzag(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, -64, math.MaxInt64, math.MinInt64} {
		if got := unzigzag(zigzag(v)); got != v {
			t.Errorf("zigzag(%d) round-trips to %d", v, got)
		}
	}
}

// failingReader returns its bytes, then an error that is not the end of the file.
type failingReader struct{ b []byte }

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestEncodeChunksReadErrorFails: a read error must fail the encoding, not
// store the bytes read so far as if they were the whole file.
func TestEncodeChunksReadErrorFails(t *testing.T) {
	orig := segment(xorChunk(t, 0, false, 1, 2, 3), xorChunk(t, 0, false, 4, 5))
	for _, cut := range []int{0, 4, 8, 9, 12, len(orig) - 2, len(orig)} {
		if err := EncodeChunks(&bytes.Buffer{}, &failingReader{b: orig[:cut]}); err == nil {
			t.Errorf("read error after %d bytes: no error", cut)
		}
	}
}
