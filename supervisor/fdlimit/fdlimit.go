// Package fdlimit keeps wattd's file descriptors for its own work. A
// supervisor that runs out of descriptors cannot fork, open a control
// socketpair or /dev/null for a new worker, so a crashed worker would stay
// down; the descriptors that client load can consume (connections accepted
// by the mesh proxy) must therefore stop well before the process limit.
//
// The pieces: Raise lifts the soft RLIMIT_NOFILE to the hard limit at start;
// the reserve (SetReserve) is how many descriptors below the limit client
// connections must leave free, one number for the whole process as the
// limit is; Short tells whether an accepted connection ate into it; and
// Listener wraps a listener so that it holds at most a fixed number of
// connections and refuses new ones that are Short.
package fdlimit

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// Raise lifts the soft RLIMIT_NOFILE to the hard limit (or one below it)
// and returns the resulting limits. The Go runtime already does so at
// start, to one below the hard limit, and gives child processes the
// original soft limit back as they exec; Raise makes the daemon's budget
// explicit and covers runtimes that did not raise.
func Raise() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max-1 {
		// Only where the runtime did not raise: Setrlimit switches its
		// restore off, and the workers would inherit the raised limit.
		want := lim
		want.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return lim.Cur, lim.Max, fmt.Errorf("raise RLIMIT_NOFILE from %d to %d: %w", lim.Cur, lim.Max, err)
		}
		lim = want
	}
	return lim.Cur, lim.Max, nil
}

// Soft returns the current soft RLIMIT_NOFILE, or 0 if it cannot be read.
func Soft() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}

// reserve is the process-wide reserve; the runtime sets it from its number
// of worker slots before it serves clients.
var reserve atomic.Int64

// DefaultReserve is the reserve until SetReserve is called.
const DefaultReserve = 128

func init() { reserve.Store(DefaultReserve) }

// SetReserve sets how many descriptors below the limit must stay free for
// the process's own work.
func SetReserve(n int) { reserve.Store(int64(max(n, 0))) }

// Reserve returns the process-wide reserve.
func Reserve() int { return int(reserve.Load()) }

// Short reports whether c, just accepted, lies within the reserve of the
// descriptor limit, and should be closed at once. The kernel hands out the
// lowest free descriptor number, so a number at or above limit-reserve means
// every lower one is in use and at most the reserve remains.
func Short(c net.Conn) bool { return short(c, Reserve(), Soft) }

func short(c net.Conn, reserve int, limit func() uint64) bool {
	n := fdOf(c)
	if n < 0 {
		return false
	}
	lim := limit()
	return lim > 0 && uint64(n)+uint64(reserve) >= lim
}

// Reasons a Listener refuses a connection, as passed to OnRefuse.
var (
	ErrTooMany = errors.New("connection limit reached")
	ErrReserve = errors.New("file descriptors within the reserve kept for supervision")
)

// Listener accepts from Listener but keeps within its limits: a connection
// beyond Max open ones, or one whose descriptor number reaches
// Limit()-Reserve, is closed at once. Closing at once (rather than leaving
// it in the kernel's backlog) gives the client a prompt error and keeps the
// backlog from filling with connections nobody will serve.
//
// The descriptor test uses the accepted connection's own number: the kernel
// hands out the lowest free number, so a number at or above Limit()-Reserve
// means every lower one is in use and at most Reserve remain.
type Listener struct {
	net.Listener

	// Max bounds the connections open at once; 0 means no bound.
	Max int
	// Reserve is how many descriptors below the limit must stay free for
	// the rest of the process; 0 means the process-wide Reserve().
	Reserve int
	// Limit returns the process's descriptor limit; nil means Soft.
	Limit func() uint64
	// Admit, when set, decides about each connection within the limits;
	// an error refuses it and is the reason passed to OnRefuse.
	Admit func(net.Conn) error
	// OnRefuse, when set, is called for each refused connection.
	OnRefuse func(reason error)

	open    atomic.Int64
	refused atomic.Uint64
}

// Accept returns the next connection within the limits.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if reason := l.check(c); reason != nil {
			// Counted before the close, so that whoever sees the close
			// also sees the count.
			l.refused.Add(1)
			if l.OnRefuse != nil {
				l.OnRefuse(reason)
			}
			c.Close()
			continue
		}
		return &conn{Conn: c, l: l}, nil
	}
}

func (l *Listener) check(c net.Conn) error {
	if l.Max > 0 && l.open.Load() >= int64(l.Max) {
		return ErrTooMany
	}
	limit, res := Soft, l.Reserve
	if l.Limit != nil {
		limit = l.Limit
	}
	if res == 0 {
		res = Reserve()
	}
	if short(c, res, limit) {
		return ErrReserve
	}
	if l.Admit != nil {
		if err := l.Admit(c); err != nil {
			return err
		}
	}
	l.open.Add(1)
	return nil
}

// Open is the number of accepted connections not yet closed.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Refused is the number of connections closed at once since the start.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// conn releases its place in the Listener when closed, once.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// SyscallConn reaches the underlying connection's descriptor (the mesh
// proxy watches its send queue); an error when it has none.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("fdlimit: the connection has no descriptor")
}

// CloseWrite half-closes the connection when the underlying one can (TCP
// and Unix sockets can). net/http looks for it to close a connection
// gracefully: without it, closing with unread input makes the kernel send
// a reset, and the client may lose the response it was just sent.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// fdOf returns the descriptor number of c, or -1.
func fdOf(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if err := raw.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1
	}
	return fd
}
