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
// even when the select asks for untrimmed chunks, and that the caller's
// hints are left as they were.
func TestSpanQuerierTrims(t *testing.T) {
	for _, h := range []*storage.SelectHints{nil, {Start: 1, End: 2}, {Start: 1, End: 2, DisableTrimming: true}} {
		inner := &hintsQuerier{}
		var before storage.SelectHints
		if h != nil {
			before = *h
		}
		spanQuerier{inner}.Select(context.Background(), false, h, labels.MustNewMatcher(labels.MatchEqual, "a", "b"))
		if inner.got != nil && inner.got.DisableTrimming {
			t.Errorf("hints %+v reached the block untrimmed", h)
		}
		if h != nil && (h.DisableTrimming != before.DisableTrimming || inner.got.Start != h.Start || inner.got.End != h.End) {
			t.Errorf("hints %+v changed to %+v, passed on as %+v", before, *h, inner.got)
		}
	}
}
