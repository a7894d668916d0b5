package compactor_test

import (
	"context"
	"log/slog"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/compactor"
)

// TestDownsampleAggregates checks a downsampled block's aggregates against
// the raw samples they come from, writing in many small commits as a large
// block is written.
func TestDownsampleAggregates(t *testing.T) {
	defer compactor.SetCommitBatch(100)()
	d := newTestData()
	bkt := fsBucket(t)
	d.backfill(t, bkt, "team", d.end.Add(-day), d.end, day)
	inv, err := compactor.LoadInventory(context.Background(), bkt, "team")
	if err != nil {
		t.Fatal(err)
	}
	var src *blockmeta.Meta
	for _, m := range inv.Live {
		src = m
	}
	dir, out := filepath.Join(t.TempDir(), "src"), t.TempDir()
	if err := blockmeta.Download(context.Background(), bkt, "team", src.ULID, dir); err != nil {
		t.Fatal(err)
	}
	dm, err := compactor.Downsample(context.Background(), slog.New(slog.DiscardHandler), src, dir, out, blockmeta.Res1h)
	if err != nil {
		t.Fatal(err)
	}
	if dm.MinTime != src.MinTime || dm.MaxTime != src.MaxTime || dm.Resolution() != blockmeta.Res1h {
		t.Fatalf("downsampled meta: range [%d,%d) res %d", dm.MinTime, dm.MaxTime, dm.Resolution())
	}
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), filepath.Join(out, dm.ULID.String()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, dm.MinTime, dm.MaxTime)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	read := func(i int, aggr string) map[int64]float64 {
		ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, blockmeta.AggrLabel, aggr)}
		d.series[i].Range(func(l labels.Label) { ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value)) })
		set := q.Select(context.Background(), false, nil, ms...)
		out := map[int64]float64{}
		for set.Next() {
			it := set.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				out[ts] = v
			}
		}
		return out
	}
	for _, i := range []int{0, 1, 5} { // counters and gauges of every writer batch
		count, sum, lo, hi := read(i, blockmeta.AggrCount), read(i, blockmeta.AggrSum), read(i, blockmeta.AggrMin), read(i, blockmeta.AggrMax)
		if len(count) != 24 {
			t.Fatalf("series %d: %d hourly windows, want 24", i, len(count))
		}
		for w := d.end.Add(-day); w.Before(d.end); w = w.Add(time.Hour) {
			var n, s float64
			mn, mx := math.Inf(1), math.Inf(-1)
			for ts := w.Add(offset); ts.Before(w.Add(time.Hour)); ts = ts.Add(interval) {
				v := d.value(i, ts)
				n, s, mn, mx = n+1, s+v, math.Min(mn, v), math.Max(mx, v)
			}
			stamp := w.Add(time.Hour).UnixMilli() - 1
			if count[stamp] != n || math.Abs(sum[stamp]-s) > 1e-9*math.Abs(s) || lo[stamp] != mn || hi[stamp] != mx {
				t.Fatalf("series %d window %s: count %v sum %v min %v max %v; want %v %v %v %v",
					i, w.Format(time.RFC3339), count[stamp], sum[stamp], lo[stamp], hi[stamp], n, s, mn, mx)
			}
		}
		// The counter keeps each window's first and last raw sample.
		counter := read(i, blockmeta.AggrCounter)
		first := d.end.Add(-day).Add(offset)
		if v, ok := counter[first.UnixMilli()]; !ok || v != d.value(i, first) {
			t.Fatalf("series %d: counter lacks the first raw sample", i)
		}
	}
}
