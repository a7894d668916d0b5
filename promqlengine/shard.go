package promqlengine

import (
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Query sharding: which range queries may be split, and how.
//
// A sharded query is evaluated by several upstream engine queries of the
// same expression, each reading a disjoint part of every selector's series
// (see shardexec.go). Their answers are merged into the answer of the whole.
// Answers must stay exactly those of one evaluation, to the last bit, so only
// two kinds of split are used, each exact by construction:
//
//   - group split: series are split by the values of a shard key, the label
//     set that decides the groups of the query's aggregation (its "by"
//     labels, or all labels but its "without" labels and the metric name).
//     Every group is evaluated whole, by one engine, over its series in the
//     storage's order, so each float operation happens in the same order as
//     in one evaluation: sums, averages, quantiles, topk ties and all. The
//     answers' series are disjoint and are merged by concatenation. Queries
//     without aggregation are split the same way on all labels but the
//     metric name.
//   - series split: for count and group at the top, series are dealt round
//     robin and the shards' answers are added (count) or kept (group) per
//     output series and step: counts are small integers, so their sums are
//     exact in any order. This balances queries with few, unequal groups,
//     such as count by (__name__).
//
// Sums of partial sums, as Mimir's query sharding does for sum and avg
// without a shard-aligned grouping, change the order of float additions and
// so the last bits of the answer; such queries are not sharded.
//
// Every part of the expression between the selectors and the aggregation
// must keep the key's values of a series and combine only series that agree
// on them, which shardable checks node by node: per-series functions,
// arithmetic with literals, binary operations whose matching includes the
// key, nested aggregations whose groups lie within the key's groups.
// Anything else (label_replace, absent, scalar, vector, info, functions of
// several series, vector expressions without a selector) is not sharded.

// shardKey is the label set series are split by: the values of names when
// by is set, else all labels but names and the metric name.
type shardKey struct {
	by    bool
	names []string // sorted
}

// hash returns the hash of ls's key values.
func (k shardKey) hash(ls labels.Labels, buf []byte) (uint64, []byte) {
	if k.by {
		return ls.HashForLabels(buf, k.names...)
	}
	return ls.HashWithoutLabels(buf, k.names...)
}

// has reports whether a series' value of label name is part of the key.
func (k shardKey) has(name string) bool {
	if k.by {
		return slices.Contains(k.names, name)
	}
	return name != labels.MetricName && !slices.Contains(k.names, name)
}

// shardPlan is how a query is split.
type shardPlan struct {
	// series: dealt round robin, answers merged by mergeOp; else split by key.
	series  bool
	mergeOp parser.ItemType
	key     shardKey
}

// planShards returns how expr may be split, and false if it must not be.
func planShards(expr parser.Expr) (shardPlan, bool) {
	top := unwrap(expr)
	if !hasSelector(top) {
		return shardPlan{}, false
	}
	if a, ok := top.(*parser.AggregateExpr); ok && (a.Op == parser.COUNT || a.Op == parser.GROUP) && perSeries(a.Expr, false) {
		return shardPlan{series: true, mergeOp: a.Op}, true
	}
	key, ok := keyOf(top)
	if !ok {
		return shardPlan{}, false
	}
	if a, ok := top.(*parser.AggregateExpr); ok {
		if !shardableAggregate(a, key, true) {
			return shardPlan{}, false
		}
	} else if !shardable(top, key, false) {
		return shardPlan{}, false
	}
	return shardPlan{key: key}, true
}

// keyOf returns the shard key of an expression's top: the grouping of its
// outermost aggregation, or all labels but le (of classic histograms) when
// there is none.
func keyOf(e parser.Expr) (shardKey, bool) {
	switch n := unwrap(e).(type) {
	case *parser.AggregateExpr:
		if n.Without {
			return shardKey{names: sortedCopy(n.Grouping)}, true
		}
		if len(n.Grouping) == 0 {
			return shardKey{}, false // one group
		}
		return shardKey{by: true, names: sortedCopy(n.Grouping)}, true
	case *parser.BinaryExpr:
		if isLiteral(n.LHS) {
			return keyOf(n.RHS)
		}
		return keyOf(n.LHS)
	case *parser.Call:
		for _, a := range n.Args {
			if isLiteral(a) {
				continue
			}
			k, ok := keyOf(a)
			if ok && n.Func.Name == "histogram_quantile" {
				// Its output has the labels of its input but le.
				if k.by {
					k.names = slices.DeleteFunc(k.names, func(l string) bool { return l == "le" })
					ok = len(k.names) > 0
				} else {
					k.names = sortedCopy(append(k.names, "le"))
				}
			}
			return k, ok
		}
		return shardKey{}, false
	case *parser.SubqueryExpr:
		return keyOf(n.Expr)
	case *parser.MatrixSelector, *parser.VectorSelector:
		return shardKey{names: []string{"le"}}, true
	}
	return shardKey{}, false
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

func unwrap(e parser.Expr) parser.Expr {
	for {
		switch n := e.(type) {
		case *parser.ParenExpr:
			e = n.Expr
		case *parser.StepInvariantExpr:
			e = n.Expr
		default:
			return e
		}
	}
}

func hasSelector(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if _, ok := n.(*parser.VectorSelector); ok {
			found = true
		}
		return nil
	})
	return found
}

