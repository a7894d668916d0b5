package promqlengine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// Parsing.
//
// A query is parsed once. Resolution choice, pushdown and sharding read the
// parsed expression, and the upstream engines, which take the query as a
// string, get it through exprCache: their parser hands out a copy of the
// expression parsed for that string while the query lives (each engine
// modifies the tree it evaluates, so each gets its own copy).
//
// Before parsing, the query's length and nesting are checked, so that a
// query too costly to parse is refused at once (400): the upstream parser
// takes time quadratic in nesting (30000 parentheses: 3.7s; 100000 chained
// binary operators: 44s). Nesting is counted on the upstream lexer's tokens
// as the depth of brackets plus, within each, the binary operators chaining
// expressions: an upper bound of the tree's depth.
//
// A query whose deadline passes while it is parsed gets
// promql.ErrQueryTimeout, as in Prometheus (503, errorType timeout).

// Defaults of Options.MaxQueryLength and Options.MaxQueryDepth.
const (
	DefaultMaxQueryLength = 1 << 20
	DefaultMaxQueryDepth  = 1000
)

// errQueryTooLarge is wrapped by the errors of queries refused unparsed.
var errQueryTooLarge = errors.New("query too large")

// checkQuery refuses a query longer than maxLen bytes or nested deeper than
// maxDepth, without parsing it. Malformed input is left to the parser.
func checkQuery(qs string, maxLen, maxDepth int) error {
	if maxLen > 0 && len(qs) > maxLen {
		return fmt.Errorf("%w: the query is %d bytes long, more than the limit of %d bytes (-query.max-length)", errQueryTooLarge, len(qs), maxLen)
	}
	if maxDepth <= 0 {
		return nil
	}
	// levels[i] is the nesting within the i-th open bracket: one for the
	// bracket, plus the binary operators met in it.
	levels := []int{0}
	depth := 0
	lex := parser.Lex(qs)
	var it parser.Item
	for {
		lex.NextItem(&it)
		switch {
		case it.Typ == parser.EOF || it.Typ == parser.ERROR:
			return nil
		case it.Typ == parser.LEFT_PAREN || it.Typ == parser.LEFT_BRACE || it.Typ == parser.LEFT_BRACKET:
			levels = append(levels, 1)
			depth++
		case it.Typ == parser.RIGHT_PAREN || it.Typ == parser.RIGHT_BRACE || it.Typ == parser.RIGHT_BRACKET:
			if len(levels) > 1 {
				depth -= levels[len(levels)-1]
				levels = levels[:len(levels)-1]
			}
		case it.Typ.IsOperator():
			levels[len(levels)-1]++
			depth++
		}
		if depth > maxDepth {
			return fmt.Errorf("%w: the query nests deeper than the limit of %d brackets and chained operators (-query.max-nesting-depth)", errQueryTooLarge, maxDepth)
		}
	}
}

// parse checks and parses qs for a query of ctx.
func (e *Engine) parse(ctx context.Context, qs string) (parser.Expr, error) {
	if err := contextError(ctx.Err(), "query parsing"); err != nil {
		return nil, err
	}
	if err := checkQuery(qs, e.maxQueryLength, e.maxQueryDepth); err != nil {
		return nil, err
	}
	e.parsed.parses.Add(1)
	expr, err := e.Parser.ParseExpr(qs)
	if cerr := contextError(ctx.Err(), "query parsing"); cerr != nil {
		return nil, cerr
	}
	return expr, err
}

// contextError is the engine's error for a query whose context ended with
// err: a timeout or a cancellation, as the upstream engine reports them.
func contextError(err error, env string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return promql.ErrQueryTimeout(env)
	case errors.Is(err, context.Canceled):
		return promql.ErrQueryCanceled(env)
	}
	return err
}

// exprCache holds the expressions parsed for the queries being built and
// run, by query string. An entry is never modified: users get copies.
type exprCache struct {
	mu sync.Mutex
	m  map[string]*cachedExpr

	// parses counts the queries Engine.parse parsed, misses those an
	// upstream engine had to parse again (none unless a query is built
	// outside NewInstantQuery and NewRangeQuery).
	parses, misses atomic.Int64
}

type cachedExpr struct {
	expr parser.Expr
	refs int
}

