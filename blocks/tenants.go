package blocks

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/tenant"
)

// A tenant's lifecycle. The store knows every tenant on disk (a
// tenantEntry); its TSDB is open only while used:
//
//   - acquire opens it on first use (a write creates it; a read opens it only
//     if it is on disk) and counts a reference; release drops it.
//   - maintainTenants, run periodically, opens in the background the
//     tenants that were open when the store last stopped (their heads may
//     hold samples that are in no block yet), one a pass, each closed again
//     (flushed) after backgroundIdle unless used; retries tenants that
//     failed to open; and closes tenants unused for Options.IdleTimeout:
//     their head is cut into blocks and shipped first, and closedMarker
//     written, so that a restart leaves them closed.
//   - A tenant that fails to open is reported (log, strata_tenant_open_failures_total,
//     strata_tenants_unavailable) and answers ErrTenantUnavailable until its
//     next attempt, after a backoff; other tenants are unaffected. A new
//     tenant that fails to open has its directory removed: nothing of a
//     refused tenant stays on disk.
//
// Opening and closing happen outside the store's lock; a tenant being opened
// or closed is marked busy, and its users wait for that to end.

// closedMarker, in a tenant's directory, records that the tenant was closed
// after its head was cut into blocks and shipped: a restart need not open it.
const closedMarker = "closed"

// creatingMarker, in a tenant's directory, marks a tenant being created:
// its first opening has not succeeded, so it never acknowledged a write. A
// directory with it is removed, not opened: at Open, after a failed
// creation, and by maintainTenants when that removal failed (it needs open
// files, which may be what ran out).
const creatingMarker = "creating"

// seriesHintFile, in a tenant's directory, holds the series its head held
// when it last closed; the tenant's next opening sizes its head from it.
const seriesHintFile = "series-hint"

// ErrTenantUnavailable is returned for a tenant whose TSDB could not be
// opened; it is retried.
var ErrTenantUnavailable = errors.New("tenant unavailable")

// tenantEntry is the store's record of a tenant. Guarded by Store.mu.
type tenantEntry struct {
	t       *tenantDB     // nil while closed
	busy    chan struct{} // non-nil while being opened or closed; closed when done
	refs    int           // holders of t
	lastUse time.Time     // when t was last acquired or released
	onDisk  bool          // its directory exists; false only while a new tenant is first opened
	reopen  bool          // open in the background: it was open when the store last stopped
	openErr error         // why the last opening failed; nil after a success
	replay  *tsdb.DBStats // the WAL replay of the last opening; nil before one
	retryAt time.Time     // no opening before this after a failure, nor a background one
	backoff time.Duration
}

// backgroundIdle is how long a tenant opened in the background, only to cut
// its head into blocks, may go unused before it is closed again.
const backgroundIdle = time.Minute

// Backoff of a tenant's openings after failures.
const (
	minOpenBackoff = time.Second
	maxOpenBackoff = 5 * time.Minute
)

