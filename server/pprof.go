package server

import (
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	"github.com/strata-tsdb/strata/config"
)

// handlePprof serves Go's runtime profiles under /debug/pprof/, as
// Prometheus does, for profiling a running Strata (CPU, heap, goroutines).
// The command line is served with the values of secret flags masked.
func handlePprof(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	mux.Handle("/debug/pprof/", wrap(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", wrap(http.HandlerFunc(cmdline)))
	mux.Handle("/debug/pprof/profile", wrap(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", wrap(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", wrap(http.HandlerFunc(pprof.Trace)))
}

// cmdline answers as pprof.Cmdline does (the arguments separated by NUL
// bytes), with secrets masked.
func cmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	args := append([]string{os.Args[0]}, config.RedactArgs(os.Args[1:], NewConfig)...)
	_, _ = w.Write([]byte(strings.Join(args, "\x00")))
}
