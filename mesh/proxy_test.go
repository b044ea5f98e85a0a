package mesh

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
)

// proxyEnv is a Proxy in front of app "api" (and whatever else the table
// holds), served over loopback TCP like wattd serves it.
type proxyEnv struct {
	srv    *httptest.Server
	client *http.Client // sends absolute-form requests through the proxy
}

func startProxy(t *testing.T, table *ipc.MeshTable) *proxyEnv {
	t.Helper()
	p := &Proxy{Transport: &Transport{Resolver: StaticResolver{T: table}}, Log: func(msg string, kv ...any) { t.Log(append([]any{msg}, kv...)...) }}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	tr := &http.Transport{Proxy: http.ProxyURL(u)}
	t.Cleanup(tr.CloseIdleConnections)
	return &proxyEnv{srv: srv, client: &http.Client{Transport: tr}}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProxyForms(t *testing.T) {
	dir := shortDir(t)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %s", r.Method, r.Host, r.RequestURI, b)
	})
	tg := startTarget(t, dir, "w0", echo)
	env := startProxy(t, oneApp(0, tg.path))

	// Absolute form, as an HTTP client configured with the proxy sends it.
	resp, err := env.client.Get("http://api.plt.local/x?y=1")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "GET api.plt.local /x?y=1 " {
		t.Fatalf("absolute-form: %q", got)
	}
	resp, err = env.client.Post("http://api.plt.local/p", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "POST api.plt.local /p body" {
		t.Fatalf("absolute-form POST: %q", got)
	}

	// Origin form with the app in Host, as a client pointed at the proxy's
	// address sends it.
	req, _ := http.NewRequest("GET", env.srv.URL+"/y", nil)
	req.Host = "API.plt.local"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "GET API.plt.local /y " {
		t.Fatalf("Host-form: %q", got)
	}
}

// rawExchange writes a raw request to the proxy and reads the response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, strings.ReplaceAll(raw, "\n", "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readAll(t, resp)
}

func TestProxyHopByHop(t *testing.T) {
	dir := shortDir(t)
	// Request side: the target lists the headers it received.
	headers := startTarget(t, dir, "headers", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for k, vv := range r.Header {
			lines = append(lines, k+": "+strings.Join(vv, ","))
		}
		slices.Sort(lines)
		io.WriteString(w, strings.Join(lines, "\n"))
	}))
	// Response side: a raw response, so the hop-by-hop headers really
	// reach the proxy whatever net/http's server would do with them.
	raw := startTarget(t, dir, "raw", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, bw, _ := http.NewResponseController(w).Hijack()
		defer conn.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\nKeep-Alive: timeout=9\r\n" +
			"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Resp-Keep: 1\r\nContent-Length: 2\r\n\r\nok")
		bw.Flush()
	}))
	table := &ipc.MeshTable{Apps: map[string]ipc.MeshApp{
		"headers": {Endpoints: []string{headers.path}},
		"raw":     {Endpoints: []string{raw.path}},
	}}
	env := startProxy(t, table)
	addr := env.srv.Listener.Addr().String()

	resp, body := rawExchange(t, addr, "GET http://headers.plt.local/ HTTP/1.1\n"+
		"Host: headers.plt.local\n"+
		"Connection: X-Hop, keep-alive\n"+
		"X-Hop: 1\n"+
		"Proxy-Connection: keep-alive\n"+
		"Keep-Alive: 300\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\n"+
		"Te: trailers\n"+
		"Upgrade: websocket\n"+
		"X-Keep: 1\n"+
		"X-Forwarded-For: 10.0.0.1\n\n")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	got := strings.Split(body, "\n")
	for _, h := range []string{"Connection", "X-Hop", "Proxy-Connection", "Keep-Alive", "Proxy-Authorization", "Te", "Upgrade"} {
		for _, line := range got {
			if strings.HasPrefix(line, h+":") {
				t.Errorf("hop-by-hop header forwarded: %s", line)
			}
		}
	}
	for _, want := range []string{"X-Keep: 1", "X-Forwarded-For: 10.0.0.1, 127.0.0.1"} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in %q", want, got)
		}
	}

	resp, body = rawExchange(t, addr, "GET http://raw.plt.local/ HTTP/1.1\nHost: raw.plt.local\n\n")
	if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("X-Resp-Keep") != "1" {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	for _, h := range []string{"X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("hop-by-hop response header forwarded: %s: %s", h, v)
		}
	}
	if v := resp.Header.Get("Connection"); strings.Contains(v, "X-Resp-Hop") {
		t.Errorf("Connection forwarded: %s", v)
	}
}

