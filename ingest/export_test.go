package ingest

import (
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// The reference cache of a tenant, for tests of the write path.

func (p *Pipeline) CacheLen(tenant string) int { return p.refs.get(tenant).len() }

func (p *Pipeline) CacheGet(tenant string, h uint64) (labels.Labels, storage.SeriesRef, bool) {
	e, ok := p.refs.get(tenant).get(h)
	return e.ls, e.ref, ok
}

func (p *Pipeline) CachePut(tenant string, h uint64, ls labels.Labels, ref storage.SeriesRef) {
	p.refs.get(tenant).put(h, ls, ref)
}

// KeyOf is the cache key of a series of labels kv.
var KeyOf = hashOf
