package compactor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"
	"time"

	"github.com/strata-tsdb/strata/objstore"
)

// lockFile is the per-tenant compaction lock in the bucket.
const lockFile = "compactor-lock.json"

type lockContent struct {
	Owner   string `json:"owner"`
	Expires int64  `json:"expires"` // Unix milliseconds
}

// tryLock takes the tenant's compaction lock for owner until now+ttl. It
// returns false when another owner holds an unexpired lock. Object storage
// has no compare-and-swap everywhere: the lock is written and read back, so
// two compactors racing for it within one round trip could both proceed;
// their results are then duplicates that the next run repairs.
func tryLock(ctx context.Context, bkt objstore.Bucket, tenantID, owner string, now time.Time, ttl time.Duration) (bool, error) {
	name := path.Join(tenantID, lockFile)
	if cur, err := readLock(ctx, bkt, name); err != nil {
		return false, err
	} else if cur != nil && cur.Owner != owner && cur.Expires > now.UnixMilli() {
		return false, nil
	}
	b, _ := json.Marshal(lockContent{Owner: owner, Expires: now.Add(ttl).UnixMilli()})
	if err := bkt.Upload(ctx, name, bytes.NewReader(b)); err != nil {
		return false, fmt.Errorf("write compaction lock of tenant %q: %w", tenantID, err)
	}
	cur, err := readLock(ctx, bkt, name)
	if err != nil {
		return false, err
	}
	return cur != nil && cur.Owner == owner, nil
}

func readLock(ctx context.Context, bkt objstore.Bucket, name string) (*lockContent, error) {
	r, err := bkt.Get(ctx, name)
	if bkt.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read compaction lock %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read compaction lock %s: %w", name, err)
	}
	var l lockContent
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, nil // a torn lock is no lock
	}
	return &l, nil
}

func unlock(ctx context.Context, bkt objstore.Bucket, tenantID, owner string) error {
	name := path.Join(tenantID, lockFile)
	cur, err := readLock(ctx, bkt, name)
	if err != nil || cur == nil || cur.Owner != owner {
		return err
	}
	return bkt.Delete(ctx, name)
}

// errLeaseLost is the cause of a run's end when its lock expired or passed
// to another compactor.
var errLeaseLost = errors.New("compaction lock lost")

// lease is a tenant's compaction lock held for the length of one run. keep
// renews it every ttl/4 while the run works; check, called before every
// change the run makes to the bucket (upload, mark, delete), reads the lock
// back and fails once it may have expired or passed to another owner, so
// that two runs never change one tenant's blocks at the same time however
// long a run takes or however far clocks drift.
//
// Invariant: the lock in the bucket is ours at least until expires; expires
// is set from the time a renewal began, before its write.
type lease struct {
	bkt          objstore.Bucket
	tenant       string
	owner        string
	ttl          time.Duration
	now          func() time.Time
	renewTimeout time.Duration

	mu      sync.Mutex
	expires time.Time
	lost    error
}

// acquireLease takes the tenant's lock; nil when another owner holds it.
func acquireLease(ctx context.Context, bkt objstore.Bucket, tenantID, owner string, ttl time.Duration, now func() time.Time) (*lease, error) {
	start := now()
	ok, err := tryLock(ctx, bkt, tenantID, owner, start, ttl)
	if err != nil || !ok {
		return nil, err
	}
	return &lease{bkt: bkt, tenant: tenantID, owner: owner, ttl: ttl, now: now, renewTimeout: ttl / 4, expires: start.Add(ttl)}, nil
}

// keep renews the lease every ttl/4 until ctx is done. When a renewal finds
// the lock taken by another owner, or the lease runs out before a renewal
// succeeds, it calls lost with the reason and returns.
func (l *lease) keep(ctx context.Context, lost func(error)) {
	tick := time.NewTicker(l.ttl / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := l.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if l.expired() != nil {
				lost(err)
				return
			}
			// A failed renewal is retried on the next tick while the
			// lease still has time left.
		}
	}
}

func (l *lease) renew(ctx context.Context) error {
	start := l.now()
	ctx, cancel := context.WithTimeout(ctx, l.renewTimeout)
	defer cancel()
	name := path.Join(l.tenant, lockFile)
	cur, err := readLock(ctx, l.bkt, name)
	if err != nil {
		return err
	}
	if cur == nil || cur.Owner != l.owner {
		l.fail(fmt.Errorf("%w: tenant %q's lock is held by %v", errLeaseLost, l.tenant, ownerOf(cur)))
		return l.expired()
	}
	ok, err := tryLock(ctx, l.bkt, l.tenant, l.owner, start, l.ttl)
	if err != nil {
		return err
	}
	if !ok {
		l.fail(fmt.Errorf("%w: tenant %q's lock was taken while renewing it", errLeaseLost, l.tenant))
		return l.expired()
	}
	l.mu.Lock()
	l.expires = start.Add(l.ttl)
	l.mu.Unlock()
	return nil
}

func ownerOf(c *lockContent) string {
	if c == nil {
		return "nobody"
	}
	return fmt.Sprintf("%q", c.Owner)
}

func (l *lease) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = err
	}
}

// check returns an error once the lease is lost, has less than a quarter
// of its time left (room for one more bucket operation), or the lock in the
// bucket names another owner.
func (l *lease) check(ctx context.Context) error {
	if err := l.expired(); err != nil {
		return err
	}
	cur, err := readLock(ctx, l.bkt, path.Join(l.tenant, lockFile))
	if err != nil {
		return err
	}
	if cur == nil || cur.Owner != l.owner {
		l.fail(fmt.Errorf("%w: tenant %q's lock is held by %v", errLeaseLost, l.tenant, ownerOf(cur)))
	}
	return l.expired()
}

// expired is check without reading the bucket.
func (l *lease) expired() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if left := l.expires.Sub(l.now()); left < l.ttl/4 {
		return fmt.Errorf("%w: tenant %q's lease has %v left, not renewed", errLeaseLost, l.tenant, left.Round(time.Millisecond))
	}
	return nil
}

// release removes the lock if it is still ours.
func (l *lease) release(ctx context.Context) error {
	return unlock(ctx, l.bkt, l.tenant, l.owner)
}
