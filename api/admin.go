package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/strata-tsdb/strata/tenant"
)

// TSDBAdmin deletes series of a tenant, for Prometheus's TSDB admin
// endpoints.
type TSDBAdmin interface {
	// DeleteSeries deletes the series of tenant id matching ms in
	// [mint, maxt] (milliseconds, both included) from queries at once, and
	// from storage eventually.
	DeleteSeries(ctx context.Context, id string, mint, maxt int64, ms []*labels.Matcher) error
	// CleanTombstones removes deleted data from storage now, as far as it
	// can.
	CleanTombstones(ctx context.Context, id string) error
}

// cleanTombstonesHandler serves POST /api/v1/admin/tsdb/clean_tombstones
// for the tenant of the request, answering as Prometheus: 204, or 500 with
// errorType internal.
func cleanTombstonesHandler(a TSDBAdmin) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			respondError(w, http.StatusMethodNotAllowed, "bad_data", fmt.Errorf("method %s not allowed, use POST", r.Method))
			return
		}
		id, _ := tenant.FromContext(r.Context())
		if err := a.CleanTombstones(r.Context(), id); err != nil {
			respondError(w, http.StatusInternalServerError, "internal", err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// Flusher cuts every head into blocks and ships them.
type Flusher interface {
	Flush(ctx context.Context) error
}

// FlushHandler serves POST /api/v1/admin/flush: it answers once every
// tenant's head is cut into blocks and shipped, with the Prometheus API's
// envelope; 503 when shipping failed (the blocks stay local and are retried).
func FlushHandler(f Flusher) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			respondError(w, http.StatusMethodNotAllowed, "bad_data", fmt.Errorf("method %s not allowed, use POST", r.Method))
			return
		}
		if err := f.Flush(r.Context()); err != nil {
			code, typ := http.StatusServiceUnavailable, "unavailable"
			if errors.Is(err, context.Canceled) {
				code, typ = 499, "canceled"
			}
			respondError(w, code, typ, fmt.Errorf("flush: %w", err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success"}`))
	})
}
