package load

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Machine describes the computer the benchmark ran on.
func Machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		mem = strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores visible to Go, %s RAM, Linux %s, %s/%s", cpu, runtime.NumCPU(), mem, kernel, runtime.GOOS, runtime.GOARCH)
}

// Report holds what the report says besides the figures.
type Report struct {
	Machine, PrometheusVersion, StrataVersion, GoVersion string
	Data                                                 *Data
	Senders, QueryRuns                                   int
}

func ratioMark(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// Write writes the results as Markdown.
func (r *Report) Write(w io.Writer, res *Results) {
	d := r.Data
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Strata vs Prometheus 3: `make bench` results\n\n")
	p("Run %s UTC, took %v (data generation not included).\n\n", res.Started.UTC().Format("2006-01-02 15:04"), res.Duration.Round(time.Second))
	p("- Machine: %s. The machine is shared: other processes ran alongside, which affects wall times (query latency) more than CPU-time figures.\n", r.Machine)
	p("- Prometheus: %s.\n", r.PrometheusVersion)
	p("- Strata: %s, %s.\n", r.StrataVersion, r.GoVersion)
	p("- Data: %d active series (%d node-exporter-shaped hosts), %d scrapes %v apart (%v), %d samples; %d samples per request, %d requests per protocol; %d concurrent senders. Bodies: RW1.0 %.1f MiB, RW2.0 %.1f MiB (snappy).\n\n",
		len(d.Series), d.Hosts(), d.Spec.Steps, time.Duration(d.Spec.IntervalMs)*time.Millisecond, time.Duration(int64(d.Spec.Steps)*d.Spec.IntervalMs)*time.Millisecond,
		d.Samples, d.Spec.BatchSamples, requests(d), r.Senders, float64(d.V1Bytes)/(1<<20), float64(d.V2Bytes)/(1<<20))

	p("## Figures\n\n")
	p("Ratio is Strata ÷ Prometheus. For ingest higher is better; for the others lower is better.\n\n")
	p("| figure | Prometheus 3 | Strata | ratio | target | |\n|---|---:|---:|---:|---:|---|\n")
	for _, ph := range res.Phases {
		a, b := ph.Prometheus.SamplesPerCPUSecond(d.Samples), ph.Strata.SamplesPerCPUSecond(d.Samples)
		p("| %s ingest, samples per CPU-second | %.0f | %.0f | %.2f× | ≥ 2.2× | %s |\n", ph.Protocol, a, b, b/a, ratioMark(b/a >= 2.2))
	}
	for _, ph := range res.Phases {
		a := float64(ph.Prometheus.BlockBytes) / float64(d.Samples)
		b := float64(ph.Strata.BlockBytes) / float64(d.Samples)
		p("| disk, bytes per sample in blocks (%s data) | %.3f | %.3f | %.2f× | ≤ 0.6× | %s |\n", ph.Protocol, a, b, b/a, ratioMark(b/a <= 0.6))
	}
	for _, ph := range res.Phases {
		a := float64(ph.Prometheus.RSS) / float64(len(d.Series))
		b := float64(ph.Strata.RSS) / float64(len(d.Series))
		p("| memory, resident bytes per active series (after %s ingest) | %.0f | %.0f | %.2f× | ≤ 0.7× | %s |\n", ph.Protocol, a, b, b/a, ratioMark(b/a <= 0.7))
	}
	for _, ph := range res.Phases {
		a := float64(ph.Prometheus.PeakRSS) / float64(len(d.Series))
		b := float64(ph.Strata.PeakRSS) / float64(len(d.Series))
		p("| memory, peak resident bytes per active series (%s ingest) | %.0f | %.0f | %.2f× | | |\n", ph.Protocol, a, b, b/a)
	}
	for _, ph := range res.Phases {
		a := float64(ph.Prometheus.LiveHeap) / float64(len(d.Series))
		b := float64(ph.Strata.LiveHeap) / float64(len(d.Series))
		p("| memory, live Go heap bytes per active series after a forced collection (after %s ingest) | %.0f | %.0f | %.2f× | | |\n", ph.Protocol, a, b, b/a)
	}
	for _, ph := range res.Phases {
		a := float64(ph.Prometheus.RSS-ph.Prometheus.IdleRSS) / float64(len(d.Series))
		b := float64(ph.Strata.RSS-ph.Strata.IdleRSS) / float64(len(d.Series))
		p("| memory, resident bytes per active series above the idle process (after %s ingest) | %.0f | %.0f | %.2f× | | |\n", ph.Protocol, a, b, b/a)
	}
	if len(res.Queries) > 0 {
		var a, b time.Duration
		for _, q := range res.Queries {
			a += q.Prometheus
			b += q.Strata
		}
		ratio := b.Seconds() / a.Seconds()
		p("| query set, sum of median latencies | %v | %v | %.2f× | ≤ 0.45× | %s |\n", a.Round(time.Millisecond), b.Round(time.Millisecond), ratio, ratioMark(ratio <= 0.45))
	}
	p("\nIngest detail (Go heap in use is go_memstats_heap_inuse_bytes of each server's /metrics after the ingest; live heap is go_memstats_alloc_bytes right after a collection the load tool asks for, read after every other memory figure):\n\n| phase | system | CPU | wall | idle RSS | RSS after ingest | peak RSS | Go heap in use | live heap | blocks |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, ph := range res.Phases {
		for _, s := range []struct {
			name string
			f    SystemFigures
		}{{"Prometheus 3", ph.Prometheus}, {"Strata", ph.Strata}} {
			p("| %s | %s | %v | %v | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %d (%.1f MiB) |\n", ph.Protocol, s.name, s.f.CPU.Round(10*time.Millisecond), s.f.Wall.Round(10*time.Millisecond),
				float64(s.f.IdleRSS)/(1<<20), float64(s.f.RSS)/(1<<20), float64(s.f.PeakRSS)/(1<<20), float64(s.f.HeapInuse)/(1<<20), float64(s.f.LiveHeap)/(1<<20), s.f.Blocks, float64(s.f.BlockBytes)/(1<<20))
		}
	}
	if len(res.Queries) > 0 {
		p("\n## Queries\n\nRange queries over the ingested data (step %v), after the %s ingest, both systems answering from their heads. Median of %d runs each, after one untimed run whose answers are compared (the `data` of both JSON responses byte for byte).\n\n", QueryStep, res.Phases[len(res.Phases)-1].Protocol, r.QueryRuns)
		p("| query | series | Prometheus 3 | Strata | ratio | same answer |\n|---|---:|---:|---:|---:|---|\n")
		for _, q := range res.Queries {
			same := "yes"
			if !q.Same {
				same = "**NO**"
			}
			if q.Diff != "" {
				same += ": " + q.Diff
			}
			p("| `%s` | %d | %v | %v | %.2f× | %s |\n", strings.ReplaceAll(q.Query, "|", `\|`), q.Series, q.Prometheus.Round(100*time.Microsecond), q.Strata.Round(100*time.Microsecond), q.Strata.Seconds()/q.Prometheus.Seconds(), same)
		}
	}
	p("\n%s", methodology)
}

func requests(d *Data) int {
	n := 0
	for _, s := range d.V1 {
		n += len(s)
	}
	return n
}

// AllSame reports whether every compared query had the same answer on both systems.
func (res *Results) AllSame() bool {
	for _, q := range res.Queries {
		if !q.Same {
			return false
		}
	}
	return true
}

const methodology = `## What is measured, and how

Each protocol phase starts a fresh Prometheus 3 and a fresh Strata, each in an empty
data directory, and sends both exactly the same pre-generated request bodies (one
system after the other), one scrape step at a time (the first step, which creates the series, over one
connection so that both create them in the same order).

- **Ingest**: utime + stime of the server process from ` + "`/proc/<pid>/stat`" + ` (all
  threads), read before the first request and again after the last one is answered
  plus a settle period; samples sent ÷ CPU seconds. Every request must be answered
  204 by both. The load tool's own CPU is not counted for either.
- **Memory**: VmRSS from ` + "`/proc/<pid>/status`" + ` after the settle period that follows
  both ingests (the median of 7 readings a second apart), ÷ active series; also
  the peak (VmHWM) and the increase over the idle process. The load tool asks neither
  process to collect garbage (Prometheus cannot be). Each runs with its own defaults:
  both GOGC 75 and an automatic Go memory limit; Strata also returns memory to the
  kernel by itself once it has allocated almost nothing for 2s after a burst
  (` + "`-runtime.release-memory-after-idle`" + `, one collection per burst; when it happens
  within the settle period its CPU is counted in the ingest). The peak is unaffected.
- **Disk**: bytes of every file of the TSDB block directories written from the
  ingested data, ÷ samples. Strata: ` + "`POST /api/v1/admin/flush`" + `
  cuts its head into blocks and ships them; every object under each block's
  prefix in its (filesystem) bucket is counted: ` + "`index.zst`" + `, ` + "`chunks/*.sc`" + `,
  meta.json, tombstones (the local copy, plain TSDB, is not counted again). Prometheus: ` + "`POST /api/v1/admin/tsdb/snapshot`" + `
  (admin API) writes its head as a block into a snapshot directory, which is counted.
  WALs, head chunk files and checkpoints are not counted for either.
- **Queries**: see above; latency is measured by the load tool around each HTTP
  request (request, evaluation, JSON encoding, transfer on the loopback interface).
  No query results are cached by either system.

## Where the differences come from

- Both systems keep samples in the same Prometheus TSDB (head, WAL, XOR chunks,
  block format), by design: Strata's local blocks stay readable by ` + "`promtool tsdb`" + `.
  Disk: Strata stores each block in its bucket in a lossless bucket form
  (package ` + "`blocks/bucketcodec`" + `): the index zstd-compressed, each XOR chunk
  re-expressed as delta-of-delta timestamps and decimal mantissas (when the
  floats round-trip exactly) compressed with zstd, and rebuilt byte for byte
  with chunkenc's XOR appender on download. The exporter's values are
  decimal (ticks / 100, ms / 1000, integer counts), which XOR cannot exploit.
- Ingest: Strata decodes remote-write bodies of the usual shape into pooled flat
  arrays instead of generated protobuf types, and caches per tenant the series
  reference of each label set it has seen (keyed by the received label bytes,
  verified on every hit), so a known series costs no label building,
  validation or head lookup by labels. The head append and the WAL write are
  the same code in both.
- Memory: the head is the same code; what differs is what each process keeps
  beside it and when memory goes back to the kernel (both heaps profiled with
  ` + "`strata-bench -profile-dir`" + `). A Go process's resident memory follows its heap's
  high-water mark: the heap grows to the live data times 1+GOGC/100 before a
  collection, and nothing collects once the ingest stops. Strata returns the
  burst's garbage and free pages to the kernel once it is quiet (above), so its
  figure after ingest is close to its live heap; its peak is not lowered.
  Full head chunks leave the Go heap for memory-mapped files on each TSDB's
  reload loop, every minute in Prometheus and every 10s in Strata: Prometheus's
  slower ingest had such passes during the ingest, Strata's had none before
  (about 60 MiB of full chunks at 100k series). Strata keeps beside the head
  the series-reference cache (43 to 85 bytes per series) and decoder pools (a
  few MiB); its exemplar ring (about 6 MiB per tenant) is allocated on the
  tenant's first exemplar (the load has none; Prometheus stores none by default).
- Queries: the same PromQL engine (same version) evaluates both, over the same
  head. Strata evaluates a tenant without query limits on an engine without
  the per-sample cost guards, and splits range queries whose aggregation
  groups can be kept whole (by the grouping labels; count and group by
  series) into one part per core, evaluated concurrently; each group is
  evaluated whole in storage order, so answers stay byte-identical. Queries
  that cannot be split that way (sum, avg, quantile, topk without grouping)
  run as one part. Range functions over a selector (rate), instant
  selectors, and count over an instant selector are evaluated where the
  samples are read (promqlengine/pushdown.go): each series is read once, and
  the upstream function is called on each step's window, a slice of it,
  instead of going through the engine's buffered iterators; the engine
  evaluates the rest (aggregations, arithmetic). The binary is built with
  profile-guided optimisation (cmd/strata/strata.pgo).
`
