package api

import (
	"net/http"

	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"
)

// compressed gzips the responses of Prometheus's API at gzip's fastest
// level, for clients that accept gzip (Grafana, Prometheus's UI, Go's HTTP
// client). Prometheus's own handler compresses every answer at the default
// level (klauspost's level 5): for the answers of range queries, megabytes
// of JSON numbers, that took more CPU than evaluating them from the results
// cache and encoding them (make bench-dashboard's profiles). The fastest
// level is what VictoriaMetrics answers with. The request passed on carries
// no Accept-Encoding, so that Prometheus's handler does not compress again.
// Deflate, which Prometheus's handler also offered, is not: Go, Grafana
// and browsers ask for gzip.
func compressed(h http.Handler) http.Handler {
	wrap, err := gzhttp.NewWrapper(gzhttp.CompressionLevel(gzip.BestSpeed), gzhttp.EnableZstd(false))
	if err != nil {
		panic(err) // the options are constant
	}
	return wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "" {
			r = r.Clone(r.Context())
			r.Header.Del("Accept-Encoding")
		}
		h.ServeHTTP(w, r)
	}))
}
