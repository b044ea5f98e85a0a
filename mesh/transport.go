package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wattd/wattd/ipc"
)

// Tuning of the per-socket HTTP clients.
const (
	// idleConnTimeout is below Node's default keepAliveTimeout (5 s): the
	// client then drops an idle connection before the worker does, which
	// avoids the race where a request is written to a connection the worker
	// is closing (a POST cannot be retried then).
	idleConnTimeout = 4 * time.Second

	// maxIdlePerSocket bounds the idle keep-alive connections kept for one
	// worker socket; net/http's default of 2 would make concurrent callers
	// reconnect all the time.
	maxIdlePerSocket = 64

	// expectContinueTimeout is how long a request that says "Expect:
	// 100-continue" waits for the worker's interim 100 before its body is
	// sent anyway (for a worker that ignores Expect). Without it net/http
	// sends the body at once; through the mesh proxy that read of the
	// client's body makes the proxy's server send the client a 100 on the
	// app's behalf, even when the app then refuses the request (417, 413).
	expectContinueTimeout = time.Second

	// sweepEvery bounds how often membership changes are looked for, in case
	// a Resolver hands out a fresh table pointer on every call.
	sweepEvery = 100 * time.Millisecond
)

// Transport is an http.RoundTripper for the mesh. A request to
// http://<app>.plt.local goes to one of the app's worker sockets from the
// Resolver's table, never to the network. Other hosts go to Fallback.
//
// The zero value with a Resolver set is ready to use; a Transport must not be
// copied after first use.
//
// Routing: the endpoints of an app are used round-robin, starting with the
// first endpoint of the table for a new Transport. A request whose context has
// no earlier deadline gets the table's timeoutMs for its response head, and
// then for each wait for body data (timedBody). When a socket refuses the connection (the slot closed it), the next
// endpoint is tried, for any request. When a connection breaks after the
// request may have been sent, the next endpoint is tried only for a GET, HEAD
// or OPTIONS without a body. Each endpoint is tried at most once per request.
type Transport struct {
	Resolver Resolver

	// Fallback carries requests for hosts that are not *.plt.local. When nil
	// such requests fail with a "not a mesh host" error.
	Fallback http.RoundTripper

	sockets sync.Map // socket path → *http.Transport, one pool per worker socket
	rr      sync.Map // app name → *atomic.Uint64, the round-robin counter

	sweepMu sync.Mutex
	swept   atomic.Pointer[ipc.MeshTable] // the table the last sweep looked at
	sweptAt atomic.Int64                  // when, in Unix nanoseconds
}

