// Package server wires Strata's parts into one process and owns their
// lifecycle: it opens the store, serves HTTP, and on shutdown stops accepting
// requests, drains in-flight ones, and closes the store last so that every
// acknowledged write is in the WAL before the process exits.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/netconnlimit"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/alerting"
	"github.com/strata-tsdb/strata/api"
	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/cluster"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/distributor"
	"github.com/strata-tsdb/strata/frontend"
	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/ingest/rwproto"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/memory"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/otlp"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/querier"
	"github.com/strata-tsdb/strata/remotewrite"
	"github.com/strata-tsdb/strata/tenant"
	"github.com/strata-tsdb/strata/web"
)

// Server is a running Strata.
type Server struct {
	cfg    *Config
	logger *slog.Logger
	reg    *prometheus.Registry
	store  *blocks.Store
	// compactor is nil when -compactor.enabled is off.
	compactor *compactor.Compactor
	engine    *promqlengine.Engine
	// frontend splits and caches range queries. In a cluster it runs only
	// with a shared (memcached) cache: in queriers, and in ingesters only
	// to invalidate what their writes make stale (sharedResultsCache).
	frontend *frontend.Frontend
	// changes relays the store's commits and bucket changes to the front
	// end, which is built after the store.
	changes   *frontend.Changes
	alerting  *alerting.Service
	overrides *limits.Overrides
	pipeline  *ingest.Pipeline
	// otlp is the OTLP receiver; nil when -otlp.enabled is off.
	otlp *otlp.Handler
	// writeMetrics are the ingest metrics of remote write and OTLP.
	writeMetrics *remotewrite.Metrics
	auth         *tenant.Authenticator // nil: the tenant header is trusted
	// targets are the process's roles (-target); empty for all.
	targets cluster.Targets
	// distributor forwards writes to the ingesters; nil unless a cluster's
	// distributor or ruler (which writes its rules' results through it).
	distributor *distributor.Distributor
	// ingesters reads the ingesters; nil unless a cluster's querier or
	// ruler.
	ingesters *querier.Reader
	// member is the process's membership of the cluster; nil for all.
	member   *cluster.Member
	http     *http.Server
	listener net.Listener
	releaser *memory.Releaser // nil when disabled
	// closers close what New opened, in the order given (the reverse of
	// opening): the store after the engine, the bucket last.
	closers []func() error
}

