package blocks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/prometheus/prometheus/model/metadata"
)

const metadataFile = "metadata.json"

// MetadataStore keeps the metric metadata (type, help, unit) a tenant sent
// through remote write, keyed by metric family name. Remote write resends
// metadata periodically, so the store only has to survive clean restarts:
// it is written to its file when it changed, at most once per Persist call,
// and on Close.
type MetadataStore struct {
	path string

	mu       sync.RWMutex
	families map[string][]metadata.Metadata // each slice holds distinct entries, in arrival order
	dirty    bool
}

// Metadata limits: a family keeps at most this many distinct entries, so a
// client that changes help text on every write cannot grow memory without bound.
const maxMetadataPerFamily = 10

func openMetadataStore(path string) (*MetadataStore, error) {
	m := &MetadataStore{path: path, families: map[string][]metadata.Metadata{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return m, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &m.families); err != nil {
		// A torn file only loses metadata, which remote write resends: start empty.
		m.families = map[string][]metadata.Metadata{}
	}
	return m, nil
}

// Set records md for metric family name.
func (m *MetadataStore) Set(family string, md metadata.Metadata) {
	m.mu.RLock()
	for _, have := range m.families[family] {
		if have == md {
			m.mu.RUnlock()
			return
		}
	}
	m.mu.RUnlock()

	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.families[family]
	for _, have := range list {
		if have == md {
			return
		}
	}
	if len(list) >= maxMetadataPerFamily {
		list = list[1:]
	}
	m.families[family] = append(list, md)
	m.dirty = true
}

// Family is the metadata of one metric family.
type Family struct {
	Name    string
	Entries []metadata.Metadata
}

// List returns the metadata of family name, or of every family when name is
// empty, sorted by family name.
func (m *MetadataStore) List(name string) []Family {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Family
	if name != "" {
		if e, ok := m.families[name]; ok {
			out = append(out, Family{Name: name, Entries: append([]metadata.Metadata(nil), e...)})
		}
		return out
	}
	for n, e := range m.families {
		out = append(out, Family{Name: n, Entries: append([]metadata.Metadata(nil), e...)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Persist writes the store to its file if it changed since the last write.
func (m *MetadataStore) Persist() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirty {
		return nil
	}
	b, err := json.Marshal(m.families)
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	tmp := m.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, m.path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	m.dirty = false
	return nil
}

// Close persists the store.
func (m *MetadataStore) Close() error { return m.Persist() }
