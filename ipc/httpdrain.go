package ipc

import (
	"context"
	"errors"
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
}

// Handler returns h wrapped so that, during a drain, every response says
// "Connection: close" and the quiet period starts over when it finishes.
func (d *HTTPDrainer) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.draining.Load() {
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
// closing the server's connections. Once the drain closed it, Accept
// returns http.ErrServerClosed, so http.Server.Serve returns that as it
// does after Shutdown.
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
	return c, err
}

// Close closes the listener once; http.Server.Shutdown closes it again.
func (l *drainListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
