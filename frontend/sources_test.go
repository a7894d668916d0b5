package frontend

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

// TestPartsReadSeriesInTheWholeQuerysOrder splits a query whose range reads
// a local block and the head into days, so that the newer day's part reads
// the head alone. The head returns its series in creation order and a read
// of several sources sorted by labels; topk picks among equal values by the
// order it gets series in (as sums round in it). The parts must answer as
// the whole query does.
func TestPartsReadSeriesInTheWholeQuerysOrder(t *testing.T) {
	s, err := blocks.Open(blocks.Options{Dir: t.TempDir(), OutOfOrderWindow: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	eng, err := promqlengine.New(promqlengine.Options{Timeout: time.Minute, MaxSamples: 1e7, LookbackDelta: 5 * time.Minute, Downsampled: s, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	day := now.Truncate(24 * time.Hour).Add(-24 * time.Hour).UnixMilli() // yesterday, 00:00 UTC

	// Created in the reverse of their label order: c, b, a.
	series := []struct {
		ls labels.Labels
		v  float64
	}{
		{labels.FromStrings("__name__", "x", "i", "c"), 2},
		{labels.FromStrings("__name__", "x", "i", "b"), 2},
		{labels.FromStrings("__name__", "x", "i", "a"), 2},
	}
	write := func(from, to int64) {
		t.Helper()
		app, err := s.Appender(context.Background(), "t")
		if err != nil {
			t.Fatal(err)
		}
		for ts := from; ts <= to; ts += 15000 {
			for _, x := range series {
				if _, err := app.Append(0, x.ls, 0, ts+7, x.v, nil, nil, storage.AppendV2Options{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	write(day-4*3600e3, day-2*3600e3-10*60e3)
	if err := s.Flush(context.Background()); err != nil { // the day before into a local block
		t.Fatal(err)
	}
	write(day+10*60e3, day+3*3600e3) // the day itself in the head

	fe, err := New(Options{Config: testConfig(),
		Engine: eng, Parser: eng.Parser, Registerer: prometheus.NewRegistry(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := tenant.WithID(context.Background(), "t")
	q := s.Queryable()
	for _, qs := range []string{`topk(1, x)`, `bottomk(1, x)`, `sum(x)`} {
		start, end := day-3*3600e3, day+2*3600e3
		want := rangeQuery(t, eng, ctx, q, qs, start, end, time.Minute)
		for range 2 { // evaluated, then from the cache
			got := rangeQuery(t, fe, ctx, q, qs, start, end, time.Minute)
			if d := diffResults(qs, want, got); d != "" {
				t.Fatalf("%s: %s", qs, d)
			}
		}
	}
	// The orders differ: the whole query picks the series first in label
	// order in the head's day, a query of that day alone the one created
	// first.
	for _, c := range []struct {
		start int64
		want  string
	}{{day - 3*3600e3, "a"}, {day, "c"}} {
		m := rangeQuery(t, eng, ctx, q, `topk(1, x)`, c.start, day+2*3600e3, time.Minute).Value.(promql.Matrix)
		if got := m[len(m)-1].Metric.Get("i"); got != c.want {
			t.Errorf("topk(1, x) from %d: the last step's series is i=%q, want %q", c.start, got, c.want)
		}
	}
}
