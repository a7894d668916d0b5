// Package cardinality counts the series of a series set by label name and
// label value: what /api/v1/status/tsdb and the cardinality endpoints answer
// when they cover more than a TSDB head (whose postings Prometheus counts
// itself, tsdb.Head.Stats).
//
// Counting reads a merged, de-duplicated series set of a querier (the same
// series in the head and in several blocks is one series) without reading
// chunks, and keeps one counter per label pair: its memory is that of the
// answer before it is cut to the top entries, bounded by MaxSeries.
package cardinality

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// ErrTooManySeries is returned when a set holds more series than the count
// may read.
var ErrTooManySeries = errors.New("too many series")

// Counts is the cardinality of a set of series.
type Counts struct {
	// Series is the number of series.
	Series int
	// values maps each label name to the number of series of each of its
	// values.
	values map[string]map[string]int
}

// Count counts the series of set, at most maxSeries of them (0: no bound);
// past it, it fails with an error wrapping ErrTooManySeries. The context is
// checked every 1024 series.
func Count(ctx context.Context, set storage.SeriesSet, maxSeries int) (*Counts, error) {
	c := &Counts{values: map[string]map[string]int{}}
	for set.Next() {
		if c.Series%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if maxSeries > 0 && c.Series >= maxSeries {
			return nil, fmt.Errorf("%w: more than %d series match; narrow the selector or the time range", ErrTooManySeries, maxSeries)
		}
		c.Series++
		set.At().Labels().Range(func(l labels.Label) {
			vs := c.values[l.Name]
			if vs == nil {
				vs = map[string]int{}
				c.values[l.Name] = vs
			}
			vs[l.Value]++
		})
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Stat is a name and its count.
type Stat struct {
	Name  string
	Count uint64
}

// top sorts stats by count, largest first, then by name, and cuts them to
// limit entries (all when limit <= 0).
func top(stats []Stat, limit int) []Stat {
	slices.SortFunc(stats, func(a, b Stat) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if limit > 0 && len(stats) > limit {
		stats = stats[:limit]
	}
	return stats
}

// LabelNames returns the number of label names, the number of label pairs
// (distinct name and value), and the limit names with most values, with
// their number of values.
func (c *Counts) LabelNames(limit int) (names, pairs int, byValues []Stat) {
	stats := make([]Stat, 0, len(c.values))
	for n, vs := range c.values {
		pairs += len(vs)
		stats = append(stats, Stat{Name: n, Count: uint64(len(vs))})
	}
	return len(c.values), pairs, top(stats, limit)
}

// Name is the cardinality of one label name.
type Name struct {
	// Values is the number of its values; Series the number of series that
	// have the label.
	Values, Series int
	// Top is the limit values with most series, with their series count.
	Top []Stat
}

// LabelValues returns the cardinality of label name, its values cut to
// the limit with most series.
func (c *Counts) LabelValues(name string, limit int) Name {
	vs := c.values[name]
	out := Name{Values: len(vs)}
	stats := make([]Stat, 0, len(vs))
	for v, n := range vs {
		out.Series += n
		stats = append(stats, Stat{Name: v, Count: uint64(n)})
	}
	out.Top = top(stats, limit)
	return out
}

// TSDBStats are the lists of Prometheus's /api/v1/status/tsdb, each cut to
// the limit largest entries.
type TSDBStats struct {
	// SeriesCountByMetricName: series per value of the metric name label.
	SeriesCountByMetricName []Stat
	// LabelValueCountByLabelName: values per label name.
	LabelValueCountByLabelName []Stat
	// MemoryInBytesByLabelName: per label name, the bytes its label pairs
	// take in an index, as Prometheus's head counts them
	// (labels.SizeOfLabels).
	MemoryInBytesByLabelName []Stat
	// SeriesCountByLabelValuePair: series per "name=value".
	SeriesCountByLabelValuePair []Stat
	// NumLabelPairs is the number of distinct label pairs.
	NumLabelPairs int
}

// TSDBStats returns the statistics of /api/v1/status/tsdb, with the series
// counted by the values of label metricLabel (the metric name in Prometheus).
func (c *Counts) TSDBStats(metricLabel string, limit int) TSDBStats {
	var s TSDBStats
	var byName, memory, pairs []Stat
	for n, vs := range c.values {
		s.NumLabelPairs += len(vs)
		byName = append(byName, Stat{Name: n, Count: uint64(len(vs))})
		var size uint64
		for v, k := range vs {
			size += labels.SizeOfLabels(n, v, uint64(k))
			pairs = append(pairs, Stat{Name: n + "=" + v, Count: uint64(k)})
		}
		memory = append(memory, Stat{Name: n, Count: size})
	}
	metrics := make([]Stat, 0, len(c.values[metricLabel]))
	for v, k := range c.values[metricLabel] {
		metrics = append(metrics, Stat{Name: v, Count: uint64(k)})
	}
	s.SeriesCountByMetricName = top(metrics, limit)
	s.LabelValueCountByLabelName = top(byName, limit)
	s.MemoryInBytesByLabelName = top(memory, limit)
	s.SeriesCountByLabelValuePair = top(pairs, limit)
	return s
}
