package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is one benchmark run.
type Config struct {
	PrometheusBin, StrataBin string
	// WorkDir holds the servers' data; it is removed after each phase
	// unless KeepData is set.
	WorkDir  string
	KeepData bool
	Data     *Data
	// Senders is the number of concurrent remote-write connections.
	Senders int
	// QueryRuns is how many timed runs of the query set are made.
	QueryRuns int
	// Settle is how long to wait after ingest before CPU and memory are read,
	// so that work the servers finish asynchronously is counted.
	Settle time.Duration
	// Progress receives progress messages.
	Progress io.Writer
	// ProfileDir, when set, receives each server's Go heap profile
	// (/debug/pprof/heap) and /metrics after each ingest, taken the same way
	// from both right after their resident memory is read:
	// <ProfileDir>/<protocol>-<server>.heap.pb.gz and .metrics.txt.
	ProfileDir string
	// CPUProfileDir, when set, receives CPU profiles of Strata taken in
	// 1s slices while it ingests and while it answers the query set
	// (<CPUProfileDir>/<protocol>-ingest-NNN.pprof, queries-NNN.pprof), the
	// input of the binary's profile-guided optimisation (make pgo).
	// Profiling costs Strata CPU: the figures of such a run are not fair.
	CPUProfileDir string
}

// SystemFigures are the figures of one system in one phase.
type SystemFigures struct {
	CPU       time.Duration // CPU time of the ingest
	Wall      time.Duration // wall time of the ingest
	IdleRSS   int64         // resident memory before the ingest
	RSS       int64         // resident memory after the ingest
	PeakRSS   int64         // peak resident memory (start-up and ingest)
	HeapInuse int64         // Go heap in use after the ingest, from /metrics
	// LiveHeap is the Go heap's live bytes (go_memstats_alloc_bytes) right
	// after a collection the load tool asks for (/debug/pprof/heap?gc=1),
	// once every other memory figure has been read: what each process keeps,
	// whatever its GC settings and whether it returns memory to the kernel.
	LiveHeap   int64
	BlockBytes int64
	Blocks     int
}

// SamplesPerCPUSecond is the ingest efficiency.
func (f SystemFigures) SamplesPerCPUSecond(samples int) float64 {
	return float64(samples) / f.CPU.Seconds()
}

// Phase is the ingest of the data with one protocol into fresh servers.
type Phase struct {
	Protocol           Protocol
	Prometheus, Strata SystemFigures
}

// rssReadings is how many readings of resident memory are taken after ingest.
const rssReadings = 7

// Results are the figures of a run.
type Results struct {
	Started  time.Time
	Duration time.Duration
	Phases   []Phase
	Queries  []QueryResult
}

func (c *Config) logf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// Run ingests the data with remote write 1.0 and then 2.0, each into a
// fresh Prometheus and a fresh Strata, measuring both; after the 2.0
// ingest it runs the query set.
func Run(ctx context.Context, c Config) (*Results, error) {
	res := &Results{Started: time.Now()}
	for i, p := range []Protocol{RW1, RW2} {
		ph, q, err := c.phase(ctx, p, i == 1)
		if err != nil {
			return nil, fmt.Errorf("%s phase: %w", p, err)
		}
		res.Phases = append(res.Phases, *ph)
		if q != nil {
			res.Queries = q
		}
	}
	res.Duration = time.Since(res.Started)
	return res, nil
}

