// Package testutil holds the helpers Strata's tests share: waiting for a
// condition instead of sleeping for a fixed time, and reading a metric from
// a registry or from a process's /metrics page.
//
// A test waits for what it needs to have happened (a counter's increase, a
// gauge's value, an answer of an API), never for a duration that usually
// suffices: the wait ends as soon as the condition holds, and a condition
// that never holds fails the test instead of letting it pass unchecked.
//
// Starting and stopping external programs is package proctest's. This
// package is imported by tests only.
package testutil

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Polling intervals of Wait: the first check comes at once, the second
// after MinPoll, and each later wait is twice the previous one, up to
// MaxPoll. A condition that holds soon is seen soon; a slow one (an HTTP
// query of another process) is not asked more than ten times a second.
const (
	MinPoll = time.Millisecond
	MaxPoll = 100 * time.Millisecond
)

// Wait checks cond until it returns true or timeout has passed, and reports
// whether it held. It checks once more at the deadline, so a timeout of 0
// checks once. Use it where a condition that does not come is not in itself
// a failure; otherwise use Eventually.
func Wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for pause := MinPoll; ; pause = min(2*pause, MaxPoll) {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(pause, left))
	}
}

// Eventually waits up to timeout for cond to hold (see Wait) and fails t
// with what, the awaited condition in words, when it does not. It must be
// called from the test's own goroutine.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Await is Eventually for a check that also describes what it saw, for a
// test that goes on after a failed wait (a live test of many programs
// reports every missing behaviour, not only the first). It waits up to
// timeout for check to report ok (see Wait); when it does not, it reports
// an error naming what, the timeout and the state the last check described,
// and returns false. It logs how long a successful wait took.
func Await(t testing.TB, timeout time.Duration, what string, check func() (ok bool, state string)) bool {
	t.Helper()
	start := time.Now()
	var state string
	if Wait(timeout, func() bool {
		var ok bool
		ok, state = check()
		return ok
	}) {
		t.Logf("%s: ok after %s", what, time.Since(start).Round(time.Millisecond))
		return true
	}
	t.Errorf("timed out after %s waiting for %s (last: %s)", timeout, what, state)
	return false
}

// Metric returns the sum of the samples of metric family name in g whose
// labels include the pairs of labelPairs (name, value, name, value, ...):
// the value of a counter, gauge or untyped sample, the sample count of a
// histogram or summary. It is 0 when g has no such family, as for a vector
// none of whose series has been created yet; RequireMetric fails instead.
func Metric(t testing.TB, g prometheus.Gatherer, name string, labelPairs ...string) float64 {
	t.Helper()
	v, _ := metric(t, g, name, labelPairs)
	return v
}

// RequireMetric is Metric for a family that must exist: it fails t when g
// has no family name, so that a misspelt or unregistered name cannot read
// as 0. Series of the family that do not match labelPairs still read as 0.
func RequireMetric(t testing.TB, g prometheus.Gatherer, name string, labelPairs ...string) float64 {
	t.Helper()
	v, families := metric(t, g, name, labelPairs)
	if families != nil {
		t.Fatalf("no metric family %s; the families with its prefix: %v", name, families)
	}
	return v
}

// metric sums the matching samples of family name. When g has no such
// family it returns the names of g's families that share name's first word
// (up to its first '_'), for the message of RequireMetric, as a non-nil slice.
func metric(t testing.TB, g prometheus.Gatherer, name string, labelPairs []string) (float64, []string) {
	t.Helper()
	if len(labelPairs)%2 != 0 {
		t.Fatalf("metric %s: label pairs %q have an odd length", name, labelPairs)
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics for %s: %v", name, err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labelPairs) {
				sum += value(m)
			}
		}
		return sum, nil
	}
	prefix, _, _ := strings.Cut(name, "_")
	similar := []string{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), prefix+"_") {
			similar = append(similar, mf.GetName())
		}
	}
	slices.Sort(similar)
	return 0, similar
}

// hasLabels reports whether m has every label of pairs with its value.
func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i < len(pairs); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == pairs[i] {
				found = l.GetValue() == pairs[i+1]
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// value is what Metric adds up of one sample.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Summary != nil:
		return float64(m.GetSummary().GetSampleCount())
	}
	return 0
}

// Scrape returns a Gatherer of the metrics that a process serves in the
// Prometheus text format at url, such as http://127.0.0.1:9090/metrics:
// each Gather fetches and parses the page, so that Metric and
// RequireMetric read another process's metrics as they read a registry's.
func Scrape(url string) prometheus.Gatherer {
	client := &http.Client{Timeout: 30 * time.Second}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		resp, err := client.Get(url)
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", url, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("parse the metrics of %s: %w", url, err)
		}
		out := make([]*dto.MetricFamily, 0, len(fams))
		for _, mf := range fams {
			out = append(out, mf)
		}
		return out, nil
	})
}
