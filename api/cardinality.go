package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/cardinality"
	"github.com/strata-tsdb/strata/limits"
	"github.com/strata-tsdb/strata/tenant"
)

// CardinalitySource answers the cardinality of a tenant's series.
type CardinalitySource interface {
	// HeadStats returns the statistics of tenant id's head, grouped by the
	// label statsByLabelName and cut to the limit largest entries; false
	// when the tenant has no head (it has written nothing).
	HeadStats(id, statsByLabelName string, limit int) (*tsdb.Stats, bool)
	// SeriesCounts counts the series of tenant id matching ms in scope,
	// at most maxSeries (see blocks.Store.SeriesCounts).
	SeriesCounts(ctx context.Context, id string, scope blocks.CountScope, ms []*labels.Matcher, maxSeries int) (*cardinality.Counts, error)
}

// The bounds of the cardinality endpoints' parameters, as Mimir's.
const (
	defaultCardinalityLimit = 20
	maxCardinalityLimit     = 500
	// maxCardinalityLabelNames bounds label_names[] of one label_values
	// request.
	maxCardinalityLabelNames = 100
)

// cardinality serves /api/v1/cardinality/label_names and label_values in
// the shape Mimir serves them (a bare JSON object, not the Prometheus
// envelope; errors in the envelope), and /api/v1/status/tsdb over a time
// range.
//
// Without start and end they count the series in the tenant's head
// (Mimir's count_method=inmemory); with both, the series with samples in
// [start, end] in the head and in every block, local or in the bucket. The
// cost is bounded by the series counted (maxSeries, and the tenant's
// max_query_series), the range by the tenant's max_query_length, and the
// answers by limit.
type cardinalityHandlers struct {
	src       CardinalitySource
	parser    parser.Parser
	limits    *limits.Overrides
	maxSeries int
}

// cardinalityRequest is the parsed parameters common to the endpoints.
type cardinalityRequest struct {
	id       string
	scope    blocks.CountScope
	matchers []*labels.Matcher
	limit    int
}

// badRequest is an error answered 400 bad_data.
type badRequest struct{ error }

func (h *cardinalityHandlers) parse(r *http.Request, defaultLimit, maxLimit int) (cardinalityRequest, error) {
	req := cardinalityRequest{limit: defaultLimit, scope: blocks.CountScope{Head: true}}
	req.id, _ = tenant.FromContext(r.Context())
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return req, badRequest{errors.New("limit must be a positive number")}
		}
		if n > maxLimit {
			return req, badRequest{fmt.Errorf("limit must not exceed %d", maxLimit)}
		}
		req.limit = n
	}
	if sel := r.FormValue("selector"); sel != "" {
		ms, err := h.parser.ParseMetricSelector(sel)
		if err != nil {
			return req, badRequest{fmt.Errorf("invalid selector: %w", err)}
		}
		req.matchers = ms
	}
	switch m := r.FormValue("count_method"); m {
	case "", "inmemory":
	default:
		return req, badRequest{fmt.Errorf("count_method %q is not supported: use inmemory (the head), or start and end for a time range", m)}
	}
	start, end := r.FormValue("start"), r.FormValue("end")
	if start == "" && end == "" {
		return req, nil
	}
	if start == "" || end == "" {
		return req, badRequest{errors.New("start and end go together: give both for a time range, neither for the head")}
	}
	st, ok1 := parseAPITime(start)
	et, ok2 := parseAPITime(end)
	if !ok1 || !ok2 {
		return req, badRequest{fmt.Errorf("cannot parse start %q or end %q as a time", start, end)}
	}
	if et.Before(st) {
		return req, badRequest{errors.New("end timestamp must not be before start time")}
	}
	if h.limits != nil {
		if l := h.limits.For(req.id); l.MaxQueryLength > 0 && et.Sub(st) > time.Duration(l.MaxQueryLength) {
			h.limits.Hit(req.id, "max_query_length")
			return req, badRequest{fmt.Errorf("the time range of %s exceeds the limit max_query_length=%s", et.Sub(st), l.MaxQueryLength)}
		}
	}
	req.scope = blocks.CountScope{MinTime: st.UnixMilli(), MaxTime: et.UnixMilli()}
	return req, nil
}

// count counts the request's series, bounded by the handler's and the
// tenant's series limits.
func (h *cardinalityHandlers) count(ctx context.Context, req cardinalityRequest) (*cardinality.Counts, error) {
	max := h.maxSeries
	if h.limits != nil {
		if l := h.limits.For(req.id).MaxQuerySeries; l > 0 && (max == 0 || l < max) {
			max = l
		}
	}
	c, err := h.src.SeriesCounts(ctx, req.id, req.scope, req.matchers, max)
	if errors.Is(err, cardinality.ErrTooManySeries) && h.limits != nil {
		h.limits.Hit(req.id, "max_query_series")
	}
	return c, err
}

