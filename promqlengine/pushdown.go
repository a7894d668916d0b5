package promqlengine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/schema"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// Range-function pushdown for range queries.
//
// Profiles of the bench's query set show the upstream engine spending about
// three quarters of a rate query's CPU time above the storage: it reads each
// series through a buffered, memoized iterator and copies every step's
// window into a ring before calling the function. The samples themselves
// cost a quarter (measured: decoding every sample of the node_cpu series
// takes 69ms, rate over them at a 1m step 280ms).
//
// So a range query's calls of a range function over a plain selector, such
// as rate(x[5m]), are evaluated where the samples are read: each series is
// read once into a flat array, and for each step the upstream function
// itself (promql.FunctionCalls) is called on the step's window, a sub-slice
// of that array, exactly as the engine would call it: same window (the
// samples after ts-range and up to ts, stale markers left out), same
// arguments, same evaluation helper. The engine is handed the answers as a
// selector of precomputed series, one sample per step, and evaluates the
// rest of the query (aggregations, binary operations, sorting) itself. The
// answer is the engine's own, to the last bit; TestPushdownMatchesEngine
// checks it over many expressions.
//
// The same holds for plain instant selectors (each step's value is the
// latest sample within the lookback, unless it is a stale marker, as the
// engine picks it) and for count and group directly over one, whose
// answers are small integers, the same in any order of addition.
//
// The rewritten call becomes a vector selector with the call's matchers and
// a marker matcher naming the call (pushdownLabel="<index>"). The engine
// that runs pushed-down queries parses with pushdownParser, which makes that
// rewrite; its queryable (pushdownQueryable) answers the marked selects.
// A step without an answer gets a stale marker, so that the engine's
// lookback does not carry the previous step's answer forward.
//
// Not pushed down: calls under a subquery (their steps are the subquery's),
// selectors with @, anchored or smoothed selectors, functions with
// arguments other than number literals, absent_over_time (whose answer is
// not per series), and queries that mention the marker label. A series
// with histogram samples, or two series whose answers would carry the same
// labels (which the engine merges), or more precomputed points than the
// engine's sample limit, make the query run again without pushdown
// (errPushdownFallback); queries asking for per-step statistics are not
// pushed down.

// pushdownLabel is the marker matcher's label name.
const pushdownLabel = "__strata_pushdown__"

// errPushdownFallback asks for the query to be evaluated without pushdown.
var errPushdownFallback = errors.New("range function pushdown does not apply")

// pushdownFuncs are the range functions evaluated where samples are read,
// when their other arguments, if any, are number literals.
var pushdownFuncs = map[string]bool{
	"rate": true, "increase": true, "irate": true, "delta": true, "idelta": true,
	"deriv": true, "resets": true, "changes": true, "predict_linear": true,
	"avg_over_time": true, "min_over_time": true, "max_over_time": true,
	"sum_over_time": true, "count_over_time": true, "stddev_over_time": true,
	"stdvar_over_time": true, "last_over_time": true, "present_over_time": true,
	"quantile_over_time": true, "mad_over_time": true,
}

// pushSpec is one pushed-down call.
type pushSpec struct {
	call      *parser.Call
	vs        *parser.VectorSelector
	rng       int64 // milliseconds
	offset    int64 // milliseconds
	matrixArg int
	consts    []float64 // the other arguments, by position (matrixArg's unused)
	dropName  bool
	// instant: a plain instant selector, answered with its value at each
	// step (the latest sample within the lookback); call is nil.
	instant bool
	// agg, when COUNT or GROUP, counts the instant selector's series per
	// group of grouping (sorted, with the metric name, type and unit
	// labels when without) at each step, as the aggregation would.
	agg      parser.ItemType
	grouping []string
	without  bool
}

// pushdownRewrite replaces the calls of expr that can be pushed down by
// marked selectors and returns them, in the order of their markers.
func pushdownRewrite(expr parser.Expr) (parser.Expr, []*pushSpec) {
	mentioned := false
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Name == pushdownLabel {
					mentioned = true
				}
			}
		}
		return nil
	})
	if mentioned {
		return expr, nil
	}
	var specs []*pushSpec
	return pushdownWalk(expr, &specs), specs
}

