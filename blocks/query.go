package blocks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

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
func (s *Store) Queryable() storage.SampleAndChunkQueryable { return queryable{s: s} }

// ExemplarQueryable returns the store's exemplars, per tenant of the context.
func (s *Store) ExemplarQueryable() storage.ExemplarQueryable { return queryable{s: s} }

// LocalQueryable is Queryable without the bucket's blocks nor
// Options.Recent: the tenant's head and the local blocks not yet shipped,
// or shipped less than shippedFor ago. It is what an ingester answers
// queriers with: they read the bucket themselves, and see a shipped block
// there within their bucket sync interval, which shippedFor must exceed.
// Leaving older shipped blocks out keeps an ingester's raw data from being
// read beside the bucket's downsampled blocks of the same time (made hours
// later), whose aggregates it would be added to.
func (s *Store) LocalQueryable(shippedFor time.Duration) storage.SampleAndChunkQueryable {
	return queryable{s: s, localOnly: true, shippedFor: shippedFor}
}

type queryable struct {
	s          *Store
	localOnly  bool
	shippedFor time.Duration
}

func (q queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &tenantQuerier{s: q.s, mint: mint, maxt: maxt, localOnly: q.localOnly, shippedFor: q.shippedFor}, nil
}

func (q queryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return &tenantChunkQuerier{tenantQuerier{s: q.s, mint: mint, maxt: maxt, localOnly: q.localOnly, shippedFor: q.shippedFor}}, nil
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
	// localOnly leaves out the bucket and Options.Recent, and the local
	// blocks shipped more than shippedFor ago (LocalQueryable).
	localOnly  bool
	shippedFor time.Duration

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
// Local data (the head, and the local blocks in opened) is read besides:
// the bucket holds none of its samples (localReads leaves out the local
// blocks the bucket holds in other blocks), and bucket copies of the opened
// blocks are left out.
//
// A block's sources (meta.json) name the raw blocks whose data it holds, in
// whatever resolution. The query's range is cut at every block boundary,
// and each piece is given blocks in resolution order: first the
// resolutions the query allows (ctx's max resolution), coarsest first, then
// coarser ones, finest first, for data nothing allowed holds any more (raw
// data past retention). A block whose sources the blocks given the piece
// already hold adds nothing there and is not read; one that holds all the
// sources of some of them replaces those; one whose sources are new (a
// late or out-of-order block beside older data of the same time) is read
// besides. So every raw sample is read once, from one resolution, and
// aggregates are never counted twice, whatever the spans of the blocks.
// (The compactor only merges blocks whose sources are disjoint or nested,
// so two blocks' sources never partly overlap.)
func (q *tenantQuerier) remoteBlocks(ctx context.Context, id string, opened map[ulid.ULID]bool) []span {
	if q.s.bucket == nil {
		return nil
	}
	byRes := map[int64][]*blockmeta.Meta{}
	end := q.maxt // pieces are [cuts[i], cuts[i+1]), the last ending after maxt
	if end < math.MaxInt64 {
		end++
	}
	cuts := []int64{q.mint, end}
	for _, m := range q.s.bucket.Blocks(id, q.mint, q.maxt) {
		if opened[m.ULID] {
			continue
		}
		byRes[m.Resolution()] = append(byRes[m.Resolution()], m)
		if m.MinTime > q.mint {
			cuts = append(cuts, m.MinTime)
		}
		if m.MaxTime < end {
			cuts = append(cuts, m.MaxTime)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	// pieces[i] is [cuts[i], cuts[i+1]), and chosen[i] the blocks read there.
	chosen := make([][]*blockmeta.Meta, len(cuts)-1)
	srcs := map[ulid.ULID]map[ulid.ULID]bool{}
	sourcesOf := func(m *blockmeta.Meta) map[ulid.ULID]bool {
		if set, ok := srcs[m.ULID]; ok {
			return set
		}
		set := make(map[ulid.ULID]bool, len(m.Compaction.Sources)+1)
		for _, s := range m.Compaction.Sources {
			set[s] = true
		}
		if len(set) == 0 {
			set[m.ULID] = true
		}
		srcs[m.ULID] = set
		return set
	}
	for _, res := range resolutionOrder(blockmeta.MaxResolution(ctx)) {
		for _, m := range byRes[res] {
			ms := sourcesOf(m)
			first, _ := slices.BinarySearch(cuts, max(m.MinTime, q.mint))
			for i := first; i < len(chosen) && cuts[i] < m.MaxTime; i++ {
				keep := chosen[i][:0:0]
				add := true
				for _, c := range chosen[i] {
					cs := sourcesOf(c)
					switch {
					case subset(ms, cs):
						add = false // its data is read already
						keep = append(keep, c)
					case subset(cs, ms):
						// m holds all of c's data and more: m replaces c.
					default:
						keep = append(keep, c)
					}
				}
				if add {
					keep = append(keep, m)
				}
				chosen[i] = keep
			}
		}
	}
	// Adjacent pieces given the same block make one span.
	var out []span
	open := map[ulid.ULID]int{} // block -> index in out of its span ending at the previous piece
	for i, blocks := range chosen {
		next := map[ulid.ULID]int{}
		for _, m := range blocks {
			if j, ok := open[m.ULID]; ok {
				out[j].maxt = cuts[i+1] - 1
				next[m.ULID] = j
				continue
			}
			out = append(out, span{meta: m, mint: cuts[i], maxt: cuts[i+1] - 1})
			next[m.ULID] = len(out) - 1
		}
		open = next
	}
	return out
}

// subset reports whether every element of a is in b.
func subset(a, b map[ulid.ULID]bool) bool {
	if len(a) > len(b) {
		return false
	}
	for x := range a {
		if !b[x] {
			return false
		}
	}
	return true
}

// openLocal opens the tenant's local querier over [mint, maxt] through f,
// leaving out the local blocks the bucket holds elsewhere, and returns the
// local blocks it reads.
//
// Which blocks the bucket holds is taken before the local querier opens,
// and the bucket's blocks are chosen after: a local block deleted in
// between (only shipped blocks are, and the store's view of the bucket
// shows a block from its upload on) is then read from the bucket, not
// missed.
func (q *tenantQuerier) openLocal(id string, t *tenantDB, f func() error) (map[ulid.ULID]bool, error) {
	var held func(ulid.ULID) bool
	if q.s.bucket != nil {
		held = q.s.bucket.HeldElsewhere(id)
	}
	if q.localOnly && t.shipper != nil {
		elsewhere, cutoff := held, time.Now().Add(-q.shippedFor)
		held = func(u ulid.ULID) bool {
			return (elsewhere != nil && elsewhere(u)) || t.shipper.shippedBefore(u, cutoff)
		}
	}
	return t.local.open(held, f)
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

// acquire opens the bucket blocks for reading; release undoes it.
func (q *tenantQuerier) acquire(ctx context.Context, id string, spans []span) ([]*cacheEntry, error) {
	entries := make([]*cacheEntry, 0, len(spans))
	for _, sp := range spans {
		meta := sp.meta
		e, err := q.s.cache.Acquire(ctx, id, meta.ULID)
		if err != nil {
			q.release(entries)
			if q.s.opts.Bucket.IsNotFound(err) {
				err = &blockGoneError{id: meta.ULID, err: err}
			}
			return nil, fmt.Errorf("read block %s of tenant %q from the bucket: %w", meta.ULID, id, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// blockGoneError says a block of the view is no longer in the bucket.
type blockGoneError struct {
	id  ulid.ULID
	err error
}

func (e *blockGoneError) Error() string { return e.err.Error() }
func (e *blockGoneError) Unwrap() error { return e.err }

// maxReplans bounds how often one querier plans its bucket blocks again
// after finding one gone.
const maxReplans = 3

// remoteEntries chooses the bucket blocks to read and opens them. A block
// found gone from the bucket (the compactor replaced and deleted it while
// this view still showed it) is dropped from the view, the tenant's index
// read again, and the blocks chosen anew: background work never fails a
// query.
func (q *tenantQuerier) remoteEntries(ctx context.Context, id string, opened map[ulid.ULID]bool) ([]span, []*cacheEntry, error) {
	for attempt := 0; ; attempt++ {
		spans := q.remoteBlocks(ctx, id, opened)
		entries, err := q.acquire(ctx, id, spans)
		var gone *blockGoneError
		if err == nil || attempt == maxReplans || !errors.As(err, &gone) {
			return spans, entries, err
		}
		q.s.logger.Info("block gone from the bucket, reading the tenant's index again", "tenant", id, "block", gone.id)
		q.s.bucket.Forget(id, gone.id)
		q.s.cache.Drop(id, gone.id)
		if err := q.s.bucket.SyncTenant(ctx, id, func(tenantID string, u ulid.ULID) { q.s.cache.Drop(tenantID, u) }); err != nil {
			return nil, nil, fmt.Errorf("read the block list of tenant %q again: %w", id, err)
		}
	}
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
	var opened map[ulid.ULID]bool
	if t != nil {
		var lq storage.Querier
		opened, err = q.openLocal(id, t, func() (err error) {
			lq, err = t.db.Querier(q.mint, q.maxt)
			return err
		})
		if err != nil {
			return nil, err
		}
		qs = append(qs, aggrQuerier{Querier: lq})
	}
	if q.localOnly {
		return q.keep(id, qs, nil)
	}
	if recent := q.s.opts.Recent; recent != nil {
		rq, err := recent(ctx, id, q.mint, q.maxt)
		if err != nil {
			closeAll(qs)
			return nil, err
		}
		qs = append(qs, aggrQuerier{Querier: rq})
	}
	spans, entries, err := q.remoteEntries(ctx, id, opened)
	if err != nil {
		closeAll(qs)
		return nil, err
	}
	// The downsampled blocks of one resolution read at the same time hold
	// disjoint raw data (remoteBlocks): their aggregates of one window add
	// up, as the compactor will add them when it merges the blocks.
	downsampled := map[int64][]storage.Querier{}
	for i, e := range entries {
		blk, err := q.s.withDeletions(ctx, id, spans[i].meta, e.block)
		var bq storage.Querier
		if err == nil {
			bq, err = tsdb.NewBlockQuerier(blk, spans[i].mint, spans[i].maxt)
		}
		if err != nil {
			closeAll(qs)
			for _, ds := range downsampled {
				closeAll(ds)
			}
			q.release(entries)
			return nil, err
		}
		sq := spanQuerier{bq, spans[i].mint, spans[i].maxt}
		if res := spans[i].meta.Resolution(); res > 0 {
			downsampled[res] = append(downsampled[res], sq)
			continue
		}
		qs = append(qs, aggrQuerier{Querier: sq})
	}
	for _, ds := range downsampled {
		qs = append(qs, aggrQuerier{Querier: storage.NewMergeQuerier(ds, nil, blockmeta.MergeDisjointAggregates), downsampled: true})
	}
	return q.keep(id, qs, entries)
}

// keep merges qs into the tenant's querier, remembered until Close, which
// also releases entries. q.mu is held.
func (q *tenantQuerier) keep(id string, qs []storage.Querier, entries []*cacheEntry) (storage.Querier, error) {
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

// spanQuerier reads a bucket block within its span [mint, maxt] only,
// whatever the select's hints say: spans of blocks of different resolutions
// meet inside a query's range, and samples of one must not show in the
// other's. A TSDB block querier reads the hints' Start and End instead of
// its own range when hints are given, so they are clamped to the span, and
// trimming is never disabled.
type spanQuerier struct {
	storage.Querier
	mint, maxt int64
}

// clampHints returns hints limited to [mint, maxt] with trimming on, and
// false when nothing of the span is asked for.
func clampHints(hints *storage.SelectHints, mint, maxt int64) (*storage.SelectHints, bool) {
	if hints == nil {
		return nil, true
	}
	h := *hints
	h.DisableTrimming = false
	h.Start, h.End = max(h.Start, mint), min(h.End, maxt)
	return &h, h.Start <= h.End
}

func (q spanQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	h, ok := clampHints(hints, q.mint, q.maxt)
	if !ok {
		return storage.EmptySeriesSet()
	}
	return q.Querier.Select(ctx, sortSeries, h, ms...)
}

// spanChunkQuerier is spanQuerier for chunks.
type spanChunkQuerier struct {
	storage.ChunkQuerier
	mint, maxt int64
}

func (q spanChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	h, ok := clampHints(hints, q.mint, q.maxt)
	if !ok {
		return storage.EmptyChunkSeriesSet()
	}
	return q.ChunkQuerier.Select(ctx, sortSeries, h, ms...)
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
	return sq.Select(ctx, sortSeries || sortedSelects(ctx), hints, ms...)
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
	var opened map[ulid.ULID]bool
	if t != nil {
		var lq storage.ChunkQuerier
		opened, err = q.openLocal(id, t, func() (err error) {
			lq, err = t.db.ChunkQuerier(q.mint, q.maxt)
			return err
		})
		if err != nil {
			return nil, err
		}
		qs = append(qs, lq)
	}
	var (
		spans   []span
		entries []*cacheEntry
	)
	if !q.localOnly {
		if recent := q.s.opts.Recent; recent != nil {
			rq, err := recent(ctx, id, q.mint, q.maxt)
			if err != nil {
				closeAll(qs)
				return nil, err
			}
			qs = append(qs, seriesToChunkQuerier{rq})
		}
		if spans, entries, err = q.remoteEntries(ctx, id, opened); err != nil {
			closeAll(qs)
			return nil, err
		}
	}
	for i, e := range entries {
		var bq storage.ChunkQuerier
		blk, derr := q.s.withDeletions(ctx, id, spans[i].meta, e.block)
		switch {
		case derr != nil:
			err = derr
		case spans[i].meta.Resolution() > 0:
			// Remote read of downsampled data returns each window's mean,
			// re-encoded as chunks.
			sq, qerr := tsdb.NewBlockQuerier(blk, spans[i].mint, spans[i].maxt)
			bq, err = seriesToChunkQuerier{aggrQuerier{Querier: spanQuerier{sq, spans[i].mint, spans[i].maxt}, downsampled: true}}, qerr
		default:
			var cq storage.ChunkQuerier
			cq, err = tsdb.NewBlockChunkQuerier(blk, spans[i].mint, spans[i].maxt)
			bq = spanChunkQuerier{cq, spans[i].mint, spans[i].maxt}
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

// plan returns a querier of the tenant in ctx over [mint, maxt] that opens
// nothing, for deciding how a query would read; the tenant and its local
// TSDB (nil without local data) are held until q.Close. ok is false when
// the tenant cannot be read.
func (s *Store) plan(ctx context.Context, mint, maxt int64) (q *tenantQuerier, id string, t *tenantDB, ok bool) {
	q = &tenantQuerier{s: s, mint: mint, maxt: maxt}
	q.mu.Lock()
	id, t, err := q.sources(ctx)
	q.mu.Unlock()
	if err != nil {
		_ = q.Close()
		return nil, "", nil, false
	}
	return q, id, t, true
}

// ReadsDownsampled reports whether a query of the tenant in ctx over
// [mint, maxt], allowed the resolution blockmeta.MaxResolution(ctx), would
// read a downsampled block (see promqlengine's resolution choice).
func (s *Store) ReadsDownsampled(ctx context.Context, mint, maxt int64) bool {
	q, id, t, ok := s.plan(ctx, mint, maxt)
	if !ok {
		return false
	}
	defer q.Close()
	opened := map[ulid.ULID]bool{}
	if t != nil && s.bucket != nil {
		held := s.bucket.HeldElsewhere(id)
		for _, b := range t.db.Blocks() {
			if id := b.Meta().ULID; !held(id) {
				opened[id] = true
			}
		}
	}
	for _, sp := range q.remoteBlocks(ctx, id, opened) {
		if sp.meta.Resolution() > 0 {
			return true
		}
	}
	return false
}

type sortedSelectsKey struct{}

// WithSortedSelects returns ctx under which the store's selects return
// series sorted by labels, whatever the caller asks. A query reading one
// source gets the head's series in the order they were created, and one
// reading several gets them sorted (merging needs it); PromQL sums series
// in the order it gets them, so a part of a query reading the head alone
// must be read sorted when the whole query reads several sources, or its
// answer may differ from the whole's in the last bits (ReadsSeveral).
func WithSortedSelects(ctx context.Context) context.Context {
	return context.WithValue(ctx, sortedSelectsKey{}, true)
}

func sortedSelects(ctx context.Context) bool {
	v, _ := ctx.Value(sortedSelectsKey{}).(bool)
	return v
}

// ReadsSeveral reports whether a query of the tenant in ctx over
// [mint, maxt] reads more than one source (the head, local blocks, the
// ingesters' recent data, bucket blocks), and so gets the series of its
// selects sorted by labels as a merge of sources returns them: the same
// sources the tenant's querier opens (querier), counted without opening
// any bucket block.
func (s *Store) ReadsSeveral(ctx context.Context, mint, maxt int64) bool {
	q, id, t, ok := s.plan(ctx, mint, maxt)
	if !ok {
		return false
	}
	defer q.Close()
	local, outer := 0, 0 // the TSDB's own merge, and the merge of keep
	opened := map[ulid.ULID]bool{}
	if t != nil {
		outer++
		held := func(ulid.ULID) bool { return false }
		if s.bucket != nil {
			held = s.bucket.HeldElsewhere(id)
		}
		for _, b := range t.db.Blocks() {
			if m := b.Meta(); b.OverlapsClosedInterval(mint, maxt) && !held(m.ULID) {
				opened[m.ULID] = true
				local++
			}
		}
		if h := t.db.Head(); maxt >= h.MinTime() || (mint <= h.MaxOOOTime() && h.MinOOOTime() <= maxt) {
			local++
		}
	}
	if s.opts.Recent != nil {
		outer++
	}
	resolutions := map[int64]bool{}
	for _, sp := range q.remoteBlocks(ctx, id, opened) {
		if res := sp.meta.Resolution(); res > 0 {
			if resolutions[res] {
				continue
			}
			resolutions[res] = true
		}
		outer++
	}
	return local > 1 || outer > 1
}
