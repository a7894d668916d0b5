// Package alerting is Strata's rule and anomaly evaluator: it loads each
// tenant's rule files (Prometheus alerting and recording rules, and anomaly
// rules), evaluates them through Strata's PromQL engine (package ruler),
// scores series with anomaly detectors (package detect), and sends alerts to
// Alertmanager, webhooks, email and PagerDuty (package notify). It writes
// only through the store's appender.
package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/strutil"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/alerting/anomalyapi"
	"github.com/strata-tsdb/strata/alerting/notify"
	"github.com/strata-tsdb/strata/alerting/ruler"
	"github.com/strata-tsdb/strata/tenant"
)

// Options configure the evaluator.
type Options struct {
	Rules        RulesConfig
	Notify       notify.Config
	Alertmanager notify.AlertmanagerConfig
	// DefaultTenant owns the rule files of Rules.Files.
	DefaultTenant string

	Engine     promql.QueryEngine
	Parser     parser.Parser
	Queryable  storage.Queryable
	Appendable storage.AppendableV2
	// QueryTimeout bounds ad-hoc anomaly queries.
	QueryTimeout time.Duration
	// Owned and OwnershipCheckPeriod, in a cluster's ruler, say which
	// tenants' rules this process evaluates (see ruler.Options); every
	// tenant's when Owned is nil.
	Owned                func() (func(tenant string) bool, error)
	OwnershipCheckPeriod time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service is the running evaluator.
type Service struct {
	opts       Options
	ruler      *ruler.Ruler
	dispatcher *notify.Dispatcher
	anomaly    http.Handler
	logger     *slog.Logger
}

// New builds the evaluator; Run starts it.
func New(o Options) (*Service, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	ext, err := url.Parse(o.Rules.ExternalURL)
	if err != nil {
		return nil, fmt.Errorf("rules external URL: %w", err)
	}
	d, err := notify.New(notify.Options{
		Config: o.Notify, Alertmanager: o.Alertmanager,
		Logger: o.Logger.With("component", "notify"), Registerer: o.Registerer,
	})
	if err != nil {
		return nil, err
	}
	s := &Service{opts: o, dispatcher: d, logger: o.Logger,
		anomaly: anomalyapi.Handler(o.Engine, o.Queryable, o.QueryTimeout)}
	s.ruler = ruler.New(ruler.Options{
		Engine: o.Engine, Parser: o.Parser, Queryable: o.Queryable, Appendable: o.Appendable,
		Notify: s.notify,
		Files: func() (map[string][]string, error) {
			return o.Rules.resolve(o.DefaultTenant)
		},
		Owned:                o.Owned,
		OwnershipCheckPeriod: o.OwnershipCheckPeriod,
		EvaluationInterval:   time.Duration(o.Rules.EvaluationInterval),
		ResendDelay:          time.Duration(o.Rules.ResendDelay),
		OutageTolerance:      time.Duration(o.Rules.OutageTolerance),
		ForGracePeriod:       time.Duration(o.Rules.ForGracePeriod),
		ExternalURL:          ext,
		Logger:               o.Logger.With("component", "ruler"),
		Registerer:           o.Registerer,
	})
	return s, nil
}

// Run evaluates rules and delivers notifications until ctx is done.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.dispatcher.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		s.ruler.Run(ctx)
	}()
	s.logger.Info("rule evaluator started", "channels", s.dispatcher.Channels())
	wg.Wait()
}

// Reload reads the rule files again; on error the previous rules stay.
func (s *Service) Reload() error { return s.ruler.Reload() }

// Rules is the rules API's view of the tenant of ctx.
func (s *Service) Rules(ctx context.Context) v1.RulesRetriever { return s.ruler.Retriever(ctx) }

// AnomalyRules lists the loaded anomaly rules.
func (s *Service) AnomalyRules() []ruler.AnomalyRule { return s.ruler.AnomalyRules() }

// TenantAnomalyRules lists the loaded anomaly rules of the tenant of ctx.
func (s *Service) TenantAnomalyRules(ctx context.Context) []ruler.AnomalyRule {
	id, _ := tenant.FromContext(ctx)
	var out []ruler.AnomalyRule
	for _, r := range s.ruler.AnomalyRules() {
		if r.Tenant == id {
			out = append(out, r)
		}
	}
	return out
}

// AnomalyQueryHandler serves /api/v1/anomaly/query_range for the tenant in
// the request context.
func (s *Service) AnomalyQueryHandler() http.Handler { return s.anomaly }

// notify hands the alerts of a rule evaluation to the channels.
func (s *Service) notify(_ context.Context, tenantID, expr string, alerts ...*rules.Alert) {
	out := make([]*notify.Alert, 0, len(alerts))
	gen := s.opts.Rules.ExternalURL + strutil.TableLinkForExpression(expr)
	for _, a := range alerts {
		ls := a.Labels
		if s.opts.Notify.TenantLabel != "" {
			b := labels.NewBuilder(ls)
			b.Set(s.opts.Notify.TenantLabel, tenantID)
			ls = b.Labels()
		}
		na := &notify.Alert{
			Tenant: tenantID, Labels: ls, Annotations: a.Annotations,
			StartsAt: a.FiredAt, EndsAt: a.ValidUntil, GeneratorURL: gen,
		}
		if !a.ResolvedAt.IsZero() {
			na.EndsAt, na.Resolved = a.ResolvedAt, true
		}
		out = append(out, na)
	}
	s.dispatcher.Send(out...)
}