// NewClient returns an http.Client that routes *.plt.local through a
// Transport on r. It sets no Client.Timeout: the table's timeoutMs is applied
// per request by the Transport, so it follows the table as it changes. Other
// hosts fail; set the Transport's Fallback to reach them.
func NewClient(r Resolver) *http.Client {
	return &http.Client{Transport: &Transport{Resolver: r}}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("mesh: request without a URL")
	}
	host := req.URL.Host
	if host == "" {
		host = req.Host
	}
	app, ok := AppOf(host)
	if !ok {
		if t.Fallback != nil {
			return t.Fallback.RoundTrip(req)
		}
		closeBody(req)
		return nil, fmt.Errorf("mesh: %q is not a mesh host (*.%s) and the transport has no fallback", host, Domain)
	}

	var table *ipc.MeshTable
	if t.Resolver != nil {
		table = t.Resolver.Table()
	}
	t.sweep(table)
	name, entry, err := lookup(table, app)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	eps := entry.Endpoints
	if len(eps) == 0 {
		closeBody(req)
		return noWorkerResponse(req, &noWorkerError{app: name, state: entry.State, reason: entry.Reason}), nil
	}

	ctx, dl := withMeshTimeout(req.Context(), table.TimeoutMs, name)

	hasBody := req.Body != nil && req.Body != http.NoBody
	var body *heldBody
	if hasBody {
		body = &heldBody{rc: req.Body}
	}
	// Only a request that is safe to repeat and has nothing to resend may
	// go to a second worker after the first one may have seen it.
	replayable := !hasBody && req.ContentLength == 0 && isIdempotent(req.Method)

	n := uint64(len(eps))
	start := t.next(name)
	var (
		lastErr  error
		lastSock string
		tried    int
		allDial  = true
	)
	for i := uint64(0); i < n; i++ {
		sock := eps[(start+i)%n]
		if seenBefore(eps, start, i, sock) {
			continue
		}
		tried++
		var rb io.ReadCloser
		if body != nil {
			body.rearm()
			rb = body
		}
		resp, err := t.socket(sock).RoundTrip(outgoing(ctx, req, host, rb))
		if err == nil {
			if body != nil {
				body.release()
			}
			return finish(ctx, req, resp, dl), nil
		}
		lastErr, lastSock = err, sock
		if ctx.Err() != nil {
			break // timed out or cancelled: another worker would not help
		}
		if isDialError(err) {
			if body == nil || !body.consumed() {
				continue
			}
			break
		}
		allDial = false
		if replayable && isConnLost(err) {
			continue
		}
		break
	}

	if body != nil {
		body.abandon()
	}
	ended := ctx.Err() != nil // read before dl.done, which cancels ctx
	if dl != nil {
		cause := context.Cause(ctx)
		dl.done()
		var te *timeoutError
		if errors.As(cause, &te) {
			return nil, te
		}
	}
	if ended {
		// The caller's own cancellation or deadline; not a worker's fault.
		return nil, fmt.Errorf("mesh: app %q: %w", name, lastErr)
	}
	if allDial {
		return nil, &noWorkerError{
			app:    name,
			state:  entry.State,
			reason: "no socket accepted a connection (" + strconv.Itoa(tried) + " tried)",
			err:    lastErr,
		}
	}
	if tried > 1 {
		return nil, fmt.Errorf("mesh: app %q: %d workers tried, the last at %s: %w", name, tried, lastSock, lastErr)
	}
	return nil, fmt.Errorf("mesh: app %q at %s: %w", name, lastSock, lastErr)
}

// CloseIdleConnections closes the idle keep-alive connections to every
// worker socket, and the Fallback's if it has such a method.
func (t *Transport) CloseIdleConnections() {
	t.sockets.Range(func(_, v any) bool {
		v.(*http.Transport).CloseIdleConnections()
		return true
	})
	if c, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// next returns the app's round-robin position and advances it.
func (t *Transport) next(app string) uint64 {
	v, ok := t.rr.Load(app)
	if !ok {
		v, _ = t.rr.LoadOrStore(app, new(atomic.Uint64))
	}
	return v.(*atomic.Uint64).Add(1) - 1
}

// socket returns the connection pool of one worker socket. A pool per socket
// (rather than one pool keyed by a made-up address) keeps the Host header the
// app's own and lets a departed socket's pool be dropped as a whole.
func (t *Transport) socket(path string) *http.Transport {
	if v, ok := t.sockets.Load(path); ok {
		return v.(*http.Transport)
	}
	tr := &http.Transport{
		DialContext:         dialSocket(path),
		DisableCompression:  true, // pass encodings through untouched; compressing over a Unix socket gains nothing
		MaxIdleConnsPerHost: maxIdlePerSocket,
		IdleConnTimeout:     idleConnTimeout,

		ExpectContinueTimeout: expectContinueTimeout,
	}
	v, loaded := t.sockets.LoadOrStore(path, tr)
	if loaded {
		tr.CloseIdleConnections() // lost the race; it never dialled
	}
	return v.(*http.Transport)
}

// dialSocket ignores the network address net/http asks for: the mesh host
// name resolves to nothing, the socket is the only destination.
func dialSocket(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return nil, &dialError{path: path, err: err}
		}
		return c, nil
	}
}

