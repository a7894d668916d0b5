// Package ruler evaluates each tenant's rule files: Prometheus alerting and
// recording rules through Prometheus's own rules package (one rules.Manager
// per tenant, whose context carries the tenant, so that its queries read and
// its results, ALERTS and ALERTS_FOR_STATE are written to that tenant only),
// and Strata's anomaly rules, which write <name>:anomaly_score, <name>:upper
// and <name>:lower for every series of their expression.
package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/tenant"
)

// NotifyFunc receives the alerts of tenant that need sending, as
// Prometheus's rule manager hands them over: firing alerts again every
// resend delay, resolved ones for a while after they resolved.
type NotifyFunc func(ctx context.Context, tenant, expr string, alerts ...*rules.Alert)

// Options configure a Ruler.
type Options struct {
	Engine     promql.QueryEngine
	Parser     parser.Parser
	Queryable  storage.Queryable
	Appendable storage.AppendableV2 // resolves the tenant from the context
	Notify     NotifyFunc
	// Files returns the rule files of every tenant; it is called at each load.
	Files func() (map[string][]string, error)
	// Owned, when set, returns which tenants this ruler evaluates (in a
	// cluster, those the rulers' ring gives it); every tenant when nil.
	// An error means it owns none it could be sure of: it evaluates none.
	Owned func() (func(tenant string) bool, error)
	// OwnershipCheckPeriod is how often Owned is asked again, starting and
	// stopping tenants whose ownership changed; unused without Owned.
	OwnershipCheckPeriod time.Duration

	EvaluationInterval time.Duration
	ResendDelay        time.Duration
	OutageTolerance    time.Duration
	ForGracePeriod     time.Duration
	ExternalURL        *url.URL

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Ruler runs the rules of every tenant.
type Ruler struct {
	opts    Options
	logger  *slog.Logger
	metrics *rules.Metrics
	m       *ruleMetrics

	mu      sync.Mutex // serialises loads and guards tenants, files, defs
	ctx     context.Context
	tenants map[string]*tenantRules // the tenants evaluated: owned ones
	// files and defs are what the last successful load read: every
	// tenant's rule files and anomaly rules (by anomalyKey), owned or not.
	files map[string][]string
	defs  map[string][]anomalyRuleDef
	// ownedErr is the last error of Options.Owned, logged once.
	ownedErr string

	amu       sync.RWMutex
	anomalies map[string][]*anomalyRule // by tenant + group key
}

type tenantRules struct {
	id      string
	manager *rules.Manager
	done    chan struct{}
}

type ruleMetrics struct {
	anomalySeries   *prometheus.GaugeVec
	anomalyFailures *prometheus.CounterVec
	anomalyDuration *prometheus.HistogramVec
	loads           *prometheus.CounterVec
	lastLoad        prometheus.Gauge
	lastLoadOK      prometheus.Gauge
	tenantsOwned    prometheus.Gauge
	groupEvals      *prometheus.CounterVec
}

// New returns a Ruler; Run starts it.
func New(o Options) *Ruler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.ExternalURL == nil {
		o.ExternalURL = &url.URL{}
	}
	f := promauto.With(o.Registerer)
	return &Ruler{
		opts:    o,
		logger:  o.Logger,
		metrics: rules.NewGroupMetrics(o.Registerer),
		m: &ruleMetrics{
			anomalySeries: f.NewGaugeVec(prometheus.GaugeOpts{
				Name: "strata_anomaly_rule_series", Help: "Series written by the last evaluation of each anomaly rule.",
			}, []string{"tenant", "rule"}),
			anomalyFailures: f.NewCounterVec(prometheus.CounterOpts{
				Name: "strata_anomaly_rule_evaluation_failures_total", Help: "Anomaly rule evaluations that failed.",
			}, []string{"tenant", "rule"}),
			anomalyDuration: f.NewHistogramVec(prometheus.HistogramOpts{
				Name: "strata_anomaly_rule_evaluation_duration_seconds", Help: "Duration of anomaly rule evaluations.",
				Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
			}, []string{"tenant"}),
			loads: f.NewCounterVec(prometheus.CounterOpts{
				Name: "strata_rules_loads_total", Help: "Loads of the rule files, by result.",
			}, []string{"result"}),
			lastLoad: f.NewGauge(prometheus.GaugeOpts{
				Name: "strata_rules_last_load_success_timestamp_seconds", Help: "When the rule files were last loaded successfully.",
			}),
			lastLoadOK: f.NewGauge(prometheus.GaugeOpts{
				Name: "strata_rules_last_load_successful", Help: "Whether the last load of the rule files succeeded (1) or failed (0).",
			}),
			tenantsOwned: f.NewGauge(prometheus.GaugeOpts{
				Name: "strata_rules_tenants_evaluated", Help: "Tenants with rule files whose rules this process evaluates (in a cluster, those it owns in the rulers' ring).",
			}),
			groupEvals: f.NewCounterVec(prometheus.CounterOpts{
				Name: "strata_rule_group_evaluations_total", Help: "Evaluations of rule groups, by tenant.",
			}, []string{"tenant"}),
		},
		tenants:   map[string]*tenantRules{},
		anomalies: map[string][]*anomalyRule{},
	}
}

