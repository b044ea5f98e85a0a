package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
)

func TestAppOf(t *testing.T) {
	cases := []struct {
		host string
		app  string
		ok   bool
	}{
		{"api.plt.local", "api", true},
		{"API.plt.local:80", "api", true},
		{"Api.PLT.Local", "api", true},
		{"api.plt.local.", "api", true},
		{"api.plt.local.:8080", "api", true},
		{"my-app2.plt.local", "my-app2", true},
		{"plt.local", "", false},
		{".plt.local", "", false},
		// More labels name an application that does not exist, rather
		// than the last label's.
		{"a.b.plt.local", "a.b", true},
		{"X.B.plt.local:80", "x.b", true},
		{"api.plt.local.com", "", false},
		{"apiplt.local", "", false},
		{"example.com", "", false},
		{"127.0.0.1:80", "", false},
		{"[::1]:80", "", false},
		{"a_b.plt.local", "a_b", true},
		{"", "", false},
	}
	for _, c := range cases {
		app, ok := AppOf(c.host)
		if app != c.app || ok != c.ok {
			t.Errorf("AppOf(%q) = %q, %v; want %q, %v", c.host, app, ok, c.app, c.ok)
		}
	}
}

func TestRoundRobin(t *testing.T) {
	dir := shortDir(t)
	ts := []*target{startTarget(t, dir, "w0", nil), startTarget(t, dir, "w1", nil), startTarget(t, dir, "w2", nil)}
	c := NewClient(StaticResolver{T: oneApp(0, paths(ts...)...)})
	for i := 0; i < 9; i++ {
		if got, want := mustGet(t, c, "http://api.plt.local/"), ts[i%3].id; got != want {
			t.Fatalf("request %d went to %s, want %s", i, got, want)
		}
	}
	for _, tg := range ts {
		if tg.hits.Load() != 3 {
			t.Errorf("%s got %d requests, want 3", tg.id, tg.hits.Load())
		}
	}
}

func TestKeepAlive(t *testing.T) {
	dir := shortDir(t)
	ts := []*target{startTarget(t, dir, "w0", nil), startTarget(t, dir, "w1", nil), startTarget(t, dir, "w2", nil)}
	c := NewClient(StaticResolver{T: oneApp(1000, paths(ts...)...)}) // with a timeout: ending it must not kill the connection
	const n = 30
	for i := 0; i < n; i++ {
		mustGet(t, c, "http://api.plt.local/")
	}
	var conns int64
	for _, tg := range ts {
		conns += tg.conns.Load()
	}
	if conns > 3 {
		t.Fatalf("%d connections accepted for %d requests; keep-alive should need 3", conns, n)
	}
}

func TestHostAndScheme(t *testing.T) {
	dir := shortDir(t)
	tg := startTarget(t, dir, "w0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Host+" "+r.RequestURI)
	}))
	tr := &Transport{Resolver: StaticResolver{T: oneApp(0, tg.path)}}
	c := &http.Client{Transport: tr}
	// https is not spoken on the mesh: the request goes as plain HTTP to the socket.
	if got := mustGet(t, c, "https://API.plt.local:8443/x?y=1"); got != "API.plt.local:8443 /x?y=1" {
		t.Fatalf("target saw %q", got)
	}
	// A request with only Host set (as a server-side request has) routes by Host.
	req := &http.Request{Method: "GET", URL: &url.URL{Path: "/z"}, Host: "api.plt.local", Header: http.Header{}}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "api.plt.local /z" {
		t.Fatalf("target saw %q", b)
	}
	if resp.Request != req {
		t.Fatal("resp.Request is not the caller's request")
	}
	// A Host the caller set apart from the URL's is the one sent, as
	// net/http's transport does; the URL still picks the app.
	req, _ = http.NewRequest("GET", "http://api.plt.local/h", nil)
	req.Host = "shop.example.com"
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "shop.example.com /h" {
		t.Fatalf("with Host set, target saw %q", b)
	}
}

