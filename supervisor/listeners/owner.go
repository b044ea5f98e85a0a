package listeners

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/procnet"
)

// SO_REUSEPORT lets any socket of the same user join a listening group, and
// the kernel then spreads connections over every member, wattd's or not. So
// before wattd opens its group it looks for listeners it does not own on the
// address.

// Holder is a listening socket on the address and, when it can be seen,
// the process that holds it.
type Holder struct {
	procnet.Socket
	Proc *procnet.Holder // nil when no process of this user holds it (another user's, or gone)
}

func (h Holder) String() string {
	if h.Proc == nil {
		return fmt.Sprintf("a socket on %s (socket inode %d; its process is not visible to this user)", h.Addr, h.Inode)
	}
	if h.Proc.PID == os.Getpid() {
		// wattd never counts a socket of its own as foreign unless it lost
		// track of it: say so, with what it takes to find out which.
		return fmt.Sprintf("%s on %s (socket inode %d, held by this very process)", h.Proc, h.Addr, h.Inode)
	}
	return fmt.Sprintf("%s on %s", h.Proc, h.Addr)
}

// ErrPortHeld is returned when a socket wattd does not own listens on the
// address wattd is to serve.
var ErrPortHeld = errors.New("port is in use by another program")

// PortHeldError names who holds the port.
type PortHeldError struct {
	Addr    string
	Holders []Holder
	// Unshared is set when the kernel refused the bind itself: the holder
	// did not set SO_REUSEPORT, or is another user's, so reuseTcpPorts
	// cannot share the port with it.
	Unshared bool
}

func (e *PortHeldError) Error() string {
	names := make([]string, len(e.Holders))
	for i, h := range e.Holders {
		names[i] = h.String()
	}
	if e.Unshared {
		return fmt.Sprintf("%s is already in use: %s. Stop that program or choose another port (\"reuseTcpPorts\" cannot share it: that socket does not allow sharing, SO_REUSEPORT, or belongs to another user)",
			e.Addr, strings.Join(names, "; "))
	}
	return fmt.Sprintf("%s is already in use: %s. Stop that program, choose another port, or, to share the port with it on purpose (it must set SO_REUSEPORT too), set \"reuseTcpPorts\": true in watt.json",
		e.Addr, strings.Join(names, "; "))
}

func (e *PortHeldError) Unwrap() error { return ErrPortHeld }

// CheckFree returns a *PortHeldError when a listening TCP socket other than
// those in own overlaps host:port: the same port on the same address, or
// either side bound to the wildcard address.
func CheckFree(host string, port int, own map[uint64]bool) error {
	addrs, err := resolve(host)
	if err != nil {
		return err
	}
	socks, err := procnet.Listening(port)
	if err != nil {
		return err
	}
	var foreign []Holder
	var inodes []uint64
	for _, s := range socks {
		if own[s.Inode] || !overlapsAny(s.Addr.Addr(), addrs) {
			continue
		}
		foreign = append(foreign, Holder{Socket: s})
		inodes = append(inodes, s.Inode)
	}
	if len(foreign) == 0 {
		return nil
	}
	procs := procnet.Holders(inodes)
	for i := range foreign {
		if p, ok := procs[foreign[i].Inode]; ok {
			foreign[i].Proc = &p
		}
	}
	return &PortHeldError{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Holders: foreign, Unshared: !shareable(addrs, port)}
}

// shareable tells whether a socket with SO_REUSEPORT could bind port on
// addrs beside the listeners there now: not when one of them did not set
// SO_REUSEPORT, or belongs to another user. It binds a socket it never
// listens on, so it joins no group, and closes it.
func shareable(addrs []netip.Addr, port int) bool {
	for _, a := range addrs {
		family, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: port, Addr: a.As4()})
		if a.Is6() {
			family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: a.As16()}
		}
		fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err == nil {
			err = unix.Bind(fd, sa)
			if errors.Is(err, unix.EADDRINUSE) {
				unix.Close(fd)
				return false
			}
		}
		unix.Close(fd)
	}
	return true
}

// Inode returns the inode of the socket f, the number the kernel's tables
// use for it.
func Inode(f *os.File) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// resolve turns the configured host name into the addresses a listen on it
// may cover; an empty host is the wildcard.
func resolve(host string) ([]netip.Addr, error) {
	if host == "" {
		return []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

func overlapsAny(a netip.Addr, addrs []netip.Addr) bool {
	a = a.Unmap()
	for _, b := range addrs {
		if a == b || a.IsUnspecified() || b.IsUnspecified() {
			return true
		}
	}
	return false
}
