package promqlengine

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/kahansum"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/tenant"
)

// TestRangeAnswersIndependentOfBlocks: a range query's answer does not
// depend on which blocks its range reads. Five series are written to the
// store in the reverse of their label order, with values whose float sum
// (Kahan's, as PromQL adds) depends on the order they are added in:
// 1.0000000000000002e16 in label order, 1e16 in creation order. Ranges
// over the head alone and over blocks and the head, before and after a
// head compaction, must all add them in label order: the results cache
// joins answers of parts evaluated at different times over different
// ranges. Instant queries keep the storage's order, Prometheus's: the
// head's series in creation order.
func TestRangeAnswersIndependentOfBlocks(t *testing.T) {
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir(), OutOfOrderWindow: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const minute = int64(60000)
	hour := 60 * minute
	end := 5*hour + 7*minute
	values := []float64{-1e32, 1, 1e32, 1e16, 0.3} // of series a to e
	var labelOrder, creationOrder [2]float64       // Kahan sum and compensation
	for i := range values {
		labelOrder[0], labelOrder[1] = kahansum.Inc(values[i], labelOrder[0], labelOrder[1])
		creationOrder[0], creationOrder[1] = kahansum.Inc(values[len(values)-1-i], creationOrder[0], creationOrder[1])
	}
	wantSum := labelOrder[0] + labelOrder[1]
	if wantSum == creationOrder[0]+creationOrder[1] {
		t.Fatalf("the test's values add up to %v in either order", wantSum)
	}
	app, err := store.Appender(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for ts := int64(0); ts <= end; ts += 15000 {
		for i := len(values) - 1; i >= 0; i-- { // e first: the head's postings are in creation order
			ls := labels.FromStrings("__name__", "order", "s", string(rune('a'+i)))
			if _, err := app.Append(0, ls, 0, ts+1234, values[i], nil, nil, storage.AppendV2Options{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}

	e, err := New(Options{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute, Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := tenant.WithID(context.Background(), "t")
	first := map[string]float64{}
	check := func(when string, from, to int64) {
		t.Helper()
		for _, q := range []string{`sum(order)`, `avg(order)`, `sum(max_over_time(order[2m]))`} {
			qry, err := e.NewRangeQuery(ctx, store.Queryable(), nil, q, time.UnixMilli(from), time.UnixMilli(to), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			res := qry.Exec(ctx)
			if res.Err != nil {
				t.Fatalf("%s: %v", q, res.Err)
			}
			mat := res.Value.(promql.Matrix)
			if len(mat) != 1 || len(mat[0].Floats) < int((to-from)/minute) {
				t.Fatalf("%s, %s: answer %v", when, q, mat)
			}
			want, ok := first[q]
			if !ok {
				want = mat[0].Floats[0].F
				first[q] = want
			}
			if q != `avg(order)` && want != wantSum {
				t.Fatalf("%s, %s: %v, want %v (the sum in label order)", when, q, want, wantSum)
			}
			for _, p := range mat[0].Floats {
				if math.Float64bits(p.F) != math.Float64bits(want) {
					t.Fatalf("%s, %s over [%d, %d]: %v at %d, elsewhere %v", when, q, from, to, p.F, p.T, want)
				}
			}
			qry.Close()
		}
	}
	check("head only, the last hour", end-hour, end)
	check("head only, the whole range", 0, end)
	if err := store.DB("t").Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(store.DB("t").Blocks()); n == 0 {
		t.Fatal("no block cut from the head")
	}
	check("the head after a compaction, the last hour", end-hour, end)
	check("blocks and the head", 0, end)

	qry, err := e.NewInstantQuery(ctx, store.Queryable(), nil, `order`, time.UnixMilli(end))
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var got string
	for _, s := range res.Value.(promql.Vector) {
		got += s.Metric.Get("s")
	}
	if got != "edcba" {
		t.Errorf("instant query's series in the order %q, want the head's creation order edcba", got)
	}
}
