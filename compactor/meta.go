// Package compactor keeps a tenant's blocks in the bucket cheap to store and
// fast to query: it merges adjacent and overlapping blocks into larger ones,
// downsamples raw blocks to 1m and 1h resolution, applies retention per
// resolution, deletes what it replaced after a delay, and writes the bucket
// index that queriers read instead of listing the bucket.
//
// Every step uploads its result before it marks what the result replaces,
// and deletes marked blocks only after a delay longer than any query may
// hold them, so a query running during compaction sees the old blocks, the
// new one, or both (and de-duplicates), never a gap. A crash at any step
// leaves a bucket the next run repairs.
package compactor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/strata-tsdb/strata/objstore"
)

// DeletionMarkFile marks a block for deletion; its content says when.
const DeletionMarkFile = "deletion-mark.json"

// DeletionMark is the content of a deletion mark.
type DeletionMark struct {
	ID           ulid.ULID `json:"id"`
	DeletionTime int64     `json:"deletion_time"` // Unix seconds when it was marked
	Reason       string    `json:"reason"`
	Version      int       `json:"version"`
}

// readMark returns the deletion mark of block id, or nil if it has none.
func readMark(ctx context.Context, bkt objstore.Bucket, tenantID string, id ulid.ULID) (*DeletionMark, error) {
	r, err := bkt.Get(ctx, path.Join(tenantID, id.String(), DeletionMarkFile))
	if bkt.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read deletion mark of %s/%s: %w", tenantID, id, err)
	}
	var m DeletionMark
	if err := json.Unmarshal(b, &m); err != nil {
		// A torn mark still means the block was to be deleted.
		return &DeletionMark{ID: id, DeletionTime: 0, Reason: "unreadable mark", Version: 1}, nil
	}
	return &m, nil
}

// markForDeletion uploads a deletion mark for block id.
func markForDeletion(ctx context.Context, bkt objstore.Bucket, tenantID string, id ulid.ULID, reason string, now time.Time) error {
	b, err := json.Marshal(DeletionMark{ID: id, DeletionTime: now.Unix(), Reason: reason, Version: 1})
	if err != nil {
		return err
	}
	return bkt.Upload(ctx, path.Join(tenantID, id.String(), DeletionMarkFile), bytes.NewReader(b))
}
