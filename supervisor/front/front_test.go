package front

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wattd/wattd/supervisor/fdlimit"
	"github.com/wattd/wattd/supervisor/listeners"
)

// publicSocket opens a listening socket the way a worker slot does and
// returns it with its address.
func publicSocket(t *testing.T) (*os.File, string) {
	t.Helper()
	f, addr, err := listeners.TCP("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, addr.String()
}

// worker is a stand-in for a fronted worker: a TCP server on a loopback
// port that runs handle for every connection.
type worker struct {
	ln    net.Listener
	port  int
	mu    sync.Mutex
	conns int
}

func startWorker(t *testing.T, port int, handle func(*net.TCPConn)) *worker {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			w.mu.Lock()
			w.conns++
			w.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return w
}

func (w *worker) accepted() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conns
}

// echo sends back everything it reads, then half-closes.
func echo(c *net.TCPConn) {
	if _, err := io.Copy(c, c); err == nil {
		c.CloseWrite()
	}
}

// hello answers one line with "hello <line>" and closes.
func hello(c *net.TCPConn) {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	fmt.Fprintf(c, "hello %s", line)
}

func forwarder(t *testing.T, l *os.File, port int) *Forwarder {
	t.Helper()
	f, err := New(l, port, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		f.Close(ctx)
	})
	f.Start()
	return f
}

// roundTrip sends line on a new connection to addr and returns the reply.
func roundTrip(t *testing.T, network, addr, line string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return string(b)
}

func TestForwardTCP(t *testing.T) {
	w := startWorker(t, 0, hello)
	l, addr := publicSocket(t)
	forwarder(t, l, w.port)
	if got := roundTrip(t, "tcp", addr, "world"); got != "hello world\n" {
		t.Fatalf("reply %q", got)
	}
}

func TestForwardUnix(t *testing.T) {
	w := startWorker(t, 0, hello)
	path := filepath.Join(t.TempDir(), "app-0.sock")
	l, err := listeners.Unix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f := forwarder(t, l, w.port)
	if got := roundTrip(t, "unix", path, "mesh"); got != "hello mesh\n" {
		t.Fatalf("reply %q", got)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The socket file is the slot's; closing the forwarder must leave it.
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("socket file gone after Close: %v", err)
	}
}

func TestHalfClose(t *testing.T) {
	// The worker greets and shuts its sending side, then reads what the
	// client sends until the client shuts its own. The greeting arriving
	// whole proves worker→client half-close; the worker's read ending with
	// the client's bytes proves client→worker.
	got := make(chan string, 1)
	w := startWorker(t, 0, func(c *net.TCPConn) {
		io.WriteString(c, "greeting")
		c.CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(b)
	})
	l, addr := publicSocket(t)
	forwarder(t, l, w.port)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c) // ends at the worker's half-close
	if err != nil || string(b) != "greeting" {
		t.Fatalf("read %q, %v", b, err)
	}
	// The connection is still open the other way.
	if _, err := io.WriteString(c, "after the worker's FIN"); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	select {
	case s := <-got:
		if s != "after the worker's FIN" {
			t.Fatalf("worker read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's half-close did not reach the worker")
	}
}

