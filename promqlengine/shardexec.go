package promqlengine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
)

// Evaluation of a sharded range query (see shard.go for which are split).
//
// The parts are upstream engine queries of the same expression over a
// shardQueryable each. The first Select of a selector reads the series of
// the whole query once, from one querier of the underlying queryable, and
// deals them to the parts; each part's engine then reads its series'
// samples, so the parts evaluate concurrently and the index is read once.
// Each part keeps the storage's order of its series.

// shardState is what the parts of one sharded query share.
type shardState struct {
	inner storage.Queryable
	plan  shardPlan
	n     int

	mu       sync.Mutex
	queriers map[[2]int64]storage.Querier
	selects  map[string]*shardSelect
	assigned map[uint64]int // key hash → part, for group splits
	load     []int          // series dealt to each part
}

// shardSelect is one selector's series, dealt to the parts.
type shardSelect struct {
	once  sync.Once
	parts [][]storage.Series
	warns annotations.Annotations
	err   error
}

func newShardState(inner storage.Queryable, plan shardPlan, n int) *shardState {
	return &shardState{
		inner: inner, plan: plan, n: n,
		queriers: map[[2]int64]storage.Querier{},
		selects:  map[string]*shardSelect{},
		assigned: map[uint64]int{},
		load:     make([]int, n),
	}
}

// querier returns the underlying querier of [mint, maxt], opened once.
func (st *shardState) querier(mint, maxt int64) (storage.Querier, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := [2]int64{mint, maxt}
	if q, ok := st.queriers[k]; ok {
		return q, nil
	}
	q, err := st.inner.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	st.queriers[k] = q
	return q, nil
}

// close closes the underlying queriers; the parts must be done with them.
func (st *shardState) close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	var errs []error
	for k, q := range st.queriers {
		errs = append(errs, q.Close())
		delete(st.queriers, k)
	}
	return errors.Join(errs...)
}

// selectKey identifies a Select by everything it is given.
func selectKey(mint, maxt int64, sortSeries bool, h *storage.SelectHints, ms []*labels.Matcher) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %d %t", mint, maxt, sortSeries)
	if h != nil {
		fmt.Fprintf(&b, " %d %d %d %d %q %v %t %d %t %d %d", h.Start, h.End, h.Step, h.Range, h.Func, h.Grouping, h.By, h.ShardIndex, h.DisableTrimming, h.ShardCount, h.Limit)
	}
	for _, m := range ms {
		b.WriteByte(' ')
		b.WriteString(m.String())
	}
	return b.String()
}

// part returns part i of the series a Select selects.
func (st *shardState) part(ctx context.Context, i int, mint, maxt int64, sortSeries bool, h *storage.SelectHints, ms []*labels.Matcher) storage.SeriesSet {
	k := selectKey(mint, maxt, sortSeries, h, ms)
	st.mu.Lock()
	sel, ok := st.selects[k]
	if !ok {
		sel = &shardSelect{}
		st.selects[k] = sel
	}
	st.mu.Unlock()
	sel.once.Do(func() { st.deal(ctx, sel, mint, maxt, sortSeries, h, ms) })
	if sel.err != nil {
		return storage.ErrSeriesSet(sel.err)
	}
	return &sliceSeriesSet{series: sel.parts[i], warns: sel.warns}
}

