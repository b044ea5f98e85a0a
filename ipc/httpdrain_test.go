package ipc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestHTTPDrainerKeepsIdleConnectionsForTheQuietPeriod: during a drain a
// request on a kept-alive connection is answered with "Connection: close"
// instead of meeting a closed connection, an idle connection is closed
// only after the quiet period, Serve returns http.ErrServerClosed, and new
// connections are no longer accepted.
func TestHTTPDrainerKeepsIdleConnectionsForTheQuietPeriod(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	slowStarted := make(chan struct{})
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(slowStarted)
		<-release
		io.WriteString(w, "slow")
	})
	var d HTTPDrainer
	srv := &http.Server{Handler: d.Handler(mux)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(d.Listener(l)) }()

	dial := func() rawConn { return dialRaw(t, "tcp", l.Addr().String(), 20*time.Second) }
	next, idle, slow := dial(), dial(), dial()
	for _, c := range []rawConn{next, idle} {
		if resp, err := c.roundTrip("/"); err != nil || resp.Close {
			t.Fatalf("warm-up: %v %+v", err, resp)
		}
	}
	slowDone := make(chan *http.Response, 1)
	go func() {
		resp, err := slow.roundTrip("/slow")
		if err != nil {
			t.Errorf("in-flight request: %v", err)
		}
		slowDone <- resp
	}()
	<-slowStarted

	drained := make(chan error, 1)
	go func() { drained <- d.Drain(context.Background(), 10*time.Second, srv) }()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want http.ErrServerClosed", err)
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted during the drain")
	}
	// Serve has returned, so the drain has begun.
	quietFrom := time.Now()
	resp, err := next.roundTrip("/")
	if err != nil || resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("request on a kept-alive connection during the drain: %v %+v", err, resp)
	}
	// A response that began before the drain may keep its connection; the
	// client's next request on it is answered, with Connection: close.
	close(release)
	if resp := <-slowDone; resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("in-flight request during the drain: %+v", resp)
	} else if !resp.Close {
		quietFrom = time.Now()
		resp, err := slow.roundTrip("/")
		if err != nil || resp.StatusCode != http.StatusOK || !resp.Close {
			t.Fatalf("request after the in-flight one on its connection: %v %+v", err, resp)
		}
	}
	if _, err := idle.br.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("idle connection: %v, want it closed", err)
	}
	if dt := time.Since(quietFrom); dt < DrainQuiet*7/10 {
		t.Errorf("idle connection closed %v after the last response; the quiet period is %v", dt, DrainQuiet)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Drain did not return")
	}
}

// TestHTTPDrainerBoundedByTimeout: the quiet period is at most a quarter of
// the timeout, so a short grace still closes idle connections in time.
func TestHTTPDrainerBoundedByTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var d HTTPDrainer
	srv := &http.Server{Handler: d.Handler(http.NotFoundHandler())}
	go srv.Serve(d.Listener(l))
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	start := time.Now()
	if err := d.Drain(context.Background(), 400*time.Millisecond, srv); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if dt := time.Since(start); dt < 80*time.Millisecond || dt > 5*time.Second {
		t.Errorf("Drain with a 400 ms timeout and an idle connection took %v, want about 100 ms", dt)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("idle connection after the drain: %v, want closed", err)
	}
}

// TestHTTPDrainerShed: a shed ends each connection open at that moment
// after one of its responses within ShedSpread, and leaves the
// connections opened after it;
// once every one of them has had its response, requests cost the shed
// nothing more (no Connection: close on any).
func TestHTTPDrainerShed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var d HTTPDrainer
	srv := &http.Server{Handler: d.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))}
	go srv.Serve(d.Listener(l))
	t.Cleanup(func() { srv.Close() })
	dial := func() rawConn { return dialRaw(t, "tcp", l.Addr().String(), 5*time.Second) }
	get := func(c rawConn) bool {
		t.Helper()
		resp, err := c.roundTrip("/")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Close
	}
	a, b := dial(), dial()
	if get(a) || get(b) {
		t.Fatal("Connection: close before any shed")
	}
	d.Shed()
	late := dial()
	if get(late) {
		t.Error("a connection opened after the shed was ended")
	}
	shedAt := time.Now()
	for name, c := range map[string]rawConn{"a": a, "b": b} {
		for !get(c) {
			if time.Since(shedAt) > ShedSpread+time.Second {
				t.Fatalf("connection %s open during the shed kept alive after %v", name, time.Since(shedAt))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Errorf("connection %s after its Connection: close response: %v, want EOF", name, err)
		}
	}
	if d.shedding.Load() {
		t.Error("the shed still runs after every connection it ends has had its response")
	}
	if get(late) || get(dial()) {
		t.Error("Connection: close after the shed ended")
	}
	d.connMu.Lock()
	n := len(d.open)
	d.connMu.Unlock()
	if n != 2 { // late and the last one; a and b closed
		t.Errorf("%d connections known, want the 2 open", n)
	}

	// A Unix listener's connections (the mesh's) are not the port's
	// clients: a shed leaves them alone.
	ul, err := net.Listen("unix", filepath.Join(t.TempDir(), "mesh.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(d.Listener(ul))
	mesh := dialRaw(t, "unix", ul.Addr().String(), 5*time.Second)
	get(mesh)
	d.Shed()
	time.Sleep(ShedSpread + 100*time.Millisecond)
	if get(mesh) {
		t.Error("a shed ended a Unix (mesh) connection")
	}
}

// rawConn is a client connection driven by hand: net/http's client would
// retry a request lost to a closed keep-alive connection and hide the loss.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// dialRaw connects to addr for the rest of the test, with deadline limit.
func dialRaw(t *testing.T, network, addr string, limit time.Duration) rawConn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(limit))
	return rawConn{c, bufio.NewReader(c)}
}

// roundTrip sends GET path and reads the whole response.
func (c rawConn) roundTrip(path string) (*http.Response, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}
