package listeners

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoQueue is returned by Queued for a socket whose accept queue the
// kernel does not show: not a listening TCP or Unix stream socket, or a
// kernel without the Unix socket diagnostics (unix_diag).
var ErrNoQueue = errors.New("listeners: accept queue not available")

// Queued returns how many connections wait in the accept queue of f, a
// listening socket: accepted by the kernel, not yet taken by the process
// that listens. A TCP listener tells it in TCP_INFO (tcpi_unacked, which
// the kernel fills with the queue's length for a listener); a Unix one
// through sock_diag (UNIX_DIAG_RQLEN of the socket's inode).
func Queued(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var qerr error
	err = rc.Control(func(fd uintptr) {
		domain, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			qerr = err
			return
		}
		switch domain {
		case unix.AF_INET, unix.AF_INET6:
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				qerr = err
				return
			}
			if info.State != unix.BPF_TCP_LISTEN {
				qerr = ErrNoQueue
				return
			}
			n = int(info.Unacked)
		case unix.AF_UNIX:
			var st unix.Stat_t
			if err := unix.Fstat(int(fd), &st); err != nil {
				qerr = err
				return
			}
			n, qerr = unixQueued(uint32(st.Ino))
		default:
			qerr = ErrNoQueue
		}
	})
	if err != nil {
		return 0, err
	}
	return n, qerr
}

// Constants of linux/unix_diag.h and linux/sock_diag.h that x/sys/unix
// does not name.
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	udiagShowRQLen   = 0x10
	unixDiagRQLen    = 4
	unixDiagReqLen   = 24 // struct unix_diag_req
	unixDiagMsgLen   = 16 // struct unix_diag_msg
)

// diag is the netlink socket unixQueued asks on, opened on first use and
// kept: opening one costs more than the question (about 30 µs against 6).
var diag struct {
	sync.Mutex
	fd  int
	ok  bool // fd is open
	seq uint32
}

// unixQueued asks sock_diag for the receive queue of the Unix socket with
// inode ino, which for a listener is its queue of pending connections.
func unixQueued(ino uint32) (int, error) {
	diag.Lock()
	defer diag.Unlock()
	if !diag.ok {
		s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		if err != nil {
			return 0, fmt.Errorf("sock_diag: %w", err)
		}
		// A receive timeout, so that a kernel that never answers cannot
		// hold the caller.
		tv := unix.Timeval{Sec: 1}
		_ = unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		diag.fd, diag.ok = s, true
	}
	n, err := askUnixQueued(diag.fd, ino)
	if err != nil && !errors.Is(err, ErrNoQueue) {
		// A socket in doubt (a late answer could follow) is not reused.
		unix.Close(diag.fd)
		diag.ok = false
	}
	return n, err
}

func askUnixQueued(s int, ino uint32) (int, error) {
	diag.seq++
	seq := diag.seq
	req := make([]byte, unix.NLMSG_HDRLEN+unixDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], sockDiagByFamily)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], seq)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], 1<<unix.BPF_TCP_LISTEN) // states
	ne.PutUint32(r[8:], ino)
	ne.PutUint32(r[12:], udiagShowRQLen)
	ne.PutUint32(r[16:], ^uint32(0)) // no cookie: look the inode up
	ne.PutUint32(r[20:], ^uint32(0))
	if err := unix.Sendto(s, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(s, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Seq != seq {
			return 0, errors.New("sock_diag: an answer to another question")
		}
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if code := int32(ne.Uint32(m.Data)); code != 0 {
					if syscall.Errno(-code) == syscall.ENOENT {
						return 0, ErrNoQueue // not a listener (or gone)
					}
					return 0, fmt.Errorf("sock_diag: %w", syscall.Errno(-code))
				}
			}
			return 0, ErrNoQueue
		case sockDiagByFamily:
			if len(m.Data) < unixDiagMsgLen || ne.Uint32(m.Data[4:]) != ino {
				continue
			}
			attrs := m.Data[unixDiagMsgLen:]
			for len(attrs) >= unix.SizeofRtAttr {
				l := int(ne.Uint16(attrs[0:]))
				typ := ne.Uint16(attrs[2:])
				if l < unix.SizeofRtAttr || l > len(attrs) {
					break
				}
				if typ == unixDiagRQLen && l >= unix.SizeofRtAttr+8 {
					return int(ne.Uint32(attrs[unix.SizeofRtAttr:])), nil
				}
				adv := (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
				if adv > len(attrs) {
					break
				}
				attrs = attrs[adv:]
			}
		}
	}
	return 0, ErrNoQueue
}
