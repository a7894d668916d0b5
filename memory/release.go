package memory

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Releaser returns memory to the operating system once a burst of work is
// over: when the process has allocated less than a quiet rate for Idle, and
// garbage plus free heap pages (the resident memory a collection and the
// scavenger would give back) exceed both minReclaimBytes and a quarter of the
// live heap, it collects garbage and returns all free pages to the OS with
// debug.FreeOSMemory.
//
// Each release costs one garbage collection and, when the next burst comes,
// the page faults of growing the heap again. It happens at most once per
// quiet spell, and only when enough memory is reclaimable: a release leaves
// nearly nothing reclaimable, so the next one needs as much garbage again.
type Releaser struct {
	idle   time.Duration
	tick   time.Duration
	logger *slog.Logger

	read    func() Stats
	release func()

	releases prometheus.Counter
	released prometheus.Counter
	seconds  prometheus.Counter

	// state of the loop
	lastAllocs  uint64
	quietSince  time.Time
	initialized bool
}

// Stats are the runtime's heap figures the Releaser decides on.
type Stats struct {
	Allocs   uint64 // bytes allocated since the process started
	Live     uint64 // live heap as of the last garbage collection
	Objects  uint64 // bytes in heap objects, live or not yet collected
	Free     uint64 // free heap pages still resident (not returned to the OS)
	Released uint64 // heap pages returned to the OS
}

// Reclaimable is what a collection followed by returning free pages would
// give back to the OS.
func (s Stats) Reclaimable() uint64 {
	var garbage uint64
	if s.Objects > s.Live {
		garbage = s.Objects - s.Live
	}
	return garbage + s.Free
}

const (
	// minReclaimBytes is the least reclaimable memory worth a release.
	minReclaimBytes = 16 << 20
	// quietBytesPerSecond is the allocation rate under which the process
	// counts as quiet (the background loops of an idle Strata allocate far
	// less); a live heap above 100 MiB raises it to 1% of the live heap per second.
	quietBytesPerSecond = 1 << 20
)

// NewReleaser returns a Releaser that releases after idle of quiet; nil when
// idle is 0 (releasing disabled). It registers its counters with reg.
func NewReleaser(idle time.Duration, logger *slog.Logger, reg prometheus.Registerer) *Releaser {
	if idle <= 0 {
		return nil
	}
	r := &Releaser{
		idle:    idle,
		tick:    min(max(idle/4, 50*time.Millisecond), time.Second),
		logger:  logger,
		read:    ReadStats,
		release: debug.FreeOSMemory,
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_memory_releases_total",
			Help: "Times the process returned free memory to the OS after a burst of work (-runtime.release-memory-after-idle).",
		}),
		released: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_memory_released_bytes_total",
			Help: "Heap bytes returned to the OS by those releases.",
		}),
		seconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_memory_release_seconds_total",
			Help: "Wall time spent in those releases (a garbage collection and returning pages to the OS).",
		}),
	}
	if reg != nil {
		reg.MustRegister(r.releases, r.released, r.seconds)
	}
	return r
}

// Run samples the runtime's heap figures every tick and releases memory
// when due, until ctx is done.
func (r *Releaser) Run(ctx context.Context) {
	t := time.NewTicker(r.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.step(now)
		}
	}
}

// step looks at the heap once and releases memory if due; it reports
// whether it did.
func (r *Releaser) step(now time.Time) bool {
	s := r.read()
	if !r.initialized {
		r.lastAllocs, r.quietSince, r.initialized = s.Allocs, now, true
		return false
	}
	allocated := s.Allocs - r.lastAllocs
	r.lastAllocs = s.Allocs
	quiet := uint64(float64(max(uint64(quietBytesPerSecond), s.Live/100)) * r.tick.Seconds())
	if allocated > quiet {
		r.quietSince = now
		return false
	}
	if now.Sub(r.quietSince) < r.idle {
		return false
	}
	reclaimable := s.Reclaimable()
	if reclaimable < max(uint64(minReclaimBytes), s.Live/4) {
		return false
	}
	start := time.Now()
	r.release()
	after := r.read()
	r.lastAllocs = after.Allocs
	r.releases.Inc()
	var released uint64
	if after.Released > s.Released {
		released = after.Released - s.Released
	}
	r.released.Add(float64(released))
	took := time.Since(start)
	r.seconds.Add(took.Seconds())
	r.logger.Debug("returned memory to the OS after a burst", "reclaimable_bytes", reclaimable, "released_bytes", released, "live_bytes", after.Live, "duration", took)
	return true
}

var statNames = []string{
	"/gc/heap/allocs:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
}

// ReadStats reads the heap figures from runtime/metrics, which, unlike
// runtime.ReadMemStats, does not stop the world.
func ReadStats() Stats {
	samples := make([]metrics.Sample, len(statNames))
	for i, n := range statNames {
		samples[i].Name = n
	}
	metrics.Read(samples)
	v := func(i int) uint64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return samples[i].Value.Uint64()
	}
	return Stats{Allocs: v(0), Live: v(1), Objects: v(2), Free: v(3), Released: v(4)}
}
