package bucketcodec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// The transcoded segment is a magic string followed by frames, each
// reproducing a run of the original file's bytes:
//
//	frame   = kind:byte ...
//	end     = 0                       (the original is complete)
//	raw     = 1 rawLen:uvarint compLen:uvarint zstd(original bytes)
//	columns = 2 rawLen:uvarint nChunks:uvarint
//	          4 × (compLen:uvarint zstd(column))   columns: meta, time, value, bytes
//
// In a columns frame each chunk contributes, in the meta column, its kind
// (0 raw, 1 xor) and then:
//
//	raw: encoding:byte dataLen:uvarint        (bytes column: data, crc32)
//	xor: n:uvarint exp:byte mode:byte shift:byte nExc:uvarint nExc × idxDelta:uvarint
//	     (time column: t0 − previous chunk's t0, t1 − t0, then delta-of-deltas,
//	      zigzag varints; value column: n zigzag varints of the mantissas,
//	      shifted right by shift bits, as the mode says; bytes column: each
//	      exception's float64 bits)
//
// Frames are independent, so a frame's memory is bounded and a frame the
// encoder cannot reproduce is stored raw.
const chunksMagic = "STRCHK1\n"

const (
	frameEnd     = 0
	frameRaw     = 1
	frameColumns = 2
)

const (
	chunkRaw = 0
	chunkXOR = 1
)

// Value modes: how mantissas m_0..m_n-1 are written.
const (
	modeValues = iota // m_i
	modeDelta         // m_0, m_i − m_i-1
	modeDoD           // m_0, m_1 − m_0, (m_i − m_i-1) − (m_i-1 − m_i-2)
	modeFirst         // m_0, m_i − m_0
	numModes
)

const (
	segmentHeaderSize = 8
	// maxChunkData bounds a chunk's data length; longer ones are kept raw.
	maxChunkData = 8 << 20
	// maxFrameRaw bounds a frame's original bytes (a frame is cut once it
	// reaches frameTarget, so it holds at most one chunk more).
	maxFrameRaw = 4<<20 + maxChunkData + 64
	// maxStream bounds a decoded column: varints take at most 10 bytes per
	// sample, and an XOR sample takes at least 1 bit.
	maxStream = 128 << 20
	// maxExp is the largest decimal exponent: 10^22 is the largest power of
	// ten a float64 holds exactly, so m / 10^exp is correctly rounded.
	maxExp = 22
	// maxMantissa is the largest mantissa a float64 holds exactly.
	maxMantissa = 1 << 53
)

// frameTarget is the original bytes gathered before a frame is cut (at
// most 4 MiB; a variable for tests).
var frameTarget = 4 << 20

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	pow10      = func() (p [maxExp + 1]float64) {
		p[0] = 1
		for i := 1; i <= maxExp; i++ {
			p[i] = p[i-1] * 10
		}
		return p
	}()
	errCorrupt = errors.New("corrupt transcoded chunks object")
)

// EncodeChunks writes the bucket form of the chunks segment file read from r.
func EncodeChunks(w io.Writer, r io.Reader) error {
	_, err := encodeChunks(w, r)
	return err
}

// encodeStats counts what the encoder did, for tests and benchmarks.
type encodeStats struct {
	xorChunks, rawChunks int // chunks in columns frames
	rawFrames            int // frames stored raw (header, unparsable rest, failed checks)
}

func encodeChunks(w io.Writer, r io.Reader) (encodeStats, error) {
	e, err := encodeChunksTo(w, r)
	return e.stats, err
}

func encodeChunksTo(w io.Writer, r io.Reader) (*chunkEncoder, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	bw := bufio.NewWriterSize(w, 1<<20)
	e := &chunkEncoder{w: bw}
	if _, err := bw.WriteString(chunksMagic); err != nil {
		return e, err
	}
	header := make([]byte, segmentHeaderSize)
	n, err := io.ReadFull(br, header)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return e, err
	}
	if n > 0 {
		if err := e.writeRaw(header[:n]); err != nil {
			return e, err
		}
	}
	if n == segmentHeaderSize {
		if err := e.encodeChunks(br); err != nil {
			return e, err
		}
	}
	if err := bw.WriteByte(frameEnd); err != nil {
		return e, err
	}
	return e, bw.Flush()
}

