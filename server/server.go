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
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/util/netconnlimit"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/alerting"
	"github.com/strata-tsdb/strata/api"
	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/config"
	"github.com/strata-tsdb/strata/frontend"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/memory"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/remotewrite"
	"github.com/strata-tsdb/strata/tenant"
)

// Server is a running Strata.
type Server struct {
	cfg    *config.Config
	logger *slog.Logger
	reg    *prometheus.Registry
	store  *blocks.Store
	// compactor is nil when -compactor.enabled is off.
	compactor *compactor.Compactor
	bucket    objstore.Bucket
	engine    *promqlengine.Engine
	frontend  *frontend.Frontend
	alerting  *alerting.Service
	overrides *limits.Overrides
	auth      *tenant.Authenticator // nil: the tenant header is trusted
	http      *http.Server
	listener  net.Listener
	releaser  *memory.Releaser // nil when disabled
}

// New opens the store (replaying every tenant's WAL) and binds the HTTP
// listener; Run serves.
//
// The Go runtime's memory settings (-runtime.*) apply to the whole process:
// a process runs one Server.
func New(cfg *config.Config, logger *slog.Logger) (*Server, error) {
	if err := memory.Apply(cfg.Runtime.Memory(), logger.With("component", "memory")); err != nil {
		return nil, fmt.Errorf("apply runtime memory settings: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("strata"),
	)
	overrides, err := limits.NewOverrides(cfg.Limits, cfg.Overrides, logger.With("component", "overrides"), reg)
	if err != nil {
		return nil, fmt.Errorf("load limits: %w", err)
	}
	var auth *tenant.Authenticator
	if cfg.Tenant.AuthFile != "" {
		if auth, err = tenant.LoadAuthFile(cfg.Tenant.AuthFile); err != nil {
			return nil, err
		}
	}
	seriesLimiter := limits.NewSeriesLimiter(overrides, reg)
	changes := &frontend.Changes{}
	bkt, err := objstore.New(context.Background(), cfg.Bucket, filepath.Join(cfg.Storage.Path, "bucket"), logger.With("component", "bucket"), reg)
	if err != nil {
		return nil, fmt.Errorf("open bucket: %w", err)
	}
	store, err := blocks.Open(blocks.Options{
		Dir:                         cfg.Storage.Path,
		OutOfOrderWindow:            time.Duration(cfg.Storage.OutOfOrderWindow),
		BlockDuration:               time.Duration(cfg.Storage.BlockDuration),
		Retention:                   time.Duration(cfg.Storage.LocalRetention),
		MaxExemplars:                cfg.Storage.MaxExemplars,
		WALCompression:              cfg.Storage.WALCompression,
		StartTimestampZeroIngestion: cfg.Storage.StartTimestampZeroIngestion,
		StoreStartTimestamps:        cfg.Storage.StartTimestampStorage,
		Bucket:                      bkt,
		ShipInterval:                time.Duration(cfg.Storage.ShipInterval),
		SyncInterval:                time.Duration(cfg.Storage.BucketSyncInterval),
		CacheDir:                    cfg.Storage.BlockCacheDir,
		CacheMaxBytes:               cfg.Storage.BlockCacheMaxBytes,
		SeriesCallback:              func(id string) blocks.SeriesCallback { return seriesLimiter.Tracker(id) },
		MaxTenants:                  cfg.Storage.MaxTenants,
		AlwaysAdmit:                 overrides.Has,
		IdleTimeout:                 time.Duration(cfg.Storage.TenantIdleTimeout),
		MinFreeBytes:                cfg.Storage.MinFreeBytes,
		Changes:                     changes,
		Logger:                      logger.With("component", "store"),
		Registerer:                  reg,
	})
	if err != nil {
		_ = bkt.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	// Learn the bucket's blocks before serving, so that the first queries
	// see them; an unreachable bucket delays start by at most this much and
	// is retried by the store's sync loop.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := store.SyncBucket(sctx); err != nil {
		logger.Warn("initial bucket sync failed; serving without bucket blocks until the next sync", "err", err)
	}
	cancel()
	engine, err := promqlengine.New(promqlengine.Options{
		Downsampled:           store,
		LookbackDelta:         time.Duration(cfg.Query.LookbackDelta),
		Timeout:               time.Duration(cfg.Query.Timeout),
		MaxSamples:            cfg.Query.MaxSamples,
		MaxConcurrent:         cfg.Query.MaxConcurrency,
		ActiveQueryDir:        filepath.Join(cfg.Storage.Path, "queries"),
		ExperimentalFunctions: cfg.Query.ExperimentalFunctions,
		Shards:                cfg.Query.Shards,
		NoPushdown:            !cfg.Query.Pushdown,
		MaxQueryLength:        cfg.Query.MaxLength,
		MaxQueryDepth:         cfg.Query.MaxNestingDepth,
		Limits:                overrides,
		Logger:                logger,
		Registerer:            reg,
	})
	if err != nil {
		_ = store.Close()
		_ = bkt.Close()
		return nil, fmt.Errorf("create query engine: %w", err)
	}
	fe, err := frontend.New(frontend.Options{
		Config:           cfg.Frontend,
		Engine:           engine,
		Parser:           engine.Parser,
		LookbackDelta:    time.Duration(cfg.Query.LookbackDelta),
		OutOfOrderWindow: time.Duration(cfg.Storage.OutOfOrderWindow),
		TenantMaxBytes:   func(id string) int64 { return overrides.For(id).ResultsCacheMaxBytes },
		Logger:           logger.With("component", "frontend"),
		Registerer:       reg,
	})
	if err != nil {
		_ = engine.Close()
		_ = store.Close()
		_ = bkt.Close()
		return nil, fmt.Errorf("create query front end: %w", err)
	}
	changes.Set(fe)
	al, err := alerting.New(alerting.Options{
		Rules:         cfg.Rules,
		Notify:        cfg.Notifications,
		Alertmanager:  cfg.Alertmanager,
		DefaultTenant: cfg.Tenant.Default,
		Engine:        engine,
		Parser:        engine.Parser,
		Queryable:     store.Queryable(),
		Appendable:    store,
		QueryTimeout:  time.Duration(cfg.Query.Timeout),
		Logger:        logger.With("component", "alerting"),
		Registerer:    reg,
	})
	if err != nil {
		_ = engine.Close()
		_ = store.Close()
		_ = bkt.Close()
		return nil, fmt.Errorf("create rule evaluator: %w", err)
	}
	var comp *compactor.Compactor
	if cfg.Compactor.Enabled {
		// Options only: a compactor holds nothing until it runs.
		if comp, err = newCompactor(cfg, bkt, overrides, logger, reg); err != nil {
			_ = engine.Close()
			_ = store.Close()
			_ = bkt.Close()
			return nil, fmt.Errorf("create compactor: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.HTTP.ListenAddress)
	if err != nil {
		_ = engine.Close()
		_ = store.Close()
		_ = bkt.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTP.ListenAddress, err)
	}
	if cfg.HTTP.MaxConnections > 0 {
		// As Prometheus: connections beyond the limit wait to be accepted.
		ln = netconnlimit.SharedLimitListener(ln, netconnlimit.NewSharedSemaphore(cfg.HTTP.MaxConnections))
	}
	s := &Server{cfg: cfg, logger: logger, reg: reg, store: store, bucket: bkt, engine: engine, frontend: fe, alerting: al, listener: ln, compactor: comp, overrides: overrides, auth: auth}
	s.releaser = memory.NewReleaser(time.Duration(cfg.Runtime.ReleaseMemoryAfterIdle), logger.With("component", "memory"), reg)
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

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Store is the server's store.
func (s *Server) Store() *blocks.Store { return s.store }

func (s *Server) tenants() tenant.Resolver {
	if s.cfg.Tenant.RequireHeader {
		return tenant.Resolver{Auth: s.auth}
	}
	return tenant.Resolver{Default: s.cfg.Tenant.Default, Auth: s.auth}
}

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

func (s *Server) routes() http.Handler {
	flags := s.cfg.Flags()
	write := remotewrite.NewHandler(s.store, remotewrite.Options{
		MaxBodyBytes:  s.cfg.Write.MaxBodyBytes,
		MaxFutureTime: time.Duration(s.cfg.Write.MaxFutureTime),
		Tenants:       s.tenants(),
		Limits:        s.overrides,
		Logger:        s.logger.With("component", "remotewrite"),
		Registerer:    s.reg,
	})
	query := api.New(api.Options{
		Engine:                s.frontend,
		Parser:                s.engine.Parser,
		Queryable:             s.store.Queryable(),
		Exemplars:             s.store.ExemplarQueryable(),
		Metadata:              metadataSource{s.store},
		HeadStats:             s.store,
		Tenants:               s.tenants(),
		Limits:                s.overrides,
		LookbackDelta:         time.Duration(s.cfg.Query.LookbackDelta),
		QueryTimeout:          time.Duration(s.cfg.Query.Timeout),
		RemoteReadSampleLimit: s.cfg.Query.RemoteReadSampleLimit,
		RemoteReadConcurrency: s.cfg.Query.RemoteReadConcurrency,
		Rules:                 s.alerting.Rules,
		AnomalyQuery:          s.alerting.AnomalyQueryHandler(),
		BuildInfo: v1.PrometheusVersion{
			Version:   version.Version,
			Revision:  version.Revision,
			Branch:    version.Branch,
			BuildUser: version.BuildUser,
			BuildDate: version.BuildDate,
			GoVersion: version.GoVersion,
		},
		Flags:      flags,
		Logger:     s.logger,
		Registerer: s.reg,
		Gatherer:   s.reg,
	})
	m := newHTTPMetrics(s.reg)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/write", m.instrument("write", write))
	mux.Handle("/api/v1/admin/flush", m.instrument("flush", s.authenticated(api.FlushHandler(s.store))))
	mux.Handle("/api/v1/", m.instrument("api", frontend.Handler(query)))
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
		if err := s.alerting.Reload(); err != nil {
			http.Error(w, "Failed to reload rules: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if _, err := s.overrides.Reload(); err != nil {
			http.Error(w, "Failed to reload overrides: "+err.Error(), http.StatusInternalServerError)
		}
	})))
	return mux
}

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	bg, stopBg := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.store.Run(bg)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.overrides.Run(bg)
	}()
	if s.releaser != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.releaser.Run(bg)
		}()
	}
	if s.compactor != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.compactor.Run(bg, time.Duration(s.cfg.Compactor.Interval))
		}()
	}

	// Rules run until the HTTP server is shut down, and stop before the store closes.
	rulesCtx, stopRules := context.WithCancel(context.Background())
	rulesDone := make(chan struct{})
	go func() {
		defer close(rulesDone)
		s.alerting.Run(rulesCtx)
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(s.listener) }()
	s.logger.Info("Strata started", "version", version.Version, "address", s.listener.Addr().String(), "data", s.cfg.Storage.Path)

	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-serveErr:
			err = fmt.Errorf("serve HTTP: %w", err)
			break loop
		case <-hup:
			if rerr := s.alerting.Reload(); rerr != nil {
				s.logger.Error("reloading rules on SIGHUP failed; the previous rules stay", "err", rerr)
			}
			if _, rerr := s.overrides.Reload(); rerr != nil {
				s.logger.Error("reloading the overrides file on SIGHUP failed; the previous overrides stay", "err", rerr)
			}
		}
	}
	s.logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.HTTP.ShutdownTimeout))
	defer cancel()
	if serr := s.http.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("shut down HTTP: %w", serr))
	}
	stopRules()
	<-rulesDone
	stopBg()
	wg.Wait()
	if s.cfg.Storage.FlushOnShutdown {
		s.logger.Info("flushing the head to the bucket before exit")
		if ferr := s.store.Flush(context.Background()); ferr != nil {
			err = errors.Join(err, fmt.Errorf("flush on shutdown: %w", ferr))
		}
	}
	if cerr := s.frontend.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if cerr := s.engine.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if cerr := s.store.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	if cerr := s.bucket.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close bucket: %w", cerr))
	}
	s.logger.Info("stopped")
	return err
}

// metadataSource adapts the store's metadata to the API.
type metadataSource struct{ s *blocks.Store }

func (m metadataSource) MetricMetadata(_ context.Context, id, metric string) (map[string][]metadata.Metadata, error) {
	fams, err := m.s.MetricMetadata(id, metric)
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
func newCompactor(cfg *config.Config, bkt objstore.Bucket, overrides *limits.Overrides, logger *slog.Logger, reg prometheus.Registerer) (*compactor.Compactor, error) {
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
		Logger:          logger,
		Registerer:      reg,
	})
}
