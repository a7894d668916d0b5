package promqlengine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
)

// TestParsedOnce: a range query that is sharded and pushed down, an
// instant query and a query falling back from pushdown are each parsed
// once: resolution choice, pushdown, sharding and the upstream engines use
// that parse.
func TestParsedOnce(t *testing.T) {
	st := promqltest.LoadedStorage(t, "load 15s\n  c{i=\"a\"} 0+1x100\n  c{i=\"b\"} 0+2x100\n  h{i=\"a\"} {{schema:0 sum:1 count:1}}x100\n")
	e, err := New(Options{Timeout: time.Minute, MaxSamples: 1e8, LookbackDelta: 5 * time.Minute, Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	start, end, step := time.Unix(0, 0), time.Unix(20*60, 0), 30*time.Second
	ctx := context.Background()
	for _, tc := range []struct {
		qs      string
		instant bool
	}{
		{`sum by (i) (rate(c[5m]))`, false}, // sharded, pushed down
		{`rate(h[5m])`, false},              // pushed down, falls back (histograms)
		{`count(c) + sum(rate(c[1m]))`, false},
		{`sum by (i) (rate(c[5m]))`, true},
	} {
		before, missed := e.parsed.parses.Load(), e.parsed.misses.Load()
		var q promql.Query
		if tc.instant {
			q, err = e.NewInstantQuery(ctx, st, nil, tc.qs, end)
		} else {
			q, err = e.NewRangeQuery(ctx, st, nil, tc.qs, start, end, step)
		}
		if err != nil {
			t.Fatal(err)
		}
		if r := q.Exec(ctx); r.Err != nil {
			t.Fatalf("%s: %v", tc.qs, r.Err)
		}
		q.Close()
		if n := e.parsed.parses.Load() - before; n != 1 {
			t.Errorf("%s: parsed %d times, want once", tc.qs, n)
		}
		if n := e.parsed.misses.Load() - missed; n != 0 {
			t.Errorf("%s: the upstream engines parsed it %d more times", tc.qs, n)
		}
	}
	if len(e.parsed.m) != 0 {
		t.Errorf("%d parses kept after their queries closed", len(e.parsed.m))
	}
}

// TestQueryTooLarge: queries too long or nested too deep are refused
// unparsed, at once, whatever their cost to parse; queries within the
// limits are not.
func TestQueryTooLarge(t *testing.T) {
	st := promqltest.LoadedStorage(t, "load 15s\n  up 1\n")
	e, err := New(Options{Timeout: time.Minute, MaxSamples: 1e8, MaxQueryLength: 1 << 16, MaxQueryDepth: 100})
	if err != nil {
		t.Fatal(err)
	}
	nest := func(n int) string { return strings.Repeat("(", n) + "up" + strings.Repeat(")", n) }
	chain := func(n int) string { return "up" + strings.Repeat(" + up", n) }
	calls := func(n int) string { return strings.Repeat("abs(", n) + "up" + strings.Repeat(")", n) }
	for _, tc := range []struct {
		name    string
		qs      string
		refused bool
	}{
		{"30000 parentheses", nest(30000), true}, // over the length limit too
		{"101 parentheses", nest(101), true},
		{"100 parentheses", nest(100), false},
		{"1000 chained additions", chain(1000), true},
		{"99 chained additions", chain(99), false},
		{"101 nested calls", calls(101), true},
		{"selector nested in 99 calls", calls(98), false},
		{"too long", `up{job="` + strings.Repeat("x", 1<<16) + `"}`, true},
		{"a long string within the limit", `up{job="` + strings.Repeat("(", 1<<15) + `"}`, false},
		{"brackets in a comment", "up # " + strings.Repeat("(", 1000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.parsed.parses.Load()
			start := time.Now()
			q, err := e.NewInstantQuery(context.Background(), st, nil, tc.qs, time.Unix(0, 0))
			if tc.refused {
				if !errors.Is(err, errQueryTooLarge) {
					t.Fatalf("error %v, want the query refused as too large", err)
				}
				if e.parsed.parses.Load() != before {
					t.Errorf("the refused query was parsed")
				}
				t.Logf("refused in %s", time.Since(start))
				return
			}
			if err != nil {
				t.Fatalf("error %v, want the query accepted", err)
			}
			q.Close()
		})
	}
}

// TestTimeoutWhileParsing: a query whose deadline has passed when it is
// built is a timeout (503, errorType timeout in the API), not bad data.
func TestTimeoutWhileParsing(t *testing.T) {
	st := promqltest.LoadedStorage(t, "load 15s\n  up 1\n")
	e, err := New(Options{Timeout: time.Minute, MaxSamples: 1e8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = e.NewRangeQuery(ctx, st, nil, "sum(rate(up[5m]))", time.Unix(0, 0), time.Unix(600, 0), time.Minute)
	var timeout promql.ErrQueryTimeout
	if !errors.As(err, &timeout) {
		t.Errorf("error %v, want promql.ErrQueryTimeout", err)
	}
}
