package supervisor

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/mesh"
	"github.com/wattd/wattd/supervisor/fdlimit"
	"github.com/wattd/wattd/supervisor/sockowner"
)

// The mesh proxy serves *.plt.local to clients that cannot dial a worker's
// socket themselves. It must be reachable by the workers of this runtime
// (and by wattd's own user and root) and by nobody else, or it would hand
// every local user the internal apps that the 0700 mesh directory protects.
// It listens twice:
//
//   - on proxy.sock in the runtime directory, which only wattd's user can
//     enter: the Node preload uses this one, with no credentials;
//   - on a loopback TCP port, for HTTP clients that only take a proxy URL
//     (curl, Python, Go's ProxyFromEnvironment). A connection from a socket
//     of another user is closed as soon as it is accepted (the kernel tells
//     who owns the other end, see sockowner), and every request must carry
//     a per-runtime token as Basic Proxy-Authorization; workers get it
//     inside the URL's user information (WATTD_MESH_PROXY), which clients
//     turn into that header by themselves.
//
// Both listeners are bounded so that no client load can take the
// descriptors supervision needs: a cap on open connections, timeouts for
// idle and stalled ones, and no accept at all while wattd is within a
// reserve of its descriptor limit.

// proxyLimits bounds the mesh proxy's server.
type proxyLimits struct {
	// headerTimeout bounds the wait for a request's header, including the
	// first one: a connection that sends nothing is closed after it.
	headerTimeout time.Duration
	// idleTimeout closes a keep-alive connection idle this long. Clients
	// close theirs first (the Node preload after 4 s, Go's mesh transport
	// likewise), which avoids racing the close with a new request.
	idleTimeout time.Duration
	// stall bounds a request body read or response write that makes no
	// progress; see mesh.Proxy.Stall.
	stall time.Duration
	// maxHeaderBytes bounds a request's header.
	maxHeaderBytes int
	// maxConns caps the open connections of each listener.
	maxConns int
}

var defaultProxyLimits = proxyLimits{
	headerTimeout:  5 * time.Second,
	idleTimeout:    30 * time.Second,
	stall:          30 * time.Second,
	maxHeaderBytes: 64 << 10,
	maxConns:       1024,
}

// Descriptors kept free for supervision: a base for the daemon's own files
// (admin connections, /proc reads, cgroup files) and, per worker slot, room
// for a replacement worker started beside the current one (control
// socketpair, output pipes, /dev/null, pidfd, the sockets it inherits).
const (
	fdReserveBase    = 64
	fdReservePerSlot = 16
)

// warnLowFDLimit says once, at start, that the open files limit is below
// the descriptors kept for supervising this many worker slots: each worker
// start then may fail with "too many open files", a failure that would
// otherwise only show worker by worker.
func (rt *Runtime) warnLowFDLimit() {
	lim := fdlimit.Soft()
	need := fdReserveBase + fdReservePerSlot*rt.slotCount()
	if lim == 0 || lim >= uint64(need) {
		return
	}
	rt.log.Warn("the open files limit is low for this many workers: starting or restarting one may fail with \"too many open files\"; raise the hard limit (LimitNOFILE= under systemd, ulimit -Hn, docker run --ulimit nofile=)",
		zap.Uint64("limit", lim), zap.Int("workers", rt.slotCount()), zap.Int("wanted", need))
}

// meshProxy is the runtime's mesh proxy.
type meshProxy struct {
	token  string
	url    string // http://wattd:TOKEN@127.0.0.1:PORT
	socket string // path of proxy.sock
	tcp    *proxyListener
	unix   *proxyListener
	// peerUID: TCP connections from other users are refused at accept;
	// false where sock_diag is not available.
	peerUID bool
}

// proxyListener is one of the proxy's listeners and its server.
type proxyListener struct {
	name string // "tcp" or "unix", for logs
	raw  net.Listener
	srv  *http.Server // set before Run's loop starts; read only after it
	// ln is set by serve while the admin API may already read it.
	ln atomic.Pointer[fdlimit.Listener]

	lastRefusalLog atomic.Int64 // Unix nanoseconds
}

// openProxy opens the mesh proxy's listeners; workers learn their addresses
// from WATTD_MESH_PROXY, WATTD_MESH_PROXY_SOCKET and the mesh table.
func (rt *Runtime) openProxy() error {
	p := &rt.mesh.proxy
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("mesh proxy: token: %w", err)
	}
	p.token = base64.RawURLEncoding.EncodeToString(b[:])

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("mesh proxy: %w", err)
	}
	p.tcp = &proxyListener{name: "tcp", raw: tcp}
	p.url = mesh.ProxyURL(tcp.Addr().String(), p.token)
	if err := checkPeerUID(); err != nil {
		rt.log.Warn("mesh proxy: cannot tell who connects over TCP; its token alone keeps other users out", zap.Error(err))
	} else {
		p.peerUID = true
	}

	path := rt.dir.ProxySocket()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("mesh proxy: remove stale %s: %w", path, err)
	}
	unix, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("mesh proxy: %w", err)
	}
	p.unix = &proxyListener{name: "unix", raw: unix}
	p.socket = path
	// The directory already keeps others out; the mode says the same to
	// anyone who looks at the socket alone.
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("mesh proxy: chmod %s: %w", path, err)
	}
	return nil
}

// serveProxy serves the mesh proxy until closeProxy.
func (rt *Runtime) serveProxy() {
	rt.serveProxyWith(defaultProxyLimits)
}

