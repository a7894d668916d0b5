package limits

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// SeriesLimiter enforces the active-series limits of every tenant. Each
// tenant's head calls its SeriesTracker (a tsdb.SeriesLifecycleCallback)
// when it is about to create, has created or has garbage-collected a
// series, so the check costs nothing for samples of existing series.
type SeriesLimiter struct {
	overrides *Overrides
	// replicationFactor and ingesters, when ingesters is set, make the
	// limits the cluster's: each ingester enforces LocalLimit of them.
	replicationFactor int
	ingesters         func() int

	mu       sync.Mutex
	trackers map[string]*SeriesTracker

	activeDesc *prometheus.Desc
}

// NewSeriesLimiter returns the series limiter of the tenants of o; it
// exports strata_active_series per tenant to reg.
func NewSeriesLimiter(o *Overrides, reg prometheus.Registerer) *SeriesLimiter {
	s := &SeriesLimiter{
		overrides: o,
		trackers:  map[string]*SeriesTracker{},
		activeDesc: prometheus.NewDesc("strata_active_series",
			"Series in the head of a tenant, as counted for -limits.max-active-series.", []string{"tenant"}, nil),
	}
	if reg != nil {
		reg.MustRegister(s)
	}
	return s
}

// NewSharedSeriesLimiter returns the series limiter of one ingester of a
// cluster, where each series is written to replicationFactor ingesters and
// ingesters() is how many healthy ones share the series now: a tenant's
// limits are the cluster's, and this ingester refuses new series beyond its
// share, LocalLimit(limit, replicationFactor, ingesters()), recomputed at
// every new series so that it follows the ring. As Mimir's, the share holds
// the cluster-wide count near the limit as far as the ring's tokens spread
// each tenant's series evenly.
func NewSharedSeriesLimiter(o *Overrides, reg prometheus.Registerer, replicationFactor int, ingesters func() int) *SeriesLimiter {
	s := NewSeriesLimiter(o, reg)
	s.replicationFactor, s.ingesters = replicationFactor, ingesters
	return s
}

// LocalLimit returns the part of a cluster-wide series limit that one of
// ingesters healthy ingesters enforces when each series is written to
// replicationFactor of them: limit × replicationFactor / ingesters, rounded
// down and at least 1, so that a limit never turns into 0 (no limit). With
// no more ingesters than replicas every ingester holds every series, and
// with none known (the ring not seen yet) the share is unknown: both
// enforce the whole limit. A limit of 0 (none) stays 0.
func LocalLimit(limit, replicationFactor, ingesters int) int {
	if limit <= 0 || ingesters <= replicationFactor {
		return limit
	}
	return max(1, int(int64(limit)*int64(replicationFactor)/int64(ingesters)))
}

// local returns the limit this process enforces for a tenant's limit, and
// how many healthy ingesters it was computed for (0 in a single process).
func (s *SeriesLimiter) local(limit int) (local, ingesters int) {
	if s.ingesters == nil || limit <= 0 {
		return limit, 0
	}
	n := s.ingesters()
	return LocalLimit(limit, s.replicationFactor, n), n
}

// refusal is the message of a refused series: n series of what, the most
// this process allows under limit (its local share of it when ingesters > 0).
func (s *SeriesLimiter) refusal(what string, n, limit, ingesters int) string {
	if ingesters == 0 {
		return fmt.Sprintf("%s %d active series, the most it may have", what, n)
	}
	return fmt.Sprintf("%s %d active series in this ingester, the most it may have: its share of the cluster's limit of %d (%d × %d replicas / %d healthy ingesters)",
		what, n, limit, limit, s.replicationFactor, ingesters)
}

// Tracker returns a new tracker for the head of tenant id being opened,
// replacing the tenant's previous one: the head reports every series it
// replays, so counts start from zero at each opening. A new tracker is not
// armed: the series its head replays from the WAL are counted but never
// refused, whatever the limits, since they are stored already.
func (s *SeriesLimiter) Tracker(id string) *SeriesTracker {
	t := &SeriesTracker{tenant: id, limiter: s, perMetric: map[string]int{}}
	s.mu.Lock()
	s.trackers[id] = t
	s.mu.Unlock()
	return t
}

// Describe implements prometheus.Collector.
func (s *SeriesLimiter) Describe(ch chan<- *prometheus.Desc) { ch <- s.activeDesc }

// Collect implements prometheus.Collector.
func (s *SeriesLimiter) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.trackers {
		ch <- prometheus.MustNewConstMetric(s.activeDesc, prometheus.GaugeValue, float64(t.Active()), id)
	}
}

// SeriesTracker counts the series of one tenant's head, in total and per
// metric name, and refuses new series beyond the tenant's limits. Concurrent
// appenders creating different series at once may overshoot a limit by the
// series they create together; the limit holds for sequential writes.
type SeriesTracker struct {
	tenant  string
	limiter *SeriesLimiter
	armed   atomic.Bool
	active  atomic.Int64

	mu        sync.Mutex
	perMetric map[string]int
}

// Arm starts enforcing the limits; the store calls it once the head has
// replayed its WAL.
func (t *SeriesTracker) Arm() { t.armed.Store(true) }

// Active returns the series in the tenant's head.
func (t *SeriesTracker) Active() int64 { return t.active.Load() }

// ActiveForMetric returns the series of metric name in the tenant's head.
func (t *SeriesTracker) ActiveForMetric(name string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.perMetric[name]
}

// PreCreation implements tsdb.SeriesLifecycleCallback: it refuses a new
// series beyond the tenant's limits with an *Error.
func (t *SeriesTracker) PreCreation(lset labels.Labels) error {
	if !t.armed.Load() {
		return nil
	}
	o := t.limiter.overrides
	l := o.For(t.tenant)
	if l.MaxActiveSeries > 0 {
		if lim, n := t.limiter.local(l.MaxActiveSeries); t.active.Load() >= int64(lim) {
			o.Hit(t.tenant, "max_active_series")
			return &Error{Limit: "max_active_series", Msg: t.limiter.refusal("tenant has", lim, l.MaxActiveSeries, n)}
		}
	}
	if l.MaxActiveSeriesPerMetric > 0 {
		name := lset.Get(model.MetricNameLabel)
		t.mu.Lock()
		n := t.perMetric[name]
		t.mu.Unlock()
		if lim, ingesters := t.limiter.local(l.MaxActiveSeriesPerMetric); n >= lim {
			o.Hit(t.tenant, "max_active_series_per_metric")
			return &Error{Limit: "max_active_series_per_metric", Msg: t.limiter.refusal(fmt.Sprintf("metric %q has", name), lim, l.MaxActiveSeriesPerMetric, ingesters)}
		}
	}
	return nil
}

// PostCreation implements tsdb.SeriesLifecycleCallback.
func (t *SeriesTracker) PostCreation(lset labels.Labels) {
	t.active.Add(1)
	name := lset.Get(model.MetricNameLabel)
	t.mu.Lock()
	if _, ok := t.perMetric[name]; !ok {
		// The key must not keep the series' label string alive.
		name = strings.Clone(name)
	}
	t.perMetric[name]++
	t.mu.Unlock()
}

// PostDeletion implements tsdb.SeriesLifecycleCallback.
func (t *SeriesTracker) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	t.active.Add(-int64(len(deleted)))
	t.mu.Lock()
	for _, lset := range deleted {
		name := lset.Get(model.MetricNameLabel)
		if n := t.perMetric[name] - 1; n > 0 {
			t.perMetric[name] = n
		} else {
			delete(t.perMetric, name)
		}
	}
	t.mu.Unlock()
}