func TestClientHalfCloseThenResponse(t *testing.T) {
	// The classic case: the client sends a request and shuts its sending
	// side; the worker answers only after EOF.
	w := startWorker(t, 0, func(c *net.TCPConn) {
		b, err := io.ReadAll(c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d bytes", len(b))
	})
	l, addr := publicSocket(t)
	forwarder(t, l, w.port)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, strings.Repeat("x", 100000))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "got 100000 bytes" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestWorkerDownThenUp(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, addr := publicSocket(t)
	forwarder(t, l, port) // nothing listens on port yet

	reply := make(chan string, 1)
	go func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			reply <- err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "early\n")
		b, err := io.ReadAll(c)
		if err != nil {
			reply <- err.Error()
			return
		}
		reply <- string(b)
	}()
	time.Sleep(300 * time.Millisecond) // the client is waiting in the forwarder now
	select {
	case r := <-reply:
		t.Fatalf("client finished before the worker was up: %q", r)
	default:
	}
	startWorker(t, port, hello)
	select {
	case r := <-reply:
		if r != "hello early\n" {
			t.Fatalf("reply %q", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting client was never served")
	}
}

func TestWaitExpires(t *testing.T) {
	port := refusingPort(t)
	l, addr := publicSocket(t)
	f, err := New(l, port, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f.Wait = 200 * time.Millisecond
	f.Start()
	defer f.Close(context.Background())

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	b, err := io.ReadAll(c)
	if len(b) != 0 || (err != nil && errors.Is(err, os.ErrDeadlineExceeded)) {
		t.Fatalf("read %q, %v; want the connection closed", b, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("closed after %s, want about 200ms", d)
	}
	waitIdle(t, f)
}

func TestManyConnections(t *testing.T) {
	w := startWorker(t, 0, echo)
	l, addr := publicSocket(t)
	f := forwarder(t, l, w.port)

	const n = 200
	const size = 64 << 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, size)
			rand.Read(payload)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			go func() {
				c.Write(payload)
				c.(*net.TCPConn).CloseWrite()
			}()
			back, err := io.ReadAll(c)
			if err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
				return
			}
			if !bytes.Equal(back, payload) {
				errs <- fmt.Errorf("conn %d: echoed %d bytes, not the %d sent", i, len(back), size)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitIdle(t, f)
}

// waitIdle fails unless every pair of f is released soon: a client sees its
// connection end a moment before the forwarder's bookkeeping catches up.
func waitIdle(t *testing.T, f *Forwarder) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.Active() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if a := f.Active(); a != 0 {
		t.Fatalf("Active() = %d after all connections ended", a)
	}
}

// gate is a worker handler that reads a line, waits for release, then
// answers and closes.
func gate(release <-chan struct{}, arrived chan<- struct{}) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		arrived <- struct{}{}
		<-release
		fmt.Fprintf(c, "done %s", line)
	}
}

func TestCloseWaitsForInFlight(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 4)
	w := startWorker(t, 0, gate(release, arrived))
	l, addr := publicSocket(t)
	f := forwarder(t, l, w.port)

	reply := make(chan string, 1)
	go func() { reply <- roundTrip(t, "tcp", addr, "slow") }()
	<-arrived

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- f.Close(ctx)
	}()
	// Close stops accepting: a new client is queued on the socket, not
	// forwarded, while the in-flight one is still being served.
	time.Sleep(100 * time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "late\n")
	time.Sleep(200 * time.Millisecond)
	if n := w.accepted(); n != 1 {
		t.Fatalf("worker accepted %d connections after Close, want only the in-flight one", n)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a connection in flight", err)
	default:
	}

	close(release)
	if r := <-reply; r != "done slow\n" {
		t.Fatalf("in-flight reply %q", r)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the last connection ended")
	}

	// The queued client is served by whoever accepts next on the socket:
	// here a second forwarder, as after a worker restart.
	forwarder(t, l, w.port)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "done late\n" {
		t.Fatalf("queued client got %q, %v", b, err)
	}
}

func TestCloseDeadlineCutsConnections(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	defer close(release)
	w := startWorker(t, 0, gate(release, arrived))
	l, addr := publicSocket(t)
	f := forwarder(t, l, w.port)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "stuck\n")
	<-arrived

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = f.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %s", d)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the cut connection was left open")
	}
	if n := f.Active(); n != 0 {
		t.Fatalf("Active() = %d after Close", n)
	}
}

// refusingPort is a loopback port that refuses connections for the whole
// test: a socket bound to it that does not listen. A port FreePort found
// free may be taken by another test's listener before the dials reach it,
// and a dial that connects is not the waiting dial a test wants.
func refusingPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}

func TestCloseAbortsWaitingDials(t *testing.T) {
	port := refusingPort(t)
	l, addr := publicSocket(t)
	f := forwarder(t, l, port)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for f.Active() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := f.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %s: the waiting dial was not abandoned", d)
	}
}

