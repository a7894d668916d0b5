package cardinality

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// sliceSet is a series set of labels only.
type sliceSet struct {
	ls []labels.Labels
	i  int
}

func (s *sliceSet) Next() bool                        { s.i++; return s.i <= len(s.ls) }
func (s *sliceSet) At() storage.Series                { return storage.NewListSeries(s.ls[s.i-1], nil) }
func (s *sliceSet) Err() error                        { return nil }
func (s *sliceSet) Warnings() annotations.Annotations { return nil }

func set(series ...labels.Labels) storage.SeriesSet { return &sliceSet{ls: series} }

func TestCount(t *testing.T) {
	data := []labels.Labels{
		labels.FromStrings("__name__", "a", "job", "x", "pod", "1"),
		labels.FromStrings("__name__", "a", "job", "x", "pod", "2"),
		labels.FromStrings("__name__", "a", "job", "y", "pod", "3"),
		labels.FromStrings("__name__", "b", "job", "x"),
	}
	c, err := Count(context.Background(), set(data...), 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Series != 4 {
		t.Errorf("series %d, want 4", c.Series)
	}
	names, pairs, byValues := c.LabelNames(0)
	if names != 3 || pairs != 2+2+3 {
		t.Errorf("names %d pairs %d, want 3 and 7", names, pairs)
	}
	if want := []Stat{{"pod", 3}, {"__name__", 2}, {"job", 2}}; !reflect.DeepEqual(byValues, want) {
		t.Errorf("label names %v, want %v", byValues, want)
	}
	tests := []struct {
		name  string
		limit int
		want  Name
	}{
		{"job", 0, Name{Values: 2, Series: 4, Top: []Stat{{"x", 3}, {"y", 1}}}},
		{"pod", 2, Name{Values: 3, Series: 3, Top: []Stat{{"1", 1}, {"2", 1}}}},
		{"absent", 5, Name{Top: []Stat{}}},
	}
	for _, tc := range tests {
		if got := c.LabelValues(tc.name, tc.limit); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("LabelValues(%q, %d) = %+v, want %+v", tc.name, tc.limit, got, tc.want)
		}
	}
	st := c.TSDBStats("__name__", 2)
	if want := []Stat{{"a", 3}, {"b", 1}}; !reflect.DeepEqual(st.SeriesCountByMetricName, want) {
		t.Errorf("by metric %v, want %v", st.SeriesCountByMetricName, want)
	}
	// Equal counts are ordered by name.
	if want := []Stat{{"__name__=a", 3}, {"job=x", 3}}; !reflect.DeepEqual(st.SeriesCountByLabelValuePair, want) {
		t.Errorf("by pair %v, want %v", st.SeriesCountByLabelValuePair, want)
	}
	if st.NumLabelPairs != 7 || len(st.MemoryInBytesByLabelName) != 2 {
		t.Errorf("pairs %d, memory %v", st.NumLabelPairs, st.MemoryInBytesByLabelName)
	}
}

func TestCountBounds(t *testing.T) {
	data := []labels.Labels{labels.FromStrings("a", "1"), labels.FromStrings("a", "2"), labels.FromStrings("a", "3")}
	if _, err := Count(context.Background(), set(data...), 3); err != nil {
		t.Errorf("3 series under a bound of 3: %v", err)
	}
	if _, err := Count(context.Background(), set(data...), 2); !errors.Is(err, ErrTooManySeries) {
		t.Errorf("3 series under a bound of 2: %v, want ErrTooManySeries", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Count(ctx, set(data...), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}
