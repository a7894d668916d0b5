// Package stratatest starts a real Strata for the plugin's tests: it builds
// the strata binary from the repository (or takes $STRATA_BINARY), runs it on
// a free port with its own data directory and rule files, and remote-writes
// known samples into it.
package stratatest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary returns the strata binary: $STRATA_BINARY if set, else one built
// once per test process from the repository root (the parent of grafana-plugin).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if b := os.Getenv("STRATA_BINARY"); b != "" {
			binary = b
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
		dir, err := os.MkdirTemp("", "strata-plugin-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "strata")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/strata")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building strata in %s: %w\n%s", root, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// Server is a running Strata.
type Server struct {
	URL string
}

// Options of a Strata started for a test.
type Options struct {
	// TenantRulesDir is given as -rules.tenants-dir when set.
	TenantRulesDir string
	// Args are more flags.
	Args []string
}

// Start runs Strata until the test ends and waits until it is ready.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	addr := freeAddr(t)
	args := []string{
		"-http.listen-address=" + addr,
		"-storage.path=" + t.TempDir(),
		"-compactor.enabled=false",
		"-rules.evaluation-interval=1s",
		"-log.level=warn",
	}
	if opts.TenantRulesDir != "" {
		args = append(args, "-rules.tenants-dir="+opts.TenantRulesDir)
	}
	args = append(args, opts.Args...)
	cmd := exec.Command(bin, args...)
	var logs bytes.Buffer
	cmd.Stdout = &logs
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting strata: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("strata log:\n%s", logs.String())
		}
	})
	s := &Server{URL: "http://" + addr}
	exited := false
	if !Wait(60*time.Second, func() bool {
		select {
		case <-done:
			exited = true
			return true
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("strata not ready after 60s:\n%s", logs.String())
	}
	if exited {
		t.Fatalf("strata exited before it was ready:\n%s", logs.String())
	}
	return s
}

// Wait checks cond until it returns true or timeout has passed, and reports
// whether it held: at once, then after 1ms, each later pause twice the
// previous one up to 100ms. It is Strata's internal/testutil.Wait, which
// this module cannot import.
func Wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(pause, left))
	}
}

// Eventually waits up to timeout for cond to hold (see Wait) and fails t
// with what, the awaited condition in words, when it does not.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// Sample is one sample of a series.
type Sample struct {
	T time.Time
	V float64
}

// Series is a series to write: labels by name (with __name__) and samples in order.
type Series struct {
	Labels  map[string]string
	Samples []Sample
}

// Write remote-writes series for tenant (empty: no X-Scope-OrgID) with
// remote write 1.0 and fails the test unless Strata answers 204.
func (s *Server) Write(t testing.TB, tenant string, series ...Series) {
	t.Helper()
	var req prompb.WriteRequest
	for _, sr := range series {
		var ts prompb.TimeSeries
		names := make([]string, 0, len(sr.Labels))
		for n := range sr.Labels {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ts.Labels = append(ts.Labels, prompb.Label{Name: n, Value: sr.Labels[n]})
		}
		for _, p := range sr.Samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: p.T.UnixMilli(), Value: p.V})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	s.send(t, tenant, &req)
}

// WriteMetadata remote-writes the metadata of one metric family.
func (s *Server) WriteMetadata(t testing.TB, tenant, family string, typ prompb.MetricMetadata_MetricType, help string) {
	t.Helper()
	s.send(t, tenant, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{Type: typ, MetricFamilyName: family, Help: help}}})
}

func (s *Server) send(t testing.TB, tenant string, req *prompb.WriteRequest) {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if tenant != "" {
		hreq.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatalf("remote write: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("remote write answered %d: %s", resp.StatusCode, body)
	}
}
