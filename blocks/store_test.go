package blocks_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/tenant"
)

type sample struct {
	t int64
	v float64
}

func openStore(t *testing.T, dir string) *blocks.Store {
	t.Helper()
	s, err := blocks.Open(blocks.Options{Dir: dir, OutOfOrderWindow: 10 * time.Minute, MaxExemplars: 100})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

func appendSamples(t *testing.T, s *blocks.Store, id string, ls labels.Labels, ss []sample) {
	t.Helper()
	app, err := s.Appender(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var ref storage.SeriesRef
	for _, x := range ss {
		if ref, err = app.Append(ref, ls, 0, x.t, x.v, nil, nil, storage.AppendV2Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// readAll returns every sample of every series of tenant id, keyed by series.
func readAll(t *testing.T, s *blocks.Store, id string) map[string][]sample {
	t.Helper()
	q, err := s.Queryable().Querier(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := tenant.WithID(context.Background(), id)
	set := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	out := map[string][]sample{}
	for set.Next() {
		series := set.At()
		it := series.Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			out[series.Labels().String()] = append(out[series.Labels().String()], sample{ts, v})
		}
		if it.Err() != nil {
			t.Fatal(it.Err())
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTenantsAreIsolated(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	a := labels.FromStrings("__name__", "m", "owner", "a")
	b := labels.FromStrings("__name__", "m", "owner", "b")
	appendSamples(t, s, "a", a, []sample{{1000, 1}})
	appendSamples(t, s, "b", b, []sample{{1000, 2}})

	for _, tc := range []struct {
		tenant string
		want   map[string][]sample
	}{
		{"a", map[string][]sample{a.String(): {{1000, 1}}}},
		{"b", map[string][]sample{b.String(): {{1000, 2}}}},
		{"unknown", map[string][]sample{}},
	} {
		got := readAll(t, s, tc.tenant)
		if len(got) != len(tc.want) {
			t.Fatalf("tenant %s: got %v, want %v", tc.tenant, got, tc.want)
		}
		for k, v := range tc.want {
			if len(got[k]) != len(v) || got[k][0] != v[0] {
				t.Fatalf("tenant %s: got %v, want %v", tc.tenant, got, tc.want)
			}
		}
	}
	if got := s.Tenants(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("Tenants() = %v", got)
	}
}

func TestQueryWithoutTenantFails(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	q, _ := s.Queryable().Querier(0, 1000)
	defer q.Close()
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"))
	if set.Next() || set.Err() == nil {
		t.Fatal("select without tenant must fail")
	}
}

func TestInvalidTenantRejected(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	for _, id := range []string{"../escape", "a/b", ""} {
		if _, err := s.Appender(context.Background(), id); err == nil {
			t.Errorf("tenant %q accepted", id)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); !os.IsNotExist(err) {
		t.Fatalf("a directory was created outside the tenants directory: %v", err)
	}
}

// TestRestartReplaysWAL checks that committed samples are queryable after
// the store is reopened: no block has been cut, so the WAL is their only
// copy. (The kill -9 case is in package e2e.)
func TestRestartReplaysWAL(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ls := labels.FromStrings("__name__", "up", "job", "x")
	var want []sample
	for i := range 100 {
		want = append(want, sample{int64(i) * 15000, float64(i)})
	}
	appendSamples(t, s, "t1", ls, want[:50])
	appendSamples(t, s, "t1", ls, want[50:])
	// An out-of-order sample within the window is accepted and survives too.
	appendSamples(t, s, "t1", ls, []sample{{want[99].t - 60000 + 1, 42}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tenants", "t1", "wal")); err != nil {
		t.Fatalf("no WAL on disk: %v", err)
	}

	s = openStore(t, dir)
	defer s.Close()
	got := readAll(t, s, "t1")[ls.String()]
	if len(got) != len(want)+1 {
		t.Fatalf("after restart: %d samples, want %d", len(got), len(want)+1)
	}
}

func TestOutOfOrderWindow(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	ls := labels.FromStrings("__name__", "m")
	now := time.Now().UnixMilli()
	appendSamples(t, s, "t", ls, []sample{{now, 1}})
	for _, tc := range []struct {
		name   string
		t      int64
		wantOK bool
	}{
		{"within window", now - (5 * time.Minute).Milliseconds(), true},
		{"beyond window", now - (20 * time.Minute).Milliseconds(), false},
	} {
		app, _ := s.Appender(context.Background(), "t")
		_, err := app.Append(0, ls, 0, tc.t, 2, nil, nil, storage.AppendV2Options{})
		if (err == nil) != tc.wantOK {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.wantOK)
		}
		_ = app.Commit()
	}
}

func TestMetadataPersists(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	md := metadata.Metadata{Type: model.MetricTypeCounter, Help: "CPU seconds.", Unit: "seconds"}
	if err := s.SetMetadata("t", "node_cpu_seconds_total", md); err != nil {
		t.Fatal(err)
	}
	// Setting the same entry again keeps one copy.
	_ = s.SetMetadata("t", "node_cpu_seconds_total", md)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	got, err := s.MetricMetadata("t", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "node_cpu_seconds_total" || len(got[0].Entries) != 1 || got[0].Entries[0] != md {
		t.Fatalf("metadata after restart: %+v", got)
	}
	if l, _ := s.MetricMetadata("t", "absent"); len(l) != 0 {
		t.Fatalf("List(absent) = %v", l)
	}
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	s := openStore(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Appender(context.Background(), "t"); err == nil {
		t.Fatal("closed store handed out an appender")
	}
	app := s.AppenderV2(tenant.WithID(context.Background(), "t"))
	if err := app.Commit(); err == nil {
		t.Fatal("commit on a closed store succeeded")
	}
}

// TestWritesGoOnAfterFlush: a flush (POST /api/v1/admin/flush, an ingester
// leaving) cuts the head at its newest sample, not at its block range's end,
// so the samples that follow are taken: in order, and, with an out-of-order
// window, behind the newest within it. Cut to the range's end, the head
// refused every sample until that end, up to 2h of writes.
func TestWritesGoOnAfterFlush(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		late   bool // whether a sample 5m behind the newest is taken
	}{
		{name: "no out-of-order window", window: 0},
		{name: "10m out-of-order window", window: 10 * time.Minute, late: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := blocks.Open(blocks.Options{Dir: t.TempDir(), OutOfOrderWindow: tc.window})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			now := time.Now().UnixMilli()
			a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
			appendSamples(t, s, "t", a, []sample{{now - 60000, 1}, {now, 2}})
			appendSamples(t, s, "t", b, []sample{{now - 60000, 1}})
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			after := []sample{{now + 15000, 3}, {now + 30000, 4}}
			appendSamples(t, s, "t", a, after)
			want := map[string][]sample{a.String(): append([]sample{{now - 60000, 1}, {now, 2}}, after...), b.String(): {{now - 60000, 1}}}
			app, err := s.Appender(context.Background(), "t")
			if err != nil {
				t.Fatal(err)
			}
			_, err = app.Append(0, b, 0, now-5*60000+1, 5, nil, nil, storage.AppendV2Options{})
			if err == nil {
				err = app.Commit()
			} else {
				_ = app.Rollback()
			}
			if tc.late {
				if err != nil {
					t.Fatalf("a sample 5m behind the newest, within the window: %v", err)
				}
				want[b.String()] = []sample{{now - 5*60000 + 1, 5}, {now - 60000, 1}}
			} else if err == nil {
				t.Errorf("a sample behind the newest was taken without an out-of-order window")
			}
			if got := readAll(t, s, "t"); !reflect.DeepEqual(got, want) {
				t.Errorf("after the flush read\n%v\nwant\n%v", got, want)
			}
		})
	}
}
