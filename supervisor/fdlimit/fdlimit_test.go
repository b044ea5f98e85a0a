package fdlimit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestRaiseReachesHardLimit(t *testing.T) {
	soft, hard, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	if soft+1 < hard || Soft() != soft {
		t.Fatalf("soft %d (now %d), hard %d: want soft raised to hard", soft, Soft(), hard)
	}
}

// envChild makes the test binary the child of TestChildrenKeepTheSoftLimit.
const envChild = "FDLIMIT_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		soft, hard, err := Raise()
		out, cerr := exec.Command("/bin/sh", "-c", "ulimit -Sn").Output()
		fmt.Printf("%d %d %v %s %v\n", soft, hard, err, strings.TrimSpace(string(out)), cerr)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestChildrenKeepTheSoftLimit: after Raise, a process wattd starts gets
// the soft limit wattd was started with, not the raised one.
func TestChildrenKeepTheSoftLimit(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", `ulimit -Hn 20000 && ulimit -Sn 1024 && exec "$0" -test.run XXX`, self)
	cmd.Env = append(os.Environ(), envChild+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("cannot set the limits for the child: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 4 || f[1] != "20000" || f[0] == "1024" {
		t.Fatalf("child printed %q: want its own soft limit raised towards 20000", out)
	}
	if f[3] != "1024" {
		t.Fatalf("a process started after Raise has soft limit %s, want 1024, the one its parent was started with (child printed %q)", f[3], out)
	}
}

// serve accepts from l until it is closed, holding every connection, and
// reports each refusal.
func serve(t *testing.T, l *Listener) (reasons func() []error, accepted <-chan net.Conn) {
	var mu sync.Mutex
	var got []error
	l.OnRefuse = func(r error) { mu.Lock(); got = append(got, r); mu.Unlock() }
	ch := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			ch <- c
		}
	}()
	return func() []error { mu.Lock(); defer mu.Unlock(); return append([]error(nil), got...) }, ch
}

// closedByPeer reports whether the server closed c: a read sees EOF or a
// reset instead of waiting.
func closedByPeer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestListenerCapsOpenConnections(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{Listener: raw, Max: 3}
	defer l.Close()
	reasons, accepted := serve(t, l)
	var held []net.Conn
	for range 3 {
		dial(t, raw.Addr().String())
		held = append(held, <-accepted)
	}
	if l.Open() != 3 {
		t.Fatalf("open %d, want 3", l.Open())
	}
	if extra := dial(t, raw.Addr().String()); !closedByPeer(extra) {
		t.Fatal("a fourth connection was kept open over Max 3")
	}
	if l.Refused() != 1 || len(reasons()) != 1 || !errors.Is(reasons()[0], ErrTooMany) {
		t.Fatalf("refused %d, reasons %v", l.Refused(), reasons())
	}
	// A connection the server closes (twice: only once counts) makes room
	// for one more.
	held[0].Close()
	held[0].Close()
	if l.Open() != 2 {
		t.Fatalf("open %d after a close, want 2", l.Open())
	}
	dial(t, raw.Addr().String())
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection admitted after one closed")
	}
	if l.Refused() != 1 {
		t.Fatalf("refused %d, want still 1", l.Refused())
	}
}

func TestListenerKeepsReserve(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A limit just above the descriptors in use now: the next accepted
	// descriptor already falls into the reserve.
	next := nextFD(t)
	l := &Listener{Listener: raw, Reserve: 8, Limit: func() uint64 { return uint64(next + 8 + 2) }}
	defer l.Close()
	reasons, _ := serve(t, l)
	refused := false
	for range 20 {
		c := dial(t, raw.Addr().String()) // takes a descriptor in this process too
		if closedByPeer2(c) {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatalf("no connection refused near the limit; refused %d", l.Refused())
	}
	if rs := reasons(); len(rs) == 0 || !errors.Is(rs[0], ErrReserve) {
		t.Fatalf("reasons %v, want ErrReserve", rs)
	}
}

// closedByPeer2 is closedByPeer with a short wait: a kept connection just
// times out.
func closedByPeer2(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET)
}

// nextFD is the descriptor number the kernel would hand out next.
func nextFD(t *testing.T) int {
	fd, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	return fd
}

func TestListenerConnHalfCloses(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{Listener: raw}
	defer l.Close()
	_, accepted := serve(t, l)
	c := dial(t, raw.Addr().String())
	sc := <-accepted
	cw, ok := sc.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite", sc)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(c) {
		t.Fatal("the client did not see the half-close")
	}
	// The read side still works after the half-close.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := sc.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after CloseWrite: %v", err)
	}
}

func TestListenerAdmit(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errStranger := errors.New("not one of ours")
	admitted := 0
	l := &Listener{Listener: raw, Admit: func(net.Conn) error {
		admitted++
		if admitted == 2 {
			return errStranger
		}
		return nil
	}}
	defer l.Close()
	reasons, accepted := serve(t, l)
	dial(t, raw.Addr().String())
	<-accepted
	if c := dial(t, raw.Addr().String()); !closedByPeer(c) {
		t.Fatal("a connection Admit refused was kept")
	}
	if rs := reasons(); len(rs) != 1 || rs[0] != errStranger || l.Open() != 1 {
		t.Fatalf("reasons %v, open %d", rs, l.Open())
	}
}

// TestConnReachesItsDescriptor: an accepted connection still gives its
// descriptor (the mesh proxy reads its send queue through it).
func TestConnReachesItsDescriptor(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{Listener: raw, Max: 4}
	defer l.Close()
	go func() {
		if c, err := net.Dial("tcp", raw.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T is not a syscall.Conn", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil || fd < 0 {
		t.Fatalf("Control: fd %d, %v", fd, err)
	}
}
