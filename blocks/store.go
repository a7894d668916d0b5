// Package blocks is Strata's store: one Prometheus TSDB (head, write-ahead
// log and local blocks) per tenant, the metric metadata each tenant sent, and
// a storage.Queryable that resolves the tenant of every query from its context.
//
// Invariants:
//   - A tenant's TSDB lives in <Dir>/tenants/<tenant>; its directory name is a
//     validated tenant ID (see package tenant), never raw input.
//   - Samples are in the tenant's WAL when an appender's Commit returns nil:
//     the WAL writes each committed batch to its segment file before Commit
//     returns, so acknowledged samples survive a process crash.
//   - A tenant's TSDB is open only while it is used (tenants.go): it opens
//     on its first write or read (replaying its WAL, so reads see every
//     acknowledged sample), and closes once idle, after its head is cut into
//     blocks and shipped. A tenant that cannot open is reported and retried;
//     it never keeps the store or other tenants from serving.
//   - A tenant refused (by the tenant limit, or because it could not be
//     created) leaves nothing on disk.
//   - Writes are refused while the data directory's free space is below
//     Options.MinFreeBytes (disk.go); reads are not.
package blocks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/tenant"
)

// Options configure a Store.
type Options struct {
	// Dir is the data directory; tenants live below Dir/tenants.
	Dir string
	// OutOfOrderWindow is how far behind a series' newest sample a sample may
	// be and still be accepted.
	OutOfOrderWindow time.Duration
	// BlockDuration is the time range of the blocks cut from the head.
	BlockDuration time.Duration
	// Retention is how long local blocks are kept. With a Bucket, only
	// blocks already shipped are ever deleted locally.
	Retention time.Duration
	// MaxExemplars is the size of each tenant's in-memory exemplar buffer; 0 disables exemplars.
	MaxExemplars int64
	// StartTimestampZeroIngestion injects a zero sample at a series' start
	// (created) timestamp, as Prometheus's created-timestamp-zero-ingestion.
	StartTimestampZeroIngestion bool
	// WALCompression compresses WAL records with snappy.
	WALCompression bool
	// StoreStartTimestamps keeps each sample's start (created) timestamp in
	// the chunks (Prometheus's experimental st-storage, XOR2 chunks), which
	// PromQL's start-timestamp aware functions read.
	StoreStartTimestamps bool

	// Bucket, when set, receives every block cut from a head and serves the
	// blocks no longer (or never) on local disk to queries.
	Bucket objstore.Bucket
	// ShipInterval is how often new local blocks are shipped (default 30s).
	ShipInterval time.Duration
	// SyncInterval is how often the bucket's block list is refreshed (default 1m).
	SyncInterval time.Duration
	// CacheDir holds bucket blocks downloaded for queries (default Dir/block-cache).
	CacheDir string
	// CacheMaxBytes bounds the block cache (default 10 GiB).
	CacheMaxBytes int64

	// SeriesCallback, when set, returns the series lifecycle callback of a
	// tenant's head (for example per-tenant series limits). The store arms
	// it once the head has replayed its WAL: series already stored are
	// never refused.
	SeriesCallback func(tenant string) SeriesCallback

	// MaxTenants bounds the tenants the store holds (on disk or open); a
	// write of a new tenant beyond it fails with a *limits.Error. 0 means
	// no limit.
	MaxTenants int
	// AlwaysAdmit, when set, names tenants admitted beyond MaxTenants
	// (those an operator configured).
	AlwaysAdmit func(tenant string) bool
	// Recent, when set, is a further source of a tenant's raw samples read
	// besides the local and the bucket's (a cluster's ingesters, for a
	// querier): its series are merged with the others, identical samples
	// once. Queryable reads it, LocalQueryable does not.
	Recent func(ctx context.Context, tenant string, mint, maxt int64) (storage.Querier, error)
	// IdleTimeout is how long a tenant may go unused (no write, no read)
	// before its head is cut into blocks, shipped, and its TSDB closed. 0
	// keeps tenants open.
	IdleTimeout time.Duration
	// MinFreeBytes is the free space of the data directory's file system
	// below which writes are refused (see disk.go). 0 means no floor.
	MinFreeBytes int64

	// Changes, when set, is told of every change of a tenant's data that
	// queries see (changes.go).
	Changes ChangeObserver

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// SeriesCallback is told of the series a tenant's head creates and
// deletes, and may refuse new ones once armed.
type SeriesCallback interface {
	tsdb.SeriesLifecycleCallback
	// Arm is called once the head is open and its WAL replayed.
	Arm()
}

// Store holds the TSDBs of all tenants.
type Store struct {
	opts   Options
	logger *slog.Logger
	reg    prometheus.Registerer
	m      *storeMetrics
	bucket *bucketBlocks // nil without a bucket
	cache  *blockCache   // nil without a bucket

	disk *diskGuard
	// stones are the tombstones of deletion requests on bucket blocks.
	stones deletionTombstones

	mu        sync.Mutex
	tenants   map[string]*tenantEntry // every tenant on disk or open
	leftovers map[string]struct{}     // directories of failed creations still to remove
	files     *fileBudget             // keeps tenant openings from running out of files
	closed    bool
}

// tenantDB is an open tenant: its TSDB and what goes with it. It is used
// only by holders of a reference (Store.acquire).
type tenantDB struct {
	id      string
	db      *tsdb.DB
	reg     *tenantRegisterer // the TSDB's metrics, unregistered when it closes
	meta    *MetadataStore
	shipper *shipper // nil without a bucket
	local   *localReads

	exemplarsSized atomic.Bool // the exemplar ring has its configured size (exemplars.go)
	exemplarsMu    sync.Mutex

	markerMu sync.Mutex
	written  bool // written to since it opened: its closedMarker is removed
}

// Open opens the store in opts.Dir. Tenants found on disk are not opened
// here: each opens on first use, and those that were open when the store
// last stopped (their heads may hold samples not yet in blocks) are opened
// by Run in the background (tenants.go).
func Open(opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.BlockDuration <= 0 {
		opts.BlockDuration = 2 * time.Hour
	}
	if opts.ShipInterval <= 0 {
		opts.ShipInterval = 30 * time.Second
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Minute
	}
	if opts.CacheDir == "" {
		opts.CacheDir = filepath.Join(opts.Dir, "block-cache")
	}
	if opts.CacheMaxBytes <= 0 {
		opts.CacheMaxBytes = 10 << 30
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		opts:      opts,
		logger:    opts.Logger,
		reg:       opts.Registerer,
		m:         newStoreMetrics(opts.Registerer),
		tenants:   map[string]*tenantEntry{},
		leftovers: map[string]struct{}{},
		files:     newFileBudget(),
	}
	if err := os.MkdirAll(s.tenantsDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s.disk = newDiskGuard(opts.Dir, opts.MinFreeBytes, opts.Logger, opts.Registerer)
	s.disk.maintainReserve(true)
	if opts.Bucket != nil {
		s.bucket = newBucketBlocks(opts.Bucket, opts.Logger, s.m, opts.Now)
		s.bucket.changes = opts.Changes
		c, err := newBlockCache(opts.CacheDir, opts.CacheMaxBytes, opts.Bucket, opts.Logger, s.m)
		if err != nil {
			return nil, err
		}
		s.cache = c
	}
	entries, err := os.ReadDir(s.tenantsDir())
	if err != nil {
		return nil, fmt.Errorf("list tenants in %s: %w", s.tenantsDir(), err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if err := tenant.ValidateID(e.Name()); err != nil {
			s.logger.Warn("ignoring directory that is not a tenant", "dir", e.Name(), "err", err)
			continue
		}
		if _, err := os.Stat(filepath.Join(s.tenantsDir(), e.Name(), creatingMarker)); err == nil {
			s.logger.Info("removing the directory of a tenant whose creation failed", "tenant", e.Name())
			s.removeCreating(e.Name())
			continue
		}
		_, err := os.Stat(filepath.Join(s.tenantsDir(), e.Name(), closedMarker))
		s.tenants[e.Name()] = &tenantEntry{onDisk: true, reopen: err != nil}
	}
	s.registerCollectors()
	return s, nil
}

func (s *Store) tenantsDir() string { return filepath.Join(s.opts.Dir, "tenants") }

// openTenant opens (creating it if needed) the TSDB of tenant id, its WAL
// replay's progress recorded in stats. The caller has marked the tenant
// busy (tenants.go).
func (s *Store) openTenant(id string, stats *tsdb.DBStats) (*tenantDB, error) {
	start := time.Now()
	dir := filepath.Join(s.tenantsDir(), id)
	o := tsdb.DefaultOptions()
	blockMs := s.opts.BlockDuration.Milliseconds()
	// Local blocks are never compacted beyond one block range: larger blocks
	// are built by the compactor in the bucket.
	o.MinBlockDuration = blockMs
	o.MaxBlockDuration = blockMs
	o.RetentionDuration = s.opts.Retention.Milliseconds()
	// Overlapping blocks (from out-of-order samples) are merged by the
	// compactor in the bucket: merging them locally would re-ship their data.
	o.EnableOverlappingCompaction = false
	// The TSDB's reload loop also moves full head chunks from the Go heap to
	// memory-mapped files. Prometheus's runs every minute; a burst of remote
	// write (a sender's backlog after an outage) fills chunks much faster
	// than scraping does, and keeps each full chunk on the heap until the
	// next pass. Every 10s bounds that (measured: 100k series after a 1h
	// burst held ~60 MiB of full chunks on the heap with the 1m default).
	o.BlockReloadInterval = 10 * time.Second
	// The series hash map's stripes are allocated whole at open (16384 by
	// default: 4 MiB, most of an idle tenant's memory); they are sized from
	// the series the tenant's head last held (tenants.go).
	o.StripeSize = stripeSize(dir)
	var shp *shipper
	if s.opts.Bucket != nil {
		var err error
		if shp, err = newShipper(id, dir, s.opts.Bucket, s.logger, s.m); err != nil {
			return nil, fmt.Errorf("open shipper of tenant %q: %w", id, err)
		}
		o.BlocksToDelete = s.shippedBlocksToDelete(shp)
	}
	o.OutOfOrderTimeWindow = s.opts.OutOfOrderWindow.Milliseconds()
	o.EnableExemplarStorage = s.opts.MaxExemplars > 0
	o.MaxExemplars = s.initialExemplars(dir)
	o.EnableSTAsZeroSample = s.opts.StartTimestampZeroIngestion
	if s.opts.StoreStartTimestamps {
		o.EnableSTStorage = true
		o.FloatChunkEncoding = chunkenc.EncXOR2
		o.EnableHistogramSTEncoding = true
	}
	if s.opts.WALCompression {
		o.WALCompression = "snappy"
	}
	local := &localReads{}
	if s.bucket != nil {
		local.deleted = func(b *tsdb.Block) (tsdb.BlockReader, error) {
			return s.withDeletions(context.Background(), id, &blockmeta.Meta{BlockMeta: b.Meta()}, b)
		}
	}
	local.install(o)
	var seriesCB SeriesCallback
	if s.opts.SeriesCallback != nil {
		seriesCB = s.opts.SeriesCallback(id)
		o.SeriesLifecycleCallback = seriesCB
	}
	// The TSDB registers its metrics when it opens; they are unregistered
	// when it closes, so that it can open again.
	treg := newTenantRegisterer(id, s.reg)
	db, err := tsdb.Open(dir, s.logger.With("tenant", id), treg, o, stats)
	if err != nil {
		treg.unregisterAll()
		return nil, fmt.Errorf("open TSDB of tenant %q in %s: %w", id, dir, err)
	}
	if seriesCB != nil {
		seriesCB.Arm()
	}
	meta, err := openMetadataStore(filepath.Join(dir, metadataFile))
	if err != nil {
		_ = db.Close()
		treg.unregisterAll()
		return nil, fmt.Errorf("open metadata of tenant %q: %w", id, err)
	}
	t := &tenantDB{id: id, db: db, reg: treg, meta: meta, shipper: shp, local: local}
	t.exemplarsSized.Store(s.opts.MaxExemplars <= 0 || o.MaxExemplars > 0)
	s.logger.Info("tenant opened", "tenant", id, "duration", time.Since(start), "stripe_size", o.StripeSize)
	return t, nil
}

// ErrClosed is returned by a Store that is closed.
var ErrClosed = errors.New("store is closed")

// Tenants returns the IDs of all tenants the store holds (on disk or open), sorted.
func (s *Store) Tenants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.tenants))
	for id := range s.tenants {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Appender returns an appender for tenant id, creating the tenant on first
// use. Commit returns once the appended samples are in the tenant's WAL.
// The tenant stays open until Commit or Rollback. It fails while the disk's
// free space is below Options.MinFreeBytes, and for a new tenant beyond
// Options.MaxTenants (with a *limits.Error).
func (s *Store) Appender(ctx context.Context, id string) (storage.AppenderV2, error) {
	if err := s.disk.check(); err != nil {
		return nil, err
	}
	t, err := s.acquire(id, true)
	if err != nil {
		return nil, err
	}
	if err := s.markWritten(t); err != nil {
		s.release(t)
		return nil, err
	}
	var app storage.AppenderV2 = t.db.AppenderV2(ctx)
	if !t.exemplarsSized.Load() {
		app = exemplarSizingAppender{AppenderV2: app, s: s, t: t}
	}
	if s.opts.Changes != nil {
		app = observed(app, id, s.opts.Changes)
	}
	return releasing(app, func() { s.release(t) }), nil
}

// AppenderV2 implements storage.AppendableV2 for the tenant carried by ctx.
// Without a tenant, or when the store is closed, every Append fails.
func (s *Store) AppenderV2(ctx context.Context) storage.AppenderV2 {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return errAppender{tenant.ErrNoTenant}
	}
	app, err := s.Appender(ctx, id)
	if err != nil {
		return errAppender{err}
	}
	return app
}

// MetricMetadata returns the metric metadata of tenant id's family metric
// (all families when empty); none for a tenant without data.
func (s *Store) MetricMetadata(id, metric string) ([]Family, error) {
	t, err := s.acquire(id, false)
	if err != nil || t == nil {
		return nil, err
	}
	defer s.release(t)
	return t.meta.List(metric), nil
}

// DB returns the TSDB of tenant id, opening it, or nil if the tenant has no
// data. For tests and tools: the TSDB may be closed once the tenant is idle.
func (s *Store) DB(id string) *tsdb.DB {
	t, _ := s.acquire(id, false)
	if t == nil {
		return nil
	}
	s.release(t)
	return t.db
}

// Close closes every tenant, persisting metadata, once those being opened
// or closed are. The store cannot be used afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var open []*tenantDB
	for {
		busy := s.anyBusy()
		if busy == nil {
			break
		}
		s.mu.Unlock()
		<-busy
		s.mu.Lock()
	}
	for _, e := range s.tenants {
		if e.t != nil {
			open = append(open, e.t)
			e.t = nil
		}
	}
	s.mu.Unlock()
	var errs []error
	if s.cache != nil {
		if err := s.cache.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close block cache: %w", err))
		}
	}
	for _, t := range open {
		if err := s.closeTenant(t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// registerCollectors registers store-wide gauges.
func (s *Store) registerCollectors() {
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_tenants",
		Help: "Tenants the store holds, on disk or open.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.tenants))
	}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_tenants_open",
		Help: "Tenants whose TSDB is open.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for _, e := range s.tenants {
			if e.t != nil {
				n++
			}
		}
		return float64(n)
	}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_tenants_unavailable",
		Help: "Tenants whose TSDB failed to open at the last attempt; they are retried.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for _, e := range s.tenants {
			if e.openErr != nil {
				n++
			}
		}
		return float64(n)
	}))
}

