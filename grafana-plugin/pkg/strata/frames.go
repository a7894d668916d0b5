package strata

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/prometheus/common/model"
)

// legendAuto is the legend format "Auto" of Grafana's Prometheus editor:
// Grafana names series by their distinct labels itself.
const legendAuto = "__auto"

var legendLabel = regexp.MustCompile(`\{\{\s*([^{}\s]+)\s*\}\}`)

// seriesName is the display name of a series of labels ls, as Grafana's
// Prometheus source names it: the legend format with {{label}} replaced, or
// the series in PromQL notation; a series without labels takes the expression.
func seriesName(legendFormat, expr string, ls model.Metric) string {
	var name string
	switch legendFormat {
	case legendAuto:
		if len(ls) > 0 {
			return ""
		}
		name = "{}"
	case "":
		name = promQLSeries(ls)
	default:
		name = legendLabel.ReplaceAllStringFunc(legendFormat, func(m string) string {
			return string(ls[model.LabelName(legendLabel.FindStringSubmatch(m)[1])])
		})
	}
	if name == "{}" {
		return expr
	}
	return name
}

// promQLSeries writes ls as metric{a="1", b="2"}, labels sorted.
func promQLSeries(ls model.Metric) string {
	metric := string(ls[model.MetricNameLabel])
	names := make([]string, 0, len(ls))
	for n := range ls {
		if n != model.MetricNameLabel {
			names = append(names, string(n))
		}
	}
	if len(names) == 0 {
		if metric != "" {
			return metric
		}
		return "{}"
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + strconv.Quote(string(ls[model.LabelName(n)]))
	}
	return metric + "{" + strings.Join(parts, ", ") + "}"
}

// toLabels converts Prometheus labels to frame labels.
func toLabels(ls model.Metric) data.Labels {
	out := make(data.Labels, len(ls))
	for k, v := range ls {
		out[string(k)] = string(v)
	}
	return out
}

// seriesFrame builds the frame of one series in the shape of Grafana's
// Prometheus source: a "Time" field with the step as its interval and a
// "Value" field carrying the series' labels and display name; the frame is
// named like its value field and typed timeseries-multi.
func seriesFrame(refID, name string, ls model.Metric, step time.Duration, pts []model.SamplePair) *data.Frame {
	times := make([]time.Time, len(pts))
	values := make([]float64, len(pts))
	for i, p := range pts {
		times[i] = p.Timestamp.Time().UTC()
		values[i] = float64(p.Value)
	}
	timeField := data.NewField(data.TimeSeriesTimeFieldName, nil, times)
	timeField.Config = &data.FieldConfig{Interval: float64(step.Milliseconds())}
	valueField := data.NewField(data.TimeSeriesValueFieldName, toLabels(ls), values)
	if name != "" {
		valueField.Config = &data.FieldConfig{DisplayNameFromDS: name}
	}
	f := data.NewFrame(name, timeField, valueField)
	f.RefID = refID
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	return f
}

// emptyFrame carries a query's metadata when it has no series.
func emptyFrame(refID string) *data.Frame {
	f := data.NewFrame("")
	f.RefID = refID
	f.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
	return f
}
