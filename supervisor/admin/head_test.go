package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/logs"
)

// headBackend is a back end with logs and REPLs, which counts the REPLs
// it is asked to open.
type headBackend struct {
	logBackend
	repls atomic.Int32
}

func (b *headBackend) OpenREPL(ctx context.Context, id string, worker int, o supervisor.REPLOptions) (net.Conn, int, error) {
	b.repls.Add(1)
	c1, c2 := net.Pipe()
	go func() { io.Copy(io.Discard, c2); c2.Close() }()
	return c1, 0, nil
}

// request sends method path over sock with the headers h and returns the
// answer and its body.
func request(t *testing.T, sock, method, path string, h map[string]string) (*http.Response, string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://x"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// websocketUpgrade are the headers of a WebSocket's opening request.
var websocketUpgrade = map[string]string{"Connection": "Upgrade", "Upgrade": "websocket",
	"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}

// TestHeadOnGetRoutes: HEAD is answered wherever GET is, on both APIs,
// with GET's status and headers and no body; a followed log stream ends
// at once; a HEAD that asks for an upgrade opens no REPL; a route without
// GET still answers 405, and a 405 names HEAD beside GET.
func TestHeadOnGetRoutes(t *testing.T) {
	_, recent := newLogged(t, logs.RecentOptions{})
	b := &headBackend{logBackend: logBackend{fakeBackend: newFakeBackend(), recent: recent}}
	s, _ := startServer(t, b)
	_, watt := startWatt(t, b, WattOptions{Version: "test"})
	upgrade := map[string]string{"Connection": "Upgrade", "Upgrade": REPLUpgrade}
	for _, c := range []struct {
		sock, path string
		h          map[string]string
	}{
		{s.Path(), "/v1/status", nil},
		{s.Path(), "/v1/apps", nil},
		{s.Path(), "/v1/apps/api", nil},
		{s.Path(), "/v1/apps/nope", nil},
		{s.Path(), "/v1/mesh", nil},
		{s.Path(), "/v1/logs?follow=1", nil}, // GET without follow=1, which would not end
		{s.Path(), "/v1/apps/api/repl", upgrade},
		{watt, "/api/v1/status", nil},
		{watt, "/api/v1/applications", nil},
		{watt, "/api/v1/applications/api", nil},
		{watt, "/api/v1/applications/api/repl", websocketUpgrade},
		{watt, "/api/v1/logs/live", websocketUpgrade},
	} {
		get, _ := request(t, c.sock, http.MethodGet, strings.TrimSuffix(c.path, "?follow=1"), nil)
		start := time.Now()
		head, body := request(t, c.sock, http.MethodHead, c.path, c.h)
		if head.StatusCode != get.StatusCode || body != "" || time.Since(start) > 2*time.Second {
			t.Errorf("HEAD %s: %d, body %q, in %s; GET: %d", c.path, head.StatusCode, body, time.Since(start), get.StatusCode)
		}
		for _, k := range []string{"Content-Type", "Content-Length", "Cache-Control"} {
			if head.Header.Get(k) != get.Header.Get(k) {
				t.Errorf("HEAD %s: %s %q, GET's %q", c.path, k, head.Header.Get(k), get.Header.Get(k))
			}
		}
	}
	if n := b.repls.Load(); n != 0 {
		t.Errorf("HEAD opened %d REPLs", n)
	}
	if resp, _ := request(t, s.Path(), http.MethodHead, "/v1/reload", nil); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("HEAD /v1/reload: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if resp, body := request(t, s.Path(), http.MethodPost, "/v1/mesh", nil); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" || !strings.Contains(body, "use GET or HEAD") {
		t.Errorf("POST /v1/mesh: %d, Allow %q, %s", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
}
