package blocks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
)

// Ship uploads every tenant's local blocks that are not in the bucket yet.
// It returns the tenants' errors joined; each tenant's next Ship retries.
func (s *Store) Ship(ctx context.Context) error {
	if s.bucket == nil {
		return nil
	}
	var errs []error
	open, release := s.openTenants()
	defer release()
	for _, t := range open {
		if err := s.shipTenant(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) shipTenant(ctx context.Context, t *tenantDB) error {
	uploaded, err := t.shipper.Sync(ctx, t.db)
	for _, meta := range uploaded {
		s.bucket.Add(t.id, meta)
	}
	return err
}

func (s *Store) pendingBlocks() int {
	n := 0
	open, release := s.openTenants()
	defer release()
	for _, t := range open {
		if t.shipper != nil {
			n += t.shipper.Pending()
		}
	}
	return n
}

// SyncBucket refreshes the list of blocks in the bucket.
func (s *Store) SyncBucket(ctx context.Context) error {
	if s.bucket == nil {
		return nil
	}
	start := s.opts.Now()
	if err := s.bucket.Sync(ctx, func(tenantID string, id ulid.ULID) { s.cache.Drop(tenantID, id) }); err != nil {
		return err
	}
	s.m.lastSync.Set(float64(start.UnixNano()) / 1e9)
	return nil
}

// Flush cuts everything in every tenant's head, in-order and out-of-order,
// into blocks and, with a bucket, ships them. Samples appended while Flush
// runs may stay in the head. Used before a replica is scaled down or an
// ingester leaves a cluster, by POST /api/v1/admin/flush, and by tests and
// benchmarks. Each head's last block ends at its newest sample (see
// flushHead), so writes go on being taken after a flush.
func (s *Store) Flush(ctx context.Context) error {
	var errs []error
	// Tenants not opened since the last start may hold samples in no block.
	s.openPending()
	open, release := s.openTenants()
	defer release()
	for _, t := range open {
		if err := s.flushHead(t); err != nil {
			errs = append(errs, fmt.Errorf("flush head of tenant %q: %w", t.id, err))
			continue
		}
		if t.shipper != nil {
			if err := s.shipTenant(ctx, t); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// flushHead compacts the head into blocks aligned to the block duration,
// the last one ending at the head's newest sample rather than at its
// range's end. The head then takes no sample older than the end of its last
// block but out of order, so a block cut to the range's end would refuse
// every write until that end, up to a block duration away: writes after
// POST /api/v1/admin/flush, a tenant resuming after its idle close, pushes
// still arriving at an ingester leaving a cluster.
func (s *Store) flushHead(t *tenantDB) error {
	head := t.db.Head()
	if head.NumSeries() > 0 && head.MinTime() <= head.MaxTime() {
		rng := s.opts.BlockDuration.Milliseconds()
		mint, maxt := head.MinTime(), head.MaxTime()
		for start := mint - mod(mint, rng); start <= maxt; start += rng {
			if err := t.db.CompactHead(tsdb.NewRangeHead(head, start, min(start+rng-1, maxt))); err != nil {
				return err
			}
		}
	}
	return t.db.CompactOOOHead(context.Background())
}

// mod is the non-negative remainder of a / b.
func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// shippedBlocksToDelete returns the local retention policy of a tenant with a
// bucket: a block is deleted locally only once it is shipped and older than
// the retention, so an unreachable bucket never costs data.
func (s *Store) shippedBlocksToDelete(shp *shipper) tsdb.BlocksToDeleteFunc {
	return func(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
		cutoff := s.opts.Now().Add(-s.opts.Retention).UnixMilli()
		// The newest in-order block stays whatever its age: at open, the
		// TSDB refuses WAL samples older than its end, which are in blocks
		// already. Without it, a WAL segment not yet checkpointed (a quiet
		// tenant's, or one written by a backfill) would be replayed into
		// the head and its samples cut and shipped a second time, as new
		// blocks whose sources no reader can tell from the first.
		var newest ulid.ULID
		newestMax := int64(math.MinInt64)
		for _, b := range blocks {
			if meta := b.Meta(); !isOutOfOrder(meta) && meta.MaxTime > newestMax {
				newest, newestMax = meta.ULID, meta.MaxTime
			}
		}
		del := map[ulid.ULID]struct{}{}
		for _, b := range blocks {
			meta := b.Meta()
			if meta.MaxTime < cutoff && meta.ULID != newest && shp.isShipped(meta.ULID) {
				del[meta.ULID] = struct{}{}
			}
		}
		return del
	}
}

// isOutOfOrder reports whether a local block was cut from the out-of-order
// head, which the TSDB leaves out of the head's minimum valid time.
func isOutOfOrder(m tsdb.BlockMeta) bool {
	return slices.Contains(m.Compaction.Hints, tsdb.CompactionHintFromOutOfOrder)
}