func TestSetPort(t *testing.T) {
	a := startWorker(t, 0, func(c *net.TCPConn) { io.WriteString(c, "a") })
	b := startWorker(t, 0, func(c *net.TCPConn) { io.WriteString(c, "b") })
	l, addr := publicSocket(t)
	f := forwarder(t, l, a.port)
	if got := roundTrip(t, "tcp", addr, ""); got != "a" {
		t.Fatalf("before SetPort: %q", got)
	}
	if err := f.SetPort(b.port); err != nil {
		t.Fatal(err)
	}
	if f.Port() != b.port {
		t.Fatalf("Port() = %d, want %d", f.Port(), b.port)
	}
	if got := roundTrip(t, "tcp", addr, ""); got != "b" {
		t.Fatalf("after SetPort: %q", got)
	}
	if err := f.SetPort(0); err == nil {
		t.Fatal("SetPort(0) accepted")
	}
}

func TestSocketMadeBlocking(t *testing.T) {
	// Passing the slot's socket to a child calls Fd, which puts the shared
	// socket back in blocking mode under the forwarder's feet. Forwarding
	// must go on, and Close must not hang in accept(2).
	w := startWorker(t, 0, hello)
	l, addr := publicSocket(t)
	f := forwarder(t, l, w.port)
	_ = l.Fd()
	for i := range 3 {
		if got := roundTrip(t, "tcp", addr, fmt.Sprint(i)); got != fmt.Sprintf("hello %d\n", i) {
			t.Fatalf("reply %q", got)
		}
	}
	done := make(chan error, 1)
	go func() { done <- f.Close(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close hung on a blocking socket")
	}
}

func TestStartAndCloseOrder(t *testing.T) {
	l, _ := publicSocket(t)
	f, err := New(l, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
	f.Start() // a no-op now
	if err := f.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := New(l, 0, nil); err == nil {
		t.Fatal("New accepted port 0")
	}
}

func TestReady(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	self := os.Getpid() // the listener below is the test's own
	if err := Ready(ctx, port, self, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ready with nothing listening = %v", err)
	}

	go func() {
		time.Sleep(200 * time.Millisecond)
		startWorker(t, port, echo)
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	start := time.Now()
	if err := Ready(ctx2, port, self, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("ready after %s, before the worker listened", d)
	}
}

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("FreePort gave %d, which cannot be bound: %v", port, err)
	}
	l.Close()
}

func BenchmarkForward(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				echo(c.(*net.TCPConn))
			}()
		}
	}()
	l, addr, err := listeners.TCP("127.0.0.1", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	f, err := New(l, ln.Addr().(*net.TCPAddr).Port, nil)
	if err != nil {
		b.Fatal(err)
	}
	f.Start()
	defer f.Close(context.Background())
	msg := []byte("ping\n")
	buf := make([]byte, len(msg))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			b.Fatal(err)
		}
		c.Write(msg)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// TestRefusesWithinReserve: while wattd's descriptors are down to the
// reserve kept for supervision, a forwarder closes new connections at once
// instead of taking two more descriptors for each.
func TestRefusesWithinReserve(t *testing.T) {
	w := startWorker(t, 0, hello)
	l, addr := publicSocket(t)
	f := forwarder(t, l, w.port)
	if got := roundTrip(t, "tcp", addr, "before"); got != "hello before\n" {
		t.Fatalf("reply %q", got)
	}
	// A reserve as large as the limit: every descriptor is within it.
	old := fdlimit.Reserve()
	fdlimit.SetReserve(int(fdlimit.Soft()))
	defer fdlimit.SetReserve(old)
	before := w.accepted()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "refused\n")
	// Closed with the line unread: the client sees EOF or a reset.
	if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("reply %q, %v within the reserve, want the connection closed", b, err)
	}
	if f.Refused() != 1 || w.accepted() != before {
		t.Fatalf("refused %d, worker saw %d new connections", f.Refused(), w.accepted()-before)
	}
	fdlimit.SetReserve(old)
	if got := roundTrip(t, "tcp", addr, "after"); got != "hello after\n" {
		t.Fatalf("reply %q after the reserve was restored", got)
	}
}
