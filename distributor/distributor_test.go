package distributor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/distributor"
	"github.com/strata-tsdb/strata/ingest"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/remotewrite"
	"github.com/strata-tsdb/strata/tenant"
)

// fakeIngester answers pushes with a fixed status and records the samples
// of the pushes it answered 2xx, by series.
type fakeIngester struct {
	srv    *httptest.Server
	status int
	msg    string

	mu       sync.Mutex
	tenants  []string
	samples  map[string][]writev2.Sample
	metadata map[string]prompb.MetricMetadata // remote write 1.0 metadata, by family
	// exemplars of series without samples (remote write 1.0) and of series
	// with samples (2.0), by series
	exemplars map[string][]float64
}

func newFakeIngester(t *testing.T, status int, msg string) *fakeIngester {
	f := &fakeIngester{status: status, msg: msg, samples: map[string][]writev2.Sample{}, metadata: map[string]prompb.MetricMetadata{}, exemplars: map[string][]float64{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != distributor.PushPath {
			t.Errorf("push to %s, want %s", r.URL.Path, distributor.PushPath)
		}
		compressed, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, compressed)
		if err != nil {
			t.Errorf("push body: %v", err)
		}
		if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, "io.prometheus.write.v2.Request") {
			// Remote write 1.0: metric metadata, or exemplars of series
			// without samples.
			var req prompb.WriteRequest
			if err := req.Unmarshal(raw); err != nil {
				t.Errorf("push of Content-Type %q: %v", ct, err)
			}
			f.mu.Lock()
			for _, m := range req.Metadata {
				f.metadata[r.Header.Get(tenant.HeaderName)+"/"+m.MetricFamilyName] = m
			}
			for _, ts := range req.Timeseries {
				if len(ts.Samples) > 0 || len(ts.Histograms) > 0 || len(ts.Exemplars) == 0 {
					t.Errorf("remote write 1.0 push of a series with samples or without exemplars: %v", ts)
				}
				sb := labels.NewScratchBuilder(4)
				key := ts.ToLabels(&sb, nil).String()
				for _, e := range ts.Exemplars {
					f.exemplars[key] = append(f.exemplars[key], e.Value)
				}
			}
			f.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var req writev2.Request
		if err := req.Unmarshal(raw); err != nil {
			t.Errorf("push body: %v", err)
		}
		if f.status/100 != 2 {
			http.Error(w, f.msg, f.status)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.tenants = append(f.tenants, r.Header.Get(tenant.HeaderName))
		b := labels.NewScratchBuilder(8)
		for _, ts := range req.Timeseries {
			ls, err := ts.ToLabels(&b, req.Symbols)
			if err != nil {
				t.Errorf("push series: %v", err)
			}
			f.samples[ls.String()] = append(f.samples[ls.String()], ts.Samples...)
			for _, e := range ts.Exemplars {
				f.exemplars[ls.String()] = append(f.exemplars[ls.String()], e.Value)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIngester) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// fakeRing puts every key on all its instances, with a quorum of a majority,
// as dskit's ring does when the replication factor is the number of
// ingesters.
type fakeRing struct{ instances []ring.InstanceDesc }

func (r fakeRing) Get(uint32, ring.Operation, []ring.InstanceDesc, []string, []string) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: r.instances, MaxErrors: len(r.instances) - (len(r.instances)/2 + 1)}, nil
}
func (r fakeRing) GetAllHealthy(ring.Operation) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: r.instances}, nil
}
func (r fakeRing) ReplicationFactor() int { return len(r.instances) }
func (r fakeRing) InstancesCount() int    { return len(r.instances) }

// writeBody is a remote write 1.0 body of two series with two samples each.
func writeBody(t *testing.T) []byte {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "a"}}, Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 2}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "b"}}, Samples: []prompb.Sample{{Timestamp: 1500, Value: 0.5}, {Timestamp: 2500, Value: -3}}},
	}}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

// seriesLimitMsg is an ingester's refusal of a series beyond its share of
// the tenant's series limit (limits.SeriesTracker).
const seriesLimitMsg = "tenant has 750 active series in this ingester, the most it may have: its share of the cluster's limit of 1000 (1000 × 3 replicas / 4 healthy ingesters) (limit max_active_series) at timestamp 1000 for series {__name__=\"up\", job=\"a\"}"

