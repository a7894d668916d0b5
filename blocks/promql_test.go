package blocks_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/tenant"
)

// promqlStorage presents one tenant of a Strata store as a storage.Storage,
// the shape promqltest loads data into. Reads go through the store's
// tenant-resolving queryable with the tenant put into each call's context,
// as the HTTP API's middleware does.
type promqlStorage struct {
	store *blocks.Store
	id    string
}

func (s promqlStorage) ctx(ctx context.Context) context.Context { return tenant.WithID(ctx, s.id) }

func (s promqlStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.store.Queryable().Querier(mint, maxt)
	return tenantCtxQuerier{q, s}, err
}

func (s promqlStorage) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := s.store.Queryable().ChunkQuerier(mint, maxt)
	return tenantCtxChunkQuerier{q, s}, err
}

func (s promqlStorage) Appender(ctx context.Context) storage.Appender {
	app, err := s.store.Appender(s.ctx(ctx), s.id)
	if err != nil {
		panic(err)
	}
	_ = app.Rollback()
	return s.store.DB(s.id).Appender(ctx)
}

func (s promqlStorage) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return s.store.AppenderV2(s.ctx(ctx))
}

func (s promqlStorage) StartTime() (int64, error) { return 0, nil }
func (s promqlStorage) Close() error              { return s.store.Close() }

type tenantCtxQuerier struct {
	storage.Querier
	s promqlStorage
}

func (q tenantCtxQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return q.Querier.Select(q.s.ctx(ctx), sortSeries, hints, ms...)
}

func (q tenantCtxQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.Querier.LabelValues(q.s.ctx(ctx), name, hints, ms...)
}

func (q tenantCtxQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.Querier.LabelNames(q.s.ctx(ctx), hints, ms...)
}

type tenantCtxChunkQuerier struct {
	storage.ChunkQuerier
	s promqlStorage
}

func (q tenantCtxChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return q.ChunkQuerier.Select(q.s.ctx(ctx), sortSeries, hints, ms...)
}

// TestUpstreamPromQLScripts runs Prometheus's own PromQL acceptance scripts
// (promql/promqltest/testdata/*.test) against Strata's store.
func TestUpstreamPromQLScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("upstream PromQL scripts take a while; run without -short")
	}
	engine := promqltest.NewTestEngineWithOpts(t, promql.EngineOpts{
		MaxSamples:               50000000,
		Timeout:                  100 * time.Second,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		LookbackDelta:            5 * time.Minute,
		EnableDelayedNameRemoval: true,
		UseStartTimestamps:       true,
		Parser:                   parser.NewParser(promqltest.TestParserOpts),
	})
	promqltest.RunBuiltinTestsWithStorage(t, engine, func(tb testing.TB) storage.Storage {
		store, err := blocks.Open(blocks.Options{
			Dir: tb.TempDir(),
			// The scripts load each series in time order but go back in
			// time between load commands: like upstream's test storage,
			// use a block range long enough to accept that in order, and
			// keep Strata's out-of-order path enabled on top.
			BlockDuration:        24 * time.Hour,
			OutOfOrderWindow:     10 * time.Minute,
			StoreStartTimestamps: true,
		})
		if err != nil {
			tb.Fatal(err)
		}
		return promqlStorage{store: store, id: "promqltest"}
	})
}
