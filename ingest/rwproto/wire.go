package rwproto

import (
	"encoding/binary"
	"math"
)

// Protobuf wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// wireReader reads protobuf wire format. Its methods return false on
// anything malformed, and also on what it does not support (groups); the
// callers then fall back to the generated (gogo) decoder, which reports the
// exact error. So the reader may be stricter than gogo, never laxer.
type wireReader struct {
	b []byte
	i int
}

func (r *wireReader) done() bool { return r.i >= len(r.b) }

func (r *wireReader) varint() (uint64, bool) {
	// Most varints in a request (tags, lengths, label references) are one byte.
	if r.i < len(r.b) && r.b[r.i] < 0x80 {
		v := uint64(r.b[r.i])
		r.i++
		return v, true
	}
	v, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 {
		return 0, false
	}
	r.i += n
	return v, true
}

// tag reads a field's key: its number and wire type.
func (r *wireReader) tag() (int, int, bool) {
	k, ok := r.varint()
	if !ok {
		return 0, 0, false
	}
	field, wt := k>>3, int(k&7)
	if field == 0 || field > math.MaxInt32 {
		return 0, 0, false
	}
	return int(field), wt, true
}

// bytes reads a length-delimited field's content.
func (r *wireReader) bytes() ([]byte, bool) {
	n, ok := r.varint()
	if !ok || n > uint64(len(r.b)-r.i) {
		return nil, false
	}
	b := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	return b, true
}

func (r *wireReader) fixed64() (uint64, bool) {
	if len(r.b)-r.i < 8 {
		return 0, false
	}
	v := binary.LittleEndian.Uint64(r.b[r.i:])
	r.i += 8
	return v, true
}

// skip skips a field of wire type wt that the reader does not decode.
func (r *wireReader) skip(wt int) bool {
	switch wt {
	case wireVarint:
		_, ok := r.varint()
		return ok
	case wireFixed64:
		_, ok := r.fixed64()
		return ok
	case wireBytes:
		_, ok := r.bytes()
		return ok
	case wireFixed32:
		if len(r.b)-r.i < 4 {
			return false
		}
		r.i += 4
		return true
	}
	return false
}
