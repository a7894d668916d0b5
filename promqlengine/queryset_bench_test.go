package promqlengine_test

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/internal/gen"
	"github.com/strata-tsdb/strata/promqlengine"
)

// BenchmarkQuerySet evaluates the strata-bench query set over one hour of
// node-exporter series in a TSDB head, on the engine as Prometheus 3
// configures it ("prometheus") and on Strata's engine ("strata"), over the
// same head. STRATA_BENCH_HOSTS sets the number of hosts (149 series each;
// default 100, about 15k series); STRATA_BENCH_SHARDS sets Strata's parts per
// query (default: one per core). Besides wall time it reports the process's
// CPU time per query, which is what sharding cannot hide.
func BenchmarkQuerySet(b *testing.B) {
	hosts := 100
	if s := os.Getenv("STRATA_BENCH_HOSTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("STRATA_BENCH_HOSTS: %v", err)
		}
		hosts = n
	}
	db, start, end := queryBenchDB(b, hosts)

	upstream := promql.NewEngine(promql.EngineOpts{
		MaxSamples:           50_000_000,
		Timeout:              2 * time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
	strata, err := promqlengine.New(promqlengine.Options{MaxSamples: 50_000_000, Timeout: 2 * time.Minute, Shards: shardsFromEnv()})
	if err != nil {
		b.Fatal(err)
	}
	defer strata.Close()
	engines := []struct {
		name string
		run  func(ctx context.Context, q storage.Queryable, qs string) (promql.Query, error)
	}{
		{"prometheus", func(ctx context.Context, q storage.Queryable, qs string) (promql.Query, error) {
			return upstream.NewRangeQuery(ctx, q, nil, qs, start, end, gen.QueryStep)
		}},
		{"strata", func(ctx context.Context, q storage.Queryable, qs string) (promql.Query, error) {
			return strata.NewRangeQuery(ctx, q, nil, qs, start, end, gen.QueryStep)
		}},
	}
	for qi, qs := range gen.Queries {
		for _, e := range engines {
			b.Run("q"+strconv.Itoa(qi)+"/"+e.name, func(b *testing.B) {
				ctx := context.Background()
				cpu0 := processCPU(b)
				for b.Loop() {
					q, err := e.run(ctx, db, qs)
					if err != nil {
						b.Fatal(err)
					}
					res := q.Exec(ctx)
					if res.Err != nil {
						b.Fatal(res.Err)
					}
					q.Close()
				}
				b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
			})
		}
	}
}

// queryBenchDB returns a TSDB holding an hour of node-exporter data of
// hosts hosts at 15s, in its head, and the range to query.
func queryBenchDB(b *testing.B, hosts int) (*tsdb.DB, time.Time, time.Time) {
	b.Helper()
	opts := tsdb.DefaultOptions()
	db, err := tsdb.Open(b.TempDir(), nil, nil, opts, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	series := gen.NodeExporterSeries(hosts)
	const interval = 15_000
	gen := gen.NewGenerator(series, interval, 1)
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).UnixMilli()
	refs := make([]storage.SeriesRef, len(series))
	const scrapes = 240
	for s := range scrapes {
		t := t0 + int64(s)*interval
		app := db.Appender(context.Background())
		var aerr error
		gen.Next(t, func(i int, v float64) {
			if aerr != nil {
				return
			}
			refs[i], aerr = app.Append(refs[i], series[i].Labels, t, v)
		})
		if aerr != nil {
			b.Fatal(aerr)
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	end := t0 + (scrapes-1)*interval
	return db, time.UnixMilli(t0), time.UnixMilli(end)
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// shardsFromEnv is STRATA_BENCH_SHARDS, or 0 (one part per core).
func shardsFromEnv() int {
	n, _ := strconv.Atoi(os.Getenv("STRATA_BENCH_SHARDS"))
	return n
}
