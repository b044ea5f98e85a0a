package supervisor

import (
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

	"github.com/wattd/wattd/supervisor/listeners"
)

// Connections stranded on the socket of a slot that has no worker.
//
// Steering (steering.go) keeps new connections away from such a slot, but
// only from when wattd knows that its worker is gone. A worker killed
// without a word (SIGKILL, the OOM killer, a native crash) has its
// connections reset by the kernel as it dies, before wattd learns of the
// death, and its clients connect again within microseconds: the kernel
// spreads those connections over every socket of the port, the dead
// slot's included, where they wait for its next worker. That is a whole
// start (seconds for some frameworks), or, in a crash loop, a back-off and
// a start that fails again, until the client gives up.
//
// So while a slot is steered around, wattd takes what is queued on its
// socket and relays each connection, byte for byte, to the port: the
// steering hands it to a slot that serves. Relayed, the app sees the
// connection come from wattd's address, and it stays relayed until either
// side closes it: when the rescue ends, the workers it relayed to shed
// their connections (applySteering), which ends it after a response. Only
// connections already queued are taken: new
// ones go to the serving slots directly, so this is a few connections per
// unannounced death, not a proxy on the hot path.

// maxRelays bounds the connections relayed at once; beyond it the queue
// waits for the slot's next worker, as it would without relays.
const maxRelays = 256

// relayDialTimeout bounds the connection to the port. A slot that serves
// accepts in microseconds; one that does not is no better than the wait.
const relayDialTimeout = 2 * time.Second

// relayLinger is how long a relay waits for the client to end its side
// once the app has ended its own.
const relayLinger = 5 * time.Second

// rescue relays the connections queued on one slot's socket; stop ends it.
type rescue struct {
	fd int // wattd's own copy of the socket, closed when run ends
	// wake is a pipe watched beside fd: stop writes to it, so that run
	// ends at once.
	wake [2]int
	// ep is an epoll instance of the rescue's own that watches fd and
	// wake[0], level-triggered; it is itself waited for in Go's poller
	// (see accept), so a rescue holds no OS thread while it waits.
	ep      *os.File
	targets []*net.TCPAddr // tried in turn
	log     *zap.Logger
	relayed atomic.Int64
	stopped chan struct{}
	done    chan struct{}
	// own holds the local addresses of the relays' connections to the
	// port: one of them queued on the socket being rescued means the
	// steering is not in force, and relaying it again would loop.
	own    sync.Map
	sem    chan struct{}
	dialer net.Dialer
	// dialing counts the relays still connecting to the port: the shed
	// that follows a stop must find their connections there.
	dialing sync.WaitGroup
}

// rescueTick bounds how long wait waits for a rescue to let go of its
// copy of the socket.
const rescueTick = 50 * time.Millisecond

// startRescue begins relaying what is queued on s's public socket, if
// it has one; it returns nil otherwise. Called with rt.steering.mu held.
func (rt *Runtime) startRescue(s *slot) *rescue {
	// The copy is made under sockMu: closeListeners takes the sockets
	// away under it, then stops the rescue (releaseSocket).
	s.sockMu.Lock()
	if len(s.listeners) == 0 || s.tcpInode == 0 || s.addr == nil {
		s.sockMu.Unlock()
		return nil
	}
	addr := s.addr
	// The rescue watches its copy with an epoll instance of its own and
	// accepts only what that says is there, rather than putting the socket
	// in Go's poller: the socket's blocking mode belongs to the programs
	// that share it (wattd never changes it, but a worker may put it in
	// blocking mode, and a passed socket may come in it), and an accept
	// that blocks could not be stopped. The epoll instance is wattd's
	// alone, so it is made non-blocking and waited for in Go's poller:
	// a rescue must not hold an OS thread while it waits, for a crash
	// storm starts one per slot, and under a max user processes limit a
	// Go runtime that cannot start a thread ends wattd.
	fd, err := listeners.Dup(s.listeners[0])
	s.sockMu.Unlock()
	if err != nil {
		s.log.Debug("not relaying the connections queued on the slot's socket", zap.Error(err))
		return nil
	}
	r := &rescue{fd: fd, targets: relayTargets(addr), log: s.log, sem: make(chan struct{}, maxRelays),
		stopped: make(chan struct{}), done: make(chan struct{})}
	if err := r.watch(); err != nil {
		unix.Close(fd)
		s.log.Debug("not relaying the connections queued on the slot's socket", zap.Error(err))
		return nil
	}
	r.dialer = net.Dialer{Timeout: relayDialTimeout, Control: r.bindOwn}
	go r.run()
	return r
}

