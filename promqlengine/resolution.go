package promqlengine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/blockmeta"
)

// Resolution choice for downsampled data.
//
// A query reads, per time range, the coarsest resolution its step allows
// (a step of at least 5 windows, and range selectors of at least 3), or the
// one the request forces with max_source_resolution; the store falls back to
// other resolutions where that one does not exist.
//
// Downsampled data keeps aggregates, not samples, so a query that will read
// any is rewritten onto them: count_over_time sums the count aggregate,
// avg_over_time divides the sums of sum and count, min_/max_/sum_over_time
// read their aggregate, rate, increase, irate and resets read the counter
// aggregate; everything else reads each window's mean. The store serves the
// same aggregates from raw data, so answers have no seam where resolutions
// meet. Queries that read raw data only are not rewritten, and answer
// exactly as Prometheus does.

type maxSourceResKey struct{}

// WithMaxSourceResolution returns ctx forcing the query's maximum source
// resolution (ms); a negative value means automatic.
func WithMaxSourceResolution(ctx context.Context, res int64) context.Context {
	return context.WithValue(ctx, maxSourceResKey{}, res)
}

// ParseMaxSourceResolution parses the max_source_resolution parameter:
// "auto" or empty (automatic, -1), "raw" or "0s", "1m", "1h" or any duration.
func ParseMaxSourceResolution(s string) (int64, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return -1, nil
	case "raw":
		return 0, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid max_source_resolution %q: %w", s, err)
	}
	return time.Duration(d).Milliseconds(), nil
}

// DownsampledReader tells whether a query would read downsampled data.
type DownsampledReader interface {
	// ReadsDownsampled reports whether a query of the tenant in ctx, allowed
	// resolution up to blockmeta.MaxResolution(ctx), over [mint, maxt],
	// would read any downsampled block.
	ReadsDownsampled(ctx context.Context, mint, maxt int64) bool
}

// maxResolution returns the resolution a query may read.
func maxResolution(ctx context.Context, expr parser.Expr, step time.Duration) int64 {
	if r, ok := ctx.Value(maxSourceResKey{}).(int64); ok && r >= 0 {
		return r
	}
	limit := step.Milliseconds() / 5
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if ms, ok := n.(*parser.MatrixSelector); ok {
			limit = min(limit, ms.Range.Milliseconds()/3)
		}
		return nil
	})
	switch {
	case limit >= blockmeta.Res1h:
		return blockmeta.Res1h
	case limit >= blockmeta.Res1m:
		return blockmeta.Res1m
	}
	return blockmeta.ResRaw
}

// prepare decides the query's resolution and rewrites it onto aggregates if
// it will read downsampled data. It returns the query string to run, its
// expression (expr itself when not rewritten; expr is not modified) and
// the resolution its execution must carry.
func (e *Engine) prepare(ctx context.Context, qs string, expr parser.Expr, start, end time.Time, step time.Duration) (string, parser.Expr, int64) {
	if e.downsampled == nil {
		return qs, expr, 0
	}
	p, ok := ctx.Value(pinnedKey{}).(pinned)
	if !ok {
		p = e.decide(ctx, expr, start, end, step)
	}
	if !p.rewrite {
		return qs, expr, p.res
	}
	rw := rewrite(cloneExpr(expr))
	return rw.String(), rw, p.res
}

// pinned is the resolution and rewrite decided for a query.
type pinned struct {
	res     int64
	rewrite bool
}

type pinnedKey struct{}

func (e *Engine) decide(ctx context.Context, expr parser.Expr, start, end time.Time, step time.Duration) pinned {
	res := maxResolution(ctx, expr, step)
	mint, maxt := queryRange(expr, start, end, e.lookback)
	return pinned{res, e.downsampled.ReadsDownsampled(blockmeta.WithMaxResolution(ctx, res), mint, maxt)}
}

// SourcesReader is implemented by a DownsampledReader that can also tell
// whether a query reads more than one source, and can make a query read
// its series in the order such a query would (blocks.Store).
type SourcesReader interface {
	// ReadsSeveral reports whether a query of the tenant in ctx over
	// [mint, maxt] reads several sources, getting its series sorted.
	ReadsSeveral(ctx context.Context, mint, maxt int64) bool
}

