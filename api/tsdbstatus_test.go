package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/tenant"
)

func TestTSDBStatusPerTenant(t *testing.T) {
	reg := prometheus.NewRegistry()
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	start := time.Now().Truncate(time.Minute).Add(-time.Hour).UnixMilli()
	write := func(id string, series map[string]int) {
		app, err := store.Appender(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for name, n := range series {
			for i := range n {
				ls := labels.FromStrings("__name__", name, "i", fmt.Sprint(i))
				for j := range 10 {
					if _, err := app.Append(0, ls, 0, start+int64(j)*15000, 1, nil, nil, storage.AppendV2Options{}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	write("a", map[string]int{"m1": 3, "m2": 2})
	write("b", map[string]int{"other": 1})

	srv := httptest.NewServer(New(Options{
		Tenants:     tenant.Resolver{Default: "a"},
		Cardinality: store,
		Registerer:  prometheus.NewRegistry(),
		Gatherer:    reg,
	}))
	t.Cleanup(srv.Close)

	empty := []v1.TSDBStat{}
	tests := []struct {
		name, tenant, query string
		code                int
		want                *v1.TSDBStatus
		wantErr             string
	}{
		{"tenant a", "a", "", http.StatusOK, &v1.TSDBStatus{
			HeadStats:                   v1.HeadStats{NumSeries: 5, NumLabelPairs: 5, ChunkCount: 5, MinTime: start, MaxTime: start + 9*15000},
			SeriesCountByMetricName:     []v1.TSDBStat{{Name: "m1", Value: 3}, {Name: "m2", Value: 2}},
			LabelValueCountByLabelName:  []v1.TSDBStat{{Name: "i", Value: 3}, {Name: "__name__", Value: 2}},
			MemoryInBytesByLabelName:    []v1.TSDBStat{{Name: "__name__"}, {Name: "i"}},
			SeriesCountByLabelValuePair: []v1.TSDBStat{{Name: "__name__=m1", Value: 3}, {Name: "i=0", Value: 2}, {Name: "i=1", Value: 2}, {Name: "__name__=m2", Value: 2}, {Name: "i=2", Value: 1}},
		}, ""},
		{"tenant b sees only its own", "b", "", http.StatusOK, &v1.TSDBStatus{
			HeadStats:                   v1.HeadStats{NumSeries: 1, NumLabelPairs: 2, ChunkCount: 1, MinTime: start, MaxTime: start + 9*15000},
			SeriesCountByMetricName:     []v1.TSDBStat{{Name: "other", Value: 1}},
			LabelValueCountByLabelName:  []v1.TSDBStat{{Name: "__name__", Value: 1}, {Name: "i", Value: 1}},
			MemoryInBytesByLabelName:    []v1.TSDBStat{{Name: "__name__"}, {Name: "i"}},
			SeriesCountByLabelValuePair: []v1.TSDBStat{{Name: "__name__=other", Value: 1}, {Name: "i=0", Value: 1}},
		}, ""},
		{"tenant without data", "c", "", http.StatusOK, &v1.TSDBStatus{
			HeadStats:               v1.HeadStats{MinTime: math.MaxInt64, MaxTime: math.MinInt64},
			SeriesCountByMetricName: empty, LabelValueCountByLabelName: empty, MemoryInBytesByLabelName: empty, SeriesCountByLabelValuePair: empty,
		}, ""},
		{"limit", "a", "?limit=1", http.StatusOK, nil, ""},
		{"bad limit", "a", "?limit=0", http.StatusBadRequest, nil, "limit must be a positive number"},
		{"limit too large", "a", "?limit=10001", http.StatusBadRequest, nil, "limit must not exceed 10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/status/tsdb"+tc.query, nil)
			req.Header.Set(tenant.HeaderName, tc.tenant)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			var got struct {
				Status    string        `json:"status"`
				ErrorType string        `json:"errorType"`
				Error     string        `json:"error"`
				Data      v1.TSDBStatus `json:"data"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if tc.wantErr != "" {
				if got.Status != "error" || got.ErrorType != "bad_data" || got.Error != tc.wantErr {
					t.Fatalf("answer %s, want bad_data %q", body, tc.wantErr)
				}
				return
			}
			if tc.want == nil { // limit=1
				if n := len(got.Data.SeriesCountByMetricName); n != 1 || got.Data.SeriesCountByMetricName[0].Name != "m1" {
					t.Fatalf("limit=1: seriesCountByMetricName %v, want only m1", got.Data.SeriesCountByMetricName)
				}
				return
			}
			// The memory figures are the head's own estimate: checked for
			// their label names and a positive size only.
			for i := range got.Data.MemoryInBytesByLabelName {
				if got.Data.MemoryInBytesByLabelName[i].Value == 0 {
					t.Errorf("memoryInBytesByLabelName %v has a zero size", got.Data.MemoryInBytesByLabelName)
				}
				got.Data.MemoryInBytesByLabelName[i].Value = 0
			}
			// Entries of equal count come in no fixed order.
			for _, st := range []*v1.TSDBStatus{&got.Data, tc.want} {
				for _, l := range [][]v1.TSDBStat{st.SeriesCountByMetricName, st.LabelValueCountByLabelName, st.MemoryInBytesByLabelName, st.SeriesCountByLabelValuePair} {
					sort.SliceStable(l, func(i, j int) bool {
						if l[i].Value != l[j].Value {
							return l[i].Value > l[j].Value
						}
						return l[i].Name < l[j].Name
					})
				}
			}
			if !reflect.DeepEqual(got.Data, *tc.want) {
				t.Errorf("status\n got %+v\nwant %+v", got.Data, *tc.want)
			}
		})
	}
}
