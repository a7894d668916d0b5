// Package web serves Strata's own user interface: a single-page application
// (query, anomaly, alerts and status pages) written in TypeScript in web/ui
// and built into web/dist, which is committed and embedded in the binary, so
// that neither `go build` nor the container image needs Node.js.
// `make -C web/ui build` rebuilds dist; TestDistUpToDate fails while the
// committed build is older than its sources.
//
// The pages call the HTTP API with relative URLs, so the UI also works
// behind a reverse proxy that serves Strata under a path prefix.
package web

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed dist/index.html dist/assets
var dist embed.FS

// Pages are the UI's routes. Each answers index.html, so that the URL of a
// page (with its query in the query string) can be shared and reloaded.
var Pages = []string{"/", "/query", "/anomaly", "/alerts", "/status"}

// contentSecurityPolicy allows the page to load only its own scripts and to
// talk only to its own origin. Inline styles are allowed: the editor and the
// charts set them.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"

// asset is an embedded file with its gzip form, made on first use.
type asset struct {
	name        string
	contentType string
	body        []byte

	once sync.Once
	gz   []byte // nil when compressing does not pay
}

func (a *asset) gzipped() []byte {
	a.once.Do(func() {
		if len(a.body) < 1024 {
			return
		}
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // a valid level: no error
		_, _ = zw.Write(a.body)                                // writes to a bytes.Buffer do not fail
		_ = zw.Close()
		if b.Len() < len(a.body) {
			a.gz = b.Bytes()
		}
	})
	return a.gz
}

// Handler serves the UI: index.html at each of Pages and the built assets
// under /assets/ (named by their content's hash, so cached for good). Any
// other path is answered 404.
func Handler() http.Handler {
	index := mustAsset("dist/index.html")
	assets := map[string]*asset{}
	entries, err := fs.ReadDir(dist, "dist/assets")
	if err != nil {
		panic(err) // the embedded directory exists: the build is committed
	}
	for _, e := range entries {
		if !e.IsDir() {
			assets["/assets/"+e.Name()] = mustAsset("dist/assets/" + e.Name())
		}
	}
	pages := map[string]bool{}
	for _, p := range Pages {
		pages[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if pages[r.URL.Path] {
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
			w.Header().Set("X-Frame-Options", "DENY")
			serve(w, r, index)
			return
		}
		if a := assets[r.URL.Path]; a != nil {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			serve(w, r, a)
			return
		}
		http.NotFound(w, r)
	})
}

func serve(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	body := a.body
	if gz := a.gzipped(); gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(params, " ", "") != "q=0"
		}
	}
	return false
}

func mustAsset(name string) *asset {
	b, err := dist.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: every name read here exists
	}
	return &asset{name: name, contentType: contentType(name), body: b}
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}