// deal reads a selector's series and deals them to the parts.
func (st *shardState) deal(ctx context.Context, sel *shardSelect, mint, maxt int64, sortSeries bool, h *storage.SelectHints, ms []*labels.Matcher) {
	q, err := st.querier(mint, maxt)
	if err != nil {
		sel.err = err
		return
	}
	set := q.Select(ctx, sortSeries, h, ms...)
	var all []storage.Series
	for set.Next() {
		all = append(all, set.At())
	}
	sel.warns = set.Warnings()
	if sel.err = set.Err(); sel.err != nil {
		return
	}
	sel.parts = make([][]storage.Series, st.n)
	if st.plan.series {
		for i, s := range all {
			sel.parts[i%st.n] = append(sel.parts[i%st.n], s)
		}
		return
	}
	// Group split: each key value goes to one part for the whole query, so
	// that series matched across selectors meet. New key values are given,
	// largest group first, to the part with the fewest series.
	hashes := make([]uint64, len(all))
	size := map[uint64]int{}
	var order []uint64
	var buf []byte
	for i, s := range all {
		hashes[i], buf = st.plan.key.hash(s.Labels(), buf)
		if size[hashes[i]] == 0 {
			order = append(order, hashes[i])
		}
		size[hashes[i]]++
	}
	st.mu.Lock()
	slices.SortStableFunc(order, func(a, b uint64) int { return cmp.Compare(size[b], size[a]) })
	for _, g := range order {
		if _, ok := st.assigned[g]; ok {
			continue
		}
		p := 0
		for j := range st.load {
			if st.load[j] < st.load[p] {
				p = j
			}
		}
		st.assigned[g] = p
		st.load[p] += size[g]
	}
	for i, s := range all {
		p := st.assigned[hashes[i]]
		sel.parts[p] = append(sel.parts[p], s)
	}
	st.mu.Unlock()
}

// sliceSeriesSet is a part's series of a Select.
type sliceSeriesSet struct {
	series []storage.Series
	cur    int
	warns  annotations.Annotations
	begun  bool
}

func (s *sliceSeriesSet) Next() bool {
	if s.begun {
		s.cur++
	}
	s.begun = true
	return s.cur < len(s.series)
}
func (s *sliceSeriesSet) At() storage.Series                { return s.series[s.cur] }
func (s *sliceSeriesSet) Err() error                        { return nil }
func (s *sliceSeriesSet) Warnings() annotations.Annotations { return s.warns }

// shardQueryable is part i of a sharded query's storage.
type shardQueryable struct {
	st *shardState
	i  int
}

func (q shardQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return shardQuerier{q, mint, maxt}, nil
}

type shardQuerier struct {
	shardQueryable
	mint, maxt int64
}

func (q shardQuerier) Select(ctx context.Context, sortSeries bool, h *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return q.st.part(ctx, q.i, q.mint, q.maxt, sortSeries, h, ms)
}

func (q shardQuerier) LabelValues(ctx context.Context, name string, h *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	u, err := q.st.querier(q.mint, q.maxt)
	if err != nil {
		return nil, nil, err
	}
	return u.LabelValues(ctx, name, h, ms...)
}

func (q shardQuerier) LabelNames(ctx context.Context, h *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	u, err := q.st.querier(q.mint, q.maxt)
	if err != nil {
		return nil, nil, err
	}
	return u.LabelNames(ctx, h, ms...)
}

// Close is a no-op: the shared queriers are closed when every part is done.
func (shardQuerier) Close() error { return nil }

// shardedQuery runs its parts concurrently and merges their answers.
type shardedQuery struct {
	parts []promql.Query
	st    *shardState
	qs    string
	stats *stats.Statistics
}

// newShardedRangeQuery returns the sharded range query of qs on eng, or nil
// if qs is not to be sharded.
func (e *Engine) newShardedRangeQuery(ctx context.Context, eng *promql.Engine, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	if e.shards < 2 || (opts != nil && opts.EnablePerStepStats()) {
		return nil, nil
	}
	expr, err := e.Parser.ParseExpr(qs)
	if err != nil {
		return nil, nil // the engine reports it
	}
	plan, ok := planShards(expr)
	if !ok {
		return nil, nil
	}
	st := newShardState(q, plan, e.shards)
	sq := &shardedQuery{st: st, qs: qs}
	for i := range e.shards {
		p, err := eng.NewRangeQuery(ctx, shardQueryable{st, i}, opts, qs, start, end, step)
		if err != nil {
			sq.Close()
			return nil, err
		}
		sq.parts = append(sq.parts, p)
	}
	return sq, nil
}

