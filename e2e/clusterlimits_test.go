package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/distributor"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/limits"
)

// ringTokens reads every member's tokens from the ring as the process at
// base sees it.
func ringTokens(t *testing.T, base string) map[string][]uint32 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/ring", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Shards []struct {
			ID     string   `json:"id"`
			Tokens []uint32 `json:"tokens"`
		} `json:"shards"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	out := map[string][]uint32{}
	for _, s := range r.Shards {
		out[s.ID] = s.Tokens
	}
	return out
}

// replicas returns the rf members owning key: those of the first tokens
// after it, clockwise, each member once (dskit's ring with every member
// healthy and ACTIVE).
func replicas(tokens map[string][]uint32, key uint32, rf int) []string {
	type owned struct {
		tok uint32
		id  string
	}
	var all []owned
	for id, ts := range tokens {
		for _, tok := range ts {
			all = append(all, owned{tok, id})
		}
	}
	slices.SortFunc(all, func(a, b owned) int { return cmp.Compare(a.tok, b.tok) })
	i, _ := slices.BinarySearchFunc(all, key, func(o owned, k uint32) int { return cmp.Compare(o.tok, k) })
	for i < len(all) && all[i].tok <= key {
		i++
	}
	var out []string
	for n := 0; n < len(all) && len(out) < rf; n++ {
		o := all[(i+n)%len(all)]
		if !slices.Contains(out, o.id) {
			out = append(out, o.id)
		}
	}
	return out
}

// TestClusterSeriesLimit runs four ingesters, a distributor and a querier
// with a tenant's max_active_series of N, and writes 3N new series of the
// tenant in requests of ten: each ingester takes its share, N × 3 / 4, so
// that the cluster stores about N series, within the bounds the ring's
// tokens give (from the first ingester full, every series before it kept,
// to the last one full, none after it). Requests with series beyond the
// limit are answered 400 naming the limit, never 5xx; series acknowledged
// are written again (one per request, answered 204) and keep their
// samples. When an ingester leaves, the others' shares grow and new series
// are taken again. Another tenant loses nothing.
func TestClusterSeriesLimit(t *testing.T) {
	requireE2E(t)
	const (
		limit  = 200
		total  = 3 * limit
		perReq = 10
		rf     = 3
	)
	names := []string{"ingester-1", "ingester-2", "ingester-3", "ingester-4"}
	c := newTestCluster(t, names...)
	start := time.Now()
	lim := fmt.Sprintf("-limits.max-active-series=%d", limit)
	var ings []*strataProc
	for _, n := range names {
		ings = append(ings, c.start(n, "ingester", "", t.TempDir(), lim))
	}
	dist := c.start("distributor", "distributor", "", t.TempDir(), lim)
	q := c.start("querier", "querier", "", t.TempDir(), lim)
	// Every ingester must count four healthy ingesters before the first
	// new series (its count is cached for a second).
	for _, p := range append([]*strataProc{dist, q}, ings...) {
		waitActive(t, p.url, start, names...)
	}
	waitHealthyIngesters(t, ings, len(names))

	ts := time.Now().Add(-time.Minute).UnixMilli()
	series := func(i int) prompb.TimeSeries {
		return newSeries([]prompb.Sample{{Timestamp: ts, Value: float64(i)}}, "__name__", "limit_test", "i", fmt.Sprint(i))
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	write := func(tenant string, ss ...prompb.TimeSeries) (int, string) {
		t.Helper()
		code, body, err := sendWriteV1(context.Background(), hc, dist.url+"/api/v1/write", tenant, &prompb.WriteRequest{Timeseries: ss})
		if err != nil {
			t.Fatalf("write as %s: %v", tenant, err)
		}
		return code, body
	}

	var acked []int // series of requests answered 204
	refused := 0
	for i := 0; i < total; i += perReq {
		var ss []prompb.TimeSeries
		for k := i; k < i+perReq; k++ {
			ss = append(ss, series(k))
		}
		switch code, body := write("limited", ss...); {
		case code == http.StatusNoContent:
			for k := i; k < i+perReq; k++ {
				acked = append(acked, k)
			}
		case code == http.StatusBadRequest:
			refused++
			if want := fmt.Sprintf("share of the cluster's limit of %d (%d × %d replicas / 4 healthy ingesters) (limit max_active_series)", limit, limit, rf); !strings.Contains(body, want) {
				t.Errorf("series %d-%d: HTTP 400 %q, want the limit named: %q", i, i+perReq-1, body, want)
			}
		default:
			t.Fatalf("series %d-%d: HTTP %d %q, want 204 or 400", i, i+perReq-1, code, body)
		}
	}

	// Bounds from the ring: the series written when the first and the
	// last ingester took their share.
	tokens := ringTokens(t, dist.url)
	share := limits.LocalLimit(limit, rf, len(names))
	taken := map[string]int{}
	full := map[string]int{} // ingester → series written when it was full
	for i := range total {
		ls := labels.FromStrings("__name__", "limit_test", "i", fmt.Sprint(i))
		for _, id := range replicas(tokens, distributor.Token("limited", ls), rf) {
			if taken[id]++; taken[id] == share {
				full[id] = i + 1
			}
		}
	}
	if len(full) != len(names) {
		t.Fatalf("only %v of the ingesters got their share of %d series of the %d written: the test writes too few", full, share, total)
	}
	lo, hi := total, 0
	for _, n := range full {
		lo, hi = min(lo, n), max(hi, n)
	}
	api := newAPIClient(q.url, "limited")
	stored, _ := scalarValue(t, api, `count(limit_test)`, ts+1000)
	t.Logf("limit %d, share %d per ingester; stored %v series (bounds from the ring's tokens: %d to %d); %d of %d requests answered 400, %d series acknowledged",
		limit, share, stored, lo, hi, refused, total/perReq, len(acked))
	// A request's pushes beyond the quorum finish after its answer, so an
	// ingester may take the next request's series first: one request's
	// worth either way.
	if int(stored) < lo-perReq || int(stored) > hi+perReq {
		t.Errorf("the cluster stores %v series of a tenant limited to %d; want %d to %d", stored, limit, lo-perReq, hi+perReq)
	}
	if refused == 0 || len(acked) == 0 {
		t.Errorf("%d requests refused, %d series acknowledged: want both", refused, len(acked))
	}

	// Acknowledged series are in a quorum of WALs: written again, each
	// alone in its request, at most one of its replicas refuses it (a
	// minority): 204, and the new sample is stored.
	for _, i := range acked {
		s := series(i)
		s.Samples[0].Timestamp = ts + 1000
		if code, body := write("limited", s); code != http.StatusNoContent {
			t.Fatalf("acknowledged series %d written again: HTTP %d %q, want 204", i, code, body)
		}
	}
	if n, _ := scalarValue(t, api, `count(count_over_time(limit_test[1m]) == 2)`, ts+2000); int(n) != len(acked) {
		t.Errorf("%v series with both samples, want the %d acknowledged", n, len(acked))
	}
	// The shares follow the ring: every ingester is full, so new series
	// are refused; once ingester-4 has left (SIGTERM) and the others count
	// three healthy ingesters, each allows the whole limit (no more
	// ingesters than replicas) and takes new series again.
	fresh := func(from int) []prompb.TimeSeries {
		var ss []prompb.TimeSeries
		for k := from; k < from+perReq; k++ {
			ss = append(ss, series(k))
		}
		return ss
	}
	if code, body := write("limited", fresh(total)...); code != http.StatusBadRequest {
		t.Fatalf("new series with every ingester full: HTTP %d %q, want 400", code, body)
	}
	if err := ings[3].Stop(2 * time.Minute); err != nil {
		t.Fatalf("ingester-4 on SIGTERM: %v", err)
	}
	left := time.Now()
	for _, p := range append([]*strataProc{dist}, ings[:3]...) {
		waitActive(t, p.url, left, names[:3]...)
	}
	waitHealthyIngesters(t, ings[:3], 3)
	if code, body := write("limited", fresh(total+perReq)...); code != http.StatusNoContent {
		t.Errorf("new series once three ingesters share the limit: HTTP %d %q, want 204", code, body)
	}

	// Another tenant is not limited by the first's series.
	var other []prompb.TimeSeries
	for i := range 2 * limit / 10 {
		other = append(other, series(i))
	}
	for i := 0; i < len(other); i += perReq {
		if code, body := write("other", other[i:i+perReq]...); code != http.StatusNoContent {
			t.Fatalf("tenant other: HTTP %d %q, want 204", code, body)
		}
	}
	if n, _ := scalarValue(t, newAPIClient(q.url, "other"), `count(limit_test)`, ts+1000); int(n) != len(other) {
		t.Errorf("tenant other stores %v series, want %d", n, len(other))
	}
}

// waitHealthyIngesters waits until each of ings counts n healthy ingesters
// in the ring, the count its share of a series limit is computed from.
func waitHealthyIngesters(t *testing.T, ings []*strataProc, n int) {
	t.Helper()
	for _, p := range ings {
		testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%s counts %d healthy ingesters", p.url, n), func() bool {
			return testutil.Metric(t, p.metrics(), "strata_ring_healthy_ingesters") == float64(n)
		})
	}
}
