package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

// appJS is the name of the built bundle, as index.html names it.
func appJS(t *testing.T) string {
	t.Helper()
	index, err := dist.ReadFile("dist/index.html")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`src="\./assets/(app\.[0-9a-f]+\.js)"`).FindSubmatch(index)
	if m == nil {
		t.Fatalf("index.html names no ./assets/app.<hash>.js:\n%s", index)
	}
	if _, err := fs.Stat(dist, "dist/assets/"+string(m[1])); err != nil {
		t.Fatalf("index.html names %s, which dist/assets lacks: %v", m[1], err)
	}
	return string(m[1])
}

func TestHandler(t *testing.T) {
	js := appJS(t)
	body, err := dist.ReadFile("dist/assets/" + js)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler()
	tests := []struct {
		name, method, path, acceptEncoding string
		code                               int
		contentType, cacheControl, enc     string
		bodyHas                            string
	}{
		{name: "root", method: "GET", path: "/", code: 200, contentType: "text/html; charset=utf-8", cacheControl: "no-cache", bodyHas: js},
		{name: "query page", method: "GET", path: "/query", code: 200, contentType: "text/html; charset=utf-8", bodyHas: js},
		{name: "status page with a query", method: "GET", path: "/status?tenant=a", code: 200, contentType: "text/html; charset=utf-8", bodyHas: js},
		{name: "anomaly page", method: "GET", path: "/anomaly", code: 200, bodyHas: js},
		{name: "alerts page", method: "GET", path: "/alerts", code: 200, bodyHas: js},
		{name: "head", method: "HEAD", path: "/alerts", code: 200},
		{name: "bundle", method: "GET", path: "/assets/" + js, code: 200, contentType: "text/javascript; charset=utf-8", cacheControl: "public, max-age=31536000, immutable"},
		{name: "bundle gzipped", method: "GET", path: "/assets/" + js, acceptEncoding: "br, gzip;q=0.8", code: 200, enc: "gzip"},
		{name: "gzip refused", method: "GET", path: "/assets/" + js, acceptEncoding: "gzip;q=0", code: 200},
		{name: "licenses of the bundle", method: "GET", path: "/assets/" + js + ".LICENSE.txt", code: 200, contentType: "text/plain; charset=utf-8", bodyHas: "React"},
		{name: "unknown asset", method: "GET", path: "/assets/app.0000.js", code: 404},
		{name: "unknown page", method: "GET", path: "/nope", code: 404},
		{name: "page with a trailing slash", method: "GET", path: "/query/", code: 404},
		{name: "embedded source manifest is not served", method: "GET", path: "/SOURCES.sha256", code: 404},
		{name: "post", method: "POST", path: "/", code: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.acceptEncoding != "" {
				req.Header.Set("Accept-Encoding", tc.acceptEncoding)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()
			if res.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.code)
			}
			if tc.contentType != "" && res.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), tc.contentType)
			}
			if tc.cacheControl != "" && res.Header.Get("Cache-Control") != tc.cacheControl {
				t.Errorf("Cache-Control %q, want %q", res.Header.Get("Cache-Control"), tc.cacheControl)
			}
			if got := res.Header.Get("Content-Encoding"); got != tc.enc {
				t.Errorf("Content-Encoding %q, want %q", got, tc.enc)
			}
			got, _ := io.ReadAll(res.Body)
			if tc.method == "HEAD" && len(got) != 0 {
				t.Errorf("HEAD answered a body of %d bytes", len(got))
			}
			if tc.enc == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(got))
				if err != nil {
					t.Fatal(err)
				}
				if got, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, body) {
					t.Errorf("the gzipped bundle decompresses to %d bytes, not the bundle's %d", len(got), len(body))
				}
			} else if tc.path == "/assets/"+js && !bytes.Equal(got, body) {
				t.Errorf("the bundle answered %d bytes, not its %d", len(got), len(body))
			}
			if tc.bodyHas != "" && !strings.Contains(string(got), tc.bodyHas) {
				t.Errorf("body lacks %q", tc.bodyHas)
			}
			if tc.code == 200 && strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
					t.Errorf("a page without a script-src 'self' policy: %q", csp)
				}
			}
		})
	}
}

// TestPagesAreTheUIRoutes keeps Pages and the UI's router (web/ui/src/url.ts)
// in step: every page the UI links to is served.
func TestPagesAreTheUIRoutes(t *testing.T) {
	src, err := fs.ReadFile(osDir("ui/src"), "url.ts")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`export type PageName = ([^;]+);`).FindSubmatch(src)
	if m == nil {
		t.Fatal("url.ts declares no PageName")
	}
	served := map[string]bool{}
	for _, p := range Pages {
		served[p] = true
	}
	for _, name := range regexp.MustCompile(`'([a-z]+)'`).FindAllSubmatch(m[1], -1) {
		if !served["/"+string(name[1])] {
			t.Errorf("the UI routes /%s, which Pages lacks", name[1])
		}
	}
}

func osDir(dir string) fs.FS { return os.DirFS(dir) }
