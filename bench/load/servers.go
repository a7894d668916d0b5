package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Server is one system under test, running as a child process.
type Server struct {
	// Name is "prometheus" or "strata".
	Name string
	// URL is the base URL of its HTTP server.
	URL string
	// Dir is its data directory.
	Dir string
	// BlocksDir is where its blocks are counted after a flush.
	BlocksDir string

	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// Pid is the server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const prometheusConfig = "global:\n  scrape_interval: 15s\n"

// StartPrometheus starts a Prometheus 3 with its remote-write receiver
// accepting 1.0 and 2.0 and its admin API (for the TSDB snapshot), storing
// in a fresh directory below dir.
func StartPrometheus(ctx context.Context, bin, dir string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(prometheusConfig), 0o644); err != nil {
		return nil, fmt.Errorf("write Prometheus config: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	args := []string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + data,
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
		"--web.enable-remote-write-receiver",
		"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
		"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request",
		"--web.enable-admin-api",
		"--log.level=warn",
	}
	s := &Server{Name: "prometheus", URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: data, BlocksDir: filepath.Join(data, "snapshots")}
	return s, s.start(ctx, bin, args, dir)
}

// StartStrata starts Strata with a filesystem bucket and no compactor (the
// compactor would rewrite the flushed blocks while they are measured), and
// extra flags.
func StartStrata(ctx context.Context, bin, dir string, extra ...string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	bucket := filepath.Join(dir, "bucket")
	args := []string{
		"-http.listen-address=127.0.0.1:" + strconv.Itoa(port),
		"-storage.path=" + data,
		"-bucket.filesystem.dir=" + bucket,
		"-compactor.enabled=false",
		"-log.level=warn",
	}
	args = append(args, extra...)
	s := &Server{Name: "strata", URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: data, BlocksDir: bucket}
	return s, s.start(ctx, bin, args, dir)
}

// StartVictoriaMetrics starts single-node VictoriaMetrics with its defaults
// (its rollup result cache on, as it ships), keeping data for 100 years.
func StartVictoriaMetrics(ctx context.Context, bin, dir string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	args := []string{
		"-storageDataPath=" + data,
		"-httpListenAddr=127.0.0.1:" + strconv.Itoa(port),
		"-retentionPeriod=100y",
		"-loggerLevel=WARN",
	}
	s := &Server{Name: "victoria-metrics", URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: data, BlocksDir: data}
	return s, s.start(ctx, bin, args, dir)
}

func (s *Server) start(ctx context.Context, bin string, args []string, dir string) error {
	log, err := os.Create(filepath.Join(dir, s.Name+".log"))
	if err != nil {
		return fmt.Errorf("create log of %s: %w", s.Name, err)
	}
	s.log = log
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s (%s): %w", s.Name, bin, err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("%s exited during start-up (%v); see %s", s.Name, err, log.Name())
		case <-ctx.Done():
			s.Stop()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	s.Stop()
	return fmt.Errorf("%s not ready after 2 minutes; see %s", s.Name, log.Name())
}

// Stop terminates the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.log.Close()
}

// Flush makes the server write everything it holds into blocks below
// BlocksDir: Strata cuts its head into blocks and ships them to its bucket
// (POST /api/v1/admin/flush); Prometheus writes a snapshot of its head as a
// block (POST /api/v1/admin/tsdb/snapshot). Both write the head with the
// same TSDB block writer.
func (s *Server) Flush(ctx context.Context) error {
	path := "/api/v1/admin/flush"
	if s.Name == "prometheus" {
		path = "/api/v1/admin/tsdb/snapshot?skip_head=false"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("flush %s: %w", s.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("flush %s: status %d: %s", s.Name, resp.StatusCode, body)
	}
	return nil
}

// BlockBytes counts the bytes of the block directories (index, chunks,
// meta.json, tombstones) below BlocksDir, and the number of blocks.
func (s *Server) BlockBytes() (int64, int, error) {
	dirs, err := blockDirs(s.BlocksDir)
	if err != nil {
		return 0, 0, err
	}
	if len(dirs) == 0 {
		return 0, 0, errors.New("no blocks written by " + s.Name)
	}
	var total int64
	for _, d := range dirs {
		n, _, err := dirBytes(d)
		if err != nil {
			return 0, 0, err
		}
		total += n
	}
	return total, len(dirs), nil
}
