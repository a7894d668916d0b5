package memory

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeHeap is a scripted runtime: a live heap of fixed size, garbage that
// grows with what is allocated, and free pages; a release collects the
// garbage and returns the free pages.
type fakeHeap struct {
	s        Stats
	released int
}

func (f *fakeHeap) read() Stats { return f.s }

func (f *fakeHeap) alloc(n uint64) {
	f.s.Allocs += n
	f.s.Objects += n
}

func (f *fakeHeap) release() {
	f.released++
	f.s.Released += f.s.Free + f.s.Objects - f.s.Live
	f.s.Objects, f.s.Free = f.s.Live, 0
}

const mib = 1 << 20

func TestReleaserStep(t *testing.T) {
	// One tick is 250ms (idle 1s / 4); quiet is under 1 MiB/s, i.e. 256 KiB
	// per tick; a 100 MiB live heap needs 25 MiB reclaimable.
	const k = 1 << 10
	for _, tc := range []struct {
		name  string
		heap  Stats
		alloc []uint64 // bytes allocated before each step
		want  []bool   // whether each step releases
	}{
		{
			name:  "quiet after a burst: release once after the idle time",
			heap:  Stats{Live: 100 * mib, Objects: 100 * mib},
			alloc: []uint64{50 * mib, 50 * mib, 0, 0, 0, 100 * k, 0, 0, 0, 0, 0},
			want:  []bool{false, false, false, false, false, true, false, false, false, false, false},
		},
		{
			name:  "never quiet: no release",
			heap:  Stats{Live: 100 * mib, Objects: 100 * mib},
			alloc: []uint64{10 * mib, 10 * mib, 10 * mib, 10 * mib, 10 * mib, 10 * mib, 10 * mib},
			want:  []bool{false, false, false, false, false, false, false},
		},
		{
			name:  "quiet but too little reclaimable: no release",
			heap:  Stats{Live: 100 * mib, Objects: 110 * mib, Free: 10 * mib},
			alloc: []uint64{0, 0, 0, 0, 0, 0},
			want:  []bool{false, false, false, false, false, false},
		},
		{
			name:  "allocation below the quiet rate, too little reclaimable: no release",
			heap:  Stats{Live: 8 * mib, Objects: 8 * mib, Free: 4 * mib},
			alloc: []uint64{0, 0, 0, 200 * k, 200 * k, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			want:  []bool{false, false, false, false, false, false, false, false, false, false, false, false, false, false, false},
		},
		{
			name:  "a small heap needs 16 MiB reclaimable",
			heap:  Stats{Live: 8 * mib, Objects: 8*mib + 12*mib + mib/2, Free: 3 * mib},
			alloc: []uint64{0, 0, 0, 0, 200 * k, 200 * k, 200 * k, 200 * k, 200 * k},
			want:  []bool{false, false, false, false, false, false, true, false, false},
		},
		{
			name:  "a second burst after a release: released again",
			heap:  Stats{Live: 100 * mib, Objects: 150 * mib},
			alloc: []uint64{0, 0, 0, 0, 0, 100 * mib, 0, 0, 0, 0, 0},
			want:  []bool{false, false, false, false, true, false, false, false, false, true, false},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			r := NewReleaser(time.Second, slog.New(slog.DiscardHandler), reg)
			h := &fakeHeap{s: tc.heap}
			r.read, r.release = h.read, h.release
			now := time.Unix(1000, 0)
			var releases int
			for i, want := range tc.want {
				h.alloc(tc.alloc[i])
				if got := r.step(now); got != want {
					t.Errorf("step %d: released %v, want %v", i, got, want)
				}
				if want {
					releases++
				}
				now = now.Add(r.tick)
			}
			if h.released != releases {
				t.Errorf("release called %d times, want %d", h.released, releases)
			}
			if got := testutil.ToFloat64(r.releases); got != float64(releases) {
				t.Errorf("strata_memory_releases_total = %v, want %d", got, releases)
			}
		})
	}
}

func TestNewReleaserDisabled(t *testing.T) {
	if r := NewReleaser(0, slog.New(slog.DiscardHandler), nil); r != nil {
		t.Fatal("idle 0 must disable the releaser")
	}
}

var sink [][]byte

// TestReleaserReturnsMemory runs the releaser against the real runtime: after
// a burst of allocation that leaves garbage, it returns memory to the OS.
func TestReleaserReturnsMemory(t *testing.T) {
	// A burst: 256 MiB allocated, 64 MiB of which stay live until the burst ends.
	for i := range 4096 {
		b := make([]byte, 64<<10)
		if i%4 == 0 {
			sink = append(sink, b)
		}
	}
	sink = nil
	before := ReadStats()
	if before.Reclaimable() < minReclaimBytes {
		// A collection ran at the very end of the burst; make garbage again.
		for range 1024 {
			sink = append(sink, make([]byte, 64<<10))
		}
		sink = nil
		before = ReadStats()
	}
	reg := prometheus.NewRegistry()
	r := NewReleaser(200*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	now := time.Now()
	r.step(now)
	released := false
	for i := 0; i < 20 && !released; i++ {
		now = now.Add(r.tick)
		released = r.step(now)
	}
	if !released {
		t.Fatalf("no release after a burst; stats before: %+v, now: %+v", before, ReadStats())
	}
	after := ReadStats()
	if after.Released <= before.Released {
		t.Errorf("heap released to the OS: before %d, after %d bytes", before.Released, after.Released)
	}
	if after.Reclaimable() >= before.Reclaimable() {
		t.Errorf("reclaimable memory: before %d, after %d bytes", before.Reclaimable(), after.Reclaimable())
	}
	if got := testutil.ToFloat64(r.released); got <= 0 {
		t.Errorf("strata_memory_released_bytes_total = %v, want > 0", got)
	}
	runtime.KeepAlive(sink)
}

// BenchmarkReleaserStep is the cost of one tick of the releaser when no
// release is due (runtime/metrics read, no stop of the world).
func BenchmarkReleaserStep(b *testing.B) {
	r := NewReleaser(2*time.Second, slog.New(slog.DiscardHandler), nil)
	r.release = func() { b.Fatal("released during the benchmark") }
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond) // never quiet for 2s of ticks
		r.quietSince = now
		r.step(now)
	}
}