// put makes expr the parse of qs until release is called.
func (c *exprCache) put(qs string, expr parser.Expr) (release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*cachedExpr{}
	}
	ce := c.m[qs]
	if ce == nil {
		ce = &cachedExpr{expr: expr}
		c.m[qs] = ce
	}
	ce.refs++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ce.refs--; ce.refs == 0 {
				delete(c.m, qs)
			}
		})
	}
}

// get returns a copy of the expression parsed for qs, if any.
func (c *exprCache) get(qs string) (parser.Expr, bool) {
	c.mu.Lock()
	ce := c.m[qs]
	c.mu.Unlock()
	if ce == nil {
		return nil, false
	}
	return cloneExpr(ce.expr), true
}

// cachingParser parses as its inner parser does, except that queries whose
// parse is in the cache are not parsed again.
type cachingParser struct {
	parser.Parser
	cache *exprCache
}

func (p cachingParser) ParseExpr(qs string) (parser.Expr, error) {
	if expr, ok := p.cache.get(qs); ok {
		return expr, nil
	}
	p.cache.misses.Add(1)
	return p.Parser.ParseExpr(qs)
}

// cloneExpr returns a deep copy of expr: every node the engine or a
// rewrite may modify is new; label matchers, which nothing modifies, are
// shared.
func cloneExpr(expr parser.Expr) parser.Expr {
	switch n := expr.(type) {
	case nil:
		return nil
	case *parser.AggregateExpr:
		c := *n
		c.Expr, c.Param = cloneExpr(n.Expr), cloneExpr(n.Param)
		c.Grouping = append([]string(nil), n.Grouping...)
		return &c
	case *parser.BinaryExpr:
		c := *n
		c.LHS, c.RHS = cloneExpr(n.LHS), cloneExpr(n.RHS)
		if n.VectorMatching != nil {
			vm := *n.VectorMatching
			vm.MatchingLabels = append([]string(nil), vm.MatchingLabels...)
			vm.Include = append([]string(nil), vm.Include...)
			c.VectorMatching = &vm
		}
		return &c
	case *parser.DurationExpr:
		c := *n
		c.LHS, c.RHS = cloneExpr(n.LHS), cloneExpr(n.RHS)
		return &c
	case *parser.Call:
		c := *n
		c.Args = make(parser.Expressions, len(n.Args))
		for i, a := range n.Args {
			c.Args[i] = cloneExpr(a)
		}
		return &c
	case *parser.MatrixSelector:
		c := *n
		c.VectorSelector = cloneExpr(n.VectorSelector)
		c.RangeExpr = cloneDuration(n.RangeExpr)
		return &c
	case *parser.SubqueryExpr:
		c := *n
		c.Expr = cloneExpr(n.Expr)
		c.RangeExpr, c.OriginalOffsetExpr, c.StepExpr = cloneDuration(n.RangeExpr), cloneDuration(n.OriginalOffsetExpr), cloneDuration(n.StepExpr)
		c.Timestamp = cloneInt64(n.Timestamp)
		return &c
	case *parser.NumberLiteral:
		c := *n
		return &c
	case *parser.StringLiteral:
		c := *n
		return &c
	case *parser.ParenExpr:
		c := *n
		c.Expr = cloneExpr(n.Expr)
		return &c
	case *parser.UnaryExpr:
		c := *n
		c.Expr = cloneExpr(n.Expr)
		return &c
	case *parser.StepInvariantExpr:
		c := *n
		c.Expr = cloneExpr(n.Expr)
		return &c
	case *parser.VectorSelector:
		c := *n
		c.OriginalOffsetExpr = cloneDuration(n.OriginalOffsetExpr)
		c.Timestamp = cloneInt64(n.Timestamp)
		c.LabelMatchers = append(n.LabelMatchers[:0:0], n.LabelMatchers...)
		c.UnexpandedSeriesSet, c.Series = nil, nil
		return &c
	}
	panic(fmt.Sprintf("promqlengine: cannot copy expression node %T", expr))
}

func cloneDuration(d *parser.DurationExpr) *parser.DurationExpr {
	if d == nil {
		return nil
	}
	return cloneExpr(d).(*parser.DurationExpr)
}

func cloneInt64(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
