package remotewrite

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
)

// fastPath is the handler's state for the flat decoders and the per-tenant
// series reference caches. It stores exactly what the gogo path stores and
// rejects exactly what it rejects (same checks, same messages): it only
// decodes differently and skips work a cache hit makes redundant.
type fastPath struct {
	refs     refCaches
	v1s, v2s sync.Pool // *flatV1, *flatV2
}

// validSeries is a stored series of a 2.0 request, whose metadata is stored
// after the commit: its index in flatV2.series and its labels.
type validSeries struct {
	idx int
	ls  labels.Labels
}

// maxPooledSeries bounds the flat buffers kept for reuse, so that one huge
// request does not pin its buffers.
const maxPooledSeries = 1 << 16

func (fp *fastPath) getV1() *flatV1 {
	if f, ok := fp.v1s.Get().(*flatV1); ok {
		return f
	}
	return &flatV1{}
}

func (fp *fastPath) putV1(f *flatV1) {
	f.reset()
	if cap(f.series) <= maxPooledSeries {
		fp.v1s.Put(f)
	}
}

func (fp *fastPath) getV2() *flatV2 {
	if f, ok := fp.v2s.Get().(*flatV2); ok {
		return f
	}
	return &flatV2{metaSeen: map[familyMetadata]struct{}{}, metaRefSeen: map[metadataRefs]struct{}{}}
}

func (fp *fastPath) putV2(f *flatV2) {
	f.reset()
	if cap(f.series) <= maxPooledSeries {
		fp.v2s.Put(f)
	}
}

// writeV1Flat stores a 1.0 body decoded by the flat decoder. It returns
// false, having stored nothing, when the body must take the gogo path.
func (h *Handler) writeV1Flat(ctx context.Context, id string, body []byte) (result, bool) {
	f := h.fast.getV1()
	defer h.fast.putV1(f)
	if !f.decode(body) {
		return result{}, false
	}
	adm, herr := h.admitFlatV1(ctx, id, f, body)
	if herr != nil {
		return result{err: herr}, true
	}
	app, herr := h.appender(ctx, id)
	if herr != nil {
		return result{err: herr}, true
	}
	var res result
	ba := newBatch(app, timestamp.FromTime(h.opts.Now().Add(h.opts.MaxFutureTime)), &res)
	ba.adm = adm
	cache := h.fast.refs.get(adm.cacheKey(id))
	rb := &f.rb
	rb.start(len(f.series))
	for i, s := range f.series {
		if s.complex == 0 {
			rb.hashes[i] = keyV1(f.labels[s.lblLo:s.lblHi], adm.dropLabel)
		}
	}
	cache.getMany(rb.hashes, rb.found)
	for i, s := range f.series {
		if rb.found[i].found {
			r := rb.encoded(i)
			rb.found[i].found = matchV1(&r, f.labels[s.lblLo:s.lblHi], adm.dropLabel)
		}
	}
	var appendErr error
	for i, s := range f.series {
		if s.complex > 0 {
			appendErr = ba.seriesV1(&f.complex[s.complex-1])
		} else {
			appendErr = ba.seriesV1Cached(rb, i, f.labels[s.lblLo:s.lblHi], f.samples[s.smpLo:s.smpHi])
		}
		if appendErr != nil {
			break
		}
	}
	ba.finish(appendErr)
	cache.putMany(rb.puts)
	return res, true
}

// keyV1 is the cache key of the labels of a 1.0 series: its pairs with a
// value, less the label the handler drops.
func keyV1(lbls []prompb.Label, drop string) uint64 {
	k := keySeed
	for i := range lbls {
		l := &lbls[i]
		if l.Value == "" || drop != "" && l.Name == drop {
			continue
		}
		k = k.add(stringHash(l.Name)).add(stringHash(l.Value))
	}
	return k.sum()
}

// matchV1 reports whether the labels of a 1.0 series, as keyV1 sees them,
// are the label set r reads.
func matchV1(r *pairsReader, lbls []prompb.Label, drop string) bool {
	for i := range lbls {
		l := &lbls[i]
		if l.Value == "" || drop != "" && l.Name == drop {
			continue
		}
		if !r.next(l.Name, l.Value) {
			return false
		}
	}
	return r.done()
}

// refBatch is the reference cache's part of one request: the key of each
// series (0 for series not looked up), the verified lookups, and the
// entries to record once the request is appended.
type refBatch struct {
	hashes  []uint64
	found   []refLookup
	puts    []refPut
	scratch []byte
}

// start prepares the batch for n series.
func (rb *refBatch) start(n int) {
	rb.hashes = slices.Grow(rb.hashes[:0], n)[:n]
	clear(rb.hashes)
	rb.found = slices.Grow(rb.found[:0], n)[:n]
	rb.puts = rb.puts[:0]
}

// reset drops the references to labels, for the pool.
func (rb *refBatch) reset() {
	clear(rb.found)
	clear(rb.puts)
	rb.found, rb.puts = rb.found[:0], rb.puts[:0]
}

