package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/tenant"
)

// Content types of the two protocols.
const (
	ctV1NoProto = "application/x-protobuf"
	ctV1        = "application/x-protobuf;proto=prometheus.WriteRequest"
	ctV2        = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

// Tenants used by the tests: requests without X-Scope-OrgID go to
// defaultTenant, the tests' requests mostly to testTenant.
const (
	defaultTenant = "anonymous"
	testTenant    = "team-a"
)

// env is a handler writing to a real blocks.Store in a temporary directory.
type env struct {
	store *blocks.Store
	h     *Handler
	reg   *prometheus.Registry
	now   time.Time // what Options.Now returns, until advance moves it
	nowMs int64
	ahead atomic.Int64 // nanoseconds advance added to now
}

// advance moves the handler's clock forward by d.
func (e *env) advance(d time.Duration) { e.ahead.Add(int64(d)) }

// newEnv opens a store with the options the tests share and a handler on it.
// mods adjust the handler's options before it is built.
func newEnv(tb testing.TB, mods ...func(*Options)) *env {
	tb.Helper()
	return newEnvWithStore(tb, blocks.Options{}, mods...)
}

// newEnvWithStore is newEnv with store options; Dir, OutOfOrderWindow and
// MaxExemplars get the tests' values when zero. A negative OutOfOrderWindow
// disables out-of-order ingestion.
func newEnvWithStore(tb testing.TB, so blocks.Options, mods ...func(*Options)) *env {
	tb.Helper()
	if so.Dir == "" {
		so.Dir = tb.TempDir()
	}
	switch {
	case so.OutOfOrderWindow < 0:
		so.OutOfOrderWindow = 0
	case so.OutOfOrderWindow == 0:
		so.OutOfOrderWindow = 10 * time.Minute
	}
	if so.MaxExemplars == 0 {
		so.MaxExemplars = 1000
	}
	store, err := blocks.Open(so)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() {
		if err := store.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	now := time.Now().Truncate(time.Second)
	e := &env{store: store, reg: prometheus.NewPedanticRegistry(), now: now, nowMs: now.UnixMilli()}
	opts := Options{
		MaxFutureTime: 10 * time.Minute,
		Tenants:       tenant.Resolver{Default: defaultTenant},
		Registerer:    e.reg,
		Now:           func() time.Time { return now.Add(time.Duration(e.ahead.Load())) },
	}
	for _, m := range mods {
		m(&opts)
	}
	e.h = NewHandler(store, opts)
	return e
}

// testRegistry returns the registry a handler's metrics are checked in.
func testRegistry() *prometheus.Registry { return prometheus.NewPedanticRegistry() }

// req describes one HTTP request to the handler.
type req struct {
	method      string // POST when empty
	contentType string // none when empty
	encoding    string // Content-Encoding; none when empty
	tenant      string // X-Scope-OrgID; none when empty
	body        []byte
}

// do sends r through the handler h and returns the recorded answer.
func do(h http.Handler, r req) *httptest.ResponseRecorder {
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	hr := httptest.NewRequest(method, "/api/v1/write", bytes.NewReader(r.body))
	if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	}
	if r.encoding != "" {
		hr.Header.Set("Content-Encoding", r.encoding)
	}
	if r.tenant != "" {
		hr.Header.Set(tenant.HeaderName, r.tenant)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

// postV1 sends an RW 1.0 request as testTenant.
func (e *env) postV1(wr *prompb.WriteRequest) *httptest.ResponseRecorder {
	return do(e.h, req{contentType: ctV1, encoding: "snappy", tenant: testTenant, body: encodeV1(wr)})
}

// postV2 sends an RW 2.0 request as testTenant.
func (e *env) postV2(wr *writev2.Request) *httptest.ResponseRecorder {
	return do(e.h, req{contentType: ctV2, encoding: "snappy", tenant: testTenant, body: encodeV2(wr)})
}

func encodeV1(wr *prompb.WriteRequest) []byte { return snappy.Encode(nil, marshalV1(wr)) }
func encodeV2(wr *writev2.Request) []byte     { return snappy.Encode(nil, marshalV2(wr)) }

func marshalV1(wr *prompb.WriteRequest) []byte {
	b, err := wr.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

func marshalV2(wr *writev2.Request) []byte {
	b, err := wr.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// lbls returns name/value pairs as 1.0 labels, in the order given: tests
// build unsorted and duplicate label sets with it.
func lbls(kv ...string) []prompb.Label {
	if len(kv)%2 != 0 {
		panic("lbls: odd number of arguments")
	}
	out := make([]prompb.Label, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// floats returns 1.0 samples from timestamp, value pairs.
func floats(tv ...float64) []prompb.Sample {
	out := make([]prompb.Sample, 0, len(tv)/2)
	for i := 0; i+1 < len(tv); i += 2 {
		out = append(out, prompb.Sample{Timestamp: int64(tv[i]), Value: tv[i+1]})
	}
	return out
}

// ts1 is a 1.0 series with float samples.
func ts1(labels []prompb.Label, samples ...prompb.Sample) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: labels, Samples: samples}
}

// v2Builder builds a 2.0 request and its symbols table.
type v2Builder struct {
	syms writev2.SymbolsTable
	req  writev2.Request
}

func newV2() *v2Builder { return &v2Builder{syms: writev2.NewSymbolTable()} }

// refs symbolizes name/value pairs in the order given.
func (b *v2Builder) refs(kv ...string) []uint32 {
	out := make([]uint32, 0, len(kv))
	for _, s := range kv {
		out = append(out, b.syms.Symbolize(s))
	}
	return out
}

// add appends a series and returns it for further changes.
func (b *v2Builder) add(ts writev2.TimeSeries) *writev2.TimeSeries {
	b.req.Timeseries = append(b.req.Timeseries, ts)
	return &b.req.Timeseries[len(b.req.Timeseries)-1]
}

// floats adds a series with labels kv and float samples from timestamp,
// value pairs.
func (b *v2Builder) floats(kv []string, tv ...float64) *writev2.TimeSeries {
	ts := writev2.TimeSeries{LabelsRefs: b.refs(kv...)}
	for i := 0; i+1 < len(tv); i += 2 {
		ts.Samples = append(ts.Samples, writev2.Sample{Timestamp: int64(tv[i]), Value: tv[i+1]})
	}
	return b.add(ts)
}

// meta sets the metadata of ts.
func (b *v2Builder) meta(ts *writev2.TimeSeries, typ writev2.Metadata_MetricType, help, unit string) {
	ts.Metadata = writev2.Metadata{Type: typ, HelpRef: b.syms.Symbolize(help), UnitRef: b.syms.Symbolize(unit)}
}

// exemplar returns a 2.0 exemplar with labels kv.
func (b *v2Builder) exemplar(t int64, v float64, kv ...string) writev2.Exemplar {
	return writev2.Exemplar{LabelsRefs: b.refs(kv...), Timestamp: t, Value: v}
}

// build returns the request with the symbols table.
func (b *v2Builder) build() *writev2.Request {
	r := b.req
	r.Symbols = slices.Clone(b.syms.Symbols())
	return &r
}

// Test histograms.

func testHistogram(i int) *histogram.Histogram {
	return &histogram.Histogram{
		Schema:          1,
		ZeroThreshold:   0.001,
		ZeroCount:       uint64(2 + i),
		Count:           uint64(9 + 5*i),
		Sum:             18.4 * float64(i+1),
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
		PositiveBuckets: []int64{int64(i + 1), 1, -1, 0}, // counts i+1, i+2, i+1, i+1
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 1}},
		NegativeBuckets: []int64{2},
	}
}

func testFloatHistogram(i int) *histogram.FloatHistogram {
	return &histogram.FloatHistogram{
		Schema:          0,
		ZeroThreshold:   0.01,
		ZeroCount:       1.5,
		Count:           10.5 + float64(i),
		Sum:             42.25 * float64(i+1),
		PositiveSpans:   []histogram.Span{{Offset: -1, Length: 3}},
		PositiveBuckets: []float64{1, 2.5, 3 + float64(i)},
		NegativeSpans:   []histogram.Span{{Offset: 2, Length: 1}},
		NegativeBuckets: []float64{2.5},
	}
}

func testCustomBucketsHistogram(i int) *histogram.Histogram {
	return &histogram.Histogram{
		Schema:          histogram.CustomBucketsSchema,
		Count:           uint64(6 + 3*i),
		Sum:             3.5,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
		PositiveBuckets: []int64{int64(i + 1), 1, 1}, // counts i+1, i+2, i+3
		CustomValues:    []float64{0.1, 0.5, 1},
	}
}

// Reading back what the store holds.

// sample is one stored sample: exactly one of V, H and FH is meaningful.
type sample struct {
	T  int64
	V  float64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

// String renders the sample for comparisons: "t v", "t h{...}" or "t fh{...}".
func (s sample) String() string {
	switch {
	case s.H != nil:
		return fmt.Sprintf("%d h%s", s.T, s.H.String())
	case s.FH != nil:
		return fmt.Sprintf("%d fh%s", s.T, s.FH.String())
	}
	return fmt.Sprintf("%d %v", s.T, s.V)
}

func fs(t int64, v float64) string { return sample{T: t, V: v}.String() }

func hs(t int64, h *histogram.Histogram) string { return sample{T: t, H: h}.String() }

func fhs(t int64, fh *histogram.FloatHistogram) string { return sample{T: t, FH: fh}.String() }

// samples returns every sample stored for tenant id, by series.
func (e *env) samples(tb testing.TB, id string) map[string][]sample {
	tb.Helper()
	ctx := tenant.WithID(context.Background(), id)
	q, err := e.store.Queryable().Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		tb.Fatalf("querier: %v", err)
	}
	defer q.Close()
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	out := map[string][]sample{}
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		key := s.Labels().String()
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				out[key] = append(out[key], sample{T: t, V: v})
			case chunkenc.ValHistogram:
				t, h := it.AtHistogram(nil)
				out[key] = append(out[key], sample{T: t, H: h})
			case chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				out[key] = append(out[key], sample{T: t, FH: fh})
			}
		}
		if err := it.Err(); err != nil {
			tb.Fatalf("iterate %s: %v", key, err)
		}
	}
	if err := ss.Err(); err != nil {
		tb.Fatalf("select: %v", err)
	}
	return out
}