// Run loads the rule files and evaluates them until ctx is done; then it
// stops every tenant's rules and returns once no evaluation is running.
// A failing first load is logged; a reload can fix it.
func (r *Ruler) Run(ctx context.Context) {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	if err := r.Reload(); err != nil {
		r.logger.Error("loading rules failed", "err", err)
	}
	if r.opts.Owned != nil && r.opts.OwnershipCheckPeriod > 0 {
		tick := time.NewTicker(r.opts.OwnershipCheckPeriod)
	checks:
		for {
			select {
			case <-ctx.Done():
				break checks
			case <-tick.C:
				r.CheckOwnership()
			}
		}
		tick.Stop()
	}
	<-ctx.Done()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, t := range r.tenants {
		t.manager.Stop()
		<-t.done
		delete(r.tenants, id)
	}
	r.m.tenantsOwned.Set(0)
	r.ctx = nil
}

// ErrNotRunning is returned by Reload before Run or after it returned.
var ErrNotRunning = errors.New("rule evaluation is not running")

// Reload reads the rule files again and applies them. When any file is
// invalid, every tenant keeps the rules it had and the error says why.
func (r *Ruler) Reload() (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		if err != nil {
			r.m.loads.WithLabelValues("failure").Inc()
			r.m.lastLoadOK.Set(0)
			return
		}
		r.m.loads.WithLabelValues("success").Inc()
		r.m.lastLoad.SetToCurrentTime()
		r.m.lastLoadOK.Set(1)
	}()
	if r.ctx == nil || r.ctx.Err() != nil {
		return ErrNotRunning
	}
	files, err := r.opts.Files()
	if err != nil {
		return fmt.Errorf("find rule files: %w", err)
	}
	// Check everything before changing anything: every tenant's files,
	// owned or not, so that a broken file fails the load on every ruler.
	defs := map[string][]anomalyRuleDef{}
	for id, fs := range files {
		if err := tenant.ValidateID(id); err != nil {
			return fmt.Errorf("rule files %v: %w", fs, err)
		}
		for _, f := range fs {
			pf, err := parseRuleFile(f, r.opts.Parser)
			if err != nil {
				return err
			}
			if _, errs := (fileLoader{parser: r.opts.Parser, logger: r.logger}).Load(f, false, model.UTF8Validation); len(errs) > 0 {
				return errors.Join(errs...)
			}
			for group, gdefs := range pf.anomalies {
				key := anomalyKey(id, f, group)
				defs[key] = append(defs[key], gdefs...)
			}
		}
	}
	if err := r.apply(files, defs, r.owned()); err != nil {
		return err
	}
	r.files, r.defs = files, defs
	r.logger.Info("rules loaded", "tenants", len(files), "evaluated", len(r.tenants))
	return nil
}

// owned returns which tenants this ruler evaluates now.
func (r *Ruler) owned() func(string) bool {
	if r.opts.Owned == nil {
		return func(string) bool { return true }
	}
	owns, err := r.opts.Owned()
	if err != nil {
		if err.Error() != r.ownedErr {
			r.logger.Warn("cannot tell which tenants this ruler owns; evaluating none", "err", err)
		}
		r.ownedErr = err.Error()
		return func(string) bool { return false }
	}
	r.ownedErr = ""
	return owns
}

