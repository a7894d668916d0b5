package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
)

// Ring names, each under one key of the KV store: the ingesters' ring
// places series; the distributors' ring only counts distributors, which
// share each tenant's ingestion rate.
const (
	ingesterRingName    = "ingester"
	ingesterRingKey     = "ingester"
	distributorRingName = "distributor"
	distributorRingKey  = "distributor"
	compactorRingName   = "compactor"
	compactorRingKey    = "compactor"
	rulerRingName       = "ruler"
	rulerRingKey        = "ruler"
)

// Options are what a Member needs besides its Config.
type Options struct {
	Targets Targets
	// HTTPAddr is the address the process's HTTP server listens on: its
	// port is the ring address's when -ring.instance-addr is empty.
	HTTPAddr string
	// Flush ships an ingester's heads to the bucket before it leaves the
	// ring; called while it is LEAVING (no longer written to).
	Flush func(context.Context) error
	// FlushTimeout bounds Flush.
	FlushTimeout time.Duration
	// CompactorDisabled keeps a process of role compactor whose compactor
	// is off (-compactor.enabled=false) out of the compactors' ring: it
	// would own tenants it never compacts.
	CompactorDisabled bool

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Member is a process's membership of the cluster: the memberlist KV it
// gossips through, its view of the ingesters' ring and, in an ingester,
// the lifecycler that keeps the ingester's entry (tokens, state, heartbeat).
type Member struct {
	cfg    Config
	logger *slog.Logger
	kv     *memberlist.KVInitService
	// Ring is the ingesters' ring, as this process sees it.
	Ring       *ring.Ring
	lifecycler *ring.BasicLifecycler // nil unless the process is an ingester
	// distributors is the distributors' ring, and distLifecycler this
	// distributor's entry in it; nil unless the process is a distributor.
	distributors   *ring.Ring
	distLifecycler *ring.BasicLifecycler
	// compactors is the compactors' ring, and compLifecycler this
	// compactor's entry in it; nil unless the process is a compactor.
	compactors     *ring.Ring
	compLifecycler *ring.BasicLifecycler
	// rulers is the rulers' ring, and rulerLifecycler this ruler's entry
	// in it; nil unless the process is a ruler.
	rulers          *ring.Ring
	rulerLifecycler *ring.BasicLifecycler
	// rulersView is the rulers' ring as a querier that is no ruler sees
	// it; nil otherwise.
	rulersView *ring.Ring
	// started are the services running, in the order they started.
	started []services.Service

	// healthy caches HealthyIngesters for a second: the series limiter
	// asks at every new series.
	healthyAt atomic.Int64 // unix nanoseconds of the count; 0 before the first
	healthy   atomic.Int64
}

// NewMember builds the process's membership; Start joins the cluster.
func NewMember(cfg Config, opts Options) (*Member, error) {
	logger := kitLogger{opts.Logger}
	m := &Member{cfg: cfg, logger: opts.Logger}

	var kvCfg memberlist.KVConfig
	// dskit's defaults (gossip and probe intervals, timeouts), then
	// Strata's settings.
	kvCfg.RegisterFlags(flag.NewFlagSet("memberlist", flag.ContinueOnError))
	kvCfg.TCPTransport.BindAddrs = []string{cfg.Memberlist.BindAddr}
	kvCfg.TCPTransport.BindPort = cfg.Memberlist.BindPort
	kvCfg.JoinMembers = append(kvCfg.JoinMembers[:0], cfg.Memberlist.Join...)
	kvCfg.Codecs = []codec.Codec{ring.GetCodec()}
	m.kv = memberlist.NewKVInitService(&kvCfg, logger, &noDNS{}, opts.Registerer)

	kvStore := kv.Config{Store: "memberlist", StoreConfig: kv.StoreConfig{MemberlistKV: m.kv.GetMemberlistKV}}
	ringCfg := ring.Config{
		KVStore:           kvStore,
		HeartbeatTimeout:  time.Duration(cfg.Ring.HeartbeatTimeout),
		ReplicationFactor: cfg.Ring.ReplicationFactor,
	}
	var err error
	if m.Ring, err = ring.New(ringCfg, ingesterRingName, ingesterRingKey, logger, opts.Registerer); err != nil {
		return nil, fmt.Errorf("create the ingester ring client: %w", err)
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_ring_healthy_ingesters",
			Help: "Healthy ingesters in the ring as this process sees it, counted at most once a second: an ingester's share of a tenant's active-series limit is the limit times the replication factor divided by it.",
		}, func() float64 { return float64(m.HealthyIngesters()) })); err != nil {
			return nil, fmt.Errorf("register the healthy ingesters gauge: %w", err)
		}
	}
	compactor := opts.Targets.Has(TargetCompactor) && !opts.CompactorDisabled
	ruler := opts.Targets.Has(TargetRuler)
	if opts.Targets.Has(TargetQuerier) && !ruler {
		// A querier asks the rulers for their rules and alerts (Rulers).
		viewCfg := ringCfg
		viewCfg.ReplicationFactor = 1
		if m.rulersView, err = ring.New(viewCfg, rulerRingName, rulerRingKey, logger, prometheus.WrapRegistererWithPrefix(rulerRingName+"_", opts.Registerer)); err != nil {
			return nil, fmt.Errorf("create the %s ring client: %w", rulerRingName, err)
		}
	}
	if !opts.Targets.Has(TargetIngester) && !opts.Targets.Has(TargetDistributor) && !compactor && !ruler {
		return m, nil
	}

	addr, err := instanceAddr(cfg.Ring.InstanceAddr, opts.HTTPAddr, logger)
	if err != nil {
		return nil, err
	}
	id := cfg.Ring.InstanceID
	if id == "" {
		if id, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("ring.instance-id is empty and the host name is unknown: %w", err)
		}
	}
	if opts.Targets.Has(TargetDistributor) {
		distCfg := ringCfg
		distCfg.ReplicationFactor = 1
		if m.distributors, err = ring.New(distCfg, distributorRingName, distributorRingKey, logger, prometheus.WrapRegistererWithPrefix("distributor_", opts.Registerer)); err != nil {
			return nil, fmt.Errorf("create the distributor ring client: %w", err)
		}
		client, err := kv.NewClient(kvStore, ring.GetCodec(), kv.RegistererWithKVName(opts.Registerer, "distributor-lifecycler"), logger)
		if err != nil {
			return nil, fmt.Errorf("create the ring's KV client: %w", err)
		}
		// One token: the ring only counts distributors. A distributor
		// holds no data: on stop it leaves at once.
		var d ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.ACTIVE, 1)
		d = ring.NewLeaveOnStoppingDelegate(d, logger)
		d = ring.NewAutoForgetDelegate(time.Duration(cfg.Ring.ForgetAfter), d, logger)
		if m.distLifecycler, err = ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
			ID: id, Addr: addr, NumTokens: 1,
			HeartbeatPeriod:  time.Duration(cfg.Ring.HeartbeatPeriod),
			HeartbeatTimeout: time.Duration(cfg.Ring.HeartbeatTimeout),
		}, distributorRingName, distributorRingKey, client, d, logger, prometheus.WrapRegistererWithPrefix("distributor_", opts.Registerer)); err != nil {
			return nil, fmt.Errorf("create the distributor lifecycler: %w", err)
		}
	}
	if compactor {
		if m.compactors, m.compLifecycler, err = ownerRing(cfg, ringCfg, compactorRingName, compactorRingKey, id, addr, logger, opts.Registerer); err != nil {
			return nil, err
		}
	}
	if ruler {
		if m.rulers, m.rulerLifecycler, err = ownerRing(cfg, ringCfg, rulerRingName, rulerRingKey, id, addr, logger, opts.Registerer); err != nil {
			return nil, err
		}
	}
	if !opts.Targets.Has(TargetIngester) {
		return m, nil
	}
	client, err := kv.NewClient(kvStore, ring.GetCodec(), kv.RegistererWithKVName(opts.Registerer, "ingester-lifecycler"), logger)
	if err != nil {
		return nil, fmt.Errorf("create the ring's KV client: %w", err)
	}
	// Delegates, outermost first: forget members unhealthy for
	// -ring.forget-after; on stop, go LEAVING (no more writes), keep the
	// tokens, flush, then leave the ring; on start, take back the tokens
	// the ring (or the tokens file) still has, or new ones, as ACTIVE.
	var d ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.ACTIVE, cfg.Ring.NumTokens)
	d = &flushDelegate{BasicLifecyclerDelegate: d, flush: opts.Flush, timeout: opts.FlushTimeout, logger: opts.Logger}
	if cfg.Ring.TokensFile != "" {
		d = ring.NewTokensPersistencyDelegate(cfg.Ring.TokensFile, ring.ACTIVE, d, logger)
	}
	d = ring.NewLeaveOnStoppingDelegate(d, logger)
	d = ring.NewAutoForgetDelegate(time.Duration(cfg.Ring.ForgetAfter), d, logger)
	lcCfg := ring.BasicLifecyclerConfig{
		ID:                  id,
		Addr:                addr,
		HeartbeatPeriod:     time.Duration(cfg.Ring.HeartbeatPeriod),
		HeartbeatTimeout:    time.Duration(cfg.Ring.HeartbeatTimeout),
		TokensObservePeriod: 0,
		NumTokens:           cfg.Ring.NumTokens,
	}
	if m.lifecycler, err = ring.NewBasicLifecycler(lcCfg, ingesterRingName, ingesterRingKey, client, d, logger, opts.Registerer); err != nil {
		return nil, fmt.Errorf("create the ingester lifecycler: %w", err)
	}
	return m, nil
}

