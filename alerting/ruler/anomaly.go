package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/alerting/detect"
)

// Suffixes of the series an anomaly rule writes for each series of its expression.
const (
	SuffixScore = ":anomaly_score"
	SuffixUpper = ":upper"
	SuffixLower = ":lower"
)

// anomalyRule is a live anomaly rule: its definition and one detector per
// series of its expression.
type anomalyRule struct {
	def anomalyRuleDef

	mu      sync.Mutex
	series  map[uint64]*seriesState
	written map[string]labels.Labels // output series written by the last evaluation
	lastErr error
	lastTs  time.Time
}

type seriesState struct {
	det      detect.Detector
	lastSeen time.Time
}

func newAnomalyRule(def anomalyRuleDef) *anomalyRule {
	return &anomalyRule{def: def, series: map[uint64]*seriesState{}, written: map[string]labels.Labels{}}
}

// sameDefinition reports whether a reload left the rule unchanged, so that
// its detectors' state carries over.
func (r *anomalyRule) sameDefinition(d anomalyRuleDef) bool {
	a, b := r.def, d
	return a.Name == b.Name && a.Expr == b.Expr && labels.Equal(a.labels, b.labels) &&
		fmt.Sprint(a.factory.Spec()) == fmt.Sprint(b.factory.Spec())
}

// rangeQueryFunc evaluates expr over [start, end] at step.
type rangeQueryFunc func(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error)

// eval scores the rule's expression at ts and appends the results to app.
// interval is the group's evaluation interval, the step of the history that
// new detectors learn from.
func (r *anomalyRule) eval(ctx context.Context, ts time.Time, interval time.Duration, query rules.QueryFunc, history rangeQueryFunc, app storage.AppenderV2, logger *slog.Logger) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A rule's state outlives its group (keepState): while a group is
	// replaced, or a tenant changes hands within this ruler, two groups
	// may evaluate it around the same time. An evaluation not newer than
	// the last writes nothing: its detectors would refuse the samples, and
	// every series would get a staleness marker.
	if !r.lastTs.IsZero() && !ts.After(r.lastTs) {
		return 0, nil
	}
	r.lastTs = ts
	vec, err := query(ctx, r.def.Expr, ts)
	if err != nil {
		r.lastErr = err
		return 0, err
	}
	var fresh []uint64
	for _, s := range vec {
		if s.H != nil {
			continue
		}
		h := s.Metric.Hash()
		st, ok := r.series[h]
		if !ok {
			st = &seriesState{det: r.def.factory.New()}
			r.series[h] = st
			fresh = append(fresh, h)
		}
		st.lastSeen = ts
	}
	if len(fresh) > 0 && r.def.factory.History() > 0 {
		r.warmUp(ctx, ts, interval, fresh, history, logger)
	}
	t := timestamp.FromTime(ts)
	written := make(map[string]labels.Labels, 3*len(vec))
	var errs []error
	put := func(suffix string, base labels.Labels, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		b := labels.NewBuilder(base)
		b.Set(labels.MetricName, r.def.Name+suffix)
		ls := b.Labels()
		if _, err := app.Append(0, ls, 0, t, v, nil, nil, storage.AOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("append %s: %w", ls, err))
			return
		}
		written[ls.String()] = ls
	}
	for _, s := range vec {
		if s.H != nil {
			continue
		}
		res := r.series[s.Metric.Hash()].det.Observe(t, s.F)
		if math.IsNaN(res.Score) {
			continue
		}
		b := labels.NewBuilder(s.Metric)
		b.Del(labels.MetricName)
		r.def.labels.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
		base := b.Labels()
		put(SuffixScore, base, res.Score)
		put(SuffixUpper, base, res.Upper)
		put(SuffixLower, base, res.Lower)
	}
	// Series that were written last time and not now end with a staleness
	// marker, as Prometheus's rules do.
	for k, ls := range r.written {
		if _, ok := written[k]; !ok {
			if _, err := app.Append(0, ls, 0, t, math.Float64frombits(value.StaleNaN), nil, nil, storage.AOptions{}); err != nil && !errors.Is(err, storage.ErrOutOfOrderSample) && !errors.Is(err, storage.ErrDuplicateSampleForTimestamp) {
				errs = append(errs, fmt.Errorf("append staleness marker %s: %w", ls, err))
			}
		}
	}
	r.written = written
	// Forget detectors of series gone for long: if they come back, they
	// learn again from history.
	forget := max(time.Hour, 10*interval)
	for h, st := range r.series {
		if ts.Sub(st.lastSeen) > forget {
			delete(r.series, h)
		}
	}
	r.lastErr = errors.Join(errs...)
	return len(written), r.lastErr
}

// warmUp feeds new detectors the history of their series from the store, at
// the group's interval, so that they score at once (and after a restart,
// continue where they were).
func (r *anomalyRule) warmUp(ctx context.Context, ts time.Time, interval time.Duration, fresh []uint64, history rangeQueryFunc, logger *slog.Logger) {
	span := r.def.factory.History()
	start, end := ts.Add(-span), ts.Add(-interval)
	if !end.After(start) {
		return
	}
	m, err := history(ctx, r.def.Expr, start, end, interval)
	if err != nil {
		logger.Warn("reading history for new anomaly detectors failed; they start cold", "rule", r.def.Name, "err", err)
		return
	}
	want := make(map[uint64]bool, len(fresh))
	for _, h := range fresh {
		want[h] = true
	}
	for _, s := range m {
		h := s.Metric.Hash()
		if !want[h] {
			continue
		}
		d := r.series[h].det
		for _, p := range s.Floats {
			d.Observe(p.T, p.F)
		}
	}
}
