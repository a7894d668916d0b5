package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/alerting"
	"github.com/strata-tsdb/strata/alerting/notify"
	"github.com/strata-tsdb/strata/api"
	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/cluster"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/config"
	"github.com/strata-tsdb/strata/frontend"
	"github.com/strata-tsdb/strata/internal/flagext"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/memory"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/otlp"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/remotewrite"
	"github.com/strata-tsdb/strata/tenant"
)

// Config is the whole configuration of a Strata process: each module's
// own settings, as the sections of the configuration file. Each module
// declares its flags, YAML keys and defaults once, in its Config; this
// struct only composes them.
type Config struct {
	config.Files `yaml:",inline"`
	// The process's roles, the ring and memberlist (-target, ring:,
	// memberlist:, distributor:, querier:).
	Cluster cluster.Config `yaml:",inline"`

	HTTP      HTTPConfig         `yaml:"http"`
	Log       LogConfig          `yaml:"log"`
	Tenant    tenant.Config      `yaml:"tenant"`
	Storage   blocks.Config      `yaml:"storage"`
	Bucket    objstore.Config    `yaml:"bucket"`
	Compactor compactor.Config   `yaml:"compactor"`
	Write     remotewrite.Config `yaml:"remote_write"`
	OTLP      otlp.Config        `yaml:"otlp"`
	Query     QueryConfig        `yaml:"query"`
	API       api.AdminConfig    `yaml:"api"`
	Runtime   memory.Config      `yaml:"runtime"`

	// Per-tenant limits: the defaults, and the runtime overrides file.
	Limits    limits.Limits          `yaml:"limits"`
	Overrides limits.OverridesConfig `yaml:"overrides"`

	// Rule evaluation, anomaly rules and notifications.
	Rules         alerting.RulesConfig      `yaml:"rules"`
	Alertmanager  notify.AlertmanagerConfig `yaml:"alertmanager"`
	Notifications notify.Config             `yaml:"notifications"`
}

// QueryConfig is the query: section: the engine's settings, the API's and
// the front end's (splitting and the results cache).
type QueryConfig struct {
	Engine   promqlengine.Config `yaml:",inline"`
	API      api.Config          `yaml:",inline"`
	Frontend frontend.Config     `yaml:",inline"`
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

// DefaultListenAddress is the documented default HTTP address.
const DefaultListenAddress = ":9201"

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *HTTPConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ListenAddress, "http.listen-address", DefaultListenAddress, "Address of the HTTP server (remote write, query API, /metrics).")
	flagext.DurationVar(fs, &c.ShutdownTimeout, "http.shutdown-timeout", 30*time.Second, "How long a graceful shutdown waits for in-flight requests, and then for the flush of -storage.flush-on-shutdown.")
	flagext.DurationVar(fs, &c.ReadTimeout, "http.read-timeout", 5*time.Minute, "Longest time to read a request, headers and body (Prometheus's --web.read-timeout); a body still arriving then is answered 400 and its connection closed. 0 means none.")
	flagext.DurationVar(fs, &c.WriteTimeout, "http.write-timeout", 0, "Longest time from the end of a request's headers to the end of its answer, evaluation included, so longer than -query.timeout; 0 means none, as in Prometheus (the query timeout bounds evaluation).")
	flagext.DurationVar(fs, &c.IdleTimeout, "http.idle-timeout", 5*time.Minute, "How long a kept-alive connection may wait for its next request before it is closed (Prometheus closes idle connections after --web.read-timeout). 0 means the read timeout.")
	fs.IntVar(&c.MaxConnections, "http.max-connections", 512, "Most simultaneous HTTP connections (Prometheus's --web.max-connections); further connections wait to be accepted. 0 means no limit.")
	flagext.MarkBasic("http.listen-address")
}

// Validate reports a setting that cannot work.
func (c *HTTPConfig) Validate() error {
	if c.MaxConnections < 0 {
		return errors.New("http.max-connections must not be negative")
	}
	return nil
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *LogConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Level, "log.level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&c.Format, "log.format", "logfmt", "Log format: logfmt or json.")
	flagext.MarkBasic("log.level")
}

// Validate reports a setting that cannot work.
func (c *LogConfig) Validate() error {
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q is not one of debug, info, warn, error", c.Level)
	}
	switch c.Format {
	case "logfmt", "json":
	default:
		return fmt.Errorf("log.format %q is not one of logfmt, json", c.Format)
	}
	return nil
}

// ConfigFiles implements config.Root.
func (c *Config) ConfigFiles() *config.Files { return &c.Files }

// RegisterFlags registers every module's flags on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Files.RegisterFlags(fs)
	c.Cluster.RegisterFlags(fs)
	c.HTTP.RegisterFlags(fs)
	c.Log.RegisterFlags(fs)
	c.Tenant.RegisterFlags(fs)
	c.Storage.RegisterFlags(fs)
	c.Bucket.RegisterFlags(fs)
	c.Compactor.RegisterFlags(fs)
	c.Write.RegisterFlags(fs)
	c.OTLP.RegisterFlags(fs)
	c.Query.Engine.RegisterFlags(fs)
	c.Query.API.RegisterFlags(fs)
	c.Query.Frontend.RegisterFlags(fs)
	c.API.RegisterFlags(fs)
	c.Runtime.RegisterFlags(fs)
	c.Limits.RegisterFlags(fs)
	c.Overrides.RegisterFlags(fs)
	c.Rules.RegisterFlags(fs)
	c.Alertmanager.RegisterFlags(fs)
	c.Notifications.RegisterFlags(fs)
	flagext.MarkBasic("tenant.auth-file", "bucket.backend", "bucket.s3.endpoint", "bucket.s3.bucket", "bucket.s3.access-key",
		"bucket.s3.secret-key-file", "limits.retention-raw", "limits.retention-1m", "limits.retention-1h", "rules.files", "alertmanager.url")
}

// Validate reports the first setting that cannot work: each module's, then
// those that involve two.
func (c *Config) Validate() error {
	for _, v := range []interface{ Validate() error }{
		&c.Cluster, &c.HTTP, &c.Log, &c.Tenant, &c.Storage, &c.Compactor, &c.Write, &c.OTLP, &c.Query.Engine, &c.Query.Frontend, &c.Runtime, &c.Bucket,
	} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if c.HTTP.WriteTimeout > 0 && c.HTTP.WriteTimeout <= c.Query.Engine.Timeout {
		return errors.New("http.write-timeout must be longer than query.timeout, or every query that runs long enough to time out loses its answer")
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	for _, v := range []interface{ Validate() error }{&c.Rules, &c.Alertmanager, &c.Notifications} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// NewConfig returns an empty configuration, as config.Load fills it.
func NewConfig() config.Root { return &Config{} }

// LoadConfig builds the configuration from args (see config.Load).
func LoadConfig(args []string, output io.Writer) (*Config, error) {
	c, err := config.Load("strata", args, output, NewConfig)
	if c == nil {
		return nil, err
	}
	return c.(*Config), err
}