// sweep drops the pools of sockets that left the table, closing their idle
// connections. It runs lazily on the request path when the table pointer
// has changed, at most every sweepEvery, and never makes a request wait.
func (t *Transport) sweep(table *ipc.MeshTable) {
	if table == nil || t.swept.Load() == table {
		return
	}
	now := time.Now().UnixNano()
	if now-t.sweptAt.Load() < int64(sweepEvery) || !t.sweepMu.TryLock() {
		return
	}
	defer t.sweepMu.Unlock()
	live := make(map[string]struct{})
	for _, a := range table.Apps {
		for _, ep := range a.Endpoints {
			live[ep] = struct{}{}
		}
	}
	t.sockets.Range(func(k, v any) bool {
		if _, ok := live[k.(string)]; !ok {
			t.sockets.Delete(k)
			// Connections still in use finish normally; they are closed
			// when they come back idle and time out, or when the worker
			// drains them.
			v.(*http.Transport).CloseIdleConnections()
		}
		return true
	})
	t.swept.Store(table)
	t.sweptAt.Store(now)
}

// seenBefore reports whether sock was already tried at an earlier attempt, so
// a table listing a socket twice still gets each socket at most once.
func seenBefore(eps []string, start, i uint64, sock string) bool {
	n := uint64(len(eps))
	for j := uint64(0); j < i; j++ {
		if eps[(start+j)%n] == sock {
			return true
		}
	}
	return false
}

func isIdempotent(method string) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// outgoing is one attempt's copy of req: the caller's request is never
// modified (RoundTripper contract), and each attempt gets its own *Request
// because net/http tracks requests in flight by pointer.
func outgoing(ctx context.Context, req *http.Request, host string, body io.ReadCloser) *http.Request {
	out := req.WithContext(ctx)
	u := *req.URL
	u.Scheme, u.Host = "http", host // the socket speaks plain HTTP whatever the caller wrote
	out.URL = &u
	if req.Host == "" || req.Host == req.URL.Host {
		out.Host = host
	} // else the Host the caller set, as net/http's transport sends it
	if body != nil {
		out.Body = body
	}
	return out
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// noWorkerResponse is what callers get for an app that has no ready worker:
// a response every caller (a Go app, the proxy, ctl inject) can show as is.
func noWorkerResponse(req *http.Request, e *noWorkerError) *http.Response {
	msg := e.Error() + "\n"
	return &http.Response{
		Status:     "503 Service Unavailable",
		StatusCode: http.StatusServiceUnavailable,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":   {"text/plain; charset=utf-8"},
			"Content-Length": {strconv.Itoa(len(msg))},
			"X-Wattd-Mesh":   {"no-worker"},
		},
		Body:          io.NopCloser(strings.NewReader(msg)),
		ContentLength: int64(len(msg)),
		Request:       req,
	}
}

// deadline is the table's per-request timeout. It is a timer that cancels
// the context with a timeoutError rather than a context deadline, so that it
// can be stopped once a connection is upgraded (a 101 stream is not a
// request that should time out).
type deadline struct {
	timer  *time.Timer
	cancel context.CancelCauseFunc
	once   sync.Once
	app    string
	after  time.Duration
}

// toBody turns the deadline, once the response head is in, into the bound
// of each wait for body data (see timedBody): the timer is stopped, and a
// Read arms it while it waits.
func (d *deadline) toBody() {
	d.timer.Stop()
	te := &timeoutError{app: d.app, after: d.after, body: true}
	d.timer = time.AfterFunc(d.after, func() { d.cancel(te) })
	d.timer.Stop()
}

// done ends the request: stops the timer and releases the context.
func (d *deadline) done() {
	d.once.Do(func() {
		d.timer.Stop()
		d.cancel(nil)
	})
}

// withMeshTimeout applies timeoutMs unless the caller's own deadline comes
// first; dl is nil when nothing was applied.
func withMeshTimeout(parent context.Context, timeoutMs int64, app string) (ctx context.Context, dl *deadline) {
	if timeoutMs <= 0 {
		return parent, nil
	}
	after := time.Duration(timeoutMs) * time.Millisecond
	if d, ok := parent.Deadline(); ok && time.Until(d) <= after {
		return parent, nil
	}
	ctx, cancel := context.WithCancelCause(parent)
	te := &timeoutError{app: app, after: after}
	dl = &deadline{cancel: cancel, app: app, after: after}
	dl.timer = time.AfterFunc(after, func() { cancel(te) })
	return ctx, dl
}

