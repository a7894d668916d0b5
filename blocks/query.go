package blocks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
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
	return tenantExemplarQuerier{s: q.s, id: id}, nil
}

// tenantExemplarQuerier reads a tenant's exemplars, holding the tenant
// open for each Select only (an ExemplarQuerier is never closed).
type tenantExemplarQuerier struct {
	s  *Store
	id string
}

func (q tenantExemplarQuerier) Select(start, end int64, ms ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	t, err := q.s.acquire(q.id, false)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return emptyExemplarQuerier{}.Select(start, end, ms...)
	}
	defer q.s.release(t)
	eq, err := t.db.ExemplarQuerier(context.Background())
	if err != nil {
		return nil, err
	}
	return eq.Select(start, end, ms...)
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
// has no local data), holding the tenant open until the querier closes.
// q.mu is held.
func (q *tenantQuerier) sources(ctx context.Context) (id string, t *tenantDB, err error) {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return "", nil, tenant.ErrNoTenant
	}
	if t, err = q.s.acquire(id, false); err != nil {
		return "", nil, err
	}
	if t != nil {
		q.closers = append(q.closers, func() error { q.s.release(t); return nil })
	}
	return id, t, nil
}

// span is a block to read and the part [mint, maxt] of it to read.
type span struct {
	meta       *blockmeta.Meta
	mint, maxt int64
}

// remoteBlocks chooses the bucket blocks to read and which part of each.
//
// Local data (head and local blocks, raw) is always read, and its time range
// is taken from the bucket. The rest of [q.mint, q.maxt] is filled one
// resolution at a time: first the resolutions the query allows (ctx's max
// resolution), coarsest first, then finer data never allowed is not needed,
// then coarser ones, finest first, where nothing allowed exists any more
// (raw data past retention). Each time range is read from one resolution
// only, so aggregates are never counted twice, and blocks of one resolution
// may overlap each other (their identical samples are merged).
//
// The local TSDB querier must be opened before its block list is read: a
// block deleted locally in between is then served from the bucket (and
// de-duplicated by the merge) instead of being missing from both.
func (q *tenantQuerier) remoteBlocks(ctx context.Context, id string, t *tenantDB) []span {
	if q.s.bucket == nil {
		return nil
	}
	var covered intervals
	have := map[ulid.ULID]struct{}{}
	if t != nil {
		for _, b := range t.db.Blocks() {
			m := b.Meta()
			have[m.ULID] = struct{}{}
			covered = covered.add(m.MinTime, m.MaxTime-1)
		}
		if h := t.db.Head(); h.NumSeries() > 0 && h.MinTime() <= h.MaxTime() {
			covered = covered.add(h.MinTime(), h.MaxTime())
		}
	}
	byRes := map[int64][]*blockmeta.Meta{}
	for _, m := range q.s.bucket.Blocks(id, q.mint, q.maxt) {
		if _, ok := have[m.ULID]; !ok {
			byRes[m.Resolution()] = append(byRes[m.Resolution()], m)
		}
	}
	var out []span
	for _, res := range resolutionOrder(blockmeta.MaxResolution(ctx)) {
		gaps := covered.gaps(q.mint, q.maxt)
		if len(gaps) == 0 {
			break
		}
		for _, m := range byRes[res] {
			for _, g := range gaps {
				lo, hi := max(g.lo, m.MinTime), min(g.hi, m.MaxTime-1)
				if lo <= hi {
					out = append(out, span{meta: m, mint: lo, maxt: hi})
				}
			}
		}
		for _, m := range byRes[res] {
			covered = covered.add(m.MinTime, m.MaxTime-1)
		}
	}
	return out
}

// resolutionOrder is the order resolutions are read in for a query allowing
// up to maxRes: allowed ones coarsest first, then coarser ones finest first.
func resolutionOrder(maxRes int64) []int64 {
	all := []int64{blockmeta.ResRaw, blockmeta.Res1m, blockmeta.Res1h}
	var allowed, coarser []int64
	for _, r := range all {
		if r <= maxRes {
			allowed = append([]int64{r}, allowed...)
		} else {
			coarser = append(coarser, r)
		}
	}
	return append(allowed, coarser...)
}

// intervals is a sorted list of disjoint closed time intervals.
type intervals []interval

type interval struct{ lo, hi int64 }

// add returns iv with [lo, hi] added, merging touching intervals.
func (iv intervals) add(lo, hi int64) intervals {
	out := make(intervals, 0, len(iv)+1)
	placed := false
	for _, x := range iv {
		switch {
		case x.hi+1 < lo:
			out = append(out, x)
		case hi+1 < x.lo:
			if !placed {
				out = append(out, interval{lo, hi})
				placed = true
			}
			out = append(out, x)
		default:
			lo, hi = min(lo, x.lo), max(hi, x.hi)
		}
	}
	if !placed {
		out = append(out, interval{lo, hi})
	}
	slices.SortFunc(out, func(a, b interval) int { return cmp.Compare(a.lo, b.lo) })
	return out
}

