package compactor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
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