func TestCaseInsensitiveTable(t *testing.T) {
	dir := shortDir(t)
	tg := startTarget(t, dir, "w0", nil)
	table := &ipc.MeshTable{Apps: map[string]ipc.MeshApp{"MyApi": {Endpoints: []string{tg.path}, State: "running"}}}
	if got := mustGet(t, NewClient(StaticResolver{T: table}), "http://myapi.plt.local/"); got != "w0" {
		t.Fatal(got)
	}
}

func TestDialFailureTriesNextEndpoint(t *testing.T) {
	dir := shortDir(t)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "live:"+string(b))
	})
	live := startTarget(t, dir, "live", echo)
	gone := filepath.Join(dir, "gone.sock") // ENOENT: the slot removed its socket
	dead := deadSocket(t, dir, "dead")      // ECONNREFUSED: nobody listens
	c := NewClient(StaticResolver{T: oneApp(0, gone, dead, live.path)})
	// A POST with a body is retried too: nothing reached a worker. Three
	// requests start at each of the three endpoints in turn.
	for i := 0; i < 3; i++ {
		resp, err := c.Post("http://api.plt.local/", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "live:hello" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
	if live.hits.Load() != 3 {
		t.Fatalf("live got %d requests", live.hits.Load())
	}
}

func TestAllEndpointsRefuse(t *testing.T) {
	dir := shortDir(t)
	c := NewClient(StaticResolver{T: oneApp(0, filepath.Join(dir, "gone.sock"), deadSocket(t, dir, "dead"))})
	_, _, err := get(c, "http://api.plt.local/")
	if !errors.Is(err, ErrNoWorker) || !isDialError(err) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), `no worker of app "api" is available: running: no socket accepted a connection (2 tried)`) {
		t.Fatalf("err = %v", err)
	}
}

// resetHandler takes the request and drops the connection without answering,
// as a worker that crashes mid-request does.
func resetHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		if uc, ok := conn.(*net.UnixConn); ok {
			uc.Close()
			return
		}
		conn.Close()
	})
}

func TestResetGETRetriedElsewhere(t *testing.T) {
	dir := shortDir(t)
	bad := startTarget(t, dir, "bad", resetHandler())
	good1, good2 := startTarget(t, dir, "good1", nil), startTarget(t, dir, "good2", nil)
	c := NewClient(StaticResolver{T: oneApp(0, bad.path, good1.path, good2.path)})
	if got := mustGet(t, c, "http://api.plt.local/"); got != "good1" {
		t.Fatalf("answered by %s", got)
	}
	if bad.hits.Load() != 1 {
		t.Fatalf("bad got %d requests, want 1", bad.hits.Load())
	}
	// HEAD and OPTIONS are retried too.
	for _, m := range []string{"HEAD", "OPTIONS"} {
		before := bad.hits.Load()
		var resp *http.Response
		var err error
		for bad.hits.Load() == before { // until the round-robin starts at bad again
			req, _ := http.NewRequest(m, "http://api.plt.local/", nil)
			resp, err = c.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			resp.Body.Close()
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", m, resp.StatusCode)
		}
	}
}

func TestResetNotRetriedForUnsafeRequests(t *testing.T) {
	for _, tc := range []struct{ name, method, body string }{
		{"POST", "POST", "payload"},
		{"POST without body", "POST", ""},
		{"GET with body", "GET", "payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			bad := startTarget(t, dir, "bad", resetHandler())
			good := startTarget(t, dir, "good", nil)
			c := NewClient(StaticResolver{T: oneApp(0, bad.path, good.path)})
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, "http://api.plt.local/", body)
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got %d, want the connection error", resp.StatusCode)
			}
			if errors.Is(err, ErrNoWorker) || !strings.Contains(err.Error(), bad.path) {
				t.Fatalf("err = %v", err)
			}
			if bad.hits.Load() != 1 || good.hits.Load() != 0 {
				t.Fatalf("bad %d, good %d requests; the request must not be repeated", bad.hits.Load(), good.hits.Load())
			}
		})
	}
}

