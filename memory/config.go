package memory

import (
	"errors"
	"flag"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Config configures the Go runtime's memory use.
type Config struct {
	GOGC                   int            `yaml:"gogc"`
	MemoryLimit            int64          `yaml:"memory_limit"`
	MemoryLimitRatio       float64        `yaml:"memory_limit_ratio"`
	ReleaseMemoryAfterIdle model.Duration `yaml:"release_memory_after_idle"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.GOGC, "runtime.gogc", GOGCFromEnv(), "Go garbage collector target percentage (GOGC): the heap may grow this much above its live data before a collection. Defaults to the GOGC environment variable, else 75 as in Prometheus; lower values use less memory and more CPU.")
	fs.Int64Var(&c.MemoryLimit, "runtime.memory-limit", 0, "Soft limit of the Go runtime's memory in bytes (GOMEMLIMIT): the collector works harder as it is approached. 0 derives it from the container's (cgroup) or else the machine's memory times -runtime.memory-limit-ratio; a GOMEMLIMIT environment variable is then used instead.")
	fs.Float64Var(&c.MemoryLimitRatio, "runtime.memory-limit-ratio", 0.9, "Share of the container's or machine's memory used as the Go memory limit when -runtime.memory-limit is 0, as Prometheus's auto-gomemlimit; 0 sets no limit.")
	flagext.DurationVar(fs, &c.ReleaseMemoryAfterIdle, "runtime.release-memory-after-idle", 2*time.Second, "After a burst of work (ingest, a large query), once the process has allocated almost nothing for this long and much memory is reclaimable, collect garbage and return the free memory to the OS, so that resident memory falls back to what is live. 0 leaves it to the Go runtime, which collects only on allocation or every 2 minutes.")
}

// Settings returns the memory settings to apply to the process.
func (c *Config) Settings() Settings {
	return Settings{GOGC: c.GOGC, Limit: c.MemoryLimit, LimitRatio: c.MemoryLimitRatio}
}

// Validate reports a setting that cannot work.
func (c *Config) Validate() error {
	if c.ReleaseMemoryAfterIdle < 0 {
		return errors.New("runtime.release-memory-after-idle must not be negative")
	}
	return c.Settings().Validate()
}