// PinRange decides the resolution and the rewrite of the range query expr
// over [start, end] as a whole, and whether its selects get their series
// sorted, and returns a context under which every query (a part of it, for
// the query front end) is evaluated as that decision says, and a string
// naming the decision. Without it, a part reading no downsampled block
// would not be rewritten while the whole query is, and a part reading only
// the head would sum its series in another order than the whole query
// reading the head and blocks: answers would differ in the last bits.
func (e *Engine) PinRange(ctx context.Context, expr parser.Expr, start, end time.Time, step time.Duration) (context.Context, string) {
	if e.downsampled == nil {
		return ctx, ""
	}
	p := e.decide(ctx, expr, start, end, step)
	ctx = context.WithValue(ctx, pinnedKey{}, p)
	sorted := false
	if sr, ok := e.downsampled.(SourcesReader); ok {
		mint, maxt := promql.FindMinMaxTime(&parser.EvalStmt{Expr: expr, Start: start, End: end, Interval: step, LookbackDelta: e.lookback})
		if sorted = sr.ReadsSeveral(blockmeta.WithMaxResolution(ctx, p.res), mint, maxt); sorted {
			ctx = blocks.WithSortedSelects(ctx)
		}
	}
	return ctx, fmt.Sprintf("res=%d,rewrite=%t,sorted=%t", p.res, p.rewrite, sorted)
}

// queryRange is the time range a query reads: from its start less its
// longest range, offset and lookback, to its end.
func queryRange(expr parser.Expr, start, end time.Time, lookback time.Duration) (int64, int64) {
	back := lookback
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch x := n.(type) {
		case *parser.MatrixSelector:
			if vs, ok := x.VectorSelector.(*parser.VectorSelector); ok {
				back = max(back, x.Range+vs.OriginalOffset)
			}
		case *parser.SubqueryExpr:
			back = max(back, x.Range+x.OriginalOffset+lookback)
		case *parser.VectorSelector:
			back = max(back, x.OriginalOffset+lookback)
		}
		return nil
	})
	return start.Add(-back).UnixMilli(), end.UnixMilli()
}

// aggrOf is the aggregate each rewritten function reads, and the function
// it becomes.
var aggrOf = map[string]struct{ aggr, fn string }{
	"count_over_time": {blockmeta.AggrCount, "sum_over_time"},
	"sum_over_time":   {blockmeta.AggrSum, "sum_over_time"},
	"min_over_time":   {blockmeta.AggrMin, "min_over_time"},
	"max_over_time":   {blockmeta.AggrMax, "max_over_time"},
	"rate":            {blockmeta.AggrCounter, "rate"},
	"increase":        {blockmeta.AggrCounter, "increase"},
	"irate":           {blockmeta.AggrCounter, "irate"},
	"resets":          {blockmeta.AggrCounter, "resets"},
}

// rewrite returns expr reading aggregates where a function needs them.
func rewrite(expr parser.Expr) parser.Expr {
	switch n := expr.(type) {
	case *parser.Call:
		for i, a := range n.Args {
			n.Args[i] = rewrite(a)
		}
		return rewriteCall(n)
	case *parser.AggregateExpr:
		n.Expr = rewrite(n.Expr)
		if n.Param != nil {
			n.Param = rewrite(n.Param)
		}
	case *parser.BinaryExpr:
		n.LHS, n.RHS = rewrite(n.LHS), rewrite(n.RHS)
	case *parser.ParenExpr:
		n.Expr = rewrite(n.Expr)
	case *parser.UnaryExpr:
		n.Expr = rewrite(n.Expr)
	case *parser.SubqueryExpr:
		n.Expr = rewrite(n.Expr)
	case *parser.StepInvariantExpr:
		n.Expr = rewrite(n.Expr)
	}
	return expr
}

