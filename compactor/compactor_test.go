package compactor_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/miniotest"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

const (
	day      = 24 * time.Hour
	interval = time.Minute
	// Samples sit 1234ms after each minute, never on a window boundary.
	offset = 1234 * time.Millisecond
)

// testData is 42 days of a few counters (with resets) and gauges ending at end.
type testData struct {
	end    time.Time
	series []labels.Labels
}

func (d testData) value(i int, t time.Time) float64 {
	step := float64(t.Sub(d.end.Add(-42*day)) / interval)
	if i%2 == 0 { // counter, reset every 5 days
		resets := math.Floor(step / (5 * 1440))
		return (step - resets*5*1440) * float64(i+1) * (1 + 0.3*math.Sin(step/97))
	}
	return 100 + 50*math.Sin(step/300+float64(i)) + float64(int(step)%7)
}

func newTestData() testData {
	end := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	d := testData{end: end}
	for i := range 6 {
		name := "gauge"
		if i%2 == 0 {
			name = "requests_total"
		}
		d.series = append(d.series, labels.FromStrings("__name__", name, "instance", fmt.Sprintf("host-%d", i), "job", "app"))
	}
	return d
}

// backfill writes the data between from and to as blocks of length rng
// straight into the bucket, as a backfill tool would.
func (d testData) backfill(t *testing.T, bkt objstore.Bucket, id string, from, to time.Time, rng time.Duration) int {
	t.Helper()
	n := 0
	for start := from; start.Before(to); start = start.Add(rng) {
		bd := testutil.WriteBlock(t, rng, func(app storage.Appender) error {
			for i, ls := range d.series {
				for ts := start.Add(offset); ts.Before(start.Add(rng)); ts = ts.Add(interval) {
					if _, err := app.Append(0, ls, ts.UnixMilli(), d.value(i, ts)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		m, err := blockmeta.ReadDir(bd)
		if err != nil {
			t.Fatal(err)
		}
		m.MinTime, m.MaxTime = start.UnixMilli(), start.Add(rng).UnixMilli()
		m.Strata = &blockmeta.Ext{Resolution: blockmeta.ResRaw, Source: blockmeta.SourceBackfill}
		if err := blockmeta.Upload(context.Background(), bkt, id, bd, m); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func newMinio(t *testing.T) objstore.Bucket {
	t.Helper()
	srv := miniotest.Start(t)
	cfg := srv.Config()
	cfg.Timeout = model.Duration(10 * time.Second)
	b, err := objstore.New(context.Background(), cfg, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func indexOf(t *testing.T, bkt objstore.Bucket, id string) *blockmeta.Index {
	t.Helper()
	ix, err := blockmeta.ReadIndex(context.Background(), bkt, id)
	if err != nil {
		t.Fatalf("bucket index: %v", err)
	}
	return ix
}

// countBlocks counts the index's blocks by resolution and range.
func countBlocks(ix *blockmeta.Index) map[string]int {
	out := map[string]int{}
	for _, m := range ix.Blocks {
		out[fmt.Sprintf("%v/%v", time.Duration(m.Resolution())*time.Millisecond, time.Duration(m.MaxTime-m.MinTime)*time.Millisecond)]++
	}
	return out
}

type querier struct {
	store  *blocks.Store
	engine *promqlengine.Engine
}

func newQuerier(t *testing.T, bkt objstore.Bucket) querier {
	t.Helper()
	return newQuerierWith(t, bkt, false)
}

// newQuerierWith returns a querier whose engine pushes range functions
// down unless noPushdown.
func newQuerierWith(t *testing.T, bkt objstore.Bucket, noPushdown bool) querier {
	t.Helper()
	s, err := blocks.Open(blocks.Options{Dir: t.TempDir(), Bucket: bkt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.SyncBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	e, err := promqlengine.New(promqlengine.Options{MaxSamples: 5e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, Downsampled: s, NoPushdown: noPushdown})
	if err != nil {
		t.Fatal(err)
	}
	return querier{s, e}
}

// rangeQuery evaluates qs over [start, end] at step with a forced max source
// resolution (-1: automatic), returning series label string -> points.
func (q querier) rangeQuery(ctx context.Context, qs string, start, end time.Time, step time.Duration, res int64) (map[string][]promql.FPoint, error) {
	ctx = promqlengine.WithMaxSourceResolution(tenant.WithID(ctx, "team"), res)
	qry, err := q.engine.NewRangeQuery(ctx, q.store.Queryable(), nil, qs, start, end, step)
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	r := qry.Exec(ctx)
	if r.Err != nil {
		return nil, r.Err
	}
	m, err := r.Matrix()
	if err != nil {
		return nil, err
	}
	out := map[string][]promql.FPoint{}
	for _, s := range m {
		out[s.Metric.String()] = append([]promql.FPoint(nil), s.Floats...) // Close recycles s.Floats
	}
	return out, nil
}

// tolerance is how far an answer from downsampled data may be from the
// raw answer, relatively: exact for min, max and count; sums differ by
// float rounding only; rates by extrapolation over fewer samples.
var comparisons = []struct {
	query string
	tol   float64
}{
	{`max_over_time(requests_total[1h])`, 0},
	{`min_over_time(gauge[1h])`, 0},
	{`count_over_time(gauge[1h])`, 0},
	{`count_over_time({job="app"}[1d])`, 0},
	{`max_over_time(gauge[1d])`, 0},
	{`sum_over_time(gauge[1h])`, 1e-9},
	{`avg_over_time(gauge[1h])`, 1e-9},
	{`rate(requests_total[1h])`, 0.01},
	{`increase(requests_total[1d])`, 0.01},
	{`sum by (job) (rate(requests_total[2h]))`, 0.01},
}

func compare(t *testing.T, what string, got, want map[string][]promql.FPoint, tol float64) {
	t.Helper()
	if err := diff(got, want, tol); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// diff describes the first difference between two answers beyond tol.
func diff(got, want map[string][]promql.FPoint, tol float64) error {
	return diffBy(got, want, func(g, w float64) bool {
		d := math.Abs(g - w)
		return !(d > tol*math.Max(math.Abs(w), 1e-9) && d > 1e-9)
	}, fmt.Sprintf("tolerance %g", tol))
}

// sameBits describes the first difference between two answers, floats
// compared bit for bit.
func sameBits(got, want map[string][]promql.FPoint) error {
	return diffBy(got, want, func(g, w float64) bool { return math.Float64bits(g) == math.Float64bits(w) }, "bit for bit")
}

// diffBy describes the first difference between two answers: series,
// timestamps, or values that same does not accept.
func diffBy(got, want map[string][]promql.FPoint, same func(got, want float64) bool, how string) error {
	if len(got) != len(want) || len(want) == 0 {
		return fmt.Errorf("%d series, want %d (> 0)", len(got), len(want))
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			return fmt.Errorf("%s has %d points, want %d (a gap?)", k, len(g), len(w))
		}
		for i := range w {
			if g[i].T != w[i].T {
				return fmt.Errorf("%s point %d at %d, want %d", k, i, g[i].T, w[i].T)
			}
			if !same(g[i].F, w[i].F) {
				return fmt.Errorf("%s at %d = %v, want %v (%s)", k, g[i].T, g[i].F, w[i].F, how)
			}
		}
	}
	return nil
}

func TestCompactDownsampleRetain(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a MinIO server")
	}
	bkt := newMinio(t)
	d := newTestData()
	const id = "team"
	// 40 days backfilled as day blocks, the last 2 as 2h blocks as shipped.
	d.backfill(t, bkt, id, d.end.Add(-42*day), d.end.Add(-2*day), day)
	d.backfill(t, bkt, id, d.end.Add(-2*day), d.end, 2*time.Hour)

	now := d.end.Add(5 * time.Hour)
	newCompactor := func(ret compactor.Retention, now time.Time) *compactor.Compactor {
		c, err := compactor.New(compactor.Options{Bucket: bkt, Dir: t.TempDir(), Retention: func(string) compactor.Retention { return ret }, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Answers over the last 30 days from raw data, before anything changes.
	end := d.end.Add(-time.Hour)
	start := end.Add(-30 * day)
	raw := newQuerier(t, bkt)
	want := map[string]map[string][]promql.FPoint{}
	for _, c := range comparisons {
		r, err := raw.rangeQuery(context.Background(), c.query, start, end, time.Hour, 0)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		want[c.query] = r
	}

	// Compaction, with queries running all along.
	var (
		stop     atomic.Bool
		ran      atomic.Int64
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		const qs = `max_over_time(requests_total[1h])`
		for !stop.Load() {
			q := newQuerier(t, bkt)
			r, err := q.rangeQuery(context.Background(), qs, start, end, time.Hour, -1)
			if err == nil {
				err = diff(r, want[qs], 0)
			}
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
			}
			ran.Add(1)
		}
	}()
	waitQueries := func() {
		// Queriers read the new index before the next run deletes sources.
		n := ran.Load()
		testutil.Eventually(t, time.Minute, "two more queries", func() bool { return ran.Load() >= n+2 })
	}
	if err := newCompactor(compactor.Retention{}, now).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitQueries()
	// Past the deletion delay: replaced blocks are deleted.
	if err := newCompactor(compactor.Retention{}, now.Add(2*time.Hour)).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitQueries()
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 || ran.Load() < 4 {
		t.Fatalf("%d of %d queries during compaction failed; first: %v", len(failures), ran.Load(), failures)
	}

	ix := indexOf(t, bkt, id)
	got := countBlocks(ix)
	t.Logf("blocks after compaction: %v", got)
	if got["0s/24h0m0s"] != 42 {
		t.Errorf("raw day blocks = %d, want 42 (40 backfilled, 2 compacted 2h -> 12h -> 24h)", got["0s/24h0m0s"])
	}
	if got["0s/2h0m0s"] != 0 || got["0s/12h0m0s"] != 0 {
		t.Errorf("2h or 12h blocks left after compaction: %v", got)
	}
	if got["1m0s/24h0m0s"] != 42 || got["1h0m0s/24h0m0s"] != 42 {
		t.Errorf("downsampled day blocks: %v, want 42 at 1m and at 1h", got)
	}

	// Downsampled answers agree with raw ones.
	q := newQuerier(t, bkt)
	for _, res := range []int64{blockmeta.Res1m, blockmeta.Res1h} {
		for _, c := range comparisons {
			r, err := q.rangeQuery(context.Background(), c.query, start, end, time.Hour, res)
			if err != nil {
				t.Fatalf("%s at %dms: %v", c.query, res, err)
			}
			compare(t, fmt.Sprintf("%s at %v", c.query, time.Duration(res)*time.Millisecond), r, want[c.query], c.tol)
		}
	}

	// Retention: raw data past 7 days and 1m data past 30 days go; queries
	// over 30 days still answer, from coarser data where finer is gone.
	if err := newCompactor(compactor.DefaultRetention, now).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := newCompactor(compactor.DefaultRetention, now.Add(2*time.Hour)).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	ix = indexOf(t, bkt, id)
	for _, m := range ix.Blocks {
		if keep := compactor.DefaultRetention.For(m.Resolution()); m.MaxTime < now.Add(-keep).UnixMilli() {
			t.Errorf("block %s (resolution %d) past retention is still in the index", m.ULID, m.Resolution())
		}
	}
	t.Logf("blocks after retention: %v", countBlocks(ix))
	if got := countBlocks(ix)["0s/24h0m0s"]; got > 8 {
		t.Errorf("%d raw day blocks kept, want at most 8 (7 days)", got)
	}
	var objects int
	_ = bkt.Iter(context.Background(), id+"/", func(string) error { objects++; return nil }, false)
	if objects != len(ix.Blocks)+1 { // blocks and the index
		t.Errorf("bucket holds %d entries for %d blocks: deleted blocks left objects behind", objects, len(ix.Blocks))
	}
	q = newQuerier(t, bkt)
	for _, c := range comparisons {
		r, err := q.rangeQuery(context.Background(), c.query, start, end, time.Hour, -1)
		if err != nil {
			t.Fatalf("%s after retention: %v", c.query, err)
		}
		compare(t, c.query+" after retention", r, want[c.query], c.tol)
	}

	// Pushed-down range functions and selectors read what the engine reads,
	// across the seams between raw and downsampled spans: the answers are
	// the same to the bit.
	plain := newQuerierWith(t, bkt, true)
	for _, qs := range []string{`gauge`, `sum by (job) (gauge)`, `count by (job) ({job="app"})`, `max_over_time(requests_total[1h])`, `rate(requests_total[2h])`, `last_over_time(gauge[3h])`} {
		for _, res := range []int64{-1, 0, blockmeta.Res1m} {
			got, err := q.rangeQuery(context.Background(), qs, start.Add(-17*time.Minute), end, 37*time.Minute, res)
			if err != nil {
				t.Fatalf("%s at %d: %v", qs, res, err)
			}
			want, err := plain.rangeQuery(context.Background(), qs, start.Add(-17*time.Minute), end, 37*time.Minute, res)
			if err != nil {
				t.Fatalf("%s at %d without pushdown: %v", qs, res, err)
			}
			if err := sameBits(got, want); err != nil {
				t.Errorf("%s at resolution %d, pushed down: %v", qs, res, err)
			}
		}
	}
}
