package blocks

import (
	"math"
	"sort"

	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
)

// TenantStatus is what the store knows of one tenant, for status pages.
// Reading it opens no tenant: a closed tenant reports only what is known
// without its TSDB.
type TenantStatus struct {
	ID string
	// Open is whether its TSDB is open; the head fields are zero when not.
	Open bool
	// OpenError is why its last opening failed; empty after a success.
	OpenError string
	// HeadSeries is the series in its head.
	HeadSeries uint64
	// HeadMinTime and HeadMaxTime bound its head's samples in milliseconds;
	// both are zero when the head holds no series or is closed.
	HeadMinTime, HeadMaxTime int64
	// LocalBlocks is the blocks on local disk (open tenants only), of which
	// PendingBlocks were not in the bucket at the last shipping pass: the
	// shipping backlog.
	LocalBlocks, PendingBlocks int
	// BucketBlocks is its blocks in the bucket, as the store reads them.
	BucketBlocks int
	// InBucketOnly is set for a tenant with blocks in the bucket and none on
	// this store's disk (written by another Strata, or before a disk loss).
	InBucketOnly bool
}

// TenantStatuses returns the status of every tenant on disk, open or in the
// bucket, sorted by ID.
func (s *Store) TenantStatuses() []TenantStatus {
	s.mu.Lock()
	byID := make(map[string]*TenantStatus, len(s.tenants))
	var open []*tenantDB
	for id, e := range s.tenants {
		st := &TenantStatus{ID: id}
		if e.openErr != nil {
			st.OpenError = e.openErr.Error()
		}
		if e.t != nil {
			e.refs++ // given back below without counting as use
			open = append(open, e.t)
		}
		byID[id] = st
	}
	s.mu.Unlock()
	for _, t := range open {
		st := byID[t.id]
		h := t.db.Head()
		st.Open = true
		st.HeadSeries = h.NumSeries()
		if mint, maxt := h.MinTime(), h.MaxTime(); st.HeadSeries > 0 && mint <= maxt {
			st.HeadMinTime, st.HeadMaxTime = mint, maxt
		}
		st.LocalBlocks = len(t.db.Blocks())
		if t.shipper != nil {
			st.PendingBlocks = t.shipper.Pending()
		}
		s.unref(t, false)
	}
	if s.bucket != nil {
		for _, id := range s.bucket.Tenants() {
			st := byID[id]
			if st == nil {
				st = &TenantStatus{ID: id, InBucketOnly: true}
				byID[id] = st
			}
			st.BucketBlocks = s.bucket.Count(id)
		}
	}
	out := make([]TenantStatus, 0, len(byID))
	for _, st := range byID {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// BucketBlocks returns the metadata of tenant id's blocks in the bucket, of
// every resolution, oldest first: the blocks its queries read beside the
// head, as of the last sync or shipment. Nil without a bucket.
func (s *Store) BucketBlocks(id string) []*blockmeta.Meta {
	if s.bucket == nil {
		return nil
	}
	return s.bucket.Blocks(id, math.MinInt64, math.MaxInt64)
}

// WALReplayStatus returns the progress of the WAL replay of tenant id's
// last opening (the replay is done when Current equals Max), and false when
// the tenant has not been opened since the store started.
func (s *Store) WALReplayStatus(id string) (tsdb.WALReplayStatus, bool) {
	s.mu.Lock()
	e := s.tenants[id]
	var stats *tsdb.DBStats
	if e != nil {
		stats = e.replay
	}
	s.mu.Unlock()
	if stats == nil {
		return tsdb.WALReplayStatus{}, false
	}
	return stats.Head.WALReplayStatus.GetWALReplayStatus(), true
}
