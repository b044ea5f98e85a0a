package listeners

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dup returns a close-on-exec copy of c's descriptor (an *os.File or a
// net listener), made through SyscallConn: os.File.Fd would first switch
// the descriptor to blocking mode, and with it the socket of every process
// that shares it, wattd's workers included.
func Dup(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	return nfd, nil
}

// Hold wraps fd, a listening socket that wattd keeps for its workers and
// never accepts from itself, in an *os.File (taking fd over) that Go's
// poller leaves alone and whose Fd never changes the socket's blocking
// mode.
//
// os.NewFile registers a descriptor that is in non-blocking mode with the
// poller, and a socket in wattd's poller wakes wattd for every connection
// the kernel queues on it: a context switch per connection in a process
// that has nothing to do with them. The mode belongs to the socket, shared
// with the workers, so it cannot be switched off for the wrapping without
// the workers seeing it. Instead the File is made over the read end of a
// fresh pipe (blocking, so not polled) and the socket then takes that
// descriptor's number with dup3.
func Hold(fd int, name string) (*os.File, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("hold %s: %w", name, err)
	}
	unix.Close(p[1])
	f := os.NewFile(uintptr(p[0]), name)
	if err := unix.Dup3(fd, p[0], unix.O_CLOEXEC); err != nil {
		f.Close()
		return nil, fmt.Errorf("hold %s: %w", name, err)
	}
	unix.Close(fd)
	return f, nil
}

// HoldCopy is Hold of a copy of c's descriptor (Dup), named name: c is
// left as it is.
func HoldCopy(c syscall.Conn, name string) (*os.File, error) {
	nfd, err := Dup(c)
	if err != nil {
		return nil, err
	}
	h, err := Hold(nfd, name)
	if err != nil {
		unix.Close(nfd)
		return nil, err
	}
	return h, nil
}
