package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/strata-tsdb/strata/objstore/internal/core"
)

// RetryOptions configure WithRetry.
type RetryOptions struct {
	// Timeout cuts off an attempt that makes no progress for this long:
	// an attempt of Get, GetRange, Delete, Exists or Attributes that takes
	// longer; an Upload that reads nothing from its reader for this long;
	// an Iter that waits this long for its next entry (time spent in the
	// caller's function does not count). The reader returned by Get and
	// GetRange is bounded by the caller's context only. Zero means no timeout.
	Timeout time.Duration
	// MaxRetries is how many times a failed call is tried again; zero
	// disables retries.
	MaxRetries int
	// MinBackoff is the wait before the first retry (default 100ms); each
	// further retry waits twice as long, up to MaxBackoff (default 10s).
	// The actual wait is drawn at random between half and all of that.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Logger, when set, gets a debug record for each retry.
	Logger *slog.Logger
}

// WithRetry returns b with a timeout on each attempt of a call and retries
// of failed attempts, with exponential backoff and jitter.
//
// Only transient errors are retried: not an object that does not exist
// (b.IsNotFound), an invalid name (ErrInvalidName), an error marked
// Permanent, or the end of the caller's context. An Upload is retried only
// when its reader is an io.Seeker, after seeking back to where the first
// attempt started. A retried Iter does not repeat entries already passed
// to f, and an error from f is returned at once.
func WithRetry(b Bucket, opts RetryOptions) Bucket {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(10*time.Second, opts.MinBackoff)
	}
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	return &retryBucket{b: b, opts: opts}
}

type retryBucket struct {
	b    Bucket
	opts RetryOptions
}

// errAttemptTimeout is the cause of an attempt's context that timed out.
var errAttemptTimeout = errors.New("attempt timed out")

// attempt is the context of one try of a call. Its timer cancels it after
// opts.Timeout unless reset (progress) or stopped first.
type attempt struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	d      time.Duration
	mu     sync.Mutex
	paused bool
}

func (r *retryBucket) newAttempt(parent context.Context) *attempt {
	ctx, cancel := context.WithCancelCause(parent)
	a := &attempt{ctx: ctx, cancel: cancel, d: r.opts.Timeout}
	if a.d > 0 {
		a.timer = time.AfterFunc(a.d, func() { cancel(errAttemptTimeout) })
	}
	return a
}

// progress restarts the attempt's timeout.
func (a *attempt) progress() {
	if a.timer == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.paused && a.timer.Stop() {
		a.timer.Reset(a.d)
	}
}

// pause stops the timeout until resume is called.
func (a *attempt) pause() {
	if a.timer == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.timer.Stop() {
		a.paused = true
	}
}

func (a *attempt) resume() {
	if a.timer == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paused {
		a.paused = false
		a.timer.Reset(a.d)
	}
}

