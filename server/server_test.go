package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"
)

// TestServerProfilesAndMemory starts a Server and checks the wiring of what
// explains its memory: Go's heap profile under /debug/pprof/, the runtime
// settings applied to the process, and the releaser's metrics.
func TestServerProfilesAndMemory(t *testing.T) {
	oldGC := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(oldGC)
		debug.SetMemoryLimit(oldLimit)
	})
	cfg, err := LoadConfig([]string{
		"-storage.path=" + t.TempDir(),
		"-http.listen-address=127.0.0.1:0",
		"-compactor.enabled=false",
		"-runtime.gogc=60",
		"-runtime.memory-limit=8589934592",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if got := debug.SetGCPercent(60); got != 60 {
		t.Errorf("GOGC = %d, want 60", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 8<<30 {
		t.Errorf("memory limit = %d, want %d", got, 8<<30)
	}
	base := "http://" + srv.Addr().String()
	// New has bound the listener: a connection waits in its backlog until
	// Run serves it, so no retry is needed.
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{"/debug/pprof/", "heap"},
		{"/debug/pprof/heap?debug=1", "heap profile"},
		{"/metrics", "strata_memory_releases_total 0"},
		{"/metrics", "go_gc_gogc_percent 60"},
	} {
		code, body := get(tc.path)
		if code != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d, body without %q", tc.path, code, tc.want)
		}
	}
}