// finish hands the response to the caller. With a timeout in force, the
// context must stay alive until the body is consumed, so the body carries
// the end of the request.
func finish(ctx context.Context, req *http.Request, resp *http.Response, dl *deadline) *http.Response {
	resp.Request = req
	if dl == nil {
		return resp
	}
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		dl.timer.Stop()
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			resp.Body = &upgradedBody{ReadWriteCloser: rwc, dl: dl}
		} else {
			resp.Body = &timedBody{rc: resp.Body, ctx: ctx, dl: dl}
		}
	case resp.Body == nil || resp.Body == http.NoBody:
		dl.done()
	default:
		dl.toBody()
		resp.Body = &timedBody{rc: resp.Body, ctx: ctx, dl: dl, read: true}
	}
	return resp
}

// timedBody ends the request's timeout at EOF or Close. A read cut by the
// timeout reports the timeoutError, not whatever the broken connection said.
// With read set (a response body), the timeout bounds each wait for data,
// as Watt's applicationTimeout ends at the response head, and as undici's
// bodyTimeout bounds a body's silences: the clock runs while a Read
// waits, so a stream that keeps moving (an SSE, a long download) runs as
// long as it moves, and a body the caller has not read yet is not stalled.
type timedBody struct {
	rc   io.ReadCloser
	ctx  context.Context
	dl   *deadline
	read bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	if b.read {
		b.dl.timer.Reset(b.dl.after)
	}
	n, err := b.rc.Read(p)
	if b.read {
		b.dl.timer.Stop()
	}
	switch {
	case err == io.EOF:
		b.dl.done()
	case err != nil:
		var te *timeoutError
		if errors.As(context.Cause(b.ctx), &te) {
			err = te
		}
	}
	return n, err
}

func (b *timedBody) Close() error {
	err := b.rc.Close()
	b.dl.done()
	return err
}

// upgradedBody keeps the writable body of a 101 response writable.
type upgradedBody struct {
	io.ReadWriteCloser
	dl *deadline
}

func (b *upgradedBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.dl.done()
	return err
}

// heldBody lets a request body go to another worker after a failed dial.
// net/http closes a request's body when it cannot get a connection, though
// nothing was read; heldBody defers that close until the request's outcome
// is known, and tracks whether any byte was consumed (after which the body
// cannot be resent).
type heldBody struct {
	rc   io.ReadCloser
	read atomic.Bool

	mu    sync.Mutex
	asked bool // the current attempt's transport closed the body
	final bool // no more attempts: Close goes straight through

	once     sync.Once
	closeErr error
}

func (b *heldBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.read.Store(true)
	}
	return n, err
}

func (b *heldBody) Close() error {
	b.mu.Lock()
	b.asked = true
	pass := b.final || b.read.Load()
	b.mu.Unlock()
	if pass {
		return b.closeNow()
	}
	return nil
}

func (b *heldBody) consumed() bool { return b.read.Load() }

// rearm starts an attempt. The previous attempt has returned, and net/http
// does not touch a body after a failed dial.
func (b *heldBody) rearm() {
	b.mu.Lock()
	b.asked = false
	b.mu.Unlock()
}

// release marks the attempt that got a response as the last one: its
// transport may still be sending the body and closes it when done.
func (b *heldBody) release() {
	b.mu.Lock()
	b.final = true
	asked := b.asked
	b.mu.Unlock()
	if asked {
		b.closeNow()
	}
}

// abandon closes the body after the request failed for good; net/http has
// finished with it by then.
func (b *heldBody) abandon() {
	b.mu.Lock()
	b.final = true
	b.mu.Unlock()
	b.closeNow()
}

func (b *heldBody) closeNow() error {
	b.once.Do(func() { b.closeErr = b.rc.Close() })
	return b.closeErr
}