// isLiteral reports whether e is the same in every shard: numbers, strings,
// time() and pi(), and arithmetic of those.
func isLiteral(e parser.Expr) bool {
	switch n := unwrap(e).(type) {
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true
	case *parser.UnaryExpr:
		return isLiteral(n.Expr)
	case *parser.BinaryExpr:
		return isLiteral(n.LHS) && isLiteral(n.RHS)
	case *parser.Call:
		return (n.Func.Name == "time" || n.Func.Name == "pi") && len(n.Args) == 0
	}
	return false
}

// seriesFunctions are the functions that compute each output series from one
// input series, keeping its labels but the metric name. Their other arguments
// must be literals.
var seriesFunctions = map[string]bool{
	"abs": true, "ceil": true, "floor": true, "exp": true, "ln": true, "log2": true, "log10": true,
	"sqrt": true, "sgn": true, "round": true, "clamp": true, "clamp_min": true, "clamp_max": true,
	"timestamp": true, "deg": true, "rad": true,
	"sin": true, "cos": true, "tan": true, "asin": true, "acos": true, "atan": true,
	"sinh": true, "cosh": true, "tanh": true, "asinh": true, "acosh": true, "atanh": true,
	"day_of_month": true, "day_of_week": true, "day_of_year": true, "days_in_month": true,
	"hour": true, "minute": true, "month": true, "year": true,
	"histogram_count": true, "histogram_sum": true, "histogram_avg": true,
	"histogram_stddev": true, "histogram_stdvar": true, "histogram_fraction": true,
	"rate": true, "irate": true, "increase": true, "delta": true, "idelta": true, "deriv": true,
	"resets": true, "changes": true, "predict_linear": true,
	"avg_over_time": true, "min_over_time": true, "max_over_time": true, "sum_over_time": true,
	"count_over_time": true, "stddev_over_time": true, "stdvar_over_time": true,
	"last_over_time": true, "first_over_time": true, "present_over_time": true,
	"quantile_over_time": true, "mad_over_time": true,
	"double_exponential_smoothing": true, "holt_winters": true,
}

// seriesArg returns the one argument of a call to a per-series function that
// is not a literal, and false if there is not exactly one.
func seriesArg(c *parser.Call) (parser.Expr, bool) {
	var arg parser.Expr
	for _, a := range c.Args {
		if isLiteral(a) {
			continue
		}
		if arg != nil {
			return nil, false
		}
		arg = a
	}
	return arg, arg != nil
}

// perSeries reports whether every output series of e is computed from one
// input series alone. Functions drop the metric name, so when the selector
// may match several metrics, their outputs could collide: the engine rejects
// that only when it sees both, which a series split may prevent.
func perSeries(e parser.Expr, dropped bool) bool {
	switch n := unwrap(e).(type) {
	case *parser.VectorSelector:
		return !dropped || singleMetric(n)
	case *parser.MatrixSelector:
		return perSeries(n.VectorSelector, dropped)
	case *parser.SubqueryExpr:
		return perSeries(n.Expr, dropped)
	case *parser.UnaryExpr:
		return perSeries(n.Expr, true)
	case *parser.Call:
		if !seriesFunctions[n.Func.Name] {
			return false
		}
		arg, ok := seriesArg(n)
		return ok && perSeries(arg, true)
	case *parser.BinaryExpr:
		switch {
		case isLiteral(n.LHS):
			return perSeries(n.RHS, true)
		case isLiteral(n.RHS):
			return perSeries(n.LHS, true)
		}
	}
	return false
}

