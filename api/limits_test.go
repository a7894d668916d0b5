package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

// blockingQueryable holds every Select of the tenant "slow" until release
// is closed, so that a test can keep queries in flight.
type blockingQueryable struct {
	storage.SampleAndChunkQueryable
	started chan struct{}
	release chan struct{}
}

func (b blockingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := b.SampleAndChunkQueryable.Querier(mint, maxt)
	return blockingQuerier{q, b}, err
}

type blockingQuerier struct {
	storage.Querier
	b blockingQueryable
}

func (q blockingQuerier) Select(ctx context.Context, sorted bool, h *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if id, _ := tenant.FromContext(ctx); id == "slow" {
		q.b.started <- struct{}{}
		select {
		case <-q.b.release:
		case <-ctx.Done():
		}
	}
	return q.Querier.Select(ctx, sorted, h, ms...)
}

// limitsServer is the API served by limitsAPI.
type limitsServer struct {
	*httptest.Server
	bq  blockingQueryable
	reg *prometheus.Registry // the API's metrics
	now time.Time            // the time of the newest samples
}

// limitsAPI serves the API over a real store holding, for tenants "a" and
// "slow", ten series m{i="0".."9"} with a sample every 15s over the last
// hour.
func limitsAPI(t *testing.T, def limits.Limits, overrides string) limitsServer {
	t.Helper()
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	now := time.Now().Truncate(time.Minute)
	for _, id := range []string{"a", "slow"} {
		app, err := store.Appender(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			ls := labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
			for ts := now.Add(-time.Hour); !ts.After(now); ts = ts.Add(15 * time.Second) {
				if _, err := app.Append(0, ls, 0, ts.UnixMilli(), float64(i), nil, nil, storage.AppendV2Options{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	var cfg limits.OverridesConfig
	if overrides != "" {
		cfg.File = filepath.Join(t.TempDir(), "overrides.yaml")
		if err := os.WriteFile(cfg.File, []byte(overrides), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o, err := limits.NewOverrides(def, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := promqlengine.New(promqlengine.Options{Timeout: time.Minute, MaxSamples: 1e7, Limits: o})
	if err != nil {
		t.Fatal(err)
	}
	bq := blockingQueryable{store.Queryable(), make(chan struct{}, 10), make(chan struct{})}
	reg := prometheus.NewRegistry()
	h := New(Options{
		Engine:       eng,
		Parser:       eng.Parser,
		Queryable:    bq,
		Tenants:      tenant.Resolver{Default: "a"},
		Limits:       o,
		QueryTimeout: time.Minute,
		Registerer:   reg,
		Gatherer:     prometheus.NewRegistry(),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return limitsServer{srv, bq, reg, now}
}

type apiAnswer struct {
	code      int
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

func get(t *testing.T, srv limitsServer, id, path string, params url.Values) apiAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path+"?"+params.Encode(), nil)
	req.Header.Set(tenant.HeaderName, id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var a apiAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%s: %v: %s", path, err, body)
	}
	a.code = resp.StatusCode
	return a
}

func rangeParams(q string, start, end time.Time, step time.Duration) url.Values {
	return url.Values{"query": {q}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {step.String()}}
}

func TestQueryLimits(t *testing.T) {
	def := limits.Defaults()
	srv := limitsAPI(t, def, `
overrides:
  a: {max_query_series: 5, max_query_samples: 200, max_query_length: 30m}
`)
	now := srv.now
	for _, tc := range []struct {
		name, path string
		params     url.Values
		code       int
		errorType  string
		mention    string
	}{
		{"under every limit", "/api/v1/query", url.Values{"query": {`m{i=~"[0-4]"}`}, "time": {fmt.Sprint(now.Unix())}}, 200, "", ""},
		{"max_query_series", "/api/v1/query", url.Values{"query": {`m`}, "time": {fmt.Sprint(now.Unix())}}, 422, "cost_limit", "too many series"},
		{"max_query_samples", "/api/v1/query_range", rangeParams(`sum(m{i=~"[0-4]"})`, now.Add(-29*time.Minute), now, 15*time.Second), 422, "cost_limit", "too many samples"},
		{"max_query_length", "/api/v1/query_range", rangeParams(`sum(m)`, now.Add(-time.Hour), now, time.Minute), 400, "bad_data", "max_query_length"},
		{"range under the limits", "/api/v1/query_range", rangeParams(`sum(m{i="0"})`, now.Add(-10*time.Minute), now, time.Minute), 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := get(t, srv, "a", tc.path, tc.params)
			if a.code != tc.code || a.ErrorType != tc.errorType || !strings.Contains(a.Error, tc.mention) {
				t.Errorf("got %d %q %q; want %d %q mentioning %q", a.code, a.ErrorType, a.Error, tc.code, tc.errorType, tc.mention)
			}
			if tc.code != 200 && a.Status != "error" {
				t.Errorf("status %q, want error", a.Status)
			}
		})
	}
}

func TestQueryTimeoutLimit(t *testing.T) {
	def := limits.Defaults()
	def.QueryTimeout = model.Duration(time.Nanosecond)
	srv := limitsAPI(t, def, "")
	now := srv.now
	a := get(t, srv, "a", "/api/v1/query", url.Values{"query": {`sum(m)`}, "time": {fmt.Sprint(now.Unix())}})
	if a.code != http.StatusServiceUnavailable || a.ErrorType != "timeout" {
		t.Errorf("got %d %q %q; want 503 timeout", a.code, a.ErrorType, a.Error)
	}
}

func TestMaxConcurrentQueries(t *testing.T) {
	def := limits.Defaults()
	def.MaxConcurrentQueries = 1
	// The queue wait bounds how soon the queued query below must be let
	// through once it is seen waiting: ample even on a loaded machine.
	const queueWait = 500 * time.Millisecond
	def.MaxQueryQueueWait = model.Duration(queueWait)
	srv := limitsAPI(t, def, "")
	now := srv.now
	q := url.Values{"query": {`count(m)`}, "time": {fmt.Sprint(now.Unix())}}
	var wg sync.WaitGroup
	// The held queries are released at the latest when the test ends, before
	// the server closes, so that a failure does not leave them blocking Close.
	release := sync.OnceFunc(func() { close(srv.bq.release) })
	t.Cleanup(func() { release(); wg.Wait() })
	first := make(chan apiAnswer, 1)
	wg.Add(1)
	go func() { defer wg.Done(); first <- get(t, srv, "slow", "/api/v1/query", q) }()
	<-srv.bq.started // the first query holds the tenant's only slot
	start := time.Now()
	a := get(t, srv, "slow", "/api/v1/query", q)
	if a.code != http.StatusServiceUnavailable || a.ErrorType != "unavailable" || !strings.Contains(a.Error, "max_concurrent_queries") {
		t.Errorf("second query: %d %q %q; want 503 unavailable naming max_concurrent_queries", a.code, a.ErrorType, a.Error)
	}
	if waited := time.Since(start); waited < queueWait {
		t.Errorf("second query answered after %s, before the queue wait of %s", waited, queueWait)
	}
	// Tenant a has its own slot.
	if a := get(t, srv, "a", "/api/v1/query", q); a.code != 200 {
		t.Errorf("tenant a: %d %s", a.code, a.Error)
	}
	// A queued query runs once the slot is free.
	queued := make(chan apiAnswer, 1)
	wg.Add(1)
	go func() { defer wg.Done(); queued <- get(t, srv, "slow", "/api/v1/query", q) }()
	testutil.Eventually(t, 10*time.Second, `the third query to wait for the slot (strata_query_queue_waiting{tenant="slow"} 1)`, func() bool {
		return testutil.RequireMetric(t, srv.reg, "strata_query_queue_waiting", "tenant", "slow") == 1
	})
	release()
	wg.Wait()
	if a := <-first; a.code != 200 {
		t.Errorf("first query: %d %s", a.code, a.Error)
	}
	if a := <-queued; a.code != 200 {
		t.Errorf("queued query: %d %s", a.code, a.Error)
	}
}