// stored returns samples rendered as strings, by series.
func (e *env) stored(tb testing.TB, id string) map[string][]string {
	tb.Helper()
	out := map[string][]string{}
	for k, ss := range e.samples(tb, id) {
		for _, s := range ss {
			out[k] = append(out[k], s.String())
		}
	}
	return out
}

// assertStored fails unless tenant id holds exactly want.
func (e *env) assertStored(tb testing.TB, id string, want map[string][]string) {
	tb.Helper()
	got := e.stored(tb, id)
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if d := diffStored(got, want); d != "" {
		tb.Errorf("tenant %s stored:\n%s", id, d)
	}
}

func diffStored(got, want map[string][]string) string {
	var b strings.Builder
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		if !slices.Equal(got[k], want[k]) {
			fmt.Fprintf(&b, "  %s:\n    got  %q\n    want %q\n", k, got[k], want[k])
		}
	}
	return b.String()
}

// exemplars returns the exemplars stored for tenant id, by series.
func (e *env) exemplars(tb testing.TB, id string) map[string][]exemplar.Exemplar {
	tb.Helper()
	ctx := tenant.WithID(context.Background(), id)
	eq, err := e.store.ExemplarQueryable().ExemplarQuerier(ctx)
	if err != nil {
		tb.Fatalf("exemplar querier: %v", err)
	}
	res, err := eq.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")})
	if err != nil {
		tb.Fatalf("select exemplars: %v", err)
	}
	out := map[string][]exemplar.Exemplar{}
	for _, r := range res {
		out[r.SeriesLabels.String()] = append(out[r.SeriesLabels.String()], r.Exemplars...)
	}
	return out
}

