package compactor_test

import (
	"bytes"
	"context"
	"io"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/objstore"
)

// The tests in this file write their data through a real tenant head (the
// store remote write appends to), which cuts blocks at its first sample and
// at window ends, and ships them: blocks' times are never set by hand.

// headWrite appends d's series every minute at 58.5s past the minute (never
// on a window boundary) between from and to, except where skip says, into a
// fresh tenant head with a bucket, then cuts and ships everything.
func headWrite(t *testing.T, bkt objstore.Bucket, id string, d testData, from, to time.Time, phase time.Duration, skip func(time.Time) bool) {
	t.Helper()
	s, err := blocks.Open(blocks.Options{Dir: t.TempDir(), Bucket: bkt, BlockDuration: 2 * time.Hour, OutOfOrderWindow: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	app, err := s.Appender(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ts := from.Truncate(interval).Add(phase); ts.Before(to); ts = ts.Add(interval) {
		if ts.Before(from) || (skip != nil && skip(ts)) {
			continue
		}
		for i, ls := range d.series {
			if _, err := app.Append(0, ls, 0, ts.UnixMilli(), d.value(i, ts), nil, nil, storage.AppendV2Options{}); err != nil {
				t.Fatal(err)
			}
		}
		if n++; n%60 == 0 {
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
			if app, err = s.Appender(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

const scrapePhase = 58500 * time.Millisecond

// answers evaluates the comparisons over [start, end] hourly at max
// resolution res.
func answers(t *testing.T, q querier, start, end time.Time, res int64) map[string]map[string][]promql.FPoint {
	t.Helper()
	out := map[string]map[string][]promql.FPoint{}
	for _, c := range comparisons {
		r, err := q.rangeQuery(context.Background(), c.query, start, end, time.Hour, res)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		out[c.query] = r
	}
	return out
}

func compareAnswers(t *testing.T, what string, got, want map[string]map[string][]promql.FPoint) {
	t.Helper()
	for _, c := range comparisons {
		compare(t, what+": "+c.query, got[c.query], want[c.query], c.tol)
	}
}

func newRunner(t *testing.T, bkt objstore.Bucket, ret compactor.Retention, reg prometheus.Registerer) func(now time.Time) {
	t.Helper()
	var at time.Time
	c, err := compactor.New(compactor.Options{Bucket: bkt, Dir: t.TempDir(), Retention: func(string) compactor.Retention { return ret }, Now: func() time.Time { return at }, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return func(now time.Time) {
		t.Helper()
		at = now
		if err := c.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDownsamplesEveryCompleteWindow writes data that starts and stops in
// the middle of a day, with a gap of several hours, through a head (so no
// block spans a whole window) and checks that every complete window is
// merged and downsampled, and that the downsampled answers are the raw ones.
func TestDownsamplesEveryCompleteWindow(t *testing.T) {
	bkt := fsBucket(t)
	d := newTestData()
	from, to := d.end.Add(-5*day+10*time.Hour+37*time.Minute), d.end.Add(-day-3*time.Hour)
	gapFrom, gapTo := d.end.Add(-3*day+2*time.Hour), d.end.Add(-3*day+8*time.Hour)
	headWrite(t, bkt, "team", d, from, to, scrapePhase, func(ts time.Time) bool { return !ts.Before(gapFrom) && ts.Before(gapTo) })

	// Rates extrapolate differently where series start or pause within a
	// window (see the e2e test): compare away from the edges.
	qFrom, qTo := from.Truncate(time.Hour).Add(3*time.Hour), gapFrom.Truncate(time.Hour)
	want := answers(t, newQuerier(t, bkt), qFrom, qTo, 0)

	newRunner(t, bkt, compactor.Retention{}, nil)(d.end.Add(5 * time.Hour))
	ix := indexOf(t, bkt, "team")
	perDay := map[int64]map[int64]int{}
	for _, m := range ix.Blocks {
		start := m.MinTime - m.MinTime%day.Milliseconds()
		if m.MaxTime > start+day.Milliseconds() {
			t.Errorf("block %s [%d, %d) crosses a day", m.ULID, m.MinTime, m.MaxTime)
		}
		if perDay[start] == nil {
			perDay[start] = map[int64]int{}
		}
		perDay[start][m.Resolution()]++
	}
	for dayStart := from.Truncate(day); dayStart.Before(to); dayStart = dayStart.Add(day) {
		got := perDay[dayStart.UnixMilli()]
		if got[blockmeta.ResRaw] != 1 || got[blockmeta.Res1m] != 1 || got[blockmeta.Res1h] != 1 {
			t.Errorf("day %s: blocks by resolution %v, want one raw, one 1m and one 1h block", dayStart.Format(time.DateOnly), got)
		}
	}
	inv, err := compactor.LoadInventory(context.Background(), bkt, "team")
	if err != nil {
		t.Fatal(err)
	}
	levels, _ := compactor.LevelsFor(2 * time.Hour)
	if holes := compactor.Holes(inv, levels, 4*time.Hour, compactor.DefaultRetention, d.end.Add(5*time.Hour)); len(holes) > 0 {
		t.Errorf("%d blocks not downsampled, first %s", len(holes), holes[0].Block.ULID)
	}
	q := newQuerier(t, bkt)
	for _, res := range []int64{blockmeta.Res1m, blockmeta.Res1h} {
		compareAnswers(t, "resolution "+resName(res), answers(t, q, qFrom, qTo, res), want)
	}
}

func resName(res int64) string { return (time.Duration(res) * time.Millisecond).String() }

// TestRetentionWaitsForCoarserResolutions starts from a bucket as releases
// before this one left it: nine days of raw blocks, none downsampled, one
// of them already marked for deletion by retention. The next run takes the
// mark back, writes the missing 1m and 1h blocks before anything is
// deleted, and only then lets retention mark raw data past 7 days.
func TestRetentionWaitsForCoarserResolutions(t *testing.T) {
	bkt := fsBucket(t)
	d := newTestData()
	ctx := context.Background()
	from := d.end.Add(-9 * day).Add(3 * time.Minute)
	headWrite(t, bkt, "team", d, from, d.end, scrapePhase, nil)
	qFrom, qTo := from.Truncate(time.Hour).Add(2*time.Hour), d.end.Add(-time.Hour)
	want := answers(t, newQuerier(t, bkt), qFrom, qTo, 0)

	now := d.end.Add(5 * time.Hour)
	inv, err := compactor.LoadInventory(ctx, bkt, "team")
	if err != nil {
		t.Fatal(err)
	}
	var oldest *blockmeta.Meta
	for _, m := range inv.Live {
		if oldest == nil || m.MinTime < oldest.MinTime {
			oldest = m
		}
	}
	mark := `{"id":"` + oldest.ULID.String() + `","deletion_time":` + itoa(now.Add(-10*time.Minute).Unix()) + `,"reason":"retention","version":1}`
	if err := bkt.Upload(ctx, path.Join("team", oldest.ULID.String(), compactor.DeletionMarkFile), strings.NewReader(mark)); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	run := newRunner(t, bkt, compactor.DefaultRetention, reg)
	run(now)
	if got := testutil.Metric(t, reg, "strata_compactor_blocks_unmarked_total"); got != 1 {
		t.Errorf("strata_compactor_blocks_unmarked_total = %v, want 1 (the block marked before its data was downsampled)", got)
	}
	if got := testutil.Metric(t, reg, "strata_compactor_blocks_retention_held"); got != 0 {
		t.Errorf("strata_compactor_blocks_retention_held = %v after downsampling everything, want 0", got)
	}
	inv, err = compactor.LoadInventory(ctx, bkt, "team")
	if err != nil {
		t.Fatal(err)
	}
	held := map[int64]map[string]bool{}
	for _, m := range inv.Live {
		if held[m.Resolution()] == nil {
			held[m.Resolution()] = map[string]bool{}
		}
		for _, s := range m.Compaction.Sources {
			held[m.Resolution()][s.String()] = true
		}
	}
	rawMarked := 0
	for u, m := range inv.MarkedMeta {
		if m.Resolution() != blockmeta.ResRaw || inv.Marks[u].Reason != "retention" {
			continue
		}
		rawMarked++
		for _, s := range m.Compaction.Sources {
			if !held[blockmeta.Res1m][s.String()] || !held[blockmeta.Res1h][s.String()] {
				t.Errorf("raw block %s marked for retention while its source %s is not held at 1m and 1h", u, s)
			}
		}
	}
	if rawMarked < 2 {
		t.Errorf("%d raw blocks marked for retention, want the days older than 7 days", rawMarked)
	}
	levels, _ := compactor.LevelsFor(2 * time.Hour)
	if holes := compactor.Holes(inv, levels, 4*time.Hour, compactor.DefaultRetention, now); len(holes) > 0 {
		t.Errorf("%d blocks not downsampled, first %s", len(holes), holes[0].Block.ULID)
	}
	run(now.Add(2 * time.Hour)) // past the deletion delay
	compareAnswers(t, "after retention", answers(t, newQuerier(t, bkt), qFrom, qTo, -1), want)
}

// TestLateDataAfterRetention writes a day, lets its raw data be downsampled
// and deleted, then writes late samples of the same day (a backfill, or an
// out-of-order block shipped late): they are downsampled and added to the
// day's 1m and 1h blocks, which then answer as the raw data of both would.
func TestLateDataAfterRetention(t *testing.T) {
	bkt, ref := fsBucket(t), fsBucket(t)
	d := newTestData()
	from, to := d.end.Add(-day), d.end
	lateFrom, lateTo := from.Add(5*time.Hour), from.Add(9*time.Hour)
	late := 23 * time.Second // between the day's samples
	for _, b := range []objstore.Bucket{bkt, ref} {
		headWrite(t, b, "team", d, from, to, scrapePhase, nil)
	}
	headWrite(t, ref, "team", d, lateFrom, lateTo, late, nil)

	now := d.end.Add(10 * day)
	run := newRunner(t, bkt, compactor.DefaultRetention, nil)
	run(now)
	run(now.Add(2 * time.Hour))
	for _, m := range indexOf(t, bkt, "team").Blocks {
		if m.Resolution() == blockmeta.ResRaw {
			t.Fatalf("raw block %s past retention left", m.ULID)
		}
	}
	headWrite(t, bkt, "team", d, lateFrom, lateTo, late, nil)
	run(now.Add(4 * time.Hour))
	run(now.Add(6 * time.Hour))
	byRes := map[int64]int{}
	for _, m := range indexOf(t, bkt, "team").Blocks {
		byRes[m.Resolution()]++
	}
	if byRes[blockmeta.Res1m] != 1 || byRes[blockmeta.Res1h] != 1 || len(byRes) != 2 {
		t.Errorf("blocks by resolution %v, want the day's 1m and 1h blocks, merged with the late ones", byRes)
	}
	qFrom, qTo := from.Add(time.Hour), to.Add(-time.Hour)
	want := answers(t, newQuerier(t, ref), qFrom, qTo, 0)
	q := newQuerier(t, bkt)
	for _, res := range []int64{blockmeta.Res1m, blockmeta.Res1h} {
		got := answers(t, q, qFrom, qTo, res)
		for _, c := range comparisons[:6] { // counts, extremes, sums: rates of two interleaved scrapes are not a counter's
			compare(t, resName(res)+": "+c.query, got[c.query], want[c.query], c.tol)
		}
	}
}

// slowBucket makes every upload take a while, as a large block's does.
type slowBucket struct {
	objstore.Bucket
	delay   time.Duration
	uploads atomic.Int64
}

func (b *slowBucket) Upload(ctx context.Context, name string, r io.Reader) error {
	if strings.Contains(name, "/chunks/") {
		b.uploads.Add(1)
		select {
		case <-time.After(b.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Bucket.Upload(ctx, name, r)
}

// TestLeaseOutlivesLongRuns runs a compaction much longer than its lock's
// TTL: the run renews the lock, finishes, and another compactor trying the
// tenant meanwhile is turned away.
func TestLeaseOutlivesLongRuns(t *testing.T) {
	fs := fsBucket(t)
	d := newTestData()
	d.backfill(t, fs, "team", d.end.Add(-day), d.end, 2*time.Hour)
	bkt := &slowBucket{Bucket: fs, delay: 150 * time.Millisecond}
	newC := func(owner string) *compactor.Compactor {
		c, err := compactor.New(compactor.Options{Bucket: bkt, Dir: t.TempDir(), Owner: owner, LockTTL: 400 * time.Millisecond,
			Now: time.Now, Retention: func(string) compactor.Retention { return compactor.Retention{} }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	done := make(chan error, 1)
	go func() { done <- newC("long").CompactTenant(context.Background(), "team") }()
	// Once the long run has uploaded something, its lock is held.
	for bkt.uploads.Load() == 0 {
		select {
		case err := <-done:
			t.Fatalf("the run ended before uploading anything: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := newC("other").CompactTenant(context.Background(), "team"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a run longer than the lock's TTL failed: %v", err)
	}
	if n := bkt.uploads.Load(); n < 4 {
		t.Fatalf("%d chunk uploads: the run did not outlast the lock's TTL", n)
	}
	ix := indexOf(t, fs, "team")
	if got := countBlocks(ix); got["0s/24h0m0s"] != 1 || got["1m0s/24h0m0s"] != 1 || got["1h0m0s/24h0m0s"] != 1 {
		t.Fatalf("blocks %v: the other compactor wrote too, or the run did not finish", got)
	}
}

// TestLeaseLostStopsRun takes the lock from a run: it stops before its
// next change of the bucket.
func TestLeaseLostStopsRun(t *testing.T) {
	fs := fsBucket(t)
	d := newTestData()
	d.backfill(t, fs, "team", d.end.Add(-day), d.end, 2*time.Hour)
	bkt := &stealingBucket{Bucket: fs}
	c, err := compactor.New(compactor.Options{Bucket: bkt, Dir: t.TempDir(), Owner: "me", Now: func() time.Time { return d.end.Add(5 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	err = c.CompactTenant(context.Background(), "team")
	if err == nil || !strings.Contains(err.Error(), "compaction lock lost") {
		t.Fatalf("run after its lock was taken: %v, want it stopped for the lost lock", err)
	}
	inv, err := compactor.LoadInventory(context.Background(), fs, "team")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Marks) != 0 {
		t.Fatalf("%d blocks marked by a run that had lost its lock", len(inv.Marks))
	}
}

// stealingBucket hands the tenant's lock to another owner, with a long
// expiry, as soon as the run has written the first object of a merged block.
type stealingBucket struct {
	objstore.Bucket
	stolen atomic.Bool
}

func (b *stealingBucket) Upload(ctx context.Context, name string, r io.Reader) error {
	if err := b.Bucket.Upload(ctx, name, r); err != nil {
		return err
	}
	if strings.Contains(name, "/chunks/") && !b.stolen.Swap(true) {
		lock := `{"owner":"thief","expires":` + itoa(time.Now().Add(24*365*time.Hour).UnixMilli()) + `}`
		return b.Bucket.Upload(ctx, "team/compactor-lock.json", bytes.NewReader([]byte(lock)))
	}
	return nil
}

// TestDataWrittenAgainCountsOnce: a tenant's blocks may hold the same
// samples twice (a WAL replayed after a crash, a backfill resent after its
// answer was lost). A day of history older than raw and 1m retention is
// downsampled; then part of it arrives again. Within the retention grace
// the raw blocks are still there, so the repeated samples are merged with
// them and counted once in the 1h aggregates (added to them they would be
// counted twice); once the grace has passed, raw data goes as retention
// says.
func TestDataWrittenAgainCountsOnce(t *testing.T) {
	bkt, ref := fsBucket(t), fsBucket(t)
	d := newTestData()
	from, to := d.end.Add(-day), d.end
	headWrite(t, bkt, "team", d, from, to, scrapePhase, nil)
	headWrite(t, ref, "team", d, from, to, scrapePhase, nil)

	reg := prometheus.NewRegistry()
	var at time.Time
	c, err := compactor.New(compactor.Options{
		Bucket: bkt, Dir: t.TempDir(), Registerer: reg, Now: func() time.Time { return at },
		RetentionGrace: time.Hour, // blocks' sources are cut now, in real time
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run := func(after time.Duration) {
		t.Helper()
		at = start.Add(after)
		if err := c.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	byRes := func() map[int64]int {
		n := map[int64]int{}
		for _, m := range indexOf(t, bkt, "team").Blocks {
			n[m.Resolution()]++
		}
		return n
	}
	run(0)
	run(time.Minute)
	if n := byRes(); n[blockmeta.ResRaw] != 1 || n[blockmeta.Res1h] != 1 {
		t.Fatalf("blocks by resolution %v, want the day's raw block kept in the grace beside its 1h block", n)
	}
	if g := testutil.RequireMetric(t, reg, "strata_compactor_blocks_retention_grace"); g != 1 {
		t.Errorf("strata_compactor_blocks_retention_grace = %v, want 1", g)
	}

	headWrite(t, bkt, "team", d, from.Add(5*time.Hour), from.Add(9*time.Hour), scrapePhase, nil)
	for _, after := range []time.Duration{2 * time.Minute, 3 * time.Minute, 2 * time.Hour, 4 * time.Hour, 6 * time.Hour} {
		run(after)
	}
	if n := byRes(); n[blockmeta.ResRaw] != 0 || n[blockmeta.Res1h] != 1 || len(n) != 1 {
		t.Errorf("blocks by resolution %v after the grace, want the day's 1h block only", n)
	}
	qFrom, qTo := from.Add(time.Hour), to.Add(-time.Hour)
	want := answers(t, newQuerier(t, ref), qFrom, qTo, 0)
	got := answers(t, newQuerier(t, bkt), qFrom, qTo, blockmeta.Res1h)
	for _, c := range comparisons[:7] { // counts, extremes, sums, means
		compare(t, "1h: "+c.query, got[c.query], want[c.query], c.tol)
	}
}