// stop ends the timeout, keeping the context usable; it reports false when
// the timeout had already fired.
func (a *attempt) stop() bool {
	if a.timer == nil {
		return a.ctx.Err() == nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.timer.Stop() || a.paused
}

// done releases the attempt's context.
func (a *attempt) done() {
	a.stop()
	a.cancel(context.Canceled)
}

// timedOut reports whether the attempt ended by its timeout.
func (a *attempt) timedOut() bool {
	return errors.Is(context.Cause(a.ctx), errAttemptTimeout)
}

// retryable reports whether err of an attempt of call ctx may be retried.
func (r *retryBucket) retryable(ctx context.Context, a *attempt, err error) bool {
	switch {
	case ctx.Err() != nil:
		return false
	case a.timedOut():
		return true
	case r.b.IsNotFound(err), errors.Is(err, ErrInvalidName), errors.Is(err, ErrPermanent):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// A context of the caller's other than ctx, say of f in Iter.
		return false
	}
	return true
}

// do runs fn until it succeeds, fails for good or runs out of retries.
// fn gets a fresh attempt each time; keep tells do to leave the attempt's
// context alive after a success (the caller then owns a.done).
func (r *retryBucket) do(ctx context.Context, op, name string, fn func(a *attempt) (keep bool, err error)) error {
	return r.doN(ctx, op, name, r.opts.MaxRetries, fn)
}

// doN is do with at most retries retries.
func (r *retryBucket) doN(ctx context.Context, op, name string, retries int, fn func(a *attempt) (keep bool, err error)) error {
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := r.newAttempt(ctx)
		keep, err := fn(a)
		if err == nil {
			if keep && a.stop() {
				return nil
			}
			a.done()
			if keep {
				// The timeout fired as the call returned: the result may be
				// unusable, so try again.
				err = fmt.Errorf("%s: %s %q: %w after %s", r.b.Name(), op, name, errAttemptTimeout, r.opts.Timeout)
			} else {
				return nil
			}
		} else {
			a.done()
			if a.timedOut() && ctx.Err() == nil {
				err = fmt.Errorf("%w (%w after %s)", err, errAttemptTimeout, r.opts.Timeout)
			}
		}
		if i >= retries || !r.retryable(ctx, a, err) {
			if i > 0 {
				return fmt.Errorf("%w (after %d attempts)", err, i+1)
			}
			return err
		}
		wait := r.backoff(i)
		if r.opts.Logger != nil {
			r.opts.Logger.Debug("retrying bucket call", "bucket", r.b.Name(), "op", op, "name", name, "attempt", i+1, "wait", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while retrying: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// backoff returns the wait before retry i+1: MinBackoff·2^i capped at
// MaxBackoff, of which a random half is dropped.
func (r *retryBucket) backoff(i int) time.Duration {
	d := r.opts.MaxBackoff
	if i < 32 {
		d = min(r.opts.MinBackoff<<i, r.opts.MaxBackoff)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func (r *retryBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return r.open(ctx, "get", name, func(ctx context.Context) (io.ReadCloser, error) { return r.b.Get(ctx, name) })
}

func (r *retryBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	return r.open(ctx, "get range", name, func(ctx context.Context) (io.ReadCloser, error) {
		return r.b.GetRange(ctx, name, off, length)
	})
}

// open retries get until it returns a reader; the timeout covers opening,
// and the reader's reads count as the attempt's progress.
func (r *retryBucket) open(ctx context.Context, op, name string, get func(context.Context) (io.ReadCloser, error)) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, op, name, func(a *attempt) (bool, error) {
		if rc != nil {
			// A reader whose attempt timed out as it was returned.
			rc.Close()
			rc = nil
		}
		var err error
		rc, err = get(a.ctx)
		if err != nil {
			return false, err
		}
		rc = &attemptReader{ReadCloser: rc, a: a}
		return true, nil
	})
	if err != nil {
		if rc != nil {
			rc.Close()
		}
		return nil, err
	}
	return rc, nil
}

// attemptReader releases its attempt's context when closed.
type attemptReader struct {
	io.ReadCloser
	a    *attempt
	once sync.Once
}

func (r *attemptReader) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.a.done)
	return err
}

func (r *retryBucket) Upload(ctx context.Context, name string, rd io.Reader) error {
	retries := r.opts.MaxRetries
	seeker, ok := rd.(io.Seeker)
	var start int64
	if ok {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			ok = false
		}
	}
	if !ok {
		retries = 0 // a second attempt could not read the data again
	}
	size := core.Size(rd)
	first := true
	return r.doN(ctx, "upload", name, retries, func(a *attempt) (bool, error) {
		if !first {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return false, Permanent(fmt.Errorf("%s: upload %q: rewind for a retry: %w", r.b.Name(), name, err))
			}
		}
		first = false
		var pr io.Reader = &progressReader{r: rd, a: a}
		if size >= 0 {
			pr = &sizedProgressReader{progressReader{r: rd, a: a}, size}
		}
		return false, r.b.Upload(a.ctx, name, pr)
	})
}

// progressReader restarts its attempt's timeout on each read.
type progressReader struct {
	r io.Reader
	a *attempt
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.a.progress()
	}
	return n, err
}

// sizedProgressReader is a progressReader over data of known size, which
// it tells providers through Len as bytes.Reader does.
type sizedProgressReader struct {
	progressReader
	left int64
}

func (p *sizedProgressReader) Read(b []byte) (int, error) {
	n, err := p.progressReader.Read(b)
	p.left -= int64(n)
	return n, err
}

// Len returns the number of bytes not yet read.
func (p *sizedProgressReader) Len() int { return int(max(p.left, 0)) }

func (r *retryBucket) Delete(ctx context.Context, name string) error {
	return r.do(ctx, "delete", name, func(a *attempt) (bool, error) {
		return false, r.b.Delete(a.ctx, name)
	})
}

func (r *retryBucket) Exists(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := r.do(ctx, "exists", name, func(a *attempt) (bool, error) {
		var err error
		ok, err = r.b.Exists(a.ctx, name)
		return false, err
	})
	return ok, err
}

func (r *retryBucket) Attributes(ctx context.Context, name string) (Attributes, error) {
	var attrs Attributes
	err := r.do(ctx, "attributes", name, func(a *attempt) (bool, error) {
		var err error
		attrs, err = r.b.Attributes(a.ctx, name)
		return false, err
	})
	return attrs, err
}

// errFromF carries an error of the caller's function through the retries.
type errFromF struct{ err error }

func (e *errFromF) Error() string { return e.err.Error() }

func (r *retryBucket) Iter(ctx context.Context, dir string, f func(name string) error, recursive bool) error {
	var (
		last    string
		started bool
	)
	err := r.do(ctx, "iter", dir, func(a *attempt) (bool, error) {
		err := r.b.Iter(a.ctx, dir, func(name string) error {
			if started && name <= last {
				a.progress()
				return nil // passed to f by an earlier attempt
			}
			a.pause()
			err := f(name)
			a.resume()
			if err != nil {
				return &errFromF{err}
			}
			started, last = true, name
			return nil
		}, recursive)
		var fe *errFromF
		if errors.As(err, &fe) {
			return false, Permanent(fe)
		}
		return false, err
	})
	var fe *errFromF
	if errors.As(err, &fe) {
		return fe.err
	}
	return err
}

func (r *retryBucket) IsNotFound(err error) bool { return r.b.IsNotFound(err) }
func (r *retryBucket) Name() string              { return r.b.Name() }
func (r *retryBucket) Close() error              { return r.b.Close() }