// respondCountError answers an error of parse or count.
func respondCountError(w http.ResponseWriter, err error) {
	var bad badRequest
	switch {
	case errors.As(err, &bad):
		respondError(w, http.StatusBadRequest, "bad_data", err)
	case errors.Is(err, cardinality.ErrTooManySeries):
		respondError(w, http.StatusUnprocessableEntity, "cost_limit", err)
	case errors.Is(err, context.Canceled):
		respondError(w, 499, "canceled", err)
	case errors.Is(err, context.DeadlineExceeded):
		respondError(w, http.StatusServiceUnavailable, "timeout", err)
	default:
		respondError(w, http.StatusInternalServerError, "internal", err)
	}
}

func allowGetPost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		respondError(w, http.StatusMethodNotAllowed, "bad_data", fmt.Errorf("method %s not allowed", r.Method))
		return false
	}
	return true
}

// labelNamesResponse is Mimir's answer of /api/v1/cardinality/label_names.
type labelNamesResponse struct {
	LabelValuesCountTotal int              `json:"label_values_count_total"`
	LabelNamesCount       int              `json:"label_names_count"`
	Cardinality           []labelNameCount `json:"cardinality"`
}

type labelNameCount struct {
	LabelName        string `json:"label_name"`
	LabelValuesCount uint64 `json:"label_values_count"`
}

func (h *cardinalityHandlers) labelNames(w http.ResponseWriter, r *http.Request) {
	if !allowGetPost(w, r) {
		return
	}
	req, err := h.parse(r, defaultCardinalityLimit, maxCardinalityLimit)
	if err != nil {
		respondCountError(w, err)
		return
	}
	c, err := h.count(r.Context(), req)
	if err != nil {
		respondCountError(w, err)
		return
	}
	names, pairs, top := c.LabelNames(req.limit)
	res := labelNamesResponse{LabelValuesCountTotal: pairs, LabelNamesCount: names, Cardinality: make([]labelNameCount, 0, len(top))}
	for _, s := range top {
		res.Cardinality = append(res.Cardinality, labelNameCount{LabelName: s.Name, LabelValuesCount: s.Count})
	}
	respondJSON(w, res)
}

// labelValuesResponse is Mimir's answer of /api/v1/cardinality/label_values.
type labelValuesResponse struct {
	SeriesCountTotal uint64            `json:"series_count_total"`
	Labels           []labelValuesItem `json:"labels"`
}

type labelValuesItem struct {
	LabelName        string            `json:"label_name"`
	LabelValuesCount uint64            `json:"label_values_count"`
	SeriesCount      uint64            `json:"series_count"`
	Cardinality      []labelValueCount `json:"cardinality"`
}

type labelValueCount struct {
	LabelValue  string `json:"label_value"`
	SeriesCount uint64 `json:"series_count"`
}

func (h *cardinalityHandlers) labelValues(w http.ResponseWriter, r *http.Request) {
	if !allowGetPost(w, r) {
		return
	}
	if err := r.ParseForm(); err != nil {
		respondError(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	names := r.Form["label_names[]"]
	switch {
	case len(names) == 0:
		respondError(w, http.StatusBadRequest, "bad_data", errors.New("label_names[] is required"))
		return
	case len(names) > maxCardinalityLabelNames:
		respondError(w, http.StatusBadRequest, "bad_data", fmt.Errorf("at most %d label_names[] per request", maxCardinalityLabelNames))
		return
	}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			respondError(w, http.StatusBadRequest, "bad_data", fmt.Errorf("label_names[] must be distinct and not empty, got %q", n))
			return
		}
		seen[n] = true
	}
	req, err := h.parse(r, defaultCardinalityLimit, maxCardinalityLimit)
	if err != nil {
		respondCountError(w, err)
		return
	}
	c, err := h.count(r.Context(), req)
	if err != nil {
		respondCountError(w, err)
		return
	}
	res := labelValuesResponse{SeriesCountTotal: uint64(c.Series), Labels: make([]labelValuesItem, 0, len(names))}
	for _, n := range names {
		lv := c.LabelValues(n, req.limit)
		item := labelValuesItem{LabelName: n, LabelValuesCount: uint64(lv.Values), SeriesCount: uint64(lv.Series), Cardinality: make([]labelValueCount, 0, len(lv.Top))}
		for _, s := range lv.Top {
			item.Cardinality = append(item.Cardinality, labelValueCount{LabelValue: s.Name, SeriesCount: s.Count})
		}
		res.Labels = append(res.Labels, item)
	}
	// As Mimir: the labels with most series first.
	sortLabelValuesItems(res.Labels)
	respondJSON(w, res)
}

func sortLabelValuesItems(items []labelValuesItem) {
	// Stable: equal counts keep the request's order.
	slices.SortStableFunc(items, func(a, b labelValuesItem) int { return cmp.Compare(b.SeriesCount, a.SeriesCount) })
}

// respondJSON answers with v as a bare JSON object (Mimir's cardinality
// answers carry no envelope).
func respondJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		respondError(w, http.StatusInternalServerError, "internal", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
