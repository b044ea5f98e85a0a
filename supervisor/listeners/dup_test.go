package listeners

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Dup copies a socket without changing its blocking mode, which the
// workers sharing it rely on (os.File.Fd would turn it blocking).
func TestDupKeepsTheBlockingMode(t *testing.T) {
	f, _, err := TCP("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nonblock := func(fd int) bool {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fl&unix.O_NONBLOCK != 0
	}
	setNonblock(t, f)
	nfd, err := Dup(f)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nfd)
	if !nonblock(nfd) {
		t.Fatal("the copy's socket is in blocking mode")
	}
	if fl, _ := unix.FcntlInt(uintptr(nfd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Error("the copy is not close-on-exec")
	}
}

// A held socket stays out of Go's poller, whatever its blocking mode, and
// its Fd does not change that mode: wattd's copies of the workers' sockets
// must neither wake wattd for each connection nor switch the workers'
// socket to blocking mode when a worker is started with them.
func TestHoldStaysOutOfThePoller(t *testing.T) {
	f, addr, err := TCP("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	setNonblock(t, f)
	c, err := HoldCopy(f, f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, h := range []*os.File{f, c} {
		if polled(t, int(h.Fd())) {
			t.Errorf("%s is in Go's poller", h.Name())
		}
		fl, err := unix.FcntlInt(h.Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fl&unix.O_NONBLOCK == 0 {
			t.Errorf("%s: Fd switched the socket to blocking mode", h.Name())
		}
		if fl, _ := unix.FcntlInt(h.Fd(), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s is not close-on-exec", h.Name())
		}
	}
	// The held copy is the same socket: a connection is queued on it.
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pfd := []unix.PollFd{{Fd: int32(c.Fd()), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 2000); err != nil || n != 1 {
		t.Fatalf("no connection to accept on the held copy: %d, %v", n, err)
	}
}

// polled tells whether fd is in one of this process's epoll sets (Go's
// poller has one), from /proc/self/fdinfo.
func polled(t *testing.T, fd int) bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "tfd:" && f[1] == strconv.Itoa(fd) {
				return true
			}
		}
	}
	return false
}

// setNonblock puts f's socket in non-blocking mode, as a worker does.
func setNonblock(t *testing.T, f *os.File) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.Control(func(fd uintptr) {
		if err := unix.SetNonblock(int(fd), true); err != nil {
			t.Fatal(err)
		}
	})
}
