package server

import (
	"net/http"
	"net/http/pprof"
)

// handlePprof serves Go's runtime profiles under /debug/pprof/, as
// Prometheus does, for profiling a running Strata (CPU, heap, goroutines).
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
