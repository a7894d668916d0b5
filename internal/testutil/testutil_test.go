package testutil

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// recorder is a testing.TB that records a failure instead of ending the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

// fails runs f with a recorder and returns the message it failed with, or "".
func fails(t *testing.T, f func(tb testing.TB)) (msg string) {
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		msg = r.failed
	}()
	f(r)
	return ""
}

func TestWait(t *testing.T) {
	var n atomic.Int32
	if !Wait(time.Minute, func() bool { return n.Add(1) == 5 }) {
		t.Fatal("a condition that comes to hold: Wait reported false")
	}
	start := time.Now()
	if Wait(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds: Wait reported true")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("Wait gave up after %s, want the timeout of 50ms", d)
	}
	calls := 0
	Wait(0, func() bool { calls++; return false })
	if calls != 1 {
		t.Errorf("a timeout of 0 checked %d times, want once", calls)
	}
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	if msg := fails(t, func(tb testing.TB) { Eventually(tb, time.Minute, "n to reach 3", func() bool { return n.Add(1) >= 3 }) }); msg != "" {
		t.Errorf("a condition that holds failed: %s", msg)
	}
	msg := fails(t, func(tb testing.TB) {
		Eventually(tb, 10*time.Millisecond, "the impossible", func() bool { return false })
	})
	if !strings.Contains(msg, "the impossible") || !strings.Contains(msg, "10ms") {
		t.Errorf("failure %q, want one naming the condition and the timeout", msg)
	}
}

func TestAwait(t *testing.T) {
	var n atomic.Int32
	if !Await(t, time.Minute, "n to reach 3", func() (bool, string) { return n.Add(1) >= 3, "" }) {
		t.Error("a condition that comes to hold: Await reported false")
	}
	r := &errRecorder{TB: t}
	if Await(r, 10*time.Millisecond, "the impossible", func() (bool, string) { return false, "still nothing" }) {
		t.Error("a condition that never holds: Await reported true")
	}
	if !strings.Contains(r.errored, "the impossible") || !strings.Contains(r.errored, "still nothing") {
		t.Errorf("error %q, want one naming the condition and the last state", r.errored)
	}
}

// errRecorder is a testing.TB that records an error instead of failing.
type errRecorder struct {
	testing.TB
	errored string
}

func (r *errRecorder) Helper()                   {}
func (r *errRecorder) Logf(string, ...any)       {}
func (r *errRecorder) Errorf(f string, a ...any) { r.errored = fmt.Sprintf(f, a...) }

func registry(t *testing.T) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_requests_total", Help: "h"}, []string{"tenant", "code"})
	c.WithLabelValues("a", "200").Add(3)
	c.WithLabelValues("a", "500").Add(1)
	c.WithLabelValues("b", "200").Add(10)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_open", Help: "h"})
	g.Set(2)
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x_duration_seconds", Help: "h"}, []string{"op"})
	h.WithLabelValues("get").Observe(1)
	h.WithLabelValues("get").Observe(2)
	h.WithLabelValues("put").Observe(1)
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "x_size", Help: "h"})
	s.Observe(5)
	u := prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: "x_untyped", Help: "h"}, func() float64 { return 7 })
	empty := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_empty_total", Help: "h"}, []string{"l"})
	reg.MustRegister(c, g, h, s, u, empty)
	return reg
}

func TestMetric(t *testing.T) {
	reg := registry(t)
	for _, tc := range []struct {
		name  string
		pairs []string
		want  float64
	}{
		{"x_requests_total", nil, 14},
		{"x_requests_total", []string{"tenant", "a"}, 4},
		{"x_requests_total", []string{"tenant", "a", "code", "200"}, 3},
		{"x_requests_total", []string{"tenant", "c"}, 0},
		{"x_requests_total", []string{"other", "a"}, 0},
		{"x_open", nil, 2},
		{"x_duration_seconds", nil, 3},
		{"x_duration_seconds", []string{"op", "get"}, 2},
		{"x_size", nil, 1},
		{"x_untyped", nil, 7},
		{"x_empty_total", nil, 0},
		{"x_missing", nil, 0},
	} {
		if got := Metric(t, reg, tc.name, tc.pairs...); got != tc.want {
			t.Errorf("Metric(%s, %q) = %v, want %v", tc.name, tc.pairs, got, tc.want)
		}
	}
}

func TestRequireMetric(t *testing.T) {
	reg := registry(t)
	if got := RequireMetric(t, reg, "x_requests_total", "tenant", "b"); got != 10 {
		t.Errorf("RequireMetric = %v, want 10", got)
	}
	if got := RequireMetric(t, reg, "x_requests_total", "tenant", "c"); got != 0 {
		t.Errorf("RequireMetric of unmatched labels = %v, want 0", got)
	}
	msg := fails(t, func(tb testing.TB) { RequireMetric(tb, reg, "x_request_total") })
	if !strings.Contains(msg, "x_request_total") || !strings.Contains(msg, "x_requests_total") {
		t.Errorf("failure %q, want one naming the missing family and the similar ones", msg)
	}
	if msg := fails(t, func(tb testing.TB) { Metric(tb, reg, "x_open", "tenant") }); !strings.Contains(msg, "odd") {
		t.Errorf("odd label pairs: failure %q", msg)
	}
}

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(promhttp.HandlerFor(registry(t), promhttp.HandlerOpts{}))
	defer srv.Close()
	g := Scrape(srv.URL)
	if got := RequireMetric(t, g, "x_requests_total", "tenant", "a"); got != 4 {
		t.Errorf("scraped x_requests_total{tenant=a} = %v, want 4", got)
	}
	if got := Metric(t, g, "x_duration_seconds", "op", "get"); got != 2 {
		t.Errorf("scraped histogram count = %v, want 2", got)
	}
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	if msg := fails(t, func(tb testing.TB) { Metric(tb, Scrape(notFound.URL), "x") }); !strings.Contains(msg, "404") {
		t.Errorf("scraping a 404: failure %q", msg)
	}
}
