// Package front puts wattd in front of workers that cannot take a passed
// socket. Such a worker listens on a loopback port of its own ($PORT); wattd
// keeps accepting on the worker slot's sockets (the public TCP socket, the
// mesh Unix socket) and a Forwarder copies every connection to that port.
//
// The copy is done by io.Copy between the two connections, which on Linux
// becomes splice(2) for TCP→TCP, Unix→TCP and TCP→Unix: the bytes move
// through a kernel pipe and never enter wattd's memory, and the pipes come
// from a pool, so a connection costs two goroutines and a few small objects.
//
// While the worker restarts its port refuses connections. Rather than turn
// that into errors for clients, a Forwarder keeps retrying the dial for a
// while (Forwarder.Wait), so clients see latency instead, just as they would
// waiting in the backlog of a passed socket.
package front

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/fdlimit"
	"github.com/wattd/wattd/supervisor/listeners"
)

// DefaultWait is Forwarder.Wait unless set otherwise.
const DefaultWait = 10 * time.Second

// DefaultFinWait is Forwarder.FinWait unless set otherwise.
const DefaultFinWait = 30 * time.Second

// Retry pacing for dials to a worker that refuses: quick at first, because a
// restarting worker is usually back within tens of milliseconds, then capped
// so thousands of waiting connections do not hammer the loopback.
const (
	firstRetry = 5 * time.Millisecond
	maxRetry   = 200 * time.Millisecond
)

// Forwarder accepts connections on one of wattd's listening sockets and
// forwards each to 127.0.0.1:port. Create it with New, set Wait if needed,
// then Start; Close stops it.
type Forwarder struct {
	// Wait is how long a connection waits for the worker's port to accept
	// before it is closed (DefaultWait when zero). Set it before Start.
	Wait time.Duration

	// FinWait bounds a connection once one side has ended its sending
	// (DefaultFinWait when zero): from then on the other side is closed
	// with it when it sends nothing for that long. A client that went away
	// looks, to wattd, just like one that only shut down its sending side,
	// so without a bound a request the worker never answers would hold
	// both connections for good. Set it before Start.
	FinWait time.Duration

	ln   net.Listener // accepts; a dup of the caller's socket
	wake *os.File     // another dup, only to wait for pending connections (see acceptLoop)
	log  *zap.Logger

	target atomic.Pointer[string] // "127.0.0.1:port"
	down   atomic.Bool            // the worker refused until a connection gave up; logged once per outage

	refused        atomic.Uint64 // connections closed at once: descriptors short (fdlimit.Short)
	lastRefusalLog atomic.Int64  // Unix nanoseconds

	// ctx ends when Close runs out of time: it aborts dials still waiting.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool // no new connections are taken
	started bool // the accept loop was started
	conns   map[*pair]struct{}
	wg      sync.WaitGroup // the accept loop and every live pair
	closing chan struct{}  // closed with closed, for the accept loop's backoff
}

// pair is one forwarded connection.
type pair struct {
	f      *Forwarder
	client net.Conn
	target net.Conn // nil while dialling; set under f.mu
	left   atomic.Int32
	ended  atomic.Bool // one direction ended cleanly: the other runs under FinWait
}

// New returns a Forwarder that accepts on l (a listening TCP or Unix stream
// socket) and forwards to 127.0.0.1:port. It works on its own duplicates of
// l: the caller keeps l and may close it whenever it likes, but the socket
// stays open (and keeps queueing connections) until the Forwarder is closed
// too.
//
// The duplicates share l's open file description, so the socket is put in
// non-blocking mode. The Forwarder does not depend on that mode staying set
// (os.File.Fd, as used when passing files to a child, clears it): it only
// accepts when a connection is pending, so an accept never blocks a thread
// or outlives Close.
func New(l *os.File, port int, log *zap.Logger) (*Forwarder, error) {
	if err := checkPort(port); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	ln, err := net.FileListener(l) // dups l and sets O_NONBLOCK on the description
	if err != nil {
		return nil, fmt.Errorf("front: listener %s: %w", l.Name(), err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// The socket file belongs to whoever created it (the slot), not to
		// this copy of the listener.
		ul.SetUnlinkOnClose(false)
	}
	wake, err := waiter(ln)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("front: listener %s: %w", l.Name(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{
		ln:      ln,
		wake:    wake,
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		conns:   make(map[*pair]struct{}),
		closing: make(chan struct{}),
	}
	f.target.Store(addrOf(port))
	return f, nil
}

// waiter returns a pollable duplicate of ln's socket. Its only use is to
// wait until the socket is readable, something a net.Listener cannot be
// asked for.
func waiter(ln net.Listener) (*os.File, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("unsupported listener %T", ln)
	}
	nfd, err := listeners.Dup(sc)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	// os.NewFile registers only a non-blocking descriptor with the poller.
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(nfd), "front-waiter"), nil
}

func checkPort(port int) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("front: invalid port %d", port)
	}
	return nil
}

