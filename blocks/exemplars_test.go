package blocks_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/tenant"
)

// maxExemplars reads prometheus_tsdb_exemplar_max_exemplars of tenant id.
func maxExemplars(t *testing.T, reg *prometheus.Registry, id string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "prometheus_tsdb_exemplar_max_exemplars" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() == id {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no prometheus_tsdb_exemplar_max_exemplars of tenant %q", id)
	return 0
}

func queryExemplars(t *testing.T, s *blocks.Store, id string) []exemplar.QueryResult {
	t.Helper()
	ctx := tenant.WithID(context.Background(), id)
	q, err := s.ExemplarQueryable().ExemplarQuerier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.Select(0, 1<<62, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestExemplarRingSizedOnFirstExemplar: a tenant's exemplar ring is not
// allocated until the tenant stores an exemplar; from then on it has its
// configured size, also after a restart, and the exemplars in the WAL are
// replayed into it. Samples and the out-of-order window are unaffected.
func TestExemplarRingSizedOnFirstExemplar(t *testing.T) {
	dir := t.TempDir()
	open := func() (*blocks.Store, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		s, err := blocks.Open(blocks.Options{Dir: dir, OutOfOrderWindow: 10 * time.Minute, MaxExemplars: 100, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		return s, reg
	}
	s, reg := open()
	ls := labels.FromStrings("__name__", "m", "job", "a")
	now := time.Now().UnixMilli()
	appendSamples(t, s, "t1", ls, []sample{{now, 1}})
	appendSamples(t, s, "t2", ls, []sample{{now, 1}})
	for _, id := range []string{"t1", "t2"} {
		if got := maxExemplars(t, reg, id); got != 0 {
			t.Fatalf("tenant %s without exemplars: ring of %v", id, got)
		}
	}

	app, err := s.Appender(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := app.Append(0, ls, 0, now+1000, 2, nil, nil, storage.AppendV2Options{})
	if err != nil {
		t.Fatal(err)
	}
	ea, ok := app.(storage.ExemplarAppenderV2)
	if !ok {
		t.Fatal("the store's appender does not append exemplars")
	}
	ex := exemplar.Exemplar{Labels: labels.FromStrings("trace_id", "abc"), Value: 2, Ts: now + 1000, HasTs: true}
	if _, err := ea.AppendExemplars(ref, ls, []exemplar.Exemplar{ex}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := maxExemplars(t, reg, "t1"); got != 100 {
		t.Errorf("tenant t1 after its first exemplar: ring of %v, want 100", got)
	}
	if got := maxExemplars(t, reg, "t2"); got != 0 {
		t.Errorf("tenant t2: ring of %v, want 0", got)
	}
	if res := queryExemplars(t, s, "t1"); len(res) != 1 || len(res[0].Exemplars) != 1 || !labels.Equal(res[0].Exemplars[0].Labels, ex.Labels) {
		t.Fatalf("exemplars of t1: %+v", res)
	}
	// The out-of-order window still holds after the resize.
	appendSamples(t, s, "t1", ls, []sample{{now - 5*60*1000, 0}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, reg = open()
	defer s.Close()
	queryExemplars(t, s, "t2") // tenants open on first use
	res := queryExemplars(t, s, "t1")
	if got := maxExemplars(t, reg, "t1"); got != 100 {
		t.Errorf("tenant t1 reopened: ring of %v, want 100", got)
	}
	if got := maxExemplars(t, reg, "t2"); got != 0 {
		t.Errorf("tenant t2 reopened: ring of %v, want 0", got)
	}
	if len(res) != 1 || len(res[0].Exemplars) != 1 {
		t.Fatalf("exemplars of t1 after a restart: %+v", res)
	}
	if got := readAll(t, s, "t1")[ls.String()]; len(got) != 3 {
		t.Errorf("samples of t1 after a restart: %v, want 3", got)
	}
}
