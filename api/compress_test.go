package api

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

// TestResponsesGzipped: a client accepting gzip gets the answer gzipped
// once, and it decompresses to the bytes a client without gzip gets.
func TestResponsesGzipped(t *testing.T) {
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	app, err := store.Appender(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		ls := labels.FromStrings("__name__", "x", "i", fmt.Sprint(i))
		for ts := int64(0); ts < 3600_000; ts += 15000 {
			if _, err := app.Append(0, ls, 0, ts, float64(ts)/7+float64(i), nil, nil, storage.AppendV2Options{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	eng, err := promqlengine.New(promqlengine.Options{Timeout: time.Minute, MaxSamples: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{
		Engine: eng, Parser: eng.Parser, Queryable: store.Queryable(), Tenants: tenant.Resolver{Default: "a"},
		QueryTimeout: time.Minute, Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry(),
	})
	get := func(acceptEncoding string) *http.Response {
		q := url.Values{"query": {"rate(x[5m])"}, "start": {"0"}, "end": {"3600"}, "step": {"15"}}
		req := httptest.NewRequest(http.MethodGet, "/api/v1/query_range?"+q.Encode(), nil)
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("Accept-Encoding %q: HTTP %d %s", acceptEncoding, w.Code, w.Body)
		}
		return w.Result()
	}
	plain := get("")
	want, _ := io.ReadAll(plain.Body)
	if ce := plain.Header.Get("Content-Encoding"); ce != "" || !strings.Contains(string(want), `"resultType":"matrix"`) {
		t.Fatalf("without gzip: Content-Encoding %q, body %.200s", ce, want)
	}
	for _, ae := range []string{"gzip", "gzip, deflate, br"} {
		resp := get(ae)
		if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q", ae, ce)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("Accept-Encoding %q: decompressed to\n%.300s\nwant\n%.300s", ae, got, want)
		}
	}
}