// watch makes the wake pipe and the epoll instance that watches it and
// the socket. On an error nothing of them is left open.
func (r *rescue) watch() error {
	if err := unix.Pipe2(r.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		for _, fd := range []int{r.fd, r.wake[0]} {
			if err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
				break
			}
		}
		if err == nil {
			err = unix.SetNonblock(ep, true)
		}
		if err != nil {
			unix.Close(ep)
		}
	}
	if err != nil {
		unix.Close(r.wake[0])
		unix.Close(r.wake[1])
		return fmt.Errorf("epoll: %w", err)
	}
	r.ep = os.NewFile(uintptr(ep), "rescue-epoll")
	return nil
}

// relayTargets are the addresses a relay connects to, in turn: the port's,
// or, when it listens on every address, the loopback addresses, IPv4's
// first (a socket bound to "::" takes IPv4 too unless the system makes it
// IPv6-only, and "::1" may be off where IPv6 is).
func relayTargets(addr *net.TCPAddr) []*net.TCPAddr {
	if !addr.IP.IsUnspecified() {
		return []*net.TCPAddr{{IP: addr.IP, Port: addr.Port}}
	}
	out := []*net.TCPAddr{{IP: net.IPv4(127, 0, 0, 1), Port: addr.Port}}
	if addr.IP.To4() == nil {
		out = append(out, &net.TCPAddr{IP: net.IPv6loopback, Port: addr.Port})
	}
	return out
}

// bindOwn binds a relay's connection to the port, before it connects, to
// the target's address and a port of the kernel's choice, and records
// that address: a relay accepted back by the rescue is then known the
// moment it queues.
func (r *rescue) bindOwn(network, address string, c syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("relay target %q is not an address", address)
	}
	var serr error
	err = c.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if ip4 := ip.To4(); ip4 != nil {
			sa = &unix.SockaddrInet4{Addr: [4]byte(ip4)}
		} else {
			sa = &unix.SockaddrInet6{Addr: [16]byte(ip.To16())}
		}
		if serr = unix.Bind(int(fd), sa); serr != nil {
			return
		}
		var got unix.Sockaddr
		if got, serr = unix.Getsockname(int(fd)); serr != nil {
			return
		}
		var port int
		switch a := got.(type) {
		case *unix.SockaddrInet4:
			port = a.Port
		case *unix.SockaddrInet6:
			port = a.Port
		}
		r.own.Store(net.JoinHostPort(ip.String(), strconv.Itoa(port)), true)
	})
	if err != nil {
		return err
	}
	return serr
}

func (r *rescue) run() {
	defer close(r.done)
	defer unix.Close(r.wake[0])
	defer unix.Close(r.fd)
	defer r.ep.Close()
	for {
		select {
		case r.sem <- struct{}{}:
		case <-r.stopped:
			return
		}
		c, err := r.accept()
		if c == nil {
			<-r.sem
			if err != nil {
				r.log.Warn("stopped relaying the connections queued on the slot's socket", zap.Error(err))
				return
			}
			continue
		}
		if _, loop := r.own.Load(c.RemoteAddr().String()); loop {
			// The port handed a relay back to this socket: the steering
			// is not in force. Whatever waits here waits for the worker.
			r.log.Warn("not relaying the connections queued on the slot's socket: relays come back to it")
			c.Close()
			<-r.sem
			return
		}
		r.dialing.Add(1)
		go func() {
			defer func() { <-r.sem }()
			if err := r.relay(c); err != nil {
				r.log.Debug("could not relay a connection queued on the slot's socket", zap.Error(err))
			}
		}()
	}
}