// ownerRing builds a ring whose members each own a share of the tenants
// (Owners), and this process's entry in it: -ring.num-tokens tokens, for
// shares about even; ACTIVE once registered; on stop it leaves at once,
// holding no data, and the others take its tenants.
func ownerRing(cfg Config, ringCfg ring.Config, name, key, id, addr string, logger kitLogger, reg prometheus.Registerer) (*ring.Ring, *ring.BasicLifecycler, error) {
	ringCfg.ReplicationFactor = 1
	reg = prometheus.WrapRegistererWithPrefix(name+"_", reg)
	r, err := ring.New(ringCfg, name, key, logger, reg)
	if err != nil {
		return nil, nil, fmt.Errorf("create the %s ring client: %w", name, err)
	}
	client, err := kv.NewClient(ringCfg.KVStore, ring.GetCodec(), kv.RegistererWithKVName(reg, name+"-lifecycler"), logger)
	if err != nil {
		return nil, nil, fmt.Errorf("create the ring's KV client: %w", err)
	}
	var d ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.ACTIVE, cfg.Ring.NumTokens)
	d = ring.NewLeaveOnStoppingDelegate(d, logger)
	d = ring.NewAutoForgetDelegate(time.Duration(cfg.Ring.ForgetAfter), d, logger)
	l, err := ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID: id, Addr: addr, NumTokens: cfg.Ring.NumTokens,
		HeartbeatPeriod:  time.Duration(cfg.Ring.HeartbeatPeriod),
		HeartbeatTimeout: time.Duration(cfg.Ring.HeartbeatTimeout),
	}, name, key, client, d, logger, reg)
	if err != nil {
		return nil, nil, fmt.Errorf("create the %s lifecycler: %w", name, err)
	}
	return r, l, nil
}

