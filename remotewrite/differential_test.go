package remotewrite

import (
	"fmt"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// TestFastDecodingChangesNothing runs the whole handler on the same bodies
// with the flat decoders on and off (gogo's only): answers, stored samples,
// exemplars, metadata and rejection counts must be the same. The bodies
// are the fuzz seeds (every kind of series, valid and invalid, both
// protocols) and Prometheus-shaped requests, each sent three times so that
// later requests hit the reference cache.
func TestFastDecodingChangesNothing(t *testing.T) {
	fast := newEnv(t)
	gogo := newEnv(t, func(o *Options) { o.DisableFastDecode = true })
	now := fast.nowMs
	var bodies []req
	shaped := &prompb.WriteRequest{}
	shaped2 := newV2()
	for i := range 200 {
		kv := []string{"__name__", "node_cpu_seconds_total", "cpu", fmt.Sprint(i % 8), "instance", fmt.Sprintf("host-%d:9100", i/8), "job", "node", "mode", "idle"}
		shaped.Timeseries = append(shaped.Timeseries, ts1(lbls(kv...), floats(float64(now-1000), float64(i), float64(now), float64(i)+0.5)...))
		shaped2.meta(shaped2.floats(kv, float64(now-500), float64(i)), writev2.Metadata_METRIC_TYPE_COUNTER, "CPU.", "seconds")
	}
	for round := range 3 {
		for _, wr := range append(seedsV1(now-int64(3-round)*100), shaped) {
			bodies = append(bodies, req{contentType: ctV1, tenant: testTenant, body: encodeV1(wr)})
		}
		for _, wr := range append(seedsV2(now-int64(3-round)*100), shaped2.build()) {
			bodies = append(bodies, req{contentType: ctV2, tenant: testTenant, body: encodeV2(wr)})
		}
	}
	answer := func(w *httptest.ResponseRecorder) string {
		return fmt.Sprintf("%d %q %s/%s/%s", w.Code, w.Body.String(), w.Header().Get(HeaderSamplesWritten), w.Header().Get(HeaderHistogramsWritten), w.Header().Get(HeaderExemplarsWritten))
	}
	for i, r := range bodies {
		if a, b := answer(do(fast.h, r)), answer(do(gogo.h, r)); a != b {
			t.Errorf("body %d (%s): answered %s with the flat decoders, %s without", i, r.contentType, a, b)
		}
	}
	for what, get := range map[string]func(*env) any{
		"samples":   func(e *env) any { return e.stored(t, testTenant) },
		"exemplars": func(e *env) any { return e.exemplars(t, testTenant) },
		"metadata":  func(e *env) any { return e.metadataOf(t, testTenant) },
		"rejections": func(e *env) any {
			out := map[string]float64{}
			for _, r := range []string{reasonInvalidLabels, reasonTooOld, reasonFuture, reasonDuplicate, reasonHistogram, reasonNoSamples, reasonInvalidMeta, reasonOutOfOrder} {
				out[r] = e.rejected(t, testTenant, r)
			}
			return out
		},
	} {
		if a, b := get(fast), get(gogo); !reflect.DeepEqual(a, b) {
			t.Errorf("%s differ: with the flat decoders %v, without %v", what, a, b)
		}
	}
	if got := fast.stored(t, testTenant); len(got) < 200 {
		t.Errorf("only %d series stored: the comparison proves little", len(got))
	}
}