// metadataOf returns the metadata stored for tenant id, by family.
func (e *env) metadataOf(tb testing.TB, id string) map[string][]metadata.Metadata {
	tb.Helper()
	fams, err := e.store.MetricMetadata(id, "")
	if err != nil {
		tb.Fatalf("metadata of %s: %v", id, err)
	}
	out := map[string][]metadata.Metadata{}
	for _, f := range fams {
		out[f.Name] = f.Entries
	}
	return out
}

// assertNothingStored fails if any tenant was created in the store.
func (e *env) assertNothingStored(tb testing.TB) {
	tb.Helper()
	if ids := e.store.Tenants(); len(ids) != 0 {
		for _, id := range ids {
			if got := e.stored(tb, id); len(got) != 0 {
				tb.Errorf("tenant %s has samples, want none: %v", id, got)
			}
		}
	}
}

// rejected returns strata_remote_write_samples_rejected_total of tenant and reason.
func (e *env) rejected(tb testing.TB, id, reason string) float64 {
	tb.Helper()
	return testutil.Metric(tb, e.reg, "strata_remote_write_samples_rejected_total", "tenant", id, "reason", reason)
}

// assertCode fails unless the answer has the status code want.
func assertCode(tb testing.TB, w *httptest.ResponseRecorder, want int) {
	tb.Helper()
	if w.Code != want {
		tb.Fatalf("status %d, want %d; body: %s", w.Code, want, w.Body.String())
	}
}

