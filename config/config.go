// Package config defines Strata's configuration: every setting is a
// command-line flag and a key of the optional YAML file, declared once.
// Precedence: flag given on the command line, then YAML file, then default.
//
// A flag -section.some-key is the YAML key some_key in the mapping section
// (dashes become underscores; -remote-write.* lives under remote_write):
//
//	storage:
//	  path: /var/lib/strata        # -storage.path=/var/lib/strata
//	  out_of_order_window: 30m     # -storage.out-of-order-window=30m
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/strata-tsdb/strata/alerting"
	"github.com/strata-tsdb/strata/alerting/notify"
	"github.com/strata-tsdb/strata/frontend"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/memory"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/secret"
)

// Config is the whole configuration of a Strata process.
type Config struct {
	// ConfigFile is the optional YAML file; it is a flag only.
	ConfigFile string `yaml:"-"`
	// CheckConfig makes the process validate its configuration and exit.
	CheckConfig bool `yaml:"-"`
	// ExpandEnv replaces ${VAR} in the YAML file by the environment's VAR.
	ExpandEnv bool `yaml:"-"`

	// flags are the effective values of every flag after Load, secrets masked.
	flags map[string]string

	HTTP      HTTPConfig      `yaml:"http"`
	Log       LogConfig       `yaml:"log"`
	Tenant    TenantConfig    `yaml:"tenant"`
	Storage   StorageConfig   `yaml:"storage"`
	Bucket    objstore.Config `yaml:"bucket"`
	Compactor CompactorConfig `yaml:"compactor"`
	Write     WriteConfig     `yaml:"remote_write"`
	Query     QueryConfig     `yaml:"query"`
	// The query front end: splitting and the results cache (package frontend).
	Frontend frontend.Config `yaml:"frontend"`
	Runtime   RuntimeConfig   `yaml:"runtime"`

	// Per-tenant limits: the defaults, and the runtime overrides file (package limits).
	Limits    limits.Limits          `yaml:"limits"`
	Overrides limits.OverridesConfig `yaml:"overrides"`

	// Rule evaluation, anomaly rules and notifications (package alerting).
	Rules         alerting.RulesConfig      `yaml:"rules"`
	Alertmanager  notify.AlertmanagerConfig `yaml:"alertmanager"`
	Notifications notify.Config             `yaml:"notifications"`
}

