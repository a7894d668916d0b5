// Package api serves the Prometheus HTTP API v1 and remote read for every
// tenant of Strata.
//
// The query endpoints are Prometheus's own web/api/v1 handlers over Strata's
// queryable, as Mimir and Cortex do: that is how responses, errors, warnings
// and parameter parsing stay byte-for-byte those of Prometheus 3. Strata owns
// what Prometheus answers from its scrape machinery instead: metric metadata
// (/api/v1/metadata, filled by remote write here) and the tenant, which a
// middleware resolves from X-Scope-OrgID into the request context, where
// Strata's queryable reads it.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/alerting/ruler"
	"github.com/strata-tsdb/strata/internal/snappybound"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

// MetadataSource answers metric metadata per tenant.
type MetadataSource interface {
	// MetricMetadata returns the metadata of metric family metric (all
	// families when empty) of tenant, keyed by family name.
	MetricMetadata(ctx context.Context, tenant, metric string) (map[string][]metadata.Metadata, error)
}

// Options configure the API.
type Options struct {
	Engine    promql.QueryEngine
	Parser    parser.Parser
	Queryable storage.SampleAndChunkQueryable
	Exemplars storage.ExemplarQueryable
	Metadata  MetadataSource
	// Cardinality answers /api/v1/status/tsdb and /api/v1/cardinality/*
	// per tenant; nil leaves Prometheus's status handler, which answers an
	// error, and no cardinality endpoints.
	Cardinality CardinalitySource
	// CardinalityMaxSeries bounds the series one cardinality request
	// counts; 0 means no bound.
	CardinalityMaxSeries int
	Tenants              tenant.Resolver
	// Limits, when set, apply each tenant's query length and concurrency limits (see limits.go).
	Limits *limits.Overrides

	LookbackDelta time.Duration
	// QueryTimeout is the default and upper bound of a query's timeout parameter.
	QueryTimeout time.Duration
	// RemoteReadSampleLimit bounds the samples of one SAMPLES remote-read response; 0 means no limit.
	RemoteReadSampleLimit int
	// RemoteReadConcurrency bounds concurrent remote-read requests.
	RemoteReadConcurrency int
	// RemoteReadMaxBytesInFrame bounds a STREAMED_XOR_CHUNKS frame.
	RemoteReadMaxBytesInFrame int

	// Rules returns the rule groups and alerts of the tenant of the context,
	// for /api/v1/rules and /api/v1/alerts; nil answers with none.
	Rules func(context.Context) v1.RulesRetriever
	// AnomalyQuery serves /api/v1/anomaly/query_range; nil leaves it out
	// (and /api/v1/anomaly/detectors, which lists the detectors it takes).
	AnomalyQuery http.Handler

	// AnomalyRules returns the anomaly rules of the tenant of the context,
	// for /api/v1/anomaly/rules; nil leaves it out.
	AnomalyRules func(context.Context) []ruler.AnomalyRule

	// Admin, when set, serves Prometheus's TSDB admin endpoints
	// delete_series and clean_tombstones per tenant (admin.go); nil
	// answers them "admin APIs disabled", as Prometheus does.
	Admin TSDBAdmin

	// Store answers the status endpoints about tenants, blocks and WAL
	// replay (status.go); nil leaves Prometheus's answers.
	Store StoreStatus
	// Compactor answers /api/v1/status/compactor; a nil *compactor.Compactor
	// answers that compaction is disabled, a nil interface leaves it out.
	Compactor CompactorStatus

	BuildInfo v1.PrometheusVersion
	// Flags are shown by /api/v1/status/flags.
	Flags map[string]string

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// New returns the handler of everything under /api/v1/ except remote write,
// which package remotewrite serves.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RemoteReadConcurrency <= 0 {
		o.RemoteReadConcurrency = 10
	}
	if o.RemoteReadMaxBytesInFrame <= 0 {
		o.RemoteReadMaxBytesInFrame = 1 << 20
	}
	bi := o.BuildInfo
	cfg := config.DefaultConfig
	rulesRetriever := o.Rules
	if rulesRetriever == nil {
		rulesRetriever = func(context.Context) v1.RulesRetriever { return noRules{} }
	}
	upstream := v1.NewAPI(
		o.Engine,
		o.Queryable,
		nil, // remote write is served by package remotewrite
		o.Exemplars,
		func(context.Context) v1.ScrapePoolsRetriever { return noScrape{} },
		func(context.Context) v1.TargetRetriever { return noScrape{} },
		func(context.Context) v1.AlertmanagerRetriever { return noScrape{} },
		func() config.Config { return cfg },
		o.Flags,
		v1.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		tenantTSDBAdmin{o.Admin},
		"",
		o.Admin != nil, // admin endpoints
		false,          // search endpoints
		0,
		o.Logger.With("component", "api"),
		rulesRetriever,
		o.RemoteReadSampleLimit,
		o.RemoteReadConcurrency,
		o.RemoteReadMaxBytesInFrame,
		false, // agent mode
		regexp.MustCompile(".*"),
		func() (v1.RuntimeInfo, error) { return v1.RuntimeInfo{}, nil },
		&bi,
		nil, nil,
		o.Gatherer,
		o.Registerer,
		nil,
		false, nil, // remote write receiver
		false, false, false, // OTLP
		o.LookbackDelta,
		false, // type and unit labels
		false, // append metadata
		nil,
		nil,
		v1.OpenAPIOptions{},
		o.Parser,
		false, // query cost
		o.QueryTimeout,
	)
	upstream.ClearCodecs()
	upstream.InstallCodec(jsonCodec{})
	router := route.New()
	upstream.Register(router.WithPrefix("/api/v1"))

	mux := http.NewServeMux()
	gate := newQueryGate(o.Limits, o.Registerer)
	mux.Handle("/api/v1/", gate.wrap(maxSourceResolution(compressed(router))))
	mux.Handle("/api/v1/read", checkReadBody(router))
	mux.Handle("/api/v1/metadata", http.HandlerFunc(metadataHandler(o.Metadata)))
	if o.Admin != nil {
		mux.Handle("/api/v1/admin/tsdb/clean_tombstones", cleanTombstonesHandler(o.Admin))
	}
	if o.Cardinality != nil {
		ch := &cardinalityHandlers{src: o.Cardinality, parser: o.Parser, limits: o.Limits, maxSeries: o.CardinalityMaxSeries}
		if ch.parser == nil {
			ch.parser = parser.NewParser(parser.Options{})
		}
		mux.Handle("/api/v1/status/tsdb", gate.slot(ch.tsdbStatus(o.Gatherer)))
		mux.Handle("/api/v1/cardinality/label_names", gate.slot(http.HandlerFunc(ch.labelNames)))
		mux.Handle("/api/v1/cardinality/label_values", gate.slot(http.HandlerFunc(ch.labelValues)))
	}
	if o.AnomalyQuery != nil {
		mux.Handle("/api/v1/anomaly/query_range", o.AnomalyQuery)
		mux.Handle("/api/v1/anomaly/detectors", getOnly(detectorsHandler))
	}
	if o.AnomalyRules != nil {
		mux.Handle("/api/v1/anomaly/rules", getOnly(anomalyRulesHandler(o.AnomalyRules)))
	}
	status := &statusHandlers{
		store:      o.Store,
		compactor:  o.Compactor,
		limits:     o.Limits,
		gatherer:   o.Gatherer,
		flags:      o.Flags,
		allTenants: o.Tenants.Auth == nil,
		now:        time.Now,
	}
	status.register(mux)
	withTenant := o.Tenants.Middleware(mux, respondTenantError)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			// A CORS preflight carries no credentials and no tenant (browsers
			// never send them with it): Prometheus's own handler answers it
			// with the CORS headers and no data.
			router.ServeHTTP(w, r)
			return
		}
		withTenant.ServeHTTP(w, r)
	})
}

