package api

import (
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/cardinality"
)

// maxTSDBStatusLimit is the largest limit /api/v1/status/tsdb accepts, as in
// Prometheus.
const maxTSDBStatusLimit = 10000

// tsdbStatus is Prometheus's answer of /api/v1/status/tsdb and, over a time
// range, what was counted there.
type tsdbStatus struct {
	v1.TSDBStatus
	Range *tsdbRange `json:"range,omitempty"`
}

// tsdbRange is what /api/v1/status/tsdb counted over a time range: the
// lists of the answer are about these series, headStats still about the
// head.
type tsdbRange struct {
	// Start and End are the range's bounds in milliseconds.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// NumSeries is the series with samples in the range, in the head and
	// every block.
	NumSeries int `json:"numSeries"`
	// NumLabelPairs is their distinct label pairs.
	NumLabelPairs int `json:"numLabelPairs"`
}

// tsdbStatus answers /api/v1/status/tsdb for the tenant of the request, in
// Prometheus's response shape. Prometheus's own handler asks one database
// with no request context, so it cannot tell tenants apart. Without start
// and end it covers the head, as Prometheus; with both, the lists cover the
// series with samples in the range in the head and every block (local and
// in the bucket), with what was counted under "range".
func (h *cardinalityHandlers) tsdbStatus(g prometheus.Gatherer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allowGetPost(w, r) {
			return
		}
		req, err := h.parse(r, 10, maxTSDBStatusLimit)
		if err != nil {
			respondCountError(w, err)
			return
		}
		status := tsdbStatus{TSDBStatus: v1.TSDBStatus{
			HeadStats:                   v1.HeadStats{MinTime: math.MaxInt64, MaxTime: math.MinInt64},
			SeriesCountByMetricName:     []v1.TSDBStat{},
			LabelValueCountByLabelName:  []v1.TSDBStat{},
			MemoryInBytesByLabelName:    []v1.TSDBStat{},
			SeriesCountByLabelValuePair: []v1.TSDBStat{},
		}}
		if s, ok := h.src.HeadStats(req.id, labels.MetricName, req.limit); ok {
			status.TSDBStatus = v1.TSDBStatus{
				HeadStats: v1.HeadStats{
					NumSeries:     s.NumSeries,
					ChunkCount:    headChunks(g, req.id),
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
		if !req.scope.Head {
			c, err := h.count(r.Context(), req)
			if err != nil {
				respondCountError(w, err)
				return
			}
			st := c.TSDBStats(labels.MetricName, req.limit)
			status.SeriesCountByMetricName = tsdbStats(st.SeriesCountByMetricName)
			status.LabelValueCountByLabelName = tsdbStats(st.LabelValueCountByLabelName)
			status.MemoryInBytesByLabelName = tsdbStats(st.MemoryInBytesByLabelName)
			status.SeriesCountByLabelValuePair = tsdbStats(st.SeriesCountByLabelValuePair)
			status.Range = &tsdbRange{Start: req.scope.MinTime, End: req.scope.MaxTime, NumSeries: c.Series, NumLabelPairs: st.NumLabelPairs}
		}
		respondSuccess(w, status)
	}
}

func tsdbStats(stats []cardinality.Stat) []v1.TSDBStat {
	out := make([]v1.TSDBStat, 0, len(stats))
	for _, s := range stats {
		out = append(out, v1.TSDBStat{Name: s.Name, Value: s.Count})
	}
	return out
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