func pushdownWalk(expr parser.Expr, specs *[]*pushSpec) parser.Expr {
	switch n := expr.(type) {
	case *parser.VectorSelector:
		if n.Timestamp == nil && n.StartOrEnd == 0 {
			return marked(n, &pushSpec{vs: n, offset: n.OriginalOffset.Milliseconds(), instant: true}, specs)
		}
	case *parser.Call:
		if sp, ok := pushable(n); ok {
			return marked(n, sp, specs)
		}
		if n.Func == nil || selectorArgsFuncs[n.Func.Name] || promql.FunctionCalls[n.Func.Name] == nil && n.Func.Name != "label_replace" && n.Func.Name != "label_join" {
			// Functions that read their arguments' syntax, or their
			// samples' own timestamps, get them untouched.
			return expr
		}
		for i, a := range n.Args {
			n.Args[i] = pushdownWalk(a, specs)
		}
	case *parser.AggregateExpr:
		if vs, ok := unwrapParens(n.Expr).(*parser.VectorSelector); ok && (n.Op == parser.COUNT || n.Op == parser.GROUP) && vs.Timestamp == nil && vs.StartOrEnd == 0 {
			// Counts are exact in any order: the whole aggregation is
			// pushed down.
			grouping := slices.Clone(n.Grouping)
			if n.Without {
				grouping = append(grouping, model.MetricNameLabel, model.MetricTypeLabel, model.MetricUnitLabel)
			}
			slices.Sort(grouping)
			return marked(n, &pushSpec{vs: vs, offset: vs.OriginalOffset.Milliseconds(), instant: true, agg: n.Op, grouping: grouping, without: n.Without}, specs)
		}
		n.Expr = pushdownWalk(n.Expr, specs)
	case *parser.BinaryExpr:
		n.LHS, n.RHS = pushdownWalk(n.LHS, specs), pushdownWalk(n.RHS, specs)
	case *parser.ParenExpr:
		n.Expr = pushdownWalk(n.Expr, specs)
	case *parser.UnaryExpr:
		n.Expr = pushdownWalk(n.Expr, specs)
	}
	// Subqueries are left whole (their inner steps are not the query's),
	// and so are aggregation parameters.
	return expr
}