// TestQuorum sends remote write requests through the receiver and pipeline
// of a distributor to three ingesters answering as each case says, and
// checks the sender's answer and what the ingesters that accepted got.
func TestQuorum(t *testing.T) {
	down := func(t *testing.T) *fakeIngester {
		f := newFakeIngester(t, http.StatusNoContent, "")
		f.srv.Close() // connection refused
		return f
	}
	ok := func(t *testing.T) *fakeIngester { return newFakeIngester(t, http.StatusNoContent, "") }
	status := func(code int, msg string) func(t *testing.T) *fakeIngester {
		return func(t *testing.T) *fakeIngester { return newFakeIngester(t, code, msg) }
	}
	for _, tc := range []struct {
		name      string
		ingesters []func(*testing.T) *fakeIngester
		want      int
		wantBody  string
	}{
		{"all write", []func(*testing.T) *fakeIngester{ok, ok, ok}, http.StatusNoContent, ""},
		{"one fails", []func(*testing.T) *fakeIngester{ok, status(500, "disk"), ok}, http.StatusNoContent, ""},
		{"one down", []func(*testing.T) *fakeIngester{down, ok, ok}, http.StatusNoContent, ""},
		{"two fail: no quorum", []func(*testing.T) *fakeIngester{status(503, "full"), ok, down}, http.StatusServiceUnavailable, "no quorum"},
		{"all down", []func(*testing.T) *fakeIngester{down, down, down}, http.StatusServiceUnavailable, "no quorum"},
		{"rejected by all: 400, the valid rest stored", []func(*testing.T) *fakeIngester{status(400, "out of order sample for series up"), status(400, "out of order sample for series up"), status(400, "out of order sample for series up")}, http.StatusBadRequest, "out of order sample"},
		{"refused as a whole by a quorum", []func(*testing.T) *fakeIngester{status(413, "too big"), status(413, "too big"), ok}, http.StatusRequestEntityTooLarge, "too big"},
		// An ingester over its share of the tenant's series limit stores the
		// request's other series and answers 400. Refused by a quorum of
		// some series' replicas, the request is answered 400 (the sender
		// must not resend it), never 5xx, whatever the third replica does;
		// refused by one replica only, every series is in a quorum of WALs:
		// 2xx, as with one replica down.
		{"series limit: one replica refuses", []func(*testing.T) *fakeIngester{status(400, seriesLimitMsg), ok, ok}, http.StatusNoContent, ""},
		{"series limit: two replicas refuse", []func(*testing.T) *fakeIngester{ok, status(400, seriesLimitMsg), status(400, seriesLimitMsg)}, http.StatusBadRequest, seriesLimitMsg},
		{"series limit: every replica refuses", []func(*testing.T) *fakeIngester{status(400, seriesLimitMsg), status(400, seriesLimitMsg), status(400, seriesLimitMsg)}, http.StatusBadRequest, seriesLimitMsg},
		{"series limit: two refuse, the third is down", []func(*testing.T) *fakeIngester{status(400, seriesLimitMsg), down, status(400, seriesLimitMsg)}, http.StatusBadRequest, seriesLimitMsg},
		{"series limit: two refuse, the third fails", []func(*testing.T) *fakeIngester{status(400, seriesLimitMsg), status(503, "full"), status(400, seriesLimitMsg)}, http.StatusBadRequest, seriesLimitMsg},
		{"series limit: one refuses, two down: no quorum", []func(*testing.T) *fakeIngester{status(400, seriesLimitMsg), down, down}, http.StatusServiceUnavailable, "no quorum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ings []*fakeIngester
			var descs []ring.InstanceDesc
			for i, mk := range tc.ingesters {
				f := mk(t)
				ings = append(ings, f)
				descs = append(descs, ring.InstanceDesc{Id: fmt.Sprint("ingester-", i), Addr: f.addr(), State: ring.ACTIVE})
			}
			d := distributor.New(distributor.Options{Ring: fakeRing{descs}, PushTimeout: 5 * time.Second})
			h := remotewrite.NewHandler(d, remotewrite.Options{Tenants: tenant.Resolver{Default: "anonymous"}, Pipeline: ingest.New(d, ingest.Options{})})
			r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(writeBody(t)))
			r.Header.Set("Content-Type", "application/x-protobuf")
			r.Header.Set("Content-Encoding", "snappy")
			r.Header.Set(tenant.HeaderName, "team-a")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Fatalf("answer HTTP %d %q, want %d containing %q", w.Code, w.Body.String(), tc.want, tc.wantBody)
			}
			if w.Code != http.StatusNoContent {
				return
			}
			// Every ingester that answered 2xx got both series, whole,
			// under the sender's tenant; at least two did (the third may
			// still be writing when the answer is sent).
			want := map[string][]writev2.Sample{
				`{__name__="up", job="a"}`: {{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 2}},
				`{__name__="up", job="b"}`: {{Timestamp: 1500, Value: 0.5}, {Timestamp: 2500, Value: -3}},
			}
			wrote := 0
			for _, f := range ings {
				f.mu.Lock()
				if len(f.samples) > 0 {
					wrote++
					if fmt.Sprint(f.samples) != fmt.Sprint(want) || !slices.Equal(f.tenants, []string{"team-a"}) {
						t.Errorf("ingester got %v for tenants %v, want %v for [team-a]", f.samples, f.tenants, want)
					}
				}
				f.mu.Unlock()
			}
			if wrote < 2 {
				t.Errorf("%d ingesters had the samples when the sender was answered, want at least 2", wrote)
			}
		})
	}
}

