package frontend

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Backends of the results cache.
const (
	BackendInMemory  = "inmemory"
	BackendMemcached = "memcached"
	BackendNone      = "none"
)

// Config configures the query front end. Its settings are part of the
// query: section of the configuration (flags -query.split-* and
// -query.results-cache.*, YAML keys query.split_* and query.results_cache.*);
// the per-tenant share of the cache is a limit (package limits).
type Config struct {
	// SplitInterval is the length of the parts a range query is split
	// into, aligned to multiples of it since the Unix epoch (UTC days by
	// default). 0 turns the front end off: range queries go to the engine
	// whole and nothing is cached.
	SplitInterval model.Duration `yaml:"split_interval"`
	// Parallelism bounds the parts of one query evaluated at once; 0 means
	// GOMAXPROCS.
	Parallelism int `yaml:"split_parallelism"`

	ResultsCache ResultsCacheConfig `yaml:"results_cache"`
}

// ResultsCacheConfig configures the results cache.
type ResultsCacheConfig struct {
	// Backend is where results are cached: inmemory, memcached or none.
	Backend string `yaml:"backend"`
	// MaxFreshness: results at and after now less this are never cached
	// (and data of that age is never assumed final). At least the store's
	// out-of-order window.
	MaxFreshness model.Duration `yaml:"max_freshness"`
	// MaxBytes bounds the in-memory cache.
	MaxBytes int64 `yaml:"max_bytes"`

	Memcached MemcachedConfig `yaml:"memcached"`
}

// MemcachedConfig configures the memcached backend.
type MemcachedConfig struct {
	// Addresses are the memcached servers, host:port, comma-separated.
	Addresses string `yaml:"addresses"`
	// Timeout bounds each memcached operation.
	Timeout model.Duration `yaml:"timeout"`
	// MaxItemBytes is the largest value stored: memcached's item size
	// limit (its -I option, 1 MiB by default).
	MaxItemBytes int `yaml:"max_item_bytes"`
}

// RegisterFlags registers the front end's flags on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	flagext.DurationVar(fs, &c.SplitInterval, "query.split-interval", 24*time.Hour, "Range queries are split into parts aligned to multiples of this length (24h: UTC days), evaluated in parallel; each part that can no longer change is cached. 0 turns splitting and the results cache off.")
	fs.IntVar(&c.Parallelism, "query.split-parallelism", 0, "Most parts of one split range query evaluated at once; 0 means one per core (GOMAXPROCS).")
	rc := &c.ResultsCache
	fs.StringVar(&rc.Backend, "query.results-cache.backend", BackendInMemory, "Where the results of range query parts are cached: inmemory (this process, bounded by -query.results-cache.max-bytes), memcached (shared by several query processes) or none.")
	flagext.DurationVar(fs, &rc.MaxFreshness, "query.results-cache.max-freshness", 10*time.Minute, "Results whose data is newer than now less this are never cached, and samples written older than it invalidate the cached results they touch. Raised to -storage.out-of-order-window when shorter.")
	fs.Int64Var(&rc.MaxBytes, "query.results-cache.max-bytes", 256<<20, "Size of the in-memory results cache; least recently used results are evicted beyond it. Per tenant, -limits.results-cache-max-bytes bounds a tenant's share.")
	fs.StringVar(&rc.Memcached.Addresses, "query.results-cache.memcached.addresses", "", "Memcached servers (host:port, comma-separated) of the memcached results cache.")
	flagext.DurationVar(fs, &rc.Memcached.Timeout, "query.results-cache.memcached.timeout", 500*time.Millisecond, "Longest wait for memcached; a slower answer counts as a miss, never an error of the query.")
	fs.IntVar(&rc.Memcached.MaxItemBytes, "query.results-cache.memcached.max-item-bytes", 1<<20, "Largest cached value sent to memcached (its -I option, 1 MiB by default); larger results are not cached.")
	flagext.MarkBasic("query.results-cache.backend", "query.results-cache.memcached.addresses")
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.SplitInterval < 0:
		return errors.New("query.split-interval must not be negative")
	case c.SplitInterval > 0 && time.Duration(c.SplitInterval) < time.Minute:
		return errors.New("query.split-interval must be at least 1m")
	case c.Parallelism < 0:
		return errors.New("query.split-parallelism must not be negative")
	case c.ResultsCache.MaxFreshness < 0:
		return errors.New("query.results-cache.max-freshness must not be negative")
	}
	rc := &c.ResultsCache
	switch rc.Backend {
	case BackendInMemory:
		if rc.MaxBytes <= 0 {
			return errors.New("query.results-cache.max-bytes must be positive for the inmemory backend")
		}
	case BackendMemcached:
		if len(rc.Memcached.addresses()) == 0 {
			return errors.New("query.results-cache.memcached.addresses must be set for the memcached backend")
		}
		if rc.Memcached.Timeout <= 0 || rc.Memcached.MaxItemBytes <= 0 {
			return errors.New("query.results-cache.memcached.timeout and max-item-bytes must be positive")
		}
	case BackendNone:
	default:
		return fmt.Errorf("query.results-cache.backend %q is not one of inmemory, memcached, none", rc.Backend)
	}
	return nil
}

func (m MemcachedConfig) addresses() []string {
	var out []string
	for a := range strings.SplitSeq(m.Addresses, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
