package bucketcodec

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/internal/gen"
)

func TestNames(t *testing.T) {
	cases := []struct {
		file, object string
		form         Form
	}{
		{"index", "index.zst", Index},
		{"chunks/000001", "chunks/000001.sc", Chunks},
		{"chunks/123456", "chunks/123456.sc", Chunks},
		{"meta.json", "meta.json", Plain},
		{"tombstones", "tombstones", Plain},
		{"chunks/1", "chunks/1", Plain},
		{"index.zst", "index.zst", Plain}, // a file so named is stored as it is...
	}
	for _, tc := range cases {
		if got := FormOf(tc.file); got != tc.form {
			t.Errorf("FormOf(%q) = %v, want %v", tc.file, got, tc.form)
		}
		if got := ObjectName(tc.file); got != tc.object {
			t.Errorf("ObjectName(%q) = %q, want %q", tc.file, got, tc.object)
		}
		if tc.form != Plain {
			if f, form := FileName(tc.object); f != tc.file || form != tc.form {
				t.Errorf("FileName(%q) = %q, %v", tc.object, f, form)
			}
		}
	}
	// Objects of blocks uploaded before the bucket form are plain.
	for _, o := range []string{"index", "chunks/000001", "meta.json", "chunks/000001.zst"} {
		if f, form := FileName(o); f != o || form != Plain {
			t.Errorf("FileName(%q) = %q, %v; want it plain", o, f, form)
		}
	}
	if !HasFile([]string{"chunks/000001.sc", "index"}, "index") || !HasFile([]string{"chunks/000001.sc"}, "chunks/000001") || HasFile([]string{"index.zst"}, "chunks/000001") {
		t.Error("HasFile")
	}
}

func TestEncodeDecodeForms(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	text := bytes.Repeat([]byte("label value "), 5000)
	noise := make([]byte, 10000)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	seg := segment(xorChunk(t, 0, false, series(120, func(i int) float64 { return float64(i) / 4 })...))
	cases := []struct {
		file string
		b    []byte
	}{
		{"index", text},
		{"index", noise},
		{"index", nil},
		{"chunks/000001", seg},
		{"chunks/000002", noise},
		{"meta.json", []byte(`{"ulid":"x"}`)},
		{"tombstones", nil},
	}
	for _, tc := range cases {
		var enc, dec bytes.Buffer
		if err := Encode(&enc, bytes.NewReader(tc.b), tc.file); err != nil {
			t.Fatalf("encode %s: %v", tc.file, err)
		}
		if err := Decode(&dec, bytes.NewReader(enc.Bytes()), ObjectName(tc.file)); err != nil {
			t.Fatalf("decode %s: %v", tc.file, err)
		}
		if !bytes.Equal(dec.Bytes(), tc.b) {
			t.Fatalf("%s: %d bytes back, want %d", tc.file, dec.Len(), len(tc.b))
		}
		if FormOf(tc.file) == Plain && !bytes.Equal(enc.Bytes(), tc.b) {
			t.Fatalf("%s: plain file changed in the bucket", tc.file)
		}
	}
	if err := Decode(&bytes.Buffer{}, bytes.NewReader(text), "index.zst"); err == nil {
		t.Fatal("decoded a plain file as zstd")
	}
}

// nodeSegment is a chunks segment of hosts node exporters' series over two
// hours at 15s, cut into 120-sample chunks as the head cuts them.
func nodeSegment(tb testing.TB, hosts int) ([]byte, int) {
	tb.Helper()
	series := gen.NodeExporterSeries(hosts)
	g := gen.NewGenerator(series, 15000, 1)
	const steps = 480
	vals := make([][]float64, len(series))
	for s := range steps {
		g.Next(1_700_000_000_000+int64(s)*15000, func(i int, v float64) { vals[i] = append(vals[i], v) })
	}
	var chks []chunkenc.Chunk
	for i := range series {
		for lo := 0; lo < steps; lo += 120 {
			c := chunkenc.NewXORChunk()
			app, err := c.Appender()
			if err != nil {
				tb.Fatal(err)
			}
			for j := lo; j < lo+120; j++ {
				app.Append(0, 1_700_000_000_000+int64(j)*15000, vals[i][j])
			}
			chks = append(chks, c)
		}
	}
	return segment(chks...), len(series) * steps
}