// encoded returns a reader of the labels found for series i.
func (rb *refBatch) encoded(i int) pairsReader {
	rb.scratch = rb.found[i].ls.Bytes(rb.scratch)
	return pairsReader{b: rb.scratch}
}

// hit returns the verified cache entry of series i, if there is one.
func (rb *refBatch) hit(i int) (labels.Labels, storage.SeriesRef, bool) {
	lk := &rb.found[i]
	if !lk.found {
		return labels.EmptyLabels(), 0, false
	}
	return lk.ls, lk.ref, true
}

// appended records that series i, whose ref was first before its samples
// were appended and is ref after, has labels ls.
func (rb *refBatch) appended(i int, ls labels.Labels, first, ref storage.SeriesRef) {
	lk := &rb.found[i]
	if rb.hashes[i] != 0 && ref != 0 && (!lk.found || ref != first || lk.fromOld) {
		rb.puts = append(rb.puts, refPut{hash: rb.hashes[i], refEntry: refEntry{ref: ref, ls: ls}})
	}
}

// seriesV1Cached appends the float samples of a 1.0 series without
// exemplars or histograms, as seriesV1 does, taking labels and ref from
// the cache when the series was seen before.
func (ba *batch) seriesV1Cached(rb *refBatch, i int, lbls []prompb.Label, samples []prompb.Sample) error {
	ls, ref, hit := rb.hit(i)
	if !hit {
		ba.b.Reset()
		for i := range lbls {
			ba.addLabel(lbls[i].Name, lbls[i].Value)
		}
		var err error
		if ls, err = ba.labels(); err != nil {
			ba.reject(reasonInvalidLabels, len(samples), "invalid series %s: %v", ls.String(), err)
			return nil
		}
	}
	// Checked on every request, cached or not: the limits may have changed
	// since the series was cached.
	if !ba.withinLimits(ls, len(samples)) {
		return nil
	}
	first := ref
	var err error
	for _, s := range samples {
		if ref, err = ba.appendSample(ref, ls, 0, s.Timestamp, s.Value, nil, nil); err != nil {
			return err
		}
	}
	rb.appended(i, ls, first, ref)
	return nil
}

// writeV2Flat stores a 2.0 body decoded by the flat decoder. It returns
// false, having stored nothing, when the body must take the gogo path.
func (h *Handler) writeV2Flat(ctx context.Context, id string, body []byte) (result, bool) {
	f := h.fast.getV2()
	defer h.fast.putV2(f)
	if !f.decode(body) {
		return result{}, false
	}
	if len(f.symbols) > 0 && f.symbols[0] != "" {
		return result{err: errorf(http.StatusBadRequest, "symbols table must start with an empty string")}, true
	}
	adm, herr := h.admitFlatV2(ctx, id, f, body)
	if herr != nil {
		return result{err: herr}, true
	}
	app, herr := h.appender(ctx, id)
	if herr != nil {
		return result{err: herr}, true
	}
	var res result
	ba := newBatch(app, timestamp.FromTime(h.opts.Now().Add(h.opts.MaxFutureTime)), &res)
	ba.adm = adm
	cache := h.fast.refs.get(adm.cacheKey(id))
	rb := &f.rb
	rb.start(len(f.series))
	f.symHashes = slices.Grow(f.symHashes[:0], len(f.symbols))[:len(f.symbols)]
	clear(f.symHashes)
	for i := range f.series {
		if s := &f.series[i]; s.complex == 0 {
			rb.hashes[i] = f.keyV2(s, adm.dropLabel)
		}
	}
	cache.getMany(rb.hashes, rb.found)
	for i := range f.series {
		if rb.found[i].found {
			r := rb.encoded(i)
			rb.found[i].found = f.matchV2(&r, f.refs[f.series[i].lblLo:f.series[i].lblHi], adm.dropLabel)
		}
	}
	var (
		appendErr error
		ts        writev2.TimeSeries // a flat series, reused
	)
	for i := range f.series {
		s := &f.series[i]
		var (
			tsp *writev2.TimeSeries
			ls  labels.Labels
			ref storage.SeriesRef
			hit bool
		)
		if s.complex > 0 {
			tsp = &f.complex[s.complex-1]
		} else {
			ts.LabelsRefs, ts.Samples, ts.Metadata = f.refs[s.lblLo:s.lblHi], f.samples[s.smpLo:s.smpHi], s.meta
			tsp = &ts
			ls, ref, hit = rb.hit(i)
		}
		if !hit {
			var ok bool
			if ls, ok = ba.seriesV2(tsp, f.symbols); !ok {
				continue
			}
		} else if !ba.withinLimits(ls, len(tsp.Samples)) { // as seriesV2 checks it
			continue
		}
		first := ref
		if ref, appendErr = ba.samplesV2(tsp, ls, f.symbols, ref); appendErr != nil {
			break
		}
		if s.complex == 0 {
			rb.appended(i, ls, first, ref)
		}
		f.valid = append(f.valid, validSeries{idx: i, ls: ls})
	}
	ba.finish(appendErr)
	cache.putMany(rb.puts)
	if res.err == nil || res.err.code < 500 {
		h.metadataFlatV2(id, f)
	}
	return res, true
}