// TestTokenSpreadsTenantsAndSeries checks that a series' token depends on
// its tenant and on every label, so that the same series of two tenants,
// and two series of one, go to independent places on the ring.
func TestTokenSpreadsTenantsAndSeries(t *testing.T) {
	a := labels.FromStrings("__name__", "up", "job", "a")
	for _, tc := range []struct {
		name   string
		t1, t2 string
		l1, l2 labels.Labels
		same   bool
	}{
		{"same series, same tenant", "x", "x", a, a, true},
		{"same series, other tenant", "x", "y", a, a, false},
		{"other value", "x", "x", a, labels.FromStrings("__name__", "up", "job", "b"), false},
		{"name and value boundaries", "x", "x", labels.FromStrings("ab", "c"), labels.FromStrings("a", "bc"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := distributor.Token(tc.t1, tc.l1) == distributor.Token(tc.t2, tc.l2); got != tc.same {
				t.Errorf("tokens equal: %v, want %v", got, tc.same)
			}
		})
	}
}

// TestMetadataForwarded sends a remote write 1.0 request with metadata to
// a distributor and waits for every ingester to receive the metadata from
// the distributor's loop.
func TestMetadataForwarded(t *testing.T) {
	var ings []*fakeIngester
	var descs []ring.InstanceDesc
	for i := range 3 {
		f := newFakeIngester(t, http.StatusNoContent, "")
		ings = append(ings, f)
		descs = append(descs, ring.InstanceDesc{Id: fmt.Sprint("ingester-", i), Addr: f.addr(), State: ring.ACTIVE})
	}
	d := distributor.New(distributor.Options{Ring: fakeRing{descs}, PushTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	h := remotewrite.NewHandler(d, remotewrite.Options{Tenants: tenant.Resolver{Default: "anonymous"}, Pipeline: ingest.New(d, ingest.Options{})})
	req := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests", Help: "Requests served.", Unit: "requests"}}}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set(tenant.HeaderName, "team-a")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("answer HTTP %d %s, want 204", w.Code, w.Body)
	}
	want := req.Metadata[0]
	testutil.Eventually(t, 10*time.Second, "every ingester has the metadata", func() bool {
		for _, f := range ings {
			f.mu.Lock()
			got, ok := f.metadata["team-a/http_requests"]
			f.mu.Unlock()
			if !ok {
				return false
			}
			if got.String() != want.String() {
				t.Fatalf("ingester got %v, want %v", got, want)
			}
		}
		return true
	})
}

// TestExemplarsForwarded sends exemplars as remote write 1.0 senders do, in
// entries of their own, one for a series whose samples are in the request
// and one for a series without: every ingester gets both.
func TestExemplarsForwarded(t *testing.T) {
	var ings []*fakeIngester
	var descs []ring.InstanceDesc
	for i := range 3 {
		f := newFakeIngester(t, http.StatusNoContent, "")
		ings = append(ings, f)
		descs = append(descs, ring.InstanceDesc{Id: fmt.Sprint("ingester-", i), Addr: f.addr(), State: ring.ACTIVE})
	}
	d := distributor.New(distributor.Options{Ring: fakeRing{descs}, PushTimeout: 5 * time.Second})
	h := remotewrite.NewHandler(d, remotewrite.Options{Tenants: tenant.Resolver{Default: "anonymous"}, Pipeline: ingest.New(d, ingest.Options{})})
	a := []prompb.Label{{Name: "__name__", Value: "req_total"}, {Name: "job", Value: "a"}}
	b := []prompb.Label{{Name: "__name__", Value: "req_total"}, {Name: "job", Value: "b"}}
	now := time.Now().UnixMilli()
	ex := func(v float64) []prompb.Exemplar {
		return []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprint(v)}}, Value: v, Timestamp: now}}
	}
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: a, Samples: []prompb.Sample{{Timestamp: now, Value: 1}}},
		{Labels: b, Samples: []prompb.Sample{{Timestamp: now, Value: 2}}},
		{Labels: a, Exemplars: ex(0.5)},
		{Labels: []prompb.Label{{Name: "__name__", Value: "req_total"}, {Name: "job", Value: "c"}}, Exemplars: ex(0.25)},
	}}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("answer HTTP %d %s, want 204", w.Code, w.Body)
	}
	want := `map[{__name__="req_total", job="a"}:[0.5] {__name__="req_total", job="c"}:[0.25]]`
	// The exemplars of an ingester beyond the quorum may arrive after the
	// answer.
	testutil.Eventually(t, 10*time.Second, "every ingester has the exemplars", func() bool {
		for _, f := range ings {
			f.mu.Lock()
			got := fmt.Sprint(f.exemplars)
			f.mu.Unlock()
			if got != want {
				return false
			}
		}
		return true
	})
}

