package blocks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// A tenant's exemplar ring (Options.MaxExemplars entries, about 64 bytes
// each) is allocated whole by the TSDB. Most tenants never send exemplars,
// so a tenant's ring is sized on its first exemplar rather than when the
// tenant opens (profiled: 6.1 MiB per tenant for the default 100000).
//
// exemplarsMarker, in a tenant's directory, records that the tenant has
// stored exemplars; a tenant with it opens with its ring sized, so that the
// exemplars in its WAL are replayed. The marker is written before the ring
// is sized, hence before any exemplar is in the WAL.
const exemplarsMarker = "exemplars"

// initialExemplars is the size of the exemplar ring tenant directory dir
// opens with.
func (s *Store) initialExemplars(dir string) int64 {
	if s.opts.MaxExemplars <= 0 {
		return 0
	}
	if _, err := os.Stat(filepath.Join(dir, exemplarsMarker)); err == nil {
		return s.opts.MaxExemplars
	}
	return 0
}

// ensureExemplars sizes the exemplar ring of t, once.
func (s *Store) ensureExemplars(t *tenantDB) error {
	if t.exemplarsSized.Load() {
		return nil
	}
	t.exemplarsMu.Lock()
	defer t.exemplarsMu.Unlock()
	if t.exemplarsSized.Load() {
		return nil
	}
	marker := filepath.Join(s.tenantsDir(), t.id, exemplarsMarker)
	if err := writeFileAtomic(marker, nil); err != nil {
		return fmt.Errorf("mark tenant %q as storing exemplars: %w", t.id, err)
	}
	// ApplyConfig also sets the out-of-order window, so it is given the
	// store's; everything else it reads is left as the tenant opened with.
	cfg := &config.Config{StorageConfig: config.StorageConfig{
		TSDBConfig:      &config.TSDBConfig{OutOfOrderTimeWindow: s.opts.OutOfOrderWindow.Milliseconds()},
		ExemplarsConfig: &config.ExemplarsConfig{MaxExemplars: s.opts.MaxExemplars},
	}}
	if err := t.db.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("size the exemplar storage of tenant %q: %w", t.id, err)
	}
	t.exemplarsSized.Store(true)
	return nil
}

// exemplarSizingAppender is a tenant's appender until the tenant's
// exemplar ring is sized: its first AppendExemplars sizes it.
type exemplarSizingAppender struct {
	storage.AppenderV2
	s *Store
	t *tenantDB
}

// AppendExemplars implements storage.ExemplarAppenderV2.
func (a exemplarSizingAppender) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	ea, ok := a.AppenderV2.(storage.ExemplarAppenderV2)
	if !ok {
		return ref, errors.New("the tenant's appender cannot store exemplars")
	}
	if err := a.s.ensureExemplars(a.t); err != nil {
		return ref, err
	}
	return ea.AppendExemplars(ref, ls, es)
}
