// Package blockmeta is the shared vocabulary of Strata's blocks in the
// bucket: block metadata with Strata's extension (resolution, source), the
// aggregate series of downsampled blocks, uploading a block directory, and
// the per-tenant bucket index. Both the store (which ships and reads blocks)
// and the compactor (which rewrites them) use it; neither imports the other.
//
// A block's meta.json is Prometheus TSDB's, with one added key:
//
//	{"ulid": ..., "minTime": ..., "maxTime": ..., ..., "strata": {"resolution": 60000, "source": "downsample"}}
//
// Prometheus's own tools ignore the key, so every block stays readable by promtool.
package blockmeta

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks/bucketcodec"
	"github.com/strata-tsdb/strata/objstore"
)

// MetaFilename is the name of a block's metadata file.
const MetaFilename = "meta.json"

// Resolutions of blocks, in milliseconds between aggregated samples.
const (
	ResRaw int64 = 0
	Res1m  int64 = 60 * 1000
	Res1h  int64 = 60 * 60 * 1000
)

// Sources of blocks.
const (
	SourceShipper    = "shipper"
	SourceCompactor  = "compactor"
	SourceDownsample = "downsample"
	SourceBackfill   = "backfill"
)

// AggrLabel is the label that tells the aggregate series of a downsampled
// block apart. It never leaves the store: queriers select on it and strip it.
const AggrLabel = "__aggr__"

// Aggregates of a downsampled series, the values of AggrLabel.
const (
	AggrCount   = "count"
	AggrSum     = "sum"
	AggrMin     = "min"
	AggrMax     = "max"
	AggrCounter = "counter"
)

// Ext is Strata's extension of meta.json.
type Ext struct {
	// Resolution is ResRaw for raw blocks, else the downsampling window in ms.
	Resolution int64 `json:"resolution"`
	// Source says what wrote the block.
	Source string `json:"source,omitempty"`
}

// Meta is a block's meta.json.
type Meta struct {
	tsdb.BlockMeta
	Strata *Ext `json:"strata,omitempty"`
}

// Resolution returns the block's resolution (ResRaw without extension).
func (m *Meta) Resolution() int64 {
	if m.Strata == nil {
		return ResRaw
	}
	return m.Strata.Resolution
}

// Parse decodes a meta.json.
func Parse(b []byte) (*Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse meta.json: %w", err)
	}
	return &m, nil
}

// ReadDir reads the meta.json of the block in dir.
func ReadDir(dir string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetaFilename))
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// WriteDir writes m as the meta.json of the block in dir, atomically.
func WriteDir(dir string, m *Meta) error {
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, MetaFilename+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, MetaFilename))
}

// Read reads <tenant>/<id>/meta.json from the bucket.
func Read(ctx context.Context, bkt objstore.Bucket, tenantID string, id ulid.ULID) (*Meta, error) {
	r, err := bkt.Get(ctx, path.Join(tenantID, id.String(), MetaFilename))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read meta.json of block %s/%s: %w", tenantID, id, err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("block %s/%s: %w", tenantID, id, err)
	}
	if m.ULID != id {
		return nil, fmt.Errorf("meta.json of block %s/%s names block %s", tenantID, id, m.ULID)
	}
	return m, nil
}

