package frontend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
)

// keyVersion changes whenever what a key's entry holds changes meaning
// (codec, evaluation semantics), so that processes of different versions
// sharing memcached never read each other's entries.
const keyVersion = "1"

// maxGenBuckets is the most time buckets a part may read and still be
// cached: its key names the generation of each.
const maxGenBuckets = 1000

// NewRangeQuery implements promql.QueryEngine. The query is built by the
// engine first, whole, so that every error of building it (parsing, types,
// limits) is the engine's own; unless bypassReason passes it on, it is then
// closed and the front end's query, which splits, is returned.
func (f *Frontend) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	whole, err := f.inner.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	if err != nil || f.interval <= 0 {
		return whole, err
	}
	sq, reason := f.plan(ctx, q, opts, qs, start, end, step)
	if sq == nil {
		f.m.queries.WithLabelValues("whole: " + reason).Inc()
		return whole, nil
	}
	whole.Close()
	f.m.queries.WithLabelValues("split").Inc()
	return sq, nil
}

// plan returns the split query, or nil and why the query goes whole to the
// engine. The rules:
//
//   - requests asking for statistics or not to be cached (Handler), and
//     queries recording per-step statistics: their statistics are the work
//     done, which splitting and caching change;
//   - queries without a tenant;
//   - queries using @ start() or @ end(), the functions start(), end() or
//     range(), or range() in a duration: their answer at a step depends on
//     the query's range. Everything else,
//     time(), step() and subqueries included, answers at a step from the
//     step's time alone (subquery steps are aligned to the epoch, not to
//     the query). The one exception, the warning that sort is ineffective
//     in a range query, which the engine gives only for queries of more
//     than one step, is added to the parts of one step (sortWarning).
func (f *Frontend) plan(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (*splitQuery, string) {
	if v, _ := ctx.Value(noCacheKey{}).(bool); v {
		return nil, "stats or no-cache requested"
	}
	if opts != nil && opts.EnablePerStepStats() {
		return nil, "per-step stats"
	}
	id, ok := f.tenantOf(ctx)
	if !ok {
		return nil, "no tenant"
	}
	expr, err := f.parser.ParseExpr(qs)
	if err != nil {
		return nil, "unparsed"
	}
	if reason := rangeDependent(expr); reason != "" {
		return nil, reason
	}
	// Resolves duration expressions (step() is the same in every part),
	// which the data range of a part is computed from.
	if expr, err = promql.PreprocessExpr(expr, start, end, step); err != nil {
		return nil, "unparsed"
	}
	lookback := f.lookback
	if opts != nil && opts.LookbackDelta() > 0 {
		lookback = opts.LookbackDelta()
	}
	pinned, pin := ctx, ""
	if f.pinner != nil {
		pinned, pin = f.pinner.PinRange(ctx, expr, start, end, step)
	}
	stepMs := step.Milliseconds()
	var useST string
	if opts != nil && opts.UseStartTimestamps() != nil {
		useST = strconv.FormatBool(*opts.UseStartTimestamps())
	}
	s := &splitQuery{
		f: f, q: q, opts: opts, qs: qs, expr: expr, tenant: id, pinned: pinned,
		start: start.UnixMilli(), end: end.UnixMilli(), step: stepMs, lookback: lookback,
		// Everything the answer at a step depends on besides the step's
		// time and the data.
		material: strings.Join([]string{keyVersion, id, qs, strconv.FormatInt(stepMs, 10),
			strconv.FormatInt(floorMod(start.UnixMilli(), stepMs), 10), lookback.String(), useST, pin,
			strconv.FormatInt(f.interval, 10)}, "\x00"),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, ""
}

// rangeDependent says why the answer of expr at a step depends on the
// query's range; empty when it does not.
func rangeDependent(expr parser.Expr) string {
	var reason string
	var durations func(d parser.Expr)
	durations = func(d parser.Expr) {
		switch x := d.(type) {
		case *parser.DurationExpr:
			if x.Op == parser.RANGE {
				reason = "range() in a duration"
			}
			durations(x.LHS)
			durations(x.RHS)
		case *parser.Call:
			if x.Func.Name == "range" || x.Func.Name == "start" || x.Func.Name == "end" {
				reason = x.Func.Name + "() in a duration"
			}
		}
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch x := n.(type) {
		case *parser.VectorSelector:
			if x.StartOrEnd != 0 {
				reason = "@ start() or @ end()"
			}
			if x.OriginalOffsetExpr != nil {
				durations(x.OriginalOffsetExpr)
			}
		case *parser.MatrixSelector:
			if x.RangeExpr != nil {
				durations(x.RangeExpr)
			}
		case *parser.SubqueryExpr:
			if x.StartOrEnd != 0 {
				reason = "@ start() or @ end()"
			}
			for _, d := range []*parser.DurationExpr{x.RangeExpr, x.OriginalOffsetExpr, x.StepExpr} {
				if d != nil {
					durations(d)
				}
			}
		case *parser.Call:
			switch x.Func.Name {
			case "start", "end", "range":
				reason = x.Func.Name + "()"
			}
		case *parser.DurationExpr:
			durations(x)
		}
		return nil
	})
	return reason
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// splitQuery is a range query split into parts; it implements promql.Query.
type splitQuery struct {
	f        *Frontend
	q        storage.Queryable
	opts     promql.QueryOpts
	qs       string
	expr     parser.Expr
	tenant   string
	pinned   context.Context // carries the engine's decisions for the whole query
	material string
	lookback time.Duration

	start, end, step int64

	ctx    context.Context // cancelled by Cancel
	cancel context.CancelFunc
	whole  promql.Query // set when evaluated whole; closed with s
}

// part is the steps of one split interval, and what is known of them.
type part struct {
	from, to int64 // the query's first and last step in the bucket
	bucket   int64
	material string // the key material, generations included
	key      string

	cached   []*extent // from the cache, sorted, disjoint (any range)
	covered  []*extent // cached, clipped to [from, to]
	missing  [][2]int64
	fresh    []*extent // evaluated, with covered: [from, to] whole
	dataMint int64
}

func (s *splitQuery) parts() []*part {
	var out []*part
	for t := s.start; t <= s.end; {
		b := floorDiv(t, s.f.interval)
		bEnd := (b+1)*s.f.interval - 1
		last := t + (min(bEnd, s.end)-t)/s.step*s.step
		out = append(out, &part{from: t, to: last, bucket: b})
		t = last + s.step
	}
	return out
}

// dataRange is the time range of the data the query's steps in [from, to] read.
func (s *splitQuery) dataRange(from, to int64) (int64, int64) {
	return promql.FindMinMaxTime(&parser.EvalStmt{
		Expr: s.expr, Start: time.UnixMilli(from), End: time.UnixMilli(to),
		Interval: time.Duration(s.step) * time.Millisecond, LookbackDelta: s.lookback,
	})
}

// Exec implements promql.Query.
func (s *splitQuery) Exec(ctx context.Context) *promql.Result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	parts := s.parts()
	cache := s.f.cache
	if cache != nil && !s.lookup(ctx, parts) {
		cache = nil
	}
	// Steps whose data is older than horizon are final: see Committed.
	horizon := s.f.now().UnixMilli() - s.f.freshness

	// A job evaluates the steps [from, to] of a part; those up to keepTo
	// (none when keepTo < from) are final and stored in the cache.
	type job struct {
		p                *part
		from, to, keepTo int64
	}
	var jobs []job
	for _, p := range parts {
		if cache == nil {
			p.missing = [][2]int64{{p.from, p.to}}
		}
		for _, g := range p.missing {
			keepTo := g[0] - s.step
			if cache != nil && p.key != "" {
				keepTo = s.lastFinal(g[0], g[1], horizon)
			}
			jobs = append(jobs, job{p, g[0], g[1], keepTo})
		}
	}
	// keep and fresh are the answers of each job's final steps and of the
	// others. A job is evaluated once and its answer cut at keepTo; when
	// the answer carries annotations, which cannot be told apart by step,
	// its final steps and the others are evaluated again apart, so that the
	// annotations stored with the final steps are theirs alone.
	keep := make([]*extent, len(jobs))
	fresh := make([]*extent, len(jobs))
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, s.f.parallelism)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			keep[i], fresh[i], errs[i] = s.evalJob(ctx, j.from, j.to, j.keepTo)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := s.firstError(errs); err != nil {
		return &promql.Result{Err: err}
	}
	var results []*extent
	for i := range jobs {
		for _, x := range []*extent{keep[i], fresh[i]} {
			if x != nil {
				results = append(results, x)
			}
		}
	}
	for _, r := range results {
		if len(r.merged) > 0 {
			// The engine's text of these annotations counts what it
			// merged within one evaluation, which parts cannot reproduce:
			// the query is evaluated whole, and nothing of it cached.
			s.f.m.queries.WithLabelValues("whole: mergeable annotations").Inc()
			return s.evalWhole(ctx)
		}
	}
	stored := map[*part][]*extent{}
	for i, j := range jobs {
		if keep[i] != nil {
			j.p.fresh = append(j.p.fresh, keep[i])
			if cache != nil && len(keep[i].merged) == 0 {
				stored[j.p] = append(stored[j.p], keep[i])
			}
		}
		if fresh[i] != nil {
			j.p.fresh = append(j.p.fresh, fresh[i])
		}
	}
	if cache != nil {
		for p, exts := range stored {
			all := p.cached
			for _, x := range exts {
				all = addExtent(all, x, s.step)
			}
			v := encodeEntry(p.material, s.step, all)
			cache.store(ctx, s.tenant, p.key, v)
		}
	}

	var pieces []*extent
	var fromCache, evaluated int
	for _, p := range parts {
		ps := append(append([]*extent(nil), p.covered...), p.fresh...)
		sortExtents(ps)
		pieces = append(pieces, ps...)
		for _, x := range p.covered {
			fromCache += x.points()
		}
		for _, x := range p.fresh {
			evaluated += x.points()
		}
	}
	s.f.m.points.WithLabelValues(s.tenant, "cache").Add(float64(fromCache))
	s.f.m.points.WithLabelValues(s.tenant, "evaluated").Add(float64(evaluated))
	all := concat(s.start, s.end, pieces)
	var annos annotations.Annotations
	for _, p := range pieces {
		annos.Merge(p.merged)
	}
	for _, a := range all.annos {
		annos.Add(renderedAnno(a))
	}
	mat := all.series
	if mat == nil {
		mat = promql.Matrix{}
	}
	return &promql.Result{Value: mat, Warnings: annos}
}

