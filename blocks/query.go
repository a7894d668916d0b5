package blocks

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
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

// tenantQuerier opens the tenant's queriers on first use and closes them on Close.
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

// sources returns the tenant of ctx and its local TSDB (nil if the tenant
// has no local data).
func (q *tenantQuerier) sources(ctx context.Context) (id string, t *tenantDB, err error) {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return "", nil, tenant.ErrNoTenant
	}
	if t, err = q.s.tenant(id, false); err != nil {
		return "", nil, err
	}
	return id, t, nil
}

// remoteBlocks lists the tenant's bucket blocks in range that local does not hold.
//
// The local TSDB querier must be opened before its block list is read: a
// block deleted locally in between is then served from the bucket (and
// de-duplicated by the merge) instead of being missing from both.
func (q *tenantQuerier) remoteBlocks(id string, local []*tsdb.Block) []tsdb.BlockMeta {
	if q.s.bucket == nil {
		return nil
	}
	have := make(map[ulid.ULID]struct{}, len(local))
	for _, b := range local {
		have[b.Meta().ULID] = struct{}{}
	}
	var out []tsdb.BlockMeta
	for _, meta := range q.s.bucket.Blocks(id, q.mint, q.maxt) {
		if _, ok := have[meta.ULID]; !ok {
			out = append(out, meta)
		}
	}
	return out
}

// acquire opens the bucket blocks for reading; release undoes it.
func (q *tenantQuerier) acquire(ctx context.Context, id string, metas []tsdb.BlockMeta) ([]*cacheEntry, error) {
	entries := make([]*cacheEntry, 0, len(metas))
	for _, meta := range metas {
		e, err := q.s.cache.Acquire(ctx, id, meta.ULID)
		if err != nil {
			q.release(entries)
			return nil, fmt.Errorf("read block %s of tenant %q from the bucket: %w", meta.ULID, id, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func (q *tenantQuerier) release(entries []*cacheEntry) {
	for _, e := range entries {
		q.s.cache.Release(e)
	}
}

// querier returns the tenant's merged querier: head and local blocks, plus
// bucket blocks. Identical samples present in several are returned once.
func (q *tenantQuerier) querier(ctx context.Context) (storage.Querier, error) {
	id, t, err := q.sources(ctx)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.isClosed {
		return nil, errQuerierClosed
	}
	if sq, ok := q.samples[id]; ok {
		return sq, nil
	}
	var (
		qs    []storage.Querier
		local []*tsdb.Block
	)
	if t != nil {
		lq, err := t.db.Querier(q.mint, q.maxt)
		if err != nil {
			return nil, err
		}
		qs, local = append(qs, lq), t.db.Blocks()
	}
	entries, err := q.acquire(ctx, id, q.remoteBlocks(id, local))
	if err != nil {
		closeAll(qs)
		return nil, err
	}
	for _, e := range entries {
		bq, err := tsdb.NewBlockQuerier(e.block, q.mint, q.maxt)
		if err != nil {
			closeAll(qs)
			q.release(entries)
			return nil, err
		}
		qs = append(qs, bq)
	}
	if len(qs) == 0 {
		return nil, nil
	}
	sq := qs[0]
	if len(qs) > 1 {
		sq = storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge)
	}
	if q.samples == nil {
		q.samples = map[string]storage.Querier{}
	}
	q.samples[id] = sq
	q.closers = append(q.closers, func() error {
		err := sq.Close()
		q.release(entries)
		return err
	})
	return sq, nil
}

func closeAll[Q interface{ Close() error }](qs []Q) {
	for _, x := range qs {
		_ = x.Close()
	}
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

// chunkQuerier is querier for chunks (remote read's streamed responses).
func (q *tenantChunkQuerier) chunkQuerier(ctx context.Context) (storage.ChunkQuerier, error) {
	id, t, err := q.sources(ctx)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.isClosed {
		return nil, errQuerierClosed
	}
	if cq, ok := q.chunks[id]; ok {
		return cq, nil
	}
	var (
		qs    []storage.ChunkQuerier
		local []*tsdb.Block
	)
	if t != nil {
		lq, err := t.db.ChunkQuerier(q.mint, q.maxt)
		if err != nil {
			return nil, err
		}
		qs, local = append(qs, lq), t.db.Blocks()
	}
	entries, err := q.acquire(ctx, id, q.remoteBlocks(id, local))
	if err != nil {
		closeAll(qs)
		return nil, err
	}
	for _, e := range entries {
		bq, err := tsdb.NewBlockChunkQuerier(e.block, q.mint, q.maxt)
		if err != nil {
			closeAll(qs)
			q.release(entries)
			return nil, err
		}
		qs = append(qs, bq)
	}
	if len(qs) == 0 {
		return nil, nil
	}
	cq := qs[0]
	if len(qs) > 1 {
		cq = storage.NewMergeChunkQuerier(qs, nil, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge))
	}
	if q.chunks == nil {
		q.chunks = map[string]storage.ChunkQuerier{}
	}
	q.chunks[id] = cq
	q.closers = append(q.closers, func() error {
		err := cq.Close()
		q.release(entries)
		return err
	})
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
