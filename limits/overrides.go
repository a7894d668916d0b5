package limits

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/strata-tsdb/strata/tenant"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// OverridesConfig names the runtime overrides file.
type OverridesConfig struct {
	// File is the YAML file of per-tenant overrides; empty means none.
	File string `yaml:"file"`
	// ReloadPeriod is how often the file is checked for changes.
	ReloadPeriod model.Duration `yaml:"reload_period"`
}

// RegisterFlags registers the overrides flags on fs.
func (c *OverridesConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.File, "overrides.file", "", "YAML file of per-tenant limits, re-read while running (see docs/limits.md).")
	flagext.DurationVar(fs, &c.ReloadPeriod, "overrides.reload-period", 10*time.Second, "How often the overrides file is checked for changes; it is also re-read on SIGHUP and POST /-/reload.")
}

// overridesFile is the format of the overrides file:
//
//	overrides:
//	  team-a:
//	    ingestion_rate: 50000
//	    max_active_series: 1000000
//
// Limits a tenant's entry leaves out keep their defaults.
type overridesFile struct {
	Overrides map[string]yaml.Node `yaml:"overrides"`
}

// Overrides answers the limits of each tenant: the defaults, replaced key
// by key by the tenant's entry in the overrides file. It is safe for
// concurrent use; For costs one atomic load and one map lookup.
type Overrides struct {
	defaults Limits
	path     string
	period   time.Duration
	logger   *slog.Logger

	tenants atomic.Pointer[map[string]*Limits]

	mu   sync.Mutex // serialises reloads
	last []byte     // content of the file as last applied

	hits          *prometheus.CounterVec
	reloads       *prometheus.CounterVec
	lastReloadOK  prometheus.Gauge
	tenantsGauged prometheus.Gauge
}

// NewOverrides returns the limits of every tenant: defaults, overridden by
// the file of cfg if set. The file is read once here; a broken file is an error.
func NewOverrides(defaults Limits, cfg OverridesConfig, logger *slog.Logger, reg prometheus.Registerer) (*Overrides, error) {
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("default limits: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	o := &Overrides{
		defaults: defaults,
		path:     cfg.File,
		period:   time.Duration(cfg.ReloadPeriod),
		logger:   logger,
		hits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_limit_hits_total",
			Help: "Requests, series or queries that ran into a per-tenant limit, by tenant and limit.",
		}, []string{"tenant", "limit"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_overrides_reloads_total",
			Help: "Reloads of the runtime overrides file, by result (success, failure).",
		}, []string{"result"}),
		lastReloadOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_overrides_last_reload_successful",
			Help: "Whether the last reading of the overrides file succeeded (1) or not (0).",
		}),
		tenantsGauged: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_overrides_tenants",
			Help: "Tenants with an entry in the overrides file.",
		}),
	}
	if o.period <= 0 {
		o.period = 10 * time.Second
	}
	empty := map[string]*Limits{}
	o.tenants.Store(&empty)
	o.lastReloadOK.Set(1)
	if o.path != "" {
		if _, err := o.Reload(); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// For returns the limits of tenant id. The result must not be modified.
func (o *Overrides) For(id string) *Limits {
	if l, ok := (*o.tenants.Load())[id]; ok {
		return l
	}
	return &o.defaults
}

// Has reports whether tenant id has an entry in the overrides file.
func (o *Overrides) Has(id string) bool {
	_, ok := (*o.tenants.Load())[id]
	return ok
}

// Defaults returns the limits of tenants without overrides.
func (o *Overrides) Defaults() *Limits { return &o.defaults }

// Hit counts that tenant id ran into limit.
func (o *Overrides) Hit(id, limit string) { o.hits.WithLabelValues(id, limit).Inc() }

// Reload re-reads the overrides file and applies it if its content changed.
// It reports whether it changed. On error the previous overrides stay.
func (o *Overrides) Reload() (bool, error) {
	if o.path == "" {
		return false, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	changed, err := o.reload()
	if err != nil {
		o.reloads.WithLabelValues("failure").Inc()
		o.lastReloadOK.Set(0)
		return false, err
	}
	o.reloads.WithLabelValues("success").Inc()
	o.lastReloadOK.Set(1)
	return changed, nil
}

func (o *Overrides) reload() (bool, error) {
	b, err := os.ReadFile(o.path)
	if err != nil {
		return false, fmt.Errorf("read overrides file: %w", err)
	}
	if o.last != nil && bytes.Equal(b, o.last) {
		return false, nil
	}
	m, err := ParseOverrides(b, o.defaults)
	if err != nil {
		return false, fmt.Errorf("overrides file %s: %w", o.path, err)
	}
	o.tenants.Store(&m)
	o.last = b
	o.tenantsGauged.Set(float64(len(m)))
	o.logger.Info("overrides loaded", "file", o.path, "tenants", len(m))
	return true, nil
}

// ParseOverrides parses the content of an overrides file: each tenant's
// entry starts from defaults, and unknown keys are errors.
func ParseOverrides(b []byte, defaults Limits) (map[string]*Limits, error) {
	var f overridesFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	m := make(map[string]*Limits, len(f.Overrides))
	for id, node := range f.Overrides {
		if err := tenant.ValidateID(id); err != nil {
			return nil, fmt.Errorf("tenant %q: %w", id, err)
		}
		// Re-encode the entry to decode it strictly: yaml.Node.Decode
		// cannot reject unknown keys, and a misspelt limit must not pass
		// silently.
		raw, err := yaml.Marshal(&node)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %w", id, err)
		}
		l := defaults
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&l); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("tenant %q: %w", id, err)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("tenant %q: %w", id, err)
		}
		m[id] = &l
	}
	return m, nil
}

// Run re-reads the overrides file every reload period until ctx is done.
func (o *Overrides) Run(ctx context.Context) {
	if o.path == "" {
		return
	}
	t := time.NewTicker(o.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := o.Reload(); err != nil {
				o.logger.Error("reloading the overrides file failed; the previous overrides stay", "err", err)
			}
		}
	}
}

// File is the overrides file, empty if none.
func (o *Overrides) File() string { return o.path }
