package blocks_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/tenant"
)

// countQueryable counts the samples of tenant id that q's queriers return.
func countQueryable(t *testing.T, q storage.Queryable, id string) int {
	t.Helper()
	qr, err := q.Querier(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	defer qr.Close()
	set := qr.Select(tenant.WithID(context.Background(), id), true, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	n := 0
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			n++
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLocalQueryableAndRecent is an ingester and a querier sharing a
// bucket: the ingester's LocalQueryable serves its head and the blocks it
// shipped less than shippedFor ago, and the querier's store, whose
// Options.Recent reads the ingester, returns every sample once whether the
// ingester still serves a shipped block or not.
func TestLocalQueryableAndRecent(t *testing.T) {
	bkt := bucketKinds["filesystem"](t)
	ing := openBucketStore(t, t.TempDir(), bkt, nil)
	defer ing.Close()
	_, n := writeHours(t, ing.Store, "t", 4)
	if err := ing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// One more sample, in the head only: a flushed head takes samples after
	// its newest.
	appendSamples(t, ing.Store, "t", labels.FromStrings("__name__", "late"), []sample{{time.Now().Add(time.Minute).UnixMilli(), 1}})
	total := n + 1

	for _, tc := range []struct {
		name       string
		shippedFor time.Duration
		local      int // samples the ingester serves
	}{
		{"shipped blocks still served", time.Hour, total},
		{"shipped blocks left out", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := ing.LocalQueryable(tc.shippedFor)
			if got := countQueryable(t, local, "t"); got != tc.local {
				t.Errorf("ingester serves %d samples, want %d", got, tc.local)
			}
			if got := countQueryable(t, ing.Queryable(), "t"); got != total {
				t.Errorf("ingester's own queryable: %d samples, want %d", got, total)
			}
			q := openBucketStore(t, t.TempDir(), bkt, func(o *blocks.Options) {
				o.Recent = func(_ context.Context, _ string, mint, maxt int64) (storage.Querier, error) {
					return local.Querier(mint, maxt)
				}
			})
			defer q.Close()
			if err := q.SyncBucket(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := countQueryable(t, q.Queryable(), "t"); got != total {
				t.Errorf("querier: %d samples, want %d (each once)", got, total)
			}
		})
	}
}
