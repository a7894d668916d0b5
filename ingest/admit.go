package ingest

// Per-tenant limits and HA de-duplication of the write path.
//
// Once a request is decoded, admit decides about it as a whole: requests of
// a non-elected HA replica are answered 202 and not stored (see package
// hatracker, which keeps those that may be needed after a failover and
// hands them back to be stored when one happens), then the tenant's token
// bucket must hold a token per sample and histogram, or the request gets
// 429 and is retried by the sender. Admitted requests are stored series by
// series: a series over a label limit, the exemplars of a series over the
// exemplar limit and new series over the active-series limits (refused by
// the tenant head's series callback, limits.SeriesTracker) are rejected
// with 400 naming the limit, and the valid rest is stored. The label
// limits cost a pass over each series' labels; nothing here allocates per
// sample.

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/strata-tsdb/strata/hatracker"
	"github.com/strata-tsdb/strata/limits"
)

// Rejection reasons of the limits: the limit's key.
const (
	ReasonRateLimited    = "rate_limited"
	reasonMaxLabelNames  = "max_label_names_per_series"
	reasonLabelNameLen   = "max_label_name_length"
	reasonLabelValueLen  = "max_label_value_length"
	reasonMaxExemplars   = "max_exemplars_per_series"
	reasonHADeduplicated = "ha_deduplicated"
)

// limitState is the pipeline's part of the limits.
type limitState struct {
	overrides *limits.Overrides // nil: no limits
	rates     *limits.RateLimiters
	ha        *hatracker.Tracker
	deduped   *prometheus.CounterVec
}

func newLimitState(opts Options) *limitState {
	ls := &limitState{overrides: opts.Limits, ha: opts.HA, rates: opts.Rates}
	if ls.overrides != nil {
		if ls.rates == nil {
			ls.rates = limits.NewRateLimiters(ls.overrides)
		}
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
	// replay are the kept requests of a newly elected replica, to be
	// stored before this one (see Pipeline.Write).
	replay []hatracker.Kept
}

// admit applies the request-wide limits to a decoded request.
func (p *Pipeline) admit(id string, req *Request) (admission, *Error) {
	o := p.lims.overrides
	if o == nil {
		return admission{}, nil
	}
	l := o.For(id)
	adm := admission{tenant: id, overrides: o, lim: l}
	n := 0
	for i := range req.Series {
		n += req.Series[i].count()
	}
	now := p.opts.Now()
	if l.AcceptHASamples && len(req.Series) > 0 {
		// As Prometheus's external labels are on every series, the first
		// series names the request's cluster and replica. Copied: they may
		// point into the request body, which is reused, and the tracker
		// and the metrics keep them.
		cluster, replica := strings.Clone(req.label(&req.Series[0], l.HAClusterLabel)), strings.Clone(req.label(&req.Series[0], l.HAReplicaLabel))
		if cluster != "" && replica != "" {
			res := p.lims.ha.Check(hatracker.Request{
				Tenant: id, Cluster: cluster, Replica: replica,
				MaxTime: req.maxTime(), Body: req.Body, Proto: req.Proto,
			}, now, time.Duration(l.HAFailoverTimeout), l.HAFailoverBufferBytes)
			if res.Decision == hatracker.Deduplicate {
				p.lims.deduped.WithLabelValues(id, cluster).Add(float64(n))
				return adm, Errorf(http.StatusAccepted, "samples of replica %q of HA cluster %q not stored: the elected replica is %q", replica, cluster, res.Elected)
			}
			adm.dropLabel = l.HAReplicaLabel
			adm.haFilter, adm.haMinTime = res.Filter, res.MinTime
			adm.replay = res.Replay
		}
	}
	if n > 0 && !p.lims.rates.AllowN(id, now, n) {
		o.Hit(id, "ingestion_rate")
		return adm, Errorf(http.StatusTooManyRequests,
			"ingestion rate limit of tenant %q exceeded: %d samples in this request, limit %g samples/s with burst %d (limit ingestion_rate)",
			id, n, l.IngestionRate, l.IngestionBurst)
	}
	return adm, nil
}

// label returns the value of label name of series s, "" when it has none.
func (r *Request) label(s *Series, name string) string {
	refs := r.Refs[s.Labels.Lo:s.Labels.Hi]
	for i := 0; i+1 < len(refs); i += 2 {
		if n, ok := r.symbol(refs[i]); ok && n == name {
			v, _ := r.symbol(refs[i+1])
			return v
		}
	}
	return ""
}

// maxTime returns the newest timestamp of the request's samples and
// histograms.
func (r *Request) maxTime() int64 {
	t := int64(math.MinInt64)
	for i := range r.Samples {
		t = max(t, r.Samples[i].T)
	}
	for i := range r.Histograms {
		t = max(t, r.Histograms[i].T)
	}
	return t
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
