package bucketcodec

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Suffixes of the encoded objects' names.
const (
	// IndexSuffix ends the name of a zstd-compressed index.
	IndexSuffix = ".zst"
	// ChunksSuffix ends the name of a transcoded chunks segment.
	ChunksSuffix = ".sc"
)

// Form is how a block file is stored in the bucket.
type Form int

// Forms of block files in the bucket.
const (
	// Plain files are stored as they are.
	Plain Form = iota
	// Index is the block's index, zstd-compressed.
	Index
	// Chunks is a chunks segment file, transcoded.
	Chunks
)

var segmentName = regexp.MustCompile(`^chunks/[0-9]{6}$`)

// FormOf returns the form in which the block file rel (a slash-separated
// path relative to the block directory, such as "index" or
// "chunks/000001") is stored in the bucket.
func FormOf(rel string) Form {
	switch {
	case rel == "index":
		return Index
	case segmentName.MatchString(rel):
		return Chunks
	}
	return Plain
}

// ObjectName returns the name, relative to the block's prefix, of the
// object that stores block file rel.
func ObjectName(rel string) string {
	switch FormOf(rel) {
	case Index:
		return rel + IndexSuffix
	case Chunks:
		return rel + ChunksSuffix
	}
	return rel
}

// FileName returns the block file an object (named relative to the
// block's prefix) restores, and the form it is stored in. Objects of
// blocks uploaded before the bucket form existed are Plain.
func FileName(obj string) (string, Form) {
	if f, ok := strings.CutSuffix(obj, IndexSuffix); ok && f == "index" {
		return f, Index
	}
	if f, ok := strings.CutSuffix(obj, ChunksSuffix); ok && segmentName.MatchString(f) {
		return f, Chunks
	}
	return obj, Plain
}

// HasFile reports whether the object names of a block (relative to its
// prefix) include the block file rel, in either form.
func HasFile(objects []string, rel string) bool {
	enc := ObjectName(rel)
	for _, o := range objects {
		if o == rel || o == enc {
			return true
		}
	}
	return false
}

// Encode writes to w the bucket form of block file rel read from r.
func Encode(w io.Writer, r io.Reader, rel string) error {
	switch FormOf(rel) {
	case Index:
		return encodeZstd(w, r)
	case Chunks:
		return EncodeChunks(w, r)
	}
	_, err := io.Copy(w, r)
	return err
}

// Decode writes to w the block file that the object obj (named relative
// to the block's prefix) stores, read from r.
func Decode(w io.Writer, r io.Reader, obj string) error {
	_, form := FileName(obj)
	switch form {
	case Index:
		return decodeZstd(w, r)
	case Chunks:
		return DecodeChunks(w, r)
	}
	_, err := io.Copy(w, r)
	return err
}

// zstdLevel trades upload CPU for bucket bytes; see BenchmarkEncode.
const zstdLevel = zstd.SpeedBetterCompression

func encodeZstd(w io.Writer, r io.Reader) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstdLevel), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, r); err != nil {
		zw.Close()
		return fmt.Errorf("compress: %w", err)
	}
	return zw.Close()
}

func decodeZstd(w io.Writer, r io.Reader) error {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return err
	}
	defer zr.Close()
	if _, err := io.Copy(w, zr); err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	return nil
}

// maxWindow bounds the memory a zstd stream may ask of the decoder.
const maxWindow = 64 << 20

// Shared zstd coders for whole buffers; EncodeAll and DecodeAll are safe
// for concurrent use.
var (
	coderOnce sync.Once
	encoder   *zstd.Encoder
	decoder   *zstd.Decoder
)

func coders() (*zstd.Encoder, *zstd.Decoder) {
	coderOnce.Do(func() {
		var err error
		if encoder, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstdLevel), zstd.WithEncoderConcurrency(1)); err != nil {
			panic(err) // only invalid options fail
		}
		if decoder, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxStream)); err != nil {
			panic(err)
		}
	})
	return encoder, decoder
}