type chunkEncoder struct {
	w     *bufio.Writer
	stats encodeStats
	f     frame  // the frame being built
	raw   []byte // the original bytes of the frame being built
	ver   []byte // scratch for verification
	// per-chunk scratch
	ts   []int64
	vs   []float64
	ms   []int64
	exps []int8
}

// frame holds the columns of one frame.
type frame struct {
	nChunks int
	xor     int // chunks of nChunks in xor columns
	meta    []byte
	time    []byte
	value   []byte
	bytes   []byte
}

func (f *frame) reset() {
	*f = frame{meta: f.meta[:0], time: f.time[:0], value: f.value[:0], bytes: f.bytes[:0]}
}

// encodeChunks reads chunks until EOF, cutting frames; from the first
// bytes that do not parse as a chunk, the rest of the input is kept raw.
func (e *chunkEncoder) encodeChunks(br *bufio.Reader) error {
	var prevT0 int64
	for {
		start := len(e.raw)
		var err error
		e.raw, err = readChunk(br, e.raw)
		if err == io.EOF && len(e.raw) == start {
			return e.flush()
		}
		if err != nil {
			if err != errUnparsable && err != io.ErrUnexpectedEOF {
				return err // reading the file failed
			}
			// Keep the unparsable rest as it is.
			rest := append([]byte(nil), e.raw[start:]...)
			e.raw = e.raw[:start]
			if err := e.flush(); err != nil {
				return err
			}
			more, err := io.ReadAll(br)
			if err != nil {
				return err
			}
			rest = append(rest, more...)
			for len(rest) > 0 {
				k := min(len(rest), frameTarget)
				if err := e.writeRaw(rest[:k]); err != nil {
					return err
				}
				rest = rest[k:]
			}
			return nil
		}
		prevT0 = e.addChunk(e.raw[start:], prevT0)
		if len(e.raw) >= frameTarget {
			if err := e.flush(); err != nil {
				return err
			}
			prevT0 = 0
		}
	}
}

var errUnparsable = errors.New("not a chunk")

// readChunk appends one chunk's bytes (length, encoding, data, crc) to buf.
// It returns io.EOF when no byte is left, errUnparsable with what it read
// appended when the bytes do not form a chunk it can reproduce.
func readChunk(br *bufio.Reader, buf []byte) ([]byte, error) {
	var l uint64
	var s uint
	for i := 0; ; i++ {
		b, err := br.ReadByte()
		switch {
		case err == io.EOF && i == 0:
			return buf, io.EOF
		case err == io.EOF:
			return buf, io.ErrUnexpectedEOF
		case err != nil:
			return buf, err // a read error, not the file's end: fail the upload
		}
		buf = append(buf, b)
		if i == binary.MaxVarintLen32 {
			return buf, errUnparsable
		}
		l |= uint64(b&0x7f) << s
		s += 7
		if b < 0x80 {
			if b == 0 && i > 0 { // not the shortest form: the decoder would not write it
				return buf, errUnparsable
			}
			break
		}
	}
	if l > maxChunkData {
		return buf, errUnparsable
	}
	n := len(buf)
	need := 1 + int(l) + crc32.Size
	buf = append(buf, make([]byte, need)...)
	got, err := io.ReadFull(br, buf[n:])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return buf[:n+got], io.ErrUnexpectedEOF
	}
	if err != nil {
		return buf, err
	}
	return buf, nil
}

// addChunk adds the chunk whose original bytes are c to the frame, as xor
// columns when it can be rebuilt exactly from them, else raw. It returns
// the t0 the next chunk's is relative to.
func (e *chunkEncoder) addChunk(c []byte, prevT0 int64) int64 {
	l, n := binary.Uvarint(c)
	enc := c[n]
	data := c[n+1 : n+1+int(l)]
	crc := c[n+1+int(l):]
	e.f.nChunks++
	if enc == byte(chunkenc.EncXOR) && crc32.Checksum(c[n:n+1+int(l)], castagnoli) == binary.BigEndian.Uint32(crc) {
		if t0, ok := e.addXOR(data, prevT0); ok {
			e.f.xor++
			return t0
		}
	}
	e.f.meta = append(e.f.meta, chunkRaw, enc)
	e.f.meta = binary.AppendUvarint(e.f.meta, l)
	e.f.bytes = append(e.f.bytes, data...)
	e.f.bytes = append(e.f.bytes, crc...)
	return prevT0
}

