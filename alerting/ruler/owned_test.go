package ruler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/tenant"
)

// tenantSink records, per tenant of the appender's context, the samples
// committed by rule evaluations.
type tenantSink struct {
	mu      sync.Mutex
	samples map[string]map[string][]float64 // tenant -> series -> values
}

func (s *tenantSink) AppenderV2(ctx context.Context) storage.AppenderV2 {
	id, _ := tenant.FromContext(ctx)
	return &sinkAppender{s: s, id: id}
}

// count is how many samples of tenant id's series name were committed.
func (s *tenantSink) count(id, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.samples[id][name])
}

// stale reports whether any committed sample of tenant id is a staleness marker.
func (s *tenantSink) stale(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, vs := range s.samples[id] {
		if slices.ContainsFunc(vs, value.IsStaleNaN) {
			return true
		}
	}
	return false
}

type sinkAppender struct {
	s       *tenantSink
	id      string
	pending map[string][]float64
}

func (a *sinkAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, _ int64, v float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	if a.pending == nil {
		a.pending = map[string][]float64{}
	}
	n := ls.Get(labels.MetricName)
	a.pending[n] = append(a.pending[n], v)
	return 0, nil
}

func (a *sinkAppender) Commit() error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if a.s.samples[a.id] == nil {
		a.s.samples[a.id] = map[string][]float64{}
	}
	for n, vs := range a.pending {
		a.s.samples[a.id][n] = append(a.s.samples[a.id][n], vs...)
	}
	a.pending = nil
	return nil
}

func (a *sinkAppender) Rollback() error { a.pending = nil; return nil }

// emptyQueryable holds no series: the rules of the test evaluate vector().
type emptyQueryable struct{}

func (emptyQueryable) Querier(int64, int64) (storage.Querier, error) {
	return storage.NoopQuerier(), nil
}

// TestOwnershipSwitching runs a ruler over three tenants' rule files
// (a recording rule and an anomaly rule each) whose ownership changes:
// it evaluates exactly the tenants it owns at each step, lists only their
// rules, stops a tenant handed over without ending its series, and owns
// none while ownership cannot be read.
func TestOwnershipSwitching(t *testing.T) {
	dir := t.TempDir()
	tenants := []string{"team-a", "team-b", "team-c"}
	files := map[string][]string{}
	for _, id := range tenants {
		path := filepath.Join(dir, id+".yml")
		rules := fmt.Sprintf(`groups:
  - name: g
    interval: 20ms
    rules:
      - record: tenant:one
        expr: vector(1)
        labels: {tenant: %q}
      - anomaly: tenant:level
        expr: vector(5)
        detector: adaptive
        params: {warmup: 1}
`, id)
		if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		files[id] = []string{path}
	}

	// owned is the current ownership: a set of tenants, or nil for an
	// error reading the ring.
	var owned atomic.Pointer[map[string]bool]
	set := func(ids ...string) {
		m := map[string]bool{}
		for _, id := range ids {
			m[id] = true
		}
		owned.Store(&m)
	}
	set()
	reg := prometheus.NewRegistry()
	sink := &tenantSink{samples: map[string]map[string][]float64{}}
	p := parser.NewParser(parser.Options{})
	r := New(Options{
		Engine:     promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute, Parser: p}),
		Parser:     p,
		Queryable:  emptyQueryable{},
		Appendable: sink,
		Files:      func() (map[string][]string, error) { return files, nil },
		Owned: func() (func(string) bool, error) {
			m := owned.Load()
			if *m == nil {
				return nil, errors.New("not a healthy member of the ring")
			}
			return func(id string) bool { return (*m)[id] }, nil
		},
		OwnershipCheckPeriod: 10 * time.Millisecond,
		EvaluationInterval:   time.Minute,
		ResendDelay:          time.Minute,
		Registerer:           reg,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	for _, step := range []struct {
		name  string
		owned []string // nil: ownership cannot be read
	}{
		{"first owner of two", []string{"team-a", "team-b"}},
		{"one handed over, one taken", []string{"team-b", "team-c"}},
		{"all", tenants},
		{"ring unreadable", nil},
		{"back", []string{"team-a"}},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.owned == nil {
				var none map[string]bool
				owned.Store(&none)
			} else {
				set(step.owned...)
			}
			want := func(id string) bool { return slices.Contains(step.owned, id) }
			testutil.Eventually(t, 10*time.Second, "evaluated tenants follow ownership", func() bool {
				for _, id := range tenants {
					rctx := tenant.WithID(context.Background(), id)
					if (len(r.Retriever(rctx).RuleGroups()) == 1) != want(id) {
						return false
					}
				}
				return testutil.Metric(t, reg, "strata_rules_tenants_evaluated") == float64(len(step.owned))
			})
			// Owned tenants are evaluated from now on, the others not.
			before := map[string]int{}
			for _, id := range tenants {
				before[id] = sink.count(id, "tenant:one")
			}
			testutil.Eventually(t, 10*time.Second, "owned tenants' rules evaluated", func() bool {
				for _, id := range step.owned {
					if sink.count(id, "tenant:one") < before[id]+3 || sink.count(id, "tenant:level:upper") == 0 {
						return false
					}
				}
				return true
			})
			for _, id := range tenants {
				if !want(id) && sink.count(id, "tenant:one") != before[id] {
					t.Errorf("%s evaluated by a ruler that does not own it: %d samples, then %d", id, before[id], sink.count(id, "tenant:one"))
				}
				evals := testutil.Metric(t, reg, "strata_rule_group_evaluations_total", "tenant", id)
				if want(id) && evals == 0 {
					t.Errorf("%s: no group evaluations counted", id)
				}
			}
			var anomalyTenants []string
			for _, ar := range r.AnomalyRules() {
				anomalyTenants = append(anomalyTenants, ar.Tenant)
			}
			if wantIDs := slices.DeleteFunc(slices.Clone(tenants), func(id string) bool { return !want(id) }); !slices.Equal(anomalyTenants, wantIDs) {
				t.Errorf("anomaly rules listed of %v, want %v", anomalyTenants, wantIDs)
			}
		})
	}
	// Handing a tenant over does not end its series: its new owner writes them.
	for _, id := range tenants {
		if sink.stale(id) {
			t.Errorf("%s: a staleness marker was written on a hand-over", id)
		}
	}
}