// acquire returns tenant id's open TSDB, opening it if needed, with a
// reference the caller gives back with release. With create unset, a
// tenant that is not on disk is not created: acquire returns nil, nil.
func (s *Store) acquire(id string, create bool) (*tenantDB, error) {
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		e := s.tenants[id]
		if e == nil {
			if !create {
				s.mu.Unlock()
				return nil, nil
			}
			if err := tenant.ValidateID(id); err != nil {
				s.mu.Unlock()
				return nil, err
			}
			if err := s.admit(id); err != nil {
				s.mu.Unlock()
				return nil, err
			}
			e = &tenantEntry{}
			s.tenants[id] = e
		}
		if e.t != nil {
			e.refs++
			e.lastUse = s.opts.Now()
			s.mu.Unlock()
			return e.t, nil
		}
		if e.busy != nil {
			busy := e.busy
			s.mu.Unlock()
			<-busy
			s.mu.Lock()
			continue
		}
		if e.openErr != nil && s.opts.Now().Before(e.retryAt) {
			err := e.openErr
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: tenant %q (retried after %s): %w", ErrTenantUnavailable, id, e.retryAt.Format(time.RFC3339), err)
		}
		busy := make(chan struct{})
		e.busy = busy
		created := !e.onDisk
		stats := tsdb.NewDBStats()
		e.replay = stats
		s.mu.Unlock()
		var t *tenantDB
		release, err := s.files.reserve(tenantFiles(filepath.Join(s.tenantsDir(), id)))
		if err == nil {
			if created {
				err = s.startCreating(id)
			}
			if err == nil {
				t, err = s.openTenant(id, stats)
			}
			if err == nil && created {
				// From here on the tenant may acknowledge writes: it is a tenant.
				if err = os.Remove(filepath.Join(s.tenantsDir(), id, creatingMarker)); err != nil {
					_ = s.closeTenant(t)
				}
			}
			release()
		}
		s.mu.Lock()
		e.busy = nil
		close(busy)
		if err == nil && s.closed {
			// The store closed while the tenant opened; Close waited for it.
			s.mu.Unlock()
			_ = s.closeTenant(t)
			return nil, ErrClosed
		}
		if errors.Is(err, ErrTooFewFiles) {
			// Nothing of the tenant was opened or created: not a failure of
			// its own, so no backoff; its next use tries again.
			if created {
				delete(s.tenants, id)
			}
			s.mu.Unlock()
			s.m.tenantOpenRefused.Inc()
			s.logger.Warn("opening a tenant refused: too few free file descriptors", "tenant", id, "err", err)
			return nil, fmt.Errorf("%w: tenant %q: %w", ErrTenantUnavailable, id, err)
		}
		if err != nil {
			s.m.tenantOpenFailures.Inc()
			if created {
				// A new tenant: nothing of it may stay behind.
				delete(s.tenants, id)
				s.removeCreating(id)
				s.mu.Unlock()
				s.logger.Error("creating tenant failed", "tenant", id, "err", err)
				return nil, fmt.Errorf("%w: %w", ErrTenantUnavailable, err)
			}
			e.backoff = min(max(2*e.backoff, minOpenBackoff), maxOpenBackoff)
			e.openErr, e.retryAt = err, s.opts.Now().Add(e.backoff)
			s.mu.Unlock()
			s.logger.Error("opening tenant failed; other tenants are served, this one is retried", "tenant", id, "retry_in", e.backoff, "err", err)
			return nil, fmt.Errorf("%w: %w", ErrTenantUnavailable, err)
		}
		e.t, e.onDisk, e.reopen, e.openErr, e.backoff = t, true, false, nil, 0
		e.refs++
		e.lastUse = s.opts.Now()
		s.mu.Unlock()
		return t, nil
	}
}

// release gives back a reference acquire returned: the tenant was used.
func (s *Store) release(t *tenantDB) { s.unref(t, true) }

// unref gives back a reference; used, it restarts the tenant's idle time.
// The store's own background work (shipping, persisting metadata) does not
// count as use, or a tenant would never be idle.
func (s *Store) unref(t *tenantDB, used bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.tenants[t.id]; e != nil && e.t == t {
		e.refs--
		if used {
			e.lastUse = s.opts.Now()
		}
	}
}

// admit reports whether a new tenant may be created. s.mu is held.
func (s *Store) admit(id string) error {
	if s.opts.MaxTenants <= 0 || len(s.tenants) < s.opts.MaxTenants {
		return nil
	}
	if s.opts.AlwaysAdmit != nil && s.opts.AlwaysAdmit(id) {
		return nil
	}
	s.m.tenantsRefused.Inc()
	return &limits.Error{Limit: "max_tenants", Msg: fmt.Sprintf("this Strata holds %d tenants, the most it may hold, and tenant %q is not one of them", s.opts.MaxTenants, id)}
}

// anyBusy returns the busy channel of a tenant being opened or closed, or
// nil. s.mu is held.
func (s *Store) anyBusy() chan struct{} {
	for _, e := range s.tenants {
		if e.busy != nil {
			return e.busy
		}
	}
	return nil
}

