package node

// Tests of undici.cjs: the undici fixture calls other apps at
// http://<app>.plt.local with the npm undici package, versions 6 and 7,
// through request(), fetch(), a Pool, a Client, an Agent and an Agent set as
// the global dispatcher. As in mesh_test.go, the test plays wattd, the
// target workers and the mesh proxy.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wattd/wattd/ipc"
)

type undiciResult struct {
	OK     bool   `json:"ok"`
	Status int    `json:"status"`
	Target string `json:"target"`
	Body   string `json:"body"`
	Error  struct {
		Name         string `json:"name"`
		Message      string `json:"message"`
		Code         string `json:"code"`
		CauseMessage string `json:"causeMessage"`
		CauseCode    string `json:"causeCode"`
	} `json:"error"`
}

type undiciEnv struct {
	t      *testing.T
	w      *worker
	base   string
	client *http.Client
}

func (e *undiciEnv) call(t *testing.T, v, kind, u string) undiciResult {
	t.Helper()
	q := url.Values{"v": {v}, "kind": {kind}, "u": {u}}
	resp, err := e.client.Get(e.base + "/call?" + q.Encode())
	if err != nil {
		t.Fatalf("undici %s %s %s: %v", v, kind, u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r undiciResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("undici %s %s %s: %d %q: %v", v, kind, u, resp.StatusCode, body, err)
	}
	return r
}

// refusingSocket makes a Unix socket file that nobody listens on any more:
// connecting to it is refused (ECONNREFUSED), as for a worker that died.
func refusingSocket(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	return path
}

func TestMeshUndici(t *testing.T) {
	if m, _ := filepath.Glob("testdata/undici/node_modules/undici*/package.json"); len(m) != 2 {
		t.Skip("testdata/undici/node_modules not installed: run make deps")
	}
	onEveryNode(t, testMeshUndici)
}

func testMeshUndici(t *testing.T) {
	dir := meshDir(t)
	h := newHangs()
	t0, t1 := startTarget(t, dir, "t0", h), startTarget(t, dir, "t1", h)
	live := startTarget(t, dir, "live", h)
	gone := startTarget(t, dir, "gone", h)
	gone.kill() // ENOENT
	refused := refusingSocket(t, dir, "refused")
	proxy := startProxy(t)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Target", "tcp")
		io.WriteString(w, "tcp")
	}))
	t.Cleanup(plain.Close)

	w := startWorker(t, workerOpts{app: "undici", entrypoint: true})
	w.handshake()
	w.expect(ipc.TypeReady)
	e := &undiciEnv{t: t, w: w, base: "http://" + w.tcpAddr, client: tcpClient()}
	w.send(&ipc.Message{Type: ipc.TypeMesh, Mesh: &ipc.MeshTable{
		Apps: map[string]ipc.MeshApp{
			"api":   {Endpoints: endpoints(t0, t1), State: "running"},
			"flaky": {Endpoints: []string{gone.path, refused, live.path}, State: "running"},
			"dead":  {Endpoints: []string{refused}, State: "running"},
			"down":  {State: "crashed", Reason: "crash loop"},
		},
		ProxySocket: proxy.Socket,
	}})

	for _, v := range []string{"6", "7"} {
		t.Run("undici"+v, func(t *testing.T) {
			for _, kind := range []string{"request", "fetch", "pool", "client", "agent"} {
				r := e.call(t, v, kind, "http://api.plt.local/id")
				if !r.OK || r.Status != 200 || r.Body != r.Target || (r.Body != "t0" && r.Body != "t1") {
					t.Errorf("%s to api: %+v", kind, r)
				}
			}
			r := e.call(t, v, "global", "http://API.plt.local:3042/id")
			if parts := strings.Split(r.Body, "|"); !r.OK || r.Status != 200 || len(parts) != 3 {
				t.Errorf("global dispatcher to api: %+v", r)
			}

			r = e.call(t, v, "post", "http://api.plt.local/echo?x=1")
			var m map[string]any
			if !r.OK || json.Unmarshal([]byte(r.Body), &m) != nil ||
				m["method"] != "POST" || m["body"] != "hello undici" || m["host"] != "api.plt.local" || m["uri"] != "/echo?x=1" {
				t.Errorf("POST to api: %+v", r)
			}

			// A Client opens a new connection each time: each must find the
			// live endpoint past the missing and the refusing one.
			for i := 0; i < 4; i++ {
				if r := e.call(t, v, "client", "http://flaky.plt.local/id"); !r.OK || r.Body != "live" {
					t.Errorf("client to flaky, try %d: %+v", i, r)
				}
			}

			// Every endpoint refuses, or none is ready: wattd's proxy says why.
			for _, app := range []string{"dead", "down"} {
				for _, kind := range []string{"request", "fetch", "pool"} {
					r := e.call(t, v, kind, "http://"+app+".plt.local/id")
					if !r.OK || r.Status != 503 || !strings.Contains(r.Body, fmt.Sprintf("app %q", app)) {
						t.Errorf("%s to %s: %+v", kind, app, r)
					}
				}
			}

			// An app nobody knows: the error names it and the known apps.
			r = e.call(t, v, "request", "http://nope.plt.local/id")
			if r.OK || r.Error.Code != "ENOTFOUND" || !strings.Contains(r.Error.Message, `unknown app "nope"`) ||
				!strings.Contains(r.Error.Message, "api, dead, down, flaky") {
				t.Errorf("request to nope: %+v", r)
			}
			r = e.call(t, v, "fetch", "http://nope.plt.local/id")
			if r.OK || r.Error.CauseCode != "ENOTFOUND" || !strings.Contains(r.Error.CauseMessage, `unknown app "nope"`) {
				t.Errorf("fetch to nope: %+v", r)
			}

			r = e.call(t, v, "fetch", "http://x.api.plt.local/id")
			if r.OK || r.Error.CauseCode != "ENOTFOUND" || !strings.Contains(r.Error.CauseMessage, `unknown app "x.api"`) {
				t.Errorf("fetch to x.api: %+v", r)
			}

			// Other hosts are left alone.
			for _, kind := range []string{"request", "fetch", "pool"} {
				if r := e.call(t, v, kind, plain.URL+"/"); !r.OK || r.Body != "tcp" {
					t.Errorf("%s to %s: %+v", kind, plain.URL, r)
				}
			}
		})
	}

	seen := strings.Join(proxy.requests(), "\n")
	for _, want := range []string{"/id dead.plt.local", "/id down.plt.local"} {
		if !strings.Contains(seen, want) {
			t.Errorf("proxy saw %q, want a request %q", seen, want)
		}
	}
	if s := w.stderr.String(); strings.Contains(s, "wattd preload") {
		t.Errorf("preload warnings:\n%s", s)
	}
}

