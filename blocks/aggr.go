package blocks

import (
	"context"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
)

// aggrQuerier serves the aggregate series queries select with a matcher on
// blockmeta.AggrLabel, uniformly over raw and downsampled data, so that one
// query reads raw data where it is kept and downsampled data further back
// without a seam:
//
//   - raw data: count is 1 at every sample; sum, min, max and counter are
//     the samples themselves.
//   - downsampled data: the stored aggregate series, with the label removed.
//
// Without an aggregate matcher, raw data is returned as is and downsampled
// data as the mean of each window (sum / count).
type aggrQuerier struct {
	storage.Querier
	downsampled bool
}

// splitAggr removes the equality matcher on the aggregate label from ms.
func splitAggr(ms []*labels.Matcher) (aggr string, rest []*labels.Matcher) {
	for i, m := range ms {
		if m.Name == blockmeta.AggrLabel && m.Type == labels.MatchEqual {
			return m.Value, append(slices.Clone(ms[:i]), ms[i+1:]...)
		}
	}
	return "", ms
}

func (q aggrQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	aggr, rest := splitAggr(ms)
	if !q.downsampled {
		set := q.Querier.Select(ctx, sortSeries, hints, rest...)
		if aggr == blockmeta.AggrCount {
			return onesSet{set}
		}
		return set
	}
	if aggr != "" {
		m := labels.MustNewMatcher(labels.MatchEqual, blockmeta.AggrLabel, aggr)
		return stripAggrSet{q.Querier.Select(ctx, true, hints, append(rest, m)...)}
	}
	sums := stripAggrSet{q.Querier.Select(ctx, true, hints, append(rest, labels.MustNewMatcher(labels.MatchEqual, blockmeta.AggrLabel, blockmeta.AggrSum))...)}
	counts := stripAggrSet{q.Querier.Select(ctx, true, hints, append(rest, labels.MustNewMatcher(labels.MatchEqual, blockmeta.AggrLabel, blockmeta.AggrCount))...)}
	return &avgSet{sums: sums, counts: counts}
}

func (q aggrQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	_, rest := splitAggr(ms)
	names, ws, err := q.Querier.LabelNames(ctx, hints, rest...)
	return slices.DeleteFunc(names, func(n string) bool { return n == blockmeta.AggrLabel }), ws, err
}

func (q aggrQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if name == blockmeta.AggrLabel {
		return nil, nil, nil
	}
	_, rest := splitAggr(ms)
	return q.Querier.LabelValues(ctx, name, hints, rest...)
}

// stripAggrSet removes the aggregate label from every series of a set.
type stripAggrSet struct{ storage.SeriesSet }

func (s stripAggrSet) At() storage.Series {
	sr := s.SeriesSet.At()
	return relabeled{sr, labels.NewBuilder(sr.Labels()).Del(blockmeta.AggrLabel).Labels()}
}

type relabeled struct {
	storage.Series
	ls labels.Labels
}

func (r relabeled) Labels() labels.Labels { return r.ls }

// onesSet turns every sample of every series into a float 1: the count
// aggregate of raw data. Stale markers stay stale markers: queries skip
// them, as the downsampler does.
type onesSet struct{ storage.SeriesSet }

func (s onesSet) At() storage.Series { return onesSeries{s.SeriesSet.At()} }

type onesSeries struct{ storage.Series }

func (s onesSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	return &onesIterator{it: s.Series.Iterator(nil)}
}

type onesIterator struct {
	it chunkenc.Iterator
	v  float64
}

func (o *onesIterator) at(vt chunkenc.ValueType) chunkenc.ValueType {
	switch vt {
	case chunkenc.ValNone:
		return chunkenc.ValNone
	case chunkenc.ValFloat:
		if _, v := o.it.At(); value.IsStaleNaN(v) {
			o.v = v
			return chunkenc.ValFloat
		}
	}
	o.v = 1
	return chunkenc.ValFloat
}

func (o *onesIterator) Next() chunkenc.ValueType        { return o.at(o.it.Next()) }
func (o *onesIterator) Seek(t int64) chunkenc.ValueType { return o.at(o.it.Seek(t)) }
func (o *onesIterator) At() (int64, float64)            { return o.it.AtT(), o.v }
func (o *onesIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("onesIterator: not a histogram")
}

func (o *onesIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("onesIterator: not a histogram")
}
func (o *onesIterator) AtT() int64  { return o.it.AtT() }
func (o *onesIterator) AtST() int64 { return 0 }
func (o *onesIterator) Err() error  { return o.it.Err() }

// avgSet joins the sum and count series of downsampled data, both sorted by
// their labels, into the mean of each window.
type avgSet struct {
	sums, counts storage.SeriesSet
	cur          storage.Series
	hasSum       bool
	hasCount     bool
	started      bool
}

func (s *avgSet) Next() bool {
	if !s.started {
		s.hasSum, s.hasCount, s.started = s.sums.Next(), s.counts.Next(), true
	}
	for s.hasSum && s.hasCount {
		sum, count := s.sums.At(), s.counts.At()
		switch c := labels.Compare(sum.Labels(), count.Labels()); {
		case c < 0:
			s.hasSum = s.sums.Next()
		case c > 0:
			s.hasCount = s.counts.Next()
		default:
			s.cur = avgSeries{sum: sum, count: count}
			s.hasSum, s.hasCount = s.sums.Next(), s.counts.Next()
			return true
		}
	}
	return false
}

func (s *avgSet) At() storage.Series { return s.cur }
func (s *avgSet) Err() error {
	if err := s.sums.Err(); err != nil {
		return err
	}
	return s.counts.Err()
}

func (s *avgSet) Warnings() annotations.Annotations {
	ws := s.sums.Warnings()
	return ws.Merge(s.counts.Warnings())
}

type avgSeries struct{ sum, count storage.Series }

func (s avgSeries) Labels() labels.Labels { return s.sum.Labels() }
func (s avgSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return &avgIterator{sum: s.sum.Iterator(nil), count: s.count.Iterator(nil)}
}

// avgIterator yields sum/count at the timestamps both series have; the two
// are written together, so they have the same timestamps.
type avgIterator struct {
	sum, count chunkenc.Iterator
	t          int64
	v          float64
	valid      bool // positioned on a sample
}

func (a *avgIterator) align(st, ct chunkenc.ValueType) chunkenc.ValueType {
	for st == chunkenc.ValFloat && ct == chunkenc.ValFloat {
		ts, sv := a.sum.At()
		tc, cv := a.count.At()
		switch {
		case ts < tc:
			st = a.sum.Seek(tc)
		case tc < ts:
			ct = a.count.Seek(ts)
		default:
			a.t, a.v, a.valid = ts, sv/cv, true
			return chunkenc.ValFloat
		}
	}
	a.valid = false
	return chunkenc.ValNone
}

func (a *avgIterator) Next() chunkenc.ValueType { return a.align(a.sum.Next(), a.count.Next()) }
func (a *avgIterator) Seek(t int64) chunkenc.ValueType {
	if a.valid && a.t >= t {
		return chunkenc.ValFloat
	}
	return a.align(a.sum.Seek(t), a.count.Seek(t))
}
func (a *avgIterator) At() (int64, float64) { return a.t, a.v }
func (a *avgIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("avgIterator: not a histogram")
}

func (a *avgIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("avgIterator: not a histogram")
}
func (a *avgIterator) AtT() int64  { return a.t }
func (a *avgIterator) AtST() int64 { return 0 }
func (a *avgIterator) Err() error {
	if err := a.sum.Err(); err != nil {
		return err
	}
	return a.count.Err()
}