// gaps returns the parts of [lo, hi] that iv does not cover.
func (iv intervals) gaps(lo, hi int64) []interval {
	var out []interval
	cur := lo
	for _, x := range iv {
		if x.hi < cur {
			continue
		}
		if x.lo > hi {
			break
		}
		if x.lo > cur {
			out = append(out, interval{cur, x.lo - 1})
		}
		cur = x.hi + 1
		if cur > hi {
			return out
		}
	}
	if cur <= hi {
		out = append(out, interval{cur, hi})
	}
	return out
}

// acquire opens the bucket blocks for reading; release undoes it.
func (q *tenantQuerier) acquire(ctx context.Context, id string, spans []span) ([]*cacheEntry, error) {
	entries := make([]*cacheEntry, 0, len(spans))
	for _, sp := range spans {
		meta := sp.meta
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
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.isClosed {
		return nil, errQuerierClosed
	}
	if id, ok := tenant.FromContext(ctx); ok {
		if sq, ok := q.samples[id]; ok {
			return sq, nil
		}
	}
	id, t, err := q.sources(ctx)
	if err != nil {
		return nil, err
	}
	var qs []storage.Querier
	if t != nil {
		lq, err := t.db.Querier(q.mint, q.maxt)
		if err != nil {
			return nil, err
		}
		qs = append(qs, aggrQuerier{Querier: lq})
	}
	spans := q.remoteBlocks(ctx, id, t)
	entries, err := q.acquire(ctx, id, spans)
	if err != nil {
		closeAll(qs)
		return nil, err
	}
	for i, e := range entries {
		bq, err := tsdb.NewBlockQuerier(e.block, spans[i].mint, spans[i].maxt)
		if err != nil {
			closeAll(qs)
			q.release(entries)
			return nil, err
		}
		qs = append(qs, aggrQuerier{Querier: spanQuerier{bq}, downsampled: spans[i].meta.Resolution() > 0})
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

// spanQuerier reads a bucket block within its span only, whatever the
// select's hints say: spans of blocks of different resolutions meet inside
// a query's range, and samples of one must not show in the other's.
type spanQuerier struct{ storage.Querier }

func (q spanQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if hints != nil && hints.DisableTrimming {
		h := *hints
		h.DisableTrimming = false
		hints = &h
	}
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
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
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.isClosed {
		return nil, errQuerierClosed
	}
	if id, ok := tenant.FromContext(ctx); ok {
		if cq, ok := q.chunks[id]; ok {
			return cq, nil
		}
	}
	id, t, err := q.sources(ctx)
	if err != nil {
		return nil, err
	}
	var qs []storage.ChunkQuerier
	if t != nil {
		lq, err := t.db.ChunkQuerier(q.mint, q.maxt)
		if err != nil {
			return nil, err
		}
		qs = append(qs, lq)
	}
	spans := q.remoteBlocks(ctx, id, t)
	entries, err := q.acquire(ctx, id, spans)
	if err != nil {
		closeAll(qs)
		return nil, err
	}
	for i, e := range entries {
		var bq storage.ChunkQuerier
		if spans[i].meta.Resolution() > 0 {
			// Remote read of downsampled data returns each window's mean,
			// re-encoded as chunks.
			sq, qerr := tsdb.NewBlockQuerier(e.block, spans[i].mint, spans[i].maxt)
			bq, err = seriesToChunkQuerier{aggrQuerier{Querier: sq, downsampled: true}}, qerr
		} else {
			bq, err = tsdb.NewBlockChunkQuerier(e.block, spans[i].mint, spans[i].maxt)
		}
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

// seriesToChunkQuerier serves a sample querier's series as chunks.
type seriesToChunkQuerier struct{ storage.Querier }

func (q seriesToChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(q.Querier.Select(ctx, sortSeries, hints, ms...))
}

// ReadsDownsampled reports whether a query of the tenant in ctx over
// [mint, maxt], allowed the resolution blockmeta.MaxResolution(ctx), would
// read a downsampled block (see promqlengine's resolution choice).
func (s *Store) ReadsDownsampled(ctx context.Context, mint, maxt int64) bool {
	q := &tenantQuerier{s: s, mint: mint, maxt: maxt}
	q.mu.Lock()
	id, t, err := q.sources(ctx)
	q.mu.Unlock()
	defer q.Close()
	if err != nil {
		return false
	}
	for _, sp := range q.remoteBlocks(ctx, id, t) {
		if sp.meta.Resolution() > 0 {
			return true
		}
	}
	return false
}
