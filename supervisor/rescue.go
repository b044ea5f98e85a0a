package supervisor

import (
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
// side closes it (an idle keep-alive connection ends at the app's
// keep-alive timeout). Only connections already queued are taken: new
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
	fd      int // wattd's own copy of the socket, closed when run ends
	target  *net.TCPAddr
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
}

// rescueTick is how often a rescue looks at the queue, and so how long
// it takes to stop.
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
	fd, err := dupSocket(s.listeners[0])
	s.sockMu.Unlock()
	if err != nil {
		s.log.Debug("not relaying the connections queued on the slot's socket", zap.Error(err))
		return nil
	}
	r := &rescue{fd: fd, target: relayTarget(addr), log: s.log, sem: make(chan struct{}, maxRelays),
		stopped: make(chan struct{}), done: make(chan struct{})}
	r.dialer = net.Dialer{Timeout: relayDialTimeout, Control: r.bindOwn}
	go r.run()
	return r
}

// dupSocket returns a copy of f's descriptor. The rescue polls it and
// accepts only what poll says is there, by hand rather than through Go's
// poller: the socket's blocking mode belongs to the workers that share
// it (a Go worker's net.FileListener turns it blocking for a moment), and
// an accept that blocks could not be stopped.
func dupSocket(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	var dup int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		dup, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	return dup, serr
}

// relayTarget is the address a relay connects to: the port's, on the
// loopback address of its family when it listens on every address.
func relayTarget(addr *net.TCPAddr) *net.TCPAddr {
	ip := addr.IP
	if ip.IsUnspecified() {
		ip = net.IPv6loopback
		if ip4 := addr.IP.To4(); ip4 != nil {
			ip = net.IPv4(127, 0, 0, 1)
		}
	}
	return &net.TCPAddr{IP: ip, Port: addr.Port}
}

// bindOwn binds a relay's connection to the port, before it connects, to
// the target's address and a port of the kernel's choice, and records
// that address: a relay accepted back by the rescue is then known the
// moment it queues.
func (r *rescue) bindOwn(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if ip4 := r.target.IP.To4(); ip4 != nil {
			sa = &unix.SockaddrInet4{Addr: [4]byte(ip4)}
		} else {
			sa = &unix.SockaddrInet6{Addr: [16]byte(r.target.IP.To16())}
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
		r.own.Store(net.JoinHostPort(r.target.IP.String(), strconv.Itoa(port)), true)
	})
	if err != nil {
		return err
	}
	return serr
}

func (r *rescue) run() {
	defer close(r.done)
	defer unix.Close(r.fd)
	pfd := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}}
	for {
		select {
		case r.sem <- struct{}{}:
		case <-r.stopped:
			return
		}
		c, err := r.accept(pfd)
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
		go func() {
			defer func() { <-r.sem }()
			if err := r.relay(c); err != nil {
				r.log.Debug("could not relay a connection queued on the slot's socket", zap.Error(err))
			}
		}()
	}
}

// accept returns the next connection queued on the socket, or nil (with
// no error) after a tick without one, or once stopped.
func (r *rescue) accept(pfd []unix.PollFd) (*net.TCPConn, error) {
	select {
	case <-r.stopped:
		return nil, nil
	default:
	}
	n, err := unix.Poll(pfd, int(rescueTick/time.Millisecond))
	if err != nil && err != unix.EINTR {
		return nil, fmt.Errorf("poll: %w", err)
	}
	if n <= 0 || pfd[0].Revents&unix.POLLIN == 0 {
		return nil, nil
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
	uc, err := r.dialer.Dial("tcp", r.target.String())
	if err != nil {
		_ = c.SetLinger(0) // a reset: the client may try again at once
		return fmt.Errorf("connect to %s: %w", r.target, err)
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
// until they end) and logs how many there were.
// It does not wait for the rescue to let go of its copy of the socket
// (wait does, within a tick).
func (r *rescue) stop() {
	select {
	case <-r.stopped:
		return
	default:
	}
	close(r.stopped)
	if n := r.relayed.Load(); n > 0 {
		r.log.Info("relayed connections that were queued on the slot's socket while it had no worker", zap.Int64("connections", n))
	}
}

// wait returns once the rescue has closed its copy of the socket.
func (r *rescue) wait() { <-r.done }