func addrOf(port int) *string {
	s := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return &s
}

// Port returns the port connections are forwarded to.
func (f *Forwarder) Port() int {
	_, p, _ := net.SplitHostPort(*f.target.Load())
	n, _ := strconv.Atoi(p)
	return n
}

// SetPort makes new connections (and those still waiting for the worker)
// go to port from now on; connections already forwarded stay where they are.
// A rolling restart uses it to switch to the replacement worker once that
// one is Ready, while the old worker finishes what it has.
func (f *Forwarder) SetPort(port int) error {
	if err := checkPort(port); err != nil {
		return err
	}
	f.target.Store(addrOf(port))
	return nil
}

// Active returns the number of connections being forwarded or waiting for
// the worker.
func (f *Forwarder) Active() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Start starts accepting in the background. It does nothing after Close or
// when already started.
func (f *Forwarder) Start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.started {
		return
	}
	f.started = true
	f.wg.Add(1)
	go f.acceptLoop()
}

// Close stops accepting at once and waits for the forwarded connections to
// end by themselves until ctx is done; it then closes those left (and
// abandons dials still waiting for the worker) and returns an error
// wrapping ctx's. Connections not yet accepted stay queued on the socket for
// whoever accepts next. Close may be called more than once.
func (f *Forwarder) Close(ctx context.Context) error {
	f.mu.Lock()
	first := !f.closed
	f.closed = true
	f.mu.Unlock()
	if first {
		close(f.closing)
		// The waiter first: closing it wakes the accept loop.
		f.wake.Close()
		f.ln.Close()
	}
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		f.cancel()
		return nil
	case <-ctx.Done():
	}
	// The connections left are counted before f.ctx is cancelled: a dial
	// waiting for the worker gives up on the cancel and releases its pair,
	// which, counted after, would pass for one that ended in time.
	f.mu.Lock()
	cut := len(f.conns)
	f.mu.Unlock()
	f.cancel()
	f.mu.Lock()
	for p := range f.conns {
		p.client.Close()
		if p.target != nil {
			p.target.Close()
		}
	}
	f.mu.Unlock()
	<-done
	if cut == 0 {
		return nil
	}
	return fmt.Errorf("front: closed %d connection(s) to %s still open: %w", cut, *f.target.Load(), ctx.Err())
}

// acceptLoop takes connections until Close.
//
// It waits for a pending connection on the waiter and only then calls
// Accept. Waiting inside Accept would rely on the socket staying
// non-blocking, and anything that calls Fd on another copy of the socket
// makes it blocking again: Accept would then sit in accept(2), holding a
// thread and keeping Close from returning until the next client. With a
// connection known to be pending, accept(2) returns at once in either mode.
func (f *Forwarder) acceptLoop() {
	defer f.wg.Done()
	rc, err := f.wake.SyscallConn()
	if err != nil {
		f.log.Error("front: cannot wait on listener", zap.Error(err))
		return
	}
	pfd := []unix.PollFd{{Events: unix.POLLIN}} // reused: one allocation per loop, not per connection
	pending := func(fd uintptr) bool {
		pfd[0].Fd, pfd[0].Revents = int32(fd), 0
		for {
			n, err := unix.Poll(pfd, 0)
			if err == unix.EINTR {
				continue
			}
			// An error is reported by Accept below, which fails the same way.
			return err != nil || (n > 0 && pfd[0].Revents != 0)
		}
	}
	var backoff time.Duration
	for {
		if err := rc.Read(pending); err != nil {
			if !f.isClosed() {
				f.log.Error("front: waiting for connections failed", zap.Error(err))
			}
			return
		}
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || f.isClosed() {
				return
			}
			// Out of file descriptors and the like: back off as net/http
			// does, leaving the connection queued, instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			f.log.Warn("front: accept failed; retrying", zap.Error(err), zap.Duration("in", backoff))
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-f.closing:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		if fdlimit.Short(c) {
			// Each forwarded connection costs wattd two descriptors; the
			// last ones are kept for starting and restarting workers.
			f.refuse() // counted before the client can see the close
			c.Close()
			continue
		}
		// A connection accepted while Close starts is served like the
		// others rather than dropped. Adding to wg is safe then: this loop
		// holds a count of its own, so Close's Wait cannot have returned;
		// and if Close is already cutting connections, f.ctx is done and
		// the dial fails at once.
		p := &pair{f: f, client: c}
		f.mu.Lock()
		f.conns[p] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go p.serve()
	}
}

