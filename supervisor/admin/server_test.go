package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor"
)

// fakeBackend stands in for the supervisor: the admin API is under test
// here, not process management.
type fakeBackend struct {
	mu       sync.Mutex
	apps     []supervisor.AppStatus
	restarts []string
	stops    int
	// restartErr, when set, is returned by RestartApp for that app.
	restartErr map[string]error
	// block, when set, makes RestartApp signal entered and wait for ctx.
	block   bool
	entered chan struct{}
	ctxErr  chan error
	lastCtx context.Context
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		apps: []supervisor.AppStatus{
			{ID: "web", Entrypoint: true, State: "running", Workers: []supervisor.WorkerStatus{
				{Index: 0, PID: 101, State: "ready", Uptime: 12},
				{Index: 1, PID: 102, State: "ready", Uptime: 12},
			}},
			{ID: "api", State: "running", Workers: []supervisor.WorkerStatus{
				{Index: 0, PID: 201, State: "ready"},
			}},
		},
		restartErr: map[string]error{},
		entered:    make(chan struct{}, 1),
		ctxErr:     make(chan error, 1),
	}
}

func (f *fakeBackend) Status() supervisor.RuntimeStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return supervisor.RuntimeStatus{PID: os.Getpid(), Version: "test", State: "running", Apps: len(f.apps), Workers: 3, Ready: 3}
}

func (f *fakeBackend) Apps() []supervisor.AppStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]supervisor.AppStatus, len(f.apps))
	copy(out, f.apps)
	return out
}

func (f *fakeBackend) RestartApp(ctx context.Context, id string) error {
	f.mu.Lock()
	err, block := f.restartErr[id], f.block
	f.lastCtx = ctx
	f.mu.Unlock()
	if block {
		f.entered <- struct{}{}
		<-ctx.Done()
		f.ctxErr <- ctx.Err()
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.apps {
		if f.apps[i].ID == id {
			f.restarts = append(f.restarts, id)
			for j := range f.apps[i].Workers {
				f.apps[i].Workers[j].Restarts++
			}
			return nil
		}
	}
	return fmt.Errorf("%w %q", ErrNotFound, id)
}

func (f *fakeBackend) Table() *ipc.MeshTable {
	return &ipc.MeshTable{
		Apps:  map[string]ipc.MeshApp{"web": {Endpoints: []string{"/x/web-0.sock"}, State: "running"}},
		Proxy: "http://wattd:secret@127.0.0.1:9",
	}
}

func (f *fakeBackend) Stop() {
	f.mu.Lock()
	f.stops++
	f.mu.Unlock()
}

// shortTemp returns a fresh short directory: t.TempDir() paths can exceed
// the 108 bytes a Unix socket path may have.
func shortTemp(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "wa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startServer(t *testing.T, b Backend) (*Server, *Client) {
	t.Helper()
	sock := filepath.Join(shortTemp(t), "admin.sock")
	s, err := Serve(context.Background(), sock, b, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := NewClient(sock)
	t.Cleanup(c.Close)
	return s, c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawRequest talks HTTP to the socket without the Client, to see status
// codes and headers as sent.
func rawRequest(t *testing.T, sock, method, path string) (*http.Response, map[string]any) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://x"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, body %s", method, path, ct, data)
	}
	var body map[string]any
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, &body); err != nil {
			t.Fatalf("%s %s: bad JSON %s", method, path, data)
		}
	}
	return resp, body
}