// New opens the store (replaying every tenant's WAL) and binds the HTTP
// listener; Run serves. Each module is built from its own configuration;
// New only wires them and records how to close them.
//
// The Go runtime's memory settings (-runtime.*) apply to the whole process:
// a process runs one Server.
func New(cfg *Config, logger *slog.Logger) (_ *Server, err error) {
	if err := memory.Apply(cfg.Runtime.Settings(), logger.With("component", "memory")); err != nil {
		return nil, fmt.Errorf("apply runtime memory settings: %w", err)
	}
	targets, err := cluster.ParseTargets(cfg.Cluster.Target)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, reg: prometheus.NewRegistry(), targets: targets}
	defer func() {
		if err != nil {
			_ = s.close()
			if s.listener != nil {
				_ = s.listener.Close()
			}
		}
	}()
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("strata"),
	)
	if s.overrides, err = limits.NewOverrides(cfg.Limits, cfg.Overrides, logger.With("component", "overrides"), s.reg); err != nil {
		return nil, fmt.Errorf("load limits: %w", err)
	}
	if cfg.Tenant.AuthFile != "" {
		if s.auth, err = tenant.LoadAuthFile(cfg.Tenant.AuthFile); err != nil {
			return nil, err
		}
	}
	bkt, err := objstore.New(context.Background(), cfg.Bucket, filepath.Join(cfg.Storage.Path, "bucket"), logger.With("component", "bucket"), s.reg)
	if err != nil {
		return nil, fmt.Errorf("open bucket: %w", err)
	}
	s.onClose("bucket", bkt.Close)
	listen := func() (err error) {
		if s.listener, err = net.Listen("tcp", cfg.HTTP.ListenAddress); err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.HTTP.ListenAddress, err)
		}
		return nil
	}
	if targets.Clustered() {
		// A member's ring address is its HTTP address: known once bound.
		if err := listen(); err != nil {
			return nil, err
		}
		if s.member, err = cluster.NewMember(cfg.Cluster, cluster.Options{
			Targets:           targets,
			HTTPAddr:          s.listener.Addr().String(),
			Flush:             func(ctx context.Context) error { return s.store.Flush(ctx) },
			FlushTimeout:      time.Duration(cfg.HTTP.ShutdownTimeout),
			CompactorDisabled: !cfg.Compactor.Enabled,
			Logger:            logger.With("component", "ring"),
			Registerer:        s.reg,
		}); err != nil {
			return nil, err
		}
	}
	var seriesLimiter *limits.SeriesLimiter
	if targets.Clustered() {
		// A tenant's series limits are the cluster's: each ingester
		// enforces its share.
		seriesLimiter = limits.NewSharedSeriesLimiter(s.overrides, s.reg, cfg.Cluster.Ring.ReplicationFactor, s.member.HealthyIngesters)
	} else {
		seriesLimiter = limits.NewSeriesLimiter(s.overrides, s.reg)
	}
	// A ruler reads as a querier does: the store of a querier (the bucket's
	// blocks) plus the ingesters.
	reads := targets.Has(cluster.TargetQuerier) || targets.Has(cluster.TargetRuler)
	if targets.Has(cluster.TargetIngester) || reads {
		so := cfg.Storage.Options()
		so.Bucket = bkt
		so.SeriesCallback = func(id string) blocks.SeriesCallback { return seriesLimiter.Tracker(id) }
		so.AlwaysAdmit = s.overrides.Has
		so.Logger, so.Registerer = logger.With("component", "store"), s.reg
		if !targets.Clustered() || sharedResultsCache(cfg) {
			s.changes = &frontend.Changes{}
			so.Changes = s.changes
		}
		if targets.Clustered() && reads {
			s.ingesters = querier.NewReader(querier.Options{
				Ring:       s.member.Ring,
				Timeout:    time.Duration(cfg.Cluster.Querier.IngesterTimeout),
				Logger:     logger.With("component", "querier"),
				Registerer: s.reg,
			})
			so.Recent = s.ingesters.Querier
		}
		if s.store, err = blocks.Open(so); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.onClose("store", s.store.Close)
		// Learn the bucket's blocks before serving, so that the first queries
		// see them; an unreachable bucket delays start by at most this much and
		// is retried by the store's sync loop.
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := s.store.SyncBucket(sctx); err != nil {
			logger.Warn("initial bucket sync failed; serving without bucket blocks until the next sync", "err", err)
		}
		cancel()
	}
	if targets.Clustered() && (targets.Has(cluster.TargetDistributor) || targets.Has(cluster.TargetRuler)) {
		s.distributor = distributor.New(distributor.Options{
			Ring:        s.member.Ring,
			PushTimeout: time.Duration(cfg.Cluster.Distributor.PushTimeout),
			Logger:      logger.With("component", "distributor"),
			Registerer:  s.reg,
		})
	}
	if reads {
		if err := s.newQuery(cfg, logger); err != nil {
			return nil, err
		}
	} else if s.changes != nil {
		if err := s.newInvalidator(cfg, logger); err != nil {
			return nil, err
		}
	}
	if cfg.Compactor.Enabled && targets.Has(cluster.TargetCompactor) {
		// Options only: a compactor holds nothing until it runs.
		var owned func() (func(string) bool, error)
		if targets.Clustered() {
			owned = func() (func(string) bool, error) {
				o, err := s.member.CompactorOwners()
				if err != nil {
					return nil, err
				}
				return o.Owns, nil
			}
		}
		// A process that reads the bucket for queries keeps what its
		// compactor uploads in its block cache; an ingester's store reads
		// its own blocks only and would fill its cache for nothing.
		var uploaded func(tenant, dir string, m *blockmeta.Meta)
		if s.store != nil && reads {
			uploaded = s.store.SeedBlock
		}
		if s.compactor, err = newCompactor(cfg, bkt, s.overrides, owned, uploaded, logger, s.reg); err != nil {
			return nil, fmt.Errorf("create compactor: %w", err)
		}
	}
	if targets.Has(cluster.TargetDistributor) {
		s.newWrite(cfg, logger)
	}
	if s.listener == nil {
		// A single process listens once its store is open, as before
		// clusters: connections are refused, not queued, during WAL replay.
		if err := listen(); err != nil {
			return nil, err
		}
	}
	if cfg.HTTP.MaxConnections > 0 {
		// As Prometheus: connections beyond the limit wait to be accepted.
		s.listener = netconnlimit.SharedLimitListener(s.listener, netconnlimit.NewSharedSemaphore(cfg.HTTP.MaxConnections))
	}
	s.releaser = memory.NewReleaser(time.Duration(cfg.Runtime.ReleaseMemoryAfterIdle), logger.With("component", "memory"), s.reg)
	headerTimeout := 30 * time.Second
	if rt := time.Duration(cfg.HTTP.ReadTimeout); rt > 0 {
		headerTimeout = min(headerTimeout, rt)
	}
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       time.Duration(cfg.HTTP.ReadTimeout),
		WriteTimeout:      time.Duration(cfg.HTTP.WriteTimeout),
		IdleTimeout:       time.Duration(cfg.HTTP.IdleTimeout),
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// sharedResultsCache reports whether the query front end's results cache is
// shared by processes (memcached): in a cluster, the front end runs in
// queriers only then, since the writes that make cached results stale are
// committed in the ingesters, which then invalidate them in the shared
// cache (newInvalidator). A cache in a querier's memory would never learn
// of them.
func sharedResultsCache(cfg *Config) bool {
	fc := cfg.Query.Frontend
	return fc.SplitInterval > 0 && fc.ResultsCache.Backend == frontend.BackendMemcached
}

