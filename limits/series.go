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

// Tracker returns a new tracker for the head of tenant id being opened,
// replacing the tenant's previous one: the head reports every series it
// replays, so counts start from zero at each opening. A new tracker is not
// armed: the series its head replays from the WAL are counted but never
// refused, whatever the limits, since they are stored already.
func (s *SeriesLimiter) Tracker(id string) *SeriesTracker {
	t := &SeriesTracker{tenant: id, overrides: s.overrides, perMetric: map[string]int{}}
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
	tenant    string
	overrides *Overrides
	armed     atomic.Bool
	active    atomic.Int64

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
	l := t.overrides.For(t.tenant)
	if l.MaxActiveSeries > 0 && t.active.Load() >= int64(l.MaxActiveSeries) {
		t.overrides.Hit(t.tenant, "max_active_series")
		return &Error{Limit: "max_active_series", Msg: fmt.Sprintf("tenant has %d active series, the most it may have", l.MaxActiveSeries)}
	}
	if l.MaxActiveSeriesPerMetric > 0 {
		name := lset.Get(model.MetricNameLabel)
		t.mu.Lock()
		n := t.perMetric[name]
		t.mu.Unlock()
		if n >= l.MaxActiveSeriesPerMetric {
			t.overrides.Hit(t.tenant, "max_active_series_per_metric")
			return &Error{Limit: "max_active_series_per_metric", Msg: fmt.Sprintf("metric %q has %d active series, the most it may have", name, l.MaxActiveSeriesPerMetric)}
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
