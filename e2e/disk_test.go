package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/internal/testutil"
)

// mountTmpfs mounts a tmpfs of size bytes in a new directory, unmounted
// when the test ends (after the processes it started, whose cleanups run
// first). It skips the test where mounting is not allowed (not root).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (this test needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func freeSpace(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fillDisk writes zeros to a file in dir until the file system is full,
// as another program filling the disk would.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			break
		}
	}
	for _, n := range []int{4096, 512, 1} { // the last partial blocks
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// TestFullDisk runs Strata on a 64 MiB tmpfs. Writes are answered 204
// until the free space falls to the floor, then 503, with the disk not
// full; reads go on. Another program then fills the disk to the last byte,
// and Strata is killed: it starts again on the full disk (releasing its
// reserved space), serves every acknowledged sample, and refuses writes
// with 503 until space is freed, when it accepts them again and reserves
// space anew.
func TestFullDisk(t *testing.T) {
	requireE2E(t)
	disk := mountTmpfs(t, 64<<20)
	dir := filepath.Join(disk, "data")
	const floor = 16 << 20
	flags := []string{"-storage.min-free-bytes", fmt.Sprint(floor), "-compactor.enabled=false"}
	s := startStrata(t, "", dir, flags...)
	if _, err := os.Stat(filepath.Join(dir, "reserved-space")); err != nil {
		t.Fatalf("no reserved space at start: %v", err)
	}

	// Each request writes noise series (large, incompressible labels, one
	// sample each: they fill the WAL) and the next 130 samples of each hot
	// series, 10ms apart: their head chunks fill and are written to the
	// head chunk files, the TSDB's writes that panic on a full disk, and
	// replaying the WAL writes them again.
	const seriesPerReq, hotSeries, hotSamples = 60, 20, 130
	ts := time.Now().Add(-time.Hour).UnixMilli()
	rnd := rand.New(rand.NewPCG(1, 2))
	label := func() string { // incompressible, so that the WAL grows fast
		b := make([]byte, 512)
		for i := range b {
			b[i] = "0123456789abcdef"[rnd.IntN(16)]
		}
		return string(b)
	}
	write := func(req int) (int, string) {
		wr := &prompb.WriteRequest{}
		for i := range seriesPerReq {
			wr.Timeseries = append(wr.Timeseries, newSeries([]prompb.Sample{{Timestamp: ts, Value: float64(req)}},
				"__name__", "fill", "noise", label(), "req", fmt.Sprint(req), "s", fmt.Sprint(i)))
		}
		for i := range hotSeries {
			samples := make([]prompb.Sample, hotSamples)
			for j := range samples {
				samples[j] = prompb.Sample{Timestamp: ts + int64(req*hotSamples+j)*10, Value: float64(req*hotSamples + j)}
			}
			wr.Timeseries = append(wr.Timeseries, newSeries(samples, "__name__", "hot", "s", fmt.Sprint(i)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, body, err := sendWriteV1(ctx, http.DefaultClient, s.url+"/api/v1/write", "", wr)
		if err != nil {
			t.Fatalf("write %d: %v", req, err)
		}
		return code, body
	}
	acked, refused := 0, 0
	for req := 0; refused < 3; req++ {
		if req > 5000 {
			t.Fatalf("writes still accepted after %d requests: %d bytes free", req, freeSpace(t, disk))
		}
		switch code, body := write(req); code {
		case http.StatusNoContent:
			if refused > 0 {
				t.Fatalf("write %d accepted after a refusal", req)
			}
			acked++
		case http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("write %d: HTTP %d %s; want 204, or 503 once the disk is low", req, code, body)
		}
	}
	free := freeSpace(t, disk)
	t.Logf("%d requests acknowledged, then 503 with %d bytes free (floor %d)", acked, free, floor)
	if free <= 0 {
		t.Errorf("the disk is full: writes were not refused in time")
	}
	wantSeries := acked * seriesPerReq
	// The first query after a start opens the tenant and replays its WAL
	// (tens of seconds on a loaded 2-core machine): it may take longer than
	// the default client's timeout.
	slowClient := func(s *strataProc) *apiClient {
		c := newAPIClient(s.url, "")
		c.hc.Timeout = 2 * time.Minute
		return c
	}
	countAll := func(s *strataProc) (int, int) {
		r := slowClient(s).get(t, "/api/v1/query", url.Values{"query": {`count(fill)`}, "time": {apiTime(ts)}})
		if r.code != http.StatusOK {
			return r.code, 0
		}
		var res []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(mustSucceedResult(t, r), &res); err != nil || len(res) != 1 {
			t.Fatalf("count(fill): %s (%v)", r.body, err)
		}
		var n int
		fmt.Sscan(res[0].Value[1].(string), &n)
		return r.code, n
	}
	hotQuery := fmt.Sprintf(`sum(count_over_time(hot[%dms]))`, (acked*hotSamples+1)*10)
	hotEnd := ts + int64(acked*hotSamples-1)*10
	countHot := func(s *strataProc) int {
		r := slowClient(s).get(t, "/api/v1/query", url.Values{"query": {hotQuery}, "time": {apiTime(hotEnd)}})
		var res []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(mustSucceedResult(t, r), &res); err != nil || len(res) != 1 {
			t.Fatalf("%s: %s (%v)", hotQuery, r.body, err)
		}
		var n int
		fmt.Sscan(res[0].Value[1].(string), &n)
		return n
	}
	wantHot := acked * hotSeries * hotSamples
	if code, n := countAll(s); code != http.StatusOK || n != wantSeries {
		t.Fatalf("with writes refused: HTTP %d, %d series; want %d", code, n, wantSeries)
	}
	if n := countHot(s); n != wantHot {
		t.Fatalf("with writes refused: %d hot samples, want %d", n, wantHot)
	}

	// Something else fills the disk; Strata is killed, and starts on it.
	filler := fillDisk(t, disk)
	if got := freeSpace(t, disk); got != 0 {
		t.Logf("%d bytes still free after filling", got)
	}
	s.Kill()
	s = startStrata(t, s.addr, dir, flags...)
	if code, n := countAll(s); code != http.StatusOK || n != wantSeries {
		t.Fatalf("after a start on the full disk: HTTP %d, %d series; want %d", code, n, wantSeries)
	}
	if n := countHot(s); n != wantHot {
		t.Fatalf("after a start on the full disk: %d hot samples, want %d", n, wantHot)
	}
	if !strings.Contains(s.Log(), "released the reserved space") {
		t.Errorf("the start on the full disk did not release the reserved space")
	}
	if code, body := write(acked); code != http.StatusServiceUnavailable {
		t.Errorf("write on the full disk: HTTP %d %s, want 503", code, body)
	}

	// Space is freed, and the volume grown: writes are accepted again, and
	// the reserve is made again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=128m", disk).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v: %s", err, out)
	}
	next := acked
	testutil.Eventually(t, 30*time.Second, "writes to be accepted again", func() bool {
		code, body := write(next)
		next++
		if code != http.StatusNoContent && code != http.StatusServiceUnavailable {
			t.Fatalf("write after space was freed: HTTP %d %s", code, body)
		}
		return code == http.StatusNoContent
	})
	testutil.Eventually(t, 30*time.Second, "the reserved space to be made again", func() bool {
		_, err := os.Stat(filepath.Join(dir, "reserved-space"))
		return err == nil
	})
	if !s.Running() {
		t.Fatal("strata exited")
	}
	if n := countHot(s); n != wantHot {
		t.Fatalf("at the end: %d hot samples, want %d", n, wantHot)
	}
}

// mustSucceedResult returns the result of a successful query answer.
func mustSucceedResult(t *testing.T, r apiResponse) json.RawMessage {
	t.Helper()
	var d struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(mustSucceed(t, "query", r), &d); err != nil {
		t.Fatal(err)
	}
	return d.Result
}