func TestProxyStreams(t *testing.T) {
	dir := shortDir(t)
	release := make(chan struct{})
	var stalled atomic.Bool
	tg := startTarget(t, dir, "stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		// The last chunk goes only after the client has seen the first
		// one; if the proxy held the first back, this wait ends by the
		// timer instead and the test fails.
		select {
		case <-release:
		case <-time.After(5 * time.Second):
			stalled.Store(true)
		}
		io.WriteString(w, "last\n")
	}))
	env := startProxy(t, oneApp(0, tg.path))
	resp, err := env.client.Get("http://api.plt.local/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk: %q %v", line, err)
	}
	if stalled.Load() {
		t.Fatal("the first chunk arrived only after the last was sent")
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "last\n" {
		t.Fatalf("rest: %q %v", rest, err)
	}
}

func TestProxyTrailers(t *testing.T) {
	dir := shortDir(t)
	tg := startTarget(t, dir, "tr", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "data")
		w.Header().Set("X-Sum", "42")
	}))
	env := startProxy(t, oneApp(0, tg.path))
	resp, err := env.client.Get("http://api.plt.local/")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "data" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("%q trailer %v", body, resp.Trailer)
	}
}

func TestProxyRefusals(t *testing.T) {
	dir := shortDir(t)
	release := make(chan struct{})
	defer close(release)
	slow := startTarget(t, dir, "slow", stallHandler(release, ""))
	table := &ipc.MeshTable{TimeoutMs: 100, Apps: map[string]ipc.MeshApp{
		"down":    {Endpoints: []string{}, State: "failed", Reason: "worker 0 crashed: exit status 3"},
		"refused": {Endpoints: []string{filepath.Join(dir, "gone.sock")}, State: "running"},
		"slow":    {Endpoints: []string{slow.path}, State: "running"},
	}}
	env := startProxy(t, table)
	addr := env.srv.Listener.Addr().String()

	check := func(name string, resp *http.Response, body string, code int, want string) {
		t.Helper()
		if resp.StatusCode != code || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q; want %d with %q", name, resp.StatusCode, body, code, want)
		}
	}
	do := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := env.client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		return resp, readAll(t, resp)
	}

	resp, body := do("http://example.com/")
	check("other host, absolute-form", resp, body, 403, "serves only *.plt.local")
	resp, body = rawExchange(t, addr, "GET / HTTP/1.1\nHost: example.com\n\n")
	check("other host, Host-form", resp, body, 403, "serves only *.plt.local")
	resp, body = rawExchange(t, addr, "CONNECT api.plt.local:443 HTTP/1.1\nHost: api.plt.local:443\n\n")
	check("CONNECT", resp, body, 405, "CONNECT")

	resp, body = do("http://nope.plt.local/")
	check("unknown app", resp, body, 502, `unknown app "nope" on the mesh (known: down, refused, slow)`)
	resp, body = do("http://x.slow.plt.local/")
	check("more labels", resp, body, 502, `unknown app "x.slow" on the mesh (known: down, refused, slow)`)

	resp, body = do("http://down.plt.local/")
	check("no endpoints", resp, body, 503, `no worker of app "down" is available: failed: worker 0 crashed: exit status 3`)
	if resp.Header.Get("X-Wattd-Mesh") != "no-worker" {
		t.Errorf("no endpoints: header %v", resp.Header)
	}

	resp, body = do("http://refused.plt.local/")
	check("every socket refuses", resp, body, 503, `no worker of app "refused" is available`)

	resp, body = do("http://slow.plt.local/")
	check("timeout", resp, body, 504, "did not answer within 100ms")
}

