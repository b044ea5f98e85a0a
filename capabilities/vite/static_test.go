package vite

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	indexHTML = `<!doctype html><html><body><div id="app"></div><script type="module" src="/assets/index-Bx3kP9aQ.js"></script></body></html>`
	secret    = "TOP-SECRET-OUTSIDE-THE-ROOT"
)

// site lays out a small build like Vite's, with a secret file next to (not
// inside) the served directory and a symlink pointing at it.
func site(t *testing.T) (dir string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "dist")
	files := map[string]string{
		"index.html":                  indexHTML,
		"about.html":                  "<h1>about</h1>",
		"docs/index.html":             "<h1>docs</h1>",
		"assets/index-Bx3kP9aQ.js":    "console.log('app')",
		"assets/index-Bx3kP9aQ.js.br": "BROTLI-BYTES",
		"assets/index-Bx3kP9aQ.js.gz": "GZIP-BYTES",
		"assets/index-D0cs1X2y.css":   "body{color:red}",
		"assets/logo-BIq_SF7g.svg":    "<svg xmlns='http://www.w3.org/2000/svg'/>",
		"assets/mod-7f3a9c1e.wasm":    "\x00asm\x01\x00\x00\x00",
		"assets/font-9aB8c7D6.woff2":  "wOF2",
		"assets/font-9aB8c7D6.woff":   "wOFF",
		"manifest.json":               `{"name":"x"}`,
		"site.webmanifest":            `{"name":"x"}`,
		"robots.txt":                  "User-agent: *",
		"favicon.ico":                 "\x00\x00\x01\x00",
		"NOEXT":                       "plain text without an extension",
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), content)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(base, "secret.txt"), secret)
	if err := os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base, filepath.Join(dir, "up")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func handler(t *testing.T, dir string, spa bool) *Handler {
	t.Helper()
	h, err := NewHandler(dir, spa)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// do runs one request through h. rawPath, when it differs from the
// request target, is put into URL.Path as is, as a server would see it
// after decoding (it may contain ".." that a client would clean).
func do(h http.Handler, method, rawPath string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/", nil)
	r.URL.Path = rawPath
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestViteStaticContentTypesAndCaching(t *testing.T) {
	h := handler(t, site(t), true)
	cases := []struct {
		path, ctype, cache, body string
	}{
		{"/", "text/html; charset=utf-8", CacheRevalidate, indexHTML},
		{"/index.html", "text/html; charset=utf-8", CacheRevalidate, indexHTML},
		{"/assets/index-Bx3kP9aQ.js", "text/javascript; charset=utf-8", CacheImmutable, "console.log('app')"},
		{"/assets/index-D0cs1X2y.css", "text/css; charset=utf-8", CacheImmutable, "body{color:red}"},
		{"/assets/logo-BIq_SF7g.svg", "image/svg+xml", CacheImmutable, ""},
		{"/assets/mod-7f3a9c1e.wasm", "application/wasm", CacheImmutable, ""},
		{"/assets/font-9aB8c7D6.woff2", "font/woff2", CacheImmutable, ""},
		{"/assets/font-9aB8c7D6.woff", "font/woff", CacheImmutable, ""},
		{"/manifest.json", "application/json", CacheRevalidate, ""},
		{"/site.webmanifest", "application/manifest+json", CacheRevalidate, ""},
		{"/robots.txt", "text/plain; charset=utf-8", CacheRevalidate, ""},
		{"/favicon.ico", "image/x-icon", CacheRevalidate, ""},
		{"/NOEXT", "text/plain; charset=utf-8", CacheRevalidate, "plain text without an extension"},
	}
	for _, tc := range cases {
		w := do(h, "GET", tc.path, nil)
		if w.Code != 200 {
			t.Errorf("%s: status %d", tc.path, w.Code)
			continue
		}
		if got := w.Header().Get("Content-Type"); got != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := w.Header().Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s: Cache-Control %q, want %q", tc.path, got, tc.cache)
		}
		if w.Header().Get("ETag") == "" || w.Header().Get("Last-Modified") == "" {
			t.Errorf("%s: no ETag or Last-Modified: %v", tc.path, w.Header())
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", tc.path)
		}
		if tc.body != "" && w.Body.String() != tc.body {
			t.Errorf("%s: body %q", tc.path, w.Body.String())
		}
	}
}

func TestViteStaticSPAFallback(t *testing.T) {
	h := handler(t, site(t), true)
	for _, p := range []string{"/some/route", "/some/route/", "/users/42/edit", "/empty", "/empty/", "/assets"} {
		w := do(h, "GET", p, nil)
		if w.Code != 200 || w.Body.String() != indexHTML {
			t.Errorf("%s: %d %q, want index.html", p, w.Code, w.Body.String())
		}
		if w.Header().Get("Cache-Control") != CacheRevalidate || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("%s: headers %v", p, w.Header())
		}
	}
	// Pages of a multi-page build are found before the fallback.
	for p, want := range map[string]string{"/about": "<h1>about</h1>", "/docs": "<h1>docs</h1>", "/docs/": "<h1>docs</h1>"} {
		if w := do(h, "GET", p, nil); w.Code != 200 || w.Body.String() != want {
			t.Errorf("%s: %d %q, want %q", p, w.Code, w.Body.String(), want)
		}
	}
	// A missing file with an extension is a 404, never index.html: a stale
	// client asking for an old hashed chunk must not get HTML back.
	for _, p := range []string{"/missing.js", "/assets/index-OLDHASH1.js", "/assets/missing.css", "/some/route/image.png", "/robots.txt/"} {
		w := do(h, "GET", p, nil)
		if w.Code != 404 {
			t.Errorf("%s: status %d, want 404", p, w.Code)
		}
		if strings.Contains(w.Body.String(), "<div id=\"app\">") {
			t.Errorf("%s: 404 served index.html", p)
		}
	}
	// HEAD of a route: headers of index.html, no body.
	w := do(h, "HEAD", "/some/route", nil)
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != fmt.Sprint(len(indexHTML)) {
		t.Errorf("HEAD /some/route: %d len %d %v", w.Code, w.Body.Len(), w.Header())
	}
}