// refusalLogEvery bounds the log lines about refused connections.
const refusalLogEvery = 10 * time.Second

func (f *Forwarder) refuse() {
	n := f.refused.Add(1)
	now := time.Now().UnixNano()
	last := f.lastRefusalLog.Load()
	if now-last < int64(refusalLogEvery) || !f.lastRefusalLog.CompareAndSwap(last, now) {
		return
	}
	f.log.Warn("front: refusing connections: file descriptors are down to the reserve kept for supervision",
		zap.Int("reserve", fdlimit.Reserve()), zap.Uint64("fdLimit", fdlimit.Soft()), zap.Uint64("refusedTotal", n))
}

// Refused is the number of connections closed at once because wattd's
// descriptors were down to the reserve.
func (f *Forwarder) Refused() uint64 { return f.refused.Load() }

func (f *Forwarder) isClosed() bool {
	select {
	case <-f.closing:
		return true
	default:
		return false
	}
}

// serve dials the worker and copies in both directions. This goroutine
// copies worker→client; another copies client→worker. Whichever finishes
// last releases the pair.
func (p *pair) serve() {
	f := p.f
	t, err := f.dial()
	if err != nil {
		p.client.Close()
		f.release(p)
		return
	}
	f.mu.Lock()
	p.target = t
	f.mu.Unlock()
	// Close may have cut the connections between the dial and the line
	// above; the copies then fail at once on the closed client and both
	// ends get closed, so there is nothing special to do.
	p.left.Store(2)
	go p.copy(t, p.client)
	p.copy(p.client, t)
}

// copy moves src→dst until src ends. A clean end (EOF) is passed on as a
// half-close, so a client that shuts down its sending side still gets the
// whole response; the other direction then has to keep moving (see
// FinWait), since a peer that closed for good cannot be told from one that
// half-closed. Any error tears down both connections, which also ends the
// copy in the other direction.
func (p *pair) copy(dst, src net.Conn) {
	err := p.move(dst, src)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			err = cw.CloseWrite()
		} else {
			err = errors.New("no half-close")
		}
	}
	if err == nil && !p.ended.Swap(true) {
		// dst is the source of the other direction: its copy now fails
		// on a read that waits longer than FinWait (see move).
		err = dst.SetReadDeadline(time.Now().Add(p.f.finWait()))
	}
	if err != nil {
		p.client.Close()
		p.target.Close()
	}
	if p.left.Add(-1) == 0 {
		p.client.Close()
		p.target.Close()
		p.f.release(p)
	}
}

// move copies src→dst until src ends. Once the other direction has ended,
// src carries a read deadline: a copy that moved bytes before it fell due
// goes on under a new one, one that moved none is over. The pair is so
// closed after FinWait (at most twice that) without a byte from src. The
// bytes are counted per io.Copy call rather than per read, to keep
// io.Copy's splice(2), which a counting wrapper would turn off.
func (p *pair) move(dst, src net.Conn) error {
	for {
		n, err := io.Copy(dst, src)
		if err == nil || n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !p.ended.Load() {
			return err
		}
		if err := src.SetReadDeadline(time.Now().Add(p.f.finWait())); err != nil {
			return err
		}
	}
}

