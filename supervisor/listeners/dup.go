package listeners

import (
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