func TestViteStaticWithoutSPA(t *testing.T) {
	h := handler(t, site(t), false)
	for _, p := range []string{"/some/route", "/empty/", "/missing.js"} {
		if w := do(h, "GET", p, nil); w.Code != 404 {
			t.Errorf("%s: %d, want 404", p, w.Code)
		}
	}
	if w := do(h, "GET", "/", nil); w.Code != 200 || w.Body.String() != indexHTML {
		t.Errorf("/: %d", w.Code)
	}
}

func TestViteStaticCustom404(t *testing.T) {
	dir := site(t)
	writeFile(t, filepath.Join(dir, "404.html"), "<h1>not here</h1>")
	h := handler(t, dir, true)
	w := do(h, "GET", "/missing.js", nil)
	if w.Code != 404 || w.Body.String() != "<h1>not here</h1>" || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("%d %q %v", w.Code, w.Body.String(), w.Header())
	}
	if w := do(h, "HEAD", "/missing.js", nil); w.Code != 404 || w.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %q", w.Code, w.Body.String())
	}
}

func TestViteStaticConditional(t *testing.T) {
	h := handler(t, site(t), true)
	for _, p := range []string{"/", "/assets/index-D0cs1X2y.css", "/some/route"} {
		first := do(h, "GET", p, nil)
		etag := first.Header().Get("ETag")
		if !strings.HasPrefix(etag, `"`) {
			t.Fatalf("%s: ETag %q is not a strong tag", p, etag)
		}
		w := do(h, "GET", p, map[string]string{"If-None-Match": etag})
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("%s If-None-Match: %d, want 304", p, w.Code)
		}
		if w.Header().Get("ETag") != etag {
			t.Errorf("%s: 304 without the ETag", p)
		}
		w = do(h, "GET", p, map[string]string{"If-None-Match": `"other"`})
		if w.Code != 200 {
			t.Errorf("%s other ETag: %d, want 200", p, w.Code)
		}
		w = do(h, "GET", p, map[string]string{"If-Modified-Since": first.Header().Get("Last-Modified")})
		if w.Code != http.StatusNotModified {
			t.Errorf("%s If-Modified-Since: %d, want 304", p, w.Code)
		}
	}
	// Same content, same ETag; different content, different ETag.
	a := do(h, "GET", "/manifest.json", nil).Header().Get("ETag")
	b := do(h, "GET", "/site.webmanifest", nil).Header().Get("ETag")
	c := do(h, "GET", "/robots.txt", nil).Header().Get("ETag")
	if a != b || a == c {
		t.Errorf("ETags not from content: %q %q %q", a, b, c)
	}
}

func TestViteStaticETagFollowsChanges(t *testing.T) {
	dir := site(t)
	h := handler(t, dir, true)
	before := do(h, "GET", "/robots.txt", nil).Header().Get("ETag")
	p := filepath.Join(dir, "robots.txt")
	writeFile(t, p, "User-agent: *\nDisallow: /")
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	w := do(h, "GET", "/robots.txt", nil)
	if after := w.Header().Get("ETag"); after == before || w.Body.String() != "User-agent: *\nDisallow: /" {
		t.Fatalf("ETag %q -> %q, body %q", before, after, w.Body.String())
	}
}

