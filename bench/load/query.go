package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/strata-tsdb/strata/internal/gen"
)

// Queries is the fixed query set of package gen, run as range queries
// over the ingested data.
var Queries = gen.Queries

// QueryStep is the resolution of the range queries.
const QueryStep = gen.QueryStep

// QueryResult is the latency of one query on each system.
type QueryResult struct {
	Query string
	// Median latency over the timed runs, per system.
	Prometheus, Strata time.Duration
	// Same is whether both returned the same data.
	Same bool
	// Series is the number of series in the answer.
	Series int
	// Diff describes how the answers differ when they are not the same.
	Diff string
}

// rangeQuery runs q over [start, end] and returns the response's data
// field, as sent, and the time the request took.
func rangeQuery(ctx context.Context, client *http.Client, base, q string, start, end int64) (json.RawMessage, time.Duration, error) {
	v := url.Values{
		"query": {q},
		"start": {strconv.FormatFloat(float64(start)/1000, 'f', -1, 64)},
		"end":   {strconv.FormatFloat(float64(end)/1000, 'f', -1, 64)},
		"step":  {strconv.FormatFloat(QueryStep.Seconds(), 'f', -1, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query_range?"+v.Encode(), nil)
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("query %s: %w", q, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(t0)
	if err != nil {
		return nil, 0, fmt.Errorf("query %s: %w", q, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("query %s on %s: status %d: %s", q, base, resp.StatusCode, body)
	}
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return nil, 0, fmt.Errorf("query %s on %s: unexpected answer %.200s", q, base, body)
	}
	return r.Data, took, nil
}

// seriesCount is the number of series in a matrix result.
func seriesCount(data json.RawMessage) int {
	var d struct {
		Result []json.RawMessage `json:"result"`
	}
	_ = json.Unmarshal(data, &d)
	return len(d.Result)
}

// RunQueries runs every query once on both systems to compare their
// answers (untimed warm-up), then runs times more on each, alternating
// which system goes first, and returns the median latencies.
func RunQueries(ctx context.Context, prom, strata *Server, start, end int64, runs int) ([]QueryResult, error) {
	client := &http.Client{}
	defer client.CloseIdleConnections()
	out := make([]QueryResult, len(Queries))
	for i, q := range Queries {
		a, _, err := rangeQuery(ctx, client, prom.URL, q, start, end)
		if err != nil {
			return nil, err
		}
		b, _, err := rangeQuery(ctx, client, strata.URL, q, start, end)
		if err != nil {
			return nil, err
		}
		out[i] = QueryResult{Query: q, Same: bytes.Equal(a, b), Series: seriesCount(a)}
		if !out[i].Same {
			out[i].Diff = diffMatrix(a, b)
		}
	}
	lat := make([][2][]time.Duration, len(Queries))
	for r := range runs {
		for i, q := range Queries {
			order := []*Server{prom, strata}
			if r%2 == 1 {
				order = []*Server{strata, prom}
			}
			for _, s := range order {
				_, took, err := rangeQuery(ctx, client, s.URL, q, start, end)
				if err != nil {
					return nil, err
				}
				k := 0
				if s == strata {
					k = 1
				}
				lat[i][k] = append(lat[i][k], took)
			}
		}
	}
	for i := range out {
		out[i].Prometheus = median(lat[i][0])
		out[i].Strata = median(lat[i][1])
	}
	return out, nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type matrix struct {
	Result []struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	} `json:"result"`
}

// diffMatrix describes how two matrix answers differ: in their series and
// points, or only in the values, by how much at most.
func diffMatrix(a, b json.RawMessage) string {
	var ma, mb matrix
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return "answers are not both matrices"
	}
	if len(ma.Result) != len(mb.Result) {
		return fmt.Sprintf("%d series vs %d", len(ma.Result), len(mb.Result))
	}
	maxRel, first := 0.0, ""
	for i := range ma.Result {
		ra, rb := ma.Result[i], mb.Result[i]
		if fmt.Sprint(ra.Metric) != fmt.Sprint(rb.Metric) {
			return fmt.Sprintf("series %d: %v vs %v", i, ra.Metric, rb.Metric)
		}
		if len(ra.Values) != len(rb.Values) {
			return fmt.Sprintf("series %v: %d points vs %d", ra.Metric, len(ra.Values), len(rb.Values))
		}
		for j := range ra.Values {
			if ra.Values[j][0] != rb.Values[j][0] {
				return fmt.Sprintf("series %v: point %d at %v vs %v", ra.Metric, j, ra.Values[j][0], rb.Values[j][0])
			}
			sa, _ := ra.Values[j][1].(string)
			sb, _ := rb.Values[j][1].(string)
			if sa == sb {
				continue
			}
			fa, err1 := strconv.ParseFloat(sa, 64)
			fb, err2 := strconv.ParseFloat(sb, 64)
			if err1 != nil || err2 != nil {
				return fmt.Sprintf("series %v: value %q vs %q", ra.Metric, sa, sb)
			}
			rel := math.Abs(fa-fb) / math.Max(math.Abs(fa), math.Abs(fb))
			if rel > maxRel {
				maxRel = rel
				first = fmt.Sprintf("%v at %v: %s vs %s", ra.Metric, ra.Values[j][0], sa, sb)
			}
		}
	}
	return fmt.Sprintf("same series and timestamps; values differ by at most %.3g relative (%s)", maxRel, first)
}
