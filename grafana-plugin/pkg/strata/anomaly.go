package strata

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/prometheus/common/model"
)

// anomalyLabel names the role of each series of Strata's anomaly API answer.
const anomalyLabel = "anomaly"

// Roles of the series of an anomaly answer, in the order frames are returned.
var anomalyRoles = []string{"value", "upper", "lower", "score"}

// bandColor is the colour of the normal band between upper and lower.
const bandColor = "rgba(138, 184, 255, 0.9)"

// reservedAnomalyParams are the anomaly API's own parameters; a detector
// parameter may not override them.
var reservedAnomalyParams = map[string]bool{"query": true, "start": true, "end": true, "step": true, "detector": true}

// queryAnomaly asks Strata's /api/v1/anomaly/query_range for the expression
// scored by the detector and returns, per series, frames for the value, the
// upper and lower edges of the normal band (filled between them through
// field config) and the anomaly score.
func (d *Datasource) queryAnomaly(ctx context.Context, dq backend.DataQuery, q Query) (backend.DataResponse, error) {
	var resp backend.DataResponse
	if strings.TrimSpace(q.Expr) == "" {
		return resp, badQuery(errors.New("the expression of the anomaly query is empty"))
	}
	t, err := resolveTiming(dq, q.Interval)
	if err != nil {
		return resp, badQuery(err)
	}
	expr := t.interpolate(q.Expr)
	form := url.Values{
		"query": {expr},
		"start": {formatTime(t.start)},
		"end":   {formatTime(t.end)},
		"step":  {strconv.FormatFloat(t.step.Seconds(), 'f', -1, 64)},
	}
	if q.Detector != "" {
		form.Set("detector", q.Detector)
	}
	for name, v := range q.Params {
		if reservedAnomalyParams[name] {
			return resp, badQuery(fmt.Errorf("detector parameter %q is reserved", name))
		}
		s, err := paramString(v)
		if err != nil {
			return resp, badQuery(fmt.Errorf("detector parameter %q: %w", name, err))
		}
		if s != "" {
			form.Set(name, t.interpolate(s))
		}
	}
	var result struct {
		ResultType string       `json:"resultType"`
		Result     model.Matrix `json:"result"`
	}
	env, err := d.client.call(ctx, http.MethodPost, "/api/v1/anomaly/query_range", form, &result)
	if err != nil {
		return resp, fmt.Errorf("anomaly query: %w", err)
	}
	resp.Frames = anomalyFrames(dq.RefID, q, expr, t.step, result.Result)
	meta := resp.Frames[0].Meta
	meta.ExecutedQueryString = fmt.Sprintf("Expr: %s\nStep: %s\nDetector: %s\nParameters: %s",
		expr, t.step, orDefault(q.Detector, "(Strata's default)"), encodeParams(form))
	meta.Notices = append(meta.Notices, notices(env.Warnings, env.Infos)...)
	return resp, nil
}

// anomalyFrames groups the answer's series by their labels without the role
// label and frames each role with its display name and field config.
func anomalyFrames(refID string, q Query, expr string, step time.Duration, m model.Matrix) data.Frames {
	type group struct {
		labels model.Metric
		roles  map[string]*model.SampleStream
	}
	groups := map[model.Fingerprint]*group{}
	var order []model.Fingerprint
	for _, s := range m {
		role := string(s.Metric[anomalyLabel])
		base := s.Metric.Clone()
		delete(base, anomalyLabel)
		fp := base.Fingerprint()
		g, ok := groups[fp]
		if !ok {
			g = &group{labels: base, roles: map[string]*model.SampleStream{}}
			groups[fp] = g
			order = append(order, fp)
		}
		g.roles[role] = s
	}
	sort.Slice(order, func(i, j int) bool { return groups[order[i]].labels.Before(groups[order[j]].labels) })

	legend := q.LegendFormat
	if legend == legendAuto {
		legend = ""
	}
	var frames data.Frames
	for _, fp := range order {
		g := groups[fp]
		base := seriesName(legend, expr, g.labels)
		for _, role := range anomalyRoles {
			s, ok := g.roles[role]
			if !ok {
				continue
			}
			name := base
			if role != "value" {
				name = base + " " + role
			}
			f := seriesFrame(refID, name, s.Metric, step, s.Values)
			if f.Fields[1].Config == nil {
				f.Fields[1].Config = &data.FieldConfig{}
			}
			cfg := f.Fields[1].Config
			switch role {
			case "upper":
				cfg.Color = map[string]any{"mode": "fixed", "fixedColor": bandColor}
				cfg.Custom = map[string]any{"fillBelowTo": base + " lower", "fillOpacity": 25, "lineWidth": 0}
			case "lower":
				cfg.Color = map[string]any{"mode": "fixed", "fixedColor": bandColor}
				cfg.Custom = map[string]any{"fillOpacity": 0, "lineWidth": 0}
			case "score":
				cfg.Custom = map[string]any{
					"axisPlacement": "right",
					"axisLabel":     "anomaly score",
					"lineStyle":     map[string]any{"fill": "dash", "dash": []int{10, 10}},
				}
			}
			frames = append(frames, f)
		}
	}
	if len(frames) == 0 {
		frames = append(frames, emptyFrame(refID))
	}
	return frames
}

// paramString renders a detector parameter as the anomaly API reads it.
func paramString(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("must be a string, number or boolean, not %T", v)
}

// encodeParams lists the detector parameters sent, for the query inspector.
func encodeParams(form url.Values) string {
	rest := url.Values{}
	for k, v := range form {
		if !reservedAnomalyParams[k] {
			rest[k] = v
		}
	}
	if len(rest) == 0 {
		return "(defaults)"
	}
	return rest.Encode()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// formatTime writes t as Unix seconds with millisecond precision.
func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}
