package blocks

import (
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// localReads decides which of a tenant's local blocks a query reads. A
// shipped local block whose data the bucket holds in another block (a merge
// of it, or its downsampled blocks once raw data is gone) is left out: the
// bucket block is read instead, and reading both would count downsampled
// windows twice. Every other local block is read, and the bucket's copy of
// it (same ULID) is not.
//
// The TSDB opens each block's querier through the function set in its
// options; the skip rule and the record of what was opened belong to one
// call of open at a time, hence the mutex (opening queriers is brief).
type localReads struct {
	mu     sync.Mutex
	skip   func(ulid.ULID) bool
	opened map[ulid.ULID]bool
	// deleted, when set, returns a block as queries read it: without the
	// data of the tenant's deletion requests, which the block's own
	// tombstones lack when it was cut from data the TSDB's Delete does not
	// reach (the out-of-order head).
	deleted func(*tsdb.Block) (tsdb.BlockReader, error)
}

// install sets o's querier functions to consult l.
func (l *localReads) install(o *tsdb.Options) {
	o.BlockQuerierFunc = func(b tsdb.BlockReader, mint, maxt int64) (storage.Querier, error) {
		if l.leaveOut(b) {
			return storage.NoopQuerier(), nil
		}
		b, err := l.withDeletions(b)
		if err != nil {
			return nil, err
		}
		return tsdb.NewBlockQuerier(b, mint, maxt)
	}
	o.BlockChunkQuerierFunc = func(b tsdb.BlockReader, mint, maxt int64) (storage.ChunkQuerier, error) {
		if l.leaveOut(b) {
			return storage.NoopChunkedQuerier(), nil
		}
		b, err := l.withDeletions(b)
		if err != nil {
			return nil, err
		}
		return tsdb.NewBlockChunkQuerier(b, mint, maxt)
	}
}

// withDeletions returns b as queries read it; heads are returned as they
// are.
func (l *localReads) withDeletions(b tsdb.BlockReader) (tsdb.BlockReader, error) {
	blk, ok := b.(*tsdb.Block)
	if !ok || l.deleted == nil {
		return b, nil
	}
	return l.deleted(blk)
}

// leaveOut reports whether b, a block being opened by open's call, is to be
// left out, and records it as opened otherwise. Heads are always read.
func (l *localReads) leaveOut(b tsdb.BlockReader) bool {
	blk, ok := b.(*tsdb.Block)
	if !ok || l.skip == nil {
		return false
	}
	id := blk.Meta().ULID
	if l.skip(id) {
		return true
	}
	l.opened[id] = true
	return false
}

// open calls f (which opens the TSDB's querier) with skip in force, and
// returns the ULIDs of the local blocks it opened.
func (l *localReads) open(skip func(ulid.ULID) bool, f func() error) (map[ulid.ULID]bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.skip, l.opened = skip, map[ulid.ULID]bool{}
	defer func() { l.skip = nil }()
	err := f()
	return l.opened, err
}
