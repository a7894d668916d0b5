// Package anomalyapi serves GET/POST /api/v1/anomaly/query_range: a range
// query scored by an anomaly detector, for charts.
//
// Parameters: query, start, end, step as /api/v1/query_range takes them;
// detector (default: detect.Default) and that detector's parameters by name
// (k=3, season=1w, ...); history, how far before start the detector learns
// from (default: the detector's own need, at most 10,000 steps).
//
// The answer is a Prometheus matrix with four series per series of the
// query: its labels plus anomaly="value", "upper", "lower" or "score",
// scored exactly as an anomaly rule evaluated every step would have.
package anomalyapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/alerting/detect"
)

// Label names the role of each returned series.
const Label = "anomaly"

// maxPoints bounds the points of a series, as Prometheus's query_range does.
const maxPoints = 11000

// maxWarmupSteps bounds the history read before start.
const maxWarmupSteps = 10000

// Handler returns the handler of /api/v1/anomaly/query_range. The tenant
// must already be in the request context.
func Handler(engine promql.QueryEngine, q storage.Queryable, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			respondError(w, http.StatusMethodNotAllowed, "bad_data", fmt.Errorf("method %s not allowed", r.Method))
			return
		}
		if err := r.ParseForm(); err != nil {
			respondError(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		req, err := parseRequest(r)
		if err != nil {
			respondError(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		ctx := r.Context()
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		m, err := run(ctx, engine, q, req)
		if err != nil {
			code, typ := http.StatusUnprocessableEntity, "execution"
			var perr *parser.ParseErr
			var perrs parser.ParseErrors
			var timeoutErr promql.ErrQueryTimeout
			var cancelErr promql.ErrQueryCanceled
			switch {
			case errors.As(err, &perr) || errors.As(err, &perrs):
				code, typ = http.StatusBadRequest, "bad_data"
			case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &timeoutErr):
				code, typ = http.StatusServiceUnavailable, "timeout"
			case errors.Is(err, context.Canceled) || errors.As(err, &cancelErr):
				code, typ = http.StatusServiceUnavailable, "canceled"
			}
			respondError(w, code, typ, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status": "success",
			"data":   map[string]any{"resultType": "matrix", "result": m},
		})
	})
}

type request struct {
	query           string
	start, end      time.Time
	step, history   time.Duration
	factory         detect.Factory
	explicitHistory bool
}

func parseRequest(r *http.Request) (request, error) {
	var req request
	var err error
	req.query = r.Form.Get("query")
	if req.query == "" {
		return req, errors.New("missing query parameter")
	}
	if req.start, err = parseTime(r.Form.Get("start")); err != nil {
		return req, fmt.Errorf("invalid parameter \"start\": %w", err)
	}
	if req.end, err = parseTime(r.Form.Get("end")); err != nil {
		return req, fmt.Errorf("invalid parameter \"end\": %w", err)
	}
	if req.end.Before(req.start) {
		return req, errors.New("invalid parameter \"end\": end timestamp must not be before start time")
	}
	if req.step, err = parseDuration(r.Form.Get("step")); err != nil {
		return req, fmt.Errorf("invalid parameter \"step\": %w", err)
	}
	if req.step <= 0 {
		return req, errors.New("invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer")
	}
	if req.end.Sub(req.start)/req.step > maxPoints {
		return req, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
	}
	spec := detect.Spec{Detector: r.Form.Get("detector"), Params: map[string]string{}}
	kind, ok := detect.Lookup(spec.Detector)
	if spec.Detector == "" {
		kind, ok = detect.Lookup(detect.Default)
	}
	if !ok {
		_, err := detect.New(spec)
		return req, err
	}
	for _, p := range kind.Params {
		if v := r.Form.Get(p.Name); v != "" {
			spec.Params[p.Name] = v
		}
	}
	if req.factory, err = detect.New(spec); err != nil {
		return req, err
	}
	req.history = req.factory.History()
	if h := r.Form.Get("history"); h != "" {
		if req.history, err = parseDuration(h); err != nil || req.history < 0 {
			return req, fmt.Errorf("invalid parameter \"history\": %q", h)
		}
	}
	req.history = min(req.history, maxWarmupSteps*req.step)
	return req, nil
}

func run(ctx context.Context, engine promql.QueryEngine, q storage.Queryable, req request) (promql.Matrix, error) {
	warm := req.start.Add(-req.history.Truncate(req.step))
	qry, err := engine.NewRangeQuery(ctx, q, nil, req.query, warm, req.end, req.step)
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	in, err := res.Matrix()
	if err != nil {
		return nil, err
	}
	from := req.start.UnixMilli()
	out := make(promql.Matrix, 0, 4*len(in))
	for _, s := range in {
		if len(s.Floats) == 0 {
			continue
		}
		d := req.factory.New()
		var value, upper, lower, score []promql.FPoint
		for _, p := range s.Floats {
			r := d.Observe(p.T, p.F)
			if p.T < from {
				continue
			}
			value = append(value, p)
			if !math.IsNaN(r.Score) {
				score = append(score, promql.FPoint{T: p.T, F: r.Score})
			}
			if !math.IsNaN(r.Upper) && !math.IsInf(r.Upper, 0) {
				upper = append(upper, promql.FPoint{T: p.T, F: r.Upper})
			}
			if !math.IsNaN(r.Lower) && !math.IsInf(r.Lower, 0) {
				lower = append(lower, promql.FPoint{T: p.T, F: r.Lower})
			}
		}
		for _, part := range []struct {
			role string
			pts  []promql.FPoint
		}{{"value", value}, {"upper", upper}, {"lower", lower}, {"score", score}} {
			if len(part.pts) == 0 {
				continue
			}
			b := labels.NewBuilder(s.Metric)
			b.Set(Label, part.role)
			out = append(out, promql.Series{Metric: b.Labels(), Floats: part.pts})
		}
	}
	return out, nil
}

func respondError(w http.ResponseWriter, code int, typ string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": typ, "error": err.Error()})
}

// parseTime accepts Unix seconds (with fractions) and RFC 3339, as Prometheus does.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(t)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseDuration accepts seconds (with fractions) and Prometheus durations.
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(d * float64(time.Second)), nil
	}
	if d, err := parseModelDuration(s); err == nil {
		return d, nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}
