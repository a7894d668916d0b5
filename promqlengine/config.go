package promqlengine

import (
	"errors"
	"flag"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Config configures the query engine. Per-tenant query limits are limits
// (package limits); these are the process's.
type Config struct {
	LookbackDelta         model.Duration `yaml:"lookback_delta"`
	Timeout               model.Duration `yaml:"timeout"`
	MaxSamples            int            `yaml:"max_samples"`
	MaxConcurrency        int            `yaml:"max_concurrency"`
	ExperimentalFunctions bool           `yaml:"experimental_functions"`
	Shards                int            `yaml:"shards"`
	Pushdown              bool           `yaml:"pushdown"`
	MaxLength             int            `yaml:"max_length"`
	MaxNestingDepth       int            `yaml:"max_nesting_depth"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	flagext.DurationVar(fs, &c.LookbackDelta, "query.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for samples.")
	flagext.DurationVar(fs, &c.Timeout, "query.timeout", 2*time.Minute, "Longest a query may run.")
	fs.IntVar(&c.MaxSamples, "query.max-samples", 50000000, "Most samples a single query may load into memory.")
	fs.IntVar(&c.MaxConcurrency, "query.max-concurrency", 20, "Most queries evaluated at once.")
	fs.BoolVar(&c.ExperimentalFunctions, "query.experimental-functions", false, "Enable experimental PromQL functions.")
	fs.IntVar(&c.Shards, "query.shards", 0, "Parts a range query whose aggregation groups can be kept whole is split into and evaluated concurrently; 0 means one per core (GOMAXPROCS), 1 turns splitting off.")
	fs.IntVar(&c.MaxLength, "query.max-length", 1<<20, "Longest PromQL query in bytes; a longer one is refused with 400 before it is parsed. Negative means no limit.")
	fs.IntVar(&c.MaxNestingDepth, "query.max-nesting-depth", 1000, "Deepest nesting of a PromQL query, counting brackets and chained binary operators; a deeper one is refused with 400 before it is parsed (parsing takes time quadratic in nesting: 30000 parentheses take seconds). Negative means no limit.")
	fs.BoolVar(&c.Pushdown, "query.pushdown", true, "Evaluate range queries' range functions (rate, *_over_time...), instant selectors and count/group over them where the samples are read, with the upstream functions, instead of through the engine's buffered iterators. Answers are identical; false turns it off.")
}

// Validate reports a setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.LookbackDelta <= 0:
		return errors.New("query.lookback-delta must be positive")
	case c.Timeout <= 0:
		return errors.New("query.timeout must be positive")
	case c.Shards < 0:
		return errors.New("query.shards must not be negative")
	}
	return nil
}

// Options returns the engine options c sets; the caller adds the store,
// the limits, the active-query directory, the logger and the registerer.
func (c *Config) Options() Options {
	return Options{
		LookbackDelta:         time.Duration(c.LookbackDelta),
		Timeout:               time.Duration(c.Timeout),
		MaxSamples:            c.MaxSamples,
		MaxConcurrent:         c.MaxConcurrency,
		ExperimentalFunctions: c.ExperimentalFunctions,
		Shards:                c.Shards,
		NoPushdown:            !c.Pushdown,
		MaxQueryLength:        c.MaxLength,
		MaxQueryDepth:         c.MaxNestingDepth,
	}
}