// Upload copies the block in dir to <tenant>/<ULID>/ in the bucket: every
// file, then meta.json last (from m when given, else from dir), so that a
// block without meta.json in the bucket is an incomplete upload. The index
// and the chunks segments are stored in their bucket form (package
// bucketcodec: index.zst, chunks/NNNNNN.sc); meta.json stays plain JSON.
func Upload(ctx context.Context, bkt objstore.Bucket, tenantID, dir string, m *Meta) error {
	if m == nil {
		var err error
		if m, err = ReadDir(dir); err != nil {
			return fmt.Errorf("read meta.json of %s: %w", dir, err)
		}
	}
	prefix := path.Join(tenantID, m.ULID.String())
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel != MetaFilename && filepath.Ext(rel) != ".tmp" {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list block files: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		if err := uploadFile(ctx, bkt, filepath.Join(dir, filepath.FromSlash(f)), prefix, f); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	if err := bkt.Upload(ctx, path.Join(prefix, MetaFilename), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("upload %s: %w", path.Join(prefix, MetaFilename), err)
	}
	return nil
}

// uploadFile uploads block file rel from src to prefix/<its object name>,
// encoded into a temporary file first when its bucket form differs, so
// that the upload can be retried from the start and memory stays bounded.
func uploadFile(ctx context.Context, bkt objstore.Bucket, src, prefix, rel string) error {
	name := path.Join(prefix, bucketcodec.ObjectName(rel))
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var body io.Reader = f
	if bucketcodec.FormOf(rel) != bucketcodec.Plain {
		tmp, err := os.CreateTemp("", "strata-upload-*")
		if err != nil {
			return fmt.Errorf("encode %s: %w", name, err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if err := bucketcodec.Encode(tmp, f, rel); err != nil {
			return fmt.Errorf("encode %s: %w", name, err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		body = tmp
	}
	if err := bkt.Upload(ctx, name, body); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return nil
}

// Download copies block id of tenantID from the bucket into dir: every
// object but deletion marks, meta.json last, so that a directory with a
// meta.json is a complete block. Objects in a bucket form are decoded to
// the files tsdb wrote, byte for byte; blocks uploaded before the bucket
// form (plain index and chunks objects) are copied as they are.
func Download(ctx context.Context, bkt objstore.Bucket, tenantID string, id ulid.ULID, dir string) error {
	prefix := path.Join(tenantID, id.String()) + "/"
	var names []string
	if err := bkt.Iter(ctx, prefix, func(n string) error { names = append(names, n); return nil }, true); err != nil {
		return fmt.Errorf("list block %s: %w", prefix, err)
	}
	if len(names) == 0 {
		return fmt.Errorf("block %s: %w", prefix, objstore.ErrNotFound)
	}
	sort.Strings(names)
	for _, n := range names {
		obj := strings.TrimPrefix(n, prefix)
		if obj == MetaFilename || obj == deletionMarkFilename {
			continue
		}
		rel, _ := bucketcodec.FileName(obj)
		if err := downloadFile(ctx, bkt, n, obj, filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			return err
		}
	}
	return downloadFile(ctx, bkt, prefix+MetaFilename, MetaFilename, filepath.Join(dir, MetaFilename))
}

// deletionMarkFilename is the compactor's deletion mark, never part of a block's data.
const deletionMarkFilename = "deletion-mark.json"

// downloadFile writes to dst the file that object name (obj relative to
// its block's prefix) stores.
func downloadFile(ctx context.Context, bkt objstore.Bucket, name, obj, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	r, err := bkt.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("get %s: %w", name, err)
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := bucketcodec.Decode(w, r, obj); err != nil {
		f.Close()
		return fmt.Errorf("download %s: %w", name, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("download %s: %w", name, err)
	}
	return f.Close()
}

// Covers reports whether block a holds all of block b's data, so that b
// may be left out of a reader's view and deleted: both have the same
// resolution, a's time range and sources include b's, and a is the larger
// of the two (more sources or a wider range), or, for two equal blocks,
// the one with the greater ULID, so exactly one of two equals survives.
func Covers(a, b *Meta) bool {
	if a.Resolution() != b.Resolution() || a.MinTime > b.MinTime || a.MaxTime < b.MaxTime {
		return false
	}
	src := make(map[ulid.ULID]bool, len(a.Compaction.Sources))
	for _, s := range a.Compaction.Sources {
		src[s] = true
	}
	for _, s := range b.Compaction.Sources {
		if !src[s] {
			return false
		}
	}
	larger := len(a.Compaction.Sources) > len(b.Compaction.Sources) || a.MaxTime-a.MinTime > b.MaxTime-b.MinTime
	equal := len(a.Compaction.Sources) == len(b.Compaction.Sources) && a.MaxTime-a.MinTime == b.MaxTime-b.MinTime
	return larger || equal && a.ULID.Compare(b.ULID) > 0
}
