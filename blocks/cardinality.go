package blocks

import (
	"context"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/cardinality"
	"github.com/strata-tsdb/strata/tenant"
)

// CountScope is what SeriesCounts counts: the series in a tenant's head
// (Head), or the series with samples in [MinTime, MaxTime] in its head, its
// local blocks and its bucket blocks of every resolution.
type CountScope struct {
	Head             bool
	MinTime, MaxTime int64
}

// allSeries matches every series: each has a metric name.
var allSeries = labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")

// SeriesCounts counts the series of tenant id matching ms (all when none)
// in scope, reading at most maxSeries of them (0: no bound; past it the
// error wraps cardinality.ErrTooManySeries). No chunk is read; over a
// range, the coarsest resolution holding each part of it is read (its
// blocks are the smallest, and hold the same series). A tenant without
// data counts nothing.
func (s *Store) SeriesCounts(ctx context.Context, id string, scope CountScope, ms []*labels.Matcher, maxSeries int) (*cardinality.Counts, error) {
	if len(ms) == 0 {
		ms = []*labels.Matcher{allSeries}
	}
	hints := &storage.SelectHints{Start: scope.MinTime, End: scope.MaxTime, Func: "series"}
	var q storage.Querier
	if scope.Head {
		t, err := s.acquire(id, false)
		if err != nil {
			return nil, err
		}
		if t == nil {
			return cardinality.Count(ctx, storage.EmptySeriesSet(), maxSeries)
		}
		defer s.release(t)
		if q, err = tsdb.NewBlockQuerier(tsdb.NewRangeHead(t.db.Head(), math.MinInt64, math.MaxInt64), math.MinInt64, math.MaxInt64); err != nil {
			return nil, fmt.Errorf("open the head of tenant %q: %w", id, err)
		}
		hints.Start, hints.End = math.MinInt64, math.MaxInt64
	} else {
		ctx = blockmeta.WithMaxResolution(tenant.WithID(ctx, id), blockmeta.Res1h)
		var err error
		if q, err = s.Queryable().Querier(scope.MinTime, scope.MaxTime); err != nil {
			return nil, err
		}
	}
	defer q.Close()
	return cardinality.Count(ctx, q.Select(ctx, false, hints, ms...), maxSeries)
}
