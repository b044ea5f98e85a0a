package listeners

import (
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
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.Control(func(fd uintptr) {
		if err := unix.SetNonblock(int(fd), true); err != nil {
			t.Fatal(err)
		}
	})
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
