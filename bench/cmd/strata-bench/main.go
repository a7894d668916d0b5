// Command strata-bench compares Strata with Prometheus 3 on the same
// pre-generated node-exporter-shaped remote-write load: ingest CPU, disk,
// memory and query latency. `make bench` runs it; see bench/RESULTS.md.
package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/strata-tsdb/strata/bench/load"
)

func main() {
	if err := run(); err != nil {
		slog.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		series    = flag.Int("series", 100000, "Active series (rounded up to whole node-exporter hosts).")
		duration  = flag.Duration("duration", time.Hour, "Time range of the data (at most 2h, so that it fits one block).")
		interval  = flag.Duration("interval", 15*time.Second, "Scrape interval.")
		batch     = flag.Int("batch", 2000, "Samples per remote-write request.")
		senders   = flag.Int("senders", 2, "Concurrent remote-write connections.")
		queryRuns = flag.Int("query-runs", 5, "Timed runs of the query set.")
		settle    = flag.Duration("settle", 3*time.Second, "Wait after ingest before reading CPU and memory.")
		promBin   = flag.String("prometheus", envOr("STRATA_PROMETHEUS3", filepath.Join(os.Getenv("HOME"), ".cache/strata/bin/prometheus")), "Prometheus 3 binary.")
		strataBin = flag.String("strata", "bin/strata", "Strata binary.")
		workDir   = flag.String("workdir", "", "Directory for the servers' data (default: a new temporary directory).")
		keep      = flag.Bool("keep", false, "Keep the servers' data directories.")
		out       = flag.String("out", "", "Write the Markdown report to this file too.")
		profDir   = flag.String("profile-dir", "", "Save both servers' Go heap profiles and /metrics after each ingest in this directory.")
		cpuDir    = flag.String("cpu-profile-dir", "", "Save CPU profiles of Strata during each ingest and the query set in this directory (for make pgo; the figures of such a run are skewed by the profiling).")
		small     = flag.Bool("small", false, "Quick run: 5000 series over 20 minutes, 3 query runs.")

		dashboard = flag.Bool("dashboard", false, "Run the dashboard-refresh benchmark against VictoriaMetrics instead (make bench-dashboard).")
		vmBin     = flag.String("victoria-metrics", filepath.Join(envOr("STRATA_CACHE", filepath.Join(os.Getenv("HOME"), ".cache/strata")), "bin/victoria-metrics"), "VictoriaMetrics single-node binary (dashboard benchmark).")
		dSeries   = flag.Int("dashboard-series", 10000, "Active series of the dashboard benchmark.")
		history   = flag.Duration("history", 25*time.Hour, "Data written before the dashboard's first refresh.")
		refreshes = flag.Int("refreshes", 20, "Refreshes of the dashboard, one per scrape interval.")
	)
	flag.Parse()
	if *dashboard {
		return runDashboard(*strataBin, *vmBin, *workDir, *out, *dSeries, *interval, *history, *refreshes, *batch, *senders)
	}
	if *small {
		*series, *duration, *queryRuns = 5000, 20*time.Minute, 3
	}
	if *duration > 2*time.Hour || *duration < *interval {
		return fmt.Errorf("-duration %v: must be between -interval and 2h", *duration)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *workDir == "" {
		d, err := os.MkdirTemp("", "strata-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*workDir = d
	}
	for _, b := range []string{*promBin, *strataBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("binary: %w", err)
		}
	}

	// The data lies in the past and inside one 2h block range, so that both
	// systems accept all of it and flush it into one block each.
	const blockMs = 2 * 3600 * 1000
	now := time.Now().UnixMilli()
	start := (now - blockMs) / blockMs * blockMs
	if start+duration.Milliseconds() > now-time.Minute.Milliseconds() {
		start -= blockMs
	}
	spec := load.DataSpec{
		Series: *series, IntervalMs: interval.Milliseconds(), Steps: int(*duration / *interval),
		StartMs: start, BatchSamples: *batch, Seed: 1,
	}
	t0 := time.Now()
	fmt.Fprintf(os.Stderr, "generating %d series × %d scrapes ...\n", spec.Series, spec.Steps)
	data, err := load.Generate(spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "generated %d samples in %v (RW1.0 %d MiB, RW2.0 %d MiB)\n", data.Samples, time.Since(t0).Round(time.Millisecond), data.V1Bytes>>20, data.V2Bytes>>20)

	res, err := load.Run(ctx, load.Config{
		PrometheusBin: *promBin, StrataBin: *strataBin, WorkDir: *workDir, KeepData: *keep,
		Data: data, Senders: *senders, QueryRuns: *queryRuns, Settle: *settle, Progress: os.Stderr,
		ProfileDir:    *profDir,
		CPUProfileDir: *cpuDir,
	})
	if err != nil {
		return err
	}
	rep := &load.Report{
		Machine:           load.Machine(),
		PrometheusVersion: binVersion(*promBin, "github.com/prometheus/prometheus"),
		StrataVersion:     binVersion(*strataBin, ""),
		GoVersion:         goVersion(*strataBin),
		Data:              data,
		Senders:           *senders,
		QueryRuns:         *queryRuns,
	}
	var buf bytes.Buffer
	rep.Write(&buf, res)
	fmt.Fprintf(&buf, "\nTotal run time of `strata-bench` including data generation: %v.\n", time.Since(t0).Round(time.Second))
	os.Stdout.Write(buf.Bytes())
	if *out != "" {
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if !res.AllSame() {
		return fmt.Errorf("some queries answered differently on Prometheus and Strata (see the report)")
	}
	return nil
}

func runDashboard(strataBin, vmBin, workDir, out string, series int, interval, history time.Duration, refreshes, batch, senders int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, b := range []string{strataBin, vmBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("binary: %w (VictoriaMetrics: make bench-dashboard builds it)", err)
		}
	}
	if workDir == "" {
		d, err := os.MkdirTemp("", "strata-dashboard-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		workDir = d
	}
	cfg := load.DashboardConfig{
		StrataBin: strataBin, VictoriaBin: vmBin, WorkDir: filepath.Join(workDir, "dashboard"),
		Series: series, Interval: interval, History: history, Refreshes: refreshes,
		Windows:      []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour},
		BatchSamples: batch, Senders: senders, Progress: os.Stderr,
	}
	res, err := load.RunDashboard(ctx, cfg)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	load.WriteDashboard(&buf, cfg, res, load.Machine(), binVersion(strataBin, ""), binVersion(vmBin, "github.com/VictoriaMetrics/VictoriaMetrics"))
	os.Stdout.Write(buf.Bytes())
	if out != "" {
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if res.Differ > 0 {
		return fmt.Errorf("%d of Strata's cached answers differ from its uncached ones (see the report)", res.Differ)
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// binVersion describes a Go binary from its build information: the version
// of module mod, or the VCS revision of its main module when mod is "".
func binVersion(bin, mod string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return bin
	}
	if mod != "" {
		for _, d := range bi.Deps {
			if d.Path == mod {
				return fmt.Sprintf("%s built from %s %s", bin, mod, d.Version)
			}
		}
		if bi.Main.Path == mod {
			return fmt.Sprintf("%s built from %s %s", bin, mod, bi.Main.Version)
		}
		return bin
	}
	rev, dirty := "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (with uncommitted changes)"
			}
		}
	}
	if rev == "" {
		// Without VCS stamping (e.g. in a git worktree), ask git about the
		// tree the binary was built from (make bench builds it just before).
		if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
			rev = strings.TrimSpace(string(out))
		}
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			dirty = " (with uncommitted changes)"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return fmt.Sprintf("%s at commit %s%s", bin, rev, dirty)
}

func goVersion(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown Go version"
	}
	return "built with " + bi.GoVersion
}