func TestRemovedEndpointGetsNoTraffic(t *testing.T) {
	dir := shortDir(t)
	ts := []*target{startTarget(t, dir, "w0", nil), startTarget(t, dir, "w1", nil), startTarget(t, dir, "w2", nil)}
	res := newSwap(oneApp(0, paths(ts...)...))
	c := NewClient(res)
	for i := 0; i < 6; i++ {
		mustGet(t, c, "http://api.plt.local/")
	}
	if ts[2].hits.Load() != 2 || ts[2].conns.Load() != 1 {
		t.Fatalf("w2: %d requests on %d connections", ts[2].hits.Load(), ts[2].conns.Load())
	}
	res.p.Store(oneApp(0, ts[0].path, ts[1].path))
	// Its idle keep-alive connection is closed once the change is noticed
	// (lazily, on a later request).
	eventually(t, 5*time.Second, "w2's idle connection closed", func() bool {
		if got := mustGet(t, c, "http://api.plt.local/"); got == "w2" {
			t.Fatal("w2 answered after leaving the table")
		}
		return ts[2].closed.Load() == ts[2].conns.Load()
	})
	for i := 0; i < 20; i++ {
		mustGet(t, c, "http://api.plt.local/")
	}
	if ts[2].hits.Load() != 2 {
		t.Fatalf("w2 got %d requests after leaving the table", ts[2].hits.Load()-2)
	}
}

func TestNoEndpointsIs503(t *testing.T) {
	table := &ipc.MeshTable{Apps: map[string]ipc.MeshApp{
		"api": {Endpoints: []string{}, State: "failed", Reason: "worker 0 crashed: exit status 3"},
	}}
	resp, err := NewClient(StaticResolver{T: table}).Get("http://api.plt.local/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("X-Wattd-Mesh") != "no-worker" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	if want := `no worker of app "api" is available: failed: worker 0 crashed: exit status 3`; strings.TrimSpace(string(b)) != want {
		t.Fatalf("body %q, want %q", b, want)
	}
}

func TestUnknownApp(t *testing.T) {
	table := &ipc.MeshTable{Apps: map[string]ipc.MeshApp{"web": {}, "api": {}}}
	_, _, err := get(NewClient(StaticResolver{T: table}), "http://nope.plt.local/x")
	if !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), `unknown app "nope" on the mesh (known: api, web)`) {
		t.Fatalf("err = %v", err)
	}
	// An app the configuration turns off says so.
	table.Disabled = []string{"Old"}
	_, _, err = get(NewClient(StaticResolver{T: table}), "http://old.plt.local/x")
	if !errors.Is(err, ErrUnknownApp) || !strings.Contains(err.Error(), `app "Old" is disabled ("enabled": false in watt.json)`) {
		t.Fatalf("old.plt.local: err = %v", err)
	}
	// A host with more labels names an app with dots in its id, which none
	// has: it is not the last label's app.
	_, _, err = get(NewClient(StaticResolver{T: table}), "http://x.api.plt.local/x")
	if !errors.Is(err, ErrUnknownApp) || !strings.Contains(err.Error(), `unknown app "x.api" on the mesh (known: api, web)`) {
		t.Fatalf("x.api.plt.local: err = %v", err)
	}
	_, _, err = get(NewClient(StaticResolver{}), "http://nope.plt.local/x")
	if !errors.Is(err, ErrUnknownApp) || !strings.Contains(err.Error(), "no mesh table") {
		t.Fatalf("err = %v", err)
	}
}

