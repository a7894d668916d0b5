package blocks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFileBudgetReserve(t *testing.T) {
	for _, tc := range []struct {
		name         string
		limit, open  int
		held         []int // reservations already made, in order
		n            int
		wantRefusedN bool
	}{
		{name: "room", limit: 200, open: 100, n: 16},
		{name: "exactly the margin left", limit: 200, open: 152, n: 16},
		{name: "would eat into the margin", limit: 200, open: 153, n: 16, wantRefusedN: true},
		{name: "openings under way count", limit: 200, open: 110, held: []int{16, 16, 16}, n: 16, wantRefusedN: true},
		{name: "unknown limit", limit: 0, open: 1 << 20, n: 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fileBudget{limit: tc.limit, margin: fileMargin(tc.limit), count: func() (int, error) { return tc.open, nil }}
			var releases []func()
			for _, h := range tc.held {
				r, err := b.reserve(h)
				if err != nil {
					t.Fatalf("reservation of %d before: %v", h, err)
				}
				releases = append(releases, r)
			}
			release, err := b.reserve(tc.n)
			if tc.wantRefusedN {
				if !errors.Is(err, ErrTooFewFiles) {
					t.Fatalf("reserve(%d) = %v, want ErrTooFewFiles", tc.n, err)
				}
				// Once the openings under way end, there may be room again.
				for _, r := range releases {
					r()
				}
				if len(releases) > 0 {
					if _, err := b.reserve(tc.n); err != nil {
						t.Errorf("after the other openings ended: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("reserve(%d) = %v", tc.n, err)
			}
			release()
			release() // a second release gives nothing back twice
			if b.held != sumInts(tc.held) {
				t.Errorf("%d files held after the release, want %d", b.held, sumInts(tc.held))
			}
		})
	}
}

func sumInts(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

func TestCountOpenFiles(t *testing.T) {
	before, err := countOpenFiles()
	if err != nil {
		t.Skipf("open files not countable here: %v", err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if after, _ := countOpenFiles(); after != before+1 {
		t.Errorf("%d open files after opening one more than %d", after, before)
	}
}

// TestOpeningRefusedWhenFilesRunShort: while the process has too few free
// files, a new tenant is refused with ErrTenantUnavailable before anything
// of it is created (no directory), an existing one is not opened and gets
// no backoff; both open as soon as files are free again.
func TestOpeningRefusedWhenFilesRunShort(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	s, err := Open(Options{Dir: dir, Registerer: prometheus.NewRegistry(), IdleTimeout: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	open := 0
	s.files = &fileBudget{limit: 200, margin: fileMargin(200), count: func() (int, error) { return open, nil }}

	old, err := s.acquire("old", true)
	if err != nil {
		t.Fatal(err)
	}
	s.release(old)
	now = now.Add(2 * time.Minute)
	s.closeIdle(context.Background())
	s.mu.Lock()
	closed := s.tenants["old"].t == nil
	s.mu.Unlock()
	if !closed {
		t.Fatal("the idle tenant did not close")
	}

	open = 190
	if _, err := s.acquire("new", true); !errors.Is(err, ErrTenantUnavailable) || !errors.Is(err, ErrTooFewFiles) {
		t.Fatalf("new tenant while files run short: %v, want ErrTenantUnavailable for too few files", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tenants", "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused tenant's directory: %v, want none", err)
	}
	if _, err := s.acquire("old", false); !errors.Is(err, ErrTooFewFiles) {
		t.Fatalf("existing tenant while files run short: %v, want too few files", err)
	}
	if got := testutil.ToFloat64(s.m.tenantOpenRefused); got != 2 {
		t.Errorf("strata_tenant_open_refused_total = %v, want 2", got)
	}
	if got := testutil.ToFloat64(s.m.tenantOpenFailures); got != 0 {
		t.Errorf("strata_tenant_open_failures_total = %v, want 0: a refusal is no failure of the tenant", got)
	}

	open = 20
	nt, err := s.acquire("new", true)
	if err != nil {
		t.Fatalf("new tenant once files are free: %v", err)
	}
	s.release(nt)
	s.mu.Lock()
	e := s.tenants["old"]
	retryAt, openErr := e.retryAt, e.openErr
	s.mu.Unlock()
	if openErr != nil || !retryAt.IsZero() {
		t.Fatalf("the existing tenant was given a backoff (%v, until %v)", openErr, retryAt)
	}
	ot, err := s.acquire("old", false)
	if err != nil || ot == nil {
		t.Fatalf("existing tenant once files are free: %v", err)
	}
	s.release(ot)
}