// openTenants returns the open tenants, sorted by ID, each with a
// reference that the returned function gives back.
func (s *Store) openTenants() ([]*tenantDB, func()) {
	s.mu.Lock()
	var list []*tenantDB
	for _, e := range s.tenants {
		if e.t != nil {
			e.refs++
			list = append(list, e.t)
		}
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
	return list, func() {
		for _, t := range list {
			s.unref(t, false)
		}
	}
}

// openPending opens the tenants that were open when the store last
// stopped and are not open yet: their heads may hold samples in no block.
func (s *Store) openPending() {
	s.mu.Lock()
	var ids []string
	for id, e := range s.tenants {
		if e.t == nil && e.reopen {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	sort.Strings(ids)
	for _, id := range ids {
		if t, err := s.acquire(id, false); err == nil && t != nil {
			s.unref(t, false)
		}
	}
}

// closeTenant persists t's metadata and closes its TSDB, recording the
// series its head held for the next opening.
func (s *Store) closeTenant(t *tenantDB) error {
	var errs []error
	dir := filepath.Join(s.tenantsDir(), t.id)
	if err := writeFileAtomic(filepath.Join(dir, seriesHintFile), []byte(strconv.FormatUint(t.db.Head().NumSeries(), 10))); err != nil {
		s.logger.Warn("recording the series of a tenant's head failed", "tenant", t.id, "err", err)
	}
	if err := t.meta.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close metadata of tenant %q: %w", t.id, err))
	}
	if err := t.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close TSDB of tenant %q: %w", t.id, err))
	}
	t.reg.unregisterAll()
	return errors.Join(errs...)
}

// stripeSize is the stripe count of the series hash map a tenant's head in
// dir opens with: about 64 series a stripe for the series it last held,
// between 256 (64 KiB, for a new or small tenant) and TSDB's default of
// 16384 (4 MiB).
func stripeSize(dir string) int {
	const lo, hi = 256, 16384
	b, err := os.ReadFile(filepath.Join(dir, seriesHintFile))
	if err != nil {
		return lo
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n/64 <= lo {
		return lo
	}
	if n/64 >= hi {
		return hi
	}
	return 1 << bits.Len64(n/64-1) // the power of two at or above n/64
}

// maintainInterval is how often maintainTenants runs: often enough to
// retry failed tenants after their backoff and to close idle ones soon
// after their timeout; a pass costs a scan of the tenants.
func (s *Store) maintainInterval() time.Duration {
	if s.opts.IdleTimeout > 0 {
		return min(max(s.opts.IdleTimeout/4, 100*time.Millisecond), time.Second)
	}
	return time.Second
}

// maintainTenants opens, one at a time, the tenants to open in the
// background (those open when the store last stopped, and those whose
// opening failed and whose backoff passed), then closes idle tenants.
func (s *Store) maintainTenants(ctx context.Context) {
	s.removeLeftovers()
	now := s.opts.Now()
	s.mu.Lock()
	var retry, pending []string
	for id, e := range s.tenants {
		switch {
		case e.t != nil || e.busy != nil || now.Before(e.retryAt):
		case e.openErr != nil:
			retry = append(retry, id)
		case e.reopen:
			pending = append(pending, id)
		}
	}
	s.mu.Unlock()
	sort.Strings(retry)
	for _, id := range retry {
		if ctx.Err() != nil {
			return
		}
		if t, err := s.acquire(id, false); err == nil && t != nil {
			s.unref(t, false)
		}
	}
	if len(pending) > 0 {
		// One a pass: a backlog of such tenants (after an upgrade, all of
		// them) is never open together.
		id := slices.Min(pending)
		if t, err := s.acquire(id, false); err == nil && t != nil {
			opened := s.opts.Now()
			s.mu.Lock()
			if e := s.tenants[id]; e != nil && e.t == t && !e.lastUse.After(opened) && s.opts.IdleTimeout > 0 {
				// Opened only to cut its head into blocks: idle after
				// backgroundIdle unless someone uses it meanwhile (right
				// after a restart its senders may be writing: a flush under
				// them would refuse their late samples without an
				// out-of-order window).
				e.lastUse = opened.Add(min(s.opts.IdleTimeout, backgroundIdle) - s.opts.IdleTimeout)
			}
			s.mu.Unlock()
			s.unref(t, false)
		}
	}
	if s.opts.IdleTimeout > 0 {
		s.closeIdle(ctx)
	}
}

// closeIdle closes the tenants unused for Options.IdleTimeout: each one's
// head is cut into blocks and shipped, then, if nobody used the tenant
// meanwhile, its TSDB is closed and closedMarker written. A tenant whose
// flush or shipping failed stays open and is tried again.
func (s *Store) closeIdle(ctx context.Context) {
	now := s.opts.Now()
	s.mu.Lock()
	var idle []*tenantDB
	for _, e := range s.tenants {
		if e.t != nil && e.refs == 0 && now.Sub(e.lastUse) >= s.opts.IdleTimeout {
			e.refs++
			idle = append(idle, e.t)
		}
	}
	s.mu.Unlock()
	for _, t := range idle {
		if ctx.Err() != nil {
			s.release(t)
			continue
		}
		err := s.flushHead(t)
		if err == nil && t.shipper != nil {
			err = s.shipTenant(ctx, t)
			if err == nil && t.shipper.Pending() > 0 {
				err = fmt.Errorf("%d blocks not shipped", t.shipper.Pending())
			}
		}
		flushed := err == nil
		if err != nil && ctx.Err() != nil {
			s.release(t)
			continue
		}
		if err != nil {
			// It is closed all the same (its samples are in its WAL), to
			// free what it holds: files may be what is short. It opens
			// again after the idle timeout to try once more.
			s.logger.Warn("cutting an idle tenant's head into blocks or shipping them failed; closing it without, and trying again later", "tenant", t.id, "err", err)
		}
		s.mu.Lock()
		e := s.tenants[t.id]
		e.refs--
		if e.refs > 0 || s.opts.Now().Sub(e.lastUse) < s.opts.IdleTimeout || s.closed {
			// Used meanwhile: it stays open.
			s.mu.Unlock()
			continue
		}
		busy := make(chan struct{})
		e.t, e.busy = nil, busy
		s.mu.Unlock()
		err = s.closeTenant(t)
		if err == nil && flushed {
			err = writeFileAtomic(filepath.Join(s.tenantsDir(), t.id, closedMarker), nil)
		}
		s.mu.Lock()
		e.busy = nil
		close(busy)
		if err != nil || !flushed {
			// Its head may hold samples in no block (or in no shipped
			// one): open it again later to flush it, and at a restart.
			e.reopen, e.retryAt = true, s.opts.Now().Add(s.opts.IdleTimeout)
		}
		s.mu.Unlock()
		if err != nil {
			s.logger.Error("closing an idle tenant failed", "tenant", t.id, "err", err)
		} else {
			s.logger.Info("idle tenant closed", "tenant", t.id, "flushed", flushed)
		}
	}
}

// tenantRegisterer registers a tenant TSDB's metrics, labelled with the
// tenant, with the store's registerer, and unregisters them when the TSDB
// closes, so that the tenant can open again.
type tenantRegisterer struct {
	prometheus.Registerer
	mu sync.Mutex
	cs []prometheus.Collector
}

func newTenantRegisterer(id string, reg prometheus.Registerer) *tenantRegisterer {
	return &tenantRegisterer{Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"tenant": id}, reg)}
}

