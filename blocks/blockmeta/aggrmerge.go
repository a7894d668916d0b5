package blockmeta

import (
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// MergeDisjointAggregates merges the aggregate series of downsampled blocks
// made from disjoint raw data (different source blocks of one window: a
// late block downsampled after the window's raw data left retention): the
// compactor merges such blocks with it, and a reader that reads both before
// the compactor has must too. Two
// aggregates of one window, stamped alike, are combined as the raw samples
// would have been: counts and sums added, the least minimum, the greatest
// maximum. Counter samples are raw samples: they are merged as raw data is,
// identical timestamps kept once.
//
// It must never be used for blocks that share a source: their aggregates
// describe the same samples, and adding them would count them twice.
func MergeDisjointAggregates(series ...storage.Series) storage.Series {
	if len(series) == 0 {
		return nil
	}
	return MergeDisjointAggregatesOf(series[0].Labels().Get(AggrLabel), series...)
}

// MergeDisjointAggregatesOf is MergeDisjointAggregates for series of
// aggregate aggr (a value of AggrLabel), whatever their labels say: TSDB's
// compacting chunk merger passes series without labels.
func MergeDisjointAggregatesOf(aggr string, series ...storage.Series) storage.Series {
	if len(series) < 2 {
		return storage.ChainedSeriesMerge(series...)
	}
	var combine func(a, b float64) float64
	switch aggr {
	case AggrCount, AggrSum:
		combine = func(a, b float64) float64 { return a + b }
	case AggrMin:
		combine = math.Min
	case AggrMax:
		combine = math.Max
	default:
		return storage.ChainedSeriesMerge(series...)
	}
	return &storage.SeriesEntry{
		Lset: series[0].Labels(),
		SampleIteratorFn: func(chunkenc.Iterator) chunkenc.Iterator {
			var all []fsample
			var err error
			for _, s := range series {
				it := s.Iterator(nil)
				for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
					if vt == chunkenc.ValFloat {
						t, v := it.At()
						all = append(all, fsample{t, v})
					}
				}
				if err == nil {
					err = it.Err()
				}
			}
			if err != nil {
				return errIterator{err}
			}
			slices.SortStableFunc(all, func(a, b fsample) int { return compareInt64(a.t, b.t) })
			out := make(chunks.SampleSlice, 0, len(all))
			for i := 0; i < len(all); {
				cur := all[i]
				for i++; i < len(all) && all[i].t == cur.t; i++ {
					cur.f = combine(cur.f, all[i].f)
				}
				out = append(out, cur)
			}
			return storage.NewListSeriesIterator(out)
		},
	}
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fsample is a float sample as chunks.Sample.
type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }

// errIterator is an iterator that failed.
type errIterator struct{ err error }

func (e errIterator) Next() chunkenc.ValueType                                       { return chunkenc.ValNone }
func (e errIterator) Seek(int64) chunkenc.ValueType                                  { return chunkenc.ValNone }
func (e errIterator) At() (int64, float64)                                           { return 0, 0 }
func (e errIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) { return 0, nil }
func (e errIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return 0, nil
}
func (e errIterator) AtT() int64  { return 0 }
func (e errIterator) AtST() int64 { return 0 }
func (e errIterator) Err() error  { return e.err }
