package promqlengine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
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
// shardQueryable each. A part opens its own querier of the underlying
// queryable (TSDB's head chunk reader keeps a cache and must not be shared
// between goroutines), selects every series of a selector and keeps its
// own, in the storage's order; the parts evaluate concurrently.
//
// Which part a series goes to is decided once per key value for the whole
// query, shared by the parts and by all selectors, so that series matched
// across selectors meet in one part. A series created between two parts'
// selects may be seen by one part only, or by none: as if that part read a
// moment earlier, never twice.

// shardState is what the parts of one sharded query share.
type shardState struct {
	plan shardPlan
	n    int

	mu       sync.Mutex
	assigned map[uint64]int // key hash → part, for group splits
	load     []int          // series given to each part
}

func newShardState(plan shardPlan, n int) *shardState {
	return &shardState{plan: plan, n: n, assigned: map[uint64]int{}, load: make([]int, n)}
}

// mine returns the series of all that belong to part i.
func (st *shardState) mine(i int, all []storage.Series) []storage.Series {
	var out []storage.Series
	var buf []byte
	if st.plan.series {
		// Integer counts add up exactly whatever the split: spread by hash.
		for _, s := range all {
			if int(s.Labels().Hash()%uint64(st.n)) == i {
				out = append(out, s)
			}
		}
		return out
	}
	hashes := make([]uint64, len(all))
	size := map[uint64]int{}
	var order []uint64
	for j, s := range all {
		hashes[j], buf = st.plan.key.hash(s.Labels(), buf)
		if size[hashes[j]] == 0 {
			order = append(order, hashes[j])
		}
		size[hashes[j]]++
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// Key values not yet given a part go, largest group first, to the part
	// with the fewest series.
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
	for j, s := range all {
		if st.assigned[hashes[j]] == i {
			out = append(out, s)
		}
	}
	return out
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
	inner storage.Queryable
	st    *shardState
	i     int
}

func (q shardQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	u, err := q.inner.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return shardQuerier{u, q.st, q.i}, nil
}

// shardQuerier is a part's querier: its own querier of the underlying
// storage, selecting the part's series.
type shardQuerier struct {
	storage.Querier
	st *shardState
	i  int
}

func (q shardQuerier) Select(ctx context.Context, sortSeries bool, h *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	set := q.Querier.Select(ctx, sortSeries, h, ms...)
	var all []storage.Series
	for set.Next() {
		all = append(all, set.At())
	}
	if err := set.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	return &sliceSeriesSet{series: q.st.mine(q.i, all), warns: set.Warnings()}
}

// shardedQuery runs its parts concurrently and merges their answers.
type shardedQuery struct {
	parts []promql.Query
	st    *shardState
	qs    string
	stats *stats.Statistics
}

// newShardedRangeQuery returns the sharded range query of qs on eng, or nil
// if qs is not to be sharded.
// Each part's queryable is given to wrap, when set, before the engine.
func (e *Engine) newShardedRangeQuery(ctx context.Context, eng *promql.Engine, wrap func(storage.Queryable) storage.Queryable, q storage.Queryable, opts promql.QueryOpts, qs string, expr parser.Expr, start, end time.Time, step time.Duration) (promql.Query, error) {
	if e.shards < 2 || (opts != nil && opts.EnablePerStepStats()) || expr == nil {
		return nil, nil
	}
	plan, ok := planShards(expr)
	if !ok {
		return nil, nil
	}
	st := newShardState(plan, e.shards)
	sq := &shardedQuery{st: st, qs: qs}
	for i := range e.shards {
		var pq storage.Queryable = shardQueryable{q, st, i}
		if wrap != nil {
			pq = wrap(pq)
		}
		p, err := eng.NewRangeQuery(ctx, pq, opts, qs, start, end, step)
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
	res := q.merge(results)
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