// CheckOwnership starts evaluating the tenants this ruler has come to own
// and stops those it no longer owns, with the rules of the last load. A
// tenant handed over is stopped without ending its series: its new owner
// goes on writing them.
func (r *Ruler) CheckOwnership() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil || r.ctx.Err() != nil || r.files == nil {
		return
	}
	owns := r.owned()
	changed := false
	for id := range r.files {
		if _, running := r.tenants[id]; running != owns(id) {
			changed = true
			break
		}
	}
	if !changed {
		return
	}
	if err := r.apply(r.files, r.defs, owns); err != nil {
		r.logger.Error("applying a change of owned tenants failed", "err", err)
	}
}

// apply evaluates the rules of files and defs of the tenants owns accepts:
// it starts and updates their rule managers and stops the others'. On
// error the anomaly rules stay as they were. r.mu is held.
func (r *Ruler) apply(files map[string][]string, defs map[string][]anomalyRuleDef, owns func(string) bool) error {
	newAnomalies := map[string][]*anomalyRule{}
	for key, ds := range defs {
		if !owns(key[:strings.IndexByte(key, 0xff)]) {
			continue
		}
		for _, d := range ds {
			newAnomalies[key] = append(newAnomalies[key], r.keepState(key, d))
		}
	}
	r.amu.Lock()
	old := r.anomalies
	r.anomalies = newAnomalies
	r.amu.Unlock()

	var errs []error
	for id, fs := range files {
		if !owns(id) {
			continue
		}
		t := r.tenants[id]
		if t == nil {
			t = r.startTenant(id)
			r.tenants[id] = t
			r.logger.Info("evaluating the rules of a tenant", "tenant", id)
		}
		if err := t.manager.Update(r.opts.EvaluationInterval, fs, labels.EmptyLabels(), r.opts.ExternalURL.String(), r.iteration(id)); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", id, err))
		}
	}
	for id, t := range r.tenants {
		if _, ok := files[id]; !ok {
			// The tenant has no rule files any more: end its series.
			_ = t.manager.Update(r.opts.EvaluationInterval, nil, labels.EmptyLabels(), r.opts.ExternalURL.String(), r.iteration(id))
		} else if owns(id) {
			continue
		} else {
			r.logger.Info("no longer evaluating the rules of a tenant: another ruler owns it", "tenant", id)
		}
		t.manager.Stop()
		<-t.done
		delete(r.tenants, id)
	}
	r.m.tenantsOwned.Set(float64(len(r.tenants)))
	if len(errs) > 0 {
		r.amu.Lock()
		r.anomalies = old
		r.amu.Unlock()
		return errors.Join(errs...)
	}
	return nil
}

func anomalyKey(tenantID, file, group string) string {
	return tenantID + "\xff" + rules.GroupKey(file, group)
}

// keepState returns the live rule for def, reusing the current one when
// the definition did not change.
func (r *Ruler) keepState(key string, def anomalyRuleDef) *anomalyRule {
	r.amu.RLock()
	defer r.amu.RUnlock()
	for _, ar := range r.anomalies[key] {
		if ar.sameDefinition(def) {
			return ar
		}
	}
	return newAnomalyRule(def)
}

func (r *Ruler) startTenant(id string) *tenantRules {
	logger := r.logger.With("tenant", id)
	m := rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		ExternalURL:          r.opts.ExternalURL,
		QueryFunc:            rules.EngineQueryFunc(r.opts.Engine, r.opts.Queryable),
		NotifyFunc: func(ctx context.Context, expr string, alerts ...*rules.Alert) {
			if r.opts.Notify != nil {
				r.opts.Notify(ctx, id, expr, alerts...)
			}
		},
		Context:         tenant.WithID(r.ctx, id),
		AppendableV2:    r.opts.Appendable,
		Queryable:       r.opts.Queryable,
		Logger:          logger.With("component", "rules"),
		OutageTolerance: r.opts.OutageTolerance,
		ForGracePeriod:  r.opts.ForGracePeriod,
		ResendDelay:     r.opts.ResendDelay,
		GroupLoader:     fileLoader{parser: r.opts.Parser, logger: logger},
		Metrics:         r.metrics,
		Parser:          r.opts.Parser,
	})
	t := &tenantRules{id: id, manager: m, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		m.Run()
	}()
	return t
}

