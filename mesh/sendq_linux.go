//go:build linux

package mesh

import (
	"syscall"
	"unsafe"
)

// unsentBytes is how many bytes a socket's send queue holds (SIOCOUTQ,
// the same request number as TIOCOUTQ). Plain syscall: the package is
// also the Go SDK's, and adds no module to the apps that import it.
func unsentBytes(fd uintptr) (int, error) {
	var n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0, e
	}
	return int(n), nil
}
