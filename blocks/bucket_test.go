package blocks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/filesystem"
	"github.com/strata-tsdb/strata/objstore/miniotest"
)

// bucketKinds are the buckets the store's bucket tests run against.
var bucketKinds = map[string]func(t *testing.T) objstore.Bucket{
	"filesystem": func(t *testing.T) objstore.Bucket {
		b, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	},
	// A real MinIO server; skipped under -short (make test-unit), a failure
	// when its binary is missing otherwise.
	"minio": func(t *testing.T) objstore.Bucket { return newMinioBucket(t, miniotest.Start(t)) },
}

func newMinioBucket(t *testing.T, srv *miniotest.Server) objstore.Bucket {
	t.Helper()
	cfg := srv.Config()
	cfg.Timeout = model.Duration(5 * time.Second)
	cfg.MaxRetries = 2
	b, err := objstore.New(context.Background(), cfg, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type bucketStore struct {
	*blocks.Store
	reg *prometheus.Registry
}

func openBucketStore(t *testing.T, dir string, bkt objstore.Bucket, mod func(*blocks.Options)) bucketStore {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := blocks.Options{
		Dir:              dir,
		OutOfOrderWindow: 10 * time.Minute,
		BlockDuration:    2 * time.Hour,
		Retention:        time.Hour,
		Bucket:           bkt,
		Registerer:       reg,
	}
	if mod != nil {
		mod(&o)
	}
	s, err := blocks.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return bucketStore{s, reg}
}

// writeHours appends hours of 15s samples ending now for a few series of tenant id.
func writeHours(t *testing.T, s *blocks.Store, id string, hours int) (series []labels.Labels, n int) {
	t.Helper()
	end := time.Now().Truncate(15 * time.Second)
	start := end.Add(-time.Duration(hours) * time.Hour)
	app, err := s.Appender(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		ls := labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", fmt.Sprint(i), "mode", "idle")
		series = append(series, ls)
		var ref storage.SeriesRef
		v := 0.0
		for ts := start; !ts.After(end); ts = ts.Add(15 * time.Second) {
			v += float64(i + 1)
			if ref, err = app.Append(ref, ls, 0, ts.UnixMilli(), v, nil, nil, storage.AppendV2Options{}); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return series, n
}

func countSamples(all map[string][]sample) int {
	n := 0
	for _, ss := range all {
		n += len(ss)
	}
	return n
}

// equalSamples fails unless got holds the same series and samples as want.
func equalSamples[S comparable](t *testing.T, what string, got, want map[string][]S) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d series, want %d", what, len(got), len(want))
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			t.Fatalf("%s: series %s has %d samples, want %d", what, k, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("%s: series %s sample %d = %v, want %v", what, k, i, g[i], w[i])
			}
		}
	}
}

// bucketBlocks lists the block directories of tenant id in the bucket that have meta.json.
func bucketBlockIDs(t *testing.T, bkt objstore.Bucket, id string) []string {
	t.Helper()
	var out []string
	err := bkt.Iter(context.Background(), id+"/", func(name string) error {
		ok, err := bkt.Exists(context.Background(), name+"meta.json")
		if ok {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(name, id+"/"), "/"))
		}
		return err
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// localBlockDirs lists the block directories in a tenant's local TSDB.
func localBlockDirs(t *testing.T, dir, id string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "tenants", id))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && len(e.Name()) == 26 {
			out = append(out, e.Name())
		}
	}
	return out
}

// forEachBucket runs f as a subtest over each kind of bucket: the
// filesystem, and a real MinIO server (skipped under -short).
func forEachBucket(t *testing.T, f func(t *testing.T, bkt objstore.Bucket)) {
	for kind, newBucket := range bucketKinds {
		t.Run(kind, func(t *testing.T) {
			if kind == "minio" && testing.Short() {
				t.Skip("needs a MinIO server")
			}
			f(t, newBucket(t))
		})
	}
}

