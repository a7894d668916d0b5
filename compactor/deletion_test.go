package compactor_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/blocks/blockmeta"
	"github.com/strata-tsdb/strata/compactor"
	"github.com/strata-tsdb/strata/tenant"
)

// points returns the sample timestamps of every series the store reads for
// the tenant "team" at max resolution res over [mint, maxt].
func points(t *testing.T, q querier, res int64, mint, maxt int64) map[string][]int64 {
	t.Helper()
	ctx := blockmeta.WithMaxResolution(tenant.WithID(context.Background(), "team"), res)
	sq, err := q.store.Queryable().Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	set := sq.Select(ctx, true, &storage.SelectHints{Start: mint, End: maxt}, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]int64{}
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		var ts []int64
		for it.Next() != chunkenc.ValNone {
			ts = append(ts, it.AtT())
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[s.Labels().String()] = ts
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeletionRewritesEveryResolution deletes two series (a gauge and a
// counter) over whole hours from raw, 1m and 1h blocks: queries leave the
// data out as soon as the request is stored, the compactor rewrites the
// blocks, and the request goes once the deletion delay has passed. Every
// other sample stays.
func TestDeletionRewritesEveryResolution(t *testing.T) {
	bkt := fsBucket(t)
	d := newTestData()
	from, to := d.end.Add(-4*day+3*time.Hour+17*time.Minute), d.end.Add(-day-2*time.Hour)
	headWrite(t, bkt, "team", d, from, to, scrapePhase, nil)
	run := newRunner(t, bkt, compactor.Retention{}, nil)
	now := d.end.Add(5 * time.Hour)
	run(now)

	mint, maxt := from.UnixMilli(), to.UnixMilli()
	resolutions := []int64{blockmeta.ResRaw, blockmeta.Res1m, blockmeta.Res1h}
	before := map[int64]map[string][]int64{}
	q := newQuerier(t, bkt)
	for _, res := range resolutions {
		before[res] = points(t, q, res, mint, maxt)
	}
	delFrom, delTo := d.end.Add(-3*day+5*time.Hour), d.end.Add(-2*day+7*time.Hour)
	dmin, dmax := delFrom.UnixMilli(), delTo.UnixMilli()-1
	deleted := map[string]bool{d.series[1].String(): true, d.series[2].String(): true}
	sel := labels.MustNewMatcher(labels.MatchRegexp, "instance", "host-1|host-2")

	// want is before less the samples of the deleted series whose window
	// meets the deleted range: a downsampled sample stamped t stands for
	// (t-res, t].
	want := func(res int64) map[string][]int64 {
		out := map[string][]int64{}
		for k, ts := range before[res] {
			var keep []int64
			for _, x := range ts {
				if deleted[k] && x >= dmin && x-max(res, 1)+1 <= dmax {
					continue
				}
				keep = append(keep, x)
			}
			out[k] = keep
		}
		return out
	}
	check := func(what string, q querier) {
		t.Helper()
		for _, res := range resolutions {
			gotAll, wantAll := points(t, q, res, mint, maxt), want(res)
			if len(gotAll) != len(wantAll) {
				t.Fatalf("%s, resolution %s: %d series, want %d", what, resName(res), len(gotAll), len(wantAll))
			}
			for k, wts := range wantAll {
				gts := gotAll[k]
				if len(gts) != len(wts) {
					t.Fatalf("%s, resolution %s: %s has %d samples, want %d (%d before)", what, resName(res), k, len(gts), len(wts), len(before[res][k]))
				}
				for i := range wts {
					if gts[i] != wts[i] {
						t.Fatalf("%s, resolution %s: %s sample %d at %d, want %d", what, resName(res), k, i, gts[i], wts[i])
					}
				}
			}
		}
	}
	for k := range deleted {
		for _, res := range resolutions {
			if len(want(res)[k]) == len(before[res][k]) || len(want(res)[k]) == 0 {
				t.Fatalf("the test deletes nothing, or everything, of %s at resolution %s", k, resName(res))
			}
		}
	}

	if err := q.store.DeleteSeries(context.Background(), "team", dmin, dmax, []*labels.Matcher{sel}); err != nil {
		t.Fatal(err)
	}
	check("at once, on the store that took the request", q)
	check("at once, on another store", newQuerier(t, bkt))

	run(now.Add(time.Minute))
	inv, err := compactor.LoadInventory(context.Background(), bkt, "team")
	if err != nil {
		t.Fatal(err)
	}
	rewritten := map[int64]int{}
	for id, m := range inv.Marks {
		if m.Reason == "deleted-series" {
			rewritten[inv.MarkedMeta[id].Resolution()]++
		}
	}
	for _, res := range resolutions {
		if rewritten[res] == 0 {
			t.Errorf("no block of resolution %s rewritten: %v", resName(res), rewritten)
		}
	}
	reqs, err := blockmeta.ReadDeletions(context.Background(), bkt, "team")
	if err != nil || len(reqs) != 1 || reqs[0].DoneAt == 0 {
		t.Fatalf("after the rewrite: requests %+v, %v; want one, done", reqs, err)
	}
	check("after the rewrite", newQuerier(t, bkt))

	// Past the deletion delay the replaced blocks are deleted and the
	// request goes: the data is gone from the bucket itself.
	run(now.Add(2 * time.Hour))
	run(now.Add(4 * time.Hour))
	if reqs, err := blockmeta.ReadDeletions(context.Background(), bkt, "team"); err != nil || len(reqs) != 0 {
		t.Fatalf("past the deletion delay: requests %+v, %v; want none", reqs, err)
	}
	inv, err = compactor.LoadInventory(context.Background(), bkt, "team")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Marks) != 0 {
		t.Errorf("%d blocks still marked", len(inv.Marks))
	}
	check("after the request is gone", newQuerier(t, bkt))
}