func TestProxyAuth(t *testing.T) {
	dir := shortDir(t)
	tg := startTarget(t, dir, "w0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok %q", r.Header.Get("Proxy-Authorization"))
	}))
	p := &Proxy{Transport: &Transport{Resolver: StaticResolver{T: oneApp(0, tg.path)}}}
	srv := httptest.NewServer(ProxyAuth("s3cret", p))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	client := func(proxy string) *http.Client {
		u, err := url.Parse(proxy)
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{Proxy: http.ProxyURL(u)}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	code, body, err := get(client(ProxyURL(addr, "s3cret")), "http://api.plt.local/")
	if err != nil || code != 200 || body != `ok ""` {
		t.Fatalf("with the token: %d %v %q (the credentials must not reach the app)", code, err, body)
	}
	code, body, err = get(client("http://other-user:s3cret@"+addr), "http://api.plt.local/")
	if err != nil || code != 200 {
		t.Fatalf("another user name, the right token: %d %v %q", code, err, body)
	}
	for _, proxy := range []string{"http://" + addr, ProxyURL(addr, "s3cre"), ProxyURL(addr, "s3cret2"), "http://s3cret@" + addr} {
		resp, err := client(proxy).Get("http://api.plt.local/")
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != http.StatusProxyAuthRequired || !strings.HasPrefix(resp.Header.Get("Proxy-Authenticate"), "Basic") || !resp.Close {
			t.Errorf("proxy %s: %d %v close=%v, want 407 with a challenge, connection closed", proxy, resp.StatusCode, resp.Header, resp.Close)
		}
	}
	if u, _ := url.Parse(ProxyURL("127.0.0.1:1", "a-b_c")); u.User.Username() != ProxyUser {
		t.Errorf("ProxyURL user %v", u.User)
	}
}

// TestProxyStallKeepsMovingStreams: the stall limit ends a client that stops
// sending its body, but not a response that keeps streaming after the
// request body was read, for longer than the limit in total.
func TestProxyStallKeepsMovingStreams(t *testing.T) {
	dir := shortDir(t)
	const stall = 300 * time.Millisecond
	tg := startTarget(t, dir, "w0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		for i := range 8 {
			fmt.Fprintf(w, "%s%d ", b, i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(stall / 3):
			case <-r.Context().Done():
				return
			}
		}
	}))
	p := &Proxy{Transport: &Transport{Resolver: StaticResolver{T: oneApp(0, tg.path)}}, Stall: stall}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	tr := &http.Transport{Proxy: http.ProxyURL(u)}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Post("http://api.plt.local/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "x0 x1 x2 x3 x4 x5 x6 x7 " {
		t.Fatalf("stream of %s through a proxy with a %s stall limit: %q", 8*stall/3, stall, got)
	}

	// A body announced and never sent.
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST http://api.plt.local/ HTTP/1.1\r\nHost: api.plt.local\r\nContent-Length: 10\r\n\r\nab")
	start := time.Now()
	c.SetReadDeadline(start.Add(10 * time.Second))
	io.Copy(io.Discard, bufio.NewReader(c))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a stalled request body held the connection %s", d)
	}
}

