package vite

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cache-Control values. Vite puts every file it emits under build.assetsDir
// (assets/ by default) with a content hash in its name, so those can be
// cached for good; index.html and the files copied from public/ keep their
// names across builds and must be revalidated.
const (
	CacheImmutable  = "public, max-age=31536000, immutable"
	CacheRevalidate = "no-cache"
)

// AssetsDir is Vite's default build.assetsDir.
const AssetsDir = "assets"

// hashLimit bounds the files whose ETag is a hash of their content; larger
// ones get a weak ETag from size and modification time instead.
const hashLimit = 16 << 20

// contentTypes are the types this server is sure of, whatever the system's
// mime tables say (some still map .js to application/javascript or lack
// .wasm and the font types).
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".cjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".txt":         "text/plain; charset=utf-8",
	".xml":         "application/xml",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".wasm":        "application/wasm",
	".woff2":       "font/woff2",
	".woff":        "font/woff",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".eot":         "application/vnd.ms-fontobject",
	".pdf":         "application/pdf",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".mp3":         "audio/mpeg",
	".wav":         "audio/wav",
	".ogg":         "audio/ogg",
	".gz":          "application/gzip",
	".br":          "application/x-brotli",
}

// ContentType returns the Content-Type for a file name, or "" when the
// extension is unknown (the content is then sniffed).
func ContentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if ext == "" {
		return ""
	}
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	return mime.TypeByExtension(ext)
}

// encodings are the precompressed siblings tried, best first.
var encodings = []struct{ name, suffix string }{
	{"br", ".br"},
	{"gzip", ".gz"},
}

// Handler serves a built site from one directory. It answers GET and HEAD
// only, never lists directories and never leaves the directory: names are
// opened through an os.Root, which also refuses symlinks that point out.
type Handler struct {
	root *os.Root
	spa  bool

	// etags caches a file's ETag by name until its size or time changes.
	etags sync.Map // string -> etagEntry
}

type etagEntry struct {
	size int64
	mod  time.Time
	tag  string
}

// NewHandler returns a Handler over dir. With spa set, a GET or HEAD for a
// path without a file extension that matches no file is answered with
// index.html (client-side routing); a missing file with an extension is
// always 404.
func NewHandler(dir string, spa bool) (*Handler, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Handler{root: root, spa: spa}, nil
}

// Close releases the directory.
func (h *Handler) Close() error { return h.root.Close() }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, dirRequest, ok := cleanName(r.URL.Path)
	if !ok || hidden(name) {
		h.notFound(w, r)
		return
	}
	if found, ok := h.lookup(name, dirRequest); ok {
		h.serve(w, r, found)
		return
	}
	if h.spa && path.Ext(name) == "" {
		if h.isFile("index.html") {
			h.serve(w, r, "index.html")
			return
		}
	}
	h.notFound(w, r)
}

// cleanName turns a URL path into a name relative to the root: "." for the
// root itself, never with a ".." element. dirRequest reports a trailing
// slash. A path with a NUL byte is refused.
func cleanName(p string) (name string, dirRequest bool, ok bool) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", false, false
	}
	dirRequest = strings.HasSuffix(p, "/")
	name = strings.TrimPrefix(path.Clean("/"+p), "/")
	if name == "" {
		name = "."
	}
	return name, dirRequest, true
}

// hidden reports whether name has an element that starts with a dot
// (.env, .git/config) other than .well-known: as Vite's preview server
// (sirv) does by default, such files are not served; a build that copied
// one into its output did not mean to publish it.
func hidden(name string) bool {
	for el := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(el, ".") && el != "." && el != ".well-known" {
			return true
		}
	}
	return false
}

// lookup finds the file that answers name: the file itself, a directory's
// index.html, or name.html (how Vite's own preview server resolves the
// pages of a multi-page app).
func (h *Handler) lookup(name string, dirRequest bool) (string, bool) {
	st, err := h.root.Stat(name)
	switch {
	case err == nil && st.Mode().IsRegular():
		if dirRequest {
			return "", false // "file/" is not a file
		}
		return name, true
	case err == nil && st.IsDir():
		idx := path.Join(name, "index.html")
		if h.isFile(idx) {
			return idx, true
		}
		return "", false // no directory listings
	}
	if !dirRequest && name != "." && path.Ext(name) == "" && h.isFile(name+".html") {
		return name + ".html", true
	}
	return "", false
}

