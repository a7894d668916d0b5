// Package snappybound checks the length a snappy block claims before
// anything is allocated for it.
//
// A snappy block starts with its decoded length; decoders allocate that
// much and only then find out whether the rest of the block can fill it. A
// 7-byte body can claim 64 MiB (or 4 GiB). Each element of a block is a
// literal (a tag byte, then the bytes: at most 1 decoded byte per encoded
// byte) or a copy (2 encoded bytes for at most 11 decoded ones, 3 for at
// most 64, 5 for at most 64), so n encoded bytes decode to at most
// n*64/3 bytes; a longer claim is a lie and is refused unread.
package snappybound

import (
	"errors"
	"fmt"

	"github.com/golang/snappy"
)

// MaxDecodedLen is the most a snappy block of n bytes can decode to.
func MaxDecodedLen(n int) int64 { return int64(n) * 64 / 3 }

// ErrTooLarge is wrapped by DecodedLen's error for a block that decodes to
// more than the caller's limit.
var ErrTooLarge = errors.New("snappy block too large")

// DecodedLen returns the decoded length block claims, or an error when the
// header is malformed, claims more than limit bytes (wrapping ErrTooLarge),
// or claims more than the block can hold.
func DecodedLen(block []byte, limit int64) (int, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return 0, fmt.Errorf("decode snappy body: %w", err)
	}
	if int64(n) > limit {
		return 0, fmt.Errorf("%w: decompressed body of %d bytes exceeds the limit of %d bytes", ErrTooLarge, n, limit)
	}
	if int64(n) > MaxDecodedLen(len(block)) {
		return 0, fmt.Errorf("decode snappy body: corrupt input: the header claims %d bytes, more than a body of %d bytes can hold", n, len(block))
	}
	return n, nil
}
