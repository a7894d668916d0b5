package blocks

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/tsdb/fileutil"
)

// The free-space floor.
//
// A TSDB whose disk fills does not fail gracefully: a head chunk that
// cannot be written to its memory-mapped file panics the process, and again
// at every start while the disk stays full, since replaying the WAL writes
// head chunks (Prometheus 3 does the same). Strata serves every tenant from
// one disk, so it keeps away from that edge:
//
//   - Writes are refused (ErrDiskFull, answered 503) while the data
//     directory's file system has less than Options.MinFreeBytes free. The
//     background work already under way (cutting blocks, checkpoints,
//     head chunks of accepted samples) has that much room to finish. Reads
//     are not affected.
//   - reserveFile, a file of half the floor, is kept in the data directory
//     while there is room for it. It is deleted when the disk is found
//     nearly full (at start, below the floor; while running, below the
//     reserve's own size), which gives the TSDBs room to replay their WALs
//     and serve reads after whatever else filled the disk; it is made again
//     once the free space is back above the floor plus its size.

// ErrDiskFull is returned for writes while the disk's free space is below
// the floor.
var ErrDiskFull = errors.New("not enough free disk space")

// reserveFile is the file holding the reserved space.
const reserveFile = "reserved-space"

// diskCheckInterval bounds how often the free space is measured for writes.
const diskCheckInterval = 100 * time.Millisecond

type diskGuard struct {
	dir     string
	min     int64 // the floor; 0: no floor, no reserve
	reserve int64
	logger  *slog.Logger

	mu       sync.Mutex // serializes measurements and reserve changes
	checked  atomic.Int64
	free     atomic.Int64
	low      atomic.Bool
	freeFunc func(dir string) (int64, error)

	refused prometheus.Counter
}

func newDiskGuard(dir string, minFree int64, logger *slog.Logger, reg prometheus.Registerer) *diskGuard {
	g := &diskGuard{dir: dir, min: max(minFree, 0), reserve: max(minFree, 0) / 2, logger: logger, freeFunc: freeBytes}
	f := promauto.With(reg)
	g.refused = f.NewCounter(prometheus.CounterOpts{
		Name: "strata_writes_refused_low_disk_total",
		Help: "Writes refused because the data directory's free space was below -storage.min-free-bytes.",
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_disk_free_bytes",
		Help: "Free space of the data directory's file system at the last measurement (the reserved space not counted).",
	}, func() float64 { return float64(g.free.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_disk_writes_refused",
		Help: "Whether writes are refused for low free space (1) or not (0).",
	}, func() float64 {
		if g.low.Load() {
			return 1
		}
		return 0
	})
	return g
}

// freeBytes returns the space available to unprivileged users of dir's
// file system, the space a TSDB can count on.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// check returns ErrDiskFull (wrapped) while the free space is below the floor.
func (g *diskGuard) check() error {
	if g.min == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if now-g.checked.Load() >= int64(diskCheckInterval) {
		g.measure()
	}
	if g.low.Load() {
		g.refused.Inc()
		return fmt.Errorf("%w: %d bytes free in %s, below the floor of %d bytes (-storage.min-free-bytes)", ErrDiskFull, g.free.Load(), g.dir, g.min)
	}
	return nil
}

// measure updates the free space and whether writes are refused.
func (g *diskGuard) measure() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.measureLocked()
}

func (g *diskGuard) measureLocked() int64 {
	free, err := g.freeFunc(g.dir)
	g.checked.Store(time.Now().UnixNano())
	if err != nil {
		// Unknown free space must not stop writes: the WAL reports a
		// full disk by itself.
		g.logger.Warn("measuring free disk space failed", "err", err)
		return -1
	}
	g.free.Store(free)
	low := free < g.min
	if g.low.Swap(low) != low {
		if low {
			g.logger.Warn("free disk space below the floor: refusing writes, reads are served", "free_bytes", free, "min_free_bytes", g.min)
		} else {
			g.logger.Info("free disk space above the floor again: accepting writes", "free_bytes", free, "min_free_bytes", g.min)
		}
	}
	return free
}

// maintainReserve deletes the reserved space when the disk is nearly full
// (below the floor at start, below the reserve's size while running) and
// makes it when there is room, then measures.
func (g *diskGuard) maintainReserve(atStart bool) {
	if g.min == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	free := g.measureLocked()
	if free < 0 {
		return
	}
	path := filepath.Join(g.dir, reserveFile)
	st, err := os.Stat(path)
	have := err == nil && st.Size() >= g.reserve
	switch {
	case have && (atStart && free < g.min || free < g.reserve):
		if err := os.Remove(path); err != nil {
			g.logger.Error("releasing the reserved disk space failed", "file", path, "err", err)
			return
		}
		g.logger.Warn("disk nearly full: released the reserved space so that tenants can open and serve reads; writes are refused until free space is above the floor",
			"released_bytes", st.Size(), "free_bytes", free, "min_free_bytes", g.min)
	case !have && free >= g.min+g.reserve:
		if err := reserve(path, g.reserve); err != nil {
			_ = os.Remove(path)
			g.logger.Warn("reserving disk space failed", "file", path, "bytes", g.reserve, "err", err)
			return
		}
	default:
		return
	}
	g.measureLocked()
}

// reserve makes path a file of size bytes that holds its blocks on disk.
func reserve(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	// Preallocate reserves the blocks without writing them (fallocate).
	if err := fileutil.Preallocate(f, size, true); err != nil {
		_ = f.Close()
		return fmt.Errorf("allocate %d bytes: %w", size, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
