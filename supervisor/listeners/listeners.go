// Package listeners opens the sockets wattd owns on behalf of its workers:
// one SO_REUSEPORT TCP socket per worker slot of the entrypoint, and one Unix
// socket per worker slot of every application (the mesh). wattd keeps them
// open for the life of the slot (the runtime's, unless scaling takes the
// slot away) and hands a dup to each worker it starts, so a crashed
// worker's replacement inherits the same socket and the port is never
// closed while the runtime runs. steer.go keeps new connections off the
// sockets of slots that come and go.
package listeners

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/procnet"
)

// Backlog is the listen(2) backlog of wattd's sockets. Connections that
// arrive while a slot's worker restarts wait here, so it is generous; the
// kernel caps it at net.core.somaxconn.
const Backlog = 4096

// Network is the network to listen on host with: "tcp4" for an IPv4
// address, 0.0.0.0 included, "tcp6" for an IPv6 one, "tcp" for a name or
// "" (every interface, both families). Go's "tcp" on 0.0.0.0 opens a
// dual-stack socket, which also answers on every IPv6 address: a port
// meant for IPv4 only (a host whose firewall rules are IPv4's) would be
// open on IPv6 as well, where Node.js and Watt listen on IPv4 alone.
func Network(host string) string {
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Unmap().Is4() && !ip.Is4In6() {
			return "tcp4"
		}
		return "tcp6"
	}
	return "tcp"
}

// TCP opens a listening TCP socket on host:port with SO_REUSEPORT set, so
// several slots can share the address and the kernel spreads connections
// between them. Port 0 picks a free port; use the returned address to open
// the other slots on the same port.
func TCP(host string, port int) (*os.File, *net.TCPAddr, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	// Plain TCP, not Go's default of MPTCP where the kernel has it: an MPTCP
	// listener takes no socket filter, and the group is steered by one
	// while it grows or shrinks (steer.go). Clients see no difference:
	// MPTCP listeners answer plain TCP clients as plain TCP.
	lc.SetMultipathTCP(false)
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := lc.Listen(context.Background(), Network(host), addr)
	if err != nil {
		if errors.Is(err, unix.EADDRINUSE) && port != 0 {
			// Name the holder, as the check for SO_REUSEPORT holders does.
			var held *PortHeldError
			if herr := CheckFree(host, port, nil); errors.As(herr, &held) {
				held.Unshared = true
				return nil, nil, held
			}
			if why := InUse(host, port, err); why != err {
				return nil, nil, why
			}
		}
		return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer l.Close() // wattd keeps a copy; the Go listener itself is not used
	tl := l.(*net.TCPListener)
	f, err := HoldCopy(tl, "tcp:"+tl.Addr().String())
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if err := unix.Listen(int(f.Fd()), Backlog); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("listen on %s: backlog: %w", addr, err)
	}
	return f, tl.Addr().(*net.TCPAddr), nil
}

// connectionsError explains a port no program listens on that cannot be
// bound: connections use it as their local port, which happens to ports of
// the kernel's range for outgoing connections.
// InUse explains err, a listen on host:port that failed, when it failed
// because the port is taken by connections and nobody listens there (the
// kernel says only "address already in use"); other errors come back as
// they are.
func InUse(host string, port int, err error) error {
	if !errors.Is(err, unix.EADDRINUSE) || port == 0 {
		return err
	}
	if conns := procnet.ConnectionsOn(port); len(conns) > 0 {
		return connectionsError(net.JoinHostPort(host, strconv.Itoa(port)), port, conns)
	}
	return err
}

func connectionsError(addr string, port int, states []string) error {
	count := map[string]int{}
	var order []string
	for _, s := range states {
		if count[s] == 0 {
			order = append(order, s)
		}
		count[s]++
	}
	var parts []string
	for _, s := range order {
		parts = append(parts, fmt.Sprintf("%d %s", count[s], s))
	}
	msg := fmt.Sprintf("no program listens there, but connections use port %d as their own end (%s)", port, strings.Join(parts, ", "))
	if low, high, ok := procnet.EphemeralPorts(); ok && port >= low && port <= high {
		msg += fmt.Sprintf("; the port is in the kernel's range for outgoing connections (%d-%d, net.ipv4.ip_local_port_range), which any outgoing connection may take: choose a port below %d", low, high, low)
	}
	return fmt.Errorf("listen on %s: %w: %s", addr, unix.EADDRINUSE, msg)
}

// Unix opens a listening Unix stream socket at path, mode 0600, replacing a
// stale socket file left by an earlier run. The file is created with a
// restrictive umask so no other user can connect in the window before chmod.
func Unix(path string) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on %s: exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: socket is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen on %s: remove stale socket: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The socket file gets the process umask at bind(2); chmod it before
	// listen(2), since nobody can connect to a socket that does not listen
	// yet, so there is no moment at which it is open to others.
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := unix.Listen(fd, Backlog); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}
