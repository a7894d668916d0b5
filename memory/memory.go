// Package memory owns the Go runtime's memory settings of a Strata process
// and the return of memory to the operating system after a burst of work.
//
// A Go process's resident memory is set by its heap's high-water mark, not by
// what it keeps live: the garbage collector lets the heap grow to the live
// heap times 1+GOGC/100 before collecting, and pages freed by a collection
// stay resident until the runtime's scavenger returns them, which it does
// only for memory well above the current heap goal. After an ingest burst
// stops, no allocation triggers another collection (the runtime forces one
// only after two minutes), so the burst's garbage stays resident.
//
// The package sets three things, each a configuration setting:
//   - GOGC (Prometheus uses 75 by default; Go's default is 100);
//   - the soft memory limit (debug.SetMemoryLimit, GOMEMLIMIT), by default
//     a ratio of the container's or machine's memory, as Prometheus's
//     auto-gomemlimit does;
//   - a Releaser: once the process has allocated almost nothing for a while
//     after a burst that left much reclaimable memory, it collects garbage
//     and returns the free memory to the OS (debug.FreeOSMemory), once per
//     burst.
package memory

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// DefaultGOGC is the garbage collector's target percentage unless the
// GOGC environment variable or the configuration says otherwise: Prometheus's
// default, which keeps the heap's overshoot above its live data at 75%.
const DefaultGOGC = 75

// GOGCFromEnv returns the GOGC environment variable when it is set to a
// number ("off" is -1), else DefaultGOGC: the default of -runtime.gogc.
func GOGCFromEnv() int {
	v := os.Getenv("GOGC")
	if v == "off" {
		return -1
	}
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	return DefaultGOGC
}

// Settings are the process's Go memory settings.
type Settings struct {
	// GOGC is the garbage collector's target percentage; negative turns the
	// collector off (not advised).
	GOGC int
	// Limit is the soft memory limit in bytes; 0 derives it from the
	// container's (cgroup) or else the machine's memory times LimitRatio.
	Limit int64
	// LimitRatio is the share of the container's or machine's memory used
	// as the limit when Limit is 0; 0 sets no limit.
	LimitRatio float64
}

// Validate reports a setting that cannot work.
func (s Settings) Validate() error {
	switch {
	case s.Limit < 0:
		return errors.New("runtime.memory-limit must not be negative")
	case s.LimitRatio < 0 || s.LimitRatio > 1:
		return fmt.Errorf("runtime.memory-limit-ratio %v must be between 0 and 1", s.LimitRatio)
	}
	return nil
}

// Apply sets GOGC and the memory limit of the process. A GOMEMLIMIT
// environment variable takes precedence over a derived limit, as the
// runtime already applied it; an explicit Limit overrides both.
func Apply(s Settings, logger *slog.Logger) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if old := debug.SetGCPercent(s.GOGC); old != s.GOGC {
		logger.Info("updated GOGC", "old", old, "new", s.GOGC)
	}
	switch {
	case s.Limit > 0:
		debug.SetMemoryLimit(s.Limit)
		logger.Info("set the Go memory limit", "bytes", s.Limit)
	case s.LimitRatio > 0:
		limit, err := memlimit.Set(
			memlimit.WithRatio(s.LimitRatio),
			memlimit.WithProvider(memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)),
			memlimit.WithLogger(logger.With("library", "automemlimit")),
		)
		if err != nil {
			// Not fatal: the process runs without a limit, as Go's default.
			logger.Warn("could not derive the Go memory limit from the container's or machine's memory", "err", err)
			return nil
		}
		logger.Info("Go memory limit", "bytes", limit, "ratio", s.LimitRatio)
	}
	return nil
}
