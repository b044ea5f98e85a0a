package mesh

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
)

// target is one fake worker: a real http.Server on a real Unix socket.
type target struct {
	id     string
	path   string
	ln     net.Listener
	srv    *http.Server
	hits   atomic.Int64 // requests that reached the handler
	conns  atomic.Int64 // connections accepted
	closed atomic.Int64 // connections closed or hijacked
}

// shortDir is a temporary directory with a short path: a Unix socket path
// must fit in sun_path (108 bytes), which t.TempDir() can exceed.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "m")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startTarget serves h (or, when nil, a handler answering the target's id)
// on dir/<id>.sock.
func startTarget(t testing.TB, dir, id string, h http.Handler) *target {
	t.Helper()
	tg := &target{id: id, path: filepath.Join(dir, id+".sock")}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, tg.id)
		})
	}
	ln, err := net.Listen("unix", tg.path)
	if err != nil {
		t.Fatal(err)
	}
	tg.ln = ln
	tg.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tg.hits.Add(1)
			h.ServeHTTP(w, r)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				tg.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				tg.closed.Add(1)
			}
		},
	}
	go tg.srv.Serve(ln)
	t.Cleanup(func() { tg.srv.Close() })
	return tg
}

// deadSocket returns a socket path that refuses connections: the file
// exists but nothing listens (ECONNREFUSED), like a slot that closed its
// socket without unlinking it.
func deadSocket(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name+".sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	return p
}

// swapResolver is a Resolver whose table the test replaces.
type swapResolver struct{ p atomic.Pointer[ipc.MeshTable] }

func (s *swapResolver) Table() *ipc.MeshTable { return s.p.Load() }

func newSwap(t *ipc.MeshTable) *swapResolver {
	s := &swapResolver{}
	s.p.Store(t)
	return s
}

// oneApp is a table with app "api" on the given sockets.
func oneApp(timeoutMs int64, eps ...string) *ipc.MeshTable {
	return &ipc.MeshTable{
		Apps:      map[string]ipc.MeshApp{"api": {Endpoints: eps, State: "running"}},
		TimeoutMs: timeoutMs,
	}
}

func paths(ts ...*target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.path
	}
	return out
}

// get does a GET and returns status and body.
func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustGet(t testing.TB, c *http.Client, url string) string {
	t.Helper()
	code, body, err := get(c, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return body
}
