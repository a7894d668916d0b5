package miniotest_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/strata-tsdb/strata/objstore/miniotest"
)

// fatalTB records the message of Fatalf and ends the goroutine, as
// testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestMissingBinaryFails(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-minio")
	t.Setenv("STRATA_MINIO", missing)
	if got := miniotest.Binary(); got != missing {
		t.Fatalf("Binary() = %q, want $STRATA_MINIO %q", got, missing)
	}
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		miniotest.Start(tb)
	}()
	<-done
	if !strings.Contains(tb.msg, missing) || !strings.Contains(tb.msg, "make deps") {
		t.Errorf("Start with a missing binary: %q, want a failure naming the path and `make deps`", tb.msg)
	}
}

func TestStartStopRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	s := miniotest.Start(t)
	c := s.Config()
	if c.S3.Endpoint != s.Endpoint || c.S3.Bucket != s.Bucket || c.S3.AccessKey != s.AccessKey || !c.S3.Insecure || !c.S3.PathStyle {
		t.Errorf("Config() = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	s.Stop()
	s.Stop() // twice is fine
	s.Restart()
	s.Restart() // restarting a running server stops it first
}