func (h *Handler) isFile(name string) bool {
	st, err := h.root.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

// serve answers with the file name, or with a precompressed sibling of it
// that the client accepts. http.ServeContent does the conditional requests
// (ETag, Last-Modified, 304) and ranges.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, name string) {
	hdr := w.Header()
	if t := ContentType(name); t != "" {
		hdr.Set("Content-Type", t)
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	if isAsset(name) {
		hdr.Set("Cache-Control", CacheImmutable)
	} else {
		hdr.Set("Cache-Control", CacheRevalidate)
	}

	file, encoding := name, ""
	if variants := h.variants(name); len(variants) > 0 {
		hdr.Add("Vary", "Accept-Encoding")
		accepted := acceptedEncodings(r.Header.Get("Accept-Encoding"))
		for _, v := range variants {
			if accepted(v.name) {
				file, encoding = name+v.suffix, v.name
				break
			}
		}
	}

	f, err := h.root.Open(file)
	if err != nil {
		h.openError(w, r, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		h.notFound(w, r)
		return
	}
	tag, err := h.etag(file, f, st)
	if err != nil {
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
		return
	}
	hdr.Set("ETag", tag)
	if encoding != "" {
		hdr.Set("Content-Encoding", encoding)
		if hdr.Get("Content-Type") == "" {
			// Sniffing would look at the compressed bytes.
			hdr.Set("Content-Type", "application/octet-stream")
		}
	}
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// variants returns the precompressed siblings of name that exist.
func (h *Handler) variants(name string) []struct{ name, suffix string } {
	var out []struct{ name, suffix string }
	for _, e := range encodings {
		if h.isFile(name + e.suffix) {
			out = append(out, e)
		}
	}
	return out
}

// isAsset reports whether name is under Vite's assets directory, whose files
// carry a content hash in their names.
func isAsset(name string) bool { return strings.HasPrefix(name, AssetsDir+"/") }

// etag returns a strong ETag from the content of f (its first hashLimit
// bytes' worth of files), cached until the file's size or time changes, or a
// weak one from size and time for larger files. f is left at offset 0.
func (h *Handler) etag(name string, f *os.File, st fs.FileInfo) (string, error) {
	if v, ok := h.etags.Load(name); ok {
		e := v.(etagEntry)
		if e.size == st.Size() && e.mod.Equal(st.ModTime()) {
			return e.tag, nil
		}
	}
	var tag string
	if st.Size() > hashLimit {
		tag = fmt.Sprintf(`W/"%x-%x"`, st.Size(), st.ModTime().UnixNano())
	} else {
		sum := sha256.New()
		if _, err := io.Copy(sum, f); err != nil {
			return "", err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		tag = `"` + base64.RawURLEncoding.EncodeToString(sum.Sum(nil)[:18]) + `"`
	}
	h.etags.Store(name, etagEntry{size: st.Size(), mod: st.ModTime(), tag: tag})
	return tag, nil
}

func (h *Handler) openError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrPermission) {
		http.Error(w, "403 forbidden", http.StatusForbidden)
		return
	}
	h.notFound(w, r)
}

// notFound answers 404, with the site's own 404.html when it has one.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Del("Vary")
	hdr.Del("ETag")
	hdr.Del("Content-Encoding")
	hdr.Set("Cache-Control", CacheRevalidate)
	if f, err := h.root.Open("404.html"); err == nil {
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			hdr.Set("Content-Type", contentTypes[".html"])
			hdr.Set("X-Content-Type-Options", "nosniff")
			hdr.Set("Content-Length", strconv.FormatInt(st.Size(), 10))
			w.WriteHeader(http.StatusNotFound)
			if r.Method != http.MethodHead {
				_, _ = io.Copy(w, f)
			}
			return
		}
	}
	http.Error(w, "404 page not found", http.StatusNotFound)
}

// acceptedEncodings parses an Accept-Encoding header into a predicate. An
// encoding is accepted when it is listed, or covered by "*", with a q-value
// above zero.
func acceptedEncodings(header string) func(string) bool {
	q := map[string]float64{}
	for _, part := range strings.Split(header, ",") {
		fields := strings.Split(part, ";")
		coding := strings.ToLower(strings.TrimSpace(fields[0]))
		if coding == "" {
			continue
		}
		weight := 1.0
		for _, p := range fields[1:] {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					weight = f
				}
			}
		}
		q[coding] = weight
	}
	return func(coding string) bool {
		if w, ok := q[coding]; ok {
			return w > 0
		}
		if coding == "gzip" {
			if w, ok := q["x-gzip"]; ok {
				return w > 0
			}
		}
		w, ok := q["*"]
		return ok && w > 0
	}
}
