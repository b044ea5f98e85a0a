package listeners

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// queuedReaches polls Queued(f) until it is want.
func queuedReaches(t *testing.T, f *os.File, want int) {
	t.Helper()
	var n int
	var err error
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if n, err = Queued(f); err == nil && n == want {
			return
		}
	}
	t.Fatalf("Queued = %d, %v; want %d", n, err, want)
}

// acceptOne takes one connection off f's queue.
func acceptOne(t *testing.T, f *os.File) {
	t.Helper()
	l, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() // a copy: f stays open
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestQueuedFollowsTheAcceptQueue(t *testing.T) {
	tcp, addr, err := TCP("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	path := filepath.Join(t.TempDir(), "s.sock")
	ux, err := Unix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ux.Close()
	for _, c := range []struct {
		name string
		f    *os.File
		dial func() (net.Conn, error)
	}{
		{"tcp", tcp, func() (net.Conn, error) { return net.Dial("tcp", addr.String()) }},
		{"unix", ux, func() (net.Conn, error) { return net.Dial("unix", path) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			queuedReaches(t, c.f, 0)
			for range 3 {
				conn, err := c.dial()
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
			}
			queuedReaches(t, c.f, 3)
			acceptOne(t, c.f)
			queuedReaches(t, c.f, 2)
		})
	}
}

func TestQueuedRefusesWhatIsNotAListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f, err := conn.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Queued(f); !errors.Is(err, ErrNoQueue) {
		t.Fatalf("Queued on a connected socket: %v, want ErrNoQueue", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := Queued(r); err == nil {
		t.Fatal("Queued on a pipe: no error")
	}
}