func singleMetric(vs *parser.VectorSelector) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return true
		}
	}
	return false
}

// shardable reports whether e can be evaluated per part of a split by key:
// every output series of e has the key values of the input series it was
// computed from, and is computed only from series agreeing on them. dropped
// tells whether the metric name was dropped on the way up from here.
func shardable(e parser.Expr, key shardKey, dropped bool) bool {
	switch n := unwrap(e).(type) {
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true
	case *parser.VectorSelector:
		// A dropped name that is part of the key no longer tells the
		// output's groups apart.
		return !dropped || !key.has(labels.MetricName)
	case *parser.MatrixSelector:
		return shardable(n.VectorSelector, key, dropped)
	case *parser.SubqueryExpr:
		return shardable(n.Expr, key, dropped)
	case *parser.UnaryExpr:
		return shardable(n.Expr, key, true)
	case *parser.Call:
		if n.Func.Name == "histogram_quantile" {
			// Combines the buckets of a histogram: series that differ in le only.
			if key.has("le") || len(n.Args) != 2 || !isLiteral(n.Args[0]) {
				return false
			}
			return shardable(n.Args[1], key, true)
		}
		if !seriesFunctions[n.Func.Name] {
			return false
		}
		arg, ok := seriesArg(n)
		return ok && shardable(arg, key, true)
	case *parser.BinaryExpr:
		return shardableBinary(n, key, dropped)
	case *parser.AggregateExpr:
		return shardableAggregate(n, key, false)
	}
	return false
}

func shardableBinary(n *parser.BinaryExpr, key shardKey, dropped bool) bool {
	drops := dropped || !n.Op.IsSetOperator() && !(n.Op.IsComparisonOperator() && !n.ReturnBool)
	lit, rlit := isLiteral(n.LHS), isLiteral(n.RHS)
	switch {
	case lit && rlit:
		return true
	case lit:
		return shardable(n.RHS, key, drops)
	case rlit:
		return shardable(n.LHS, key, drops)
	}
	if n.LHS.Type() != parser.ValueTypeVector || n.RHS.Type() != parser.ValueTypeVector {
		return false
	}
	// Matched series must agree on the key: they agree on the matching labels.
	vm := n.VectorMatching
	if vm == nil || key.has(labels.MetricName) {
		return false
	}
	if vm.On {
		if !key.by {
			return false
		}
		for _, k := range key.names {
			if !slices.Contains(vm.MatchingLabels, k) {
				return false
			}
		}
	} else {
		for _, l := range vm.MatchingLabels {
			if key.has(l) {
				return false
			}
		}
	}
	return shardable(n.LHS, key, drops) && shardable(n.RHS, key, drops)
}

// shardableAggregate: an aggregation keeps each of its groups within one
// part if series of a group agree on the key, and its output keeps the key's
// values if it keeps the labels the key reads. The top aggregation decided
// the key, so both hold for it.
func shardableAggregate(n *parser.AggregateExpr, key shardKey, top bool) bool {
	if n.Param != nil && !isLiteral(n.Param) {
		return false
	}
	if !top {
		switch n.Op {
		case parser.SUM, parser.AVG, parser.MIN, parser.MAX, parser.COUNT, parser.GROUP,
			parser.STDDEV, parser.STDVAR, parser.QUANTILE, parser.TOPK, parser.BOTTOMK:
		default:
			return false
		}
		if key.has(labels.MetricName) {
			return false
		}
		if n.Without {
			// Groups: series agreeing on all labels but Grouping and the name.
			for _, l := range n.Grouping {
				if key.has(l) {
					return false
				}
			}
		} else {
			// Groups: series agreeing on Grouping, which must hold the key.
			if !key.by {
				return false
			}
			for _, k := range key.names {
				if !slices.Contains(n.Grouping, k) {
					return false
				}
			}
		}
	}
	return shardable(n.Expr, key, false)
}
