package strata

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Alert states of annotation queries.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

var stateColors = map[string]string{
	StatePending:  "#FF9830",
	StateFiring:   "#F2495C",
	StateResolved: "#73BF69",
}

// alertRegion is one stretch of time an alert spent in one state.
type alertRegion struct {
	labels     model.Metric // the alert's labels (no __name__, no alertstate)
	state      string
	start, end time.Time
}

// queryAlerts returns the alerts of Strata's rules that were pending, firing
// or resolved in the query's time range, as an annotation frame (time,
// timeEnd, title, text, tags, state, color). The history comes from the
// ALERTS series the rules write; the current alerts (/api/v1/alerts) add their
// annotations and the rules (/api/v1/rules) their expression.
func (d *Datasource) queryAlerts(ctx context.Context, dq backend.DataQuery, q Query) (backend.DataResponse, error) {
	var resp backend.DataResponse
	t, err := resolveTiming(dq, q.Interval)
	if err != nil {
		return resp, badQuery(err)
	}
	states, err := wantedStates(q.States)
	if err != nil {
		return resp, badQuery(err)
	}
	selector, err := alertsSelector(q)
	if err != nil {
		return resp, badQuery(err)
	}
	v, warnings, infos, err := d.client.api.QueryRange(ctx, selector, promv1.Range{Start: t.start, End: t.end, Step: t.step})
	if err != nil {
		return resp, fmt.Errorf("querying alert history (%s): %w", selector, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return resp, fmt.Errorf("querying alert history: unexpected result type %s", v.Type())
	}
	regions := alertRegions(m, t.step, t.end)

	current, err := d.client.api.Alerts(ctx)
	if err != nil {
		return resp, fmt.Errorf("reading current alerts: %w", err)
	}
	rules, err := d.client.api.Rules(ctx, nil)
	if err != nil {
		return resp, fmt.Errorf("reading alerting rules: %w", err)
	}
	f := annotationFrame(dq.RefID, regions, states, current.Alerts, alertingRules(rules))
	f.Meta.ExecutedQueryString = "Expr: " + selector + "\nStep: " + t.step.String()
	f.Meta.Notices = notices(warnings, infos)
	resp.Frames = data.Frames{f}
	return resp, nil
}

// wantedStates reads the states filter; none means all.
func wantedStates(states []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(states) == 0 {
		states = []string{StatePending, StateFiring, StateResolved}
	}
	for _, s := range states {
		switch s {
		case StatePending, StateFiring, StateResolved:
			out[s] = true
		default:
			return nil, fmt.Errorf("unknown alert state %q: use pending, firing or resolved", s)
		}
	}
	return out, nil
}

// alertsSelector builds the ALERTS selector of the query's alert-name regex
// and label matchers. The matchers are passed on as written, without their
// braces: Strata's PromQL parser validates them and names any error, which
// spares the plugin Prometheus's parser module.
func alertsSelector(q Query) (string, error) {
	var parts []string
	m := strings.TrimSpace(q.Matchers)
	if m != "" {
		if !strings.HasPrefix(m, "{") || !strings.HasSuffix(m, "}") {
			return "", fmt.Errorf("label matchers %q must be written in braces, e.g. {severity=\"critical\"}", q.Matchers)
		}
		if inner := strings.TrimSpace(m[1 : len(m)-1]); inner != "" {
			parts = append(parts, strings.TrimSuffix(inner, ","))
		}
	}
	if name := strings.TrimSpace(q.AlertName); name != "" {
		if _, err := regexp.Compile("^(?:" + name + ")$"); err != nil {
			return "", fmt.Errorf("alert name %q is not a valid regular expression: %w", name, err)
		}
		parts = append(parts, "alertname=~"+strconv.Quote(name))
	}
	return "ALERTS{" + strings.Join(parts, ", ") + "}", nil
}

// alertRegions splits each ALERTS series into the stretches where it has
// samples: a gap longer than a step and a half ends a stretch (the rule
// wrote a stale marker when the alert changed state or resolved). A firing
// stretch that ends before the end of the range is resolved.
func alertRegions(m model.Matrix, step time.Duration, end time.Time) []alertRegion {
	var out []alertRegion
	gap := step + step/2
	for _, s := range m {
		state := string(s.Metric["alertstate"])
		ls := s.Metric.Clone()
		delete(ls, model.MetricNameLabel)
		delete(ls, "alertstate")
		var cur *alertRegion
		flush := func() {
			if cur == nil {
				return
			}
			if cur.state == StateFiring && end.Sub(cur.end) > gap {
				cur.state = StateResolved
			}
			out = append(out, *cur)
			cur = nil
		}
		for _, p := range s.Values {
			ts := p.Timestamp.Time().UTC()
			if cur != nil && ts.Sub(cur.end) > gap {
				flush()
			}
			if cur == nil {
				cur = &alertRegion{labels: ls, state: state, start: ts}
			}
			cur.end = ts
		}
		flush()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// ruleInfo is what an alerting rule adds to the text of its alerts.
type ruleInfo struct {
	query       string
	duration    time.Duration
	annotations model.LabelSet
}

func alertingRules(r promv1.RulesResult) map[string]ruleInfo {
	out := map[string]ruleInfo{}
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			if a, ok := rule.(promv1.AlertingRule); ok {
				out[a.Name] = ruleInfo{query: a.Query, duration: time.Duration(a.Duration * float64(time.Second)), annotations: a.Annotations}
			}
		}
	}
	return out
}

// annotationFrame writes the regions in the wanted states as annotations.
func annotationFrame(refID string, regions []alertRegion, states map[string]bool, current []promv1.Alert, rules map[string]ruleInfo) *data.Frame {
	active := map[model.Fingerprint]promv1.Alert{}
	for _, a := range current {
		active[model.Metric(a.Labels).Fingerprint()] = a
	}
	var (
		starts, ends                    []time.Time
		titles, texts, tags, st, colors []string
	)
	for _, r := range regions {
		if !states[r.state] {
			continue
		}
		name := string(r.labels[model.AlertNameLabel])
		start := r.start
		var annotations model.LabelSet
		if a, ok := active[r.labels.Fingerprint()]; ok && r.state != StateResolved {
			annotations = a.Annotations
			if r.state == StatePending && !a.ActiveAt.IsZero() && a.ActiveAt.Before(start) {
				start = a.ActiveAt.UTC()
			}
		}
		rule, hasRule := rules[name]
		if annotations == nil && hasRule {
			annotations = rule.annotations
		}
		var text []string
		for _, key := range []model.LabelName{"summary", "description"} {
			if v := annotations[key]; v != "" {
				text = append(text, string(v))
			}
		}
		text = append(text, "Labels: "+promQLSeries(r.labels))
		if hasRule {
			rt := "Rule: " + rule.query
			if rule.duration > 0 {
				rt += " for " + model.Duration(rule.duration).String()
			}
			text = append(text, rt)
		}
		starts = append(starts, start)
		ends = append(ends, r.end)
		titles = append(titles, fmt.Sprintf("%s %s", name, r.state))
		texts = append(texts, strings.Join(text, "\n"))
		tags = append(tags, strings.Join(alertTags(r), ","))
		st = append(st, r.state)
		colors = append(colors, stateColors[r.state])
	}
	f := data.NewFrame("alerts",
		data.NewField("time", nil, starts),
		data.NewField("timeEnd", nil, ends),
		data.NewField("title", nil, titles),
		data.NewField("text", nil, texts),
		data.NewField("tags", nil, tags),
		data.NewField("state", nil, st),
		data.NewField("color", nil, colors),
	)
	f.RefID = refID
	f.Meta = &data.FrameMeta{}
	return f
}

// alertTags are the state, the alert name and label=value for each other
// label (Grafana splits tags at commas, so values with commas are left out).
func alertTags(r alertRegion) []string {
	tags := []string{r.state, string(r.labels[model.AlertNameLabel])}
	names := make([]string, 0, len(r.labels))
	for n := range r.labels {
		if n != model.AlertNameLabel {
			names = append(names, string(n))
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if v := string(r.labels[model.LabelName(n)]); !strings.Contains(v, ",") {
			tags = append(tags, n+"="+v)
		}
	}
	return tags
}
