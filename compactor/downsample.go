package compactor

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
)

// Downsample writes a block at resolution res (ms) from the raw block in
// srcDir into a new directory below dstParent, and returns its metadata.
//
// Each raw series becomes five aggregate series, told apart by the label
// blockmeta.AggrLabel, over windows [w, w+res) aligned to multiples of res:
//   - count, sum, min, max of the window's samples, stamped at w+res-1, the
//     window's last millisecond, so a range (T-r, T] with T and r multiples
//     of res holds exactly the windows whose samples it holds;
//   - counter: the raw samples a counter's increase depends on: each
//     window's first and last sample and the samples on both sides of every
//     reset. Increases over these telescope to the raw increase, and PromQL
//     sees each reset where it happened.
//
// Stale markers are left out. Native histogram samples are not downsampled
// (a documented limit): they live as long as raw data.
//
// The block keeps the source block's time range, so coverage of the same
// time at different resolutions compares directly.
func Downsample(ctx context.Context, logger *slog.Logger, src *blockmeta.Meta, srcDir, dstParent string, res int64) (*blockmeta.Meta, error) {
	if res <= 0 {
		return nil, fmt.Errorf("downsample: invalid resolution %d", res)
	}
	b, err := tsdb.OpenBlock(logger, srcDir, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("open block %s: %w", srcDir, err)
	}
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, src.MinTime, src.MaxTime-1)
	if err != nil {
		return nil, err
	}
	defer q.Close()

	if err := os.MkdirAll(dstParent, 0o755); err != nil {
		return nil, err
	}
	// The writer's head accepts samples no older than half its block size
	// behind its newest one; series are written one after the other, each
	// over the whole range, so the size must span the range twice over.
	w, err := tsdb.NewBlockWriter(logger, dstParent, 4*(src.MaxTime-src.MinTime+res))
	if err != nil {
		return nil, err
	}
	defer w.Close()

	app := w.Appender(ctx)
	appended := 0
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		n, err := downsampleSeries(app, s.Labels(), it, res)
		if err != nil {
			return nil, fmt.Errorf("downsample %s: %w", s.Labels(), err)
		}
		appended += n
		// Commit in batches to bound the appender's memory.
		if appended > commitBatch {
			if err := app.Commit(); err != nil {
				return nil, err
			}
			app, appended = w.Appender(ctx), 0
		}
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	if err := app.Commit(); err != nil {
		return nil, err
	}
	id, err := w.Flush(ctx)
	if err != nil {
		return nil, fmt.Errorf("write downsampled block: %w", err)
	}
	if id.Compare([16]byte{}) == 0 {
		return nil, nil // no float samples at all
	}
	dir := filepath.Join(dstParent, id.String())
	m, err := blockmeta.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m.MinTime, m.MaxTime = src.MinTime, src.MaxTime
	m.Compaction.Sources = src.Compaction.Sources
	m.Compaction.Level = src.Compaction.Level
	m.Strata = &blockmeta.Ext{Resolution: res, Source: blockmeta.SourceDownsample}
	if err := blockmeta.WriteDir(dir, m); err != nil {
		return nil, err
	}
	return m, nil
}

// commitBatch is how many samples the downsampler appends between commits.
var commitBatch = 1_000_000

// window accumulates one window's aggregates.
type window struct {
	start         int64
	count         float64
	sum, min, max float64
	lastT         int64
	lastV         float64
}

// downsampleSeries appends the aggregates of one series and returns how
// many samples it appended.
func downsampleSeries(app storage.Appender, ls labels.Labels, it chunkenc.Iterator, res int64) (int, error) {
	lb := labels.NewBuilder(ls)
	series := func(aggr string) labels.Labels { return lb.Set(blockmeta.AggrLabel, aggr).Labels() }
	countL, sumL, minL, maxL, counterL := series(blockmeta.AggrCount), series(blockmeta.AggrSum), series(blockmeta.AggrMin), series(blockmeta.AggrMax), series(blockmeta.AggrCounter)

	var (
		refs     [5]storage.SeriesRef
		n        int
		w        *window
		prevT    int64
		prevV    float64
		havePrev bool
		emitted  = int64(math.MinInt64)
		err      error
	)
	add := func(i int, l labels.Labels, t int64, v float64) {
		if err != nil {
			return
		}
		refs[i], err = app.Append(refs[i], l, t, v)
		n++
	}
	counter := func(t int64, v float64) {
		if t > emitted {
			add(4, counterL, t, v)
			emitted = t
		}
	}
	flush := func() {
		if w == nil || w.count == 0 {
			return
		}
		stamp := w.start + res - 1
		add(0, countL, stamp, w.count)
		add(1, sumL, stamp, w.sum)
		add(2, minL, stamp, w.min)
		add(3, maxL, stamp, w.max)
		counter(w.lastT, w.lastV)
	}
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat {
			continue
		}
		t, v := it.At()
		if value.IsStaleNaN(v) {
			continue
		}
		start := t - mod(t, res)
		if w == nil || start != w.start {
			flush()
			w = &window{start: start, min: v, max: v}
			counter(t, v) // a window's first sample
		}
		if havePrev && v < prevV {
			counter(prevT, prevV) // both sides of a reset
			counter(t, v)
		}
		w.count++
		w.sum += v
		w.min = math.Min(w.min, v)
		w.max = math.Max(w.max, v)
		w.lastT, w.lastV = t, v
		prevT, prevV, havePrev = t, v, true
	}
	flush()
	if err == nil {
		err = it.Err()
	}
	return n, err
}

// mod is the non-negative remainder of a / b.
func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}