// newInvalidator builds the front end of a process that serves no queries
// but commits writes (a cluster's ingester): it only invalidates the shared
// results cache's entries that the writes make stale, before they are
// acknowledged.
func (s *Server) newInvalidator(cfg *Config, logger *slog.Logger) (err error) {
	if s.frontend, err = frontend.New(frontend.Options{
		Config:           cfg.Query.Frontend,
		OutOfOrderWindow: time.Duration(cfg.Storage.OutOfOrderWindow),
		Logger:           logger.With("component", "frontend"),
		Registerer:       s.reg,
	}); err != nil {
		return fmt.Errorf("create the results cache's invalidation: %w", err)
	}
	s.onClose("results cache invalidation", s.frontend.Close)
	s.changes.Set(s.frontend)
	return nil
}

// newQuery builds the query engine and the rule evaluator. The evaluator
// runs in a single process and in a cluster's rulers (rulesRun), which
// evaluate the tenants they own in the rulers' ring and write through the
// distributor's path; a querier's lists no rules.
func (s *Server) newQuery(cfg *Config, logger *slog.Logger) (err error) {
	eo := cfg.Query.Engine.Options()
	eo.Downsampled, eo.Limits = s.store, s.overrides
	eo.ActiveQueryDir = filepath.Join(cfg.Storage.Path, "queries")
	eo.Logger, eo.Registerer = logger, s.reg
	if s.engine, err = promqlengine.New(eo); err != nil {
		return fmt.Errorf("create query engine: %w", err)
	}
	s.onClose("query engine", s.engine.Close)
	if s.changes != nil {
		if s.frontend, err = frontend.New(frontend.Options{
			Config:           cfg.Query.Frontend,
			Engine:           s.engine,
			Parser:           s.engine.Parser,
			LookbackDelta:    time.Duration(cfg.Query.Engine.LookbackDelta),
			OutOfOrderWindow: time.Duration(cfg.Storage.OutOfOrderWindow),
			TenantMaxBytes:   func(id string) int64 { return s.overrides.For(id).ResultsCacheMaxBytes },
			Logger:           logger.With("component", "frontend"),
			Registerer:       s.reg,
		}); err != nil {
			return fmt.Errorf("create query front end: %w", err)
		}
		s.onClose("query front end", s.frontend.Close)
		s.changes.Set(s.frontend)
	}
	ao := alerting.Options{
		Rules:         cfg.Rules,
		Notify:        cfg.Notifications,
		Alertmanager:  cfg.Alertmanager,
		DefaultTenant: cfg.Tenant.Default,
		Engine:        s.engine,
		Parser:        s.engine.Parser,
		Queryable:     s.store.Queryable(),
		Appendable:    s.store,
		QueryTimeout:  time.Duration(cfg.Query.Engine.Timeout),
		Logger:        logger.With("component", "alerting"),
		Registerer:    s.reg,
	}
	if s.targets.Clustered() && s.targets.Has(cluster.TargetRuler) {
		ao.Appendable = s.distributor
		ao.Owned = func() (func(string) bool, error) {
			o, err := s.member.RulerOwners()
			if err != nil {
				return nil, err
			}
			return o.Owns, nil
		}
		ao.OwnershipCheckPeriod = time.Duration(cfg.Cluster.Ring.HeartbeatPeriod)
	}
	if s.alerting, err = alerting.New(ao); err != nil {
		return fmt.Errorf("create rule evaluator: %w", err)
	}
	return nil
}

