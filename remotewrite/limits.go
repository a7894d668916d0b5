package remotewrite

// Per-tenant limits and HA de-duplication of the receiver.
//
// Once a request is decoded, admit decides about it as a whole: requests of
// a non-elected HA replica are answered 202 and not stored (see package
// hatracker, which keeps those that may be needed after a failover and hands
// them back to be stored when one happens), then the tenant's token bucket must hold a token per sample
// and histogram, or the request gets 429 and is retried by the sender.
// Admitted requests are stored series by series: a series over a label
// limit, the exemplars of a series over the exemplar limit and new series
// over the active-series limits (refused by the tenant head's series
// callback, limits.SeriesTracker) are rejected with 400 naming the limit,
// and the valid rest is stored. The label limits cost a pass over each
// series' labels; nothing here allocates per sample.

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/strata-tsdb/strata/hatracker"
	"github.com/strata-tsdb/strata/limits"
)

// Rejection reasons of the limits: the limit's key.
const (
	reasonRateLimited    = "rate_limited"
	reasonMaxLabelNames  = "max_label_names_per_series"
	reasonLabelNameLen   = "max_label_name_length"
	reasonLabelValueLen  = "max_label_value_length"
	reasonMaxExemplars   = "max_exemplars_per_series"
	reasonHADeduplicated = "ha_deduplicated"
)

// limitState is the handler's part of the limits.
type limitState struct {
	overrides *limits.Overrides // nil: no limits
	rates     *limits.RateLimiters
	ha        *hatracker.Tracker
	deduped   *prometheus.CounterVec
}

func newLimitState(opts Options) *limitState {
	ls := &limitState{overrides: opts.Limits, ha: opts.HA}
	if ls.overrides != nil {
		ls.rates = limits.NewRateLimiters(ls.overrides)
		if ls.ha == nil {
			ls.ha = hatracker.New(opts.Registerer)
		}
	}
	ls.deduped = promauto.With(opts.Registerer).NewCounterVec(prometheus.CounterOpts{
		Name: "strata_remote_write_ha_deduplicated_samples_total",
		Help: "Samples and histograms of non-elected HA replicas, answered 202 and not stored, by tenant and cluster.",
	}, []string{"tenant", "cluster"})
	return ls
}

// admission is the outcome of admit for the series of one request.
type admission struct {
	tenant    string
	overrides *limits.Overrides
	lim       *limits.Limits // nil without limits
	// dropLabel is the HA replica label, removed from every series of an
	// elected replica's request; empty otherwise.
	dropLabel string
	// haFilter drops the samples at or before haMinTime: the previously
	// elected replica of the cluster has stored them.
	haFilter  bool
	haMinTime int64
}

// maxBody returns the body size limit of tenant id.
func (h *Handler) maxBody(id string) int64 {
	if h.lims.overrides != nil {
		if n := h.lims.overrides.For(id).MaxRequestBodyBytes; n > 0 {
			return n
		}
	}
	return h.opts.MaxBodyBytes
}

// requestInfo is what admit needs to know of a decoded request.
type requestInfo struct {
	proto   string // ProtoV1 or ProtoV2
	body    []byte // decoded body
	samples int    // samples and histograms
	maxTime int64  // newest sample or histogram timestamp; set only with HA
	// first returns the value of a label of the request's first series.
	first func(name string) string
}

// admit applies the request-wide limits to a decoded request.
func (h *Handler) admit(ctx context.Context, id string, ri requestInfo) (admission, *httpError) {
	o := h.lims.overrides
	l := o.For(id)
	adm := admission{tenant: id, overrides: o, lim: l}
	if l.AcceptHASamples && ri.first != nil {
		// As Prometheus's external labels are on every series, the first
		// series names the request's cluster and replica.
		// Copied: they may point into the request body, which is reused,
		// and the tracker and the metrics keep them.
		cluster, replica := strings.Clone(ri.first(l.HAClusterLabel)), strings.Clone(ri.first(l.HAReplicaLabel))
		if cluster != "" && replica != "" {
			res := h.lims.ha.Check(hatracker.Request{
				Tenant: id, Cluster: cluster, Replica: replica,
				MaxTime: ri.maxTime, Body: ri.body, Proto: ri.proto,
			}, time.Now(), time.Duration(l.HAFailoverTimeout), l.HAFailoverBufferBytes)
			if res.Decision == hatracker.Deduplicate {
				h.lims.deduped.WithLabelValues(id, cluster).Add(float64(ri.samples))
				return adm, errorf(http.StatusAccepted, "samples of replica %q of HA cluster %q not stored: the elected replica is %q", replica, cluster, res.Elected)
			}
			adm.dropLabel = l.HAReplicaLabel
			adm.haFilter, adm.haMinTime = res.Filter, res.MinTime
			for _, k := range res.Replay {
				h.replay(ctx, id, k)
			}
		}
	}
	if ri.samples > 0 && !h.lims.rates.AllowN(id, time.Now(), ri.samples) {
		o.Hit(id, "ingestion_rate")
		h.metrics.rejected.WithLabelValues(id, reasonRateLimited).Add(float64(ri.samples))
		return adm, errorf(http.StatusTooManyRequests,
			"ingestion rate limit of tenant %q exceeded: %d samples in this request, limit %g samples/s with burst %d (limit ingestion_rate)",
			id, ri.samples, l.IngestionRate, l.IngestionBurst)
	}
	return adm, nil
}