// TestAppendableWritesTenantOfContext: a ruler's appender writes the tenant
// of its context to a quorum of the series' ingesters; without a tenant it
// fails and writes nothing.
func TestAppendableWritesTenantOfContext(t *testing.T) {
	var ings []*fakeIngester
	var descs []ring.InstanceDesc
	for i := range 3 {
		status := http.StatusNoContent
		if i == 2 {
			status = http.StatusServiceUnavailable // one replica down: the quorum still holds
		}
		f := newFakeIngester(t, status, "down")
		ings = append(ings, f)
		descs = append(descs, ring.InstanceDesc{Id: fmt.Sprint("ingester-", i), Addr: f.addr(), State: ring.ACTIVE})
	}
	d := distributor.New(distributor.Options{Ring: fakeRing{descs}, PushTimeout: 5 * time.Second})
	ls := labels.FromStrings("__name__", "job:up:sum", "job", "node")

	app := d.AppenderV2(tenant.WithID(context.Background(), "team-a"))
	if _, err := app.Append(0, ls, 0, 1000, 3, nil, nil, storage.AppendV2Options{}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatalf("commit with a quorum: %v", err)
	}
	for _, f := range ings[:2] {
		f.mu.Lock()
		got, tenants := f.samples[ls.String()], f.tenants
		f.mu.Unlock()
		if len(got) != 1 || got[0].Value != 3 || got[0].Timestamp != 1000 || len(tenants) != 1 || tenants[0] != "team-a" {
			t.Errorf("ingester got %v of tenants %v, want one sample 3@1000 of team-a", got, tenants)
		}
	}

	app = d.AppenderV2(context.Background())
	if _, err := app.Append(0, ls, 0, 2000, 4, nil, nil, storage.AppendV2Options{}); !errors.Is(err, tenant.ErrNoTenant) {
		t.Errorf("append without a tenant: %v, want %v", err, tenant.ErrNoTenant)
	}
	if err := app.Commit(); !errors.Is(err, tenant.ErrNoTenant) {
		t.Errorf("commit without a tenant: %v, want %v", err, tenant.ErrNoTenant)
	}
}
