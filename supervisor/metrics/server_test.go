package metrics

import (
	"bufio"
	"io"
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

func testServer(t *testing.T, routes map[string]http.Handler) *Server {
	t.Helper()
	s, err := serve("metrics", "127.0.0.1", 0, nil, routes, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// closedWithin waits for c to be closed by the server, failing after
// limit; any bytes the server sends first are read and dropped.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection was still open after %s", limit)
	}
	return time.Since(start)
}

// TestServerCutsTricklingBody: a request that announces a body and sends
// it a byte at a time is cut once the read timeout is over, even though
// every byte arrives within the idle timeout; a normal request works.
func TestServerCutsTricklingBody(t *testing.T) {
	old := serverReadTimeout
	serverReadTimeout = 500 * time.Millisecond
	defer func() { serverReadTimeout = old }()
	s := testServer(t, map[string]http.Handler{"/ready": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })})

	resp, err := http.Get("http://" + s.Addr().String() + "/ready")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /ready: %v %v", resp, err)
	}
	resp.Body.Close()

	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	if took := closedWithin(t, c, 5*time.Second); took > 2*time.Second {
		t.Fatalf("cut after %s, read timeout %s", took, serverReadTimeout)
	}
}

// TestServerWriteStallKeepsMovingReaders: a large answer to a client that
// reads slowly but steadily is sent whole although it takes longer than
// the stall bound; a client that stops reading is cut after it.
func TestServerWriteStallKeepsMovingReaders(t *testing.T) {
	old := serverWriteStall
	serverWriteStall = 300 * time.Millisecond
	defer func() { serverWriteStall = old }()
	const size = 16 << 20
	s := testServer(t, map[string]http.Handler{"/metrics": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		piece := make([]byte, 32<<10)
		for sent := 0; sent < size; sent += len(piece) {
			if _, err := w.Write(piece); err != nil {
				return
			}
		}
	})})

	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var got int64
	for {
		n, err := io.CopyN(io.Discard, resp.Body, 1<<20)
		got += n
		if err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != size || time.Since(start) < serverWriteStall {
		t.Fatalf("slow reader got %d of %d bytes in %s", got, size, time.Since(start))
	}
}

// TestServerConnectionCap: connections kept alive between requests are
// closed, the longest idle first, to make room for new ones near the cap,
// so that a client holding many cannot keep scrapers out; connections in
// the middle of a request hold their place, and one beyond the cap is
// closed at once.
func TestServerConnectionCap(t *testing.T) {
	old := serverMaxConns
	serverMaxConns = 4
	t.Cleanup(func() { serverMaxConns = old }) // after the server's own cleanup closed it
	s := testServer(t, map[string]http.Handler{"/ready": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	ask := func(c net.Conn) error {
		io.WriteString(c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	// Ten clients, each keeping its connection after one request: every
	// one is served, the oldest idle ones closed to make room.
	var held []net.Conn
	for i := range 10 {
		c := dial()
		if err := ask(c); err != nil {
			t.Fatalf("client %d of many keeping their connections: %v", i, err)
		}
		held = append(held, c)
	}
	if _, err := held[0].Read(make([]byte, 1)); err == nil {
		t.Error("the connection idle the longest was not closed")
	}
	for _, c := range held {
		c.Close()
	}
	// Connections in the middle of a request hold their places: one
	// beyond the cap is closed at once.
	var busy []net.Conn
	refused := func() bool {
		for _, c := range busy {
			c.Close()
		}
		busy = busy[:0]
		for range serverMaxConns {
			c := dial()
			io.WriteString(c, "GET /ready HTTP/1.1\r\n") // headers not ended
			busy = append(busy, c)
		}
		c := dial()
		defer c.Close()
		start := time.Now()
		err := ask(c)
		return err != nil && time.Since(start) < 2*time.Second
	}
	// (The closed connections may still count for a moment.)
	for deadline := time.Now().Add(5 * time.Second); !refused(); {
		if time.Now().After(deadline) {
			t.Fatal("a connection beyond the cap of busy ones was served")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range busy {
		c.Close()
	}
}
