package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
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
	// the range blocks are cut at (default 2h, 12h, 24h).
	Levels []time.Duration
	// Retention is the default retention; TenantRetention overrides it.
	Retention       Retention
	TenantRetention map[string]Retention
	// DeletionDelay is how long a replaced block stays in the bucket after
	// it is marked: longer than any query may hold it and than queriers take
	// to read a new bucket index.
	DeletionDelay time.Duration
	// CompactionDelay is how long after a window ends before its blocks are
	// merged, so that every block of the window has been cut and shipped.
	CompactionDelay time.Duration
	// PartialUploadAge is the age after which a block without meta.json is
	// an abandoned upload and deleted.
	PartialUploadAge time.Duration
	// Owner names this compactor in tenant locks.
	Owner string

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Compactor compacts, downsamples and expires the blocks of every tenant.
type Compactor struct {
	o       Options
	logger  *slog.Logger
	metrics *metrics
}

type metrics struct {
	runs, failures *prometheus.CounterVec
	compacted      *prometheus.CounterVec
	downsampled    *prometheus.CounterVec
	marked         *prometheus.CounterVec
	deleted        *prometheus.CounterVec
	lastSuccess    *prometheus.GaugeVec
}

// New returns a compactor.
func New(o Options) (*Compactor, error) {
	if o.Bucket == nil || o.Dir == "" {
		return nil, errors.New("compactor needs a bucket and a directory")
	}
	if len(o.Levels) == 0 {
		o.Levels = []time.Duration{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}
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
		lastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_compactor_last_success_timestamp_seconds", Help: "When a tenant's compaction last succeeded."}, []string{"tenant"}),
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
func (c *Compactor) RunOnce(ctx context.Context) error {
	tenants, err := Tenants(ctx, c.o.Bucket)
	if err != nil {
		return err
	}
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
	c.metrics.runs.WithLabelValues(id).Inc()
	defer func() {
		if err != nil {
			c.metrics.failures.WithLabelValues(id).Inc()
			err = fmt.Errorf("compact tenant %q: %w", id, err)
		} else {
			c.metrics.lastSuccess.WithLabelValues(id).SetToCurrentTime()
		}
	}()
	ok, err := tryLock(ctx, c.o.Bucket, id, c.o.Owner, c.o.Now(), 2*time.Hour)
	if err != nil {
		return err
	}
	if !ok {
		c.logger.Info("tenant locked by another compactor, skipping", "tenant", id)
		return nil
	}
	defer func() {
		if uerr := unlock(context.WithoutCancel(ctx), c.o.Bucket, id, c.o.Owner); uerr != nil {
			c.logger.Warn("releasing compaction lock failed", "tenant", id, "err", uerr)
		}
	}()
	work := filepath.Join(c.o.Dir, id)
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	defer os.RemoveAll(work)

	t := &tenantRun{c: c, id: id, work: work}
	if err := t.load(ctx); err != nil {
		return err
	}
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"delete marked blocks", t.deleteMarked},
		{"repair", t.repair},
		{"retention", t.applyRetention},
		{"compact", t.compact},
		{"downsample", t.downsample},
	}
	for _, s := range steps {
		if err := s.f(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return t.writeIndex(ctx)
}

// tenantRun is one compaction run of one tenant.
type tenantRun struct {
	c    *Compactor
	id   string
	work string

	live    map[ulid.ULID]*blockmeta.Meta // complete and not marked
	marks   map[ulid.ULID]*DeletionMark
	partial map[ulid.ULID]bool // no meta.json
}

// load lists the tenant's blocks with their metadata and marks.
func (t *tenantRun) load(ctx context.Context) error {
	inv, err := LoadInventory(ctx, t.c.o.Bucket, t.id)
	if err != nil {
		return err
	}
	t.live, t.marks, t.partial = inv.Live, inv.Marks, inv.Partial
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
	if err := markForDeletion(ctx, t.c.o.Bucket, t.id, id, reason, t.c.o.Now()); err != nil {
		return err
	}
	t.c.metrics.marked.WithLabelValues(t.id, reason).Inc()
	t.marks[id] = &DeletionMark{ID: id, DeletionTime: t.c.o.Now().Unix(), Reason: reason, Version: 1}
	delete(t.live, id)
	return nil
}

// deleteMarked deletes blocks marked longer ago than the deletion delay, and
// abandoned partial uploads. meta.json goes first, so a block interrupted
// while being deleted is a partial upload for the next run.
func (t *tenantRun) deleteMarked(ctx context.Context) error {
	now := t.c.o.Now()
	for id, m := range t.marks {
		if now.Sub(time.Unix(m.DeletionTime, 0)) < t.c.o.DeletionDelay {
			continue
		}
		if err := t.deleteBlock(ctx, id); err != nil {
			return err
		}
		delete(t.marks, id)
	}
	for id := range t.partial {
		// A ULID holds its creation time: an upload begun long ago has
		// been abandoned.
		if now.Sub(ulid.Time(id.Time())) < t.c.o.PartialUploadAge {
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

func (t *tenantRun) deleteBlock(ctx context.Context, id ulid.ULID) error {
	bkt := t.c.o.Bucket
	prefix := path.Join(t.id, id.String())
	if err := bkt.Delete(ctx, path.Join(prefix, blockmeta.MetaFilename)); err != nil {
		return err
	}
	var names []string
	if err := bkt.Iter(ctx, prefix+"/", func(n string) error { names = append(names, n); return nil }, true); err != nil {
		return err
	}
	for _, n := range names {
		if err := bkt.Delete(ctx, n); err != nil {
			return err
		}
	}
	t.c.metrics.deleted.WithLabelValues(t.id).Inc()
	t.c.logger.Info("block deleted", "tenant", t.id, "block", id)
	return nil
}

// repair marks blocks whose data another live block of the same resolution
// already holds: the leftovers of a run that crashed between uploading a
// merged block and marking its sources.
func (t *tenantRun) repair(ctx context.Context) error {
	for id, m := range t.live {
		for oid, o := range t.live {
			if oid == id || o.Resolution() != m.Resolution() || !covers(o, m) {
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

// covers reports whether block a holds all of block b's data so that b
// can go: a's time range and sources include b's, and a is the larger of
// the two (more sources or a wider range), or, for two equal blocks, the
// one with the greater ULID, so exactly one of two equals survives.
func covers(a, b *blockmeta.Meta) bool {
	if a.MinTime > b.MinTime || a.MaxTime < b.MaxTime {
		return false
	}
	src := make(map[ulid.ULID]bool, len(a.Compaction.Sources))
	for _, s := range a.Compaction.Sources {
		src[s] = true
	}
	for _, s := range b.Compaction.Sources {
		if !src[s] {
			return false
		}
	}
	larger := len(a.Compaction.Sources) > len(b.Compaction.Sources) || a.MaxTime-a.MinTime > b.MaxTime-b.MinTime
	equal := len(a.Compaction.Sources) == len(b.Compaction.Sources) && a.MaxTime-a.MinTime == b.MaxTime-b.MinTime
	return larger || equal && a.ULID.Compare(b.ULID) > 0
}

func (t *tenantRun) retention() Retention {
	if r, ok := t.c.o.TenantRetention[t.id]; ok {
		return r
	}
	return t.c.o.Retention
}

// applyRetention marks blocks entirely older than their resolution's retention.
func (t *tenantRun) applyRetention(ctx context.Context) error {
	now := t.c.o.Now()
	r := t.retention()
	for id, m := range t.live {
		keep := r.For(m.Resolution())
		if keep > 0 && m.MaxTime < now.Add(-keep).UnixMilli() {
			if err := t.mark(ctx, id, "retention"); err != nil {
				return err
			}
		}
	}
	return nil
}

// compact merges, level by level, the blocks of each resolution that fall in
// one window of the level's range, once the window is complete. Blocks that
// overlap are merged vertically, their identical samples kept once.
func (t *tenantRun) compact(ctx context.Context) error {
	for _, level := range t.c.o.Levels[1:] {
		rng := level.Milliseconds()
		for {
			group := t.nextGroup(rng)
			if group == nil {
				break
			}
			if err := t.merge(ctx, group); err != nil {
				return err
			}
		}
	}
	// Overlapping blocks that no level window holds (say, an out-of-order
	// block across a window boundary) are merged as they are.
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

// nextGroup returns blocks of one resolution inside one complete window of
// range rng, when there are at least two, or one that overlaps another.
func (t *tenantRun) nextGroup(rng int64) []*blockmeta.Meta {
	cutoff := t.c.o.Now().Add(-t.c.o.CompactionDelay).UnixMilli()
	type key struct {
		res, start int64
	}
	groups := map[key][]*blockmeta.Meta{}
	for _, m := range t.live {
		start := m.MinTime - mod(m.MinTime, rng)
		if m.MaxTime > start+rng || m.MaxTime-m.MinTime >= rng {
			continue // spans a window boundary, or is already this big
		}
		if start+rng > cutoff {
			continue // the window is not complete yet
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
	return groups[keys[0]]
}

// overlapping returns a set of live blocks of one resolution that overlap
// each other, or nil.
func (t *tenantRun) overlapping() []*blockmeta.Meta {
	var all []*blockmeta.Meta
	for _, m := range t.live {
		all = append(all, m)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].MinTime < all[j].MinTime })
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

// merge downloads the group, writes the merged block, uploads it, and only
// then marks the sources for deletion.
func (t *tenantRun) merge(ctx context.Context, group []*blockmeta.Meta) error {
	res := group[0].Resolution()
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
		MergeFunc:                   storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge),
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
		if err := blockmeta.Upload(ctx, t.c.o.Bucket, t.id, dir, m); err != nil {
			return err
		}
		t.live[m.ULID] = m
		t.c.metrics.compacted.WithLabelValues(t.id).Inc()
		t.c.logger.Info("blocks merged", "tenant", t.id, "block", m.ULID, "sources", len(group), "resolution", res, "mint", m.MinTime, "maxt", m.MaxTime)
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

// download copies block id of the tenant into the work directory.
func (t *tenantRun) download(ctx context.Context, id ulid.ULID) (string, error) {
	dir := filepath.Join(t.work, "src", id.String())
	return dir, blockmeta.Download(ctx, t.c.o.Bucket, t.id, id, dir)
}

// downsample writes the 1m and 1h blocks of every raw block of the largest
// level that has none yet.
func (t *tenantRun) downsample(ctx context.Context) error {
	top := t.c.o.Levels[len(t.c.o.Levels)-1].Milliseconds()
	have := map[[3]int64]bool{}
	for _, m := range t.live {
		have[[3]int64{m.Resolution(), m.MinTime, m.MaxTime}] = true
	}
	var todo []*blockmeta.Meta
	for _, m := range t.live {
		if m.Resolution() == blockmeta.ResRaw && m.MaxTime-m.MinTime >= top {
			todo = append(todo, m)
		}
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].MinTime < todo[j].MinTime })
	for _, m := range todo {
		var dir string
		for _, res := range []int64{blockmeta.Res1m, blockmeta.Res1h} {
			if have[[3]int64{res, m.MinTime, m.MaxTime}] {
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
				return fmt.Errorf("downsample block %s to %dms: %w", m.ULID, res, err)
			}
			if dm == nil {
				continue
			}
			if err := blockmeta.Upload(ctx, t.c.o.Bucket, t.id, filepath.Join(t.work, "down", dm.ULID.String()), dm); err != nil {
				return err
			}
			t.live[dm.ULID] = dm
			have[[3]int64{res, m.MinTime, m.MaxTime}] = true
			t.c.metrics.downsampled.WithLabelValues(t.id, fmt.Sprint(time.Duration(res)*time.Millisecond)).Inc()
			t.c.logger.Info("block downsampled", "tenant", t.id, "source", m.ULID, "block", dm.ULID, "resolution", time.Duration(res)*time.Millisecond)
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
