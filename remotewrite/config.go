package remotewrite

import (
	"errors"
	"flag"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Config configures the remote-write receiver.
type Config struct {
	MaxBodyBytes  int64          `yaml:"max_body_bytes"`
	MaxFutureTime model.Duration `yaml:"max_future_time"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxBodyBytes, "remote-write.max-body-bytes", DefaultMaxBodyBytes, "Largest accepted remote-write body, compressed and decompressed; larger ones get 413.")
	flagext.DurationVar(fs, &c.MaxFutureTime, "remote-write.max-future-time", 10*time.Minute, "How far in the future a sample's timestamp may be.")
}

// Validate reports a setting that cannot work.
func (c *Config) Validate() error {
	if c.MaxBodyBytes <= 0 {
		return errors.New("remote-write.max-body-bytes must be positive")
	}
	return nil
}