func unwrapParens(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// selectorArgsFuncs read more of their arguments than their values.
var selectorArgsFuncs = map[string]bool{
	"absent": true, "absent_over_time": true, "timestamp": true, "start_timestamp": true, "info": true,
}

// marked returns the selector that stands for sp in the rewritten query.
func marked(n parser.Node, sp *pushSpec, specs *[]*pushSpec) parser.Expr {
	ms := append(slices.Clone(sp.vs.LabelMatchers), labels.MustNewMatcher(labels.MatchEqual, pushdownLabel, strconv.Itoa(len(*specs))))
	*specs = append(*specs, sp)
	return &parser.VectorSelector{LabelMatchers: ms, PosRange: n.PositionRange()}
}

// pushable returns the spec of a call that can be pushed down.
func pushable(c *parser.Call) (*pushSpec, bool) {
	if c.Func == nil || !pushdownFuncs[c.Func.Name] || promql.FunctionCalls[c.Func.Name] == nil || len(c.Args) == 0 {
		return nil, false
	}
	sp := &pushSpec{call: c, matrixArg: -1, consts: make([]float64, len(c.Args))}
	for i, a := range c.Args {
		switch x := a.(type) {
		case *parser.MatrixSelector:
			vs, ok := x.VectorSelector.(*parser.VectorSelector)
			if !ok || sp.matrixArg >= 0 || x.Range <= 0 || vs.Timestamp != nil || vs.StartOrEnd != 0 || vs.Anchored || vs.Smoothed {
				return nil, false
			}
			// The engine sets Offset from OriginalOffset when it prepares
			// the query (selectors with @ are not pushed down); the
			// functions read it from the call's arguments.
			vs.Offset = vs.OriginalOffset
			sp.matrixArg, sp.vs = i, vs
			sp.rng, sp.offset = x.Range.Milliseconds(), vs.Offset.Milliseconds()
		case *parser.NumberLiteral:
			sp.consts[i] = x.Val
		default:
			return nil, false
		}
	}
	if sp.matrixArg < 0 {
		return nil, false
	}
	// As the engine: only last_over_time and first_over_time keep the name.
	sp.dropName = c.Func.Name != "last_over_time" && c.Func.Name != "first_over_time"
	return sp, true
}

// pushdownParser parses as its inner parser does, then rewrites the calls
// that can be pushed down. Only the pushdown engine uses it, and only over a
// pushdownQueryable, which answers the marked selectors.
type pushdownParser struct{ parser.Parser }

func (p pushdownParser) ParseExpr(input string) (parser.Expr, error) {
	expr, err := p.Parser.ParseExpr(input)
	if err != nil {
		return expr, err
	}
	expr, _ = pushdownRewrite(expr)
	return expr, nil
}

// pushdownQueryable answers a range query's marked selectors, for the
// query's steps, and passes every other select to inner.
type pushdownQueryable struct {
	inner            storage.Queryable
	specs            []*pushSpec
	start, end, step int64 // milliseconds
	lookback         int64 // milliseconds
	// points counts the precomputed points the query's parts hold, against
	// maxPoints (the engine's sample limit; 0: none).
	points    *atomic.Int64
	maxPoints int64
}

// hold accounts for n more precomputed points, and reports whether they stay
// within the limit. Past it the query runs again without pushdown, where
// the engine applies its own limit: pushdown never holds more points than
// the engine would let a query hold.
func (q pushdownQueryable) hold(n int) bool {
	return q.points.Add(int64(n)) <= q.maxPoints || q.maxPoints <= 0
}

func (q pushdownQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	// The pushed-down calls read before the engine's own range.
	for _, sp := range q.specs {
		mint = min(mint, q.start-sp.offset-sp.window(q))
		maxt = max(maxt, q.end-sp.offset)
	}
	inner, err := q.inner.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return pushdownQuerier{Querier: inner, q: q}, nil
}

type pushdownQuerier struct {
	storage.Querier
	q pushdownQueryable
}

func (q pushdownQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	i := slices.IndexFunc(ms, func(m *labels.Matcher) bool { return m.Name == pushdownLabel })
	if i < 0 {
		return q.Querier.Select(ctx, sortSeries, hints, ms...)
	}
	n, err := strconv.Atoi(ms[i].Value)
	if err != nil || n < 0 || n >= len(q.q.specs) || ms[i].Type != labels.MatchEqual {
		return storage.ErrSeriesSet(fmt.Errorf("%w: unknown marker %s", errPushdownFallback, ms[i]))
	}
	sp := q.q.specs[n]
	rest := slices.Delete(slices.Clone(ms), i, i+1)
	h := &storage.SelectHints{
		Start: q.q.start - sp.offset - sp.window(q.q),
		End:   q.q.end - sp.offset,
		Step:  q.q.step,
		Range: sp.rng,
		// Samples outside the range are left out by the windows below:
		// untrimmed, the head's chunks are read without a wrapper.
		DisableTrimming: true,
	}
	if sp.call != nil {
		h.Func = sp.call.Func.Name
	}
	if hints != nil {
		h.Grouping, h.By, h.ShardIndex, h.ShardCount = hints.Grouping, hints.By, hints.ShardIndex, hints.ShardCount
	}
	set := q.Querier.Select(ctx, sortSeries, h, rest...)
	if sp.instant {
		return q.q.evaluateInstant(ctx, sp, set)
	}
	return q.q.evaluate(ctx, sp, set)
}

// window is how far before a step sp reads.
func (sp *pushSpec) window(q pushdownQueryable) int64 {
	if sp.instant {
		return q.lookback
	}
	return sp.rng
}

// evaluateInstant computes an instant selector's value at every step for
// each series of set: the latest sample at or before the step, if it is
// after the step less the lookback and is not a stale marker.
func (q pushdownQueryable) evaluateInstant(ctx context.Context, sp *pushSpec, set storage.SeriesSet) storage.SeriesSet {
	var (
		out   []storage.Series
		it    chunkenc.Iterator
		steps = int((q.end-q.start)/q.step) + 1
		slab  []promql.FPoint
		stale = math.Float64frombits(value.StaleNaN)
		// For count and group: the groups in order of first series, by
		// grouping key, and each one's count per step.
		groups  map[uint64]int
		glabels []labels.Labels
		counts  [][]float64
		buf     []byte
		lb      *labels.Builder
	)
	if sp.agg != 0 {
		groups, lb = map[uint64]int{}, labels.NewBuilder(labels.EmptyLabels())
		slab = make([]promql.FPoint, steps)
	}
	for set.Next() {
		if err := ctx.Err(); err != nil {
			return storage.ErrSeriesSet(err)
		}
		s := set.At()
		if len(slab) < steps {
			slab = make([]promql.FPoint, max(steps, 4096))
		}
		pts := slab[:0:steps]
		answered := false
		it = s.Iterator(it)
		// prev is the latest sample read at or before the step; cur the
		// first one after it, if read.
		var (
			prevT, curT = int64(math.MinInt64), int64(0)
			prevF, curF float64
			have        = false
			done        = false
		)
		for ts := q.start; ts <= q.end; ts += q.step {
			ref := ts - sp.offset
			for !done {
				if !have {
					switch it.Next() {
					case chunkenc.ValNone:
						done = true
						continue
					case chunkenc.ValFloat:
						curT, curF = it.At()
						have = true
					default:
						return storage.ErrSeriesSet(fmt.Errorf("%w: histogram samples in %s", errPushdownFallback, s.Labels()))
					}
				}
				if curT > ref {
					break
				}
				prevT, prevF, have = curT, curF, false
			}
			if prevT == math.MinInt64 || prevT <= ref-q.lookback || value.IsStaleNaN(prevF) {
				pts = append(pts, promql.FPoint{T: ts, F: stale})
				continue
			}
			pts = append(pts, promql.FPoint{T: ts, F: prevF})
			answered = true
		}
		if err := it.Err(); err != nil {
			return storage.ErrSeriesSet(err)
		}
		if !answered {
			continue
		}
		if sp.agg == 0 {
			if !q.hold(steps) {
				return storage.ErrSeriesSet(fmt.Errorf("%w: over the sample limit", errPushdownFallback))
			}
			slab = slab[steps:]
			out = append(out, &pointSeries{lset: s.Labels(), pts: pts})
			continue
		}
		var key uint64
		lset := s.Labels()
		switch {
		case sp.without:
			key, buf = lset.HashWithoutLabels(buf, sp.grouping...)
		case len(sp.grouping) > 0:
			key, buf = lset.HashForLabels(buf, sp.grouping...)
		}
		g, ok := groups[key]
		if !ok {
			lb.Reset(lset)
			switch {
			case sp.without:
				lb.Del(sp.grouping...)
				schema.Metadata{}.SetToLabels(lb)
			case len(sp.grouping) > 0:
				lb.Keep(sp.grouping...)
			default:
				lb.Reset(labels.EmptyLabels())
			}
			if !q.hold(steps) {
				return storage.ErrSeriesSet(fmt.Errorf("%w: over the sample limit", errPushdownFallback))
			}
			g = len(glabels)
			groups[key] = g
			glabels = append(glabels, lb.Labels())
			counts = append(counts, make([]float64, steps))
		}
		for i, p := range pts {
			if !value.IsStaleNaN(p.F) {
				counts[g][i]++
			}
		}
	}
	if err := set.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	for g, lset := range glabels {
		pts := make([]promql.FPoint, steps)
		for i, c := range counts[g] {
			pts[i].T = q.start + int64(i)*q.step
			switch {
			case c == 0:
				pts[i].F = stale
			case sp.agg == parser.GROUP:
				pts[i].F = 1
			default:
				pts[i].F = c
			}
		}
		out = append(out, &pointSeries{lset: lset, pts: pts})
	}
	return &sliceSeriesSet{series: out, warns: set.Warnings()}
}

// evaluate computes sp's answers at every step for each series of set.
func (q pushdownQueryable) evaluate(ctx context.Context, sp *pushSpec, set storage.SeriesSet) storage.SeriesSet {
	var (
		out    []storage.Series
		annos  annotations.Annotations
		it     chunkenc.Iterator
		floats []promql.FPoint
		seen   = map[uint64][]labels.Labels{}
		steps  = int((q.end-q.start)/q.step) + 1
		call   = promql.FunctionCalls[sp.call.Func.Name]
		enh    = &promql.EvalNodeHelper{Out: make(promql.Vector, 0, 1)}
		inMat  = make(promql.Matrix, 1)
		vecs   = make([]promql.Vector, 0, len(sp.consts))
		isRate = sp.call.Func.Name == "rate" || sp.call.Func.Name == "increase"
		stale  = math.Float64frombits(value.StaleNaN)
		slab   []promql.FPoint
	)
	for j, c := range sp.consts {
		if j != sp.matrixArg {
			vecs = append(vecs, promql.Vector{promql.Sample{F: c}})
		}
	}
	for set.Next() {
		if err := ctx.Err(); err != nil {
			return storage.ErrSeriesSet(err)
		}
		s := set.At()
		raw := s.Labels()
		floats = floats[:0]
		it = s.Iterator(it)
		for {
			vt := it.Next()
			if vt == chunkenc.ValNone {
				break
			}
			if vt != chunkenc.ValFloat {
				return storage.ErrSeriesSet(fmt.Errorf("%w: histogram samples in %s", errPushdownFallback, s.Labels()))
			}
			t, f := it.At()
			if !value.IsStaleNaN(f) {
				floats = append(floats, promql.FPoint{T: t, F: f})
			}
		}
		if err := it.Err(); err != nil {
			return storage.ErrSeriesSet(err)
		}
		if len(slab) < steps {
			slab = make([]promql.FPoint, max(steps, 4096))
		}
		pts := slab[:0:steps]
		answered := false
		inMat[0].Metric = raw
		lo, hi := 0, 0
		for ts := q.start; ts <= q.end; ts += q.step {
			maxt := ts - sp.offset
			mint := maxt - sp.rng
			for hi < len(floats) && floats[hi].T <= maxt {
				hi++
			}
			for lo < hi && floats[lo].T <= mint {
				lo++
			}
			if lo == hi {
				pts = append(pts, promql.FPoint{T: ts, F: stale})
				continue
			}
			inMat[0].Floats = floats[lo:hi:hi]
			enh.Ts = ts
			res, ws := call(vecs, inMat, sp.call.Args, enh)
			annos.Merge(ws)
			enh.Out = res[:0]
			if len(res) == 0 {
				pts = append(pts, promql.FPoint{T: ts, F: stale})
				continue
			}
			pts = append(pts, promql.FPoint{T: ts, F: res[0].F})
			answered = true
		}
		if !answered {
			continue
		}
		if !q.hold(steps) {
			return storage.ErrSeriesSet(fmt.Errorf("%w: over the sample limit", errPushdownFallback))
		}
		slab = slab[steps:]
		if isRate {
			if name := raw.Get(labels.MetricName); name != "" && !strings.HasSuffix(name, "_total") && !strings.HasSuffix(name, "_sum") &&
				!strings.HasSuffix(name, "_count") && !strings.HasSuffix(name, "_bucket") {
				annos.Add(annotations.NewPossibleNonCounterInfo(name, sp.call.Args[sp.matrixArg].PositionRange()))
			}
		}
		lset := raw
		if sp.dropName {
			lset = raw.DropReserved(schema.IsMetadataLabel)
			// The engine merges answers that come to carry the same labels.
			h := lset.Hash()
			for _, o := range seen[h] {
				if labels.Equal(o, lset) {
					return storage.ErrSeriesSet(fmt.Errorf("%w: answers with the same labels", errPushdownFallback))
				}
			}
			seen[h] = append(seen[h], lset)
		}
		out = append(out, &pointSeries{lset: lset, pts: pts})
	}
	if err := set.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	annos.Merge(set.Warnings())
	return &sliceSeriesSet{series: out, warns: annos}
}

// pointSeries is a series of precomputed float points.
type pointSeries struct {
	lset labels.Labels
	pts  []promql.FPoint
}

func (s *pointSeries) Labels() labels.Labels { return s.lset }

func (s *pointSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if pi, ok := it.(*pointIterator); ok {
		pi.pts, pi.i = s.pts, -1
		return pi
	}
	return &pointIterator{pts: s.pts, i: -1}
}

// pointIterator iterates over float points.
type pointIterator struct {
	pts []promql.FPoint
	i   int
}

func (it *pointIterator) Next() chunkenc.ValueType {
	if it.i+1 >= len(it.pts) {
		it.i = len(it.pts)
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloat
}

func (it *pointIterator) Seek(t int64) chunkenc.ValueType {
	if it.i < 0 {
		it.i = 0
	}
	if it.i >= len(it.pts) {
		return chunkenc.ValNone
	}
	if it.pts[it.i].T < t {
		it.i += sortSearchPoints(it.pts[it.i:], t)
	}
	if it.i >= len(it.pts) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

// sortSearchPoints returns the index of the first point at or after t.
func sortSearchPoints(pts []promql.FPoint, t int64) int {
	i, _ := slices.BinarySearchFunc(pts, t, func(p promql.FPoint, t int64) int {
		switch {
		case p.T < t:
			return -1
		case p.T > t:
			return 1
		}
		return 0
	})
	return i
}

func (it *pointIterator) At() (int64, float64) { p := it.pts[it.i]; return p.T, p.F }
func (it *pointIterator) AtT() int64           { return it.pts[it.i].T }
func (it *pointIterator) AtST() int64          { return 0 }
func (it *pointIterator) Err() error           { return nil }
func (it *pointIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("pointIterator: no histograms")
}
func (it *pointIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("pointIterator: no histograms")
}

// newPushdownRangeQuery returns the range query qs with its range-function
// calls pushed down, sharded as newShardedRangeQuery would, or nil if none
// can be. plain builds the query without pushdown, run instead when the
// pushed-down query reports errPushdownFallback.
func (e *Engine) newPushdownRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, expr parser.Expr, start, end time.Time, step time.Duration, plain func() (promql.Query, error)) (promql.Query, error) {
	if e.pushdown == nil || step.Milliseconds() <= 0 || end.Before(start) || (opts != nil && opts.EnablePerStepStats()) || expr == nil {
		return nil, nil
	}
	lookback := e.lookback
	if opts != nil && opts.LookbackDelta() > 0 {
		lookback = opts.LookbackDelta()
	}
	if _, specs := pushdownRewrite(cloneExpr(expr)); len(specs) > 0 {
		points := &atomic.Int64{}
		wrap := func(inner storage.Queryable) storage.Queryable {
			return pushdownQueryable{inner: inner, specs: specs, start: start.UnixMilli(), end: end.UnixMilli(), step: step.Milliseconds(),
				lookback: lookback.Milliseconds(), points: points, maxPoints: int64(e.maxSamples)}
		}
		pq, err := e.newShardedRangeQuery(ctx, e.pushdown, wrap, q, opts, qs, expr, start, end, step)
		if err == nil && pq == nil {
			pq, err = e.pushdown.NewRangeQuery(ctx, wrap(q), opts, qs, start, end, step)
		}
		if err != nil {
			return nil, err
		}
		return &fallbackQuery{Query: pq, plain: plain}, nil
	}
	return nil, nil
}

// fallbackQuery runs a pushed-down query, and the query without pushdown
// when the pushdown does not apply to the data it met.
type fallbackQuery struct {
	promql.Query
	plain    func() (promql.Query, error)
	fellBack error // why the query ran again, if it did
}

func (q *fallbackQuery) Exec(ctx context.Context) *promql.Result {
	r := q.Query.Exec(ctx)
	if r.Err == nil || !errors.Is(r.Err, errPushdownFallback) {
		return r
	}
	q.fellBack = r.Err
	q.Query.Close()
	p, err := q.plain()
	if err != nil {
		return &promql.Result{Err: err}
	}
	q.Query = p
	return p.Exec(ctx)
}
