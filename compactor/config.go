package compactor

import (
	"errors"
	"flag"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Config configures the compactor of a Strata process. Retention is a
// per-tenant limit (package limits), the levels come from the store's
// block duration.
type Config struct {
	Enabled         bool           `yaml:"enabled"`
	Interval        model.Duration `yaml:"interval"`
	DeletionDelay   model.Duration `yaml:"deletion_delay"`
	CompactionDelay model.Duration `yaml:"compaction_delay"`
	RetentionGrace  model.Duration `yaml:"retention_grace"`
	LockTTL         model.Duration `yaml:"lock_ttl"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "compactor.enabled", true, "Run the compactor in this process: merge, downsample and expire blocks in the bucket.")
	flagext.DurationVar(fs, &c.Interval, "compactor.interval", 5*time.Minute, "How often the compactor runs.")
	flagext.DurationVar(fs, &c.DeletionDelay, "compactor.deletion-delay", time.Hour, "How long replaced blocks stay in the bucket after being marked; longer than any query and than -storage.bucket-sync-interval.")
	flagext.DurationVar(fs, &c.RetentionGrace, "compactor.retention-grace", time.Hour, "How long after its newest data was written a raw block past raw retention is still kept, so that samples arriving again for its range (a WAL replayed after a crash, a resent backfill) are merged with it once instead of being added to the 1m and 1h aggregates twice. Matters for backfilled history; live data is far from raw retention. 0 keeps none.")
	flagext.DurationVar(fs, &c.LockTTL, "compactor.lock-ttl", 10*time.Minute, "How long a tenant's lock in the bucket outlives its holder's last renewal: a compactor that dies while compacting a tenant keeps others off it this long. In a cluster the compactors' ring gives each tenant to one compactor; the lock is the second guard.")
	flagext.DurationVar(fs, &c.CompactionDelay, "compactor.compaction-delay", 4*time.Hour, "How long after a time window ends before its blocks are merged (all its blocks shipped by then).")
}

// Validate reports a setting that cannot work.
func (c *Config) Validate() error {
	if c.Enabled && c.Interval <= 0 {
		return errors.New("compactor.interval must be positive")
	}
	if c.Enabled && time.Duration(c.LockTTL) < 4*time.Second {
		return errors.New("compactor.lock-ttl must be at least 4s: the lock is renewed every quarter of it")
	}
	return nil
}