// TestMeshUndiciEarlyRequest checks that an undici connection asked for
// before wattd's table arrived waits for it instead of failing.
func TestMeshUndiciEarlyRequest(t *testing.T) {
	if m, _ := filepath.Glob("testdata/undici/node_modules/undici*/package.json"); len(m) != 2 {
		t.Skip("testdata/undici/node_modules not installed: run make deps")
	}
	onEveryNode(t, func(t *testing.T) {
		tg := startTarget(t, meshDir(t), "early", newHangs())
		w := startWorker(t, workerOpts{app: "undici", entrypoint: true})
		w.handshake()
		w.expect(ipc.TypeReady)
		e := &undiciEnv{t: t, w: w, base: "http://" + w.tcpAddr, client: tcpClient()}
		got := make(chan undiciResult, 1)
		go func() {
			q := url.Values{"v": {"7"}, "kind": {"pool"}, "u": {"http://api.plt.local/id"}, "announce": {"1"}}
			resp, err := e.client.Get(e.base + "/call?" + q.Encode())
			var r undiciResult
			if err == nil {
				json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
			}
			got <- r
		}()
		w.event("call-start")
		w.send(&ipc.Message{Type: ipc.TypeMesh, Mesh: &ipc.MeshTable{Apps: map[string]ipc.MeshApp{
			"api": {Endpoints: endpoints(tg), State: "running"},
		}}})
		if r := <-got; !r.OK || r.Body != "early" {
			t.Errorf("early undici call: %+v", r)
		}
	})
}
