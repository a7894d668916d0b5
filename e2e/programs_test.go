package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// startTimeout bounds how long any program may take to become ready.
const startTimeout = 60 * time.Second

// strataProc is a running strata process.
type strataProc struct {
	*proctest.Process
	addr string // host:port it listens on
	url  string // http://addr
	dir  string // its storage path
}

// metrics reads the process's /metrics, as testutil.Metric and
// RequireMetric read a registry.
func (s *strataProc) metrics() prometheus.Gatherer { return testutil.Scrape(s.url + "/metrics") }

// startStrata starts the strata binary built by TestMain on addr (a fresh
// port when empty) with its data in dir, plus extra flags, and waits until it
// is ready. Starting it again with the same addr and dir is a restart.
// The test fails if the race-enabled binary reported a data race.
func startStrata(t *testing.T, addr, dir string, extra ...string) *strataProc {
	t.Helper()
	return startStrataEnv(t, nil, addr, dir, extra...)
}

// startStrataEnv is startStrata with environment variables added.
func startStrataEnv(t *testing.T, env []string, addr, dir string, extra ...string) *strataProc {
	t.Helper()
	if addr == "" {
		addr = proctest.FreeAddr(t)
	}
	args := append([]string{
		"-http.listen-address", addr,
		"-storage.path", dir,
		"-log.level", "info",
	}, extra...)
	p := proctest.StartEnv(t, "strata", strataBin, env, args...)
	t.Cleanup(func() {
		// Runs before the process cleanup registered earlier, so the log
		// printed on failure shows the race report too.
		p.KillCheckRace(t)
	})
	s := &strataProc{Process: p, addr: addr, url: "http://" + addr, dir: dir}
	p.WaitHTTP(t, s.url+"/-/ready", startTimeout)
	return s
}

// prometheus2Bin returns Prometheus 2 (the Debian package's prometheus on PATH).
func prometheus2Bin(t *testing.T) string {
	t.Helper()
	bin := proctest.RequireProgram(t, "prometheus")
	t.Logf("Prometheus 2: %s (%s)", bin, proctest.Version(bin))
	return bin
}

// prometheus3Bin returns Prometheus 3: $STRATA_PROMETHEUS3, by default
// $HOME/.cache/strata/bin/prometheus, as scripts/deps.sh builds it.
func prometheus3Bin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("STRATA_PROMETHEUS3")
	if bin == "" {
		cache := os.Getenv("STRATA_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatalf("find Prometheus 3: no STRATA_PROMETHEUS3 and no home directory (%v); run `make deps`", err)
			}
			cache = filepath.Join(home, ".cache", "strata")
		}
		bin = filepath.Join(cache, "bin", "prometheus")
	}
	st, err := os.Stat(bin)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("Prometheus 3 is needed by this test and was not found at %s (STRATA_PROMETHEUS3); run `make deps` (scripts/deps.sh) to build it", bin)
	}
	t.Logf("Prometheus 3: %s", bin)
	return bin
}

// promProc is a running Prometheus server.
type promProc struct {
	*proctest.Process
	addr string
	url  string
}

// startPrometheus starts Prometheus binary bin on addr with configuration
// configYAML (written to a file) and a fresh TSDB directory, plus extra
// flags, and waits until it is ready. name names it in logs.
func startPrometheus(t *testing.T, name, bin, addr, configYAML string, extra ...string) *promProc {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(configYAML), 0o644); err != nil {
		t.Fatalf("write %s: %v", cfg, err)
	}
	args := append([]string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=info",
	}, extra...)
	p := proctest.Start(t, name, bin, args...)
	pp := &promProc{Process: p, addr: addr, url: "http://" + addr}
	p.WaitHTTP(t, pp.url+"/-/ready", startTimeout)
	return pp
}

// startNodeExporter starts node exporter with a small, fixed set of
// collectors (enough for the queries of the tests, cheap to scrape every
// second) and returns its address.
func startNodeExporter(t *testing.T) string {
	t.Helper()
	bin := proctest.RequireProgram(t, "prometheus-node-exporter")
	addr := proctest.FreeAddr(t)
	p := proctest.Start(t, "node-exporter", bin,
		"--web.listen-address="+addr,
		"--collector.disable-defaults",
		"--collector.cpu",
		"--collector.meminfo",
		"--collector.loadavg",
		"--collector.stat",
		"--collector.time",
		"--collector.uname",
		"--collector.vmstat",
	)
	p.WaitHTTP(t, "http://"+addr+"/metrics", startTimeout)
	return addr
}
