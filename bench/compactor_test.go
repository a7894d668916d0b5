package bench

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/internal/gen"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/filesystem"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

// backfill writes node-exporter data for hosts between from and to, as
// blocks of length rng, into the bucket for tenant "bench". It returns the
// number of samples written.
func backfill(tb testing.TB, bkt objstore.Bucket, hosts int, from, to time.Time, rng, step time.Duration) int {
	tb.Helper()
	series := gen.NodeExporterSeries(hosts)
	g := gen.NewGenerator(series, step.Milliseconds(), 1)
	n := 0
	for start := from; start.Before(to); start = start.Add(rng) {
		dir := tb.TempDir()
		w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, rng.Milliseconds())
		if err != nil {
			tb.Fatal(err)
		}
		app := w.Appender(context.Background())
		for ts := start; ts.Before(start.Add(rng)); ts = ts.Add(step) {
			g.Next(ts.UnixMilli(), func(i int, v float64) {
				if _, err := app.Append(0, series[i].Labels, ts.UnixMilli(), v); err != nil {
					tb.Fatal(err)
				}
				n++
			})
		}
		if err := app.Commit(); err != nil {
			tb.Fatal(err)
		}
		id, err := w.Flush(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		w.Close()
		bd := filepath.Join(dir, id.String())
		m, err := blockmeta.ReadDir(bd)
		if err != nil {
			tb.Fatal(err)
		}
		m.MinTime, m.MaxTime = start.UnixMilli(), start.Add(rng).UnixMilli()
		m.Strata = &blockmeta.Ext{Source: blockmeta.SourceBackfill}
		if err := blockmeta.Upload(context.Background(), bkt, "bench", bd, m); err != nil {
			tb.Fatal(err)
		}
	}
	return n
}

// BenchmarkCompactDay compacts one day of 2h blocks of 10 node exporters
// (15s interval) into a day block and downsamples it to 1m and 1h; it
// reports samples compacted per second (and, with -benchmem, allocation).
func BenchmarkCompactDay(b *testing.B) {
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		bkt, err := filesystem.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		n := backfill(b, bkt, 10, end.Add(-24*time.Hour), end, 2*time.Hour, 15*time.Second)
		c, err := compactor.New(compactor.Options{Bucket: bkt, Dir: b.TempDir(), Now: func() time.Time { return end.Add(5 * time.Hour) }})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := c.RunOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "samples/s")
		b.ReportMetric(float64(n), "samples")
	}
}

// BenchmarkQuery30Days runs a 30-day range query (step 1h) over 30 days of
// 5 node exporters at a 60s interval, from raw and from downsampled data.
// The ratio of the two ns/op is the speed-up downsampling buys.
func BenchmarkQuery30Days(b *testing.B) {
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	bkt, err := filesystem.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	backfill(b, bkt, 5, end.Add(-30*24*time.Hour), end, 24*time.Hour, time.Minute)
	c, err := compactor.New(compactor.Options{Bucket: bkt, Dir: b.TempDir(), Now: func() time.Time { return end.Add(5 * time.Hour) }})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.RunOnce(context.Background()); err != nil {
		b.Fatal(err)
	}
	s, err := blocks.Open(blocks.Options{Dir: b.TempDir(), Bucket: bkt})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.SyncBucket(context.Background()); err != nil {
		b.Fatal(err)
	}
	e, err := promqlengine.New(promqlengine.Options{MaxSamples: 1e9, Timeout: 5 * time.Minute, LookbackDelta: 5 * time.Minute, Downsampled: s})
	if err != nil {
		b.Fatal(err)
	}
	const qs = `sum by (mode) (rate(node_cpu_seconds_total[1h]))`
	for _, res := range []struct {
		name string
		res  int64
	}{{"raw", blockmeta.ResRaw}, {"1m", blockmeta.Res1m}, {"1h", blockmeta.Res1h}} {
		b.Run(res.name, func(b *testing.B) {
			ctx := promqlengine.WithMaxSourceResolution(tenant.WithID(context.Background(), "bench"), res.res)
			for b.Loop() {
				q, err := e.NewRangeQuery(ctx, s.Queryable(), nil, qs, end.Add(-30*24*time.Hour), end, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				if r := q.Exec(ctx); r.Err != nil {
					b.Fatal(r.Err)
				}
				q.Close()
			}
		})
	}
}