func (q *shardedQuery) Exec(ctx context.Context) *promql.Result {
	timers := stats.NewQueryTimers()
	total := timers.GetTimer(stats.EvalTotalTime).Start()
	results := make([]*promql.Result, len(q.parts))
	var wg sync.WaitGroup
	for i, p := range q.parts {
		wg.Go(func() { results[i] = p.Exec(ctx) })
	}
	wg.Wait()
	cerr := q.st.close()
	res := q.merge(results)
	if res.Err == nil && cerr != nil {
		res.Err = cerr
	}
	total.Stop()
	q.stats = &stats.Statistics{Timers: timers, Samples: q.samples()}
	return res
}

// merge returns the answer of the whole query from its parts'.
func (q *shardedQuery) merge(results []*promql.Result) *promql.Result {
	var warns annotations.Annotations
	for _, r := range results {
		warns.Merge(r.Warnings)
	}
	for _, r := range results {
		if r.Err != nil {
			return &promql.Result{Err: r.Err, Warnings: warns}
		}
	}
	var mats []promql.Matrix
	for _, r := range results {
		m, ok := r.Value.(promql.Matrix)
		if !ok {
			return &promql.Result{Err: fmt.Errorf("sharded query: unexpected result type %s", r.Value.Type()), Warnings: warns}
		}
		mats = append(mats, m)
	}
	var out promql.Matrix
	if q.st.plan.series {
		out = mergeCounts(mats, q.st.plan.mergeOp)
	} else {
		for _, m := range mats {
			out = append(out, m...)
		}
	}
	sort.Sort(out)
	return &promql.Result{Value: out, Warnings: warns}
}

// mergeCounts merges the parts' answers of count (adding) or group (1) per
// output series and step.
func mergeCounts(mats []promql.Matrix, op parser.ItemType) promql.Matrix {
	byHash := map[uint64][]int{}
	var out promql.Matrix
	for _, m := range mats {
	series:
		for _, s := range m {
			h := s.Metric.Hash()
			for _, j := range byHash[h] {
				if labels.Equal(out[j].Metric, s.Metric) {
					out[j].Floats = mergePoints(out[j].Floats, s.Floats, op)
					continue series
				}
			}
			byHash[h] = append(byHash[h], len(out))
			out = append(out, promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats)})
		}
	}
	return out
}

// mergePoints merges two series' points, both in time order.
func mergePoints(a, b []promql.FPoint, op parser.ItemType) []promql.FPoint {
	out := make([]promql.FPoint, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i].T < b[j].T:
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].T < a[i].T:
			out = append(out, b[j])
			j++
		default:
			p := a[i]
			if op == parser.COUNT {
				p.F += b[j].F
			}
			out = append(out, p)
			i++
			j++
		}
	}
	return out
}

// samples adds up the parts' sample statistics.
func (q *shardedQuery) samples() *stats.QuerySamples {
	s := stats.NewQuerySamples(false)
	for _, p := range q.parts {
		ps := p.Stats()
		if ps == nil || ps.Samples == nil {
			continue
		}
		s.PeakSamples += ps.Samples.PeakSamples
		s.TotalSamples += ps.Samples.TotalSamples
		s.SamplesRead += ps.Samples.SamplesRead
		s.TotalSeries += ps.Samples.TotalSeries
	}
	return s
}

func (q *shardedQuery) Close() {
	for _, p := range q.parts {
		p.Close()
	}
	_ = q.st.close()
}

func (q *shardedQuery) Statement() parser.Statement { return q.parts[0].Statement() }

func (q *shardedQuery) Stats() *stats.Statistics {
	if q.stats == nil {
		return &stats.Statistics{Timers: stats.NewQueryTimers(), Samples: q.samples()}
	}
	return q.stats
}

func (q *shardedQuery) Cancel() {
	for _, p := range q.parts {
		p.Cancel()
	}
}

func (q *shardedQuery) String() string { return q.qs }
