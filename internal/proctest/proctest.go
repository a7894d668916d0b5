// Package proctest starts and stops the real programs Strata's integration
// tests run against (Strata itself, Prometheus, node-exporter, Alertmanager,
// MinIO). A test that needs a program fails, not skips, when it is missing:
// `make deps` (scripts/deps.sh) installs or builds every one of them.
//
// It is imported by tests only.
package proctest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LogTail is how much of a process log a failed test prints.
const LogTail = 32 << 10

// Process is an external program started by a test. Its standard output and
// error go to a log file in a temporary directory of the test; it is killed
// when the test ends, and the end of its log is printed if the test failed.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	exited  chan struct{} // closed when the process has exited
	waitErr error         // the result of Wait, set before exited is closed
}

// Start starts bin with args and registers its end with t.Cleanup. name
// names the process in messages and its log file.
func Start(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	return StartEnv(t, name, bin, nil, args...)
}

// StartEnv is Start with environment variables added to the test's own.
func StartEnv(t testing.TB, name, bin string, env []string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create log of %s: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatalf("start %s (%s): %v", name, bin, err)
	}
	p := &Process{Name: name, Cmd: cmd, LogPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = f.Close()
		close(p.exited)
	}()
	t.Logf("started %s (pid %d): %s %s", name, cmd.Process.Pid, bin, strings.Join(args, " "))
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("---- end of log of %s (%s) ----\n%s", name, logPath, p.Tail(LogTail))
		}
	})
	return p
}

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// WaitErr returns the result of the process's Wait once it has exited, and
// nil while it runs.
func (p *Process) WaitErr() error {
	if p.Running() {
		return nil
	}
	return p.waitErr
}

// Kill sends SIGKILL, unless the process has exited, and waits for its end.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM and waits up to timeout for the process to exit; then it
// kills it. It returns the exit error, or an error saying it had to kill.
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Running() {
		return p.waitErr
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.Name, timeout)
	}
}

// Log returns the whole log of the process so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Tail returns the last n bytes of the log, cut at a line start.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		b = append([]byte("[...]\n"), b...)
	}
	return string(b)
}

// WaitHTTP polls url until it answers 200, failing t when timeout passes or
// the process exits first.
func (p *Process) WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		if !p.Running() {
			t.Fatalf("%s exited before it was ready (%v); log:\n%s", p.Name, p.waitErr, p.Tail(LogTail))
		}
		resp, err := hc.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after %v (last answer: %s)", p.Name, url, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// handedOut are the ports FreeAddr returned in this process: the kernel
// may pick a port again once its probe is closed, and a test that reserves
// two addresses before binding either (a process's HTTP and memberlist
// ports) got the same one twice (seen in CI: memberlist failed to bind the
// querier's HTTP port).
var handedOut = struct {
	sync.Mutex
	ports map[string]bool
}{ports: map[string]bool{}}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, and that no other FreeAddr call of this process returned: the kernel
// picks it for a listener that is closed at once. Another process may take
// the port before the caller binds it; on loopback that is rare enough for
// tests.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatalf("close port probe: %v", err)
		}
		handedOut.Lock()
		seen := handedOut.ports[addr]
		handedOut.ports[addr] = true
		handedOut.Unlock()
		if !seen {
			return addr
		}
	}
	t.Fatalf("find a free port: 100 probes all got ports handed out before")
	return ""
}

// RequireProgram returns the path of a program on the PATH, failing t (not
// skipping) when it is missing.
func RequireProgram(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed by this test and was not found (%v); run `make deps` (scripts/deps.sh) to install it", name, err)
	}
	return p
}

// CachedProgram returns a program scripts/deps.sh builds into
// $STRATA_CACHE/bin (default ~/.cache/strata/bin), or the path in
// environment variable env when set, failing t when it is missing.
func CachedProgram(t testing.TB, env, name string) string {
	t.Helper()
	bin := os.Getenv(env)
	if bin == "" {
		cache := os.Getenv("STRATA_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatalf("find %s: no %s and no home directory (%v); run `make deps`", name, env, err)
			}
			cache = filepath.Join(home, ".cache", "strata")
		}
		bin = filepath.Join(cache, "bin", name)
	}
	st, err := os.Stat(bin)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("%s is needed by this test and was not found at %s (%s); run `make deps` (scripts/deps.sh) to build it", name, bin, env)
	}
	return bin
}

// Version returns the first line of `bin --version`, for test logs.
func Version(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown version: " + err.Error()
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}

// BuildStrata builds ./cmd/strata of the module rooted at moduleDir into
// out, with the race detector when race is set. It runs the go command on
// the PATH: go test puts its own toolchain's first on its children's PATH.
func BuildStrata(moduleDir, out string, race bool) error {
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/strata")
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleDir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v: %w", args, err)
	}
	return nil
}

// MainWithStrata is the body of a TestMain whose tests run the strata
// binary: it builds ./cmd/strata of the module at moduleDir once into a
// temporary directory (with the race detector when race is set), sets *bin
// to it, runs the tests and removes the build. The binary named by
// environment variable env, when set, is used instead of a build. Under
// -short nothing is built: the tests that need the binary skip. It returns
// the exit code for os.Exit.
func MainWithStrata(m *testing.M, moduleDir, env string, race bool, bin *string) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	if b := os.Getenv(env); env != "" && b != "" {
		*bin = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "strata-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create build directory:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "strata")
	if err := BuildStrata(moduleDir, *bin, race); err != nil {
		fmt.Fprintln(os.Stderr, "build strata:", err)
		return 1
	}
	return m.Run()
}

// StartMemcached starts Debian's memcached (64 MiB, items up to 4 MiB) on a
// free local port, waits until it accepts connections, and returns it and
// its address.
func StartMemcached(t testing.TB) (*Process, string) {
	t.Helper()
	bin := RequireProgram(t, "memcached")
	addr := FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-l", host, "-p", port, "-U", "0", "-m", "64", "-I", "4m"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses root without it
	}
	p := Start(t, "memcached", bin, args...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return p, addr
		}
		if time.Now().After(deadline) || !p.Running() {
			t.Fatalf("memcached did not listen on %s: %v\n%s", addr, err, p.Tail(LogTail))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