// metadataRefs identifies, within one request, the metadata entry a series
// carries: the symbol references of its metric name, help and unit, and its
// type. Series with the same references carry the same entry; comparing
// references is cheaper than comparing the strings.
type metadataRefs struct {
	name, help, unit uint32
	typ              writev2.Metadata_MetricType
}

// metadataFlatV2 stores the metadata of the valid series of a flat 2.0
// request, each distinct entry once.
func (h *Handler) metadataFlatV2(id string, f *flatV2) {
	var (
		prev  metadataRefs
		named bool
	)
	for i := range f.valid {
		s := &f.series[f.valid[i].idx]
		refs, meta := f.refs[s.lblLo:s.lblHi], s.meta
		if s.complex > 0 {
			c := &f.complex[s.complex-1]
			refs, meta = c.LabelsRefs, c.Metadata
		}
		name, ok := nameRef(refs, f.symbols)
		mr := metadataRefs{name: name, help: meta.HelpRef, unit: meta.UnitRef, typ: meta.Type}
		if ok {
			// Series of one family usually follow each other: a series
			// with the references of the one before carries its entry.
			if named && mr == prev {
				continue
			}
			if _, seen := f.metaRefSeen[mr]; seen {
				prev, named = mr, true
				continue
			}
			f.metaRefSeen[mr] = struct{}{}
		}
		prev, named = mr, ok
		h.metadataV2Once(id, meta, f.valid[i].ls, f.symbols, f.metaSeen)
	}
}

// nameRef returns the symbol reference of the metric name of a series whose
// first label is __name__ (names are sorted, and __name__ sorts first among
// the usual label names), or false.
func nameRef(refs []uint32, symbols []string) (uint32, bool) {
	if len(refs) < 2 || int(refs[0]) >= len(symbols) || symbols[refs[0]] != model.MetricNameLabel {
		return 0, false
	}
	return refs[1], true
}

// symHash returns the hash of symbol i, computing it on first use: a
// request's symbols are each hashed once, however many series use them.
func (f *flatV2) symHash(i uint32) uint64 {
	if h := f.symHashes[i]; h != 0 {
		return h
	}
	h := stringHash(f.symbols[i])
	f.symHashes[i] = h
	return h
}

// keyV2 is the cache key of a flat 2.0 series, as keyV1 computes it from
// the same labels, or 0 when the series is not looked up: only series
// seriesV2 would accept may hit, so those it rejects for their shape (odd
// or out-of-range label references, no samples, metadata references out
// of range) go through it.
func (f *flatV2) keyV2(s *flatSeries, drop string) uint64 {
	refs := f.refs[s.lblLo:s.lblHi]
	if len(refs)%2 != 0 || s.smpHi == s.smpLo ||
		int(s.meta.UnitRef) >= len(f.symbols) || int(s.meta.HelpRef) >= len(f.symbols) {
		return 0
	}
	k := keySeed
	for i := 0; i < len(refs); i += 2 {
		n, v := refs[i], refs[i+1]
		if int(n) >= len(f.symbols) || int(v) >= len(f.symbols) {
			return 0
		}
		if f.symbols[v] == "" || drop != "" && f.symbols[n] == drop {
			continue
		}
		k = k.add(f.symHash(n)).add(f.symHash(v))
	}
	return k.sum()
}

// matchV2 is matchV1 for the label references of a 2.0 series, which
// keyV2 has checked to be within the symbols table.
func (f *flatV2) matchV2(r *pairsReader, refs []uint32, drop string) bool {
	for i := 0; i+1 < len(refs); i += 2 {
		name, value := f.symbols[refs[i]], f.symbols[refs[i+1]]
		if value == "" || drop != "" && name == drop {
			continue
		}
		if !r.next(name, value) {
			return false
		}
	}
	return r.done()
}

// familyMetadata is one metadata entry of a metric family.
type familyMetadata struct {
	family string
	md     metadata.Metadata
}

// metadataV2Once stores the metadata of a 2.0 series as metadataV2 does,
// once per request for each distinct entry (the store keeps a set of
// entries per family, so repeating one changes nothing), copying the
// strings, which point into the request body. seen holds the entries the
// request stored so far.
func (h *Handler) metadataV2Once(id string, meta writev2.Metadata, ls labels.Labels, symbols []string, seen map[familyMetadata]struct{}) {
	md, err := writev2.TimeSeries{Metadata: meta}.ToMetadata(symbols)
	if err != nil || (md.Type == model.MetricTypeUnknown && md.Help == "" && md.Unit == "") {
		return
	}
	key := familyMetadata{family: familyName(ls.Get(model.MetricNameLabel), md.Type), md: md}
	if _, ok := seen[key]; ok {
		return
	}
	seen[key] = struct{}{}
	md.Help, md.Unit = strings.Clone(md.Help), strings.Clone(md.Unit)
	if err := h.store.SetMetadata(id, key.family, md); err != nil {
		h.logger.Warn("storing metadata failed", "tenant", id, "family", key.family, "err", err)
	}
}