// addXOR adds an XOR chunk's columns when the decoder will rebuild data
// from them exactly.
func (e *chunkEncoder) addXOR(data []byte, prevT0 int64) (int64, bool) {
	chk, err := chunkenc.FromData(chunkenc.EncXOR, data)
	if err != nil {
		return 0, false
	}
	e.ts, e.vs = e.ts[:0], e.vs[:0]
	it := chk.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		e.ts = append(e.ts, t)
		e.vs = append(e.vs, v)
	}
	if it.Err() != nil || len(e.ts) != chk.NumSamples() || len(e.ts) == 0 || len(e.ts) > math.MaxUint16 {
		return 0, false
	}
	exp, ms, exc := e.decimals(e.vs)
	if len(exc) > len(e.vs)/2 {
		return 0, false // mostly not decimal: XOR is the better code
	}
	// The check the decoder's output depends on: rebuild from exactly what
	// the decoder will have.
	vals := e.vs[:0:0]
	vals = append(vals, e.vs...)
	for i, m := range ms {
		vals[i] = decimalValue(m, exp)
	}
	for _, i := range exc {
		vals[i] = e.vs[i]
	}
	rebuilt, err := rebuildXOR(e.ts, vals)
	if err != nil || !bytes.Equal(rebuilt, data) {
		return 0, false
	}
	// Common factors of two (page-sized byte counts are multiples of 4096)
	// leave the mantissas' low bits all zero: shift them out.
	shift := 63
	for _, m := range ms {
		if m != 0 {
			shift = min(shift, bits.TrailingZeros64(uint64(m)))
		}
	}
	if shift == 63 {
		shift = 0
	}
	for i := range ms {
		ms[i] >>= shift
	}
	mode, cost := bestMode(ms)
	// When the mantissas' information is longer than the XOR chunk itself
	// (values with 16 significant digits), keep the XOR chunk.
	if cost/8+9*len(exc) > len(data) {
		return 0, false
	}
	f := &e.f
	f.meta = append(f.meta, chunkXOR)
	f.meta = binary.AppendUvarint(f.meta, uint64(len(e.ts)))
	f.meta = append(f.meta, byte(exp), byte(mode), byte(shift))
	f.meta = binary.AppendUvarint(f.meta, uint64(len(exc)))
	prev := 0
	for _, i := range exc {
		f.meta = binary.AppendUvarint(f.meta, uint64(i-prev))
		prev = i
		f.bytes = binary.BigEndian.AppendUint64(f.bytes, math.Float64bits(e.vs[i]))
	}
	f.time = appendTimes(f.time, e.ts, prevT0)
	f.value = appendMantissas(f.value, ms, mode)
	return e.ts[0], true
}

// decimals finds the exponent exp that makes most values v = m / 10^exp
// for an integer m exactly, and returns each value's mantissa and the
// indexes of the values that are not (exceptions, whose mantissa repeats
// the previous one's so that deltas stay small).
func (e *chunkEncoder) decimals(vs []float64) (exp int, ms []int64, exc []int) {
	e.ms = e.ms[:0]
	e.exps = e.exps[:0]
	var seen [maxExp + 1]bool
	for _, v := range vs {
		m, k, ok := decimal(v)
		if !ok {
			k = -1
		} else {
			seen[k] = true
		}
		e.ms = append(e.ms, m)
		e.exps = append(e.exps, int8(k))
	}
	// The exponent with the fewest exceptions: a value needs exp ≥ its own
	// and a mantissa scaled to exp that stays exact.
	best, bestExc := 0, len(vs)+1
	for k := maxExp; k >= 0; k-- {
		if !seen[k] {
			continue
		}
		n := 0
		for i, ki := range e.exps {
			if ki < 0 || int(ki) > k || !scaleFits(e.ms[i], k-int(ki)) {
				n++
			}
		}
		if n < bestExc {
			best, bestExc = k, n
		}
	}
	exp = best
	ms = e.ms
	var prev int64
	for i, ki := range e.exps {
		if ki < 0 || int(ki) > exp || !scaleFits(ms[i], exp-int(ki)) {
			exc = append(exc, i)
			ms[i] = prev
			continue
		}
		ms[i] *= int64(pow10[exp-int(ki)])
		if decimalValue(ms[i], exp) != vs[i] { // cannot happen for exact m and exp ≤ 22; checked all the same
			exc = append(exc, i)
			ms[i] = prev
			continue
		}
		prev = ms[i]
	}
	return exp, ms, exc
}

