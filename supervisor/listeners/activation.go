package listeners

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ActivationName is the LISTEN_FDNAMES name (FileDescriptorName= in a
// socket unit) that marks wattd's public socket when it is passed several.
const ActivationName = "http"

// Activated picks wattd's public socket among the sockets passed by the
// service manager (socket activation): the only one, or the one named
// ActivationName. It must be a listening TCP socket. The sockets not
// picked are closed. No socket passed returns nil, nil.
func Activated(files []*os.File) (_ *os.File, err error) {
	if len(files) == 0 {
		return nil, nil
	}
	var pick *os.File
	if len(files) == 1 {
		pick = files[0]
	} else {
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
			if f.Name() == ActivationName && pick == nil {
				pick = f
			}
		}
		if pick == nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("socket activation: %d sockets passed (%s) and none is named %q; set FileDescriptorName=%s on the public one",
				len(files), strings.Join(names, ", "), ActivationName, ActivationName)
		}
	}
	for _, f := range files {
		if f != pick {
			f.Close()
		}
	}
	if _, err := Addr(pick); err != nil {
		pick.Close()
		return nil, fmt.Errorf("socket activation: %s: %w", pick.Name(), err)
	}
	// A socket passed in non-blocking mode (NonBlocking=yes) is in Go's
	// poller as the service manager's library wrapped it; wattd's copy
	// must not be (Hold).
	defer pick.Close()
	held, err := HoldCopy(pick, pick.Name())
	if err != nil {
		return nil, fmt.Errorf("socket activation: %s: %w", pick.Name(), err)
	}
	return held, nil
}

// errNotListeningTCP is what Addr says of any other descriptor.
var errNotListeningTCP = errors.New("not a listening TCP socket (use ListenStream= with an address or port)")

// Addr is the address of a listening TCP socket, or an error if f is not
// one.
func Addr(f *os.File) (*net.TCPAddr, error) {
	fd := int(f.Fd())
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotListeningTCP, err)
	}
	listening, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil || typ != unix.SOCK_STREAM || listening != 1 {
		return nil, errNotListeningTCP
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotListeningTCP, err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	}
	return nil, errNotListeningTCP
}

// Share gives one more slot the passed socket: a duplicate descriptor
// (close-on-exec, like wattd's own sockets) of the same socket, so every
// worker accepts from its one queue.
func Share(f *os.File) (*os.File, *net.TCPAddr, error) {
	addr, err := Addr(f)
	if err != nil {
		return nil, nil, err
	}
	c, err := HoldCopy(f, f.Name())
	if err != nil {
		return nil, nil, fmt.Errorf("duplicate the passed socket: %w", err)
	}
	return c, addr, nil
}
