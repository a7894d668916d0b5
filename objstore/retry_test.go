package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/filesystem"
)

var errTransient = errors.New("connection reset by peer")

// faultBucket is a filesystem bucket whose calls fail as hook decides.
type faultBucket struct {
	objstore.Bucket

	// hook, when set, is called before each call with its context, the
	// operation and the call's number for that operation (from 1); an
	// error it returns is the call's result. An Upload first reads up to 3
	// bytes of its reader.
	hook func(ctx context.Context, op string, call int) error
	// iterFailAfter makes the first Iter call fail after passing this many
	// entries to f (0: never).
	iterFailAfter int

	mu    sync.Mutex
	calls map[string]int
}

func newFaultBucket(t *testing.T) *faultBucket {
	t.Helper()
	fb, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &faultBucket{Bucket: fb, calls: map[string]int{}}
}

func (f *faultBucket) enter(ctx context.Context, op string) (int, error) {
	f.mu.Lock()
	f.calls[op]++
	n := f.calls[op]
	f.mu.Unlock()
	if f.hook != nil {
		return n, f.hook(ctx, op, n)
	}
	return n, nil
}

func (f *faultBucket) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *faultBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if _, err := f.enter(ctx, "get"); err != nil {
		return nil, err
	}
	return f.Bucket.Get(ctx, name)
}

func (f *faultBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if _, err := f.enter(ctx, "get_range"); err != nil {
		return nil, err
	}
	return f.Bucket.GetRange(ctx, name, off, length)
}

func (f *faultBucket) Upload(ctx context.Context, name string, r io.Reader) error {
	if _, err := f.enter(ctx, "upload"); err != nil {
		_, _ = io.ReadFull(r, make([]byte, 3))
		return err
	}
	return f.Bucket.Upload(ctx, name, r)
}

func (f *faultBucket) Delete(ctx context.Context, name string) error {
	if _, err := f.enter(ctx, "delete"); err != nil {
		return err
	}
	return f.Bucket.Delete(ctx, name)
}

func (f *faultBucket) Exists(ctx context.Context, name string) (bool, error) {
	if _, err := f.enter(ctx, "exists"); err != nil {
		return false, err
	}
	return f.Bucket.Exists(ctx, name)
}

func (f *faultBucket) Attributes(ctx context.Context, name string) (objstore.Attributes, error) {
	if _, err := f.enter(ctx, "attributes"); err != nil {
		return objstore.Attributes{}, err
	}
	return f.Bucket.Attributes(ctx, name)
}

func (f *faultBucket) Iter(ctx context.Context, dir string, fn func(string) error, recursive bool) error {
	n, err := f.enter(ctx, "iter")
	if err != nil {
		return err
	}
	passed := 0
	return f.Bucket.Iter(ctx, dir, func(name string) error {
		if n == 1 && f.iterFailAfter > 0 && passed == f.iterFailAfter {
			return errTransient
		}
		passed++
		return fn(name)
	}, recursive)
}

// failFirst fails the first n calls of every operation with err.
func failFirst(n int, err error) func(context.Context, string, int) error {
	return func(_ context.Context, _ string, call int) error {
		if call <= n {
			return err
		}
		return nil
	}
}