// replay stores a request of a newly elected HA replica that was answered
// 202 while another replica was elected (see package hatracker).
func (h *Handler) replay(ctx context.Context, id string, k hatracker.Kept) {
	var res result
	if k.Proto == ProtoV2 {
		res = h.writeV2(ctx, id, k.Body)
	} else {
		res = h.writeV1(ctx, id, k.Body)
	}
	h.metrics.record(id, &res)
	if res.err != nil {
		h.logger.Warn("storing a kept request of a newly elected HA replica failed", "tenant", id, "code", res.err.code, "err", res.err.err)
	}
}

// admitV1 is admit for a remote write 1.0 request decoded by gogo.
func (h *Handler) admitV1(ctx context.Context, id string, req *prompb.WriteRequest, body []byte) (admission, *httpError) {
	if h.lims.overrides == nil {
		return admission{}, nil
	}
	ri := requestInfo{proto: ProtoV1, body: body, maxTime: math.MinInt64}
	ha := h.lims.overrides.For(id).AcceptHASamples
	for i := range req.Timeseries {
		observeSeries(&ri, ha, req.Timeseries[i].Samples, req.Timeseries[i].Histograms)
	}
	if len(req.Timeseries) > 0 {
		ri.first = firstLabelV1(req.Timeseries[0].Labels)
	}
	return h.admit(ctx, id, ri)
}

// admitV2 is admit for a remote write 2.0 request decoded by gogo.
func (h *Handler) admitV2(ctx context.Context, id string, req *writev2.Request, body []byte) (admission, *httpError) {
	if h.lims.overrides == nil {
		return admission{}, nil
	}
	ri := requestInfo{proto: ProtoV2, body: body, maxTime: math.MinInt64}
	ha := h.lims.overrides.For(id).AcceptHASamples
	for i := range req.Timeseries {
		observeSeries(&ri, ha, req.Timeseries[i].Samples, req.Timeseries[i].Histograms)
	}
	if len(req.Timeseries) > 0 {
		ri.first = firstLabelV2(req.Timeseries[0].LabelsRefs, req.Symbols)
	}
	return h.admit(ctx, id, ri)
}

// haCovered reports whether a sample at t of an elected HA replica is
// dropped because the previously elected replica stored the time already.
func (ba *batch) haCovered(t int64) bool {
	return ba.adm.haFilter && t <= ba.adm.haMinTime
}

// hit counts a limit hit of the batch's tenant.
func (ba *batch) hit(limit string) {
	ba.adm.overrides.Hit(ba.adm.tenant, limit)
}

// withinLimits checks the labels of a valid series of n samples against the
// tenant's limits, rejecting it if it is over one.
func (ba *batch) withinLimits(ls labels.Labels, n int) bool {
	l := ba.adm.lim
	if l == nil || (l.MaxLabelNamesPerSeries == 0 && l.MaxLabelNameLength == 0 && l.MaxLabelValueLength == 0) {
		return true
	}
	if l.MaxLabelNamesPerSeries > 0 {
		if c := ls.Len(); c > l.MaxLabelNamesPerSeries {
			ba.hit(reasonMaxLabelNames)
			ba.reject(reasonMaxLabelNames, n, "series %s has %d labels, more than the limit max_label_names_per_series=%d", ls.String(), c, l.MaxLabelNamesPerSeries)
			return false
		}
	}
	var reason, msg string
	ls.Range(func(lb labels.Label) {
		switch {
		case reason != "":
		case l.MaxLabelNameLength > 0 && len(lb.Name) > l.MaxLabelNameLength:
			reason = reasonLabelNameLen
			msg = fmt.Sprintf("label name %q is %d bytes long, more than the limit max_label_name_length=%d", lb.Name, len(lb.Name), l.MaxLabelNameLength)
		case l.MaxLabelValueLength > 0 && len(lb.Value) > l.MaxLabelValueLength:
			reason = reasonLabelValueLen
			msg = fmt.Sprintf("value of label %q is %d bytes long, more than the limit max_label_value_length=%d", lb.Name, len(lb.Value), l.MaxLabelValueLength)
		}
	})
	if reason != "" {
		ba.hit(reason)
		ba.reject(reason, n, "series %s: %s", ls.String(), msg)
		return false
	}
	return true
}