// HTTPConfig configures the HTTP server.
type HTTPConfig struct {
	ListenAddress   string         `yaml:"listen_address"`
	ShutdownTimeout model.Duration `yaml:"shutdown_timeout"`
	ReadTimeout     model.Duration `yaml:"read_timeout"`
	WriteTimeout    model.Duration `yaml:"write_timeout"`
	IdleTimeout     model.Duration `yaml:"idle_timeout"`
	MaxConnections  int            `yaml:"max_connections"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// TenantConfig configures how requests name their tenant.
type TenantConfig struct {
	Default       string `yaml:"default"`
	RequireHeader bool   `yaml:"require_header"`
	// AuthFile maps credentials to tenants; empty trusts the tenant header.
	AuthFile string `yaml:"auth_file"`
}

// StorageConfig configures the local store.
type StorageConfig struct {
	Path                        string         `yaml:"path"`
	OutOfOrderWindow            model.Duration `yaml:"out_of_order_window"`
	BlockDuration               model.Duration `yaml:"block_duration"`
	LocalRetention              model.Duration `yaml:"local_retention"`
	MaxExemplars                int64          `yaml:"max_exemplars"`
	WALCompression              bool           `yaml:"wal_compression"`
	StartTimestampZeroIngestion bool           `yaml:"start_timestamp_zero_ingestion"`
	StartTimestampStorage       bool           `yaml:"start_timestamp_storage"`
	ShipInterval                model.Duration `yaml:"ship_interval"`
	BucketSyncInterval          model.Duration `yaml:"bucket_sync_interval"`
	BlockCacheDir               string         `yaml:"block_cache_dir"`
	BlockCacheMaxBytes          int64          `yaml:"block_cache_max_bytes"`
	FlushOnShutdown             bool           `yaml:"flush_on_shutdown"`
	MaxTenants                  int            `yaml:"max_tenants"`
	TenantIdleTimeout           model.Duration `yaml:"tenant_idle_timeout"`
	MinFreeBytes                int64          `yaml:"min_free_bytes"`
}

// CompactorConfig configures the compactor.
type CompactorConfig struct {
	Enabled         bool           `yaml:"enabled"`
	Interval        model.Duration `yaml:"interval"`
	DeletionDelay   model.Duration `yaml:"deletion_delay"`
	CompactionDelay model.Duration `yaml:"compaction_delay"`
	// Retention is a per-tenant limit: -limits.retention-raw, -1m, -1h.
}

// WriteConfig configures the remote-write receiver.
type WriteConfig struct {
	MaxBodyBytes  int64          `yaml:"max_body_bytes"`
	MaxFutureTime model.Duration `yaml:"max_future_time"`
}

// QueryConfig configures the PromQL engine and the query API.
type QueryConfig struct {
	LookbackDelta         model.Duration `yaml:"lookback_delta"`
	Timeout               model.Duration `yaml:"timeout"`
	MaxSamples            int            `yaml:"max_samples"`
	MaxConcurrency        int            `yaml:"max_concurrency"`
	ExperimentalFunctions bool           `yaml:"experimental_functions"`
	RemoteReadSampleLimit int            `yaml:"remote_read_sample_limit"`
	RemoteReadConcurrency int            `yaml:"remote_read_concurrency"`
	Shards                int            `yaml:"shards"`
	Pushdown              bool           `yaml:"pushdown"`
	MaxLength             int            `yaml:"max_length"`
	MaxNestingDepth       int            `yaml:"max_nesting_depth"`
}

// RuntimeConfig configures the Go runtime's memory use (package memory).
type RuntimeConfig struct {
	GOGC                   int            `yaml:"gogc"`
	MemoryLimit            int64          `yaml:"memory_limit"`
	MemoryLimitRatio       float64        `yaml:"memory_limit_ratio"`
	ReleaseMemoryAfterIdle model.Duration `yaml:"release_memory_after_idle"`
}

// Memory returns the memory settings to apply to the process.
func (r RuntimeConfig) Memory() memory.Settings {
	return memory.Settings{GOGC: r.GOGC, Limit: r.MemoryLimit, LimitRatio: r.MemoryLimitRatio}
}

// DefaultListenAddress is the documented default HTTP address.
const DefaultListenAddress = ":9201"

// RegisterFlags registers every setting on fs with its default, and sets c to the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "config.file", "", "Optional YAML configuration file. Flags given on the command line override it.")
	fs.BoolVar(&c.CheckConfig, "config.check", false, "Validate the configuration (flags and file) and exit.")
	fs.BoolVar(&c.ExpandEnv, "config.expand-env", false, "Replace ${VAR} in the configuration file by the environment variable VAR (empty when unset), e.g. to pass secrets through the environment; $$ stands for a literal $.")

	fs.StringVar(&c.HTTP.ListenAddress, "http.listen-address", DefaultListenAddress, "Address of the HTTP server (remote write, query API, /metrics).")
	durationVar(fs, &c.HTTP.ShutdownTimeout, "http.shutdown-timeout", 30*time.Second, "How long a graceful shutdown waits for in-flight requests.")
	durationVar(fs, &c.HTTP.ReadTimeout, "http.read-timeout", 5*time.Minute, "Longest time to read a request, headers and body (Prometheus's --web.read-timeout); a body still arriving then is answered 400 and its connection closed. 0 means none.")
	durationVar(fs, &c.HTTP.WriteTimeout, "http.write-timeout", 0, "Longest time from the end of a request's headers to the end of its answer, evaluation included, so longer than -query.timeout; 0 means none, as in Prometheus (the query timeout bounds evaluation).")
	durationVar(fs, &c.HTTP.IdleTimeout, "http.idle-timeout", 5*time.Minute, "How long a kept-alive connection may wait for its next request before it is closed (Prometheus closes idle connections after --web.read-timeout). 0 means the read timeout.")
	fs.IntVar(&c.HTTP.MaxConnections, "http.max-connections", 512, "Most simultaneous HTTP connections (Prometheus's --web.max-connections); further connections wait to be accepted. 0 means no limit.")

	fs.StringVar(&c.Log.Level, "log.level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&c.Log.Format, "log.format", "logfmt", "Log format: logfmt or json.")

	fs.StringVar(&c.Tenant.Default, "tenant.default", "anonymous", "Tenant of requests without an X-Scope-OrgID header.")
	fs.BoolVar(&c.Tenant.RequireHeader, "tenant.require-header", false, "Reject requests without an X-Scope-OrgID header instead of using the default tenant.")
	fs.StringVar(&c.Tenant.AuthFile, "tenant.auth-file", "", "YAML file of per-tenant bearer tokens or basic-auth credentials; with it every request must authenticate and its credentials name its tenant. Without it the X-Scope-OrgID header is trusted.")

	fs.StringVar(&c.Storage.Path, "storage.path", "./data", "Data directory: WAL, head and local blocks of every tenant.")
	durationVar(fs, &c.Storage.OutOfOrderWindow, "storage.out-of-order-window", 10*time.Minute, "How far behind a series' newest sample a sample is still accepted.")
	durationVar(fs, &c.Storage.BlockDuration, "storage.block-duration", 2*time.Hour, "Time range of the blocks cut from the head.")
	durationVar(fs, &c.Storage.LocalRetention, "storage.local-retention", 24*time.Hour, "How long local copies of blocks are kept once shipped to the bucket; blocks not yet shipped are never deleted locally.")
	fs.Int64Var(&c.Storage.MaxExemplars, "storage.max-exemplars", 100000, "Exemplars kept in memory per tenant; 0 disables exemplar storage.")
	fs.BoolVar(&c.Storage.WALCompression, "storage.wal-compression", true, "Compress WAL records with snappy.")
	fs.BoolVar(&c.Storage.StartTimestampZeroIngestion, "storage.start-timestamp-zero-ingestion", false, "Store a zero sample at each series' start (created) timestamp, as Prometheus's created-timestamp-zero-ingestion.")

	fs.BoolVar(&c.Storage.StartTimestampStorage, "storage.start-timestamp-storage", false, "Keep each sample's start (created) timestamp in chunks (Prometheus's experimental st-storage, XOR2 chunks); PromQL's start-timestamp aware functions use it.")

	durationVar(fs, &c.Storage.ShipInterval, "storage.ship-interval", 30*time.Second, "How often new local blocks are uploaded to the bucket (failed uploads are retried then).")
	durationVar(fs, &c.Storage.BucketSyncInterval, "storage.bucket-sync-interval", time.Minute, "How often the list of blocks in the bucket is refreshed.")
	fs.StringVar(&c.Storage.BlockCacheDir, "storage.block-cache-dir", "", "Directory of the cache of bucket blocks downloaded for queries; empty means <storage.path>/block-cache.")
	fs.Int64Var(&c.Storage.BlockCacheMaxBytes, "storage.block-cache-max-bytes", 10<<30, "Size limit of the block cache; least recently used blocks are evicted beyond it.")
	fs.BoolVar(&c.Storage.FlushOnShutdown, "storage.flush-on-shutdown", false, "On shutdown, cut the whole head into blocks and ship them, so that the data directory can be lost afterwards.")
	fs.IntVar(&c.Storage.MaxTenants, "storage.max-tenants", 0, "Most tenants this process stores; a write of a new tenant beyond it gets 400 and leaves nothing on disk. Tenants named in the overrides file (-overrides.file) are always admitted. 0 means no limit.")
	durationVar(fs, &c.Storage.TenantIdleTimeout, "storage.tenant-idle-timeout", time.Hour, "How long a tenant may go without writes or reads before its head is cut into blocks, shipped, and its TSDB closed (its memory and open files freed); it opens again on its next use. 0 keeps tenants open.")
	fs.Int64Var(&c.Storage.MinFreeBytes, "storage.min-free-bytes", 256<<20, "Free space of the data directory's file system below which writes are refused with 503 (reads are served), so that the disk never fills under the TSDBs; half of it is kept reserved in a file, released when a start finds the disk nearly full. 0 turns both off.")
	c.Bucket.RegisterFlags(fs)

	fs.BoolVar(&c.Compactor.Enabled, "compactor.enabled", true, "Run the compactor in this process: merge, downsample and expire blocks in the bucket.")
	durationVar(fs, &c.Compactor.Interval, "compactor.interval", 5*time.Minute, "How often the compactor runs.")
	durationVar(fs, &c.Compactor.DeletionDelay, "compactor.deletion-delay", time.Hour, "How long replaced blocks stay in the bucket after being marked; longer than any query and than -storage.bucket-sync-interval.")
	durationVar(fs, &c.Compactor.CompactionDelay, "compactor.compaction-delay", 4*time.Hour, "How long after a time window ends before its blocks are merged (all its blocks shipped by then).")

	fs.Int64Var(&c.Write.MaxBodyBytes, "remote-write.max-body-bytes", 64<<20, "Largest accepted remote-write body, compressed and decompressed; larger ones get 413.")
	durationVar(fs, &c.Write.MaxFutureTime, "remote-write.max-future-time", 10*time.Minute, "How far in the future a sample's timestamp may be.")

	durationVar(fs, &c.Query.LookbackDelta, "query.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for samples.")
	durationVar(fs, &c.Query.Timeout, "query.timeout", 2*time.Minute, "Longest a query may run.")
	fs.IntVar(&c.Query.MaxSamples, "query.max-samples", 50000000, "Most samples a single query may load into memory.")
	fs.IntVar(&c.Query.MaxConcurrency, "query.max-concurrency", 20, "Most queries evaluated at once.")
	fs.BoolVar(&c.Query.ExperimentalFunctions, "query.experimental-functions", false, "Enable experimental PromQL functions.")
	fs.IntVar(&c.Query.RemoteReadSampleLimit, "query.remote-read-sample-limit", 50000000, "Most samples one SAMPLES remote-read response may hold; 0 means no limit.")
	fs.IntVar(&c.Query.RemoteReadConcurrency, "query.remote-read-concurrency", 10, "Most remote-read requests served at once.")
	fs.IntVar(&c.Query.Shards, "query.shards", 0, "Parts a range query whose aggregation groups can be kept whole is split into and evaluated concurrently; 0 means one per core (GOMAXPROCS), 1 turns splitting off.")
	fs.IntVar(&c.Query.MaxLength, "query.max-length", 1<<20, "Longest PromQL query in bytes; a longer one is refused with 400 before it is parsed. Negative means no limit.")
	fs.IntVar(&c.Query.MaxNestingDepth, "query.max-nesting-depth", 1000, "Deepest nesting of a PromQL query, counting brackets and chained binary operators; a deeper one is refused with 400 before it is parsed (parsing takes time quadratic in nesting: 30000 parentheses take seconds). Negative means no limit.")
	fs.BoolVar(&c.Query.Pushdown, "query.pushdown", true, "Evaluate range queries' range functions (rate, *_over_time...), instant selectors and count/group over them where the samples are read, with the upstream functions, instead of through the engine's buffered iterators. Answers are identical; false turns it off.")

	fs.IntVar(&c.Runtime.GOGC, "runtime.gogc", memory.GOGCFromEnv(), "Go garbage collector target percentage (GOGC): the heap may grow this much above its live data before a collection. Defaults to the GOGC environment variable, else 75 as in Prometheus; lower values use less memory and more CPU.")
	fs.Int64Var(&c.Runtime.MemoryLimit, "runtime.memory-limit", 0, "Soft limit of the Go runtime's memory in bytes (GOMEMLIMIT): the collector works harder as it is approached. 0 derives it from the container's (cgroup) or else the machine's memory times -runtime.memory-limit-ratio; a GOMEMLIMIT environment variable is then used instead.")
	fs.Float64Var(&c.Runtime.MemoryLimitRatio, "runtime.memory-limit-ratio", 0.9, "Share of the container's or machine's memory used as the Go memory limit when -runtime.memory-limit is 0, as Prometheus's auto-gomemlimit; 0 sets no limit.")
	durationVar(fs, &c.Runtime.ReleaseMemoryAfterIdle, "runtime.release-memory-after-idle", 2*time.Second, "After a burst of work (ingest, a large query), once the process has allocated almost nothing for this long and much memory is reclaimable, collect garbage and return the free memory to the OS, so that resident memory falls back to what is live. 0 leaves it to the Go runtime, which collects only on allocation or every 2 minutes.")

	c.Frontend.RegisterFlags(fs)

	c.Limits.RegisterFlags(fs)
	c.Overrides.RegisterFlags(fs)

	c.Rules.RegisterFlags(fs)
	c.Alertmanager.RegisterFlags(fs)
	c.Notifications.RegisterFlags(fs)
}

func durationVar(fs *flag.FlagSet, d *model.Duration, name string, def time.Duration, usage string) {
	*d = model.Duration(def)
	fs.Var(d, name, usage)
}

// Load builds the configuration from args: defaults, then the YAML file named
// by -config.file, then the flags given in args. It returns flag.ErrHelp for -h.
func Load(name string, args []string, output io.Writer) (*Config, error) {
	var probe Config
	pfs := flag.NewFlagSet(name, flag.ContinueOnError)
	pfs.SetOutput(io.Discard)
	probe.RegisterFlags(pfs)
	perr := pfs.Parse(args)

	c := &Config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	c.RegisterFlags(fs)
	if perr == nil && probe.ConfigFile != "" {
		if err := c.loadFile(probe.ConfigFile, probe.ExpandEnv); err != nil {
			return nil, err
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.flags = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { c.flags[f.Name] = f.Value.String() })
	return c, c.Validate()
}

// Flags returns the effective value of every flag (from the command line,
// the file or the default), secrets shown as secret.Mask, as
// /api/v1/status/flags lists them. It is empty for a Config not built by Load.
func (c *Config) Flags() map[string]string {
	out := make(map[string]string, len(c.flags))
	maps.Copy(out, c.flags)
	return out
}

// RedactArgs returns the command-line arguments args (without the program
// name) with the values of secret flags masked.
func RedactArgs(args []string) []string {
	var c Config
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	c.RegisterFlags(fs)
	return secret.RedactArgs(fs, args)
}

func (c *Config) loadFile(path string, expandEnv bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	if expandEnv {
		b = []byte(os.Expand(string(b), func(name string) string {
			if name == "$" {
				return "$"
			}
			return os.Getenv(name)
		}))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parse config file %s: %w", path, err)
	}
	return nil
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Storage.Path == "":
		return errors.New("storage.path must be set")
	case c.Storage.BlockDuration <= 0 || (24*time.Hour)%time.Duration(c.Storage.BlockDuration) != 0:
		return errors.New("storage.block-duration must divide 24h (1h, 2h, 3h, ..., 24h, or 5m, 10m, 30m...): the compactor merges blocks into 12h and 24h windows")
	case c.Storage.OutOfOrderWindow < 0:
		return errors.New("storage.out-of-order-window must not be negative")
	case c.HTTP.MaxConnections < 0:
		return errors.New("http.max-connections must not be negative")
	case c.HTTP.WriteTimeout > 0 && c.HTTP.WriteTimeout <= c.Query.Timeout:
		return errors.New("http.write-timeout must be longer than query.timeout, or every query that runs long enough to time out loses its answer")
	case c.Write.MaxBodyBytes <= 0:
		return errors.New("remote-write.max-body-bytes must be positive")
	case c.Query.LookbackDelta <= 0:
		return errors.New("query.lookback-delta must be positive")
	case c.Query.Timeout <= 0:
		return errors.New("query.timeout must be positive")
	case c.Query.Shards < 0:
		return errors.New("query.shards must not be negative")
	case !c.Tenant.RequireHeader && c.Tenant.Default == "":
		return errors.New("tenant.default must be set unless tenant.require-header is")
	case c.Storage.MaxTenants < 0 || c.Storage.MinFreeBytes < 0:
		return errors.New("storage.max-tenants and storage.min-free-bytes must not be negative")
	case c.Storage.BlockCacheMaxBytes <= 0:
		return errors.New("storage.block-cache-max-bytes must be positive")
	}
	if c.Runtime.ReleaseMemoryAfterIdle < 0 {
		return errors.New("runtime.release-memory-after-idle must not be negative")
	}
	if err := c.Runtime.Memory().Validate(); err != nil {
		return err
	}
	if err := c.Bucket.Validate(); err != nil {
		return err
	}
	if err := c.Frontend.Validate(); err != nil {
		return err
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	if err := c.Rules.Validate(); err != nil {
		return err
	}
	if err := c.Alertmanager.Validate(); err != nil {
		return err
	}
	if err := c.Notifications.Validate(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "logfmt", "json":
	default:
		return fmt.Errorf("log.format %q is not one of logfmt, json", c.Log.Format)
	}
	return nil
}
