package blockmeta

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/oklog/ulid/v2"
)

// IndexFilename is the per-tenant bucket index, at <tenant>/bucket-index.json.gz.
const IndexFilename = "bucket-index.json.gz"

// Index lists a tenant's blocks and deletion marks, so that a querier that
// lists the bucket reads the meta.json of only the blocks written since.
// The compactor writes it after every run.
type Index struct {
	Version   int     `json:"version"`
	UpdatedAt int64   `json:"updated_at"` // Unix seconds
	Blocks    []*Meta `json:"blocks"`
	// Marked lists blocks marked for deletion: readers skip them, as the
	// blocks that replace them are in Blocks.
	Marked []ulid.ULID `json:"marked,omitempty"`
}

// IndexVersion is the version written by this code.
const IndexVersion = 1

// Updated returns when the index was written.
func (ix *Index) Updated() time.Time { return time.Unix(ix.UpdatedAt, 0) }

// ReadIndex reads the tenant's bucket index. The error satisfies
// bkt.IsNotFound when the tenant has none yet.
func ReadIndex(ctx context.Context, bkt interface {
	Get(context.Context, string) (io.ReadCloser, error)
}, tenantID string) (*Index, error) {
	r, err := bkt.Get(ctx, path.Join(tenantID, IndexFilename))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("bucket index of tenant %q: %w", tenantID, err)
	}
	var ix Index
	if err := json.NewDecoder(zr).Decode(&ix); err != nil {
		return nil, fmt.Errorf("bucket index of tenant %q: %w", tenantID, err)
	}
	if ix.Version != IndexVersion {
		return nil, fmt.Errorf("bucket index of tenant %q has version %d, want %d", tenantID, ix.Version, IndexVersion)
	}
	return &ix, nil
}

// WriteIndex uploads the tenant's bucket index.
func WriteIndex(ctx context.Context, bkt interface {
	Upload(context.Context, string, io.Reader) error
}, tenantID string, ix *Index) error {
	ix.Version = IndexVersion
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(ix); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := bkt.Upload(ctx, path.Join(tenantID, IndexFilename), bytes.NewReader(buf.Bytes())); err != nil {
		return fmt.Errorf("upload bucket index of tenant %q: %w", tenantID, err)
	}
	return nil
}
