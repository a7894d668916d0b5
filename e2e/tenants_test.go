package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// startStrataNoFile starts the strata binary as startStrata does, with its
// open-file limit set to nofile (as a container's or a systemd unit's
// would be).
func startStrataNoFile(t *testing.T, nofile int, addr, dir string, extra ...string) *strataProc {
	t.Helper()
	args := append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), strataBin,
		"-http.listen-address", addr, "-storage.path", dir, "-log.level", "info"}, extra...)
	p := proctest.Start(t, "strata", "/bin/sh", args...)
	t.Cleanup(func() {
		p.KillCheckRace(t)
	})
	s := &strataProc{Process: p, addr: addr, url: "http://" + addr, dir: dir}
	p.WaitHTTP(t, s.url+"/-/ready", startTimeout)
	return s
}

// openFiles summarises the files process pid holds open, counted by what
// they are (a tenant's WAL, its head chunks, a block, a socket...), for a
// failure message: which files ran out.
func openFiles(pid int, storage string) string {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return err.Error()
	}
	counts := map[string]int{}
	tenants := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue
		}
		kind := target
		if rel, err := filepath.Rel(filepath.Join(storage, "tenants"), target); err == nil && !strings.HasPrefix(rel, "..") {
			parts := strings.Split(rel, string(filepath.Separator))
			tenants[parts[0]]++
			kind = "tenants/*"
			if len(parts) > 1 {
				if len(parts[1]) == 26 { // a block's ULID
					parts[1] = "<block>"
				}
				kind += "/" + parts[1]
			}
		} else if i := strings.IndexByte(target, ':'); i > 0 && !strings.HasPrefix(target, "/") {
			kind = target[:i] // socket:[…], pipe:[…], anon_inode:[…]
		}
		counts[kind]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d open files, of %d tenants\n", len(ents), len(tenants))
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, "  %5d %s\n", counts[k], k)
	}
	return b.String()
}

// tenantFilesOpen counts the files under storage's tenants directory that
// process pid holds open, -1 when they cannot be listed.
func tenantFilesOpen(pid int, storage string) int {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && strings.HasPrefix(target, filepath.Join(storage, "tenants")+"/") {
			n++
		}
	}
	return n
}