// lookup reads the generations and cached extents of every part, and
// works out what each misses. False means the cache cannot be used: the
// query is answered without it.
func (s *splitQuery) lookup(ctx context.Context, parts []*part) bool {
	genIdx := map[string]int{tenantGenKey(s.tenant): 0}
	genKeys := []string{tenantGenKey(s.tenant)}
	partGens := make([][]int, len(parts))
	for i, p := range parts {
		mint, maxt := s.dataRange(p.from, p.to)
		p.dataMint = mint
		b0, b1 := floorDiv(mint, s.f.interval), floorDiv(maxt, s.f.interval)
		if b1-b0 >= maxGenBuckets {
			partGens[i] = nil
			continue
		}
		for b := b0; b <= b1; b++ {
			k := bucketGenKey(s.tenant, b)
			j, ok := genIdx[k]
			if !ok {
				j = len(genKeys)
				genIdx[k] = j
				genKeys = append(genKeys, k)
			}
			partGens[i] = append(partGens[i], j)
		}
	}
	gens, err := s.f.cache.generations(ctx, genKeys)
	if err != nil {
		return false
	}
	var keys []string
	for i, p := range parts {
		if partGens[i] == nil {
			p.missing = [][2]int64{{p.from, p.to}}
			continue
		}
		var b strings.Builder
		b.WriteString(s.material)
		fmt.Fprintf(&b, "\x00%d\x00%d", p.bucket, gens[0])
		for _, j := range partGens[i] {
			fmt.Fprintf(&b, "\x00%s=%d", genKeys[j], gens[j])
		}
		p.material = b.String()
		sum := sha256.Sum256([]byte(p.material))
		p.key = "sfe:" + s.tenant + ":" + hex.EncodeToString(sum[:16])
		keys = append(keys, p.key)
	}
	values := s.f.cache.fetch(ctx, keys)
	for i, p := range parts {
		if partGens[i] == nil {
			continue
		}
		if v, ok := values[p.key]; ok {
			exts, err := decodeEntry(v, p.material, s.step)
			if err == nil {
				p.cached = exts
			} else {
				s.f.logger.Warn("ignoring an unreadable cached query result", "tenant", s.tenant, "err", err)
			}
		}
		p.missing, p.covered = gaps(p.cached, p.from, p.to, s.step)
		switch {
		case len(p.missing) == 0:
			s.f.m.lookups.WithLabelValues(s.tenant, "hit").Inc()
		case len(p.covered) == 0:
			s.f.m.lookups.WithLabelValues(s.tenant, "miss").Inc()
		default:
			s.f.m.lookups.WithLabelValues(s.tenant, "partial").Inc()
		}
	}
	return true
}

