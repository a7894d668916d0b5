package blocks

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/tombstones"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
)

// DeleteSeries deletes tenant id's series matching ms in [mint, maxt], as
// Prometheus's delete_series: from its head and local blocks through the
// TSDB's tombstones, and from its bucket blocks of every resolution through
// a deletion request stored in the bucket (blockmeta.DeletionRequest).
// Queries leave the request's data out of bucket blocks from the moment it
// is stored; the compactor rewrites the blocks without it.
//
// The request is stored before the head is changed: an error leaves a
// request that a retry repeats harmlessly.
func (s *Store) DeleteSeries(ctx context.Context, id string, mint, maxt int64, ms []*labels.Matcher) error {
	if s.bucket != nil {
		r := blockmeta.NewDeletionRequest(ms, mint, maxt, s.opts.Now().UnixMilli())
		if err := blockmeta.WriteDeletion(ctx, s.opts.Bucket, id, r); err != nil {
			return err
		}
		s.bucket.AddDeletion(id, r)
		s.logger.Info("series deletion requested", "tenant", id, "request", r.ID, "matchers", fmt.Sprint(ms), "mint", mint, "maxt", maxt)
	}
	t, err := s.acquire(id, false)
	if err != nil || t == nil {
		if err == nil {
			s.deleted(id, mint, maxt)
		}
		return err
	}
	defer s.release(t)
	if err := t.db.Delete(ctx, mint, maxt, ms...); err != nil {
		return fmt.Errorf("delete series of tenant %q: %w", id, err)
	}
	s.deleted(id, mint, maxt)
	return nil
}

// deleted tells the change observer that queries of tenant id no longer
// see the deleted range: cached results over it are stale. Called before the
// deletion is acknowledged, as commits are.
func (s *Store) deleted(id string, mint, maxt int64) {
	if s.opts.Changes != nil {
		s.opts.Changes.BucketChanged(id, mint, maxt)
	}
}

// CleanTombstones rewrites tenant id's local blocks that hold deleted data,
// as Prometheus's clean_tombstones. Bucket blocks are the compactor's.
func (s *Store) CleanTombstones(id string) error {
	t, err := s.acquire(id, false)
	if err != nil || t == nil {
		return err
	}
	defer s.release(t)
	if err := t.db.CleanTombstones(); err != nil {
		return fmt.Errorf("clean tombstones of tenant %q: %w", id, err)
	}
	return nil
}

// deletionTombstones caches the tombstones deletion requests put on bucket
// blocks, by block and set of requests: blocks are immutable, so the
// series a request selects in one never change.
type deletionTombstones struct {
	mu      sync.Mutex
	byBlock map[ulid.ULID]cachedStones
}

type cachedStones struct {
	key    string // the requests' IDs
	stones tombstones.Reader
	n      int // series touched
}

// maxCachedStones bounds the blocks whose tombstones are kept; past it the
// cache starts over (cheap to compute again: one postings lookup per
// request).
const maxCachedStones = 4096

// withDeletions returns the block as queries of tenant id read it: without
// the data of the tenant's deletion requests.
func (s *Store) withDeletions(ctx context.Context, id string, meta *blockmeta.Meta, b *tsdb.Block) (tsdb.BlockReader, error) {
	var reqs []*blockmeta.DeletionRequest
	for _, r := range s.bucket.Deletions(id) {
		if r.Overlaps(meta.MinTime, meta.MaxTime, meta.Resolution()) {
			reqs = append(reqs, r)
		}
	}
	if len(reqs) == 0 {
		return b, nil
	}
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.ID
	}
	key := strings.Join(ids, ",")
	s.stones.mu.Lock()
	c, ok := s.stones.byBlock[meta.ULID]
	s.stones.mu.Unlock()
	if !ok || c.key != key {
		ir, err := b.Index()
		if err != nil {
			return nil, err
		}
		stones, n, err := blockmeta.Tombstones(ctx, ir, meta.Resolution(), reqs)
		_ = ir.Close()
		if err != nil {
			return nil, fmt.Errorf("deleted series of block %s: %w", meta.ULID, err)
		}
		// The block's own tombstones (a local block deleted from before it
		// was shipped) stay.
		if err := blockmeta.AddOwnTombstones(stones, b); err != nil {
			return nil, err
		}
		c = cachedStones{key: key, stones: stones, n: n}
		s.stones.mu.Lock()
		if s.stones.byBlock == nil || len(s.stones.byBlock) >= maxCachedStones {
			s.stones.byBlock = map[ulid.ULID]cachedStones{}
		}
		s.stones.byBlock[meta.ULID] = c
		s.stones.mu.Unlock()
	}
	if c.n == 0 {
		return b, nil
	}
	return blockmeta.WithTombstones(b, c.stones), nil
}
