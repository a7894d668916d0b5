package load

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// prometheus3 returns the Prometheus 3 binary the benchmark runs against,
// failing the test when it is missing.
func prometheus3(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("STRATA_PROMETHEUS3")
	if bin == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("find Prometheus 3: %v", err)
		}
		bin = filepath.Join(home, ".cache", "strata", "bin", "prometheus")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Prometheus 3 is needed and was not found at %s (STRATA_PROMETHEUS3); run `make deps`", bin)
	}
	return bin
}

// TestRunAgainstPrometheus runs the whole benchmark on a small load against
// a real Prometheus 3 and a strata binary built from the tree, and checks
// that every figure is measured and both systems store and answer alike.
func TestRunAgainstPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and builds strata")
	}
	promBin := prometheus3(t)
	strataBin := filepath.Join(t.TempDir(), "strata")
	build := exec.Command("go", "build", "-o", strataBin, "./cmd/strata")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build strata: %v\n%s", err, out)
	}
	const blockMs = 2 * 3600 * 1000
	start := (time.Now().UnixMilli() - blockMs) / blockMs * blockMs
	d, err := Generate(DataSpec{Series: 600, IntervalMs: 15000, Steps: 20, StartMs: start, BatchSamples: 200, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		PrometheusBin: promBin, StrataBin: strataBin, WorkDir: t.TempDir(),
		Data: d, Senders: 2, QueryRuns: 1, Settle: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Phases) != 2 || len(res.Queries) != len(Queries) {
		t.Fatalf("%d phases and %d query results", len(res.Phases), len(res.Queries))
	}
	for _, ph := range res.Phases {
		for name, f := range map[string]SystemFigures{"prometheus": ph.Prometheus, "strata": ph.Strata} {
			if f.CPU <= 0 || f.RSS <= 0 || f.PeakRSS < f.RSS || f.HeapInuse <= 0 || f.LiveHeap <= 0 || f.Blocks != 1 || f.BlockBytes <= 0 {
				t.Errorf("%s %s: figures not all measured: %+v", ph.Protocol, name, f)
			}
		}
		// Same samples, same block written; Strata's bucket holds it in the
		// bucket form (zstd index, transcoded chunks), which is smaller.
		if ph.Strata.BlockBytes >= ph.Prometheus.BlockBytes {
			t.Errorf("%s: Strata's bucket block of %d bytes is not smaller than Prometheus's %d bytes from the same samples", ph.Protocol, ph.Strata.BlockBytes, ph.Prometheus.BlockBytes)
		}
	}
	for _, q := range res.Queries {
		if !q.Same {
			t.Errorf("query %s answered differently: %s", q.Query, q.Diff)
		}
		if q.Prometheus <= 0 || q.Strata <= 0 {
			t.Errorf("query %s not timed", q.Query)
		}
	}
	var buf bytes.Buffer
	(&Report{Machine: Machine(), Data: d, Senders: 2, QueryRuns: 1}).Write(&buf, res)
	for _, want := range []string{"RW1.0 ingest, samples per CPU-second", "RW2.0 ingest", "query set", "bytes per sample"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
}
