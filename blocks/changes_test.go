package blocks_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/strata-tsdb/strata/blocks"
)

// changeRecorder is a blocks.ChangeObserver keeping what it is told.
type changeRecorder struct {
	mu        sync.Mutex
	committed [][3]any
	bucket    [][3]any
}

func (r *changeRecorder) Committed(tenant string, mint, maxt int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committed = append(r.committed, [3]any{tenant, mint, maxt})
}

func (r *changeRecorder) BucketChanged(tenant string, mint, maxt int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bucket = append(r.bucket, [3]any{tenant, mint, maxt})
}

func (r *changeRecorder) take() (committed, bucket [][3]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	committed, bucket = r.committed, r.bucket
	r.committed, r.bucket = nil, nil
	return committed, bucket
}

// TestChangesReported checks what the store tells its ChangeObserver: each
// commit with its samples' range; blocks entering and leaving the bucket
// view of another process (shipped there, merged and deleted by the
// compactor), with their ranges; and not the blocks it ships itself.
func TestChangesReported(t *testing.T) {
	bkt := bucketKinds["filesystem"](t)
	ctx := context.Background()
	var wrec, rrec changeRecorder
	writer := openBucketStore(t, t.TempDir(), bkt, func(o *blocks.Options) { o.Changes = &wrec })
	defer writer.Close()
	series, _ := writeHours(t, writer.Store, "team-a", 4)
	committed, bucket := wrec.take()
	if len(committed) != 1 || committed[0][0] != "team-a" || len(bucket) != 0 {
		t.Fatalf("after one commit: committed %v, bucket %v; want one commit of team-a", committed, bucket)
	}
	mint, maxt := committed[0][1].(int64), committed[0][2].(int64)
	got := readAll(t, writer.Store, "team-a")
	for _, ls := range series {
		ss := got[ls.String()]
		if ss[0].t != mint || ss[len(ss)-1].t != maxt {
			t.Fatalf("commit reported [%d, %d], the samples span [%d, %d]", mint, maxt, ss[0].t, ss[len(ss)-1].t)
		}
	}
	if err := writer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, bucket := wrec.take(); len(bucket) != 0 {
		t.Errorf("the writer reported the blocks it shipped: %v", bucket)
	}

	reader := openBucketStore(t, t.TempDir(), bkt, func(o *blocks.Options) { o.Changes = &rrec })
	defer reader.Close()
	if err := reader.SyncBucket(ctx); err != nil {
		t.Fatal(err)
	}
	_, bucket = rrec.take()
	old := bucketBlockIDs(t, bkt, "team-a")
	if len(bucket) != len(old) {
		t.Fatalf("the reader's first sync reported %v, want the %d blocks", bucket, len(old))
	}
	covered := func(reports [][3]any) bool {
		for _, r := range reports {
			if r[0] != "team-a" {
				return false
			}
		}
		return slices.ContainsFunc(reports, func(r [3]any) bool { return r[1].(int64) <= mint }) &&
			slices.ContainsFunc(reports, func(r [3]any) bool { return r[2].(int64) >= maxt })
	}
	if !covered(bucket) {
		t.Errorf("first sync reported %v, which does not cover [%d, %d]", bucket, mint, maxt)
	}
	if err := reader.SyncBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if _, bucket := rrec.take(); len(bucket) != 0 {
		t.Errorf("a sync without changes reported %v", bucket)
	}

	// The compactor merges the blocks and deletes them.
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
	if err := reader.SyncBucket(ctx); err != nil {
		t.Fatal(err)
	}
	_, bucket = rrec.take()
	if len(bucket) != len(old)+1 || !covered(bucket) {
		t.Errorf("after the merge: reported %v, want the %d blocks gone and the merged one, covering [%d, %d]", bucket, len(old), mint, maxt)
	}

	// A deletion hides data at once: the process that stores it reports it
	// before answering, another process when it learns of the request.
	m := labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, series[0].Get(labels.MetricName))
	if err := writer.DeleteSeries(ctx, "team-a", mint+1, mint+2, []*labels.Matcher{m}); err != nil {
		t.Fatal(err)
	}
	if _, bucket := wrec.take(); len(bucket) != 1 || bucket[0] != [3]any{"team-a", mint + 1, mint + 2} {
		t.Errorf("after a deletion the writer reported %v, want team-a [%d, %d]", bucket, mint+1, mint+2)
	}
	if err := reader.SyncBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if _, bucket := rrec.take(); len(bucket) != 1 || bucket[0] != [3]any{"team-a", mint + 1, mint + 2} {
		t.Errorf("after another process's deletion the reader reported %v, want team-a [%d, %d]", bucket, mint+1, mint+2)
	}
}
