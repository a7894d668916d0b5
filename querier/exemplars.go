package querier

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/tenant"
)

// ExemplarsPath is the ingesters' internal exemplar endpoint: the
// exemplars of the tenant of the X-Scope-OrgID header in [start, end] (ms)
// of the series matching any of the matcher sets of "match" (a JSON list of
// lists of matchers), as JSON.
const ExemplarsPath = "/ingester/exemplars"

type wireMatcher struct {
	Type  labels.MatchType `json:"type"`
	Name  string           `json:"name"`
	Value string           `json:"value"`
}

type wireExemplar struct {
	Labels labels.Labels `json:"labels"`
	Value  string        `json:"value"` // strconv: NaN and infinities are valid values
	Ts     int64         `json:"ts"`
	HasTs  bool          `json:"hasTs"`
}

type wireResult struct {
	Series    labels.Labels  `json:"series"`
	Exemplars []wireExemplar `json:"exemplars"`
}

// ExemplarsHandler serves ExemplarsPath from q.
func ExemplarsHandler(q storage.ExemplarQueryable) http.Handler {
	res := tenant.Resolver{} // the header is required: queriers set it
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := res.FromRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		start, err1 := strconv.ParseInt(r.FormValue("start"), 10, 64)
		end, err2 := strconv.ParseInt(r.FormValue("end"), 10, 64)
		var sets [][]wireMatcher
		err3 := json.Unmarshal([]byte(r.FormValue("match")), &sets)
		if err := errors.Join(err1, err2, err3); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ms := make([][]*labels.Matcher, 0, len(sets))
		for _, set := range sets {
			var one []*labels.Matcher
			for _, m := range set {
				lm, err := labels.NewMatcher(m.Type, m.Name, m.Value)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				one = append(one, lm)
			}
			ms = append(ms, one)
		}
		eq, err := q.ExemplarQuerier(tenant.WithID(r.Context(), id))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		results, err := eq.Select(start, end, ms...)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out := make([]wireResult, 0, len(results))
		for _, res := range results {
			wr := wireResult{Series: res.SeriesLabels, Exemplars: make([]wireExemplar, 0, len(res.Exemplars))}
			for _, e := range res.Exemplars {
				wr.Exemplars = append(wr.Exemplars, wireExemplar{Labels: e.Labels, Value: strconv.FormatFloat(e.Value, 'g', -1, 64), Ts: e.Ts, HasTs: e.HasTs})
			}
			out = append(out, wr)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// ExemplarQueryable returns local's exemplars (the querier's own store)
// merged with the ingesters' (read quorum as for samples): per series, an
// exemplar once, in time order.
func (r *Reader) ExemplarQueryable(local storage.ExemplarQueryable) storage.ExemplarQueryable {
	return exemplarQueryable{r: r, local: local}
}

type exemplarQueryable struct {
	r     *Reader
	local storage.ExemplarQueryable
}

func (q exemplarQueryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return nil, tenant.ErrNoTenant
	}
	lq, err := q.local.ExemplarQuerier(ctx)
	if err != nil {
		return nil, err
	}
	return exemplarQuerier{r: q.r, ctx: ctx, tenant: id, local: lq}, nil
}

type exemplarQuerier struct {
	r      *Reader
	ctx    context.Context // an ExemplarQuerier's Select takes none
	tenant string
	local  storage.ExemplarQuerier
}

func (q exemplarQuerier) Select(start, end int64, ms ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	results, err := q.local.Select(start, end, ms...)
	if err != nil {
		return nil, err
	}
	rs, err := q.r.opts.Ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		return nil, fmt.Errorf("ingesters to read from: %w", err)
	}
	sets := make([][]wireMatcher, 0, len(ms))
	for _, set := range ms {
		var one []wireMatcher
		for _, m := range set {
			one = append(one, wireMatcher{Type: m.Type, Name: m.Name, Value: m.Value})
		}
		sets = append(sets, one)
	}
	match, err := json.Marshal(sets)
	if err != nil {
		return nil, err
	}
	params := url.Values{"start": {strconv.FormatInt(start, 10)}, "end": {strconv.FormatInt(end, 10)}, "match": {string(match)}}
	answers := make([][]wireResult, len(rs.Instances))
	errs := make([]error, len(rs.Instances))
	var wg sync.WaitGroup
	for i, in := range rs.Instances {
		wg.Go(func() { answers[i], errs[i] = q.r.exemplarsOf(q.ctx, in.Addr, q.tenant, params) })
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed > rs.MaxErrors {
		return nil, fmt.Errorf("%d of %d ingesters failed to answer, at most %d may: %w", failed, len(rs.Instances), rs.MaxErrors, errors.Join(errs...))
	}
	bySeries := map[string]int{}
	for i, res := range results {
		bySeries[res.SeriesLabels.String()] = i
	}
	for _, a := range answers {
		for _, wr := range a {
			i, ok := bySeries[wr.Series.String()]
			if !ok {
				i = len(results)
				bySeries[wr.Series.String()] = i
				results = append(results, exemplar.QueryResult{SeriesLabels: wr.Series})
			}
			for _, we := range wr.Exemplars {
				v, err := strconv.ParseFloat(we.Value, 64)
				if err != nil {
					return nil, fmt.Errorf("exemplar value %q: %w", we.Value, err)
				}
				e := exemplar.Exemplar{Labels: we.Labels, Value: v, Ts: we.Ts, HasTs: we.HasTs}
				if !slices.ContainsFunc(results[i].Exemplars, func(x exemplar.Exemplar) bool { return sameExemplar(x, e) }) {
					results[i].Exemplars = append(results[i].Exemplars, e)
				}
			}
		}
	}
	for i := range results {
		slices.SortStableFunc(results[i].Exemplars, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
	}
	slices.SortFunc(results, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return results, nil
}

func (r *Reader) exemplarsOf(ctx context.Context, addr, id string, params url.Values) ([]wireResult, error) {
	return getJSON[[]wireResult](ctx, r, addr, id, ExemplarsPath, params, "exemplars")
}

// getJSON asks ingester addr for tenant id's answer at path and decodes
// it; what names the answer in errors.
func getJSON[T any](ctx context.Context, r *Reader, addr, id, path string, params url.Values, what string) (T, error) {
	var out T
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.opts.Scheme+"://"+addr+path+"?"+params.Encode(), nil)
	if err != nil {
		return out, err
	}
	req.Header.Set(tenant.HeaderName, id)
	resp, err := r.opts.Client.Do(req)
	if err != nil {
		return out, fmt.Errorf("%s of ingester %s: %w", what, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("%s of ingester %s: %s", what, addr, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("%s of ingester %s: %w", what, addr, err)
	}
	return out, nil
}

// sameExemplar reports whether a and b are one exemplar (values compared
// bit for bit, so that NaN equals NaN).
func sameExemplar(a, b exemplar.Exemplar) bool {
	return a.Ts == b.Ts && a.HasTs == b.HasTs && math.Float64bits(a.Value) == math.Float64bits(b.Value) && labels.Equal(a.Labels, b.Labels)
}