func (c *Config) phase(ctx context.Context, p Protocol, queries bool) (*Phase, []QueryResult, error) {
	dir := filepath.Join(c.WorkDir, string(p))
	if err := os.RemoveAll(dir); err != nil {
		return nil, nil, fmt.Errorf("clean %s: %w", dir, err)
	}
	if !c.KeepData {
		defer os.RemoveAll(dir)
	}
	prom, err := StartPrometheus(ctx, c.PrometheusBin, filepath.Join(dir, "prometheus"))
	if err != nil {
		return nil, nil, err
	}
	defer prom.Stop()
	// The query set is asked again and again over one range of past data:
	// the front end would answer the repeats from its cache. This bench
	// measures evaluation against Prometheus, which has no cache, so the
	// front end is off (make bench-dashboard measures it).
	strata, err := StartStrata(ctx, c.StrataBin, filepath.Join(dir, "strata"), "-query.split-interval=0")
	if err != nil {
		return nil, nil, err
	}
	defer strata.Stop()
	ph := &Phase{Protocol: p}
	figs := map[*Server]*SystemFigures{prom: &ph.Prometheus, strata: &ph.Strata}
	servers := []*Server{prom, strata}
	time.Sleep(c.Settle)
	for _, s := range servers {
		f := figs[s]
		if f.IdleRSS, err = RSS(s.Pid()); err != nil {
			return nil, nil, err
		}
	}
	for _, s := range servers {
		f := figs[s]
		c.logf("%s: sending %d samples to %s", p, c.Data.Samples, s.Name)
		cpu0, err := CPUTime(s.Pid())
		if err != nil {
			return nil, nil, err
		}
		stop := c.profileCPU(ctx, s, string(p)+"-ingest")
		f.Wall, err = Send(ctx, s.URL, c.Data, p, c.Senders)
		if perr := stop(); err == nil {
			err = perr
		}
		if err != nil {
			return nil, nil, err
		}
		time.Sleep(c.Settle)
		cpu1, err := CPUTime(s.Pid())
		if err != nil {
			return nil, nil, err
		}
		f.CPU = cpu1 - cpu0
		c.logf("%s: %s took %v wall, %v CPU: %.0f samples per CPU-second", p, s.Name, f.Wall.Round(time.Millisecond), f.CPU, f.SamplesPerCPUSecond(c.Data.Samples))
	}
	// Resident memory moves with each garbage collection: the figure is the
	// median of rssReadings readings a second apart, of both servers alike.
	rss := map[*Server][]int64{}
	for i := range rssReadings {
		if i > 0 {
			time.Sleep(time.Second)
		}
		for _, s := range servers {
			v, err := RSS(s.Pid())
			if err != nil {
				return nil, nil, err
			}
			rss[s] = append(rss[s], v)
		}
	}
	for _, s := range servers {
		f := figs[s]
		if f.PeakRSS, err = PeakRSS(s.Pid()); err != nil {
			return nil, nil, err
		}
		// The kernel records VmHWM only at some events (unmapping, exit),
		// from counters that are approximate, and reports the larger of it
		// and the current VmRSS: read after the readings, it can be below
		// one of them (seen in CI: 76 KiB below). The peak is at least each.
		f.PeakRSS = max(f.PeakRSS, slices.Max(rss[s]))
		if f.HeapInuse, err = metricValue(ctx, s.URL, "go_memstats_heap_inuse_bytes"); err != nil {
			return nil, nil, err
		}
		slices.Sort(rss[s])
		f.RSS = rss[s][len(rss[s])/2]
		c.logf("%s: %s resident memory %d MiB (idle %d MiB; readings %d..%d MiB)", p, s.Name, f.RSS>>20, f.IdleRSS>>20, rss[s][0]>>20, rss[s][len(rss[s])-1]>>20)
	}
	if c.ProfileDir != "" {
		for _, s := range servers {
			if err := c.saveProfiles(ctx, p, s, false); err != nil {
				return nil, nil, err
			}
		}
	}
	// The live heap last: the collection it asks for changes what the
	// figures above measure.
	for _, s := range servers {
		f := figs[s]
		if c.ProfileDir != "" {
			if err := c.saveProfiles(ctx, p, s, true); err != nil {
				return nil, nil, err
			}
		} else if err := fetchToFile(ctx, s.URL+"/debug/pprof/heap?gc=1", os.DevNull); err != nil {
			return nil, nil, err
		}
		if f.LiveHeap, err = metricValue(ctx, s.URL, "go_memstats_alloc_bytes"); err != nil {
			return nil, nil, err
		}
		c.logf("%s: %s live Go heap after a collection %d MiB", p, s.Name, f.LiveHeap>>20)
	}
	var qs []QueryResult
	if queries {
		c.logf("%s: running %d queries (%d timed runs)", p, len(Queries), c.QueryRuns)
		stop := c.profileCPU(ctx, strata, string(p)+"-queries")
		qs, err = RunQueries(ctx, prom, strata, c.Data.Spec.StartMs, c.Data.EndMs(), c.QueryRuns)
		if perr := stop(); err == nil {
			err = perr
		}
		if err != nil {
			return nil, nil, err
		}
	}
	for _, s := range servers {
		f := figs[s]
		if err := s.Flush(ctx); err != nil {
			return nil, nil, err
		}
		if f.BlockBytes, f.Blocks, err = s.BlockBytes(); err != nil {
			return nil, nil, err
		}
		c.logf("%s: %s blocks: %d bytes in %d block(s), %.3f bytes per sample", p, s.Name, f.BlockBytes, f.Blocks, float64(f.BlockBytes)/float64(c.Data.Samples))
	}
	return ph, qs, nil
}

