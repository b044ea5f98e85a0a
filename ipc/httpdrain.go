package ipc

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DrainQuiet is how long a drain waits, at most, for a worker's idle
// keep-alive connections to stay quiet before it closes them.
//
// A keep-alive client that has just had a response may be sending its next
// request at the very moment the server finds the connection idle; closing
// it then loses that request, and http.Server.Shutdown does exactly that.
// So a drain first stops accepting and answers every request with
// "Connection: close", and closes idle connections only once no response has
// finished for the quiet period: every idle connection has then been idle
// at least that long, and a client that was about to send has sent.
const DrainQuiet = time.Second

// drainTimeoutDefault is used when wattd sent no timeout: its default grace.
const drainTimeoutDefault = 10 * time.Second

// HTTPDrainer drains net/http servers the way the worker protocol asks (see
// docs/worker-protocol.md). Wrap the handler with Handler and each listener
// with Listener before serving, then call Drain when Control.Drain closes:
//
//	var d ipc.HTTPDrainer
//	srv := &http.Server{Handler: d.Handler(mux)}
//	go srv.Serve(d.Listener(l))
//	…
//	<-ctl.Drain
//	d.Drain(context.Background(), ctl.DrainTimeout(), srv)
//	ctl.Drained()
//
// Outside a drain the handler costs one atomic load per request. The zero
// value is ready to use; an HTTPDrainer drains once.
type HTTPDrainer struct {
	draining atomic.Bool
	lastDone atomic.Int64 // unix ns when a response last finished during the drain

	mu        sync.Mutex // guards listeners
	listeners []*drainListener

	// Shed: the remote addresses of the connections the wrapped listeners
	// accepted, while they are open, and of those the ones a shed is to
	// end after their next response.
	shedding  atomic.Bool
	connMu    sync.Mutex
	open      map[string]struct{}
	toShed    map[string]time.Time // the time from which each ends
	shedTimer *time.Timer
}

// ShedWait is how long a shed waits for the connections it ends to carry
// a request: one idle longer than that stays.
const ShedWait = 10 * time.Second

// ShedSpread is the time over which a shed spreads the ends of the
// connections: all at once, half the clients would land together on a
// worker that has just started, which serves its first requests slowly;
// longer, the worker that sheds carries them, and loses them all should it
// die meanwhile.
const ShedSpread = 250 * time.Millisecond

// Shed ends each connection that the wrapped listeners accepted and that
// is open now after its first response that begins a random time within
// ShedSpread from now or later ("Connection: close"), as wattd asks
// (Control.OnShed) once a worker's slot serves again after new connections
// were steered around it: the clients connect again, and the kernel
// spreads them over every worker's socket. An idle connection is not
// closed (its client may be sending on it); one idle for ShedWait stays.
func (d *HTTPDrainer) Shed() {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if len(d.open) == 0 {
		return
	}
	now := time.Now()
	d.toShed = make(map[string]time.Time, len(d.open))
	for addr := range d.open {
		d.toShed[addr] = now.Add(rand.N(ShedSpread))
	}
	d.shedding.Store(true)
	if d.shedTimer != nil {
		d.shedTimer.Stop()
	}
	d.shedTimer = time.AfterFunc(ShedWait, func() {
		d.connMu.Lock()
		d.toShed = nil
		d.shedding.Store(false)
		d.connMu.Unlock()
	})
}

// shedOne reports whether the connection from addr is one the shed ends.
func (d *HTTPDrainer) shedOne(addr string) bool {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if from, ok := d.toShed[addr]; !ok || time.Now().Before(from) {
		return false
	}
	d.unshedLocked(addr)
	return true
}

// unshedLocked takes addr out of the shed, which ends with its last
// connection. Called with connMu held.
func (d *HTTPDrainer) unshedLocked(addr string) {
	if d.toShed == nil {
		return
	}
	delete(d.toShed, addr)
	if len(d.toShed) == 0 {
		d.shedding.Store(false)
	}
}

// Open returns the number of connections the wrapped listeners accepted
// that are open now (for StatsOptions.ActiveConns).
func (d *HTTPDrainer) Open() int {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	return len(d.open)
}

