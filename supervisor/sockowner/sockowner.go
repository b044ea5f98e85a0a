// Package sockowner tells which user owns the other end of a loopback TCP
// connection. A Unix socket says who connected (SO_PEERCRED); a TCP socket
// does not, but on loopback the other end is a socket of this host, and the
// kernel's sock_diag netlink interface reports its owner: one request for
// the exact address pair, one answer, no scan of /proc/net/tcp.
package sockowner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// ErrNotLoopback is returned for a connection whose peer is on another host:
// its owner cannot be known.
var ErrNotLoopback = errors.New("peer is not on this host's loopback")

// Layout of the sock_diag messages (linux/inet_diag.h), which x/sys/unix
// does not define.
const (
	sockIDLen   = 48 // inet_diag_sockid
	reqLen      = 8 + sockIDLen
	nlHdrLen    = 16
	msgUIDAt    = 4 + sockIDLen + 12 // inet_diag_msg: family..retrans, id, expires, rqueue, wqueue, then uid
	msgMinLen   = msgUIDAt + 8
	allStates   = 0xffffffff
	recvBufSize = 4096
)

// PeerUID returns the uid owning the socket at the other end of c, a TCP
// connection over loopback that this process accepted or dialled.
func PeerUID(c net.Conn) (uint32, error) {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("peer uid: %T is not a TCP connection", c)
	}
	if !remote.IP.IsLoopback() {
		return 0, fmt.Errorf("peer uid of %s: %w", remote, ErrNotLoopback)
	}
	uid, err := lookup(remote, local)
	if err != nil {
		return 0, fmt.Errorf("peer uid of %s: %w", remote, err)
	}
	return uid, nil
}

// lookup asks for the TCP socket bound to src and connected to dst.
func lookup(src, dst *net.TCPAddr) (uint32, error) {
	family := uint8(unix.AF_INET6)
	if src.IP.To4() != nil && dst.IP.To4() != nil {
		family = unix.AF_INET
	}
	req := make([]byte, nlHdrLen+reqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], 1) // sequence
	r := req[nlHdrLen:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], allStates)
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], uint16(src.Port))
	binary.BigEndian.PutUint16(id[2:], uint16(dst.Port))
	putIP(id[4:20], src.IP, family)
	putIP(id[20:36], dst.IP, family)
	for i := 40; i < 48; i++ {
		id[i] = 0xff // INET_DIAG_NOCOOKIE: match by address alone
	}

	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sock_diag request: %w", err)
	}
	buf := make([]byte, recvBufSize)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("sock_diag answer: %w", err)
	}
	buf = buf[:n]
	if len(buf) < nlHdrLen {
		return 0, fmt.Errorf("sock_diag answer of %d bytes", len(buf))
	}
	switch ne.Uint16(buf[4:]) {
	case unix.NLMSG_ERROR:
		if len(buf) >= nlHdrLen+4 {
			if code := int32(ne.Uint32(buf[nlHdrLen:])); code < 0 {
				return 0, fmt.Errorf("sock_diag: %w", unix.Errno(-code))
			}
		}
		return 0, errors.New("sock_diag: error answer")
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return 0, fmt.Errorf("sock_diag: unexpected answer type %d", ne.Uint16(buf[4:]))
	}
	msg := buf[nlHdrLen:]
	if len(msg) < msgMinLen {
		return 0, fmt.Errorf("sock_diag answer of %d bytes", len(msg))
	}
	// The answer must be the socket asked for, not some other one.
	if got := binary.BigEndian.Uint16(msg[4:]); int(got) != src.Port {
		return 0, fmt.Errorf("sock_diag answered for port %d, not %d", got, src.Port)
	}
	return ne.Uint32(msg[msgUIDAt:]), nil
}

func putIP(dst []byte, ip net.IP, family uint8) {
	if family == unix.AF_INET {
		copy(dst, ip.To4())
		return
	}
	copy(dst, ip.To16())
}
