package remotewrite

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
)

// writeV2 stores a remote write 2.0 request body.
func (h *Handler) writeV2(ctx context.Context, id string, body []byte) result {
	if res, ok := h.writeV2Flat(ctx, id, body); ok {
		return res
	}
	var req writev2.Request
	if err := req.Unmarshal(body); err != nil {
		return result{err: errorf(http.StatusBadRequest, "decode remote write 2.0 request (%s): %v", ProtoV2, err)}
	}
	if len(req.Symbols) > 0 && req.Symbols[0] != "" {
		return result{err: errorf(http.StatusBadRequest, "symbols table must start with an empty string")}
	}
	adm, herr := h.admitV2(ctx, id, &req, body)
	if herr != nil {
		return result{err: herr}
	}
	app, herr := h.appender(ctx, id)
	if herr != nil {
		return result{err: herr}
	}
	var res result
	ba := newBatch(app, timestamp.FromTime(h.opts.Now().Add(h.opts.MaxFutureTime)), &res)
	ba.adm = adm
	var (
		appendErr error
		withMeta  []seriesMeta // stored after the commit, as a failed request stores nothing
	)
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		ls, ok := ba.seriesV2(ts, req.Symbols)
		if !ok {
			continue
		}
		if _, appendErr = ba.samplesV2(ts, ls, req.Symbols, 0); appendErr != nil {
			break
		}
		withMeta = append(withMeta, seriesMeta{ts, ls})
	}
	ba.finish(appendErr)
	if res.err == nil || res.err.code < 500 {
		for _, s := range withMeta {
			h.metadataV2(id, s.ts, s.ls, req.Symbols)
		}
	}
	return res
}

// seriesMeta is a valid series of a 2.0 request whose metadata is to be stored.
type seriesMeta struct {
	ts *writev2.TimeSeries
	ls labels.Labels
}

// symbol returns symbols[ref], or false when ref is outside the table.
func symbol(symbols []string, ref uint32) (string, bool) {
	if int(ref) >= len(symbols) {
		return "", false
	}
	return symbols[ref], true
}

// seriesV2 resolves and validates the labels of a 2.0 series.
func (ba *batch) seriesV2(ts *writev2.TimeSeries, symbols []string) (labels.Labels, bool) {
	n := len(ts.Samples) + len(ts.Histograms)
	refs := ts.LabelsRefs
	if len(refs)%2 != 0 {
		ba.reject(reasonInvalidLabels, n, "series with label references %v: odd number of references", refs)
		return labels.EmptyLabels(), false
	}
	ba.b.Reset()
	for i := 0; i < len(refs); i += 2 {
		name, ok1 := symbol(symbols, refs[i])
		value, ok2 := symbol(symbols, refs[i+1])
		if !ok1 || !ok2 {
			ba.reject(reasonInvalidLabels, n, "series with label references %v: reference outside the symbols table (size %d)", refs, len(symbols))
			return labels.EmptyLabels(), false
		}
		ba.addLabel(name, value)
	}
	ls, err := ba.labels()
	if err != nil {
		ba.reject(reasonInvalidLabels, n, "invalid series %s: %v", ls.String(), err)
		return ls, false
	}
	if !ba.withinLimits(ls, n) {
		return ls, false
	}
	if n == 0 {
		ba.reject(reasonNoSamples, 0, "series %s has no samples or histograms", ls.String())
		return ls, false
	}
	// Metadata referring outside the symbols table makes the series
	// malformed, as it does in Prometheus's receiver.
	if _, err := ts.ToMetadata(symbols); err != nil {
		ba.reject(reasonInvalidMeta, n, "invalid metadata of series %s: %v", ls.String(), err)
		return ls, false
	}
	return ls, true
}

// samplesV2 appends the samples, histograms and exemplars of a 2.0 series,
// starting with the series reference ref (0 when unknown). It returns the
// series' reference.
func (ba *batch) samplesV2(ts *writev2.TimeSeries, ls labels.Labels, symbols []string, ref storage.SeriesRef) (storage.SeriesRef, error) {
	var err error
	for _, s := range ts.Samples {
		if ref, err = ba.appendSample(ref, ls, s.StartTimestamp, s.Timestamp, s.Value, nil, nil); err != nil {
			return ref, err
		}
	}
	for i := range ts.Histograms {
		hp := &ts.Histograms[i]
		if hp.IsFloatHistogram() {
			ref, err = ba.appendSample(ref, ls, hp.StartTimestamp, hp.Timestamp, 0, nil, hp.ToFloatHistogram())
		} else {
			ref, err = ba.appendSample(ref, ls, hp.StartTimestamp, hp.Timestamp, 0, hp.ToIntHistogram(), nil)
		}
		if err != nil {
			return ref, err
		}
	}
	if len(ts.Exemplars) == 0 {
		return ref, nil
	}
	ba.exs = ba.exs[:0]
	eb := labels.NewScratchBuilder(4)
	for _, e := range ts.Exemplars {
		ex, err := e.ToExemplar(&eb, symbols)
		if err != nil {
			ba.reject("invalid_exemplar", 0, "exemplar of series %s: %v", ls.String(), err)
			continue
		}
		ba.exs = append(ba.exs, ex)
	}
	ba.appendExemplars(ref, ls)
	return ref, nil
}

// metadataV2 records the metadata a 2.0 series carries under its metric
// family name: the metric name less the suffix its type adds.
func (h *Handler) metadataV2(id string, ts *writev2.TimeSeries, ls labels.Labels, symbols []string) {
	md, err := ts.ToMetadata(symbols)
	if err != nil || (md.Type == model.MetricTypeUnknown && md.Help == "" && md.Unit == "") {
		return
	}
	family := familyName(ls.Get(model.MetricNameLabel), md.Type)
	if err := h.store.SetMetadata(id, family, md); err != nil {
		h.logger.Warn("storing metadata failed", "tenant", id, "family", family, "err", fmt.Errorf("set metadata: %w", err))
	}
}

// familyName is the metric family a series of type typ named name belongs to.
func familyName(name string, typ model.MetricType) string {
	var suffixes []string
	switch typ {
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram:
		suffixes = []string{"_bucket", "_count", "_sum", "_gcount", "_gsum"}
	case model.MetricTypeSummary:
		suffixes = []string{"_count", "_sum"}
	}
	for _, s := range suffixes {
		if f, ok := strings.CutSuffix(name, s); ok {
			return f
		}
	}
	return name
}