// TestManyTenantsUnderAFileLimit writes one sample to each of 300 new
// tenants into a Strata allowed 200 open files: more tenants than it can
// hold open at once. Each write is answered 204, or 503 while no file is
// free, and a tenant answered 503 leaves no directory behind; written again
// once idle tenants have closed, every one is accepted. Then the process is
// killed and started again under the same limit: it starts, and every
// acknowledged sample is read back (reads of a tenant that cannot open yet
// answer 5xx, never an empty success).
func TestManyTenantsUnderAFileLimit(t *testing.T) {
	requireE2E(t)
	const tenants, nofile = 300, 200
	dir := t.TempDir()
	addr := proctest.FreeAddr(t)
	flags := []string{"-storage.tenant-idle-timeout=1s", "-compactor.enabled=false", "-http.max-connections=20"}
	s := startStrataNoFile(t, nofile, addr, dir, flags...)
	ts := time.Now().UnixMilli()
	id := func(i int) string { return fmt.Sprintf("t%03d", i) }
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 4}}
	write := func(i int) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			newSeries([]prompb.Sample{{Timestamp: ts, Value: float64(i)}}, "__name__", "tenant_probe", "tenant", id(i)),
		}}
		code, body, err := sendWriteV1(ctx, hc, s.url+"/api/v1/write", id(i), req)
		if err != nil {
			t.Fatalf("write %s: %v", id(i), err)
		}
		return code, body
	}
	pending := make([]int, tenants)
	for i := range pending {
		pending[i] = i
	}
	refused := 0
	deadline := time.Now().Add(3 * time.Minute)
	for round := 0; len(pending) > 0; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d tenants still refused after %d rounds; strata's open files:\n%s", len(pending), round, openFiles(s.Cmd.Process.Pid, dir))
		}
		var mu sync.Mutex
		var again []int
		var wg sync.WaitGroup
		work := make(chan int)
		for range 4 {
			wg.Go(func() {
				for i := range work {
					code, body := write(i)
					switch code {
					case http.StatusNoContent:
					case http.StatusServiceUnavailable:
						mu.Lock()
						again = append(again, i)
						mu.Unlock()
					default:
						t.Errorf("write %s: HTTP %d %s; want 204, or 503 while no file is free", id(i), code, body)
					}
				}
			})
		}
		for _, i := range pending {
			work <- i
		}
		close(work)
		wg.Wait()
		refused += len(again)
		pending = again
		// Nothing of a refused tenant stays on disk: its directory is
		// removed at once, or, when removing needs the files that ran out,
		// as soon as idle tenants have closed.
		testutil.Eventually(t, time.Minute, "the directories of refused tenants to be removed", func() bool {
			for _, i := range pending {
				if _, err := os.Stat(filepath.Join(dir, "tenants", id(i))); !errors.Is(err, os.ErrNotExist) {
					return false
				}
			}
			return true
		})
	}
	t.Logf("%d writes answered 503 while %d tenants were created under %d open files", refused, tenants, nofile)
	// Once every tenant is idle and closed, none of their files is open:
	// no opening refused or failed for want of files left any behind.
	pid := s.Cmd.Process.Pid
	if !testutil.Await(t, 2*time.Minute, "every idle tenant's files to be closed", func() (bool, string) {
		return tenantFilesOpen(pid, dir) == 0, openFiles(pid, dir)
	}) {
		t.FailNow()
	}

	// A crash, and a start under the same limit.
	s.Kill()
	s = startStrataNoFile(t, nofile, addr, dir, flags...)
	for i := range tenants {
		c := newAPIClient(s.url, id(i))
		want := fmt.Sprintf(`"value":[%s,"%d"]`, apiTime(ts), i)
		testutil.Eventually(t, time.Minute, "tenant "+id(i)+"'s sample", func() bool {
			r := c.get(t, "/api/v1/query", url.Values{"query": {"tenant_probe"}, "time": {apiTime(ts)}})
			switch {
			case r.code == http.StatusOK && strings.Contains(string(r.body), want):
				return true
			case r.code >= 500:
				return false // the tenant cannot open yet: retried
			}
			t.Fatalf("tenant %s after the restart: HTTP %d %s, want its sample", id(i), r.code, r.body)
			return false
		})
	}
	if !s.Running() {
		t.Fatalf("strata exited")
	}
}

// TestTenantLimit: with -storage.max-tenants, a new tenant beyond the
// limit gets 400 naming the limit and leaves nothing on disk, also after a
// restart; a tenant named in the overrides file is admitted beyond it.
func TestTenantLimit(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	if err := os.WriteFile(overrides, []byte("overrides:\n  vip: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"-storage.max-tenants=2", "-overrides.file", overrides, "-compactor.enabled=false"}
	s := startStrata(t, "", dir, flags...)
	ts := time.Now().UnixMilli()
	write := func(id string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, body, err := sendWriteV1(ctx, http.DefaultClient, s.url+"/api/v1/write", id, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			newSeries([]prompb.Sample{{Timestamp: ts, Value: 1}}, "__name__", "limit_probe"),
		}})
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	for _, step := range []struct {
		id   string
		want int
	}{{"a", 204}, {"b", 204}, {"c", 400}, {"vip", 204}, {"a", 204}, {"restart", 0}, {"d", 400}, {"b", 204}} {
		if step.id == "restart" {
			if err := s.Stop(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			s = startStrata(t, s.addr, dir, flags...)
			continue
		}
		code, body := write(step.id)
		if code != step.want {
			t.Fatalf("write as %s: HTTP %d %s, want %d", step.id, code, body, step.want)
		}
		if code == http.StatusBadRequest {
			if !strings.Contains(body, "max_tenants") {
				t.Errorf("refusal of %s does not name the limit: %s", step.id, body)
			}
			if _, err := os.Stat(filepath.Join(dir, "tenants", step.id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused tenant %s left %v on disk", step.id, err)
			}
		}
	}
}