// newWrite builds the write path: remote write and OTLP over one pipeline,
// writing to the store, or in a cluster's distributor to the ingesters.
func (s *Server) newWrite(cfg *Config, logger *slog.Logger) {
	var store ingest.Storage = s.store
	if s.distributor != nil {
		store = s.distributor
	}
	// One pipeline behind every protocol: remote write and OTLP decode
	// into its Request; HA re-decodes the bodies it keeps by their protocol.
	decoders := rwproto.Decoders(true)
	var translator *otlp.Translator
	if cfg.OTLP.Enabled {
		translator = otlp.NewTranslator(cfg.OTLP, time.Duration(cfg.Query.Engine.LookbackDelta))
		maps.Copy(decoders, translator.Decoders())
	}
	var rates *limits.RateLimiters
	if s.targets.Clustered() {
		// Each tenant's rate is the cluster's: the distributors share it.
		rates = limits.NewSharedRateLimiters(s.overrides, s.member.Distributors)
	}
	s.pipeline = ingest.New(store, ingest.Options{
		MaxFutureTime: time.Duration(cfg.Write.MaxFutureTime),
		Limits:        s.overrides,
		Rates:         rates,
		Decoders:      decoders,
		Logger:        logger.With("component", "ingest"),
		Registerer:    s.reg,
	})
	s.writeMetrics = remotewrite.NewMetrics(s.reg)
	if translator != nil {
		s.otlp = otlp.NewHandler(otlp.Options{
			Pipeline:     s.pipeline,
			Translator:   translator,
			MaxBodyBytes: cfg.Write.MaxBodyBytes,
			Tenants:      s.tenants(),
			Limits:       s.overrides,
			Metrics:      s.writeMetrics,
			Logger:       logger.With("component", "otlp"),
			Registerer:   s.reg,
		})
		s.onClose("OTLP receiver", func() error { s.otlp.Close(); return nil })
	}
}

// onClose records how to close a module New opened.
func (s *Server) onClose(what string, close func() error) {
	s.closers = append(s.closers, func() error {
		if err := close(); err != nil {
			return fmt.Errorf("close %s: %w", what, err)
		}
		return nil
	})
}

// close closes what New opened, last opened first.
func (s *Server) close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// reload re-reads what Strata re-reads while it runs: the rule files and
// the overrides file. SIGHUP and POST /-/reload both come here.
func (s *Server) reload() error {
	if s.rulesRun() {
		if err := s.alerting.Reload(); err != nil {
			return fmt.Errorf("reload rules: %w", err)
		}
	}
	if _, err := s.overrides.Reload(); err != nil {
		return fmt.Errorf("reload overrides: %w", err)
	}
	return nil
}

