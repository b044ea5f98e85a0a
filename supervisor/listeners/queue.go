package listeners

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoQueue is returned by Queued for a socket whose accept queue the
// kernel does not show: not a listening TCP or Unix stream socket (a Unix
// listener made after the last dump reads as one too, until the next).
// A kernel without the Unix socket diagnostics (unix_diag) gives the
// sock_diag error instead.
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

// Constants of linux/unix_diag.h that x/sys/unix does not name.
const (
	udiagShowRQLen = 0x10
	unixDiagRQLen  = 4
	unixDiagReqLen = 24 // struct unix_diag_req
	unixDiagMsgLen = 16 // struct unix_diag_msg
)

// dumpMaxAge is how long one dump of the Unix listeners' queues answers
// for: a health loop samples every worker's sockets at the same moment
// (on the wall clock's multiples of its period), and one dump for all of
// them costs less than a question each, and far less than their queueing
// on one netlink socket.
const dumpMaxAge = 100 * time.Millisecond

// diag holds the netlink socket the dumps are asked on, opened on first
// use and kept, and the last dump: queue lengths by inode.
var diag struct {
	sync.Mutex
	fd     int
	ok     bool // fd is open
	seq    uint32
	at     time.Time
	queued map[uint32]int
}

// unixQueued is the receive queue of the listening Unix socket with inode
// ino, which for a listener is its queue of pending connections, from a
// sock_diag dump of every listening Unix socket at most dumpMaxAge old.
func unixQueued(ino uint32) (int, error) {
	diag.Lock()
	defer diag.Unlock()
	if diag.queued == nil || time.Since(diag.at) > dumpMaxAge {
		if !diag.ok {
			s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
			if err != nil {
				return 0, fmt.Errorf("sock_diag: %w", err)
			}
			// A receive timeout, so that a kernel that never answers
			// cannot hold the caller.
			tv := unix.Timeval{Sec: 1}
			_ = unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
			diag.fd, diag.ok = s, true
		}
		q, err := dumpUnixQueued(diag.fd)
		if err != nil {
			// A socket in doubt (a late answer could follow) is not
			// reused.
			unix.Close(diag.fd)
			diag.ok, diag.queued = false, nil
			return 0, err
		}
		diag.queued, diag.at = q, time.Now()
	}
	n, ok := diag.queued[ino]
	if !ok {
		return 0, ErrNoQueue // not a listener, or newer than the dump
	}
	return n, nil
}

// dumpUnixQueued asks sock_diag for every listening Unix socket of the
// network namespace with its receive queue.
func dumpUnixQueued(s int) (map[uint32]int, error) {
	diag.seq++
	seq := diag.seq
	req := make([]byte, unix.NLMSG_HDRLEN+unixDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], 1<<unix.BPF_TCP_LISTEN) // states
	ne.PutUint32(r[12:], udiagShowRQLen)
	ne.PutUint32(r[16:], ^uint32(0)) // no cookie
	ne.PutUint32(r[20:], ^uint32(0))
	if err := unix.Sendto(s, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	out := map[uint32]int{}
	buf := make([]byte, 32<<10)
	for {
		n, _, err := unix.Recvfrom(s, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				return nil, errors.New("sock_diag: an answer to another question")
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(ne.Uint32(m.Data)); code != 0 {
						return nil, fmt.Errorf("sock_diag: %w", syscall.Errno(-code))
					}
				}
				return nil, errors.New("sock_diag: error without a code")
			case unix.SOCK_DIAG_BY_FAMILY:
				if len(m.Data) < unixDiagMsgLen {
					continue
				}
				ino := ne.Uint32(m.Data[4:])
				attrs := m.Data[unixDiagMsgLen:]
				for len(attrs) >= unix.SizeofRtAttr {
					l := int(ne.Uint16(attrs[0:]))
					typ := ne.Uint16(attrs[2:])
					if l < unix.SizeofRtAttr || l > len(attrs) {
						break
					}
					if typ == unixDiagRQLen && l >= unix.SizeofRtAttr+8 {
						out[ino] = int(ne.Uint32(attrs[unix.SizeofRtAttr:]))
						break
					}
					adv := (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
					if adv > len(attrs) {
						break
					}
					attrs = attrs[adv:]
				}
			}
		}
	}
}
