package bench

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/internal/gen"
	"github.com/strata-tsdb/strata/objstore/filesystem"
)

// BenchmarkShippedBytesPerSample writes 2h of node-exporter data for 20
// hosts at a 15s interval into a store, flushes it to a filesystem bucket
// and reports the bucket's bytes per sample (index, chunks and metadata).
func BenchmarkShippedBytesPerSample(b *testing.B) {
	series := gen.NodeExporterSeries(20)
	const interval = 15000
	for b.Loop() {
		dir := b.TempDir()
		bkt, err := filesystem.New(filepath.Join(dir, "bucket"))
		if err != nil {
			b.Fatal(err)
		}
		s, err := blocks.Open(blocks.Options{Dir: filepath.Join(dir, "data"), Bucket: bkt, Retention: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		g := gen.NewGenerator(series, interval, 1)
		start := time.Now().Add(-2 * time.Hour).Truncate(2 * time.Hour).UnixMilli()
		refs := make([]storage.SeriesRef, len(series))
		samples := 0
		for t := start; t < start+2*3600*1000; t += interval {
			app, err := s.Appender(context.Background(), "bench")
			if err != nil {
				b.Fatal(err)
			}
			g.Next(t, func(i int, v float64) {
				if refs[i], err = app.Append(refs[i], series[i].Labels, 0, t, v, nil, nil, storage.AppendV2Options{}); err != nil {
					b.Fatal(err)
				}
				samples++
			})
			if err := app.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		size := dirSize(b, filepath.Join(dir, "bucket"))
		b.ReportMetric(float64(size)/float64(samples), "bytes/sample")
		b.ReportMetric(float64(samples), "samples")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