func fastRetry(maxRetries int) objstore.RetryOptions {
	return objstore.RetryOptions{MaxRetries: maxRetries, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func upload(t *testing.T, b objstore.Bucket, name, content string) {
	t.Helper()
	if err := b.Upload(context.Background(), name, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, rc io.ReadCloser, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// ops runs every operation of b once; each returns its error.
func ops(b objstore.Bucket) map[string]func() error {
	ctx := context.Background()
	return map[string]func() error{
		"get": func() error {
			rc, err := b.Get(ctx, "d/obj")
			if err == nil {
				rc.Close()
			}
			return err
		},
		"get_range": func() error {
			rc, err := b.GetRange(ctx, "d/obj", 1, 2)
			if err == nil {
				rc.Close()
			}
			return err
		},
		"upload":     func() error { return b.Upload(ctx, "d/obj", strings.NewReader("content")) },
		"delete":     func() error { return b.Delete(ctx, "d/other") },
		"exists":     func() error { _, err := b.Exists(ctx, "d/obj"); return err },
		"attributes": func() error { _, err := b.Attributes(ctx, "d/obj"); return err },
		"iter":       func() error { return b.Iter(ctx, "d/", func(string) error { return nil }, false) },
	}
}

func TestRetryRetriesTransientErrors(t *testing.T) {
	fb := newFaultBucket(t)
	upload(t, fb.Bucket, "d/obj", "content")
	fb.hook = failFirst(2, errTransient)
	b := objstore.WithRetry(fb, fastRetry(3))
	for op, run := range ops(b) {
		if err := run(); err != nil {
			t.Errorf("%s: %v", op, err)
		}
		if got := fb.count(op); got != 3 {
			t.Errorf("%s: %d calls, want 3", op, got)
		}
	}
}

func TestRetryGivesUpAfterMaxRetries(t *testing.T) {
	fb := newFaultBucket(t)
	upload(t, fb.Bucket, "d/obj", "content")
	fb.hook = failFirst(1000, errTransient)
	b := objstore.WithRetry(fb, fastRetry(4))
	for op, run := range ops(b) {
		err := run()
		if !errors.Is(err, errTransient) {
			t.Errorf("%s: %v, want the transient error", op, err)
		} else if !strings.Contains(err.Error(), "5 attempts") {
			t.Errorf("%s: error %q does not say how often it was tried", op, err)
		}
		if got := fb.count(op); got != 5 {
			t.Errorf("%s: %d calls, want 5", op, got)
		}
	}
}

func TestRetryDisabled(t *testing.T) {
	fb := newFaultBucket(t)
	fb.hook = failFirst(1, errTransient)
	b := objstore.WithRetry(fb, fastRetry(0))
	if _, err := b.Exists(context.Background(), "x"); !errors.Is(err, errTransient) {
		t.Errorf("got %v, want the transient error", err)
	}
	if got := fb.count("exists"); got != 1 {
		t.Errorf("%d calls, want 1", got)
	}
}

func TestRetryDoesNotRetryPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"not found", fmt.Errorf("get x: %w", objstore.ErrNotFound)},
		{"invalid name", fmt.Errorf("%w: x", objstore.ErrInvalidName)},
		{"permanent", objstore.Permanent(errors.New("access denied"))},
		{"context canceled", context.Canceled},
		{"deadline exceeded", fmt.Errorf("dial: %w", context.DeadlineExceeded)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFaultBucket(t)
			fb.hook = failFirst(1000, tc.err)
			b := objstore.WithRetry(fb, fastRetry(5))
			for op, run := range ops(b) {
				if err := run(); !errors.Is(err, tc.err) {
					t.Errorf("%s: %v, want %v", op, err, tc.err)
				}
				if got := fb.count(op); got != 1 {
					t.Errorf("%s: %d calls, want 1", op, got)
				}
			}
		})
	}
}

func TestRetryKeepsNotFound(t *testing.T) {
	fb := newFaultBucket(t)
	b := objstore.WithRetry(fb, fastRetry(5))
	_, err := b.Get(context.Background(), "missing")
	if !b.IsNotFound(err) || !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("get missing: %v, want not found", err)
	}
	if got := fb.count("get"); got != 1 {
		t.Errorf("%d calls, want 1", got)
	}
	_, err = b.Get(context.Background(), "../escape")
	if !errors.Is(err, objstore.ErrInvalidName) {
		t.Errorf("get ../escape: %v, want invalid name", err)
	}
	if got := fb.count("get"); got != 2 {
		t.Errorf("%d calls, want 2", got)
	}
}

