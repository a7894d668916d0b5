package frontend

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
)

// TestPromQLScripts runs Prometheus's own PromQL test scripts through the
// front end, for several split intervals (every range query of the
// scripts, and the range query each instant evaluation is checked against,
// is then split into several parts). Beside the scripts' own expectations,
// every range query is answered three times, by the engine alone, then by
// the front end twice (the second time mostly from its cache), and the
// three answers must be identical: every float bit, every label, every
// annotation, the same error. The scripts' loads invalidate the cache as
// the store does (Committed) and a clear as a deletion of everything
// (BucketChanged), so answers after a new load never come from the cache
// of the old data.
func TestPromQLScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	for _, interval := range []time.Duration{time.Minute, 24 * time.Hour} {
		t.Run(interval.String(), func(t *testing.T) {
			eng := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
			cfg := testConfig()
			cfg.SplitInterval = model.Duration(interval)
			fe, err := New(Options{
				Config: cfg, Engine: eng, Parser: parser.NewParser(promqltest.TestParserOpts),
				Tenant: func(context.Context) (string, bool) { return "t", true },
			})
			if err != nil {
				t.Fatal(err)
			}
			ce := &checkingEngine{t: t, ref: eng, fe: fe}
			promqltest.RunBuiltinTestsWithStorage(t, ce, func(tb testing.TB) storage.Storage {
				return &invalidatingStorage{Storage: promqltest.NewBuiltinTestStorage(tb), fe: fe, tenant: "t"}
			})
			if n := testutilCounter(t, fe.m.lookups.WithLabelValues("t", "hit")); n == 0 {
				t.Errorf("no part was answered from the cache")
			}
		})
	}
}

func testConfig() Config {
	var c Config
	c.RegisterFlags(newFlagSet())
	c.SplitInterval = model.Duration(24 * time.Hour) // the front end on, in days
	return c
}

// checkingEngine answers range queries through the front end, after
// checking that the front end, cold and warm, answers as the engine.
type checkingEngine struct {
	t   *testing.T
	ref promql.QueryEngine
	fe  *Frontend
}

func (e *checkingEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	return e.fe.NewInstantQuery(ctx, q, opts, qs, ts)
}

func (e *checkingEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	ref, err := e.ref.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	if err != nil {
		return nil, err
	}
	return &checkedQuery{Query: ref, e: e, ctx: ctx, q: q, opts: opts, qs: qs, start: start, end: end, step: step}, nil
}

type checkedQuery struct {
	promql.Query
	e          *checkingEngine
	ctx        context.Context
	q          storage.Queryable
	opts       promql.QueryOpts
	qs         string
	start, end time.Time
	step       time.Duration
	fe         []promql.Query
}

func (c *checkedQuery) Exec(ctx context.Context) *promql.Result {
	want := c.Query.Exec(ctx)
	var got *promql.Result
	for i := range 2 {
		qry, err := c.e.fe.NewRangeQuery(c.ctx, c.q, c.opts, c.qs, c.start, c.end, c.step)
		if err != nil {
			c.e.t.Errorf("%s: the front end failed to build the query the engine built: %v", c.qs, err)
			return want
		}
		c.fe = append(c.fe, qry)
		got = qry.Exec(ctx)
		if d := diffResults(c.qs, want, got); d != "" {
			c.e.t.Errorf("%s over [%v, %v] step %v (front end run %d): %s", c.qs, c.start.UnixMilli(), c.end.UnixMilli(), c.step, i+1, d)
		}
	}
	return got
}

func (c *checkedQuery) Close() {
	c.Query.Close()
	for _, q := range c.fe {
		q.Close()
	}
}

// diffResults describes how got differs from want, bit for bit; empty when identical.
func diffResults(qs string, want, got *promql.Result) string {
	if (want.Err == nil) != (got.Err == nil) || want.Err != nil && want.Err.Error() != got.Err.Error() {
		return fmt.Sprintf("error %v, want %v", got.Err, want.Err)
	}
	if want.Err != nil {
		return ""
	}
	ww, wi := want.Warnings.AsStrings(qs, 0, 0)
	gw, gi := got.Warnings.AsStrings(qs, 0, 0)
	slices.Sort(ww)
	slices.Sort(wi)
	slices.Sort(gw)
	slices.Sort(gi)
	if !slices.Equal(ww, gw) || !slices.Equal(wi, gi) {
		return fmt.Sprintf("annotations %q %q, want %q %q", gw, gi, ww, wi)
	}
	wm, ok1 := want.Value.(promql.Matrix)
	gm, ok2 := got.Value.(promql.Matrix)
	if !ok1 || !ok2 {
		return fmt.Sprintf("value %T, want %T", got.Value, want.Value)
	}
	return diffMatrix(wm, gm)
}

func diffMatrix(want, got promql.Matrix) string {
	// A nil and an empty matrix are the same answer: both encode as [].
	if len(want) != len(got) {
		return fmt.Sprintf("%d series, want %d:\n%v\nwant\n%v", len(got), len(want), got, want)
	}
	for i := range want {
		w, g := want[i], got[i]
		if !labels.Equal(w.Metric, g.Metric) {
			return fmt.Sprintf("series %d is %s, want %s", i, g.Metric, w.Metric)
		}
		if len(w.Floats) != len(g.Floats) || len(w.Histograms) != len(g.Histograms) {
			return fmt.Sprintf("series %s has %d floats %d histograms, want %d %d", w.Metric, len(g.Floats), len(g.Histograms), len(w.Floats), len(w.Histograms))
		}
		for j := range w.Floats {
			if w.Floats[j].T != g.Floats[j].T || math.Float64bits(w.Floats[j].F) != math.Float64bits(g.Floats[j].F) {
				return fmt.Sprintf("series %s point %d is %v, want %v", w.Metric, j, g.Floats[j], w.Floats[j])
			}
		}
		for j := range w.Histograms {
			wh, gh := w.Histograms[j], g.Histograms[j]
			if wh.T != gh.T || wh.H.CounterResetHint != gh.H.CounterResetHint || !wh.H.Equals(gh.H) {
				return fmt.Sprintf("series %s histogram %d is %v, want %v", w.Metric, j, gh, wh)
			}
		}
	}
	return ""
}

// invalidatingStorage reports its commits and its closing (a clear: all its
// data deleted) to the front end, as the store does.
type invalidatingStorage struct {
	storage.Storage
	fe     *Frontend
	tenant string
}

func (s *invalidatingStorage) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &reportingAppender{AppenderV2: s.Storage.AppenderV2(ctx), s: s, mint: math.MaxInt64, maxt: math.MinInt64}
}

func (s *invalidatingStorage) Close() error {
	err := s.Storage.Close()
	s.fe.BucketChanged(s.tenant, math.MinInt64/4, math.MaxInt64/4)
	return err
}

type reportingAppender struct {
	storage.AppenderV2
	s          *invalidatingStorage
	mint, maxt int64
}

func (a *reportingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	a.mint, a.maxt = min(a.mint, t), max(a.maxt, t)
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func (a *reportingAppender) Commit() error {
	err := a.AppenderV2.Commit()
	if err == nil && a.mint <= a.maxt {
		a.s.fe.Committed(a.s.tenant, a.mint, a.maxt)
	}
	return err
}