// rulesRun reports whether this process evaluates rules: a single process,
// or a cluster's ruler.
func (s *Server) rulesRun() bool {
	return s.alerting != nil && s.targets.Has(cluster.TargetRuler)
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Store is the server's store.
func (s *Server) Store() *blocks.Store { return s.store }

func (s *Server) tenants() tenant.Resolver { return s.cfg.Tenant.Resolver(s.auth) }

// rulesPaths are the API's paths about rules and alerts: in a cluster, a
// ruler answers them for the tenants it evaluates, and a querier for all
// by asking the rulers.
var rulesPaths = []string{"/api/v1/rules", "/api/v1/alerts", "/api/v1/anomaly/rules"}

// authenticated returns h behind the API's authentication when it is on:
// a request needs the credentials of any tenant. The profiles, the command
// line and the admin endpoints are no one tenant's, and must not be open
// where the API is not.
func (s *Server) authenticated(h http.Handler) http.Handler {
	if s.auth == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.auth.Authenticate(r); err != nil {
			http.Error(w, err.Error(), tenant.StatusCode(err))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// admin returns what serves the TSDB admin endpoints, nil unless
// -api.enable-admin.
func (s *Server) admin() api.TSDBAdmin {
	if !s.cfg.API.EnableAdmin {
		return nil
	}
	return tsdbAdmin{s}
}

// tsdbAdmin deletes series from the store, and cleans tombstones from the
// tenant's local blocks and, when this process runs the compactor, from its
// bucket blocks by running the compactor for the tenant at once.
type tsdbAdmin struct{ s *Server }

func (a tsdbAdmin) DeleteSeries(ctx context.Context, id string, mint, maxt int64, ms []*labels.Matcher) error {
	return a.s.store.DeleteSeries(ctx, id, mint, maxt, ms)
}

func (a tsdbAdmin) CleanTombstones(ctx context.Context, id string) error {
	if err := a.s.store.CleanTombstones(id); err != nil {
		return err
	}
	if a.s.compactor == nil {
		return nil
	}
	return a.s.compactor.CompactTenant(ctx, id)
}

func (s *Server) routes() http.Handler {
	m := newHTTPMetrics(s.reg)
	mux := http.NewServeMux()
	if s.pipeline != nil {
		write := remotewrite.NewHandler(s.store, remotewrite.Options{
			MaxBodyBytes: s.cfg.Write.MaxBodyBytes,
			Tenants:      s.tenants(),
			Limits:       s.overrides,
			Pipeline:     s.pipeline,
			Metrics:      s.writeMetrics,
			Logger:       s.logger.With("component", "remotewrite"),
			Registerer:   s.reg,
		})
		mux.Handle("/api/v1/write", m.instrument("write", write))
		if s.otlp != nil {
			mux.Handle(otlp.Path, m.instrument("otlp", s.otlp))
			mux.Handle(otlp.PrometheusPath, m.instrument("otlp", s.otlp))
		}
	}
	if s.targets.Clustered() && s.targets.Has(cluster.TargetIngester) {
		s.ingesterRoutes(mux, m)
	}
	if s.store != nil {
		mux.Handle("/api/v1/admin/flush", m.instrument("flush", s.authenticated(api.FlushHandler(s.store))))
	}
	if s.engine != nil && s.targets.Has(cluster.TargetQuerier) {
		query := s.queryAPI()
		if s.frontend != nil {
			query = frontend.Handler(query)
		}
		mux.Handle("/api/v1/", m.instrument("api", query))
		if s.member != nil {
			// Each tenant's rules run on one ruler: the querier asks them.
			rules := m.instrument("api", s.authenticated(querier.RulesHandler(querier.RulesOptions{
				Rulers: s.member.Rulers,
				Local:  query,
			})))
			for _, p := range rulesPaths {
				mux.Handle(p, rules)
			}
		}
		mux.Handle("/", web.Handler())
	} else if s.engine != nil {
		// A ruler without the querier role answers for the rules it
		// evaluates only; queries go to the queriers.
		query := m.instrument("api", s.queryAPI())
		for _, p := range rulesPaths {
			mux.Handle(p, query)
		}
	}
	if s.member != nil {
		// Behind the API's authentication: the ring page can forget members.
		mux.Handle("/ring", s.authenticated(s.member.RingHandler()))
		mux.Handle("/memberlist", s.authenticated(s.member.MemberlistHandler()))
		if h := s.member.CompactorRingHandler(); h != nil {
			mux.Handle("/compactor/ring", s.authenticated(h))
		}
		if h := s.member.RulerRingHandler(); h != nil {
			mux.Handle("/ruler/ring", s.authenticated(h))
		}
		if h := s.member.DistributorRingHandler(); h != nil {
			mux.Handle("/distributor/ring", s.authenticated(h))
		}
	}
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	// Go's profiles, as Prometheus serves them: heap and CPU profiles of a
	// running Strata are what explain its memory and CPU use.
	handlePprof(mux, s.authenticated)
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "Strata is Healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "Strata is Ready.")
	})
	mux.Handle("/-/reload", s.authenticated(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			http.Error(w, "This endpoint requires a POST or PUT request.", http.StatusMethodNotAllowed)
			return
		}
		if err := s.reload(); err != nil {
			http.Error(w, "Failed to reload: "+err.Error(), http.StatusInternalServerError)
		}
	})))
	return mux
}

