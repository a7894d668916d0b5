package api

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-tsdb/strata/blocks"
	"github.com/strata-tsdb/strata/promqlengine"
	"github.com/strata-tsdb/strata/tenant"
)

// TestRemoteReadLyingSnappyHeader: a 7-byte remote-read body whose snappy
// header claims 32 MiB (Prometheus's limit) is answered 400 without the
// 32 MiB being allocated.
func TestRemoteReadLyingSnappyHeader(t *testing.T) {
	store, err := blocks.Open(blocks.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	eng, err := promqlengine.New(promqlengine.Options{Timeout: time.Minute, MaxSamples: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{
		Engine: eng, Parser: eng.Parser, Queryable: store.Queryable(), Tenants: tenant.Resolver{Default: "a"},
		QueryTimeout: time.Minute, Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry(),
	})
	body := binary.AppendUvarint(nil, 32<<20)
	body = append(body, make([]byte, 7-len(body))...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/read", bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	runtime.ReadMemStats(&after)
	b, _ := io.ReadAll(w.Result().Body)
	if w.Code != http.StatusBadRequest || !strings.Contains(string(b), "claims") {
		t.Errorf("HTTP %d %q, want 400 naming the false claim", w.Code, b)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("answering the 7-byte body allocated %d bytes", alloc)
	}
}