// metricValue reads the value of an unlabelled metric from the server's /metrics.
func metricValue(ctx context.Context, base, metric string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read metrics of %s: %w", base, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), metric+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("metrics of %s: %w", base, err)
			}
			return int64(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics of %s: %w", base, err)
	}
	return 0, fmt.Errorf("no %s in the metrics of %s", metric, base)
}

// saveProfiles writes the Go heap profile and the /metrics of s to
// c.ProfileDir. Without live, the heap profile is as of the server's last
// garbage collection and fetching it leaves the server as it was; with live,
// the server collects garbage first (?gc=1), so the profile is its live heap
// (.live.heap.pb.gz, and .live.metrics.txt read after it). Live profiles are
// taken after every figure of the ingest has been read.
func (c *Config) saveProfiles(ctx context.Context, p Protocol, s *Server, live bool) error {
	if err := os.MkdirAll(c.ProfileDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", c.ProfileDir, err)
	}
	files := [][2]string{{"/debug/pprof/heap", ".heap.pb.gz"}, {"/metrics", ".metrics.txt"}}
	if live {
		files = [][2]string{{"/debug/pprof/heap?gc=1", ".live.heap.pb.gz"}, {"/metrics", ".live.metrics.txt"}}
	}
	for _, f := range files {
		path, suffix := f[0], f[1]
		name := filepath.Join(c.ProfileDir, string(p)+"-"+s.Name+suffix)
		if err := fetchToFile(ctx, s.URL+path, name); err != nil {
			return err
		}
		c.logf("%s: %s %s saved in %s", p, s.Name, path, name)
	}
	return nil
}

// profileCPU takes CPU profiles of s in 1s slices into c.CPUProfileDir,
// named after what, until the returned stop is called; only for Strata, and
// only when c.CPUProfileDir is set. The slice cut short by stop is dropped.
func (c *Config) profileCPU(ctx context.Context, s *Server, what string) (stop func() error) {
	if c.CPUProfileDir == "" || s.Name != "strata" {
		return func() error { return nil }
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		if err := os.MkdirAll(c.CPUProfileDir, 0o755); err != nil {
			done <- err
			return
		}
		for i := 0; ; i++ {
			name := filepath.Join(c.CPUProfileDir, fmt.Sprintf("%s-%03d.pprof", what, i))
			err := fetchToFile(ctx, s.URL+"/debug/pprof/profile?seconds=1", name)
			if ctx.Err() != nil {
				_ = os.Remove(name)
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	return func() error {
		cancel()
		return <-done
	}
}

func fetchToFile(ctx context.Context, url, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: status %d", url, resp.StatusCode)
	}
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return f.Close()
}