// Run ships new blocks, refreshes the bucket's block list and persists
// metadata, each on its interval, until ctx is done.
func (s *Store) Run(ctx context.Context) {
	var wg sync.WaitGroup
	every := func(d time.Duration, f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(d)
			defer tick.Stop()
			for {
				f(ctx)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	every(time.Minute, func(context.Context) { s.persistMetadata() })
	every(s.maintainInterval(), s.maintainTenants)
	every(5*time.Second, func(context.Context) { s.disk.maintainReserve(false) })
	if s.bucket != nil {
		every(s.opts.ShipInterval, func(ctx context.Context) {
			if err := s.Ship(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn("shipping blocks failed; will retry", "err", err, "pending_blocks", s.pendingBlocks())
			}
		})
		every(s.opts.SyncInterval, func(ctx context.Context) {
			if err := s.SyncBucket(ctx); err != nil && ctx.Err() == nil {
				s.m.syncFailures.Inc()
				s.logger.Warn("syncing bucket block list failed; will retry", "err", err)
			}
		})
	}
	wg.Wait()
}

func (s *Store) persistMetadata() {
	open, release := s.openTenants()
	defer release()
	for _, t := range open {
		if err := t.meta.Persist(); err != nil {
			s.logger.Error("persisting metadata failed", "tenant", t.id, "err", err)
		}
	}
}

// SetMetadata records the metadata of metric family of tenant id, creating
// the tenant on first use.
func (s *Store) SetMetadata(id, family string, md metadata.Metadata) error {
	t, err := s.acquire(id, true)
	if err != nil {
		return err
	}
	defer s.release(t)
	t.meta.Set(family, md)
	return nil
}

// HeadStats returns the cardinality statistics of tenant id's head, grouped
// by the label statsByLabelName and cut to the limit largest entries; false
// when the tenant has written nothing.
func (s *Store) HeadStats(id, statsByLabelName string, limit int) (*tsdb.Stats, bool) {
	t, _ := s.acquire(id, false)
	if t == nil {
		return nil, false
	}
	defer s.release(t)
	return t.db.Head().Stats(statsByLabelName, limit), true
}