func (r *tenantRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.cs = append(r.cs, c)
	r.mu.Unlock()
	return nil
}

func (r *tenantRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *tenantRegisterer) unregisterAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.cs {
		r.Registerer.Unregister(c)
	}
	r.cs = nil
}

// releasing returns app giving the tenant's reference back once committed
// or rolled back; it stores exemplars if app does.
func releasing(app storage.AppenderV2, release func()) storage.AppenderV2 {
	ra := &releasingAppender{AppenderV2: app, release: release}
	if ea, ok := app.(storage.ExemplarAppenderV2); ok {
		return releasingExemplarAppender{ra, ea}
	}
	return ra
}

type releasingAppender struct {
	storage.AppenderV2
	once    sync.Once
	release func()
}

func (a *releasingAppender) Commit() error {
	defer a.once.Do(a.release)
	return a.AppenderV2.Commit()
}

func (a *releasingAppender) Rollback() error {
	defer a.once.Do(a.release)
	return a.AppenderV2.Rollback()
}

type releasingExemplarAppender struct {
	*releasingAppender
	ea storage.ExemplarAppenderV2
}

// AppendExemplars implements storage.ExemplarAppenderV2.
func (a releasingExemplarAppender) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	return a.ea.AppendExemplars(ref, ls, es)
}

// startCreating makes the directory of new tenant id, marked as being created.
func (s *Store) startCreating(id string) error {
	dir := filepath.Join(s.tenantsDir(), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory of tenant %q: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(dir, creatingMarker), nil, 0o644); err != nil {
		_ = os.Remove(dir) // empty: removing it needs no open file
		return fmt.Errorf("create directory of tenant %q: %w", id, err)
	}
	return nil
}

// removeCreating removes the directory of tenant id, whose creation
// failed, or leaves it to maintainTenants if that fails. s.mu is held, and
// id is not in s.tenants: nobody uses the directory.
func (s *Store) removeCreating(id string) {
	if err := os.RemoveAll(filepath.Join(s.tenantsDir(), id)); err != nil {
		s.logger.Warn("removing the directory of a tenant that failed to be created; will retry", "tenant", id, "err", err)
		s.leftovers[id] = struct{}{}
		return
	}
	delete(s.leftovers, id)
}

// removeLeftovers retries removing the directories of failed creations.
func (s *Store) removeLeftovers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.leftovers {
		if _, ok := s.tenants[id]; ok {
			delete(s.leftovers, id) // created again since, successfully or being
			continue
		}
		s.removeCreating(id)
	}
}

// markWritten removes t's closedMarker before its first write since it
// opened: from then on its head may hold samples in no block, and a
// restart must open it. Reads leave the marker.
func (s *Store) markWritten(t *tenantDB) error {
	t.markerMu.Lock()
	defer t.markerMu.Unlock()
	if t.written {
		return nil
	}
	if err := removeIfExists(filepath.Join(s.tenantsDir(), t.id, closedMarker)); err != nil {
		return fmt.Errorf("tenant %q: %w", t.id, err)
	}
	t.written = true
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