// instanceAddr is the address other processes reach this one at.
func instanceAddr(configured, httpAddr string, logger kitLogger) (string, error) {
	if configured != "" {
		return configured, nil
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", fmt.Errorf("ring address from %q: %w", httpAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = ring.GetInstanceAddr("", []string{"eth0", "en0"}, logger, false); err != nil {
			return "", fmt.Errorf("find this host's address for the ring (set -ring.instance-addr): %w", err)
		}
	}
	p, _ := strconv.Atoi(port)
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// Start joins the cluster: memberlist, the ring's view and, in an ingester,
// its entry in the ring (ACTIVE once registered).
func (m *Member) Start(ctx context.Context) error {
	svcs := []services.Service{m.kv, m.Ring}
	if m.distributors != nil {
		svcs = append(svcs, m.distributors, m.distLifecycler)
	}
	if m.compactors != nil {
		svcs = append(svcs, m.compactors, m.compLifecycler)
	}
	if m.rulers != nil {
		svcs = append(svcs, m.rulers, m.rulerLifecycler)
	}
	if m.rulersView != nil {
		svcs = append(svcs, m.rulersView)
	}
	if m.lifecycler != nil {
		svcs = append(svcs, m.lifecycler)
	}
	for _, s := range svcs {
		// A service runs until stopped with the context it was started
		// with: not ctx, so that the process's shutdown stops them in
		// order (Stop) rather than all at once.
		if err := s.StartAsync(context.Background()); err != nil {
			return errors.Join(fmt.Errorf("join the cluster: %w", err), m.Stop())
		}
		m.started = append(m.started, s)
		if err := s.AwaitRunning(ctx); err != nil {
			return errors.Join(fmt.Errorf("join the cluster: %w", err), m.Stop())
		}
	}
	// A compactor or ruler is registered in the KV store; the ring's view
	// follows shortly. Until it does, it cannot tell its tenants.
	for _, owners := range []func() (*Owners, error){m.CompactorOwners, m.RulerOwners} {
		if err := m.awaitOwners(ctx, owners); err != nil {
			return errors.Join(err, m.Stop())
		}
	}
	return nil
}

