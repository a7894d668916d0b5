package bucketcodec

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/internal/gen"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// nodeIndex returns the index file tsdb writes for hosts node exporters'
// series, and the number of series.
func nodeIndex(b *testing.B, hosts int) ([]byte, int) {
	b.Helper()
	series := gen.NodeExporterSeries(hosts)
	dir := testutil.WriteBlock(b, 2*time.Hour, func(app storage.Appender) error {
		for _, s := range series {
			if _, err := app.Append(0, s.Labels, 1000, 1); err != nil {
				return err
			}
		}
		return nil
	})
	ix, err := os.ReadFile(filepath.Join(dir, "index"))
	if err != nil {
		b.Fatal(err)
	}
	return ix, len(series)
}

func BenchmarkEncodeIndex(b *testing.B) {
	ix, n := nodeIndex(b, 100)
	b.SetBytes(int64(len(ix)))
	b.ReportAllocs()
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := Encode(&out, bytes.NewReader(ix), "index"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ix))/float64(n), "index-bytes/series")
	b.ReportMetric(float64(out.Len())/float64(n), "bucket-bytes/series")
}

func BenchmarkDecodeIndex(b *testing.B) {
	ix, _ := nodeIndex(b, 100)
	var enc bytes.Buffer
	if err := Encode(&enc, bytes.NewReader(ix), "index"); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(ix)))
	b.ReportAllocs()
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := Decode(&out, bytes.NewReader(enc.Bytes()), "index.zst"); err != nil {
			b.Fatal(err)
		}
	}
}