func TestNodeExporterDataShrinks(t *testing.T) {
	orig, samples := nodeSegment(t, 4)
	enc, st := roundTrip(t, orig)
	if st.xorChunks == 0 {
		t.Fatal("no chunk transcoded")
	}
	ratio := float64(len(enc)) / float64(len(orig))
	t.Logf("node exporter data: XOR %.3f bytes/sample, bucket form %.3f bytes/sample (%.2f×); %d xor, %d raw chunks",
		float64(len(orig))/float64(samples), float64(len(enc))/float64(samples), ratio, st.xorChunks, st.rawChunks)
	// Quantised exporter values carry far less information than XOR spends
	// on them; the bucket form must take a clear share of that.
	if ratio > 0.7 {
		t.Errorf("bucket form is %.2f× the XOR segment", ratio)
	}
}

func BenchmarkEncodeChunks(b *testing.B) {
	orig, samples := nodeSegment(b, 8)
	b.SetBytes(int64(len(orig)))
	b.ReportAllocs()
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := EncodeChunks(&out, bytes.NewReader(orig)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(samples), "ns/sample")
	b.ReportMetric(float64(out.Len())/float64(samples), "bytes/sample")
}

func BenchmarkDecodeChunks(b *testing.B) {
	orig, samples := nodeSegment(b, 8)
	var enc bytes.Buffer
	if err := EncodeChunks(&enc, bytes.NewReader(orig)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(orig)))
	b.ReportAllocs()
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := DecodeChunks(&out, bytes.NewReader(enc.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(samples), "ns/sample")
}

// TestBucketFormBeatsAlternatives measures, on node exporter data, the
// options considered for the bucket: the XOR segment as tsdb writes it,
// zstd over it, upstream's XOR2 chunks (tsdb.Options.FloatChunkEncoding)
// with and without zstd, and this package's form, which must be the
// smallest.
func TestBucketFormBeatsAlternatives(t *testing.T) {
	orig, samples := nodeSegment(t, 4)
	var z bytes.Buffer
	if err := encodeZstd(&z, bytes.NewReader(orig)); err != nil {
		t.Fatal(err)
	}
	// The same samples as XOR2 chunks.
	var xor2 []chunkenc.Chunk
	rest := orig[8:]
	for len(rest) > 0 {
		l, n := binary.Uvarint(rest)
		c, err := chunkenc.FromData(chunkenc.Encoding(rest[n]), rest[n+1:n+1+int(l)])
		if err != nil {
			t.Fatal(err)
		}
		c2 := chunkenc.NewXOR2Chunk()
		app, err := c2.Appender()
		if err != nil {
			t.Fatal(err)
		}
		it := c.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			app.Append(0, ts, v)
		}
		xor2 = append(xor2, c2)
		rest = rest[n+1+int(l)+4:]
	}
	seg2 := segment(xor2...)
	var z2 bytes.Buffer
	if err := encodeZstd(&z2, bytes.NewReader(seg2)); err != nil {
		t.Fatal(err)
	}
	var form bytes.Buffer
	if err := EncodeChunks(&form, bytes.NewReader(orig)); err != nil {
		t.Fatal(err)
	}
	per := func(n int) float64 { return float64(n) / float64(samples) }
	t.Logf("bytes per sample of chunks: XOR %.3f, XOR+zstd %.3f, XOR2 %.3f, XOR2+zstd %.3f, bucket form %.3f",
		per(len(orig)), per(z.Len()), per(len(seg2)), per(z2.Len()), per(form.Len()))
	for name, n := range map[string]int{"XOR": len(orig), "XOR+zstd": z.Len(), "XOR2": len(seg2), "XOR2+zstd": z2.Len()} {
		if form.Len() >= n {
			t.Errorf("bucket form (%d bytes) is not smaller than %s (%d bytes)", form.Len(), name, n)
		}
	}
}