// accept returns the next connection queued on the socket, or nil (with
// no error) once stopped or when what was there is gone.
func (r *rescue) accept() (*net.TCPConn, error) {
	rc, err := r.ep.SyscallConn()
	if err != nil {
		return nil, err
	}
	var events [2]unix.EpollEvent
	var werr error
	// The poller calls this again each time the epoll instance reads as
	// ready, which it does while the socket has a connection queued or
	// the wake pipe a byte.
	err = rc.Read(func(fd uintptr) bool {
		n, err := unix.EpollWait(int(fd), events[:], 0)
		if err != nil && err != unix.EINTR {
			werr = err
			return true
		}
		return n > 0
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return nil, fmt.Errorf("epoll_wait: %w", err)
	}
	select {
	case <-r.stopped:
		// The slot serves again: what comes now is its worker's.
		return nil, nil
	default:
	}
	nfd, _, err := unix.Accept4(r.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR || err == unix.ECONNABORTED:
		return nil, nil // the worker starting meanwhile took it, or the client left
	case err != nil:
		return nil, fmt.Errorf("accept: %w", err)
	}
	f := os.NewFile(uintptr(nfd), "relayed")
	c, err := net.FileConn(f)
	f.Close() // FileConn made its own copy
	if err != nil {
		return nil, nil
	}
	return c.(*net.TCPConn), nil
}

// relay carries one connection to the port and back until both sides
// have finished, each side's end passed on as a half close.
func (r *rescue) relay(c *net.TCPConn) error {
	defer c.Close()
	var uc net.Conn
	var errs []error
	for _, t := range r.targets {
		var err error
		if uc, err = r.dialer.Dial("tcp", t.String()); err == nil {
			break
		}
		errs = append(errs, err)
	}
	r.dialing.Done()
	if uc == nil {
		_ = c.SetLinger(0) // a reset: the client may try again at once
		return fmt.Errorf("connect to the port: %w", errors.Join(errs...))
	}
	up := uc.(*net.TCPConn)
	defer up.Close()
	defer r.own.Delete(up.LocalAddr().String())
	r.relayed.Add(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(c, up); err != nil {
			c.Close()
			return
		}
		_ = c.CloseWrite()
		// The app has ended the connection; a client that does not end
		// its side in turn is not waited for long.
		_ = c.SetReadDeadline(time.Now().Add(relayLinger))
	}()
	if _, err := io.Copy(up, c); err != nil {
		up.Close()
	} else {
		_ = up.CloseWrite()
	}
	<-done
	return nil
}

// stop ends the relaying of queued connections (those relayed go on
// until they end) and logs how many there were. It does not wait for the
// rescue to let go of its copy of the socket (wait does).
func (r *rescue) stop() {
	select {
	case <-r.stopped:
		return
	default:
	}
	close(r.stopped)
	_, _ = unix.Write(r.wake[1], []byte{0})
	unix.Close(r.wake[1])
	if n := r.relayed.Load(); n > 0 {
		r.log.Info("relayed connections that were queued on the slot's socket while it had no worker", zap.Int64("connections", n))
	}
}

// wait returns once the rescue has closed its copy of the socket, which,
// stopped, it does at once, unless an accept raced with the slot's worker
// while the socket was in blocking mode (see startRescue): then it waits for
// the next connection, and wait gives up after rescueTick.
func (r *rescue) wait() {
	t := time.NewTimer(rescueTick)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
		return
	}
	dialed := make(chan struct{})
	go func() { r.dialing.Wait(); close(dialed) }()
	select {
	case <-dialed:
	case <-t.C:
	}
}
