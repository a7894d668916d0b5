package snappybound

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/golang/snappy"
)

// TestBoundHoldsForRealBlocks: blocks snappy itself writes, from the most
// compressible input (one byte repeated) to random bytes, are within the
// bound, so no honest body is refused.
func TestBoundHoldsForRealBlocks(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	for name, in := range map[string][]byte{
		"zeros 1":     make([]byte, 1),
		"zeros 64":    make([]byte, 64),
		"zeros 1MiB":  make([]byte, 1<<20),
		"zeros 16MiB": make([]byte, 16<<20),
		"pattern":     bytes.Repeat([]byte("abcdefgh"), 1<<17),
		"random":      random,
	} {
		enc := snappy.Encode(nil, in)
		n, err := DecodedLen(enc, 64<<20)
		if err != nil || n != len(in) {
			t.Errorf("%s: DecodedLen = %d, %v; want %d (ratio %.1f)", name, n, err, len(in), float64(len(in))/float64(len(enc)))
		}
	}
}

// TestLyingHeader: a 7-byte body claiming 64 MiB is refused as corrupt
// before anything is allocated; one claiming more than the limit as too large.
func TestLyingHeader(t *testing.T) {
	claim := func(n uint64) []byte {
		b := binary.AppendUvarint(nil, n)
		return append(b, make([]byte, 7-len(b))...)
	}
	if _, err := DecodedLen(claim(64<<20), 64<<20); err == nil || errors.Is(err, ErrTooLarge) {
		t.Errorf("7 bytes claiming 64 MiB: %v, want corrupt input", err)
	}
	if _, err := DecodedLen(claim(65<<20), 64<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("7 bytes claiming 65 MiB: %v, want ErrTooLarge", err)
	}
}