// respondTenantError answers a request without a valid tenant in the API's
// error format: 401 unauthorized, 403 forbidden or 400 bad_data.
func respondTenantError(w http.ResponseWriter, _ *http.Request, err error) {
	respondError(w, tenant.StatusCode(err), tenant.ErrorType(err), err)
}

func respondError(w http.ResponseWriter, code int, errorType string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v1.Response{Status: "error", ErrorType: errorType, Error: err.Error()})
}

// metadataHandler answers /api/v1/metadata from remote-written metadata, with
// Prometheus's parameters (metric, limit, limit_per_metric) and response shape.
func metadataHandler(src MetadataSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			respondError(w, http.StatusMethodNotAllowed, "bad_data", fmt.Errorf("method %s not allowed", r.Method))
			return
		}
		limit, err := optionalInt(r, "limit")
		if err != nil {
			respondError(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		perMetric, err := optionalInt(r, "limit_per_metric")
		if err != nil {
			respondError(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		id, _ := tenant.FromContext(r.Context())
		families, err := src.MetricMetadata(r.Context(), id, r.FormValue("metric"))
		if err != nil {
			respondError(w, http.StatusInternalServerError, "internal", err)
			return
		}
		res := map[string][]metadata.Metadata{}
		for name, entries := range families {
			if limit >= 0 && len(res) >= limit {
				break
			}
			if perMetric > 0 && len(entries) > perMetric {
				entries = entries[:perMetric]
			}
			res[name] = entries
		}
		respondSuccess(w, res)
	}
}

// respondSuccess answers with data in the API's success envelope.
func respondSuccess(w http.ResponseWriter, data any) {
	b, err := json.Marshal(v1.Response{Status: "success", Data: data})
	if err != nil {
		respondError(w, http.StatusInternalServerError, "internal", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// optionalInt parses form value name as an integer, -1 when absent.
func optionalInt(r *http.Request, name string) (int, error) {
	s := r.FormValue(name)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s must be a number", name)
	}
	return n, nil
}

// noScrape answers the scrape-related endpoints: Strata scrapes nothing.
type noScrape struct{}

func (noScrape) ScrapePools() []string                       { return []string{} }
func (noScrape) TargetsActive() map[string][]*scrape.Target  { return map[string][]*scrape.Target{} }
func (noScrape) TargetsDropped() map[string][]*scrape.Target { return map[string][]*scrape.Target{} }
func (noScrape) TargetsDroppedCounts() map[string]int        { return map[string]int{} }
func (noScrape) Alertmanagers() []*url.URL                   { return nil }
func (noScrape) DroppedAlertmanagers() []*url.URL            { return nil }
func (noScrape) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("Strata has no scrape pools")
}

// noRules answers the rules endpoints until a rule evaluator is attached.
type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

// errNoAdmin is the answer of the TSDB admin and status endpoints, which are
// per tenant in Strata and not served through Prometheus's single-TSDB API.
var errNoAdmin = errors.New("not supported by Strata's multi-tenant store")

// tenantTSDBAdmin is Prometheus's TSDB admin interface over Strata's
// tenants: Delete resolves the tenant from its context, which the upstream
// delete_series handler passes. The methods without a context are served
// elsewhere (clean_tombstones) or not at all.
type tenantTSDBAdmin struct{ admin TSDBAdmin }

func (a tenantTSDBAdmin) CleanTombstones() error { return errNoAdmin }
func (a tenantTSDBAdmin) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	id, ok := tenant.FromContext(ctx)
	if !ok || a.admin == nil {
		return errNoAdmin
	}
	return a.admin.DeleteSeries(ctx, id, mint, maxt, ms)
}
func (tenantTSDBAdmin) Snapshot(string, bool) error            { return errNoAdmin }
func (tenantTSDBAdmin) Stats(string, int) (*tsdb.Stats, error) { return nil, errNoAdmin }
func (tenantTSDBAdmin) BlockMetas() ([]tsdb.BlockMeta, error)  { return nil, errNoAdmin }
func (tenantTSDBAdmin) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, nil
}

// maxReadBody is the most Prometheus's remote-read handler reads of a
// body, compressed and decompressed.
const maxReadBody = 32 << 20

// checkReadBody refuses a remote-read body whose snappy header claims more
// than the body can hold or than Prometheus's handler accepts, before that
// handler allocates what it claims.
func checkReadBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxReadBody))
		if err != nil {
			http.Error(w, fmt.Sprintf("read request body: %v", err), http.StatusBadRequest)
			return
		}
		if _, err := snappybound.DecodedLen(body, maxReadBody); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// maxSourceResolution reads the max_source_resolution parameter of query
// requests ("auto", "raw", "1m", "1h" or a duration) into the request
// context, where the engine's resolution choice reads it.
func maxSourceResolution(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/query", "/api/v1/query_range":
		default:
			next.ServeHTTP(w, r)
			return
		}
		res, err := promqlengine.ParseMaxSourceResolution(r.FormValue("max_source_resolution"))
		if err != nil {
			respondError(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		if res >= 0 {
			r = r.WithContext(promqlengine.WithMaxSourceResolution(r.Context(), res))
		}
		next.ServeHTTP(w, r)
	})
}
