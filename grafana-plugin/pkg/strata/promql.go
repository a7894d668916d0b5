package strata

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// queryPromQL runs a PromQL query as a range query, an instant query at the
// end of the range, or both, and frames the answer as Grafana's Prometheus
// source does.
func (d *Datasource) queryPromQL(ctx context.Context, dq backend.DataQuery, q Query) (backend.DataResponse, error) {
	if strings.TrimSpace(q.Expr) == "" {
		return backend.DataResponse{}, badQuery(errors.New("the PromQL expression is empty"))
	}
	t, err := resolveTiming(dq, q.Interval)
	if err != nil {
		return backend.DataResponse{}, badQuery(err)
	}
	expr := t.interpolate(q.Expr)
	doRange := q.Range == nil || *q.Range
	if q.Instant && q.Range == nil {
		doRange = false
	}
	var resp backend.DataResponse
	if doRange {
		v, warnings, infos, err := d.client.api.QueryRange(ctx, expr, promv1.Range{Start: t.start, End: t.end, Step: t.step})
		if err != nil {
			return resp, fmt.Errorf("range query: %w", err)
		}
		resp.Frames = append(resp.Frames, framesOf(dq.RefID, q, expr, t.step, v, notices(warnings, infos), "range")...)
	}
	if q.Instant {
		v, warnings, infos, err := d.client.api.Query(ctx, expr, dq.TimeRange.To)
		if err != nil {
			return resp, fmt.Errorf("instant query: %w", err)
		}
		resp.Frames = append(resp.Frames, framesOf(dq.RefID, q, expr, t.step, v, notices(warnings, infos), "instant")...)
	}
	return resp, nil
}

// framesOf converts a query answer to frames: one per series, the first one
// carrying the executed query and Strata's warnings.
func framesOf(refID string, q Query, expr string, step time.Duration, v model.Value, ns []data.Notice, kind string) data.Frames {
	var frames data.Frames
	switch v := v.(type) {
	case model.Matrix:
		for _, s := range v {
			frames = append(frames, seriesFrame(refID, seriesName(q.LegendFormat, expr, s.Metric), s.Metric, step, s.Values))
		}
	case model.Vector:
		for _, s := range v {
			pts := []model.SamplePair{{Timestamp: s.Timestamp, Value: s.Value}}
			frames = append(frames, seriesFrame(refID, seriesName(q.LegendFormat, expr, s.Metric), s.Metric, step, pts))
		}
	case *model.Scalar:
		pts := []model.SamplePair{{Timestamp: v.Timestamp, Value: v.Value}}
		frames = append(frames, seriesFrame(refID, seriesName(q.LegendFormat, expr, model.Metric{}), model.Metric{}, step, pts))
	}
	if len(frames) == 0 {
		frames = append(frames, emptyFrame(refID))
	}
	if v != nil {
		// Grafana's panels read the result type, e.g. to show an instant
		// vector as a table.
		for _, f := range frames {
			f.Meta.Custom = map[string]string{"resultType": v.Type().String()}
		}
	}
	meta := frames[0].Meta
	meta.ExecutedQueryString = "Expr: " + expr + "\nStep: " + step.String() + "\nType: " + kind
	meta.Notices = append(meta.Notices, ns...)
	return frames
}

// notices turns Strata's warnings and infos into frame notices.
func notices(warnings promv1.Warnings, infos promv1.Infos) []data.Notice {
	var out []data.Notice
	for _, w := range warnings {
		out = append(out, data.Notice{Severity: data.NoticeSeverityWarning, Text: w})
	}
	for _, i := range infos {
		out = append(out, data.Notice{Severity: data.NoticeSeverityInfo, Text: i})
	}
	return out
}