func (d *HTTPDrainer) track(addr string, open bool) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if open {
		if d.open == nil {
			d.open = map[string]struct{}{}
		}
		d.open[addr] = struct{}{}
		return
	}
	delete(d.open, addr)
	d.unshedLocked(addr)
}

// Handler returns h wrapped so that, during a drain, every response says
// "Connection: close" and the quiet period starts over when it finishes,
// and during a shed, the next response of each connection it ends.
func (d *HTTPDrainer) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.draining.Load() {
			if d.shedding.Load() && d.shedOne(r.RemoteAddr) {
				w.Header().Set("Connection", "close")
			}
			h.ServeHTTP(w, r)
			if d.draining.Load() { // the drain began meanwhile
				d.lastDone.Store(time.Now().UnixNano())
			}
			return
		}
		// net/http closes the connection after a response that says so.
		w.Header().Set("Connection", "close")
		h.ServeHTTP(w, r)
		d.lastDone.Store(time.Now().UnixNano())
	})
}

// Listener returns l wrapped so that Drain can stop accepting on it without
// closing the server's connections, and Shed knows the connections it
// accepted. Once the drain closed it, Accept returns http.ErrServerClosed,
// so http.Server.Serve returns that as it does after Shutdown.
func (d *HTTPDrainer) Listener(l net.Listener) net.Listener {
	dl := &drainListener{Listener: l, d: d}
	d.mu.Lock()
	d.listeners = append(d.listeners, dl)
	d.mu.Unlock()
	return dl
}

// Drain stops accepting on the wrapped listeners, waits until no response
// has finished for the quiet period (min(DrainQuiet, timeout/4), and never
// past half of timeout), then shuts the servers down: the idle connections
// are closed and the requests still running finish, each with "Connection:
// close". The whole drain takes at most timeout (zero means wattd's default
// grace, 10 s); it returns ctx's error or context.DeadlineExceeded when
// requests were still running then, and the first other Shutdown error.
func (d *HTTPDrainer) Drain(ctx context.Context, timeout time.Duration, servers ...*http.Server) error {
	if timeout <= 0 {
		timeout = drainTimeoutDefault
	}
	start := time.Now()
	d.lastDone.Store(start.UnixNano())
	d.draining.Store(true)
	d.mu.Lock()
	ls := d.listeners
	d.mu.Unlock()
	var errs []error
	for _, l := range ls {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}

	quiet := min(DrainQuiet, timeout/4)
	until := start.Add(timeout / 2)
	for {
		wait := time.Until(time.Unix(0, d.lastDone.Load()).Add(quiet))
		if wait <= 0 || !time.Now().Before(until) {
			break
		}
		t := time.NewTimer(min(wait, time.Until(until)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}

	sctx, cancel := context.WithDeadline(ctx, start.Add(timeout))
	defer cancel()
	res := make(chan error, len(servers))
	for _, s := range servers {
		go func() { res <- s.Shutdown(sctx) }()
	}
	for range servers {
		if err := <-res; err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// drainListener is a listener that Drain closes.
type drainListener struct {
	net.Listener
	d    *HTTPDrainer
	once sync.Once
	err  error
}

func (l *drainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil && l.d.draining.Load() {
		return nil, http.ErrServerClosed
	}
	if err != nil {
		return c, err
	}
	ra, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return c, nil // the mesh's Unix sockets: a shed leaves them alone
	}
	addr := ra.String()
	l.d.track(addr, true)
	return &shedConn{Conn: c, d: l.d, addr: addr}, nil
}

// shedConn is an accepted connection that Shed knows of until it closes.
// It passes on what net/http looks for in a *net.TCPConn: CloseWrite (a
// graceful end after "Connection: close") and ReadFrom (sendfile).
type shedConn struct {
	net.Conn
	d    *HTTPDrainer
	addr string
	once sync.Once
}

func (c *shedConn) Close() error {
	c.once.Do(func() { c.d.track(c.addr, false) })
	return c.Conn.Close()
}

func (c *shedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *shedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// Close closes the listener once; http.Server.Shutdown closes it again.
func (l *drainListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
