package blocks

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// hintsQuerier records the hints of its last select.
type hintsQuerier struct {
	storage.Querier
	got *storage.SelectHints
}

func (q *hintsQuerier) Select(_ context.Context, _ bool, h *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
	q.got = h
	return storage.EmptySeriesSet()
}

// TestSpanQuerierTrims checks that a bucket block is read within its span
// whatever the select's hints ask for (a TSDB block querier reads the
// hints' range instead of its own), never untrimmed, and that the caller's
// hints are left as they were.
func TestSpanQuerierTrims(t *testing.T) {
	const mint, maxt = 10, 20
	for _, tc := range []struct {
		hints      *storage.SelectHints
		start, end int64 // what reaches the block; 0, 0 for nothing
		selected   bool
	}{
		{hints: nil, selected: true},
		{hints: &storage.SelectHints{Start: 12, End: 18}, start: 12, end: 18, selected: true},
		{hints: &storage.SelectHints{Start: 1, End: 30}, start: 10, end: 20, selected: true},
		{hints: &storage.SelectHints{Start: 1, End: 30, DisableTrimming: true}, start: 10, end: 20, selected: true},
		{hints: &storage.SelectHints{Start: 20, End: 20}, start: 20, end: 20, selected: true},
		{hints: &storage.SelectHints{Start: 21, End: 30}},
	} {
		inner := &hintsQuerier{}
		var before storage.SelectHints
		if tc.hints != nil {
			before = *tc.hints
		}
		spanQuerier{inner, mint, maxt}.Select(context.Background(), false, tc.hints, labels.MustNewMatcher(labels.MatchEqual, "a", "b"))
		switch {
		case !tc.selected && inner.got != nil:
			t.Errorf("hints %+v outside the span [%d, %d] reached the block as %+v", before, mint, maxt, inner.got)
		case tc.hints != nil && tc.selected && (inner.got == nil || inner.got.Start != tc.start || inner.got.End != tc.end || inner.got.DisableTrimming):
			t.Errorf("hints %+v reached the block as %+v, want [%d, %d] trimmed", before, inner.got, tc.start, tc.end)
		}
		if tc.hints != nil && (tc.hints.Start != before.Start || tc.hints.End != before.End || tc.hints.DisableTrimming != before.DisableTrimming) {
			t.Errorf("hints %+v changed to %+v", before, *tc.hints)
		}
	}
}
