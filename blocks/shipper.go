package blocks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/fileutil"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/objstore"
)

// shippedFile records, per tenant, the blocks already in the bucket.
const shippedFile = "shipped.json"

// metaFilename is the name of a block's metadata file, locally and in the bucket.
const metaFilename = blockmeta.MetaFilename

// shipper uploads a tenant's new local blocks to <tenant>/<ULID>/ in the
// bucket, each once, meta.json last: a block without meta.json in the bucket
// is a partial upload that readers ignore and the next attempt overwrites.
//
// What was shipped is recorded in shipped.json in the tenant's directory,
// written atomically after each upload, so a restart neither ships a block
// twice nor skips one. When the record is lost, a block whose meta.json is
// already in the bucket is recorded without being uploaded again.
type shipper struct {
	tenant string
	dir    string
	bkt    objstore.Bucket
	logger *slog.Logger
	m      *storeMetrics

	mu      sync.Mutex // serialises Sync
	shipped map[ulid.ULID]struct{}
	pending int

	// shippedAt is when each shipped block was shipped: by this process,
	// when it shipped it; for blocks shipped before it started, when the
	// block was made (its ULID's time). Apart from mu, which Sync holds
	// while it uploads: queries read it.
	atMu      sync.Mutex
	shippedAt map[ulid.ULID]time.Time
}

type shippedState struct {
	Version  int         `json:"version"`
	Uploaded []ulid.ULID `json:"uploaded"`
}

func newShipper(id, dir string, bkt objstore.Bucket, logger *slog.Logger, m *storeMetrics) (*shipper, error) {
	s := &shipper{tenant: id, dir: dir, bkt: bkt, logger: logger, m: m, shipped: map[ulid.ULID]struct{}{}, shippedAt: map[ulid.ULID]time.Time{}}
	b, err := os.ReadFile(filepath.Join(dir, shippedFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", shippedFile, err)
	}
	var st shippedState
	if err := json.Unmarshal(b, &st); err != nil {
		// A torn record is rebuilt from the bucket: every block is checked
		// for meta.json there before it is uploaded.
		logger.Warn("ignoring unreadable shipper state", "tenant", id, "err", err)
		return s, nil
	}
	for _, id := range st.Uploaded {
		s.shipped[id] = struct{}{}
		s.shippedAt[id] = ulid.Time(id.Time())
	}
	return s, nil
}

// shippedBefore reports whether block id was shipped before cutoff.
func (s *shipper) shippedBefore(id ulid.ULID, cutoff time.Time) bool {
	s.atMu.Lock()
	defer s.atMu.Unlock()
	at, ok := s.shippedAt[id]
	return ok && at.Before(cutoff)
}

// isShipped reports whether block id is in the bucket.
func (s *shipper) isShipped(id ulid.ULID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.shipped[id]
	return ok
}

// Pending returns the number of local blocks not yet shipped at the last Sync.
func (s *shipper) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// Sync uploads every block of db not shipped yet, oldest first. It stops at
// the first failure, which it returns; the next Sync retries from there.
func (s *shipper) Sync(ctx context.Context, db *tsdb.DB) (uploaded []*blockmeta.Meta, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	blocks := db.Blocks()
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].Meta().MinTime < blocks[j].Meta().MinTime })
	var todo []*tsdb.Block
	for _, b := range blocks {
		if _, ok := s.shipped[b.Meta().ULID]; !ok {
			todo = append(todo, b)
		}
	}
	s.pending = len(todo)
	s.m.pendingBlocks.WithLabelValues(s.tenant).Set(float64(s.pending))
	for _, b := range todo {
		meta := b.Meta()
		if err := s.upload(ctx, b.Dir(), meta.ULID); err != nil {
			s.m.uploadFailures.WithLabelValues(s.tenant).Inc()
			return uploaded, fmt.Errorf("ship block %s of tenant %q: %w", meta.ULID, s.tenant, err)
		}
		s.shipped[meta.ULID] = struct{}{}
		s.atMu.Lock()
		s.shippedAt[meta.ULID] = time.Now()
		s.atMu.Unlock()
		if err := s.persist(); err != nil {
			return uploaded, err
		}
		s.pending--
		s.m.pendingBlocks.WithLabelValues(s.tenant).Set(float64(s.pending))
		s.m.blocksShipped.WithLabelValues(s.tenant).Inc()
		s.logger.Info("block shipped", "tenant", s.tenant, "block", meta.ULID, "mint", meta.MinTime, "maxt", meta.MaxTime, "samples", meta.Stats.NumSamples)
		uploaded = append(uploaded, &blockmeta.Meta{BlockMeta: meta, Strata: &blockmeta.Ext{Resolution: blockmeta.ResRaw, Source: blockmeta.SourceShipper}})
	}
	return uploaded, nil
}

// upload copies the block in dir to <tenant>/<id>/, meta.json last, tagged
// as a raw block from the shipper.
func (s *shipper) upload(ctx context.Context, dir string, id ulid.ULID) error {
	if ok, err := s.bkt.Exists(ctx, path.Join(s.tenant, id.String(), metaFilename)); err != nil {
		return err
	} else if ok {
		s.logger.Info("block already in bucket, recording it as shipped", "tenant", s.tenant, "block", id)
		return nil
	}
	meta, err := blockmeta.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read meta.json of %s: %w", dir, err)
	}
	meta.Strata = &blockmeta.Ext{Resolution: blockmeta.ResRaw, Source: blockmeta.SourceShipper}
	return blockmeta.Upload(ctx, s.bkt, s.tenant, dir, meta)
}

// persist writes the shipped record atomically. The caller holds s.mu.
func (s *shipper) persist() error {
	st := shippedState{Version: 1, Uploaded: make([]ulid.ULID, 0, len(s.shipped))}
	for id := range s.shipped {
		st.Uploaded = append(st.Uploaded, id)
	}
	sort.Slice(st.Uploaded, func(i, j int) bool { return st.Uploaded[i].Compare(st.Uploaded[j]) < 0 })
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, shippedFile), b)
}

// writeFileAtomic replaces path with b: a crash, even of the machine, leaves
// the old or the new content (the rename is made durable by tsdb's fileutil,
// which syncs the parent directory).
func writeFileAtomic(p string, b []byte) error {
	tmp := p + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fileutil.Rename(tmp, p); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