func TestViteStaticPrecompressed(t *testing.T) {
	h := handler(t, site(t), true)
	js := "/assets/index-Bx3kP9aQ.js"
	cases := []struct {
		accept, encoding, body string
	}{
		{"gzip, deflate, br", "br", "BROTLI-BYTES"},
		{"gzip", "gzip", "GZIP-BYTES"},
		{"br;q=0, gzip;q=0.5", "gzip", "GZIP-BYTES"},
		{"*", "br", "BROTLI-BYTES"},
		{"*;q=0", "", "console.log('app')"},
		{"identity", "", "console.log('app')"},
		{"", "", "console.log('app')"},
	}
	etags := map[string]string{}
	for _, tc := range cases {
		w := do(h, "GET", js, map[string]string{"Accept-Encoding": tc.accept})
		if w.Code != 200 || w.Body.String() != tc.body || w.Header().Get("Content-Encoding") != tc.encoding {
			t.Errorf("Accept-Encoding %q: %d %q encoding %q", tc.accept, w.Code, w.Body.String(), w.Header().Get("Content-Encoding"))
		}
		if w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || w.Header().Get("Cache-Control") != CacheImmutable {
			t.Errorf("Accept-Encoding %q: headers %v", tc.accept, w.Header())
		}
		if w.Header().Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary %q", tc.accept, w.Header().Get("Vary"))
		}
		etags[tc.encoding] = w.Header().Get("ETag")
	}
	if etags["br"] == etags["gzip"] || etags["br"] == etags[""] {
		t.Errorf("encodings share an ETag: %v", etags)
	}
	// A file without siblings does not vary.
	if w := do(h, "GET", "/assets/index-D0cs1X2y.css", map[string]string{"Accept-Encoding": "br"}); w.Header().Get("Vary") != "" || w.Header().Get("Content-Encoding") != "" {
		t.Errorf("css: %v", w.Header())
	}
}

func TestViteStaticTraversal(t *testing.T) {
	h := handler(t, site(t), true)
	paths := []string{
		"/../secret.txt",
		"/assets/../../secret.txt",
		"../secret.txt",
		"/..\\secret.txt",
		"/link.txt",      // symlink to a file outside
		"/up/secret.txt", // symlink to the parent directory
		"/up/dist/../secret.txt",
		"/secret.txt\x00.js",
		"/%2e%2e/secret.txt",
	}
	for _, p := range paths {
		w := do(h, "GET", p, nil)
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("%q: served the file outside the root", p)
		}
		if w.Code != 404 && !(w.Code == 200 && w.Body.String() == indexHTML) {
			t.Errorf("%q: status %d", p, w.Code)
		}
	}

	// The same over a real connection, with request targets no client
	// library would send.
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, target := range []string{"/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/assets/..%2f..%2fsecret.txt", "/up/secret.txt"} {
		status, body := rawGet(t, srv.Listener.Addr().String(), target)
		if strings.Contains(body, secret) {
			t.Errorf("raw %q: served the file outside the root (status %s)", target, status)
		}
	}
}

// rawGet sends one request line as is and returns the status line and the
// whole response.
func rawGet(t *testing.T, addr, target string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	r := bufio.NewReader(c)
	status, _ := r.ReadString('\n')
	rest, _ := io.ReadAll(r)
	return strings.TrimSpace(status), status + string(rest)
}

// TestViteStaticHiddenFiles: files and folders whose names start with a
// dot (a .env or .git a build copied) are not served, as Vite's preview
// server does not serve them; .well-known is.
func TestViteStaticHiddenFiles(t *testing.T) {
	dir := site(t)
	writeFile(t, filepath.Join(dir, ".env"), "SECRET=1")
	writeFile(t, filepath.Join(dir, ".git", "config"), "[core]")
	writeFile(t, filepath.Join(dir, "assets", ".hidden.js"), "x")
	writeFile(t, filepath.Join(dir, ".well-known", "security.txt"), "Contact: me")
	h := handler(t, dir, true)
	for _, p := range []string{"/.env", "/.git/config", "/assets/.hidden.js", "/.git/"} {
		if w := do(h, "GET", p, nil); w.Code != 404 || strings.Contains(w.Body.String(), "SECRET") || strings.Contains(w.Body.String(), "[core]") {
			t.Errorf("%s: %d %q, want 404", p, w.Code, w.Body.String())
		}
	}
	if w := do(h, "GET", "/.well-known/security.txt", nil); w.Code != 200 || w.Body.String() != "Contact: me" {
		t.Errorf(".well-known: %d %q", w.Code, w.Body.String())
	}
}

func TestViteStaticMethods(t *testing.T) {
	h := handler(t, site(t), true)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		w := do(h, m, "/", nil)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	w := do(h, "HEAD", "/assets/index-D0cs1X2y.css", nil)
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "15" {
		t.Errorf("HEAD: %d %d %v", w.Code, w.Body.Len(), w.Header())
	}
}

func TestViteStaticRange(t *testing.T) {
	h := handler(t, site(t), true)
	w := do(h, "GET", "/robots.txt", map[string]string{"Range": "bytes=0-9"})
	if w.Code != http.StatusPartialContent || w.Body.String() != "User-agen"+"t" {
		t.Fatalf("%d %q", w.Code, w.Body.String())
	}
}

func TestViteContentType(t *testing.T) {
	for name, want := range map[string]string{
		"a.js": "text/javascript; charset=utf-8", "A.JS": "text/javascript; charset=utf-8",
		"a.mjs": "text/javascript; charset=utf-8", "a.css": "text/css; charset=utf-8",
		"a.svg": "image/svg+xml", "a.wasm": "application/wasm", "a.json": "application/json",
		"a.woff2": "font/woff2", "a.ttf": "font/ttf", "a.otf": "font/otf", "a.html": "text/html; charset=utf-8",
		"a.png": "image/png", "a.avif": "image/avif", "noext": "",
	} {
		if got := ContentType(name); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", name, got, want)
		}
	}
}
