package querier_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/querier"
	"github.com/strata-tsdb/strata/tenant"
)

// tenantExemplars reads db's exemplars for tenant "team-a" only, as an
// ingester's store reads the tenant of the context.
type tenantExemplars struct{ db *tsdb.DB }

func (q tenantExemplars) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	if id, _ := tenant.FromContext(ctx); id != "team-a" {
		return nil, fmt.Errorf("tenant %q", id)
	}
	return q.db.ExemplarQuerier(ctx)
}

// noExemplars is a querier's own store: no exemplars.
type noExemplars struct{}

func (noExemplars) ExemplarQuerier(context.Context) (storage.ExemplarQuerier, error) {
	return noExemplarQuerier{}, nil
}

type noExemplarQuerier struct{}

func (noExemplarQuerier) Select(int64, int64, ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	return nil, nil
}

// exemplarIngester serves ExemplarsPath over a real TSDB holding the
// exemplars es of series up{job="a"}, or answers status fail.
func exemplarIngester(t *testing.T, es []exemplar.Exemplar, fail int) string {
	opts := tsdb.DefaultOptions()
	opts.EnableExemplarStorage, opts.MaxExemplars = true, 100
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ls := labels.FromStrings("__name__", "up", "job", "a")
	app := db.Appender(context.Background())
	ref, err := app.Append(0, ls, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if _, err := app.AppendExemplar(ref, ls, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	h := querier.ExemplarsHandler(tenantExemplars{db})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail != 0 {
			http.Error(w, "failing", fail)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestExemplarsMerged reads exemplars through three ingesters holding
// overlapping replicas of a series' exemplars (one a NaN): each once, in
// time order; one ingester may fail, two may not.
func TestExemplarsMerged(t *testing.T) {
	ex := func(trace string, v float64, ts int64) exemplar.Exemplar {
		return exemplar.Exemplar{Labels: labels.FromStrings("trace_id", trace), Value: v, Ts: ts, HasTs: true}
	}
	replicas := [][]exemplar.Exemplar{
		{ex("a1", 1, 1000), ex("a2", math.NaN(), 2000)},
		{ex("a2", math.NaN(), 2000), ex("a3", 3, 3000)},
		{ex("a1", 1, 1000), ex("a3", 3, 3000)},
	}
	for _, tc := range []struct {
		name    string
		fail    []int
		wantErr bool
	}{
		{"all answer", []int{0, 0, 0}, false},
		{"one fails", []int{0, 0, http.StatusServiceUnavailable}, false},
		{"two fail", []int{http.StatusInternalServerError, 0, http.StatusServiceUnavailable}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var set ring.ReplicationSet
			for i, es := range replicas {
				set.Instances = append(set.Instances, ring.InstanceDesc{Addr: exemplarIngester(t, es, tc.fail[i])})
			}
			set.MaxErrors = 1
			r := querier.NewReader(querier.Options{Ring: fakeRing{set}})
			eq, err := r.ExemplarQueryable(noExemplars{}).ExemplarQuerier(tenant.WithID(context.Background(), "team-a"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := eq.Select(0, 10000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "a")})
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error with two of three ingesters failing, got %v", res)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || res[0].SeriesLabels.String() != `{__name__="up", job="a"}` {
				t.Fatalf("results %v, want one for up{job=\"a\"}", res)
			}
			var got []string
			for _, e := range res[0].Exemplars {
				got = append(got, fmt.Sprintf("%s=%v@%d", e.Labels.Get("trace_id"), e.Value, e.Ts))
			}
			if s := strings.Join(got, " "); s != "a1=1@1000 a2=NaN@2000 a3=3@3000" {
				t.Errorf("exemplars %s, want a1=1@1000 a2=NaN@2000 a3=3@3000", s)
			}
		})
	}
}
