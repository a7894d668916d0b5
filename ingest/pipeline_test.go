package ingest_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/ingest/rwproto"
	"github.com/strata-tsdb/strata/tenant"
)

const team = "team-a"

// write decodes the series (name, value pairs and one sample each) as a
// request of the protocol and writes it.
func write(t *testing.T, p *ingest.Pipeline, v2 bool, ts int64, series ...[]string) ingest.Result {
	t.Helper()
	var body []byte
	var err error
	if v2 {
		st := writev2.NewSymbolTable()
		var wr writev2.Request
		for i, kv := range series {
			s := writev2.TimeSeries{Samples: []writev2.Sample{{Timestamp: ts, Value: float64(i + 1)}}}
			for j := 0; j+1 < len(kv); j += 2 {
				s.LabelsRefs = append(s.LabelsRefs, st.Symbolize(kv[j]), st.Symbolize(kv[j+1]))
			}
			if i == 0 {
				s.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("Up.")}
			}
			wr.Timeseries = append(wr.Timeseries, s)
		}
		wr.Symbols = st.Symbols()
		body, err = wr.Marshal()
	} else {
		var wr prompb.WriteRequest
		for i, kv := range series {
			s := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: ts, Value: float64(i + 1)}}}
			for j := 0; j+1 < len(kv); j += 2 {
				s.Labels = append(s.Labels, prompb.Label{Name: kv[j], Value: kv[j+1]})
			}
			wr.Timeseries = append(wr.Timeseries, s)
		}
		body, err = wr.Marshal()
	}
	if err != nil {
		t.Fatal(err)
	}
	req := p.GetRequest()
	defer p.PutRequest(req)
	decode := rwproto.DecodeV1
	if v2 {
		decode = rwproto.DecodeV2
	}
	if derr := decode(body, req, true); derr != nil {
		t.Fatal(derr)
	}
	return p.Write(context.Background(), team, req, nil)
}

// stored returns the float samples of every series of the tenant.
func stored(t *testing.T, s *blocks.Store) map[string][]float64 {
	t.Helper()
	ctx := tenant.WithID(context.Background(), team)
	q, err := s.Queryable().Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string][]float64{}
	set := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			_, v := it.At()
			out[set.At().Labels().String()] = append(out[set.At().Labels().String()], v)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCachedSeriesAreStoredAndRejectedAlike sends the same requests several
// times, so that later ones hit the reference cache, and checks that what
// is stored and rejected does not depend on the cache: also when a cached
// reference went stale or a cache entry belongs to another label set (a
// hash collision).
func TestCachedSeriesAreStoredAndRejectedAlike(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v2=%v", v2), func(t *testing.T) {
			store, err := blocks.Open(blocks.Options{Dir: t.TempDir(), OutOfOrderWindow: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			now := time.Now().Truncate(time.Second).UnixMilli()
			p := ingest.New(store, ingest.Options{Decoders: rwproto.Decoders(true)})
			up, load := []string{"__name__", "up", "job", "node"}, []string{"__name__", "load", "job", "node"}
			if !v2 {
				load = append(load, "empty", "") // a label without value is no label
			}
			post := func(ts int64) {
				t.Helper()
				res := write(t, p, v2, ts, up, load, []string{"__name__", "x", "z", "1", "a", "2"})
				if res.Err == nil || res.Err.Code != http.StatusBadRequest || res.Samples != 2 || res.Rejected[ingest.ReasonInvalidLabels] != 1 {
					t.Fatalf("result %+v, want 2 samples stored, 1 rejected for invalid labels, 400", res)
				}
			}
			for i := range 3 {
				post(now - int64(3-i)*1000)
			}
			if n := p.CacheLen(team); n != 2 {
				t.Fatalf("cache holds %d series, want the 2 valid ones", n)
			}
			// Make the cached refs wrong: one stale, one pointing at the other series.
			upKey, loadKey := ingest.KeyOf(up...), ingest.KeyOf(load[:4]...)
			upLs, upRef, _ := p.CacheGet(team, upKey)
			loadLs, loadRef, _ := p.CacheGet(team, loadKey)
			p.CachePut(team, upKey, upLs, 1<<40)
			p.CachePut(team, loadKey, upLs, upRef) // a colliding entry: labels of another series
			post(now)
			if ls, ref, _ := p.CacheGet(team, loadKey); ref != loadRef || !labels.Equal(ls, loadLs) {
				t.Errorf("colliding entry not replaced: %v %d, want %v %d", ls, ref, loadLs, loadRef)
			}
			want := map[string][]float64{`{__name__="up", job="node"}`: {1, 1, 1, 1}, `{__name__="load", job="node"}`: {2, 2, 2, 2}}
			if got := stored(t, store); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("stored %v, want %v", got, want)
			}
		})
	}
}