func scaleFits(m int64, by int) bool {
	f := math.Abs(float64(m)) * pow10[by]
	return f <= maxMantissa
}

// decimal returns m and the smallest k ≤ maxExp with v == m / 10^k bit
// for bit, |m| ≤ 2^53.
func decimal(v float64) (int64, int, bool) {
	if v == 0 {
		return 0, 0, !math.Signbit(v)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxMantissa {
		return 0, 0, false
	}
	for k := 0; k <= maxExp; k++ {
		f := math.Round(v * pow10[k])
		if math.Abs(f) > maxMantissa {
			return 0, 0, false
		}
		if f/pow10[k] == v {
			return int64(f), k, true
		}
	}
	return 0, 0, false
}

// decimalValue is the float the decoder makes of mantissa m and exponent exp.
func decimalValue(m int64, exp int) float64 {
	return float64(m) / pow10[exp]
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// appendTimes appends t0 − prevT0, t1 − t0 and the delta-of-deltas, with
// wrapping arithmetic so that any int64s round-trip.
func appendTimes(b []byte, ts []int64, prevT0 int64) []byte {
	b = binary.AppendUvarint(b, zigzag(ts[0]-prevT0))
	var d int64
	for i := 1; i < len(ts); i++ {
		nd := ts[i] - ts[i-1]
		b = binary.AppendUvarint(b, zigzag(nd-d))
		d = nd
	}
	return b
}

// residual returns what mode writes for mantissa i.
func residual(ms []int64, i, mode int) int64 {
	switch {
	case mode == modeValues || i == 0:
		return ms[i]
	case mode == modeDelta || (mode == modeDoD && i == 1):
		return ms[i] - ms[i-1]
	case mode == modeDoD:
		return ms[i] - 2*ms[i-1] + ms[i-2]
	default: // modeFirst
		return ms[i] - ms[0]
	}
}

func uvarintLen(u uint64) int {
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// bestMode picks the mode whose residuals carry the least information,
// and that estimate in bits: a non-zero residual costs its varint, a zero
// one (constant values, constant rates) next to nothing once compressed.
func bestMode(ms []int64) (int, int) {
	best, bestLen := 0, math.MaxInt
	for mode := range numModes {
		n := 0
		for i := range ms {
			if r := residual(ms, i, mode); r != 0 {
				n += 8 * uvarintLen(zigzag(r))
			} else {
				n++
			}
		}
		if n < bestLen {
			best, bestLen = mode, n
		}
	}
	return best, bestLen
}

func appendMantissas(b []byte, ms []int64, mode int) []byte {
	for i := range ms {
		b = binary.AppendUvarint(b, zigzag(residual(ms, i, mode)))
	}
	return b
}

// rebuildXOR writes the XOR chunk of the samples with chunkenc's appender.
func rebuildXOR(ts []int64, vs []float64) ([]byte, error) {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		return nil, err
	}
	for i, t := range ts {
		app.Append(0, t, vs[i])
	}
	return c.Bytes(), nil
}

// flush writes the frame being built (or, when decoding it does not give
// back its original bytes, those bytes raw) and starts a new one.
func (e *chunkEncoder) flush() error {
	defer func() {
		e.f.reset()
		e.raw = e.raw[:0]
	}()
	if len(e.raw) == 0 {
		return nil
	}
	zenc, _ := coders()
	var out []byte
	out = append(out, frameColumns)
	out = binary.AppendUvarint(out, uint64(len(e.raw)))
	out = binary.AppendUvarint(out, uint64(e.f.nChunks))
	for _, col := range [][]byte{e.f.meta, e.f.time, e.f.value, e.f.bytes} {
		z := zenc.EncodeAll(col, nil)
		out = binary.AppendUvarint(out, uint64(len(z)))
		out = append(out, z...)
	}
	var err error
	e.ver, err = decodeFrame(bufio.NewReader(bytes.NewReader(out[1:])), frameColumns, e.ver[:0])
	if err != nil || !bytes.Equal(e.ver, e.raw) {
		return e.writeRaw(e.raw)
	}
	e.stats.xorChunks += e.f.xor
	e.stats.rawChunks += e.f.nChunks - e.f.xor
	_, err = e.w.Write(out)
	return err
}

func (e *chunkEncoder) writeRaw(b []byte) error {
	e.stats.rawFrames++
	zenc, _ := coders()
	z := zenc.EncodeAll(b, nil)
	var hdr []byte
	hdr = append(hdr, frameRaw)
	hdr = binary.AppendUvarint(hdr, uint64(len(b)))
	hdr = binary.AppendUvarint(hdr, uint64(len(z)))
	if _, err := e.w.Write(hdr); err != nil {
		return err
	}
	_, err := e.w.Write(z)
	return err
}

// DecodeChunks writes the chunks segment file whose bucket form is read from r.
func DecodeChunks(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(chunksMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != chunksMagic {
		return fmt.Errorf("%w: no magic", errCorrupt)
	}
	var buf []byte
	for {
		kind, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("%w: truncated: %w", errCorrupt, err)
		}
		if kind == frameEnd {
			if _, err := br.ReadByte(); err != io.EOF {
				return fmt.Errorf("%w: data after the end", errCorrupt)
			}
			return nil
		}
		buf, err = decodeFrame(br, kind, buf[:0])
		if err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
}

// decodeFrame appends to out the original bytes of the frame of kind read
// from br (after its kind byte).
func decodeFrame(br *bufio.Reader, kind byte, out []byte) ([]byte, error) {
	rawLen, err := binary.ReadUvarint(br)
	if err != nil || rawLen == 0 || rawLen > maxFrameRaw {
		return nil, fmt.Errorf("%w: bad frame length", errCorrupt)
	}
	switch kind {
	case frameRaw:
		b, err := readColumn(br, int(rawLen))
		if err != nil {
			return nil, err
		}
		if len(b) != int(rawLen) {
			return nil, fmt.Errorf("%w: raw frame of %d bytes, want %d", errCorrupt, len(b), rawLen)
		}
		return append(out, b...), nil
	case frameColumns:
	default:
		return nil, fmt.Errorf("%w: frame kind %d", errCorrupt, kind)
	}
	nChunks, err := binary.ReadUvarint(br)
	if err != nil || nChunks > rawLen {
		return nil, fmt.Errorf("%w: bad chunk count", errCorrupt)
	}
	var cols [4]cursor
	for i := range cols {
		b, err := readColumn(br, maxStream)
		if err != nil {
			return nil, err
		}
		cols[i] = cursor{b: b}
	}
	meta, tcol, vcol, bcol := &cols[0], &cols[1], &cols[2], &cols[3]
	start := len(out)
	var prevT0 int64
	var ts []int64
	var vs []float64
	var ms []int64
	for range nChunks {
		switch meta.byte() {
		case chunkRaw:
			enc := meta.byte()
			l := meta.uvarint()
			if l > maxChunkData {
				return nil, fmt.Errorf("%w: chunk length", errCorrupt)
			}
			data := bcol.bytes(int(l) + crc32.Size)
			if meta.err != nil || bcol.err != nil {
				break
			}
			out = binary.AppendUvarint(out, l)
			out = append(out, enc)
			out = append(out, data...)
		case chunkXOR:
			n := meta.uvarint()
			exp := int(meta.byte())
			mode := int(meta.byte())
			shift := meta.byte()
			nExc := meta.uvarint()
			if meta.err != nil || n == 0 || n > math.MaxUint16 || exp > maxExp || mode >= numModes || shift > 62 || nExc > n {
				return nil, fmt.Errorf("%w: chunk header", errCorrupt)
			}
			ts, vs, ms = ts[:0], vs[:0], ms[:0]
			var d int64
			for i := range int(n) {
				switch i {
				case 0:
					ts = append(ts, prevT0+unzigzag(tcol.uvarint()))
				default:
					d += unzigzag(tcol.uvarint())
					ts = append(ts, ts[i-1]+d)
				}
				r := unzigzag(vcol.uvarint())
				var m int64
				switch {
				case mode == modeValues || i == 0:
					m = r
				case mode == modeDelta || (mode == modeDoD && i == 1):
					m = ms[i-1] + r
				case mode == modeDoD:
					m = r + 2*ms[i-1] - ms[i-2]
				default:
					m = ms[0] + r
				}
				ms = append(ms, m)
				vs = append(vs, decimalValue(m<<shift, exp))
			}
			idx := -1
			for j := range nExc {
				delta := meta.uvarint()
				if (j > 0 && delta == 0) || delta >= n {
					return nil, fmt.Errorf("%w: exception index", errCorrupt)
				}
				if j == 0 {
					idx = int(delta)
				} else {
					idx += int(delta)
				}
				if idx >= int(n) {
					return nil, fmt.Errorf("%w: exception index", errCorrupt)
				}
				vs[idx] = math.Float64frombits(binary.BigEndian.Uint64(bcol.bytes(8)))
			}
			if meta.err != nil || tcol.err != nil || vcol.err != nil || bcol.err != nil {
				break
			}
			data, err := rebuildXOR(ts, vs)
			if err != nil {
				return nil, err
			}
			prevT0 = ts[0]
			out = binary.AppendUvarint(out, uint64(len(data)))
			out = append(out, byte(chunkenc.EncXOR))
			out = append(out, data...)
			crc := crc32.Checksum(out[len(out)-len(data)-1:], castagnoli)
			out = binary.BigEndian.AppendUint32(out, crc)
		default:
			return nil, fmt.Errorf("%w: chunk kind", errCorrupt)
		}
		for _, c := range cols {
			if c.err != nil {
				return nil, fmt.Errorf("%w: column ends early", errCorrupt)
			}
		}
		if len(out)-start > int(rawLen) {
			return nil, fmt.Errorf("%w: frame longer than declared", errCorrupt)
		}
	}
	if len(out)-start != int(rawLen) {
		return nil, fmt.Errorf("%w: frame of %d bytes, want %d", errCorrupt, len(out)-start, rawLen)
	}
	for _, c := range cols {
		if len(c.b) != 0 {
			return nil, fmt.Errorf("%w: column longer than its chunks", errCorrupt)
		}
	}
	return out, nil
}

// readColumn reads a compressed column and decompresses it, refusing one
// that decompresses beyond limit bytes.
func readColumn(br *bufio.Reader, limit int) ([]byte, error) {
	cl, err := binary.ReadUvarint(br)
	if err != nil || cl > maxStream {
		return nil, fmt.Errorf("%w: column length", errCorrupt)
	}
	z := make([]byte, cl)
	if _, err := io.ReadFull(br, z); err != nil {
		return nil, fmt.Errorf("%w: truncated column: %w", errCorrupt, err)
	}
	_, zdec := coders()
	b, err := zdec.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: column: %w", errCorrupt, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: column too long", errCorrupt)
	}
	return b, nil
}

// cursor reads a column; the first read past its end sets err.
type cursor struct {
	b   []byte
	err error
}

func (c *cursor) byte() byte {
	if len(c.b) == 0 {
		c.err = errCorrupt
		return 0
	}
	b := c.b[0]
	c.b = c.b[1:]
	return b
}

func (c *cursor) uvarint() uint64 {
	v, n := binary.Uvarint(c.b)
	if n <= 0 {
		c.err = errCorrupt
		c.b = nil
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *cursor) bytes(n int) []byte {
	if n > len(c.b) {
		c.err = errCorrupt
		c.b = nil
		return make([]byte, n)
	}
	b := c.b[:n]
	c.b = c.b[n:]
	return b
}