// assertWritten fails unless the RW 2.0 written headers hold the counts.
func assertWritten(tb testing.TB, w *httptest.ResponseRecorder, samples, histograms, exemplars int) {
	tb.Helper()
	for _, c := range []struct {
		header string
		want   int
	}{
		{HeaderSamplesWritten, samples},
		{HeaderHistogramsWritten, histograms},
		{HeaderExemplarsWritten, exemplars},
	} {
		if got := w.Header().Get(c.header); got != fmt.Sprint(c.want) {
			tb.Errorf("%s = %q, want %d", c.header, got, c.want)
		}
	}
}

// assertNoWritten fails if any RW 2.0 written header is set.
func assertNoWritten(tb testing.TB, w *httptest.ResponseRecorder) {
	tb.Helper()
	for _, h := range []string{HeaderSamplesWritten, HeaderHistogramsWritten, HeaderExemplarsWritten} {
		if v, ok := w.Header()[h]; ok {
			tb.Errorf("header %s = %q, want none", h, v)
		}
	}
}

// assertBodyContains fails unless the answer's body contains every string.
func assertBodyContains(tb testing.TB, w *httptest.ResponseRecorder, subs ...string) {
	tb.Helper()
	body := w.Body.String()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			tb.Errorf("body %q does not contain %q", body, s)
		}
	}
}

// mockStorage is a Storage whose failures the tests choose.
type mockStorage struct {
	appenderErr error // returned by Appender
	appendErr   error // returned by every Append
	commitErr   error // returned by Commit

	apps []*mockAppender
	meta map[string]metadata.Metadata
}

func (m *mockStorage) Appender(context.Context, string) (storage.AppenderV2, error) {
	if m.appenderErr != nil {
		return nil, m.appenderErr
	}
	a := &mockAppender{s: m}
	m.apps = append(m.apps, a)
	return a, nil
}

func (m *mockStorage) SetMetadata(_, family string, md metadata.Metadata) error {
	if m.meta == nil {
		m.meta = map[string]metadata.Metadata{}
	}
	m.meta[family] = md
	return nil
}

type mockAppender struct {
	s                     *mockStorage
	appended              int
	committed, rolledBack bool
	nextRef               storage.SeriesRef
}

func (a *mockAppender) Append(ref storage.SeriesRef, _ labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if a.s.appendErr != nil {
		return 0, a.s.appendErr
	}
	a.appended++
	if ref == 0 {
		a.nextRef++
		ref = a.nextRef
	}
	return ref, nil
}

func (a *mockAppender) AppendExemplars(ref storage.SeriesRef, _ labels.Labels, _ []exemplar.Exemplar) (storage.SeriesRef, error) {
	return ref, nil
}

func (a *mockAppender) Commit() error {
	a.committed = true
	return a.s.commitErr
}

func (a *mockAppender) Rollback() error {
	a.rolledBack = true
	return nil
}

// fseries is a series of float samples: labels as name/value pairs and
// samples as timestamp/value pairs.
type fseries struct {
	kv []string
	tv []float64
}

// postFloats sends float series as testTenant, with RW 2.0 when v2 is set
// and RW 1.0 otherwise.
func (e *env) postFloats(v2 bool, ss ...fseries) *httptest.ResponseRecorder {
	if v2 {
		b := newV2()
		for _, s := range ss {
			b.floats(s.kv, s.tv...)
		}
		return e.postV2(b.build())
	}
	var wr prompb.WriteRequest
	for _, s := range ss {
		wr.Timeseries = append(wr.Timeseries, ts1(lbls(s.kv...), floats(s.tv...)...))
	}
	return e.postV1(&wr)
}

// protocols names the two protocols for subtests.
var protocols = []struct {
	name string
	v2   bool
}{{"v1", false}, {"v2", true}}