func (rt *Runtime) serveProxyWith(lim proxyLimits) {
	p := &rt.mesh.proxy
	if p.tcp == nil || p.unix == nil {
		return
	}
	log := rt.log.Named("mesh-proxy")
	reserve := fdReserveBase + fdReservePerSlot*rt.slotCount()
	fdlimit.SetReserve(reserve) // also what the fronting forwarders keep
	maxConns := proxyMaxConns(lim.maxConns, fdlimit.Soft(), reserve)
	handler := &mesh.Proxy{Transport: &mesh.Transport{Resolver: rt}, Stall: lim.stall}
	for _, pl := range []*proxyListener{p.tcp, p.unix} {
		var h http.Handler = handler
		var admit func(net.Conn) error
		if pl == p.tcp {
			h = mesh.ProxyAuth(p.token, handler)
			if p.peerUID {
				admit = admitOwnUser
			}
		}
		pl.serve(h, lim, maxConns, reserve, admit, log)
	}
	log.Debug("mesh proxy serving",
		zap.String("tcp", p.tcp.raw.Addr().String()), zap.String("socket", p.socket),
		zap.Int("maxConnsEach", maxConns), zap.Int("fdReserve", reserve), zap.Uint64("fdLimit", fdlimit.Soft()))
}

// proxyMaxConns is the cap of each listener: at most want, and at most a
// quarter of the descriptors outside the reserve, since each proxied
// connection may hold a second one to a worker and there are two listeners.
func proxyMaxConns(want int, limit uint64, reserve int) int {
	if limit == 0 || limit > 1<<30 {
		return want
	}
	budget := (int(limit) - reserve) / 4
	return max(1, min(want, budget))
}

func (pl *proxyListener) serve(h http.Handler, lim proxyLimits, maxConns, reserve int, admit func(net.Conn) error, log *zap.Logger) {
	ln := &fdlimit.Listener{
		Listener: pl.raw,
		Max:      maxConns,
		Reserve:  reserve,
		Admit:    admit,
		OnRefuse: func(reason error) { pl.refused(reason, log) },
	}
	pl.ln.Store(ln)
	pl.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.headerTimeout,
		IdleTimeout:       lim.idleTimeout,
		MaxHeaderBytes:    lim.maxHeaderBytes,
		ErrorLog:          zap.NewStdLog(log),
		ConnContext:       mesh.ConnContext, // the stall limit watches each connection's send queue
	}
	go func() {
		if err := pl.srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("mesh proxy stopped", zap.String("listener", pl.name), zap.Error(err))
		}
	}()
}

// admitOwnUser admits a TCP connection whose other end belongs to wattd's
// user or root, the users that can reach the proxy's socket and the mesh.
func admitOwnUser(c net.Conn) error {
	uid, err := sockowner.PeerUID(c)
	if err != nil {
		return err
	}
	if self := uint32(os.Geteuid()); uid != self && uid != 0 {
		return fmt.Errorf("connection from uid %d: only wattd's user (uid %d) and root may use the mesh proxy", uid, self)
	}
	return nil
}

// checkPeerUID tells whether sockowner works here (it needs the kernel's
// inet_diag support), on a loopback connection to itself.
func checkPeerUID() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	uid, err := sockowner.PeerUID(c) // the other end is ln's accepted socket: ours
	if err != nil {
		return err
	}
	if self := uint32(os.Geteuid()); uid != self {
		return fmt.Errorf("sock_diag says our own socket belongs to uid %d, not %d", uid, self)
	}
	return nil
}

// refusalLogEvery bounds the log lines about refused connections: under a
// flood, one line per interval with the running total says enough.
const refusalLogEvery = 10 * time.Second

func (pl *proxyListener) refused(reason error, log *zap.Logger) {
	now := time.Now().UnixNano()
	last := pl.lastRefusalLog.Load()
	if now-last < int64(refusalLogEvery) || !pl.lastRefusalLog.CompareAndSwap(last, now) {
		return
	}
	ln := pl.ln.Load()
	log.Warn("mesh proxy refusing connections", zap.String("listener", pl.name), zap.String("reason", reason.Error()),
		zap.Int("open", ln.Open()), zap.Int("max", ln.Max), zap.Uint64("refusedTotal", ln.Refused()))
}

func (rt *Runtime) closeProxy() {
	p := &rt.mesh.proxy
	for _, pl := range []*proxyListener{p.tcp, p.unix} {
		switch {
		case pl == nil:
		case pl.srv != nil:
			pl.srv.Close()
		case pl.raw != nil:
			pl.raw.Close()
		}
	}
	if p.socket != "" {
		rt.dir.RemoveSocket(p.socket)
	}
}

// MeshProxyURL is the mesh proxy's TCP address, with its token.
func (rt *Runtime) MeshProxyURL() string { return rt.mesh.proxy.url }

// proxyStatus reports the proxy's connections for the admin API.
func (rt *Runtime) proxyStatus() *ProxyStatus {
	p := &rt.mesh.proxy
	if p.tcp == nil || p.unix == nil {
		return nil
	}
	tcp, unix := p.tcp.ln.Load(), p.unix.ln.Load()
	if tcp == nil || unix == nil {
		return nil
	}
	return &ProxyStatus{
		Open:     tcp.Open() + unix.Open(),
		Refused:  tcp.Refused() + unix.Refused(),
		MaxConns: tcp.Max,
	}
}