// queryAPI is the Prometheus HTTP API over the store's queryable (in a
// cluster's querier: the bucket and the ingesters).
func (s *Server) queryAPI() http.Handler {
	var engine promql.QueryEngine = s.engine
	if s.frontend != nil {
		engine = s.frontend
	}
	return api.New(api.Options{
		Engine:                engine,
		Parser:                s.engine.Parser,
		Queryable:             s.store.Queryable(),
		Exemplars:             s.exemplars(),
		Metadata:              metadataSource{s.store, s.ingesters},
		Cardinality:           s.store,
		CardinalityMaxSeries:  s.cfg.Query.API.CardinalityMaxSeries,
		Tenants:               s.tenants(),
		Limits:                s.overrides,
		LookbackDelta:         time.Duration(s.cfg.Query.Engine.LookbackDelta),
		QueryTimeout:          time.Duration(s.cfg.Query.Engine.Timeout),
		RemoteReadSampleLimit: s.cfg.Query.API.RemoteReadSampleLimit,
		RemoteReadConcurrency: s.cfg.Query.API.RemoteReadConcurrency,
		Rules:                 s.alerting.Rules,
		AnomalyQuery:          s.alerting.AnomalyQueryHandler(),
		AnomalyRules:          s.alerting.TenantAnomalyRules,
		Store:                 s.store,
		Compactor:             s.compactor,
		Admin:                 s.admin(),
		BuildInfo: v1.PrometheusVersion{
			Version:   version.Version,
			Revision:  version.Revision,
			Branch:    version.Branch,
			BuildUser: version.BuildUser,
			BuildDate: version.BuildDate,
			GoVersion: version.GoVersion,
		},
		Flags:      s.cfg.Flags(),
		Logger:     s.logger,
		Registerer: s.reg,
		Gatherer:   s.reg,
	})
}

// exemplars is the store's exemplars; in a cluster's querier, the
// ingesters' too.
func (s *Server) exemplars() storage.ExemplarQueryable {
	if s.ingesters != nil {
		return s.ingesters.ExemplarQueryable(s.store.ExemplarQueryable())
	}
	return s.store.ExemplarQueryable()
}

// ingesterRoutes serves an ingester's internal endpoints: the distributors'
// pushes, through a pipeline of its own that validates and appends (the
// distributors applied the limits and HA de-duplication), and the queriers'
// reads of the head and local blocks. The tenant comes from the header the
// distributor or querier sets. Their ingest metrics are prefixed
// "ingester_", apart from a distributor's in the same process.
func (s *Server) ingesterRoutes(mux *http.ServeMux, m *httpMetrics) {
	reg := prometheus.WrapRegistererWithPrefix("ingester_", s.reg)
	logger := s.logger.With("component", "ingester")
	pipe := ingest.New(s.store, ingest.Options{
		MaxFutureTime: time.Duration(s.cfg.Write.MaxFutureTime),
		Decoders:      rwproto.Decoders(true),
		Logger:        logger,
		Registerer:    reg,
	})
	// The tenant header is required: distributors and queriers set it.
	internal := tenant.Resolver{}
	push := remotewrite.NewHandler(s.store, remotewrite.Options{
		MaxBodyBytes: s.cfg.Write.MaxBodyBytes,
		Tenants:      internal,
		Pipeline:     pipe,
		Logger:       logger,
		Registerer:   reg,
	})
	mux.Handle(distributor.PushPath, m.instrument("ingester_push", push))
	mux.Handle(querier.ExemplarsPath, m.instrument("ingester_exemplars", querier.ExemplarsHandler(s.store.ExemplarQueryable())))
	mux.Handle(querier.MetadataPath, m.instrument("ingester_metadata", querier.MetadataHandler(func(id, metric string) (map[string][]metadata.Metadata, error) {
		return storeMetadata(s.store, id, metric)
	})))
	// Shipped blocks are served until queriers surely see them in the
	// bucket: a few of their bucket sync intervals (the same setting:
	// one configuration serves every role).
	shippedFor := max(15*time.Minute, 3*time.Duration(s.cfg.Storage.BucketSyncInterval))
	read := remote.NewReadHandler(logger, reg, s.store.LocalQueryable(shippedFor), func() promconfig.Config { return promconfig.Config{} },
		0, s.cfg.Query.API.RemoteReadConcurrency, 1<<20)
	mux.Handle(querier.ReadPath, m.instrument("ingester_read", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := internal.FromRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		read.ServeHTTP(w, r.WithContext(tenant.WithID(r.Context(), id)))
	})))
}

