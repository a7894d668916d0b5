package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/tenant"
)

// Retention is how long data of each resolution is kept; 0 keeps it forever.
type Retention struct {
	Raw   time.Duration `yaml:"raw"`
	Res1m time.Duration `yaml:"1m"`
	Res1h time.Duration `yaml:"1h"`
}

// For returns the retention of resolution res.
func (r Retention) For(res int64) time.Duration {
	switch res {
	case blockmeta.ResRaw:
		return r.Raw
	case blockmeta.Res1m:
		return r.Res1m
	default:
		return r.Res1h
	}
}

// DefaultRetention is the product's default policy.
var DefaultRetention = Retention{Raw: 7 * 24 * time.Hour, Res1m: 30 * 24 * time.Hour, Res1h: 365 * 24 * time.Hour}

// Options configure a Compactor.
type Options struct {
	Bucket objstore.Bucket
	// Dir is the compactor's working directory.
	Dir string
	// Levels are the block ranges merged into, ascending, starting with
	// the range blocks are cut at (LevelsFor; default 2h, 12h, 24h). Each
	// is a multiple of the one before; the last is the window raw data is
	// downsampled in.
	Levels []time.Duration
	// Retention returns a tenant's retention (DefaultRetention when nil).
	Retention func(tenant string) Retention
	// DeletionDelay is how long a replaced block stays in the bucket after
	// it is marked: longer than any query may hold it and than queriers take
	// to read a new bucket index.
	DeletionDelay time.Duration
	// CompactionDelay is how long after a window ends before its blocks are
	// merged, so that every block of the window has been cut and shipped.
	CompactionDelay time.Duration
	// RetentionGrace is how long after its newest data was cut from a head
	// (the newest ULID among its sources) a raw block past raw retention is
	// still kept; zero keeps none. Tenants' blocks may hold the same
	// samples (a WAL or out-of-order log replayed after a crash, a request
	// resent after its answer was lost): merged raw blocks keep them once,
	// but the aggregates of downsampled blocks of different raw blocks are
	// added. Data arriving again for a range whose raw blocks are gone
	// would be counted twice; within the grace it is merged with them.
	RetentionGrace time.Duration
	// PartialUploadAge is the age after which a block without meta.json is
	// an abandoned upload and deleted.
	PartialUploadAge time.Duration
	// Owner names this compactor in tenant locks.
	Owner string
	// LockTTL is how long a tenant's lock outlives its last renewal
	// (default 10m): a crashed compactor holds a tenant that long. A run
	// renews it every LockTTL/4 and stops changing the bucket once it
	// cannot.
	LockTTL time.Duration
	// Owned, when set, returns at the start of each pass which tenants
	// this compactor compacts among several (the compactors' ring); the
	// lease stays a second guard for when two compactors' views of the
	// ring differ. Nil compacts every tenant. An error fails the pass.
	Owned func() (func(tenant string) bool, error)
	// Uploaded, when set, is called with each block this compactor has
	// written to the bucket (merged or downsampled), its local directory
	// and its meta, before the directory is removed: a process that also
	// queries the bucket keeps the block instead of downloading it again
	// (blocks.Store.SeedBlock). It must not change the directory's files.
	Uploaded func(tenant, dir string, m *blockmeta.Meta)

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Compactor compacts, downsamples and expires the blocks of every tenant.
type Compactor struct {
	o       Options
	logger  *slog.Logger
	metrics *metrics
	status  status // the last runs, for Status
	// runMu serializes runs in this process: its runs share one lock
	// owner (and work directories), so the bucket lock cannot keep two of
	// them apart (clean_tombstones runs a tenant beside the loop).
	runMu sync.Mutex
}

type metrics struct {
	runs, failures *prometheus.CounterVec
	compacted      *prometheus.CounterVec
	downsampled    *prometheus.CounterVec
	marked         *prometheus.CounterVec
	deleted        *prometheus.CounterVec
	unmarked       *prometheus.CounterVec
	lastSuccess    *prometheus.GaugeVec
	awaiting       *prometheus.GaugeVec
	held           *prometheus.GaugeVec
	grace          *prometheus.GaugeVec
	owned          prometheus.Gauge
}

// New returns a compactor.
func New(o Options) (*Compactor, error) {
	if o.Bucket == nil || o.Dir == "" {
		return nil, errors.New("compactor needs a bucket and a directory")
	}
	if len(o.Levels) == 0 {
		o.Levels, _ = LevelsFor(2 * time.Hour)
	}
	for i := 1; i < len(o.Levels); i++ {
		if o.Levels[i]%o.Levels[i-1] != 0 {
			return nil, fmt.Errorf("compactor level %v is not a multiple of %v", o.Levels[i], o.Levels[i-1])
		}
	}
	if o.Retention == nil {
		o.Retention = func(string) Retention { return DefaultRetention }
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 10 * time.Minute
	}
	if o.DeletionDelay <= 0 {
		o.DeletionDelay = time.Hour
	}
	if o.CompactionDelay <= 0 {
		o.CompactionDelay = 4 * time.Hour
	}
	if o.PartialUploadAge <= 0 {
		o.PartialUploadAge = 6 * time.Hour
	}
	if o.Owner == "" {
		h, _ := os.Hostname()
		o.Owner = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f := promauto.With(o.Registerer)
	m := &metrics{
		runs:        f.NewCounterVec(prometheus.CounterOpts{Name: "strata_compactor_runs_total", Help: "Compaction runs, by tenant."}, []string{"tenant"}),
		failures:    f.NewCounterVec(prometheus.CounterOpts{Name: "strata_compactor_run_failures_total", Help: "Failed compaction runs, by tenant."}, []string{"tenant"}),
		compacted:   f.NewCounterVec(prometheus.CounterOpts{Name: "strata_compactor_blocks_written_total", Help: "Blocks written by merging, by tenant."}, []string{"tenant"}),
		downsampled: f.NewCounterVec(prometheus.CounterOpts{Name: "strata_compactor_downsampled_blocks_total", Help: "Downsampled blocks written, by tenant and resolution."}, []string{"tenant", "resolution"}),
		marked:      f.NewCounterVec(prometheus.CounterOpts{Name: "strata_compactor_blocks_marked_total", Help: "Blocks marked for deletion, by tenant and reason."}, []string{"tenant", "reason"}),
		deleted:     f.NewCounterVec(prometheus.CounterOpts{Name: "strata_compactor_blocks_deleted_total", Help: "Blocks deleted from the bucket, by tenant."}, []string{"tenant"}),
		unmarked:    f.NewCounterVec(prometheus.CounterOpts{Name: "strata_compactor_blocks_unmarked_total", Help: "Blocks marked for deletion by retention whose data no coarser resolution held yet, given back their place instead of being deleted, by tenant."}, []string{"tenant"}),
		lastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_compactor_last_success_timestamp_seconds", Help: "When a tenant's compaction last succeeded."}, []string{"tenant"}),
		awaiting:    f.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_compactor_blocks_awaiting_downsampling", Help: "Raw blocks whose data no 1m or 1h block holds yet after the tenant's last run, by tenant and whether their window is still open (state=open) or complete (state=ready; downsampled by the next run, or failing)."}, []string{"tenant", "state"}),
		grace:       f.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_compactor_blocks_retention_grace", Help: "Raw blocks past raw retention kept until -compactor.retention-grace has passed since their newest data was written, by tenant, after the tenant's last run."}, []string{"tenant"}),
		owned:       f.NewGauge(prometheus.GaugeOpts{Name: "strata_compactor_tenants_owned", Help: "Tenants this compactor compacted at its last pass: all of the bucket's, or those the compactors' ring gives it in a cluster."}),
		held:        f.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_compactor_blocks_retention_held", Help: "Blocks past their resolution's retention kept because a coarser resolution that is still kept does not hold their data yet, by tenant and resolution, after the tenant's last run."}, []string{"tenant", "resolution"}),
	}
	return &Compactor{o: o, logger: o.Logger.With("component", "compactor"), metrics: m}, nil
}

// Run compacts every tenant every interval until ctx is done.
func (c *Compactor) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := c.RunOnce(ctx); err != nil && ctx.Err() == nil {
			c.logger.Warn("compaction run failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// RunOnce compacts every tenant in the bucket once.
func (c *Compactor) RunOnce(ctx context.Context) (err error) {
	start := c.o.Now()
	defer func() { c.status.passDone(start, c.o.Now(), err) }()
	tenants, err := Tenants(ctx, c.o.Bucket)
	if err != nil {
		return err
	}
	if c.o.Owned != nil {
		owns, err := c.o.Owned()
		if err != nil {
			return fmt.Errorf("which tenants this compactor owns: %w", err)
		}
		tenants = slices.DeleteFunc(tenants, func(id string) bool {
			if owns(id) {
				return false
			}
			// Another compactor reports this tenant's state now.
			for _, g := range []*prometheus.GaugeVec{c.metrics.lastSuccess, c.metrics.awaiting, c.metrics.grace, c.metrics.held} {
				g.DeletePartialMatch(prometheus.Labels{"tenant": id})
			}
			return true
		})
	}
	c.metrics.owned.Set(float64(len(tenants)))
	var errs []error
	for _, id := range tenants {
		if err := c.CompactTenant(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CompactTenant runs every step once for one tenant, under its lock.
func (c *Compactor) CompactTenant(ctx context.Context, id string) (err error) {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	c.metrics.runs.WithLabelValues(id).Inc()
	start, skipped := c.o.Now(), false
	defer func() {
		c.status.tenantDone(id, start, c.o.Now(), skipped, err)
		if err != nil {
			c.metrics.failures.WithLabelValues(id).Inc()
			err = fmt.Errorf("compact tenant %q: %w", id, err)
		} else {
			c.metrics.lastSuccess.WithLabelValues(id).SetToCurrentTime()
		}
	}()
	l, err := acquireLease(ctx, c.o.Bucket, id, c.o.Owner, c.o.LockTTL, c.o.Now)
	if err != nil {
		return err
	}
	if l == nil {
		c.logger.Info("tenant locked by another compactor, skipping", "tenant", id)
		skipped = true
		return nil
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.keep(runCtx, cancel)
	}()
	defer func() {
		cancel(nil)
		wg.Wait()
		if l.expired() == nil {
			if uerr := l.release(context.WithoutCancel(ctx)); uerr != nil {
				c.logger.Warn("releasing compaction lock failed", "tenant", id, "err", uerr)
			}
		}
	}()
	work := filepath.Join(c.o.Dir, id)
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	defer os.RemoveAll(work)

	t := &tenantRun{c: c, id: id, work: work, lease: l, ret: c.o.Retention(id), now: c.o.Now(), nothingToDownsample: map[ulid.ULID]bool{}}
	if err := t.load(runCtx); err != nil {
		return err
	}
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"delete marked blocks", t.deleteMarked},
		{"repair", t.repair},
		{"apply deletions", t.applyDeletions},
		{"compact", t.compact},
		{"downsample", t.downsample},
		// Downsampled blocks of a raw block that a late block was merged
		// into are held by the new ones now.
		{"repair", t.repair},
		{"retention", t.applyRetention},
		{"record deletions", t.recordDeletions},
		{"write index", t.writeIndex},
	}
	for _, s := range steps {
		if err := s.f(runCtx); err != nil {
			if cause := context.Cause(runCtx); cause != nil && ctx.Err() == nil {
				err = fmt.Errorf("%w (%w)", err, cause)
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	t.report()
	return nil
}

// tenantRun is one compaction run of one tenant.
type tenantRun struct {
	c     *Compactor
	id    string
	work  string
	lease *lease
	ret   Retention
	// now is the time the run started: every decision of the run is made
	// as of this one time.
	now time.Time

	live       map[ulid.ULID]*blockmeta.Meta // complete and not marked
	marks      map[ulid.ULID]*DeletionMark
	markedMeta map[ulid.ULID]*blockmeta.Meta
	partial    map[ulid.ULID]bool // no meta.json
	// nothingToDownsample are raw blocks this run found without float
	// samples to downsample (stale markers only, say).
	nothingToDownsample map[ulid.ULID]bool
	// deletions are the tenant's deletion requests (deletion.go), and
	// deletionsChanged those this run changed.
	deletions        []*blockmeta.DeletionRequest
	deletionsChanged map[string]bool
}

// load lists the tenant's blocks with their metadata and marks.
func (t *tenantRun) load(ctx context.Context) error {
	inv, err := LoadInventory(ctx, t.c.o.Bucket, t.id)
	if err != nil {
		return err
	}
	t.live, t.marks, t.markedMeta, t.partial = inv.Live, inv.Marks, inv.MarkedMeta, inv.Partial
	return nil
}

// Inventory is what a tenant has in the bucket.
type Inventory struct {
	// Live blocks: complete and not marked for deletion.
	Live map[ulid.ULID]*blockmeta.Meta
	// Marked blocks' marks, and their metadata in MarkedMeta.
	Marks      map[ulid.ULID]*DeletionMark
	MarkedMeta map[ulid.ULID]*blockmeta.Meta
	// Partial uploads: block directories without meta.json.
	Partial map[ulid.ULID]bool
}

// LoadInventory lists a tenant's blocks with their metadata and marks.
func LoadInventory(ctx context.Context, bkt objstore.Bucket, id string) (*Inventory, error) {
	inv := &Inventory{
		Live: map[ulid.ULID]*blockmeta.Meta{}, Marks: map[ulid.ULID]*DeletionMark{},
		MarkedMeta: map[ulid.ULID]*blockmeta.Meta{}, Partial: map[ulid.ULID]bool{},
	}
	var ids []ulid.ULID
	err := bkt.Iter(ctx, id+"/", func(name string) error {
		if u, err := ulid.Parse(strings.TrimSuffix(path.Base(name), "/")); err == nil && strings.HasSuffix(name, "/") {
			ids = append(ids, u)
		}
		return nil
	}, false)
	if err != nil {
		return nil, err
	}
	for _, u := range ids {
		m, err := blockmeta.Read(ctx, bkt, id, u)
		if bkt.IsNotFound(err) {
			inv.Partial[u] = true
			continue
		}
		if err != nil {
			return nil, err
		}
		mark, err := readMark(ctx, bkt, id, u)
		if err != nil {
			return nil, err
		}
		if mark != nil {
			inv.Marks[u] = mark
			inv.MarkedMeta[u] = m
			continue
		}
		inv.Live[u] = m
	}
	return inv, nil
}

// Tenants lists the tenants in the bucket.
func Tenants(ctx context.Context, bkt objstore.Bucket) ([]string, error) {
	var tenants []string
	err := bkt.Iter(ctx, "", func(name string) error {
		id := strings.TrimSuffix(name, "/")
		if strings.HasSuffix(name, "/") && tenant.ValidateID(id) == nil {
			tenants = append(tenants, id)
		}
		return nil
	}, false)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return tenants, nil
}

func (t *tenantRun) mark(ctx context.Context, id ulid.ULID, reason string) error {
	if err := t.lease.check(ctx); err != nil {
		return err
	}
	if err := markForDeletion(ctx, t.c.o.Bucket, t.id, id, reason, t.c.o.Now()); err != nil {
		return err
	}
	t.c.metrics.marked.WithLabelValues(t.id, reason).Inc()
	t.marks[id] = &DeletionMark{ID: id, DeletionTime: t.c.o.Now().Unix(), Reason: reason, Version: 1}
	t.markedMeta[id] = t.live[id]
	delete(t.live, id)
	return nil
}

// deleteMarked deletes blocks marked longer ago than the deletion delay, and
// abandoned partial uploads. meta.json goes first, so a block interrupted
// while being deleted is a partial upload for the next run.
//
// A block marked by retention is deleted only if the rule that marked it
// still holds: a coarser resolution holds its data, or it is past every
// resolution's retention. One whose data nothing else holds (marked by an
// older release, or before a retention was lengthened) is unmarked and
// live again, to be downsampled before it goes.
func (t *tenantRun) deleteMarked(ctx context.Context) error {
	h := holdingsOf(t.live)
	ids := make([]ulid.ULID, 0, len(t.marks))
	for id := range t.marks {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	for _, id := range ids {
		m := t.marks[id]
		if meta := t.markedMeta[id]; m.Reason == reasonRetention && meta != nil {
			if missing := t.unheld(h, meta); len(missing) > 0 {
				if err := t.unmark(ctx, id, meta, missing); err != nil {
					return err
				}
				continue
			}
		}
		if t.now.Sub(time.Unix(m.DeletionTime, 0)) < t.c.o.DeletionDelay {
			continue
		}
		if err := t.deleteBlock(ctx, id); err != nil {
			return err
		}
		delete(t.marks, id)
		delete(t.markedMeta, id)
	}
	for id := range t.partial {
		// A ULID holds its creation time: an upload begun long ago has
		// been abandoned.
		if t.now.Sub(ulid.Time(id.Time())) < t.c.o.PartialUploadAge {
			continue
		}
		t.c.logger.Info("deleting abandoned partial upload", "tenant", t.id, "block", id)
		if err := t.deleteBlock(ctx, id); err != nil {
			return err
		}
		delete(t.partial, id)
	}
	return nil
}

// reasonRetention is the reason of deletion marks written by retention.
const reasonRetention = "retention"

// unmark removes the deletion mark of block id, which is live again.
func (t *tenantRun) unmark(ctx context.Context, id ulid.ULID, m *blockmeta.Meta, missing []int64) error {
	if err := t.lease.check(ctx); err != nil {
		return err
	}
	if err := t.c.o.Bucket.Delete(ctx, path.Join(t.id, id.String(), DeletionMarkFile)); err != nil && !t.c.o.Bucket.IsNotFound(err) {
		return fmt.Errorf("unmark block %s: %w", id, err)
	}
	t.c.logger.Warn("block marked by retention holds data no coarser resolution has; unmarked, to be downsampled first",
		"tenant", t.id, "block", id, "resolution", resName(m.Resolution()), "missing", resNames(missing), "mint", m.MinTime, "maxt", m.MaxTime)
	t.c.metrics.unmarked.WithLabelValues(t.id).Inc()
	delete(t.marks, id)
	delete(t.markedMeta, id)
	t.live[id] = m
	return nil
}

func (t *tenantRun) deleteBlock(ctx context.Context, id ulid.ULID) error {
	if err := t.lease.check(ctx); err != nil {
		return err
	}
	bkt := t.c.o.Bucket
	prefix := path.Join(t.id, id.String())
	if err := bkt.Delete(ctx, path.Join(prefix, blockmeta.MetaFilename)); err != nil && !bkt.IsNotFound(err) {
		return err
	}
	var names []string
	if err := bkt.Iter(ctx, prefix+"/", func(n string) error { names = append(names, n); return nil }, true); err != nil {
		return err
	}
	for _, n := range names {
		if err := bkt.Delete(ctx, n); err != nil && !bkt.IsNotFound(err) {
			return err
		}
	}
	t.c.metrics.deleted.WithLabelValues(t.id).Inc()
	t.c.logger.Info("block deleted", "tenant", t.id, "block", id)
	return nil
}

// repair marks blocks whose data another live block of the same resolution
// already holds: the leftovers of a run that crashed between uploading a
// merged block and marking its sources, and the downsampled blocks of a
// raw block that a late block was merged into.
func (t *tenantRun) repair(ctx context.Context) error {
	for _, id := range t.sortedLive() {
		m, ok := t.live[id]
		if !ok {
			continue
		}
		for oid, o := range t.live {
			if oid == id || o.Resolution() != m.Resolution() || !blockmeta.Covers(o, m) {
				continue
			}
			t.c.logger.Info("marking block already held by a larger one", "tenant", t.id, "block", id, "by", oid)
			if err := t.mark(ctx, id, "duplicate"); err != nil {
				return err
			}
			break
		}
	}
	return nil
}

// sortedLive returns the live blocks' IDs in time order.
func (t *tenantRun) sortedLive() []ulid.ULID {
	ids := make([]ulid.ULID, 0, len(t.live))
	for id := range t.live {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	return ids
}

// unheld returns the coarser resolutions that must hold block m's data
// before m may be deleted for retention and do not: those whose retention
// m is not past yet. A block without float samples has nothing a coarser
// resolution could hold.
func (t *tenantRun) unheld(h holdings, m *blockmeta.Meta) []int64 {
	if !hasFloats(m) || t.nothingToDownsample[m.ULID] {
		return nil
	}
	var missing []int64
	for _, c := range coarser(m.Resolution()) {
		if !t.ret.expired(c, m, t.now) && !h.holds(c, m) {
			missing = append(missing, c)
		}
	}
	return missing
}

// applyRetention marks blocks entirely older than their resolution's
// retention, once the coarser resolutions still kept hold their data.
// Blocks held back show in strata_compactor_blocks_retention_held and the log.
func (t *tenantRun) applyRetention(ctx context.Context) error {
	h := holdingsOf(t.live)
	held := map[int64]int{}
	inGrace := 0
	for _, id := range t.sortedLive() {
		m := t.live[id]
		if !t.ret.expired(m.Resolution(), m, t.now) {
			continue
		}
		if t.c.o.RetentionGrace > 0 && m.Resolution() == blockmeta.ResRaw && t.now.Sub(newestSource(m)) < t.c.o.RetentionGrace {
			inGrace++
			t.c.logger.Debug("raw block past retention kept for the retention grace", "tenant", t.id, "block", id, "newest_data_written", newestSource(m), "mint", m.MinTime, "maxt", m.MaxTime)
			continue
		}
		if missing := t.unheld(h, m); len(missing) > 0 {
			held[m.Resolution()]++
			t.c.logger.Warn("block past retention kept: a coarser resolution does not hold its data yet",
				"tenant", t.id, "block", id, "resolution", resName(m.Resolution()), "missing", resNames(missing), "mint", m.MinTime, "maxt", m.MaxTime)
			continue
		}
		if err := t.mark(ctx, id, reasonRetention); err != nil {
			return err
		}
	}
	for _, res := range []int64{blockmeta.ResRaw, blockmeta.Res1m, blockmeta.Res1h} {
		t.c.metrics.held.WithLabelValues(t.id, resName(res)).Set(float64(held[res]))
	}
	t.c.metrics.grace.WithLabelValues(t.id).Set(float64(inGrace))
	return nil
}

// newestSource is when the newest of m's source blocks was cut: when data
// for m's range was last written.
func newestSource(m *blockmeta.Meta) time.Time {
	newest := ulid.Time(m.ULID.Time())
	if len(m.Compaction.Sources) > 0 {
		newest = time.Time{}
	}
	for _, s := range m.Compaction.Sources {
		if t := ulid.Time(s.Time()); t.After(newest) {
			newest = t
		}
	}
	return newest
}

// report sets the gauges of what the run left waiting.
func (t *tenantRun) report() {
	top := t.c.o.Levels[len(t.c.o.Levels)-1].Milliseconds()
	cutoff := t.now.Add(-t.c.o.CompactionDelay).UnixMilli()
	h := holdingsOf(t.live)
	var open, ready int
	for _, m := range t.live {
		if m.Resolution() != blockmeta.ResRaw || len(t.unheld(h, m)) == 0 {
			continue
		}
		if settled(m, top, cutoff) {
			ready++
		} else {
			open++
		}
	}
	t.c.metrics.awaiting.WithLabelValues(t.id, "open").Set(float64(open))
	t.c.metrics.awaiting.WithLabelValues(t.id, "ready").Set(float64(ready))
}

func resName(res int64) string {
	if res == blockmeta.ResRaw {
		return "raw"
	}
	return (time.Duration(res) * time.Millisecond).String()
}

func resNames(rs []int64) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = resName(r)
	}
	return strings.Join(names, ",")
}

// compact merges, level by level, the blocks of each resolution that fit in
// one window of the level's range, once the window is complete. Blocks that
// overlap are merged vertically, their identical samples kept once.
func (t *tenantRun) compact(ctx context.Context) error {
	cutoff := t.now.Add(-t.c.o.CompactionDelay).UnixMilli()
	for _, level := range t.c.o.Levels[1:] {
		rng := level.Milliseconds()
		for {
			group := t.nextGroup(rng, cutoff)
			if group == nil {
				break
			}
			if err := t.merge(ctx, group); err != nil {
				return err
			}
		}
	}
	// Overlapping blocks in a window not complete yet (an out-of-order
	// block beside an in-order one) are merged as they are. Blocks cut
	// from heads fit the block duration's windows, so overlapping blocks
	// share a window of some level and the merge fits it too.
	for {
		group := t.overlapping()
		if group == nil {
			return nil
		}
		if err := t.merge(ctx, group); err != nil {
			return err
		}
	}
}

// nextGroup returns the blocks of one resolution that fit one complete
// window of range rng (ending at or before cutoff), when there are at
// least two.
func (t *tenantRun) nextGroup(rng, cutoff int64) []*blockmeta.Meta {
	type key struct {
		res, start int64
	}
	groups := map[key][]*blockmeta.Meta{}
	for _, m := range t.live {
		start, fits := levelWindow(m, rng)
		if !fits || start+rng > cutoff {
			continue
		}
		k := key{m.Resolution(), start}
		groups[k] = append(groups[k], m)
	}
	var keys []key
	for k, g := range groups {
		if len(g) > 1 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].start != keys[j].start {
			return keys[i].start < keys[j].start
		}
		return keys[i].res < keys[j].res
	})
	g := groups[keys[0]]
	sort.Slice(g, func(i, j int) bool { return g[i].ULID.Compare(g[j].ULID) < 0 })
	return g
}

// overlapping returns a set of live blocks of one resolution that overlap
// each other, or nil.
func (t *tenantRun) overlapping() []*blockmeta.Meta {
	var all []*blockmeta.Meta
	for _, m := range t.live {
		all = append(all, m)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].MinTime != all[j].MinTime {
			return all[i].MinTime < all[j].MinTime
		}
		return all[i].ULID.Compare(all[j].ULID) < 0
	})
	for i, a := range all {
		group := []*blockmeta.Meta{a}
		maxT := a.MaxTime
		for _, b := range all[i+1:] {
			if b.MinTime >= maxT {
				break
			}
			if b.Resolution() == a.Resolution() {
				group = append(group, b)
				maxT = max(maxT, b.MaxTime)
			}
		}
		if len(group) > 1 {
			return group
		}
	}
	return nil
}

// mergeFunc returns how the series of a group's blocks are merged. Raw
// blocks hold identical samples where they overlap: one is kept.
// Downsampled blocks of disjoint raw blocks hold partial aggregates of the
// same windows: they are combined. Downsampled blocks whose sources partly
// overlap (which no run writes) are merged as raw ones, with a warning.
func (t *tenantRun) mergeFunc(group []*blockmeta.Meta) storage.VerticalChunkSeriesMergeFunc {
	chained := storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)
	if group[0].Resolution() == blockmeta.ResRaw {
		return chained
	}
	seen := map[ulid.ULID]bool{}
	for _, m := range group {
		for _, s := range m.Compaction.Sources {
			if seen[s] {
				t.c.logger.Warn("downsampled blocks with partly shared sources merged keeping one aggregate per window", "tenant", t.id, "source", s)
				return chained
			}
			seen[s] = true
		}
	}
	// The compacting merger hands the sample merge series without labels:
	// the aggregate is taken from the chunk series' labels.
	return func(series ...storage.ChunkSeries) storage.ChunkSeries {
		aggr := series[0].Labels().Get(blockmeta.AggrLabel)
		return storage.NewCompactingChunkSeriesMerger(func(ss ...storage.Series) storage.Series {
			return blockmeta.MergeDisjointAggregatesOf(aggr, ss...)
		})(series...)
	}
}

// heldInGroup splits a group of downsampled blocks into those no other
// member holds, and those whose sources another member's include (an older
// downsampling of part of the same raw data; of two alike, the one with the
// smaller ULID).
func heldInGroup(group []*blockmeta.Meta) (keep, held []*blockmeta.Meta) {
	for _, m := range group {
		ms := holdings{}
		ms.add(m)
		isHeld := false
		for _, o := range group {
			if o == m {
				continue
			}
			os := holdings{}
			os.add(o)
			if os.holds(o.Resolution(), m) && (!ms.holds(m.Resolution(), o) || o.ULID.Compare(m.ULID) > 0) {
				isHeld = true
				break
			}
		}
		if isHeld {
			held = append(held, m)
		} else {
			keep = append(keep, m)
		}
	}
	return keep, held
}

// merge downloads the group, writes the merged block, uploads it, and only
// then marks the sources for deletion.
func (t *tenantRun) merge(ctx context.Context, group []*blockmeta.Meta) error {
	res := group[0].Resolution()
	if res > 0 {
		var held []*blockmeta.Meta
		group, held = heldInGroup(group)
		for _, m := range held {
			t.c.logger.Info("marking downsampled block another one holds", "tenant", t.id, "block", m.ULID)
			if err := t.mark(ctx, m.ULID, "duplicate"); err != nil {
				return err
			}
		}
		if len(group) < 2 {
			return nil
		}
	}
	var dirs []string
	for _, m := range group {
		dir, err := t.download(ctx, m.ULID)
		if err != nil {
			return err
		}
		dirs = append(dirs, dir)
	}
	out := filepath.Join(t.work, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, t.c.logger, []int64{t.c.o.Levels[0].Milliseconds()}, nil, tsdb.LeveledCompactorOptions{
		MergeFunc:                   t.mergeFunc(group),
		EnableOverlappingCompaction: true,
	})
	if err != nil {
		return err
	}
	ids, err := comp.Compact(out, dirs, nil)
	if err != nil {
		return fmt.Errorf("merge %d blocks: %w", len(group), err)
	}
	for _, id := range ids {
		dir := filepath.Join(out, id.String())
		m, err := blockmeta.ReadDir(dir)
		if err != nil {
			return err
		}
		source := blockmeta.SourceCompactor
		if res > 0 {
			source = blockmeta.SourceDownsample
		}
		m.Strata = &blockmeta.Ext{Resolution: res, Source: source}
		if err := t.upload(ctx, dir, m); err != nil {
			return err
		}
		t.derived(group, m.ULID)
		t.c.metrics.compacted.WithLabelValues(t.id).Inc()
		t.c.logger.Info("blocks merged", "tenant", t.id, "block", m.ULID, "sources", len(group), "resolution", resName(res), "mint", m.MinTime, "maxt", m.MaxTime)
	}
	for _, m := range group {
		if err := t.mark(ctx, m.ULID, "compacted"); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
	_ = os.RemoveAll(out)
	return nil
}

// upload uploads the block in dir, as long as the run holds its lease.
func (t *tenantRun) upload(ctx context.Context, dir string, m *blockmeta.Meta) error {
	if err := t.lease.check(ctx); err != nil {
		return err
	}
	if err := blockmeta.Upload(ctx, t.c.o.Bucket, t.id, dir, m); err != nil {
		return err
	}
	t.live[m.ULID] = m
	if t.c.o.Uploaded != nil {
		t.c.o.Uploaded(t.id, dir, m)
	}
	return nil
}

// download copies block id of the tenant into the work directory.
func (t *tenantRun) download(ctx context.Context, id ulid.ULID) (string, error) {
	dir := filepath.Join(t.work, "src", id.String())
	return dir, blockmeta.Download(ctx, t.c.o.Bucket, t.id, id, dir)
}

// downsample writes the 1m and 1h blocks of every raw block whose top-level
// window is complete (compact has merged the window's blocks by then),
// whatever the span of its samples, unless blocks of that resolution hold
// its data already. Windows are downsampled oldest first.
func (t *tenantRun) downsample(ctx context.Context) error {
	top := t.c.o.Levels[len(t.c.o.Levels)-1].Milliseconds()
	cutoff := t.now.Add(-t.c.o.CompactionDelay).UnixMilli()
	h := holdingsOf(t.live)
	var todo []*blockmeta.Meta
	for _, m := range t.live {
		if m.Resolution() == blockmeta.ResRaw && settled(m, top, cutoff) && hasFloats(m) {
			todo = append(todo, m)
		}
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].MinTime < todo[j].MinTime })
	for _, m := range todo {
		var dir string
		for _, res := range coarser(blockmeta.ResRaw) {
			if h.holds(res, m) {
				continue
			}
			if dir == "" {
				var err error
				if dir, err = t.download(ctx, m.ULID); err != nil {
					return err
				}
			}
			dm, err := Downsample(ctx, t.c.logger, m, dir, filepath.Join(t.work, "down"), res)
			if err != nil {
				return fmt.Errorf("downsample block %s to %s: %w", m.ULID, resName(res), err)
			}
			if dm == nil {
				t.nothingToDownsample[m.ULID] = true
				continue
			}
			if err := t.upload(ctx, filepath.Join(t.work, "down", dm.ULID.String()), dm); err != nil {
				return err
			}
			h.add(dm)
			t.derived([]*blockmeta.Meta{m}, dm.ULID)
			t.c.metrics.downsampled.WithLabelValues(t.id, fmt.Sprint(time.Duration(res)*time.Millisecond)).Inc()
			t.c.logger.Info("block downsampled", "tenant", t.id, "source", m.ULID, "block", dm.ULID, "resolution", resName(res), "mint", dm.MinTime, "maxt", dm.MaxTime)
			_ = os.RemoveAll(filepath.Join(t.work, "down", dm.ULID.String()))
		}
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	return nil
}

// writeIndex writes the tenant's bucket index from this run's view.
func (t *tenantRun) writeIndex(ctx context.Context) error {
	if err := t.lease.check(ctx); err != nil {
		return err
	}
	ix := &blockmeta.Index{UpdatedAt: t.c.o.Now().Unix()}
	for _, m := range t.live {
		ix.Blocks = append(ix.Blocks, m)
	}
	sort.Slice(ix.Blocks, func(i, j int) bool { return ix.Blocks[i].MinTime < ix.Blocks[j].MinTime })
	for id := range t.marks {
		ix.Marked = append(ix.Marked, id)
	}
	sort.Slice(ix.Marked, func(i, j int) bool { return ix.Marked[i].Compare(ix.Marked[j]) < 0 })
	return blockmeta.WriteIndex(ctx, t.c.o.Bucket, t.id, ix)
}
