package promqlengine

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// sortedQueryable makes every select of a range query sorted by labels,
// whatever the engine asks. The order of a select is the order in which
// PromQL's aggregations add up the series' values, and floating-point
// addition is not associative: a TSDB querier over the head alone yields
// series in their creation order, one over blocks and the head (merged) in
// label order, so the same range query over the same data could change in
// its last bits with the blocks its range reads: across a head compaction,
// and between a query and the parts the query front end splits it into
// and caches. A range query's answer is sorted by labels anyway, so only
// those last bits change. Instant queries keep the storage's order, which
// is also the order of their answer (Prometheus's, series by creation
// over the head). Sorting costs a lookup and a label comparison per head
// series selected; a block's postings are in label order already.
type sortedQueryable struct{ storage.Queryable }

func (q sortedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	u, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return sortedQuerier{u}, nil
}

type sortedQuerier struct{ storage.Querier }

func (q sortedQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return q.Querier.Select(ctx, true, hints, ms...)
}