// iteration evaluates a group's anomaly rules, then its Prometheus rules.
func (r *Ruler) iteration(tenantID string) rules.GroupEvalIterationFunc {
	query := rules.EngineQueryFunc(r.opts.Engine, r.opts.Queryable)
	history := func(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
		q, err := r.opts.Engine.NewRangeQuery(ctx, r.opts.Queryable, nil, expr, start, end, step)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		res := q.Exec(ctx)
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Matrix()
	}
	evals := r.m.groupEvals.WithLabelValues(tenantID)
	return func(ctx context.Context, g *rules.Group, ts time.Time) {
		evals.Inc()
		r.amu.RLock()
		ars := r.anomalies[anomalyKey(tenantID, g.File(), g.Name())]
		r.amu.RUnlock()
		if len(ars) > 0 {
			start := time.Now()
			app := r.opts.Appendable.AppenderV2(ctx)
			evalTs := ts.Add(-g.QueryOffset())
			for _, ar := range ars {
				n, err := ar.eval(ctx, evalTs, g.Interval(), query, history, app, r.logger)
				r.m.anomalySeries.WithLabelValues(tenantID, ar.def.Name).Set(float64(n))
				if err != nil {
					r.m.anomalyFailures.WithLabelValues(tenantID, ar.def.Name).Inc()
					r.logger.Warn("anomaly rule evaluation failed", "tenant", tenantID, "group", g.Name(), "rule", ar.def.Name, "err", err)
				}
			}
			if err := app.Commit(); err != nil {
				r.logger.Warn("writing anomaly series failed", "tenant", tenantID, "group", g.Name(), "err", err)
			}
			r.m.anomalyDuration.WithLabelValues(tenantID).Observe(time.Since(start).Seconds())
		}
		rules.DefaultEvalIterationFunc(ctx, g, ts)
	}
}

// Retriever returns the rules API's view of the tenant of ctx, for
// Prometheus's /api/v1/rules and /api/v1/alerts handlers.
func (r *Ruler) Retriever(ctx context.Context) v1.RulesRetriever {
	id, _ := tenant.FromContext(ctx)
	r.mu.Lock()
	t := r.tenants[id]
	r.mu.Unlock()
	if t == nil {
		return noRules{}
	}
	return t.manager
}

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

// AnomalyRule describes a loaded anomaly rule, for status pages and tests.
type AnomalyRule struct {
	Tenant, File, Group, Name, Expr string
	Detector                        string
	Params                          map[string]string
	Series                          int
	LastEvaluation                  time.Time
	LastError                       error
}

// AnomalyRules lists the loaded anomaly rules of every tenant, sorted by
// tenant, file and group, a group's rules in file order.
func (r *Ruler) AnomalyRules() []AnomalyRule {
	// r.mu before r.amu, as Reload takes them.
	r.mu.Lock()
	defer r.mu.Unlock()
	// The file and group of each anomaly key, from the groups the rule
	// managers hold (a key is ambiguous to split: both may hold ';').
	type fileGroup struct{ file, group string }
	groups := map[string]fileGroup{}
	for id, t := range r.tenants {
		for _, g := range t.manager.RuleGroups() {
			groups[anomalyKey(id, g.File(), g.Name())] = fileGroup{g.File(), g.Name()}
		}
	}
	r.amu.RLock()
	defer r.amu.RUnlock()
	var out []AnomalyRule
	for key, ars := range r.anomalies {
		fg := groups[key]
		for _, ar := range ars {
			ar.mu.Lock()
			spec := ar.def.factory.Spec()
			out = append(out, AnomalyRule{
				Tenant: key[:strings.IndexByte(key, 0xff)], File: fg.file, Group: fg.group, Name: ar.def.Name, Expr: ar.def.Expr,
				Detector: spec.Detector, Params: spec.Params, Series: len(ar.series),
				LastEvaluation: ar.lastTs, LastError: ar.lastErr,
			})
			ar.mu.Unlock()
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Group < b.Group
	})
	return out
}