// TestProxySlowSteadyReader: a client that reads slowly but steadily is
// not cut by the stall limit, though one write to it blocks longer than
// the limit: a kernel wakes a writer on a full socket only once a large
// share of its send buffer has drained. One that stops reading is.
func TestProxySlowSteadyReader(t *testing.T) {
	dir := shortDir(t)
	const stall = 300 * time.Millisecond
	const size = 2 << 20
	tg := startTarget(t, dir, "w0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(make([]byte, size))
	}))
	p := &Proxy{Transport: &Transport{Resolver: StaticResolver{T: oneApp(0, tg.path)}}, Stall: stall}
	srv := httptest.NewUnstartedServer(p)
	srv.Config.ConnContext = ConnContext
	ln := srv.Listener
	srv.Listener = sndbufListener{ln}
	srv.Start()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)

	read := func(pause time.Duration, stopAfter int, rest time.Duration) (int, error) {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		c, err := d.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET http://api.plt.local/ HTTP/1.1\r\nHost: api.plt.local\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		total, buf := 0, make([]byte, 16<<10)
		for total < stopAfter {
			n, err := c.Read(buf)
			total += n
			if err != nil {
				return total, err
			}
			time.Sleep(pause)
		}
		if rest > 0 {
			// Stop reading for a while, then take what is left.
			time.Sleep(rest)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.Copy(io.Discard, c)
			return total + int(n), err
		}
		return total, nil
	}
	// A few hundred KB/s, steady (the client reads 4 KiB at a time): the
	// headers and the whole body.
	if n, err := read(5*time.Millisecond, size, 0); err != nil || n < size {
		t.Fatalf("a slow steady reader got %d of %d bytes: %v", n, size, err)
	}
	// One that stops for longer than the limit is cut.
	if n, _ := read(5*time.Millisecond, 64<<10, 4*stall); n >= size {
		t.Fatalf("a reader that stopped for %s got the whole body (%d bytes)", 4*stall, n)
	}
}

// sndbufListener gives the proxy's side of each connection a large send
// buffer, as loopback TCP autotuning does.
type sndbufListener struct{ net.Listener }

func (l sndbufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(1 << 20)
	}
	return c, err
}

// TestProxyStreamHeadFirst: the head of a stream reaches the client before
// its first piece of body, as the worker flushed it: an SSE client sees
// the connection open (and its status) while the app has nothing to say yet.
func TestProxyStreamHeadFirst(t *testing.T) {
	dir := shortDir(t)
	release := make(chan struct{})
	tg := startTarget(t, dir, "sse", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: 1\n\n")
	}))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	srv := httptest.NewUnstartedServer(&Proxy{Transport: &Transport{Resolver: StaticResolver{T: oneApp(0, tg.path)}}})
	ln, err := net.Listen("unix", filepath.Join(dir, "proxy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := net.Dial("unix", filepath.Join(dir, "proxy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET http://api.plt.local/ HTTP/1.1\r\nHost: api.plt.local\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no head while the stream waits for its first event: %v", err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("head: %d %v", resp.StatusCode, resp.Header)
	}
	close(release)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: 1\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
}

// TestProxyRelaysAnswerToHalfClosedClient: a client that half-closes its
// connection once its request is sent (socat, nc, HTTP/1.0 tools) gets
// the app's own answer, here a 404 that takes the app a moment, not an
// empty 200 made up because net/http took the end of its input for its
// leaving; and the app's headers come as it sent them, without a
// Content-Type guessed from the body.
func TestProxyRelaysAnswerToHalfClosedClient(t *testing.T) {
	dir := shortDir(t)
	var posted atomic.Int32
	tg := startTarget(t, dir, "w0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posted.Add(1)
		}
		time.Sleep(100 * time.Millisecond)
		w.Header()["Content-Type"] = nil // as a Node.js app that sets none
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "<html><body>no such thing</body></html>")
	}))
	env := startProxy(t, oneApp(0, tg.path))
	addr := strings.TrimPrefix(env.srv.URL, "http://")
	for _, raw := range []string{
		"GET http://api.plt.local/missing HTTP/1.1\r\nHost: api.plt.local\r\n\r\n",
		"POST http://api.plt.local/orders HTTP/1.0\r\nHost: api.plt.local\r\nContent-Length: 2\r\n\r\n{}",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, raw); err != nil {
			t.Fatal(err)
		}
		conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		conn.Close()
		if resp.StatusCode != http.StatusNotFound || body != "<html><body>no such thing</body></html>" {
			t.Errorf("%q half-closed: %s %q, want the app's 404", strings.SplitN(raw, "\r\n", 2)[0], resp.Status, body)
		}
		if ct, ok := resp.Header["Content-Type"]; ok {
			t.Errorf("a Content-Type the app never sent: %q", ct)
		}
	}
	if posted.Load() != 1 {
		t.Errorf("the POST reached the app %d times", posted.Load())
	}
}
