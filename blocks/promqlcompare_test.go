package blocks_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/tenant"
)

// comparedQueries span the whole written range: rates, aggregations,
// *_over_time and raw selection, across block boundaries.
var comparedQueries = []string{
	`node_cpu_seconds_total`,
	`rate(node_cpu_seconds_total[5m])`,
	`sum by (mode) (rate(node_cpu_seconds_total[10m]))`,
	`max_over_time(node_cpu_seconds_total{cpu=~"[0-2]"}[1h])`,
	`increase(node_cpu_seconds_total[3h])`,
	`count by (__name__) ({__name__=~"node_.*"})`,
	`topk(2, node_cpu_seconds_total)`,
}

// promqlAnswers evaluates comparedQueries as range queries over the 7 hours
// before end at a 1m step for tenant id, returning each result's string form.
func promqlAnswers(t *testing.T, s *blocks.Store, id string, end time.Time) []string {
	t.Helper()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	ctx := tenant.WithID(context.Background(), id)
	start := end.Add(-7 * time.Hour)
	var out []string
	for _, q := range comparedQueries {
		qry, err := engine.NewRangeQuery(ctx, s.Queryable(), nil, q, start, end, time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		res := qry.Exec(ctx)
		if res.Err != nil {
			t.Fatalf("%s: %v", q, res.Err)
		}
		out = append(out, res.Value.String())
		qry.Close()
	}
	return out
}

func equalAnswers(t *testing.T, what string, got, want []string) {
	t.Helper()
	for i, q := range comparedQueries {
		if got[i] != want[i] {
			t.Fatalf("%s: %s answers differently:\ngot  %.300s\nwant %.300s", what, q, got[i], want[i])
		}
		if want[i] == "" {
			t.Fatalf("%s: %s answered nothing", what, q)
		}
	}
}