// lastFinal returns the last step of [from, to] whose data is all older
// than horizon, or a step before from when there is none.
func (s *splitQuery) lastFinal(from, to, horizon int64) int64 {
	t := to
	for t >= from {
		_, maxt := s.dataRange(t, t)
		if maxt < horizon {
			return t
		}
		// Steps further back by the excess read less recent data, unless
		// the data is pinned by @ (then no step is final).
		back := (maxt - horizon + s.step) / s.step * s.step
		t -= back
		if _, m2 := s.dataRange(t, t); m2 == maxt {
			return from - s.step
		}
	}
	return from - s.step
}

// evalWhole evaluates the query unsplit, as the engine alone would.
func (s *splitQuery) evalWhole(ctx context.Context) *promql.Result {
	qctx := contextWithValues{Context: ctx, values: s.pinned}
	qry, err := s.f.inner.NewRangeQuery(qctx, s.q, s.opts, s.qs, time.UnixMilli(s.start), time.UnixMilli(s.end), time.Duration(s.step)*time.Millisecond)
	if err != nil {
		return &promql.Result{Err: err}
	}
	s.whole = qry // its answer lives until Close
	return qry.Exec(qctx)
}

// evalJob evaluates the steps [from, to] and returns the answer of those up
// to keepTo and of the others (nil when there are none).
func (s *splitQuery) evalJob(ctx context.Context, from, to, keepTo int64) (keep, fresh *extent, err error) {
	if keepTo < from {
		fresh, err = s.eval(ctx, from, to)
		return nil, fresh, err
	}
	if keepTo >= to {
		keep, err = s.eval(ctx, from, to)
		return keep, nil, err
	}
	x, err := s.eval(ctx, from, to)
	if err != nil {
		return nil, nil, err
	}
	if len(x.annos) == 0 && len(x.merged) == 0 {
		return clip(x, from, keepTo), clip(x, keepTo+s.step, to), nil
	}
	if len(x.merged) > 0 {
		return nil, x, nil // evaluated whole by Exec
	}
	if keep, err = s.eval(ctx, from, keepTo); err != nil {
		return nil, nil, err
	}
	if fresh, err = s.eval(ctx, keepTo+s.step, to); err != nil {
		return nil, nil, err
	}
	return keep, fresh, nil
}