func rangeArg(c *parser.Call) (*parser.MatrixSelector, *parser.VectorSelector, bool) {
	if len(c.Args) != 1 {
		return nil, nil, false
	}
	ms, ok := c.Args[0].(*parser.MatrixSelector)
	if !ok {
		return nil, nil, false
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	return ms, vs, ok
}

func withAggr(ms *parser.MatrixSelector, vs *parser.VectorSelector, aggr string) *parser.MatrixSelector {
	v := *vs
	v.LabelMatchers = append(append([]*labels.Matcher{}, vs.LabelMatchers...), labels.MustNewMatcher(labels.MatchEqual, blockmeta.AggrLabel, aggr))
	m := *ms
	m.VectorSelector = &v
	return &m
}

func rewriteCall(c *parser.Call) parser.Expr {
	ms, vs, ok := rangeArg(c)
	if !ok {
		return c
	}
	if c.Func.Name == "avg_over_time" {
		sum := &parser.Call{Func: parser.Functions["sum_over_time"], Args: parser.Expressions{withAggr(ms, vs, blockmeta.AggrSum)}}
		count := &parser.Call{Func: parser.Functions["sum_over_time"], Args: parser.Expressions{withAggr(ms, vs, blockmeta.AggrCount)}}
		return &parser.ParenExpr{Expr: &parser.BinaryExpr{
			Op: parser.DIV, LHS: sum, RHS: count,
			VectorMatching: &parser.VectorMatching{Card: parser.CardOneToOne},
		}}
	}
	r, ok := aggrOf[c.Func.Name]
	if !ok {
		return c
	}
	return &parser.Call{Func: parser.Functions[r.fn], Args: parser.Expressions{withAggr(ms, vs, r.aggr)}, PosRange: c.PosRange}
}

// resQuery runs a query with its resolution in the execution context, and
// keeps the query's parse for the upstream engines until it is closed.
type resQuery struct {
	promql.Query
	res     int64
	e       *Engine
	release func() // of the query's entries in e.parsed
}

func (q resQuery) Exec(ctx context.Context) *promql.Result {
	r := q.Query.Exec(blockmeta.WithMaxResolution(ctx, q.res))
	r.Err = execError(ctx, r.Err)
	q.e.limitHits(ctx, r.Err)
	return r
}

func (q resQuery) Close() {
	q.Query.Close()
	q.release()
}

// execError is the error a query's execution reports for err: a deadline
// met anywhere (in the storage, a shard, a fallback) is a timeout, as the
// engine reports its own (503, errorType timeout), and a tenant whose data
// cannot be opened is a storage failure (5xx), not the query's fault.
func execError(ctx context.Context, err error) error {
	var (
		timeout promql.ErrQueryTimeout
		storage promql.ErrStorage
	)
	switch {
	case err == nil, errors.As(err, &timeout), errors.As(err, &storage):
		return err
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.Canceled):
		return promql.ErrQueryTimeout("query execution")
	case errors.Is(err, blocks.ErrTenantUnavailable), errors.Is(err, blocks.ErrClosed):
		return promql.ErrStorage{Err: err}
	}
	return err
}

// NewInstantQuery implements promql.QueryEngine with resolution choice.
func (e *Engine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	expr, err := e.parse(ctx, qs)
	if err != nil {
		return nil, err
	}
	release := e.parsed.put(qs, expr)
	runQS, runExpr, res := e.prepare(ctx, qs, expr, ts, ts, 0)
	if runQS != qs {
		release = both(release, e.parsed.put(runQS, runExpr))
	}
	eng, opts := e.engineFor(ctx, opts)
	qry, err := eng.NewInstantQuery(ctx, q, opts, runQS, ts)
	if err != nil {
		release()
		e.limitHits(ctx, err)
		return nil, err
	}
	return resQuery{qry, res, e, release}, nil
}

// NewRangeQuery implements promql.QueryEngine with resolution choice.
func (e *Engine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	expr, err := e.parse(ctx, qs)
	if err != nil {
		return nil, err
	}
	release := e.parsed.put(qs, expr)
	runQS, runExpr, res := e.prepare(ctx, qs, expr, start, end, step)
	if runQS != qs {
		release = both(release, e.parsed.put(runQS, runExpr))
	}
	qry, err := e.newRangeQuery(ctx, q, opts, runQS, runExpr, runQS == qs, start, end, step)
	if err != nil {
		release()
		e.limitHits(ctx, err)
		return nil, err
	}
	return resQuery{qry, res, e, release}, nil
}

// newRangeQuery builds the range query qs (parsed as expr) on the engine
// for the tenant of ctx: sharded, pushed down (unless pushdown is unset)
// or plain.
func (e *Engine) newRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, expr parser.Expr, pushdown bool, start, end time.Time, step time.Duration) (promql.Query, error) {
	eng, opts := e.engineFor(ctx, opts)
	if eng != e.Engine {
		// Tenant limits are enforced per upstream query: such queries are
		// neither sharded nor pushed down.
		return eng.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	}
	plain := func() (promql.Query, error) {
		sq, err := e.newShardedRangeQuery(ctx, eng, nil, q, opts, qs, expr, start, end, step)
		if err != nil || sq != nil {
			return sq, err
		}
		return eng.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	}
	if pushdown { // queries rewritten onto downsampled aggregates are not pushed down
		qry, err := e.newPushdownRangeQuery(ctx, q, opts, qs, expr, start, end, step, plain)
		if err != nil || qry != nil {
			return qry, err
		}
	}
	return plain()
}

// both returns a function calling f and then g.
func both(f, g func()) func() { return func() { f(); g() } }
