// Package bucketcodec is the form a TSDB block takes in the bucket: the
// same files as on local disk, with the two big ones stored more compactly
// and restored byte for byte on download.
//
//   - index → index.zst: the index file, zstd-compressed (a standard zstd
//     stream; `zstd -d` restores it).
//   - chunks/NNNNNN → chunks/NNNNNN.sc: a chunks segment file, transcoded.
//     Each XOR float chunk is re-expressed as columns: timestamps as
//     delta-of-delta, values as decimal mantissas with one exponent per
//     chunk (when every float round-trips bit for bit through
//     mantissa / 10^exponent) coded as values, deltas or delta-of-deltas,
//     whichever is smallest; each column is then compressed with zstd.
//     Any other chunk (histograms, XOR2, a chunk the XOR appender would not
//     write the same way, a bad checksum) and anything that does not parse
//     is kept raw inside the same container.
//   - every other file (meta.json, tombstones) is stored as it is.
//
// # Why a bucket form and not a new chunk encoding
//
// A new chunkenc.Encoding would have to be known by every reader of the
// block: tsdb.OpenBlock, promtool, the compactor's merges and downsampling,
// Thanos-style tools. The bucket form keeps the local block, and everything
// that opens it, exactly as tsdb wrote it: the decoder rebuilds each XOR
// chunk with chunkenc's own XOR appender, and the encoder keeps a chunk in
// the compact form only after checking that this rebuild equals the
// original bytes, then decodes each frame it wrote and compares it with the
// input before keeping it (a frame that does not match is stored raw, zstd
// only). So the format can only be as wrong as a lossless copy is.
//
// The decoder depends on chunkenc's XOR appender writing the same bytes for
// the same samples in later Prometheus versions (the index points at chunk
// offsets); TestXORAppenderIsStable pins those bytes so that an upgrade
// that changes them fails the tests before it can ship.
//
// # What it costs
//
// CPU at upload (parse, decimal search, rebuild and check, zstd) and at
// download (zstd, rebuild): see the package benchmarks (BenchmarkEncode,
// BenchmarkDecode). Shipping happens once per block and downloads once per
// cache miss, so neither is on the query or ingest path. A download needs
// the whole object before the block opens, which the store's whole-block
// cache does anyway.
//
// # What it keeps
//
// Blocks on local disk (the head's, the block cache's, the compactor's
// work directory) are plain Prometheus TSDB blocks: promtool reads them.
// meta.json stays plain JSON in the bucket, so tools and the compactor's
// planning read it without downloading data. Blocks uploaded before this
// form existed (plain index and chunks/NNNNNN objects) are read as they are:
// the object name says which form an object is in.
package bucketcodec
