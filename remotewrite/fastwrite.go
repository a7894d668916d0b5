package remotewrite

import (
	"context"
	"net/http"
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
	refs       refCaches
	v1s, v2s   sync.Pool // *flatV1, *flatV2
	validSlice sync.Pool // *[]validSeries
}

// validSeries is a stored series of a 2.0 request whose metadata is stored
// after the commit.
type validSeries struct {
	ts writev2.TimeSeries
	ls labels.Labels
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
	return &flatV2{metaSeen: map[familyMetadata]struct{}{}}
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
	var appendErr error
	for _, s := range f.series {
		if s.complex > 0 {
			appendErr = ba.seriesV1(&f.complex[s.complex-1])
		} else {
			appendErr = ba.seriesV1Cached(cache, &f.key, &f.scratch, f.labels[s.lblLo:s.lblHi], f.samples[s.smpLo:s.smpHi])
		}
		if appendErr != nil {
			break
		}
	}
	ba.finish(appendErr)
	return res, true
}

// seriesV1Cached appends the float samples of a 1.0 series without
// exemplars or histograms, as seriesV1 does, taking labels and ref from
// the cache when the series was seen before.
func (ba *batch) seriesV1Cached(cache *refCache, k *labelKey, scratch *[]byte, lbls []prompb.Label, samples []prompb.Sample) error {
	k.reset()
	for i := range lbls {
		k.add(lbls[i].Name, lbls[i].Value)
	}
	e, key, hit := cache.lookup(k, scratch)
	ls, ref := e.ls, e.ref
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
	if k.ok && ref != 0 && (!hit || ref != first) {
		cache.put(key, ls, ref)
	}
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
	vp, _ := h.fast.validSlice.Get().(*[]validSeries)
	if vp == nil {
		vp = new([]validSeries)
	}
	valid := (*vp)[:0]
	defer func() {
		clear(valid)
		if cap(valid) <= maxPooledSeries {
			*vp = valid[:0]
			h.fast.validSlice.Put(vp)
		}
	}()
	var appendErr error
	for _, s := range f.series {
		var ts writev2.TimeSeries
		if s.complex > 0 {
			ts = f.complex[s.complex-1]
		} else {
			ts = writev2.TimeSeries{LabelsRefs: f.refs[s.lblLo:s.lblHi], Samples: f.samples[s.smpLo:s.smpHi], Metadata: s.meta}
		}
		var (
			ls  labels.Labels
			ref storage.SeriesRef
			key uint64
			hit bool
		)
		if s.complex == 0 {
			key, ls, ref, hit = cachedV2(cache, &f.key, &f.scratch, &ts, f.symbols)
		}
		if !hit {
			var ok bool
			if ls, ok = ba.seriesV2(&ts, f.symbols); !ok {
				continue
			}
		} else if !ba.withinLimits(ls, len(ts.Samples)) { // as seriesV2 checks it
			continue
		}
		first := ref
		if ref, appendErr = ba.samplesV2(&ts, ls, f.symbols, ref); appendErr != nil {
			break
		}
		if s.complex == 0 && f.key.ok && ref != 0 && (!hit || ref != first) {
			cache.put(key, ls, ref)
		}
		valid = append(valid, validSeries{ts: ts, ls: ls})
	}
	ba.finish(appendErr)
	if res.err == nil || res.err.code < 500 {
		var (
			prev     writev2.Metadata
			prevName uint32
		)
		for i := range valid {
			// Series of one family usually follow each other: a series with
			// the metadata and metric name references of the one before
			// carries the same entry.
			ts := &valid[i].ts
			name, named := nameRef(ts.LabelsRefs, f.symbols)
			if i > 0 && named && name == prevName && ts.Metadata.Type == prev.Type && ts.Metadata.HelpRef == prev.HelpRef && ts.Metadata.UnitRef == prev.UnitRef {
				continue
			}
			h.metadataV2Once(id, ts, valid[i].ls, f.symbols, f.metaSeen)
			prev, prevName = ts.Metadata, name
			if !named {
				// No comparable name: never skip the next series.
				prevName, prev.Type = 0, -1
			}
		}
	}
	return res, true
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

// cachedV2 looks a 2.0 series up in the cache. It reports a hit only when
// seriesV2 would accept the series: the labels match a cached (validated)
// label set, and the series has samples and valid metadata references.
// It leaves the series' key in k (k.ok false when there is none).
func cachedV2(cache *refCache, k *labelKey, scratch *[]byte, ts *writev2.TimeSeries, symbols []string) (key uint64, ls labels.Labels, ref storage.SeriesRef, hit bool) {
	k.reset()
	refs := ts.LabelsRefs
	if len(refs)%2 != 0 || len(ts.Samples)+len(ts.Histograms) == 0 ||
		int(ts.Metadata.UnitRef) >= len(symbols) || int(ts.Metadata.HelpRef) >= len(symbols) {
		k.ok = false
		return 0, ls, 0, false
	}
	for i := 0; i < len(refs); i += 2 {
		n, v := refs[i], refs[i+1]
		if int(n) >= len(symbols) || int(v) >= len(symbols) {
			k.ok = false
			return 0, ls, 0, false
		}
		k.add(symbols[n], symbols[v])
	}
	e, key, hit := cache.lookup(k, scratch)
	return key, e.ls, e.ref, hit
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
func (h *Handler) metadataV2Once(id string, ts *writev2.TimeSeries, ls labels.Labels, symbols []string, seen map[familyMetadata]struct{}) {
	md, err := ts.ToMetadata(symbols)
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
