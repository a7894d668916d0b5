// Package promqlengine configures the upstream PromQL engine for Strata:
// lookback, sample limits, timeouts, concurrency and the parser's feature
// set, chosen to match a default Prometheus 3 so that the same query over
// the same samples gives the same answer.
package promqlengine

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/strata-tsdb/strata/limits"
)

// Options configure the engine.
type Options struct {
	// LookbackDelta is how far back an instant selector looks for a sample (Prometheus: 5m).
	LookbackDelta time.Duration
	// Timeout bounds one query's evaluation.
	Timeout time.Duration
	// MaxSamples bounds the samples one query may hold in memory at once.
	MaxSamples int
	// MaxConcurrent bounds concurrently evaluated queries; 0 means no limit.
	MaxConcurrent int
	// ActiveQueryDir, when set with MaxConcurrent, keeps the log of active
	// queries there so that queries running at a crash are logged at the next start.
	ActiveQueryDir string
	// ExperimentalFunctions enables PromQL's experimental functions.
	ExperimentalFunctions bool
	// DefaultEvaluationInterval is the step of subqueries without one (Prometheus: 1m).
	DefaultEvaluationInterval time.Duration

	// Downsampled, when set, tells which queries read downsampled data;
	// those are rewritten onto its aggregates (see resolution.go).
	Downsampled DownsampledReader

	// Limits, when set, apply each tenant's query limits (see limits.go).
	Limits *limits.Overrides

	// NoPushdown turns off range-function pushdown (see pushdown.go).
	NoPushdown bool

	// Shards is the number of parts a shardable range query is split into
	// and evaluated concurrently (see shard.go): 0 means GOMAXPROCS, 1 none.
	Shards int

	// MaxQueryLength and MaxQueryDepth bound a query's bytes and nesting
	// (see parse.go); a larger query is refused unparsed. 0 means the
	// defaults, negative no limit.
	MaxQueryLength int
	MaxQueryDepth  int

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Engine is the configured PromQL engine and the parser it was built with.
//
// It holds two upstream engines: the embedded one evaluates queries of
// tenants without query limits, and costed, with the engine's query-cost
// enforcement enabled, those of tenants with limits. Query-cost enforcement
// wraps every series iterator in a guard that checks the query's context on
// each sample, which costs about a quarter of the CPU time of a rate over
// many series (measured with pprof on the bench's node-exporter data), so
// only queries that need it pay for it.
type Engine struct {
	*promql.Engine
	costed      *promql.Engine
	pushdown    *promql.Engine
	Parser      parser.Parser
	parsed      *exprCache // the parses of the queries being built and run (parse.go)
	tracker     *promql.ActiveQueryTracker
	downsampled DownsampledReader
	lookback    time.Duration
	limits      *limits.Overrides
	timeout     time.Duration
	shards      int
	maxSamples  int

	maxQueryLength, maxQueryDepth int
}

// New returns an engine configured by opts.
func New(opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DefaultEvaluationInterval <= 0 {
		opts.DefaultEvaluationInterval = time.Minute
	}
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: opts.ExperimentalFunctions})
	e := &Engine{Parser: p, parsed: &exprCache{}, downsampled: opts.Downsampled, lookback: opts.LookbackDelta, limits: opts.Limits, timeout: opts.Timeout, shards: opts.Shards, maxSamples: opts.MaxSamples,
		maxQueryLength: limitOrDefault(opts.MaxQueryLength, DefaultMaxQueryLength), maxQueryDepth: limitOrDefault(opts.MaxQueryDepth, DefaultMaxQueryDepth)}
	if e.shards <= 0 {
		e.shards = runtime.GOMAXPROCS(0)
	}
	if e.lookback <= 0 {
		e.lookback = 5 * time.Minute
	}
	eo := promql.EngineOpts{
		Logger:        opts.Logger.With("component", "promql"),
		Reg:           opts.Registerer,
		MaxSamples:    opts.MaxSamples,
		Timeout:       opts.Timeout,
		LookbackDelta: opts.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return opts.DefaultEvaluationInterval.Milliseconds()
		},
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		EnablePerStepStats:   false,
		// The engines parse a query Strata parsed already by copying it.
		Parser: cachingParser{p, e.parsed},
	}
	if opts.MaxConcurrent > 0 && opts.ActiveQueryDir != "" {
		if err := os.MkdirAll(opts.ActiveQueryDir, 0o755); err != nil {
			return nil, fmt.Errorf("create active query directory: %w", err)
		}
		t, err := promql.NewActiveQueryTracker(opts.ActiveQueryDir, opts.MaxConcurrent, opts.Logger.With("component", "activeQueryTracker"))
		if err != nil {
			return nil, fmt.Errorf("open active query log: %w", err)
		}
		e.tracker = t
		eo.ActiveQueryTracker = e.tracker
	}
	// Every upstream engine exports the engine's metrics
	// (prometheus_engine_*), told apart by an "engine" label: "plain",
	// "pushdown" (range queries with pushed-down calls, see pushdown.go)
	// and "limits" (tenants with query limits, see limits.go).
	reg := opts.Registerer
	engineReg := func(name string) prometheus.Registerer {
		if reg == nil {
			return nil
		}
		return prometheus.WrapRegistererWith(prometheus.Labels{"engine": name}, reg)
	}
	eo.Reg = engineReg("plain")
	e.Engine = promql.NewEngine(eo)
	if !opts.NoPushdown {
		po := eo
		po.Reg = engineReg("pushdown")
		po.Parser = pushdownParser{cachingParser{p, e.parsed}}
		e.pushdown = promql.NewEngine(po)
	}
	if opts.Limits != nil {
		// Per-query limits of tenants are query-cost overrides, enforced
		// by the costed engine.
		co := eo
		co.Reg = engineReg("limits")
		co.EnableQueryCost = true
		e.costed = promql.NewEngine(co)
	}
	return e, nil
}

// limitOrDefault is limit, def when it is 0, and 0 (none) when negative.
func limitOrDefault(limit, def int) int {
	switch {
	case limit == 0:
		return def
	case limit < 0:
		return 0
	}
	return limit
}

// Close releases the active query log.
func (e *Engine) Close() error {
	var err error
	if e.tracker != nil {
		err = e.tracker.Close()
	}
	return err
}
