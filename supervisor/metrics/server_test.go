package metrics

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestServerClosesIdleConnections: a client that keeps its connection
// open after a request and sends nothing more is closed after the idle
// timeout, not kept for as long as the client likes.
func TestServerClosesIdleConnections(t *testing.T) {
	old := serverIdleTimeout
	serverIdleTimeout = 300 * time.Millisecond
	defer func() { serverIdleTimeout = old }()
	routes := map[string]http.Handler{"/x": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })}
	s, err := serve("metrics", "127.0.0.1", 0, nil, routes, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || strings.EqualFold(resp.Header.Get("Connection"), "close") {
		t.Fatalf("first request: %v %v", resp, err)
	}
	resp.Body.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the server sent bytes nobody asked for")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the idle connection was still open after 10 s")
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("closed after %s, before the idle timeout", took)
	}
}