// limitExemplars keeps at most the tenant's max_exemplars_per_series of the
// exemplars gathered for series ls, rejecting the rest.
func (ba *batch) limitExemplars(ls labels.Labels) {
	l := ba.adm.lim
	if l == nil || l.MaxExemplarsPerSeries <= 0 || len(ba.exs) <= l.MaxExemplarsPerSeries {
		return
	}
	ba.hit(reasonMaxExemplars)
	ba.reject(reasonMaxExemplars, 0, "series %s has %d exemplars, more than the limit max_exemplars_per_series=%d; the first %d were stored",
		ls.String(), len(ba.exs), l.MaxExemplarsPerSeries, l.MaxExemplarsPerSeries)
	ba.exs = ba.exs[:l.MaxExemplarsPerSeries]
}

// cacheKey names the series reference cache of the request's series: the
// tenant's, or, when the HA replica label is dropped, a cache of its own,
// whose label sets (keyed by the labels as sent) are stored without it.
func (a admission) cacheKey(id string) string {
	if a.dropLabel == "" {
		return id
	}
	return id + "\x00" + a.dropLabel
}

// timestamped is a pointer to a remote-write sample or histogram (1.0 or
// 2.0), whose generated getter gives its timestamp.
type timestamped[T any] interface {
	*T
	GetTimestamp() int64
}

// observe counts the samples or histograms ss in ri, and with HA their
// newest timestamp.
func observe[T any, P timestamped[T]](ri *requestInfo, ha bool, ss []T) {
	ri.samples += len(ss)
	if ha {
		for i := range ss {
			ri.maxTime = max(ri.maxTime, P(&ss[i]).GetTimestamp())
		}
	}
}

// observeSeries observes the samples and histograms of one series.
func observeSeries[S, H any, PS timestamped[S], PH timestamped[H]](ri *requestInfo, ha bool, samples []S, histograms []H) {
	observe[S, PS](ri, ha, samples)
	observe[H, PH](ri, ha, histograms)
}

// admitFlatV1 is admit for a remote write 1.0 request decoded flat.
func (h *Handler) admitFlatV1(ctx context.Context, id string, f *flatV1, body []byte) (admission, *httpError) {
	if h.lims.overrides == nil {
		return admission{}, nil
	}
	ri := requestInfo{proto: ProtoV1, body: body, maxTime: math.MinInt64}
	ha := h.lims.overrides.For(id).AcceptHASamples
	for _, s := range f.series {
		if s.complex > 0 {
			ts := &f.complex[s.complex-1]
			observeSeries(&ri, ha, ts.Samples, ts.Histograms)
			continue
		}
		observe(&ri, ha, f.samples[s.smpLo:s.smpHi])
	}
	if len(f.series) > 0 {
		ls := f.labels[f.series[0].lblLo:f.series[0].lblHi]
		if c := f.series[0].complex; c > 0 {
			ls = f.complex[c-1].Labels
		}
		ri.first = firstLabelV1(ls)
	}
	return h.admit(ctx, id, ri)
}

// admitFlatV2 is admit for a remote write 2.0 request decoded flat.
func (h *Handler) admitFlatV2(ctx context.Context, id string, f *flatV2, body []byte) (admission, *httpError) {
	if h.lims.overrides == nil {
		return admission{}, nil
	}
	ri := requestInfo{proto: ProtoV2, body: body, maxTime: math.MinInt64}
	ha := h.lims.overrides.For(id).AcceptHASamples
	for _, s := range f.series {
		if s.complex > 0 {
			ts := &f.complex[s.complex-1]
			observeSeries(&ri, ha, ts.Samples, ts.Histograms)
			continue
		}
		observe(&ri, ha, f.samples[s.smpLo:s.smpHi])
	}
	if len(f.series) > 0 {
		refs := f.refs[f.series[0].lblLo:f.series[0].lblHi]
		if c := f.series[0].complex; c > 0 {
			refs = f.complex[c-1].LabelsRefs
		}
		ri.first = firstLabelV2(refs, f.symbols)
	}
	return h.admit(ctx, id, ri)
}

// firstLabelV1 returns a look-up of the labels of a 1.0 series.
func firstLabelV1(ls []prompb.Label) func(name string) string {
	return func(name string) string {
		for _, l := range ls {
			if l.Name == name {
				return l.Value
			}
		}
		return ""
	}
}

// firstLabelV2 returns a look-up of the labels of a 2.0 series.
func firstLabelV2(refs []uint32, symbols []string) func(name string) string {
	return func(name string) string {
		for i := 0; i+1 < len(refs); i += 2 {
			if n, ok := symbol(symbols, refs[i]); ok && n == name {
				v, _ := symbol(symbols, refs[i+1])
				return v
			}
		}
		return ""
	}
}