// eval evaluates the query's steps in [from, to] with the engine.
func (s *splitQuery) eval(ctx context.Context, from, to int64) (*extent, error) {
	s.f.m.evaluations.Inc()
	qctx := contextWithValues{Context: ctx, values: s.pinned}
	qry, err := s.f.inner.NewRangeQuery(qctx, s.q, s.opts, s.qs, time.UnixMilli(from), time.UnixMilli(to), time.Duration(s.step)*time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	res := qry.Exec(qctx)
	if res.Err != nil {
		return nil, res.Err
	}
	mat, ok := res.Value.(promql.Matrix)
	if !ok {
		return nil, fmt.Errorf("range query answered %s, not a matrix", res.Value.Type())
	}
	x := &extent{start: from, end: to, series: make(promql.Matrix, len(mat))}
	// Close returns the answer's point slices to the engine's pools: copy.
	for i, sr := range mat {
		x.series[i] = promql.Series{Metric: sr.Metric}
		if len(sr.Floats) > 0 {
			x.series[i].Floats = append([]promql.FPoint(nil), sr.Floats...)
		}
		if len(sr.Histograms) > 0 {
			x.series[i].Histograms = append([]promql.HPoint(nil), sr.Histograms...)
		}
	}
	if from == to && s.start != s.end {
		if w := sortWarning(s.expr); w != nil {
			res.Warnings.Add(w)
		}
	}
	x.annos, x.merged = renderAnnos(res.Warnings, s.qs)
	return x, nil
}

// sortWarning is the warning the engine gives when a sort function is
// evaluated over more than one step at the query's top level (not inside
// a subquery, which has steps of its own, nor in a step-invariant part,
// evaluated once), or nil when expr has no such call.
func sortWarning(expr parser.Expr) error {
	var w error
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		c, ok := n.(*parser.Call)
		if !ok || w != nil {
			return nil
		}
		switch c.Func.Name {
		case "sort", "sort_desc", "sort_by_label", "sort_by_label_desc":
		default:
			return nil
		}
		for _, p := range path {
			switch p.(type) {
			case *parser.SubqueryExpr, *parser.StepInvariantExpr:
				return nil
			}
		}
		w = annotations.NewSortInRangeQueryWarning(c.PositionRange())
		return nil
	})
	return w
}