// awaitOwners waits until owners answers, unless its ring is not this
// process's (errNotMember).
func (m *Member) awaitOwners(ctx context.Context, owners func() (*Owners, error)) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := owners()
		if err == nil || errors.Is(err, errNotMember) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join the ring: %w (%w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Stop leaves the cluster, last started first. An ingester's lifecycler goes
// LEAVING, flushes the heads and removes the ingester from the ring before
// the ring view and memberlist stop.
func (m *Member) Stop() error {
	var errs []error
	for i := len(m.started) - 1; i >= 0; i-- {
		if err := services.StopAndAwaitTerminated(context.Background(), m.started[i]); err != nil {
			errs = append(errs, err)
		}
	}
	m.started = nil
	return errors.Join(errs...)
}

// InstanceID is the ingester's name in the ring; empty unless an ingester.
func (m *Member) InstanceID() string {
	if m.lifecycler == nil {
		return ""
	}
	return m.lifecycler.GetInstanceID()
}

// Distributors returns how many healthy distributors the cluster has, this
// one included: they share each tenant's ingestion rate
// (limits.NewSharedRateLimiters). 1 unless the process is a distributor.
func (m *Member) Distributors() int {
	if m.distributors == nil {
		return 1
	}
	rs, err := m.distributors.GetAllHealthy(ring.Reporting)
	if err != nil {
		return 1
	}
	return max(1, len(rs.Instances))
}

// HealthyIngesters returns how many ingesters of the ring are ACTIVE and
// healthy (written to) as this process sees it, at most a second ago; 0
// before it has seen any. An ingester's share of a tenant's series limit
// is computed from it (limits.NewSharedSeriesLimiter).
func (m *Member) HealthyIngesters() int {
	now := time.Now().UnixNano()
	if at := m.healthyAt.Load(); at != 0 && now-at < int64(time.Second) {
		return int(m.healthy.Load())
	}
	n := 0
	if rs, err := m.Ring.GetAllHealthy(ring.Write); err == nil {
		n = len(rs.Instances)
	}
	// Concurrent callers may both count; either count is as recent.
	m.healthy.Store(int64(n))
	m.healthyAt.Store(now)
	return n
}

// CompactorOwners returns which compactor owns each tenant, from the
// compactors' ring as this compactor sees it now. It fails while this
// compactor is not a healthy member of the ring (not joined yet, or its
// heartbeats are failing): then it cannot know which tenants are its own.
func (m *Member) CompactorOwners() (*Owners, error) {
	if m.compactors == nil {
		return nil, fmt.Errorf("%w of the compactors' ring", errNotMember)
	}
	return healthyOwners(m.compactors, m.compLifecycler.GetInstanceID())
}

// RulerOwners returns which ruler owns each tenant's rule groups, from the
// rulers' ring as this ruler sees it now. It fails while this ruler is not
// a healthy member of the ring, as CompactorOwners does.
func (m *Member) RulerOwners() (*Owners, error) {
	if m.rulers == nil {
		return nil, fmt.Errorf("%w of the rulers' ring", errNotMember)
	}
	return healthyOwners(m.rulers, m.rulerLifecycler.GetInstanceID())
}

// Rulers returns the addresses of the healthy rulers, for a querier or a
// ruler; none while the rulers' ring is empty.
func (m *Member) Rulers() ([]string, error) {
	r := m.rulers
	if r == nil {
		r = m.rulersView
	}
	if r == nil {
		return nil, fmt.Errorf("%w of the rulers' ring, nor a querier", errNotMember)
	}
	rs, err := r.GetAllHealthy(ring.Read)
	if errors.Is(err, ring.ErrEmptyRing) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("healthy rulers: %w", err)
	}
	addrs := make([]string, 0, len(rs.Instances))
	for _, in := range rs.Instances {
		addrs = append(addrs, in.Addr)
	}
	slices.Sort(addrs)
	return addrs, nil
}