// Run serves until ctx is done, then shuts down gracefully: the HTTP server
// stops accepting and drains, rules stop, the background loops stop, the
// head is flushed if so configured (within -http.shutdown-timeout), and
// what New opened is closed, the store last but the bucket.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	bg, stopBg := context.WithCancel(context.Background())
	loops := []func(context.Context){s.overrides.Run}
	if s.store != nil {
		loops = append(loops, s.store.Run)
	}
	if s.distributor != nil {
		loops = append(loops, s.distributor.Run)
	}
	if s.releaser != nil {
		loops = append(loops, s.releaser.Run)
	}
	// A compactor of a cluster starts once it is in the compactors' ring:
	// before, its passes could not know their tenants and would fail. It
	// stops first at shutdown, before this process leaves any ring: a pass
	// still running after the compactor left its ring would work on
	// tenants the ring already gives to another compactor.
	compCtx, stopCompactor := context.WithCancel(context.Background())
	defer stopCompactor()
	var compWG sync.WaitGroup
	runCompactor := func() {
		compWG.Go(func() { s.compactor.Run(compCtx, time.Duration(s.cfg.Compactor.Interval)) })
	}
	if s.compactor != nil && s.member == nil {
		runCompactor()
	}
	for _, run := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(bg)
		}()
	}

	// Rules run until the HTTP server is shut down, and stop before the
	// store closes and the process leaves the cluster (through which a
	// ruler reads and writes). A ruler of a cluster starts once it is in
	// the rulers' ring: before, it could not know its tenants.
	rulesCtx, stopRules := context.WithCancel(context.Background())
	var rulesWG sync.WaitGroup
	runRules := func() {
		if s.rulesRun() {
			rulesWG.Go(func() { s.alerting.Run(rulesCtx) })
		}
	}
	if s.member == nil {
		runRules()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(s.listener) }()
	var err error
	if s.member != nil {
		// Joined once serving: an ingester is written to as soon as it is
		// ACTIVE in the ring.
		err = s.member.Start(ctx)
		if err == nil && s.compactor != nil {
			runCompactor()
		}
		if err == nil {
			runRules()
		}
	}
	s.logger.Info("Strata started", "version", version.Version, "address", s.listener.Addr().String(), "data", s.cfg.Storage.Path, "target", s.cfg.Cluster.Target.String())

