package blocks

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-tsdb/strata/tenant"
)

// Queryable returns the store as a storage.SampleAndChunkQueryable whose
// queriers read the tenant named by the context of each Select, LabelValues
// and LabelNames call. A tenant without data answers with empty results.
//
// Storage's Queryable.Querier takes no context, while every read method of a
// Querier does: resolving the tenant there is what lets one upstream API and
// PromQL engine serve every tenant.
func (s *Store) Queryable() storage.SampleAndChunkQueryable { return queryable{s} }

// ExemplarQueryable returns the store's exemplars, per tenant of the context.
func (s *Store) ExemplarQueryable() storage.ExemplarQueryable { return queryable{s} }

type queryable struct{ s *Store }

func (q queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &tenantQuerier{s: q.s, mint: mint, maxt: maxt}, nil
}

func (q queryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return &tenantChunkQuerier{tenantQuerier{s: q.s, mint: mint, maxt: maxt}}, nil
}

func (q queryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return nil, tenant.ErrNoTenant
	}
	t, err := q.s.tenant(id, false)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return emptyExemplarQuerier{}, nil
	}
	return t.db.ExemplarQuerier(ctx)
}

type emptyExemplarQuerier struct{}

func (emptyExemplarQuerier) Select(int64, int64, ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	return []exemplar.QueryResult{}, nil
}

// tenantQuerier opens the tenant's TSDB querier on first use and closes it on Close.
type tenantQuerier struct {
	s          *Store
	mint, maxt int64

	mu       sync.Mutex
	closers  []func() error
	samples  map[string]storage.Querier
	chunks   map[string]storage.ChunkQuerier
	isClosed bool
}

var errQuerierClosed = errors.New("querier is closed")

// db returns the tenant of ctx, or nil when the tenant has no data.
func (q *tenantQuerier) db(ctx context.Context) (*tenantDB, error) {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return nil, tenant.ErrNoTenant
	}
	return q.s.tenant(id, false)
}

func (q *tenantQuerier) querier(ctx context.Context) (storage.Querier, error) {
	t, err := q.db(ctx)
	if err != nil || t == nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.isClosed {
		return nil, errQuerierClosed
	}
	if sq, ok := q.samples[t.id]; ok {
		return sq, nil
	}
	sq, err := t.db.Querier(q.mint, q.maxt)
	if err != nil {
		return nil, err
	}
	if q.samples == nil {
		q.samples = map[string]storage.Querier{}
	}
	q.samples[t.id] = sq
	q.closers = append(q.closers, sq.Close)
	return sq, nil
}

func (q *tenantQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	sq, err := q.querier(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if sq == nil {
		return storage.EmptySeriesSet()
	}
	return sq.Select(ctx, sortSeries, hints, ms...)
}

func (q *tenantQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	sq, err := q.querier(ctx)
	if err != nil || sq == nil {
		return nil, nil, err
	}
	return sq.LabelValues(ctx, name, hints, ms...)
}

func (q *tenantQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	sq, err := q.querier(ctx)
	if err != nil || sq == nil {
		return nil, nil, err
	}
	return sq.LabelNames(ctx, hints, ms...)
}

func (q *tenantQuerier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.isClosed {
		return nil
	}
	q.isClosed = true
	var errs []error
	for _, c := range q.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

type tenantChunkQuerier struct{ tenantQuerier }

func (q *tenantChunkQuerier) chunkQuerier(ctx context.Context) (storage.ChunkQuerier, error) {
	t, err := q.db(ctx)
	if err != nil || t == nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.isClosed {
		return nil, errQuerierClosed
	}
	if cq, ok := q.chunks[t.id]; ok {
		return cq, nil
	}
	cq, err := t.db.ChunkQuerier(q.mint, q.maxt)
	if err != nil {
		return nil, err
	}
	if q.chunks == nil {
		q.chunks = map[string]storage.ChunkQuerier{}
	}
	q.chunks[t.id] = cq
	q.closers = append(q.closers, cq.Close)
	return cq, nil
}

func (q *tenantChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	cq, err := q.chunkQuerier(ctx)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	if cq == nil {
		return storage.EmptyChunkSeriesSet()
	}
	return cq.Select(ctx, sortSeries, hints, ms...)
}

func (q *tenantChunkQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	cq, err := q.chunkQuerier(ctx)
	if err != nil || cq == nil {
		return nil, nil, err
	}
	return cq.LabelValues(ctx, name, hints, ms...)
}

func (q *tenantChunkQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	cq, err := q.chunkQuerier(ctx)
	if err != nil || cq == nil {
		return nil, nil, err
	}
	return cq.LabelNames(ctx, hints, ms...)
}