// firstError returns the error of the earliest part that failed for a
// reason of its own (not because another part's failure cancelled it).
func (s *splitQuery) firstError(errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		var canceled promql.ErrQueryCanceled
		if first == nil || errors.As(first, &canceled) && !errors.As(err, &canceled) {
			first = err
		}
	}
	return first
}

func sortExtents(xs []*extent) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j].start < xs[j-1].start; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

func (s *splitQuery) Close() {
	s.cancel()
	if s.whole != nil {
		s.whole.Close()
	}
}

func (s *splitQuery) Statement() parser.Statement {
	return &parser.EvalStmt{Expr: s.expr, Start: time.UnixMilli(s.start), End: time.UnixMilli(s.end),
		Interval: time.Duration(s.step) * time.Millisecond, LookbackDelta: s.lookback}
}

// Stats implements promql.Query. Requests for statistics are not split
// (Handler); this answers the rest with empty figures.
func (s *splitQuery) Stats() *stats.Statistics {
	return &stats.Statistics{Timers: stats.NewQueryTimers(), Samples: stats.NewQuerySamples(false)}
}

func (s *splitQuery) Cancel() { s.cancel() }

func (s *splitQuery) String() string { return s.qs }

// contextWithValues is ctx (deadline, cancellation) with the values of
// another context: the engine's pinned decisions for the whole query.
type contextWithValues struct {
	context.Context
	values context.Context
}

func (c contextWithValues) Value(key any) any {
	if v := c.values.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// Annotations are cached as the answer shows them, rendered against the
// query string (part of the key), since an annotation's position in the
// query is formatted only when the answer is.

type querySetter interface{ SetQuery(string) }

// renderAnnos returns the annotations of a, rendered, except the mergeable
// ones: those whose text summarises the steps they arose at (how many, from
// when to when), as the engine counts them within one evaluation (a count
// parts cannot reproduce: a query with any is evaluated whole). Those known
// are histogram_quantile's forced monotonicity and the start time overlap;
// TestPromQLScripts fails on any other, which must then be added here.
func renderAnnos(a annotations.Annotations, qs string) ([]anno, annotations.Annotations) {
	if len(a) == 0 {
		return nil, nil
	}
	var out []anno
	var merged annotations.Annotations
	for _, err := range a {
		if errors.Is(err, annotations.HistogramQuantileForcedMonotonicityInfo) || errors.Is(err, annotations.StartTimeOverlapWarning) {
			merged.Add(err)
			continue
		}
		var qsErr querySetter
		if errors.As(err, &qsErr) {
			qsErr.SetQuery(qs)
		}
		out = append(out, anno{info: errors.Is(err, annotations.PromQLInfo), msg: err.Error()})
	}
	sortAnnos(out)
	return out, merged
}

func sortAnnos(as []anno) {
	for i := 1; i < len(as); i++ {
		for j := i; j > 0 && as[j].msg < as[j-1].msg; j-- {
			as[j], as[j-1] = as[j-1], as[j]
		}
	}
}

// renderedAnno is an annotation already rendered: it is an info or a
// warning as it was, and its text is final.
type renderedAnno anno

func (r renderedAnno) Error() string { return r.msg }

func (r renderedAnno) Is(target error) bool {
	if r.info {
		return target == annotations.PromQLInfo
	}
	return target == annotations.PromQLWarning
}