// stallHandler answers after release is closed or the request ends; with
// part set it sends the headers and part first.
func stallHandler(release chan struct{}, part string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if part != "" {
			io.WriteString(w, part)
			http.NewResponseController(w).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
}

func TestTimeoutMs(t *testing.T) {
	dir := shortDir(t)
	release := make(chan struct{})
	defer close(release)
	slow := startTarget(t, dir, "slow", stallHandler(release, ""))
	trickle := startTarget(t, dir, "trickle", stallHandler(release, "part"))
	// A stream that keeps moving: 10 chunks 40 ms apart, more than the
	// timeout in all. The timeout leaves room for a loaded machine's
	// pauses between two chunks.
	moving := startTarget(t, dir, "moving", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 10 {
			fmt.Fprintf(w, "%d;", i)
			http.NewResponseController(w).Flush()
			time.Sleep(40 * time.Millisecond)
		}
	}))
	table := &ipc.MeshTable{TimeoutMs: 300, Apps: map[string]ipc.MeshApp{
		"slow":    {Endpoints: []string{slow.path}},
		"trickle": {Endpoints: []string{trickle.path}},
		"moving":  {Endpoints: []string{moving.path}},
	}}
	c := NewClient(StaticResolver{T: table})

	t.Run("headers", func(t *testing.T) {
		start := time.Now()
		_, _, err := get(c, "http://slow.plt.local/")
		var ue *url.Error
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ue) || !ue.Timeout() {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(err.Error(), `app "slow" did not answer within 300ms`) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
		if slow.hits.Load() != 1 {
			t.Fatalf("a timed-out request must not be retried: %d", slow.hits.Load())
		}
	})
	t.Run("body", func(t *testing.T) {
		resp, err := c.Get("http://trickle.plt.local/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if string(b) != "part" || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "sent nothing of its response body for 300ms") {
			t.Fatalf("read %q, %v", b, err)
		}
	})
	// After the head the timeout bounds the body's silences, not its
	// length, as Watt's applicationTimeout and undici's bodyTimeout do.
	t.Run("a body that keeps moving", func(t *testing.T) {
		resp, err := c.Get("http://moving.plt.local/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if string(b) != "0;1;2;3;4;5;6;7;8;9;" || err != nil {
			t.Fatalf("read %q, %v", b, err)
		}
	})
	t.Run("a body the caller reads later", func(t *testing.T) {
		resp, err := c.Get("http://moving.plt.local/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		time.Sleep(600 * time.Millisecond) // the caller's own pace, not the app's silence
		b, err := io.ReadAll(resp.Body)
		if string(b) != "0;1;2;3;4;5;6;7;8;9;" || err != nil {
			t.Fatalf("read %q, %v", b, err)
		}
	})
	t.Run("caller deadline first", func(t *testing.T) {
		tbl := *table
		tbl.TimeoutMs = 60_000
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://slow.plt.local/", nil)
		_, err := NewClient(StaticResolver{T: &tbl}).Do(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("table first", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://slow.plt.local/", nil)
		_, err := c.Do(req)
		if !strings.Contains(err.Error(), "did not answer within 300ms") {
			t.Fatalf("err = %v", err)
		}
	})
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFallback(t *testing.T) {
	var saw string
	tr := &Transport{
		Resolver: StaticResolver{T: oneApp(0)},
		Fallback: rtFunc(func(r *http.Request) (*http.Response, error) {
			saw = r.URL.Host
			return &http.Response{StatusCode: 204, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
		}),
	}
	resp, err := (&http.Client{Transport: tr}).Get("http://example.com/")
	if err != nil || resp.StatusCode != 204 || saw != "example.com" {
		t.Fatalf("%v %v %q", resp, err, saw)
	}
	_, _, err = get(NewClient(StaticResolver{T: oneApp(0)}), "http://example.com/")
	if err == nil || !strings.Contains(err.Error(), "not a mesh host") {
		t.Fatalf("err = %v", err)
	}
}

// The request body is closed whatever happens, as RoundTripper requires.
func TestRequestBodyClosed(t *testing.T) {
	dir := shortDir(t)
	live := startTarget(t, dir, "live", nil)
	tables := map[string]*ipc.MeshTable{
		"ok":        oneApp(0, live.path),
		"refused":   oneApp(0, deadSocket(t, dir, "dead")),
		"no worker": oneApp(0),
		"unknown":   {Apps: map[string]ipc.MeshApp{}},
	}
	for name, table := range tables {
		body := &closeSpy{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest("POST", "http://api.plt.local/", body)
		resp, err := (&Transport{Resolver: StaticResolver{T: table}}).RoundTrip(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		eventually(t, 5*time.Second, name+": body closed", body.closed.Load)
	}
}

type closeSpy struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeSpy) Close() error { c.closed.Store(true); return nil }