func (f *Forwarder) finWait() time.Duration {
	if f.FinWait <= 0 {
		return DefaultFinWait
	}
	return f.FinWait
}

func (f *Forwarder) release(p *pair) {
	f.mu.Lock()
	delete(f.conns, p)
	f.mu.Unlock()
	f.wg.Done()
}

// dial connects to the worker, retrying refusals for up to Wait.
func (f *Forwarder) dial() (net.Conn, error) {
	wait := f.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	deadline := time.Now().Add(wait)
	// KeepAlive is off: both ends are on this host, and a worker that dies
	// resets the connection anyway. Deadline bounds a single attempt (a
	// full accept queue drops SYNs rather than refusing them).
	d := net.Dialer{Deadline: deadline, KeepAlive: -1}
	retry := firstRetry
	var timer *time.Timer
	for {
		addr := *f.target.Load() // re-read: SetPort may point elsewhere meanwhile
		c, err := d.DialContext(f.ctx, "tcp", addr)
		if err == nil {
			if f.down.Load() && f.down.Swap(false) {
				f.log.Info("front: worker accepting connections again", zap.String("target", addr))
			}
			if timer != nil {
				timer.Stop()
			}
			return c, nil
		}
		left := time.Until(deadline)
		if f.ctx.Err() != nil || left <= 0 {
			if f.ctx.Err() == nil && !f.down.Swap(true) {
				// Once per outage: a dead worker would otherwise log a
				// line per client.
				f.log.Warn("front: worker not accepting connections; closing the ones that waited too long",
					zap.String("target", addr), zap.Duration("waited", wait), zap.Error(err))
			}
			return nil, fmt.Errorf("front: dial %s: %w", addr, err)
		}
		// The last pause is cut short so the final attempt falls on the
		// deadline: a worker that comes up just in time still gets the client.
		pause := min(retry, left)
		if timer == nil {
			timer = time.NewTimer(pause)
		} else {
			timer.Reset(pause)
		}
		select {
		case <-timer.C:
		case <-f.ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("front: dial %s: %w", addr, f.ctx.Err())
		}
		retry = min(2*retry, maxRetry)
	}
}

// Ready polls until the worker whose pid is owner listens on
// 127.0.0.1:port: the readiness probe for fronted workers, whose only sign
// of life is a port that accepts. A port that accepts is not enough: the
// socket behind it must belong to the worker's process tree (see
// checkOwner), or a program that took the port would pass for the worker.
// Each attempt connects first (and closes the connection without sending
// anything), which costs next to nothing, and only once a connection is
// taken reads whose socket it is: reading the kernel's table of TCP sockets
// walks all of it, a cost that polling every 100 ms for each starting
// worker of a crash-looping application made wattd's largest.
//
// warn, when not nil, is called once with the first error wrapping
// ErrForeignListener (or saying the sockets cannot be listed), so the
// caller can say why the worker is not ready.
func Ready(ctx context.Context, port, owner int, warn func(error)) error {
	if err := checkPort(port); err != nil {
		return err
	}
	addr := *addrOf(port)
	d := net.Dialer{KeepAlive: -1}
	every := 10 * time.Millisecond
	warned := warn == nil
	var t *time.Timer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			if err = checkOwner(port, owner); err == nil {
				return nil
			}
			if !warned && !errors.Is(err, errNotListening) {
				warned = true
				warn(err)
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("front: worker %d not accepting on %s: %w (last attempt: %w)", owner, addr, ctx.Err(), err)
		}
		if t == nil {
			t = time.NewTimer(every)
			defer t.Stop()
		} else {
			t.Reset(every)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("front: worker %d not accepting on %s: %w (last attempt: %w)", owner, addr, ctx.Err(), err)
		}
		every = min(2*every, 100*time.Millisecond)
	}
}

// FreePort picks a free loopback port by binding port 0 and releasing it.
// Another process may take it before the worker binds it; the worker then
// fails to start (or, if it never binds, is not taken as ready, see Ready)
// and its next start gets a new FreePort, so the race costs a restart, not
// correctness.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("front: pick a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("front: pick a free port: %w", err)
	}
	return port, nil
}