func TestShipAndQueryFromBucket(t *testing.T) {
	forEachBucket(t, func(t *testing.T, bkt objstore.Bucket) {
		dir := t.TempDir()
		s := openBucketStore(t, dir, bkt, nil)
		_, n := writeHours(t, s.Store, "team-a", 6)
		before := readAll(t, s.Store, "team-a")
		evalEnd := time.Now().Truncate(time.Minute) // fixed: answers must be comparable
		answers := promqlAnswers(t, s.Store, "team-a", evalEnd)
		if got := countSamples(before); got != n {
			t.Fatalf("head holds %d samples, wrote %d", got, n)
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatalf("flush: %v", err)
		}
		shipped := bucketBlockIDs(t, bkt, "team-a")
		if len(shipped) < 3 {
			t.Fatalf("6h of data shipped as %d blocks, want at least 3 (2h each)", len(shipped))
		}
		if got := testutil.ToFloat64(s.m("strata_shipper_pending_blocks")); got != 0 {
			t.Fatalf("pending blocks after flush = %v", got)
		}
		equalSamples(t, "after flush", readAll(t, s.Store, "team-a"), before)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		// Disaster 1: the local blocks are lost, the WAL survives.
		for _, b := range localBlockDirs(t, dir, "team-a") {
			if err := os.RemoveAll(filepath.Join(dir, "tenants", "team-a", b)); err != nil {
				t.Fatal(err)
			}
		}
		s = openBucketStore(t, dir, bkt, nil)
		if err := s.SyncBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		equalSamples(t, "without local blocks", readAll(t, s.Store, "team-a"), before)
		equalAnswers(t, "without local blocks", promqlAnswers(t, s.Store, "team-a", evalEnd), answers)
		// Nothing is shipped twice after the restart.
		if err := s.Ship(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := bucketBlockIDs(t, bkt, "team-a"); len(got) != len(shipped) {
			t.Fatalf("bucket holds %d blocks after restart, want %d", len(got), len(shipped))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		// Disaster 2: the whole data directory is lost after a flush.
		dir2 := t.TempDir()
		s = openBucketStore(t, dir2, bkt, nil)
		defer s.Close()
		if err := s.SyncBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		equalSamples(t, "from the bucket alone", readAll(t, s.Store, "team-a"), before)
		equalAnswers(t, "from the bucket alone", promqlAnswers(t, s.Store, "team-a", evalEnd), answers)
		if got := testutil.ToFloat64(s.m("strata_block_cache_misses_total")); got < float64(len(shipped)) {
			t.Fatalf("cache misses = %v, want >= %d (every block downloaded)", got, len(shipped))
		}
		equalSamples(t, "from the cache", readAll(t, s.Store, "team-a"), before)
		if got := testutil.ToFloat64(s.m("strata_block_cache_hits_total")); got < float64(len(shipped)) {
			t.Fatalf("cache hits = %v, want >= %d on the second read", got, len(shipped))
		}
	})
}

// m returns the store's metric name, summed over all its series.
func (s bucketStore) m(name string) prometheus.Collector {
	return metricByName{s.reg, name}
}

// metricByName is a collector that re-exposes one metric family of a
// registry as a single sum; an absent family reads as 0.
type metricByName struct {
	g    prometheus.Gatherer
	name string
}

func (m metricByName) Describe(chan<- *prometheus.Desc) {}
func (m metricByName) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := m.g.Gather()
	for _, mf := range mfs {
		if mf.GetName() != m.name {
			continue
		}
		v := 0.0
		for _, metric := range mf.Metric {
			v += metric.GetGauge().GetValue() + metric.GetCounter().GetValue()
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(m.name, "sum", nil, nil), prometheus.UntypedValue, v)
		return
	}
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(m.name, "sum", nil, nil), prometheus.UntypedValue, 0)
}