// RulerRingHandler serves the rulers' ring page; nil unless the process is
// a ruler.
func (m *Member) RulerRingHandler() http.Handler {
	if m.rulers == nil {
		return nil
	}
	return m.rulers
}

// CompactorRingHandler serves the compactors' ring page; nil unless the
// process is a compactor.
func (m *Member) CompactorRingHandler() http.Handler {
	if m.compactors == nil {
		return nil
	}
	return m.compactors
}

// RingHandler serves the ring's status page (/ring): the members, their
// state, address, heartbeat and token ownership; JSON for a request that
// accepts application/json. It allows forgetting a member by hand.
func (m *Member) RingHandler() http.Handler { return m.Ring }

// DistributorRingHandler serves the distributors' ring page; nil unless
// the process is a distributor.
func (m *Member) DistributorRingHandler() http.Handler {
	if m.distributors == nil {
		return nil
	}
	return m.distributors
}

// MemberlistHandler serves memberlist's status page (/memberlist).
func (m *Member) MemberlistHandler() http.Handler { return m.kv }

// flushDelegate flushes the ingester's heads to the bucket when it stops,
// after LeaveOnStoppingDelegate has made it LEAVING and before the
// lifecycler removes it from the ring: its data is in the bucket before
// the cluster stops counting it as a replica.
type flushDelegate struct {
	ring.BasicLifecyclerDelegate
	flush   func(context.Context) error
	timeout time.Duration
	logger  *slog.Logger
}

func (d *flushDelegate) OnRingInstanceStopping(l *ring.BasicLifecycler) {
	if d.flush != nil {
		d.logger.Info("flushing the heads to the bucket before leaving the ring")
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
		if err := d.flush(ctx); err != nil {
			d.logger.Error("flush before leaving the ring failed; the blocks not shipped stay in the WAL and local blocks", "err", err)
		}
		cancel()
	}
	d.BasicLifecyclerDelegate.OnRingInstanceStopping(l)
}

// noDNS resolves join addresses as given: Strata's -memberlist.join takes
// host:port, which memberlist resolves itself.
type noDNS struct{ addrs []string }

func (p *noDNS) Resolve(_ context.Context, addrs []string) error {
	p.addrs = addrs
	return nil
}

func (p *noDNS) Addresses() []string { return p.addrs }
