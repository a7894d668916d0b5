package querier_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/querier"
	"github.com/strata-tsdb/strata/tenant"
)

// sample is one float sample of a series named by its job label.
type sample struct {
	job string
	t   int64
	v   float64
}

// newIngester serves remote read, as an ingester's ReadPath does, over a
// real TSDB holding samples under tenant "team-a"; other tenants get 400.
// A negative status makes it answer that status instead.
func newIngester(t *testing.T, samples []sample, fail int) string {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	app := db.Appender(context.Background())
	for _, s := range samples {
		if _, err := app.Append(0, labels.FromStrings("__name__", "up", "job", s.job), s.t, s.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	read := remote.NewReadHandler(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), db, func() config.Config { return config.Config{} }, 0, 1, 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail != 0 {
			http.Error(w, "failing", fail)
			return
		}
		if r.URL.Path != querier.ReadPath || r.Header.Get(tenant.HeaderName) != "team-a" {
			http.Error(w, "wrong path or tenant", http.StatusBadRequest)
			return
		}
		read.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

type fakeRing struct{ set ring.ReplicationSet }

func (r fakeRing) GetReplicationSetForOperation(ring.Operation) (ring.ReplicationSet, error) {
	return r.set, nil
}

// TestReadQuorum reads through three ingesters holding replicas of the
// same series, each missing some samples (as after a restart), and checks
// that the replicas are merged with every sample once, that one failing
// ingester is tolerated with a warning and that two are an error.
func TestReadQuorum(t *testing.T) {
	// Replicas: every sample is on at least two of the three.
	replicas := [][]sample{
		{{"a", 1000, 1}, {"a", 2000, 2}, {"b", 1000, 10}},
		{{"a", 2000, 2}, {"a", 3000, 3}, {"b", 1000, 10}, {"b", 2000, 20}},
		{{"a", 1000, 1}, {"a", 3000, 3}, {"b", 2000, 20}},
	}
	want := map[string][]sample{
		"a": {{"a", 1000, 1}, {"a", 2000, 2}, {"a", 3000, 3}},
		"b": {{"b", 1000, 10}, {"b", 2000, 20}},
	}
	for _, tc := range []struct {
		name      string
		fail      []int // status of each failing ingester, 0 when it answers
		wantErr   bool
		wantWarns int
	}{
		{"all answer", []int{0, 0, 0}, false, 0},
		{"one fails", []int{0, http.StatusServiceUnavailable, 0}, false, 1},
		{"two fail", []int{http.StatusInternalServerError, 0, http.StatusServiceUnavailable}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var set ring.ReplicationSet
			for i, rs := range replicas {
				set.Instances = append(set.Instances, ring.InstanceDesc{Addr: newIngester(t, rs, tc.fail[i])})
			}
			set.MaxErrors = 1
			r := querier.NewReader(querier.Options{Ring: fakeRing{set}})
			q, err := r.Querier(context.Background(), "team-a", 0, 10000)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
			got := map[string][]sample{}
			for ss.Next() {
				job := ss.At().Labels().Get("job")
				it := ss.At().Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					ts, v := it.At()
					got[job] = append(got[job], sample{job, ts, v})
				}
			}
			if tc.wantErr {
				if ss.Err() == nil {
					t.Fatalf("no error with two of three ingesters failing, got %v", got)
				}
				return
			}
			if ss.Err() != nil {
				t.Fatal(ss.Err())
			}
			if len(ss.Warnings()) != tc.wantWarns {
				t.Errorf("warnings %v, want %d", ss.Warnings(), tc.wantWarns)
			}
			if len(got) != len(want) {
				t.Fatalf("series %v, want %v", got, want)
			}
			for job, w := range want {
				if !equalSamples(got[job], w) {
					t.Errorf("series %s: %v, want %v", job, got[job], w)
				}
			}
			vals, _, err := q.LabelValues(ctx, "job", nil)
			if err != nil || strings.Join(vals, ",") != "a,b" {
				t.Errorf("label values of job: %v %v, want a,b", vals, err)
			}
			names, _, err := q.LabelNames(ctx, nil, labels.MustNewMatcher(labels.MatchEqual, "job", "b"))
			if err != nil || strings.Join(names, ",") != "__name__,job" {
				t.Errorf("label names: %v %v, want __name__,job", names, err)
			}
		})
	}
}

func equalSamples(a, b []sample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMetadataUnion asks three ingesters for metric metadata: the answer
// is the union of theirs, each entry once; one may fail, two may not.
func TestMetadataUnion(t *testing.T) {
	gauge := metadata.Metadata{Type: model.MetricTypeGauge, Help: "Temperature.", Unit: "celsius"}
	counter := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests."}
	held := []map[string][]metadata.Metadata{
		{"temp": {gauge}},
		{"temp": {gauge}, "requests": {counter}},
		{"requests": {counter}},
	}
	for _, tc := range []struct {
		name    string
		fail    []bool
		want    string
		wantErr bool
	}{
		{"all answer", []bool{false, false, false}, "requests:[counter] temp:[gauge]", false},
		{"one fails", []bool{false, false, true}, "requests:[counter] temp:[gauge]", false},
		{"two fail", []bool{true, false, true}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var set ring.ReplicationSet
			for i, fams := range held {
				h := querier.MetadataHandler(func(id, metric string) (map[string][]metadata.Metadata, error) {
					if tc.fail[i] {
						return nil, errors.New("failing")
					}
					if id != "team-a" || metric != "" {
						return nil, fmt.Errorf("asked for tenant %q family %q", id, metric)
					}
					return fams, nil
				})
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				set.Instances = append(set.Instances, ring.InstanceDesc{Addr: strings.TrimPrefix(srv.URL, "http://")})
			}
			set.MaxErrors = 1
			r := querier.NewReader(querier.Options{Ring: fakeRing{set}})
			got, err := r.MetricMetadata(context.Background(), "team-a", "")
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error with two of three ingesters failing, got %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for fam, entries := range got {
				var types []string
				for _, e := range entries {
					types = append(types, string(e.Type))
				}
				parts = append(parts, fam+":"+fmt.Sprint(types))
			}
			slices.Sort(parts)
			if s := strings.Join(parts, " "); s != tc.want {
				t.Errorf("metadata %s, want %s", s, tc.want)
			}
		})
	}
}