func TestShippedRecordLostDoesNotReupload(t *testing.T) {
	bkt := &countingBucket{Bucket: bucketKinds["filesystem"](t)}
	dir := t.TempDir()
	s := openBucketStore(t, dir, bkt, nil)
	writeHours(t, s.Store, "t", 4)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	uploads := bkt.uploads.Load()
	if uploads == 0 {
		t.Fatal("nothing uploaded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "tenants", "t", "shipped.json")); err != nil {
		t.Fatal(err)
	}
	s = openBucketStore(t, dir, bkt, nil)
	defer s.Close()
	if err := s.Ship(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := bkt.uploads.Load(); got != uploads {
		t.Fatalf("%d uploads after the record was lost, want none", got-uploads)
	}
}

// countingBucket counts uploads and fails them while failing is set.
type countingBucket struct {
	objstore.Bucket
	uploads atomic.Int64
	failing atomic.Bool
}

var errBucketDown = errors.New("bucket unreachable")

func (b *countingBucket) Upload(ctx context.Context, name string, r io.Reader) error {
	if b.failing.Load() {
		return errBucketDown
	}
	b.uploads.Add(1)
	return b.Bucket.Upload(ctx, name, r)
}

func (b *countingBucket) Exists(ctx context.Context, name string) (bool, error) {
	if b.failing.Load() {
		return false, errBucketDown
	}
	return b.Bucket.Exists(ctx, name)
}

func TestBucketOutageKeepsBlocksUntilShipped(t *testing.T) {
	bkt := &countingBucket{Bucket: bucketKinds["filesystem"](t)}
	bkt.failing.Store(true)
	dir := t.TempDir()
	// Retention 0: every block is past retention at once, so only the
	// shipped check keeps unshipped blocks on disk.
	s := openBucketStore(t, dir, bkt, func(o *blocks.Options) { o.Retention = time.Nanosecond })
	defer s.Close()
	_, n := writeHours(t, s.Store, "t", 5)
	if err := s.Flush(context.Background()); !errors.Is(err, errBucketDown) {
		t.Fatalf("flush with the bucket down: err = %v, want %v", err, errBucketDown)
	}
	pending := testutil.ToFloat64(s.m("strata_shipper_pending_blocks"))
	if pending < 3 {
		t.Fatalf("pending blocks = %v, want >= 3", pending)
	}
	if testutil.ToFloat64(s.m("strata_shipper_upload_failures_total")) == 0 {
		t.Fatal("upload failure not counted")
	}
	// Let the TSDB apply retention: nothing may be deleted.
	if err := s.DB("t").Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countSamples(readAll(t, s.Store, "t")); got != n {
		t.Fatalf("during the outage %d samples are queryable, want %d", got, n)
	}
	// Writes still succeed during the outage.
	writeHours(t, s.Store, "t2", 1)

	bkt.failing.Store(false)
	if err := s.Ship(context.Background()); err != nil {
		t.Fatalf("ship after the outage: %v", err)
	}
	if got := testutil.ToFloat64(s.m("strata_shipper_pending_blocks")); got != 0 {
		t.Fatalf("pending blocks after recovery = %v", got)
	}
	if got := len(bucketBlockIDs(t, bkt, "t")); got < 3 {
		t.Fatalf("bucket holds %d blocks after recovery", got)
	}
	// Shipped and past retention: now the local copies may go, and the
	// data is still served, from the bucket.
	if err := s.DB("t").Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countSamples(readAll(t, s.Store, "t")); got != n {
		t.Fatalf("after recovery %d samples are queryable, want %d", got, n)
	}
}

func TestBlockCacheStaysWithinLimit(t *testing.T) {
	bkt := bucketKinds["filesystem"](t)
	s := openBucketStore(t, t.TempDir(), bkt, nil)
	writeHours(t, s.Store, "t", 6)
	want := readAll(t, s.Store, "t")
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A fresh store with a cache that holds about one block.
	s = openBucketStore(t, t.TempDir(), bkt, func(o *blocks.Options) { o.CacheMaxBytes = 1 })
	defer s.Close()
	if err := s.SyncBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		equalSamples(t, "through a tiny cache", readAll(t, s.Store, "t"), want)
		if got := testutil.ToFloat64(s.m("strata_block_cache_size_bytes")); got != 0 {
			t.Fatalf("cache holds %v bytes after the query, want 0 (limit 1 byte, nothing in use)", got)
		}
	}
	if got := testutil.ToFloat64(s.m("strata_block_cache_evictions_total")); got == 0 {
		t.Fatal("no evictions")
	}
}

// TestMinioOutage stops a real MinIO while blocks are being shipped:
// ingestion and queries go on, the backlog shows in the metrics, and when
// MinIO is back the backlog drains and every sample is in the bucket.
func TestMinioOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a MinIO server")
	}
	srv := miniotest.Start(t)
	bkt := newMinioBucket(t, srv)
	dir := t.TempDir()
	s := openBucketStore(t, dir, bkt, func(o *blocks.Options) { o.Retention = time.Nanosecond })
	_, n := writeHours(t, s.Store, "t", 5)

	srv.Stop()
	if err := s.Flush(context.Background()); err == nil {
		t.Fatal("flush succeeded with MinIO stopped")
	}
	if got := testutil.ToFloat64(s.m("strata_shipper_pending_blocks")); got < 3 {
		t.Fatalf("backlog = %v blocks, want >= 3", got)
	}
	_, n2 := writeHours(t, s.Store, "t2", 1) // ingestion goes on
	if got := countSamples(readAll(t, s.Store, "t")); got != n {
		t.Fatalf("during the outage %d samples queryable, want %d", got, n)
	}

	srv.Restart()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatalf("flush after MinIO returned: %v", err)
	}
	if got := testutil.ToFloat64(s.m("strata_shipper_pending_blocks")); got != 0 {
		t.Fatalf("backlog after recovery = %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything is in the bucket: a new store with an empty disk serves it.
	s = openBucketStore(t, t.TempDir(), bkt, nil)
	defer s.Close()
	if err := s.SyncBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countSamples(readAll(t, s.Store, "t")); got != n {
		t.Fatalf("from the bucket: %d samples of tenant t, want %d", got, n)
	}
	if got := countSamples(readAll(t, s.Store, "t2")); got != n2 {
		t.Fatalf("from the bucket: %d samples of tenant t2, want %d", got, n2)
	}
}

// TestQueriesSurviveBlocksReplaced replaces a tenant's blocks in the bucket
// behind a store's back, as a compactor does (a merged copy uploaded, the
// originals deleted), so that the store's view still names deleted blocks:
// the next query reads the replacement instead of failing, and the view
// lets go of the deleted blocks, whichever way they entered it.
func TestQueriesSurviveBlocksReplaced(t *testing.T) {
	bkt := bucketKinds["filesystem"](t)
	ctx := context.Background()
	writer := openBucketStore(t, t.TempDir(), bkt, nil)
	defer writer.Close()
	writeHours(t, writer.Store, "team-a", 4)
	want := readAll(t, writer.Store, "team-a")
	if err := writer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reader := openBucketStore(t, t.TempDir(), bkt, nil)
	defer reader.Close()
	if err := reader.SyncBucket(ctx); err != nil {
		t.Fatal(err)
	}
	equalSamples(t, "before", readAll(t, reader.Store, "team-a"), want)

	// The compactor's work: every block merged into one, then deleted.
	old := bucketBlockIDs(t, bkt, "team-a")
	mergeBlocks(t, bkt, "team-a", old)
	for _, id := range old {
		var names []string
		if err := bkt.Iter(ctx, "team-a/"+id+"/", func(n string) error { names = append(names, n); return nil }, true); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := bkt.Delete(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The reader's view (listed) and the writer's (shipped, added) still
	// name the deleted blocks; the writer also has them locally.
	equalSamples(t, "after the blocks were replaced", readAll(t, reader.Store, "team-a"), want)
	if err := writer.SyncBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(writer.m("strata_bucket_blocks")); got != 1 {
		t.Fatalf("the writer's view holds %v blocks after a sync, want the merged one", got)
	}
}

// mergeBlocks downloads the tenant's blocks ids, merges them with TSDB's
// compactor and uploads the result, its sources named as the compactor
// names them.
func mergeBlocks(t *testing.T, bkt objstore.Bucket, id string, ids []string) {
	t.Helper()
	ctx := context.Background()
	work := t.TempDir()
	var dirs []string
	for _, b := range ids {
		dir := filepath.Join(work, b)
		if err := blockmeta.Download(ctx, bkt, id, ulid.MustParse(b), dir); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	comp, err := tsdb.NewLeveledCompactor(ctx, nil, slog.New(slog.DiscardHandler), []int64{(2 * time.Hour).Milliseconds()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "out")
	merged, err := comp.Compact(out, dirs, nil)
	if err != nil || len(merged) != 1 {
		t.Fatalf("merge: %v, %d blocks", err, len(merged))
	}
	m, err := blockmeta.ReadDir(filepath.Join(out, merged[0].String()))
	if err != nil {
		t.Fatal(err)
	}
	m.Strata = &blockmeta.Ext{Source: blockmeta.SourceCompactor}
	if err := blockmeta.Upload(ctx, bkt, id, filepath.Join(out, merged[0].String()), m); err != nil {
		t.Fatal(err)
	}
}

// TestRestartDoesNotShipTwice writes data older than the local retention,
// ships it, and restarts twice: the blocks are deleted locally, but the
// WAL still holds their samples (a quiet tenant's only segment is never
// checkpointed). The restarted head must not take them again, or they are
// cut and shipped a second time under new block IDs, and queries of the
// downsampled data count them twice.
func TestRestartDoesNotShipTwice(t *testing.T) {
	bkt := bucketKinds["filesystem"](t)
	ctx := context.Background()
	dir := t.TempDir()
	open := func() bucketStore {
		return openBucketStore(t, dir, bkt, func(o *blocks.Options) { o.Retention = time.Hour })
	}
	s := open()
	app, err := s.Appender(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(-48 * time.Hour)
	ls := labels.FromStrings("__name__", "up", "job", "a")
	for ts := end.Add(-10 * time.Hour); ts.Before(end); ts = ts.Add(time.Minute) {
		if _, err := app.Append(0, ls, 0, ts.UnixMilli(), 1, nil, nil, storage.AppendV2Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	shipped := bucketBlockIDs(t, bkt, "team")
	want := readAll(t, s.Store, "team")
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open() // deletes the shipped blocks past the local retention
		if err := s.SyncBucket(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	defer s.Close()
	if got := bucketBlockIDs(t, bkt, "team"); len(got) != len(shipped) {
		t.Fatalf("the bucket holds %d blocks after restarts, %d before: the WAL's samples were shipped again", len(got), len(shipped))
	}
	if n := len(localBlockDirs(t, dir, "team")); n != 1 {
		t.Errorf("%d local blocks kept past the local retention, want the newest one only", n)
	}
	equalSamples(t, "after restarts", readAll(t, s.Store, "team"), want)
}
