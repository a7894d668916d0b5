package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/miniotest"
	"github.com/strata-tsdb/strata/objstore/objstoretest"
	"github.com/strata-tsdb/strata/objstore/s3"
)

var _ objstore.Bucket = (*s3.Bucket)(nil)

func startMinIO(t *testing.T) *miniotest.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a MinIO server")
	}
	return miniotest.Start(t)
}

func newBucket(t *testing.T, srv *miniotest.Server) *s3.Bucket {
	t.Helper()
	b, err := s3.New(srv.Config().S3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestAcceptance(t *testing.T) {
	srv := startMinIO(t)
	objstoretest.AcceptanceTest(t, newBucket(t, srv))
}

func TestAcceptanceThroughNew(t *testing.T) {
	srv := startMinIO(t)
	b, err := objstore.New(context.Background(), srv.Config(), "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	objstoretest.AcceptanceTest(t, b)
}

func TestCheckBucket(t *testing.T) {
	srv := startMinIO(t)
	ctx := context.Background()
	if err := newBucket(t, srv).CheckBucket(ctx); err != nil {
		t.Errorf("existing bucket: %v", err)
	}
	c := srv.Config().S3
	c.Bucket = "missing-bucket"
	b, err := s3.New(c)
	if err != nil {
		t.Fatal(err)
	}
	err = b.CheckBucket(ctx)
	if err == nil || !strings.Contains(err.Error(), "missing-bucket") || !errors.Is(err, objstore.ErrPermanent) {
		t.Errorf("missing bucket: %v, want a permanent error naming it", err)
	}
}

func TestCredentialsFromEnvironment(t *testing.T) {
	srv := startMinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	c := srv.Config().S3
	c.AccessKey, c.SecretKey = "", ""
	b, err := s3.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Upload(context.Background(), "env", strings.NewReader("x")); err != nil {
		t.Errorf("upload with credentials from the environment: %v", err)
	}
}

func TestWrongCredentialsArePermanent(t *testing.T) {
	srv := startMinIO(t)
	c := srv.Config().S3
	c.SecretKey = "not-the-secret"
	b, err := s3.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.Exists(context.Background(), "x")
	if err == nil || !errors.Is(err, objstore.ErrPermanent) || b.IsNotFound(err) {
		t.Errorf("wrong secret: %v, want a permanent error", err)
	}
}

func TestEndpointScheme(t *testing.T) {
	srv := startMinIO(t)
	c := srv.Config().S3
	c.Endpoint, c.Insecure = "http://"+srv.Endpoint, false
	b, err := s3.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.CheckBucket(context.Background()); err != nil {
		t.Errorf("endpoint with http://: %v", err)
	}
}

// TestOutage stops MinIO: calls fail within their timeout with errors that
// name the object and the backend, and succeed again after a restart.
func TestOutage(t *testing.T) {
	srv := startMinIO(t)
	ctx := context.Background()
	raw := newBucket(t, srv)
	const timeout = 2 * time.Second
	b := objstore.WithRetry(raw, objstore.RetryOptions{Timeout: timeout, MaxRetries: 2, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err := b.Upload(ctx, "tenant/block/meta.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	type call struct {
		op string
		fn func() error
	}
	calls := []call{ // delete last: the others need the object
		{"get", func() error {
			rc, err := b.Get(ctx, "tenant/block/meta.json")
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"upload", func() error {
			return b.Upload(ctx, "tenant/block/index", bytes.NewReader(make([]byte, 1<<20)))
		}},
		{"exists", func() error { _, err := b.Exists(ctx, "tenant/block/meta.json"); return err }},
		{"iter", func() error { return b.Iter(ctx, "tenant/block/", func(string) error { return nil }, true) }},
		{"delete", func() error { return b.Delete(ctx, "tenant/block/meta.json") }},
	}
	for _, c := range calls {
		op := c.op
		start := time.Now()
		err := c.fn()
		took := time.Since(start)
		if err == nil {
			t.Errorf("%s with MinIO stopped: no error", op)
			continue
		}
		if b.IsNotFound(err) {
			t.Errorf("%s with MinIO stopped: reported as not found: %v", op, err)
		}
		msg := err.Error()
		t.Logf("%s with MinIO stopped, after %s: %v", op, took.Round(time.Millisecond), err)
		if !strings.Contains(msg, "tenant/block/") || !strings.Contains(msg, "s3 bucket "+srv.Bucket) || !strings.Contains(msg, srv.Endpoint) {
			t.Errorf("%s with MinIO stopped: error %q does not name the object and the backend", op, msg)
		}
		if limit := 3*timeout + time.Second; took > limit {
			t.Errorf("%s with MinIO stopped took %s, more than %s", op, took, limit)
		}
	}

	srv.Restart()
	for _, c := range calls {
		if err := c.fn(); err != nil {
			t.Errorf("%s after restart: %v", c.op, err)
		}
	}
}

// TestStopDuringUpload kills MinIO while an upload is in flight: the upload
// fails (or, if it was complete, the object is whole), never leaves a
// partial object, and a retry after the restart stores it whole.
func TestStopDuringUpload(t *testing.T) {
	srv := startMinIO(t)
	ctx := context.Background()
	b := objstore.WithRetry(newBucket(t, srv), objstore.RetryOptions{Timeout: 5 * time.Second, MaxRetries: 0})
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<20) // 48 MiB: several parts

	paused, resume := make(chan struct{}), make(chan struct{})
	pr := &pausingReader{r: bytes.NewReader(data), pauseAt: 20 << 20, paused: paused, resume: resume}
	errc := make(chan error, 1)
	go func() { errc <- b.Upload(ctx, "big", pr) }()
	select {
	case <-paused:
	case err := <-errc:
		t.Fatalf("upload ended before the outage: %v", err)
	}
	srv.Stop()
	close(resume)
	err := <-errc
	if err == nil {
		t.Fatal("upload across a MinIO kill: no error")
	}
	t.Logf("upload across a MinIO kill: %v", err)
	if !strings.Contains(err.Error(), `"big"`) {
		t.Errorf("error %q does not name the object", err)
	}

	srv.Restart()
	if ok, err := b.Exists(ctx, "big"); err != nil || ok {
		t.Errorf("after a failed upload: exists = %v, %v", ok, err)
	}
	if err := b.Upload(ctx, "big", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rc, err := b.Get(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("after restart and upload: %d bytes, %v; want %d", len(got), err, len(data))
	}
}

// pausingReader hides the size of r and stops once pauseAt bytes have been
// read, until resume is closed.
type pausingReader struct {
	r       io.Reader
	n       int
	pauseAt int
	done    bool
	paused  chan struct{}
	resume  chan struct{}
}

func (p *pausingReader) Read(b []byte) (int, error) {
	if p.n >= p.pauseAt && !p.done {
		p.done = true
		close(p.paused)
		<-p.resume
	}
	if rest := p.pauseAt - p.n; rest > 0 && len(b) > rest {
		b = b[:rest]
	}
	n, err := p.r.Read(b)
	p.n += n
	return n, err
}
