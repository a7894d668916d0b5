// Package miniotest runs a real MinIO server for tests.
//
// The server binary is $STRATA_MINIO, or $HOME/.cache/strata/bin/minio by
// default; `make deps` installs it. A missing binary fails the test: tests
// that need MinIO should skip under testing.Short() themselves, before
// calling Start.
package miniotest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/objstore"
)

// Fixed root credentials and bucket of the servers Start runs.
const (
	AccessKey = "strata-test"
	SecretKey = "strata-test-secret"
	Bucket    = "strata-test"
)

// startTimeout bounds how long a start waits for the server to be ready.
const startTimeout = 90 * time.Second

// Binary returns the path of the MinIO binary: $STRATA_MINIO, else
// $HOME/.cache/strata/bin/minio.
func Binary() string {
	if p := os.Getenv("STRATA_MINIO"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.Getenv("HOME")
	}
	return filepath.Join(home, ".cache", "strata", "bin", "minio")
}

// Server is a MinIO server run by a test. Its fields do not change.
type Server struct {
	// Endpoint is the server's address, 127.0.0.1:port (plain HTTP).
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Bucket is a bucket created at start.
	Bucket string

	t           testing.TB
	bin         string
	dataDir     string
	certsDir    string
	consoleAddr string
	logPath     string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start runs a MinIO server on free 127.0.0.1 ports with its data in a
// temporary directory, waits until it is live and creates Bucket. The
// server is killed when the test ends; its log is printed if the test
// failed. It fails the test (never skips) when the binary is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		t.Fatalf("MinIO binary %s is missing: run `make deps` (or set STRATA_MINIO to a MinIO server binary)", bin)
	}
	tmp := t.TempDir()
	s := &Server{
		AccessKey: AccessKey,
		SecretKey: SecretKey,
		Bucket:    Bucket,
		t:         t,
		bin:       bin,
		dataDir:   filepath.Join(tmp, "data"),
		certsDir:  filepath.Join(tmp, "certs"),
		logPath:   filepath.Join(tmp, "minio.log"),
	}
	for _, d := range []string{s.dataDir, s.certsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			s.printLog()
		}
	})

	// A free port may be taken by someone else before MinIO binds it; then
	// try other ports.
	var err error
	for range 3 {
		s.Endpoint, s.consoleAddr = proctest.FreeAddr(t), proctest.FreeAddr(t)
		if err = s.start(); err == nil {
			break
		}
		s.kill()
	}
	if err != nil {
		t.Fatalf("start MinIO: %v", err)
	}
	if err := s.makeBucket(); err != nil {
		t.Fatalf("MinIO: create bucket %s: %v", s.Bucket, err)
	}
	return s
}

// start runs the server and waits until it is live.
func (s *Server) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== miniotest: starting %s on %s at %s\n", s.bin, s.Endpoint, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.bin, "server",
		"--address", s.Endpoint,
		"--console-address", s.consoleAddr,
		"--certs-dir", s.certsDir,
		s.dataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return s.waitLive(done)
}

// waitLive waits until MinIO is ready to serve the S3 API. Its health
// endpoints answer 200 before its object layer is initialised, while the
// S3 API still answers "Server not initialized yet" (seen in CI right
// after a restart); they say so in the X-Minio-Server-Status header
// ("offline"), which is absent once it is.
func (s *Server) waitLive(done <-chan struct{}) error {
	url := "http://" + s.Endpoint + "/minio/health/ready"
	client := &http.Client{Timeout: 2 * time.Second}
	var (
		resp   *http.Response
		err    error
		exited bool
	)
	if testutil.Wait(startTimeout, func() bool {
		select {
		case <-done:
			exited = true
			return true
		default:
		}
		if resp, err = client.Get(url); err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") == ""
	}) {
		if exited {
			return fmt.Errorf("MinIO exited while starting (log: %s)", s.logPath)
		}
		return nil
	}
	return fmt.Errorf("MinIO on %s not ready after %s (last: %v)", s.Endpoint, startTimeout, errOrStatus(err, resp))
}

func errOrStatus(err error, resp *http.Response) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

func (s *Server) makeBucket() error {
	client, err := minio.New(s.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: false,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	// Right after start MinIO may still refuse writes briefly; try again.
	for {
		err = client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{})
		if err == nil || minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Config returns a bucket configuration for the server's bucket: the flag
// defaults with the s3 backend, the server's endpoint (plain HTTP, path
// style), bucket and credentials.
func (s *Server) Config() objstore.Config {
	var c objstore.Config
	c.RegisterFlags(flag.NewFlagSet("miniotest", flag.ContinueOnError))
	c.Backend = objstore.BackendS3
	c.S3.Endpoint = s.Endpoint
	c.S3.Bucket = s.Bucket
	c.S3.AccessKey = s.AccessKey
	c.S3.SecretKey = s.SecretKey
	c.S3.Insecure = true
	c.S3.PathStyle = true
	return c
}

// Stop kills the server (SIGKILL, as a crash would) and waits until it has
// exited. Its data stay for Restart.
func (s *Server) Stop() {
	s.t.Helper()
	s.kill()
}

// Restart starts the server again on the same address and data directory
// (stopping it first if it runs) and waits until it is live.
func (s *Server) Restart() {
	s.t.Helper()
	s.kill()
	var err error
	for range 3 {
		if err = s.start(); err == nil {
			return
		}
		s.kill()
		time.Sleep(500 * time.Millisecond) // the port may be in TIME_WAIT
	}
	s.t.Fatalf("restart MinIO: %v", err)
}

func (s *Server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// LogPath returns the path of the server's log file.
func (s *Server) LogPath() string { return s.logPath }

// printLog logs the server's log, at most its last 64 KiB.
func (s *Server) printLog() {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.t.Logf("MinIO log: %v", err)
		}
		return
	}
	const max = 64 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		b = append([]byte("[...]\n"), b...)
	}
	s.t.Logf("MinIO log (%s):\n%s", s.logPath, b)
}
