package remotewrite

import (
	"context"
	"net/http"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// writeV1 stores a remote write 1.0 request body.
func (h *Handler) writeV1(ctx context.Context, id string, body []byte) result {
	if res, ok := h.writeV1Flat(ctx, id, body); ok {
		return res
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(body); err != nil {
		return result{err: errorf(http.StatusBadRequest, "decode remote write 1.0 request (%s): %v", ProtoV1, err)}
	}
	adm, herr := h.admitV1(ctx, id, &req, body)
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
	var appendErr error
	for i := range req.Timeseries {
		if appendErr = ba.seriesV1(&req.Timeseries[i]); appendErr != nil {
			break
		}
	}
	ba.finish(appendErr)
	if res.err == nil || res.err.code < 500 {
		for _, m := range req.Metadata {
			md := metadata.Metadata{Type: metricTypeV1(m.Type), Unit: m.Unit, Help: m.Help}
			if m.MetricFamilyName == "" {
				continue
			}
			if err := h.store.SetMetadata(id, m.MetricFamilyName, md); err != nil {
				h.logger.Warn("storing metadata failed", "tenant", id, "family", m.MetricFamilyName, "err", err)
			}
		}
	}
	return res
}

// seriesV1 appends one 1.0 series. It returns an error only for a store
// failure that must fail the whole request.
func (ba *batch) seriesV1(ts *prompb.TimeSeries) error {
	ba.b.Reset()
	for _, l := range ts.Labels {
		ba.addLabel(l.Name, l.Value)
	}
	ls, err := ba.labels()
	n := len(ts.Samples) + len(ts.Histograms)
	if err != nil {
		ba.reject(reasonInvalidLabels, n, "invalid series %s: %v", ls.String(), err)
		return nil
	}
	if !ba.withinLimits(ls, n) {
		return nil
	}
	var ref storage.SeriesRef
	for _, s := range ts.Samples {
		if ref, err = ba.appendSample(ref, ls, 0, s.Timestamp, s.Value, nil, nil); err != nil {
			return err
		}
	}
	for i := range ts.Histograms {
		hp := &ts.Histograms[i]
		if hp.IsFloatHistogram() {
			ref, err = ba.appendSample(ref, ls, 0, hp.Timestamp, 0, nil, hp.ToFloatHistogram())
		} else {
			ref, err = ba.appendSample(ref, ls, 0, hp.Timestamp, 0, hp.ToIntHistogram(), nil)
		}
		if err != nil {
			return err
		}
	}
	if len(ts.Exemplars) > 0 {
		ba.exs = ba.exs[:0]
		eb := ba.b
		for _, e := range ts.Exemplars {
			eb.Reset()
			for _, l := range e.Labels {
				eb.Add(l.Name, l.Value)
			}
			eb.Sort()
			ba.exs = append(ba.exs, exemplar.Exemplar{Labels: eb.Labels(), Value: e.Value, Ts: e.Timestamp, HasTs: true})
		}
		ba.appendExemplars(ref, ls)
	}
	return nil
}

func metricTypeV1(t prompb.MetricMetadata_MetricType) model.MetricType {
	switch t {
	case prompb.MetricMetadata_COUNTER:
		return model.MetricTypeCounter
	case prompb.MetricMetadata_GAUGE:
		return model.MetricTypeGauge
	case prompb.MetricMetadata_HISTOGRAM:
		return model.MetricTypeHistogram
	case prompb.MetricMetadata_GAUGEHISTOGRAM:
		return model.MetricTypeGaugeHistogram
	case prompb.MetricMetadata_SUMMARY:
		return model.MetricTypeSummary
	case prompb.MetricMetadata_INFO:
		return model.MetricTypeInfo
	case prompb.MetricMetadata_STATESET:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}