loop:
	for err == nil {
		select {
		case <-ctx.Done():
			break loop
		case err = <-serveErr:
			err = fmt.Errorf("serve HTTP: %w", err)
			break loop
		case <-hup:
			if rerr := s.reload(); rerr != nil {
				s.logger.Error("reloading on SIGHUP failed; the previous configuration stays", "err", rerr)
			}
		}
	}
	s.logger.Info("shutting down")
	if s.compactor != nil {
		stopCompactor()
		compWG.Wait()
		s.logger.Info("compactor stopped")
	}
	leave := func() {
		if s.member == nil {
			return
		}
		if merr := s.member.Stop(); merr != nil {
			err = errors.Join(err, fmt.Errorf("leave the cluster: %w", merr))
		}
		s.member = nil
		s.logger.Info("left the cluster")
	}
	if s.targets.Has(cluster.TargetIngester) {
		// An ingester goes LEAVING (distributors write to the next
		// ingesters), flushes its heads to the bucket and leaves the
		// ring, all while still serving reads and late pushes.
		leave()
	}
	timeout := time.Duration(s.cfg.HTTP.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if serr := s.http.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("shut down HTTP: %w", serr))
	}
	stopRules()
	rulesWG.Wait()
	// Distributors, queriers and rulers keep their view of the ring until
	// their last requests are answered and evaluations done.
	leave()
	stopBg()
	wg.Wait()
	if s.store != nil && s.cfg.Storage.FlushOnShutdown {
		s.logger.Info("flushing the head to the bucket before exit", "deadline", timeout)
		fctx, cancel := context.WithTimeout(context.Background(), timeout)
		if ferr := s.store.Flush(fctx); ferr != nil {
			err = errors.Join(err, fmt.Errorf("flush on shutdown: %w", ferr))
		}
		cancel()
	}
	err = errors.Join(err, s.close())
	s.logger.Info("stopped")
	return err
}

// metadataSource adapts the store's metadata to the API; in a cluster's
// querier, the ingesters' is added.
type metadataSource struct {
	s         *blocks.Store
	ingesters *querier.Reader // nil unless a cluster's querier
}

func (m metadataSource) MetricMetadata(ctx context.Context, id, metric string) (map[string][]metadata.Metadata, error) {
	out, err := storeMetadata(m.s, id, metric)
	if err != nil || m.ingesters == nil {
		return out, err
	}
	theirs, err := m.ingesters.MetricMetadata(ctx, id, metric)
	if err != nil {
		return nil, err
	}
	for fam, entries := range theirs {
		for _, e := range entries {
			if !slices.Contains(out[fam], e) {
				out[fam] = append(out[fam], e)
			}
		}
	}
	return out, nil
}

// storeMetadata is the metadata of tenant id's family metric (every family
// when empty) in store.
func storeMetadata(store *blocks.Store, id, metric string) (map[string][]metadata.Metadata, error) {
	fams, err := store.MetricMetadata(id, metric)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]metadata.Metadata, len(fams))
	for _, f := range fams {
		out[f.Name] = f.Entries
	}
	return out, nil
}

// newCompactor builds the compactor configured by cfg, its levels from the
// block duration and each tenant's retention from its limits.
func newCompactor(cfg *Config, bkt objstore.Bucket, overrides *limits.Overrides, owned func() (func(string) bool, error), uploaded func(string, string, *blockmeta.Meta), logger *slog.Logger, reg prometheus.Registerer) (*compactor.Compactor, error) {
	c := cfg.Compactor
	levels, err := compactor.LevelsFor(time.Duration(cfg.Storage.BlockDuration))
	if err != nil {
		return nil, err
	}
	// The lock owner names this host and data directory, not this process:
	// a compactor restarted after a crash takes its tenants' locks back at
	// once instead of waiting for them to expire.
	host, _ := os.Hostname()
	dir, err := filepath.Abs(cfg.Storage.Path)
	if err != nil {
		return nil, err
	}
	return compactor.New(compactor.Options{
		Bucket: bkt,
		Dir:    filepath.Join(cfg.Storage.Path, "compactor"),
		Levels: levels,
		Owner:  host + ":" + dir,
		Retention: func(id string) compactor.Retention {
			l := overrides.For(id)
			return compactor.Retention{Raw: time.Duration(l.RetentionRaw), Res1m: time.Duration(l.Retention1m), Res1h: time.Duration(l.Retention1h)}
		},
		DeletionDelay:   time.Duration(c.DeletionDelay),
		CompactionDelay: time.Duration(c.CompactionDelay),
		RetentionGrace:  time.Duration(c.RetentionGrace),
		LockTTL:         time.Duration(c.LockTTL),
		Owned:           owned,
		Uploaded:        uploaded,
		Logger:          logger,
		Registerer:      reg,
	})
}
