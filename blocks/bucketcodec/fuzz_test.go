package bucketcodec

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// FuzzDecodeChunks feeds the decoder garbage: it must return an error or
// bytes, never panic or run away with memory.
func FuzzDecodeChunks(f *testing.F) {
	for _, seg := range [][]byte{
		segment(),
		segment(chunkenc.NewXORChunk()),
		segmentOf(f, []int64{0, 15000, 30001}, []float64{1.5, math.NaN(), 2}),
	} {
		var enc bytes.Buffer
		if err := EncodeChunks(&enc, bytes.NewReader(seg)); err != nil {
			f.Fatal(err)
		}
		f.Add(enc.Bytes())
	}
	f.Add([]byte(chunksMagic))
	f.Add(append([]byte(chunksMagic), frameColumns, 10, 1, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = DecodeChunks(&bytes.Buffer{}, bytes.NewReader(b))
	})
}

// FuzzChunksIdentity encodes segments built from fuzzed samples, and
// fuzzed bytes as segments, and checks that decoding gives them back.
func FuzzChunksIdentity(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, false)
	f.Add(segment(chunkenc.NewXORChunk()), true)
	f.Fuzz(func(t *testing.T, b []byte, asSegment bool) {
		orig := b
		if !asSegment {
			// Pairs of (time delta, float bits), 16 bytes each, as one chunk.
			var ts []int64
			var vs []float64
			var tcur int64
			for len(b) >= 16 {
				tcur += int64(binary.BigEndian.Uint64(b) % (1 << 40))
				ts = append(ts, tcur)
				vs = append(vs, math.Float64frombits(binary.BigEndian.Uint64(b[8:])))
				b = b[16:]
			}
			orig = segmentOf(t, ts, vs)
		}
		var enc, dec bytes.Buffer
		if err := EncodeChunks(&enc, bytes.NewReader(orig)); err != nil {
			t.Fatal(err)
		}
		if err := DecodeChunks(&dec, bytes.NewReader(enc.Bytes())); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dec.Bytes(), orig) {
			t.Fatalf("decoded bytes differ")
		}
	})
}

func segmentOf(tb testing.TB, ts []int64, vs []float64) []byte {
	tb.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		tb.Fatal(err)
	}
	for i, t := range ts {
		app.Append(0, t, vs[i])
	}
	return segment(c)
}
