package strata

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/gtime"
	"github.com/prometheus/common/model"
)

// maxPointsPerSeries is the most points Strata (like Prometheus) returns per
// series of a range query; the step is never smaller than range/maxPointsPerSeries.
const maxPointsPerSeries = 11000

// defaultScrapeInterval stands for the scrape interval of the data when the
// query names no min step; $__rate_interval is derived from it.
const defaultScrapeInterval = 15 * time.Second

// timing is the resolved time range, step and interval variables of a query.
type timing struct {
	start, end time.Time
	step       time.Duration
	minStep    time.Duration
	rangeDur   time.Duration
}

// resolveTiming computes the step of a query the way Grafana's Prometheus
// source does: the largest of the panel interval Grafana computed
// ($__interval), the query's min step and the safe step range/11000; the
// range is then aligned to multiples of the step so that refreshes reuse the
// same evaluation timestamps.
func resolveTiming(dq backend.DataQuery, minStepText string) (timing, error) {
	var t timing
	if minStepText != "" {
		d, err := parseStep(minStepText, dq)
		if err != nil {
			return t, fmt.Errorf("invalid min step %q: %w", minStepText, err)
		}
		t.minStep = d
	}
	t.rangeDur = dq.TimeRange.To.Sub(dq.TimeRange.From)
	if t.rangeDur < 0 {
		return t, fmt.Errorf("the time range ends (%s) before it starts (%s)", dq.TimeRange.To, dq.TimeRange.From)
	}
	step := dq.Interval
	if step <= 0 && dq.MaxDataPoints > 0 {
		step = t.rangeDur / time.Duration(dq.MaxDataPoints)
	}
	step = max(step, t.minStep, t.rangeDur/maxPointsPerSeries)
	if step < time.Millisecond {
		step = time.Second
	}
	step = step.Truncate(time.Millisecond)
	t.step = step
	ms := step.Milliseconds()
	t.start = time.UnixMilli(dq.TimeRange.From.UnixMilli() / ms * ms).UTC()
	t.end = time.UnixMilli(dq.TimeRange.To.UnixMilli() / ms * ms).UTC()
	return t, nil
}

// parseStep reads a min step: a Prometheus or Grafana duration ("15s",
// "1m30s") or a bare number of seconds; "$__interval" means the panel's interval.
func parseStep(s string, dq backend.DataQuery) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "$__interval" || s == "${__interval}" {
		return dq.Interval, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return gtime.ParseDuration(s)
}

// rateInterval is $__rate_interval: at least four scrape intervals and at
// least one step plus one scrape interval, so rate() always sees two samples.
func (t timing) rateInterval() time.Duration {
	scrape := t.minStep
	if scrape <= 0 {
		scrape = defaultScrapeInterval
	}
	return max(t.step+scrape, 4*scrape)
}

// interpolate replaces Grafana's interval and range variables in expr. The
// front end has already replaced dashboard template variables; alert rules
// evaluated by Grafana arrive here with these variables still in place.
func (t timing) interpolate(expr string) string {
	rangeSec := int64(t.rangeDur.Seconds())
	pairs := []string{
		// Longer names first: the replacer tries them in this order.
		"$__rate_interval_ms", strconv.FormatInt(t.rateInterval().Milliseconds(), 10),
		"${__rate_interval_ms}", strconv.FormatInt(t.rateInterval().Milliseconds(), 10),
		"$__rate_interval", promDuration(t.rateInterval()),
		"${__rate_interval}", promDuration(t.rateInterval()),
		"$__interval_ms", strconv.FormatInt(t.step.Milliseconds(), 10),
		"${__interval_ms}", strconv.FormatInt(t.step.Milliseconds(), 10),
		"$__interval", promDuration(t.step),
		"${__interval}", promDuration(t.step),
		"$__range_ms", strconv.FormatInt(t.rangeDur.Milliseconds(), 10),
		"${__range_ms}", strconv.FormatInt(t.rangeDur.Milliseconds(), 10),
		"$__range_s", strconv.FormatInt(rangeSec, 10),
		"${__range_s}", strconv.FormatInt(rangeSec, 10),
		"$__range", strconv.FormatInt(rangeSec, 10) + "s",
		"${__range}", strconv.FormatInt(rangeSec, 10) + "s",
	}
	return strings.NewReplacer(pairs...).Replace(expr)
}

// promDuration formats d as a PromQL duration with millisecond precision.
func promDuration(d time.Duration) string {
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return model.Duration(d.Truncate(time.Millisecond)).String()
}
