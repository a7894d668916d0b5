package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/tenant"
)

// HeadStatsSource gives the cardinality statistics of a tenant's head.
type HeadStatsSource interface {
	// HeadStats returns the statistics of tenant id's head, grouped by the
	// label statsByLabelName and cut to the limit largest entries; false
	// when the tenant has no head (it has written nothing).
	HeadStats(id, statsByLabelName string, limit int) (*tsdb.Stats, bool)
}

// maxTSDBStatusLimit is the largest limit /api/v1/status/tsdb accepts, as in
// Prometheus.
const maxTSDBStatusLimit = 10000

// tsdbStatusHandler answers /api/v1/status/tsdb for the tenant of the
// request, in Prometheus's response shape. Prometheus's own handler asks one
// database with no request context, so it cannot tell tenants apart.
func tsdbStatusHandler(src HeadStatsSource, g prometheus.Gatherer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			respondError(w, http.StatusMethodNotAllowed, "bad_data", fmt.Errorf("method %s not allowed", r.Method))
			return
		}
		limit := 10
		if s := r.FormValue("limit"); s != "" {
			var err error
			if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
				respondError(w, http.StatusBadRequest, "bad_data", errors.New("limit must be a positive number"))
				return
			}
			if limit > maxTSDBStatusLimit {
				respondError(w, http.StatusBadRequest, "bad_data", fmt.Errorf("limit must not exceed %d", maxTSDBStatusLimit))
				return
			}
		}
		id, _ := tenant.FromContext(r.Context())
		status := v1.TSDBStatus{
			HeadStats:                   v1.HeadStats{MinTime: math.MaxInt64, MaxTime: math.MinInt64},
			SeriesCountByMetricName:     []v1.TSDBStat{},
			LabelValueCountByLabelName:  []v1.TSDBStat{},
			MemoryInBytesByLabelName:    []v1.TSDBStat{},
			SeriesCountByLabelValuePair: []v1.TSDBStat{},
		}
		if s, ok := src.HeadStats(id, labels.MetricName, limit); ok {
			status = v1.TSDBStatus{
				HeadStats: v1.HeadStats{
					NumSeries:     s.NumSeries,
					ChunkCount:    headChunks(g, id),
					MinTime:       s.MinTime,
					MaxTime:       s.MaxTime,
					NumLabelPairs: s.IndexPostingStats.NumLabelPairs,
				},
				SeriesCountByMetricName:     v1.TSDBStatsFromIndexStats(s.IndexPostingStats.CardinalityMetricsStats),
				LabelValueCountByLabelName:  v1.TSDBStatsFromIndexStats(s.IndexPostingStats.CardinalityLabelStats),
				MemoryInBytesByLabelName:    v1.TSDBStatsFromIndexStats(s.IndexPostingStats.LabelValueStats),
				SeriesCountByLabelValuePair: v1.TSDBStatsFromIndexStats(s.IndexPostingStats.LabelValuePairsStats),
			}
		}
		respondSuccess(w, status)
	}
}

// headChunks reads the tenant's prometheus_tsdb_head_chunks gauge, which
// each tenant's TSDB registers with a tenant label; 0 when it is not there.
func headChunks(g prometheus.Gatherer, id string) int64 {
	if g == nil {
		return 0
	}
	families, err := g.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range families {
		if mf.GetName() != "prometheus_tsdb_head_chunks" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "tenant" && lp.GetValue() == id && m.GetGauge() != nil {
					return int64(m.GetGauge().GetValue())
				}
			}
		}
	}
	return 0
}