func TestRetryUploadRereadsFromStartOfSeeker(t *testing.T) {
	fb := newFaultBucket(t)
	fb.hook = failFirst(2, errTransient) // each failed attempt reads 3 bytes
	b := objstore.WithRetry(fb, fastRetry(3))
	r := bytes.NewReader([]byte("0123456789"))
	if _, err := r.Seek(2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(context.Background(), "obj", r); err != nil {
		t.Fatal(err)
	}
	if got := fb.count("upload"); got != 3 {
		t.Errorf("%d calls, want 3", got)
	}
	rc, err := fb.Bucket.Get(context.Background(), "obj")
	if got := readAll(t, rc, err); got != "23456789" {
		t.Errorf("uploaded %q, want the reader's data from where it stood: %q", got, "23456789")
	}
}

func TestRetryUploadWithoutSeekerIsNotRetried(t *testing.T) {
	fb := newFaultBucket(t)
	fb.hook = failFirst(1, errTransient)
	b := objstore.WithRetry(fb, fastRetry(3))
	err := b.Upload(context.Background(), "obj", io.MultiReader(strings.NewReader("0123456789")))
	if !errors.Is(err, errTransient) {
		t.Errorf("got %v, want the transient error", err)
	}
	if got := fb.count("upload"); got != 1 {
		t.Errorf("%d calls, want 1", got)
	}
	if ok, _ := fb.Bucket.Exists(context.Background(), "obj"); ok {
		t.Error("object exists after a failed upload")
	}
}

func TestRetryHonoursContextCancellation(t *testing.T) {
	fb := newFaultBucket(t)
	fb.hook = failFirst(1000, errTransient)
	b := objstore.WithRetry(fb, objstore.RetryOptions{MaxRetries: 100, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Exists(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before the call: %v", err)
	}
	if got := fb.count("exists"); got != 0 {
		t.Errorf("cancelled before the call: %d calls, want 0", got)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.Exists(ctx, "x")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("returned %s after its context ended", took-200*time.Millisecond)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the context's error", err)
	}
	if n := fb.count("exists"); n < 2 || n > 10 {
		t.Errorf("%d calls in 200ms with backoff from 50ms", n)
	}
}

// blockUntilDone blocks the first n calls until their context ends.
func blockUntilDone(n int) func(context.Context, string, int) error {
	return func(ctx context.Context, _ string, call int) error {
		if call <= n {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
}

func TestRetryTimeoutCutsOffStuckAttempts(t *testing.T) {
	fb := newFaultBucket(t)
	upload(t, fb.Bucket, "d/obj", "content")
	fb.hook = blockUntilDone(1)
	b := objstore.WithRetry(fb, objstore.RetryOptions{Timeout: 50 * time.Millisecond, MaxRetries: 2, MinBackoff: time.Millisecond})
	for op, run := range ops(b) {
		if err := run(); err != nil {
			t.Errorf("%s: %v", op, err)
		}
		if got := fb.count(op); got != 2 {
			t.Errorf("%s: %d calls, want 2", op, got)
		}
	}

	fb = newFaultBucket(t)
	fb.hook = blockUntilDone(1000)
	b = objstore.WithRetry(fb, objstore.RetryOptions{Timeout: 20 * time.Millisecond, MaxRetries: 1, MinBackoff: time.Millisecond})
	_, err := b.Exists(context.Background(), "x")
	if err == nil || !strings.Contains(err.Error(), "timed out after 20ms") {
		t.Errorf("got %v, want a timeout error", err)
	}
}

func TestRetryTimeoutSparesReadersAndProgress(t *testing.T) {
	fb := newFaultBucket(t)
	upload(t, fb.Bucket, "obj", "content")
	var getCtx context.Context // the context the bucket's Get was given
	fb.hook = func(ctx context.Context, op string, _ int) error {
		if op == "get" {
			getCtx = ctx
		}
		return nil
	}
	const timeout = 50 * time.Millisecond
	b := objstore.WithRetry(fb, objstore.RetryOptions{Timeout: timeout, MaxRetries: 0})
	ctx := context.Background()

	// The reader of Get outlives the timeout: its context, which the
	// filesystem bucket's reader would not notice, is not cancelled for
	// twice the timeout. The timeout is a real timer (the retry bucket has
	// no clock to inject), and what is checked is that it does not fire, so
	// this waits a fixed time.
	rc, err := b.Get(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-getCtx.Done():
		t.Errorf("the context of an open reader was cancelled (%v)", context.Cause(getCtx))
	case <-time.After(2 * timeout):
	}
	if got := readAll(t, rc, nil); got != "content" {
		t.Errorf("got %q", got)
	}
	if getCtx.Err() == nil {
		t.Errorf("closing the reader did not release its context")
	}

	// An upload that keeps reading outlives the timeout: it reads for
	// three times the timeout, a byte every 15ms (slowReader sleeps: the
	// time passing is what is tested).
	slow := &slowReader{data: []byte("0123456789"), gap: 15 * time.Millisecond}
	if err := b.Upload(ctx, "slow", slow); err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	rc, err = fb.Bucket.Get(ctx, "slow")
	if got := readAll(t, rc, err); got != "0123456789" {
		t.Errorf("slow upload stored %q", got)
	}

	// Time in Iter's function does not count: each call of it outlasts the
	// timeout (a sleep, as the time passing is what is tested).
	var names []string
	err = b.Iter(ctx, "", func(name string) error {
		time.Sleep(timeout + 20*time.Millisecond)
		names = append(names, name)
		return nil
	}, true)
	if err != nil || !slices.Equal(names, []string{"obj", "slow"}) {
		t.Errorf("slow iter: %q, %v", names, err)
	}
}

// slowReader returns one byte per Read, after a pause.
type slowReader struct {
	data []byte
	gap  time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.gap)
	n := copy(p[:1], s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestRetryIterDoesNotRepeatEntries(t *testing.T) {
	fb := newFaultBucket(t)
	for _, n := range []string{"a/1", "a/2", "a/3", "b/1", "c"} {
		upload(t, fb.Bucket, n, n)
	}
	fb.iterFailAfter = 2
	b := objstore.WithRetry(fb, fastRetry(2))
	var got []string
	if err := b.Iter(context.Background(), "", func(n string) error { got = append(got, n); return nil }, true); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/1", "a/2", "a/3", "b/1", "c"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if n := fb.count("iter"); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

func TestRetryIterReturnsErrorOfF(t *testing.T) {
	fb := newFaultBucket(t)
	upload(t, fb.Bucket, "a", "a")
	b := objstore.WithRetry(fb, fastRetry(3))
	stop := errors.New("stop")
	if err := b.Iter(context.Background(), "", func(string) error { return stop }, false); err != stop {
		t.Errorf("got %v, want f's error itself", err)
	}
	if n := fb.count("iter"); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}