func TestSocketMode0600(t *testing.T) {
	s, _ := startServer(t, newFakeBackend())
	fi, err := os.Lstat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("%s is %v, not a socket", s.Path(), fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode = %04o, want 0600", perm)
	}
	// The temporary directory used to create it is gone.
	entries, err := os.ReadDir(filepath.Dir(s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("socket directory holds %v, want only admin.sock", names)
	}
}

func TestStaleSocketRemoved(t *testing.T) {
	sock := filepath.Join(shortTemp(t), "admin.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}

	s, err := Serve(context.Background(), sock, newFakeBackend(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Serve over a stale socket: %v", err)
	}
	defer s.Close()
	if _, err := NewClient(sock).Status(testCtx(t)); err != nil {
		t.Fatalf("status after replacing stale socket: %v", err)
	}
}

func TestLiveSocketRefused(t *testing.T) {
	s, c := startServer(t, newFakeBackend())
	_, err := Serve(context.Background(), s.Path(), newFakeBackend(), zaptest.NewLogger(t))
	if err == nil {
		t.Fatal("second Serve on a live socket succeeded")
	}
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("error %v does not match ErrAlreadyRunning", err)
	}
	want := fmt.Sprintf("another wattd (pid %d) is already running for this project", os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to contain %q", err, want)
	}
	// The first server is unharmed.
	if _, err := c.Status(testCtx(t)); err != nil {
		t.Errorf("first server after refused second: %v", err)
	}
}

func TestNonSocketNotReplaced(t *testing.T) {
	path := filepath.Join(shortTemp(t), "admin.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Serve(context.Background(), path, newFakeBackend(), nil)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Serve over a regular file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "keep me" {
		t.Errorf("file was touched: %q", data)
	}
}

func TestSocketPathTooLong(t *testing.T) {
	path := filepath.Join(shortTemp(t), strings.Repeat("x", 110))
	_, err := Serve(context.Background(), path, newFakeBackend(), nil)
	if err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("Serve with a long path: %v", err)
	}
}

func TestCloseRemovesSocket(t *testing.T) {
	s, c := startServer(t, newFakeBackend())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(s.Path()); !os.IsNotExist(err) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err := c.Status(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "cannot reach wattd at "+s.Path()) {
		t.Errorf("status after Close: %v", err)
	}
}

func TestContextCancelCloses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(shortTemp(t), "admin.sock")
	s, err := Serve(ctx, sock, newFakeBackend(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cancel()
	waitFor(t, "socket removal after ctx cancel", func() bool {
		_, err := os.Lstat(sock)
		return os.IsNotExist(err)
	})
}

func TestCloseCancelsRestart(t *testing.T) {
	b := newFakeBackend()
	b.block = true
	s, c := startServer(t, b)

	errc := make(chan error, 1)
	go func() {
		_, err := c.Restart(context.Background(), "web")
		errc <- err
	}()
	select {
	case <-b.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("restart never reached the backend")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-b.ctxErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("restart ctx ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel the restart")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := <-errc; err == nil {
		t.Error("interrupted restart reported success")
	}
}

func TestRestartOutlivesClientCancel(t *testing.T) {
	b := newFakeBackend()
	b.block = true
	_, c := startServer(t, b)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Restart(ctx, "web")
		errc <- err
	}()
	select {
	case <-b.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("restart never reached the backend")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v, want context.Canceled", err)
	}
	// The client gave up; the restart carries on until the server closes
	// because it runs under the server's context, not the connection's.
	b.mu.Lock()
	ctx = b.lastCtx
	b.mu.Unlock()
	if ctx.Value(http.LocalAddrContextKey) != nil {
		t.Error("restart runs under a connection's context")
	}
	if ctx.Err() != nil {
		t.Errorf("restart context ended with the client: %v", ctx.Err())
	}
}

func TestRoutes(t *testing.T) {
	b := newFakeBackend()
	s, c := startServer(t, b)
	ctx := testCtx(t)

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.State != "running" || st.Workers != 3 {
		t.Errorf("status = %+v", st)
	}

	apps, err := c.Apps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || apps[0].ID != "web" || !apps[0].Entrypoint || len(apps[0].Workers) != 2 {
		t.Errorf("apps = %+v", apps)
	}

	app, err := c.App(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	if app.ID != "api" || app.Workers[0].PID != 201 {
		t.Errorf("app = %+v", app)
	}

	restarted, err := c.Restart(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if restarted.ID != "web" || restarted.Workers[0].Restarts != 1 || restarted.Workers[1].Restarts != 1 {
		t.Errorf("restart answered %+v", restarted)
	}

	table, err := c.Mesh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w := table.Apps["web"]; len(w.Endpoints) != 1 || w.Endpoints[0] != "/x/web-0.sock" || w.State != "running" {
		t.Errorf("mesh table = %+v", table)
	}
	if table.Proxy != "http://wattd:secret@127.0.0.1:9" {
		t.Errorf("mesh table for wattd's own user: proxy %q, want it with its token", table.Proxy)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	if b.stops != 1 || len(b.restarts) != 1 || b.restarts[0] != "web" {
		t.Errorf("backend saw stops=%d restarts=%v", b.stops, b.restarts)
	}
	b.mu.Unlock()

	// Status codes as sent.
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/status", 200},
		{"GET", "/v1/apps", 200},
		{"GET", "/v1/apps/web", 200},
		{"POST", "/v1/apps/web/restart", 200},
		{"POST", "/v1/stop", 202},
		{"GET", "/v1/mesh", 200},
		{"POST", "/v1/mesh", 405},
	} {
		resp, _ := rawRequest(t, s.Path(), tt.method, tt.path)
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
}

func TestUnknownApp(t *testing.T) {
	s, c := startServer(t, newFakeBackend())
	ctx := testCtx(t)

	for name, call := range map[string]func() error{
		"get":     func() error { _, err := c.App(ctx, "nope"); return err },
		"restart": func() error { _, err := c.Restart(ctx, "nope"); return err },
	} {
		err := call()
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: error %v does not match ErrNotFound", name, err)
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != 404 {
			t.Errorf("%s: error %#v is not a 404 APIError", name, err)
		}
		if want := `unknown app "nope" (known apps: api, web)`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not contain %q", name, err, want)
		}
	}

	resp, body := rawRequest(t, s.Path(), "POST", "/v1/apps/nope/restart")
	if resp.StatusCode != 404 || !strings.Contains(fmt.Sprint(body["error"]), "known apps") {
		t.Errorf("raw restart of unknown app: %d %v", resp.StatusCode, body)
	}
}

func TestRestartErrors(t *testing.T) {
	b := newFakeBackend()
	b.restartErr["web"] = fmt.Errorf("web is already restarting: %w", ErrConflict)
	b.restartErr["api"] = errors.New("worker 0 did not become ready within 30s")
	s, c := startServer(t, b)
	ctx := testCtx(t)

	_, err := c.Restart(ctx, "web")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already restarting") {
		t.Errorf("conflict: %v", err)
	}
	_, err = c.Restart(ctx, "api")
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 500 || !strings.Contains(err.Error(), "did not become ready") {
		t.Errorf("failure: %v", err)
	}
	for path, want := range map[string]int{"/v1/apps/web/restart": 409, "/v1/apps/api/restart": 500} {
		resp, body := rawRequest(t, s.Path(), "POST", path)
		if resp.StatusCode != want || body["error"] == nil {
			t.Errorf("POST %s = %d %v, want %d with an error body", path, resp.StatusCode, body, want)
		}
	}
}

func TestMethodNotAllowedAndUnknownPath(t *testing.T) {
	s, _ := startServer(t, newFakeBackend())
	for _, tt := range []struct {
		method, path, allow string
	}{
		{"POST", "/v1/status", "GET, HEAD"},
		{"DELETE", "/v1/apps/web", "GET, HEAD"},
		{"GET", "/v1/apps/web/restart", "POST"},
		{"GET", "/v1/stop", "POST"},
	} {
		resp, body := rawRequest(t, s.Path(), tt.method, tt.path)
		if resp.StatusCode != 405 {
			t.Errorf("%s %s = %d, want 405", tt.method, tt.path, resp.StatusCode)
		}
		if got := resp.Header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
		if body["error"] == nil {
			t.Errorf("%s %s: no JSON error body", tt.method, tt.path)
		}
	}
	resp, body := rawRequest(t, s.Path(), "GET", "/v2/nothing")
	if resp.StatusCode != 404 || !strings.Contains(fmt.Sprint(body["error"]), "no such endpoint") {
		t.Errorf("unknown path: %d %v", resp.StatusCode, body)
	}
}

func TestWriteNeedsSameUIDOrRoot(t *testing.T) {
	b := newFakeBackend()
	sock := filepath.Join(shortTemp(t), "admin.sock")
	// Pretend every caller is uid 4242, and wattd runs as uid 1000.
	stranger := func(net.Conn) (peerCred, error) { return peerCred{uid: 4242, pid: 7}, nil }
	s, err := serve(context.Background(), sock, b, zaptest.NewLogger(t), options{selfUID: 1000, peerOf: stranger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := NewClient(sock)
	defer c.Close()
	ctx := testCtx(t)

	if _, err := c.Status(ctx); err != nil {
		t.Errorf("read route refused: %v", err)
	}
	if _, err := c.Apps(ctx); err != nil {
		t.Errorf("read route refused: %v", err)
	}
	if tb, err := c.Mesh(ctx); err != nil || tb.Proxy != "http://127.0.0.1:9" || len(tb.Apps) != 1 {
		t.Errorf("mesh table for a stranger: %+v %v, want it without the proxy's token", tb, err)
	}
	_, err = c.Restart(ctx, "web")
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 403 || !strings.Contains(err.Error(), "uid 4242") {
		t.Errorf("restart by a stranger: %v", err)
	}
	if err := c.Stop(ctx); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("stop by a stranger: %v", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stops != 0 || len(b.restarts) != 0 {
		t.Errorf("backend was changed: stops=%d restarts=%v", b.stops, b.restarts)
	}
}

func TestAuthorizeWrite(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    peerInfo
		ok   bool
	}{
		{"same uid", peerInfo{cred: peerCred{uid: 1000}}, true},
		{"root", peerInfo{cred: peerCred{uid: 0}}, true},
		{"other uid", peerInfo{cred: peerCred{uid: 1001}}, false},
		{"unknown", peerInfo{err: errors.New("no creds")}, false},
	} {
		if err := authorizeWrite(tt.p, 1000); (err == nil) != tt.ok {
			t.Errorf("%s: authorizeWrite = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestPeerCredentials(t *testing.T) {
	sock := filepath.Join(shortTemp(t), "p.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var server net.Conn
	select {
	case server = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("accept timed out")
	}
	defer server.Close()
	for name, conn := range map[string]net.Conn{"server side": server, "client side": c} {
		cred, err := peerCredentials(conn)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cred.uid != os.Geteuid() || cred.pid != os.Getpid() {
			t.Errorf("%s: cred = %+v, want uid %d pid %d", name, cred, os.Geteuid(), os.Getpid())
		}
	}
}

func TestClientReadableErrors(t *testing.T) {
	// A server that does not speak our error format still yields a
	// readable message.
	sock := filepath.Join(shortTemp(t), "other.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	})}
	go hs.Serve(ln)
	defer hs.Close()

	_, err = NewClient(sock).Status(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "upstream exploded") {
		t.Errorf("non-JSON error: %v", err)
	}

	missing := filepath.Join(shortTemp(t), "missing.sock")
	_, err = NewClient(missing).Apps(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "cannot reach wattd at "+missing) {
		t.Errorf("missing socket: %v", err)
	}
}

func TestAppIDEscaping(t *testing.T) {
	b := newFakeBackend()
	b.apps = append(b.apps, supervisor.AppStatus{ID: "a b/c", State: "running"})
	_, c := startServer(t, b)
	app, err := c.App(testCtx(t), "a b/c")
	if err != nil || app.ID != "a b/c" {
		t.Fatalf("App(%q) = %+v, %v", "a b/c", app, err)
	}
}

// TestClientNamesWhatIsNotASocket: a path that holds something else than
// a socket is named for what it is, not taken for a runtime that is down.
func TestClientNamesWhatIsNotASocket(t *testing.T) {
	dir := shortTemp(t)
	file := filepath.Join(dir, "admin.sock")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := NewClient(file)
	defer cl.Close()
	_, err := cl.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "it is not a socket but a regular file") {
		t.Errorf("status through a regular file: %v", err)
	}
	_, err = NewClient(filepath.Join(dir, "gone.sock")).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is it running?") {
		t.Errorf("status through a missing socket: %v", err)
	}
}
