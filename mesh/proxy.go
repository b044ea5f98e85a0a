package mesh

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wattd/wattd/ipc"
)

// Proxy is the HTTP forward proxy wattd serves for runtimes without a mesh
// client, and for clients that fall back to it. It accepts absolute-form
// requests (GET http://api.plt.local/x) and origin-form ones with
// Host: api.plt.local, and forwards them through Transport. It serves only
// *.plt.local: it must not become an open proxy to the network. Who may use
// it is decided by where it listens (see ProxyAuth).
type Proxy struct {
	Transport *Transport

	// Stall, when positive, bounds how long reading a piece of the request
	// body or writing a piece of the response may make no progress, so a
	// client that stops reading or sending cannot hold a connection (and
	// the upstream one) for ever. Long streams that keep moving are fine.
	Stall time.Duration

	// Log, when set, receives one line per failed request.
	Log func(msg string, kv ...any)
}

// ProxyUser is the user name in the mesh proxy's URL. Any name is accepted;
// only the password (the token) is checked.
const ProxyUser = "wattd"

// ProxyURL is the address of a mesh proxy on a TCP address with token as the
// password: http://wattd:TOKEN@HOST:PORT. HTTP clients that take a proxy URL
// (curl, Python, Go, undici) send the user information as Basic
// Proxy-Authorization on every request.
func ProxyURL(addr, token string) string {
	return (&url.URL{Scheme: "http", User: url.UserPassword(ProxyUser, token), Host: addr}).String()
}

// ProxyAuth serves next only to requests whose Proxy-Authorization is Basic
// with token as the password; others get 407 and their connection is
// closed. The comparison takes the same time wherever a guess differs.
func ProxyAuth(token string, next http.Handler) http.Handler {
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !proxyAuthorized(r.Header.Get("Proxy-Authorization"), want) {
			w.Header().Set("Proxy-Authenticate", `Basic realm="wattd mesh"`)
			w.Header().Set("Connection", "close")
			http.Error(w, "the wattd mesh proxy needs the credentials of $"+ipc.EnvMeshProxy+" (http://user:token@host:port): only the workers of this runtime have them", http.StatusProxyAuthRequired)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func proxyAuthorized(h string, want []byte) bool {
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return false
	}
	_, pass, ok := strings.Cut(string(raw), ":")
	return ok && len(want) > 0 && subtle.ConstantTimeCompare([]byte(pass), want) == 1
}

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1 (plus the
// legacy Proxy-Connection): they describe one connection and must not be
// forwarded to the next.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer", // trailers themselves are forwarded; this declares them per hop
	"Transfer-Encoding",
	"Upgrade",
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	if p.Stall > 0 {
		// Also replaces the deadline the previous request on this
		// connection left behind.
		_ = rc.SetWriteDeadline(time.Now().Add(p.Stall))
		// net/http reads what is left of an unread body after the
		// handler, so that the connection can serve another request; a
		// client that announced a body and sends nothing must not hold
		// the connection there for ever.
		defer func() { _ = rc.SetReadDeadline(time.Now().Add(p.Stall)) }()
	}
	if r.Method == http.MethodConnect {
		http.Error(w, "the wattd mesh proxy does not tunnel (CONNECT); send plain http://<app>."+Domain+" requests", http.StatusMethodNotAllowed)
		return
	}
	host := r.URL.Host
	if host == "" {
		host = r.Host
	}
	app, ok := AppOf(host)
	if !ok {
		http.Error(w, fmt.Sprintf("the wattd mesh proxy serves only *.%s hosts, not %q", Domain, host), http.StatusForbidden)
		return
	}
	if r.URL.Scheme != "" && r.URL.Scheme != "http" {
		http.Error(w, fmt.Sprintf("the wattd mesh proxy speaks plain http, not %s", r.URL.Scheme), http.StatusBadRequest)
		return
	}
	if p.Transport == nil {
		http.Error(w, "the wattd mesh proxy has no transport", http.StatusInternalServerError)
		return
	}

	body := p.stallBody(w, r.Body)
	out := (&http.Request{
		Method: r.Method,
		URL: &url.URL{
			Scheme:     "http",
			Host:       host,
			Path:       r.URL.Path,
			RawPath:    r.URL.RawPath,
			RawQuery:   r.URL.RawQuery,
			ForceQuery: r.URL.ForceQuery,
		},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.Header.Clone(),
		Body:          body,
		ContentLength: r.ContentLength,
		Host:          host,
		// The server fills r.Trailer's values once the body is read, which
		// is just before net/http writes them out after the body.
		Trailer: r.Trailer,
		// Not ended when the client stops sending: net/http cancels
		// r.Context() as soon as it reads the end of the client's input,
		// and a client that half-closes once its request is sent
		// (socat, nc, an HTTP/1.0 client) still reads the answer, which
		// the app may already be acting on (a POST). A client that is
		// really gone is found by the write of the answer; the app's
		// time is bounded by applicationTimeout.
	}).WithContext(context.WithoutCancel(r.Context()))
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	removeHopHeaders(out.Header)
	addForwardedFor(out.Header, r.RemoteAddr)

	resp, err := p.Transport.RoundTrip(out)
	if err != nil {
		if sr, ok := body.(*stallReader); ok && sr.stalled.Load() {
			// The client stopped sending its body; the read timeout
			// also cancelled the request. Nobody waits for an answer:
			// drop the connection.
			p.log("mesh proxy: request body stalled", "app", app, "after", p.Stall)
			panic(http.ErrAbortHandler)
		}
		p.fail(w, r, app, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Upgrade was stripped from the request, so a 101 is a confused
		// worker; relaying it would need a tunnel this proxy does not do.
		p.fail(w, r, app, fmt.Errorf("mesh proxy: app %q switched protocols, which the proxy does not relay", app))
		return
	}

	removeHopHeaders(resp.Header)
	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	if _, ok := h["Content-Type"]; !ok {
		// The app's headers as it sent them: without this, net/http
		// would add a Content-Type it guessed from the body.
		h["Content-Type"] = nil
	}
	w.WriteHeader(resp.StatusCode)

	// A body of unknown length is usually a stream (SSE, chunked progress):
	// flush each piece as it comes, as the worker sent it.
	// The head goes at once: an SSE client sees the stream open before its
	// first event.
	stream := resp.ContentLength < 0
	if stream {
		if err := rc.Flush(); err != nil {
			return
		}
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	if p.Stall > 0 {
		if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
			defer watchSendQueue(c, rc, p.Stall)()
		}
	}
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if p.Stall > 0 {
				_ = rc.SetWriteDeadline(time.Now().Add(p.Stall))
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client went away; closing resp.Body ends the upstream request
			}
			if stream {
				if err := rc.Flush(); err != nil {
					return
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			p.log("mesh proxy: response body cut", "app", app, "err", rerr)
			// The status is already sent; abort the connection so the
			// client sees a broken response rather than a short one.
			panic(http.ErrAbortHandler)
		}
	}
	for k, vv := range resp.Trailer {
		for _, v := range vv {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
}

// stallBody gives each read of the request body Stall to make progress.
func (p *Proxy) stallBody(w http.ResponseWriter, b io.ReadCloser) io.ReadCloser {
	if p.Stall <= 0 || b == nil || b == http.NoBody {
		return b
	}
	return &stallReader{rc: b, ctl: http.NewResponseController(w), stall: p.Stall}
}

type stallReader struct {
	rc      io.ReadCloser
	ctl     *http.ResponseController
	stall   time.Duration
	eof     atomic.Bool // the body was read to its end
	stalled atomic.Bool // a Read ran into the stall deadline
}

func (s *stallReader) Read(b []byte) (int, error) {
	if s.eof.Load() {
		// net/http's transport reads once more after the announced
		// length to check for excess; by then the server may have closed
		// the body (it does when the response starts), which would turn
		// that check into a failed upload.
		return 0, io.EOF
	}
	_ = s.ctl.SetReadDeadline(time.Now().Add(s.stall))
	n, err := s.rc.Read(b)
	switch {
	case err == io.EOF:
		s.eof.Store(true)
		// Once the body is read, net/http reads on in the background to
		// notice the client leaving; that read must not time out, or the
		// request would be cancelled while its response still streams.
		_ = s.ctl.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.stalled.Store(true)
	}
	return n, err
}

// Close of a body not read to its end reads the rest (net/http does, to
// keep the connection), so that gets a deadline too: none at all after a
// stall.
func (s *stallReader) Close() error {
	switch {
	case s.stalled.Load():
		_ = s.ctl.SetReadDeadline(time.Now())
	case !s.eof.Load():
		_ = s.ctl.SetReadDeadline(time.Now().Add(s.stall))
	}
	return s.rc.Close()
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// fail answers a request the Transport could not complete.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, app string, err error) {
	code := http.StatusBadGateway // unknown app and other failures
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, ErrNoWorker):
		code = http.StatusServiceUnavailable
		w.Header().Set("X-Wattd-Mesh", "no-worker")
	}
	p.log("mesh proxy: request failed", "app", app, "status", code, "err", err)
	http.Error(w, err.Error(), code)
}

func (p *Proxy) log(msg string, kv ...any) {
	if p.Log != nil {
		p.Log(msg, kv...)
	}
}

// removeHopHeaders deletes the hop-by-hop headers, including those the
// Connection header names.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// addForwardedFor appends the client's address to X-Forwarded-For, keeping
// what earlier proxies recorded.
func addForwardedFor(h http.Header, remoteAddr string) {
	ip, _, err := net.SplitHostPort(remoteAddr)
	if err != nil || ip == "" {
		return // not an IP peer (a Unix socket): nothing meaningful to add
	}
	if prior := h.Values("X-Forwarded-For"); len(prior) > 0 {
		ip = strings.Join(prior, ", ") + ", " + ip
	}
	h.Set("X-Forwarded-For", ip)
}

// watchSendQueue keeps moving the write deadline of a response to c
// while the client reads, until the function it returns is called. A
// write to a socket whose send buffer is full blocks until the kernel
// wakes the writer, which it does only once a large share of the buffer
// has drained (a third for TCP, whose loopback buffers grow to megabytes):
// a client reading slowly but steadily would see one write outlast the
// stall limit. So the queue of unsent bytes is looked at four times per
// limit, and as long as it shrinks the client is reading.
func watchSendQueue(c net.Conn, rc *http.ResponseController, stall time.Duration) (stop func()) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	queued := func() (int, bool) {
		n, qerr := -1, error(nil)
		if err := raw.Control(func(fd uintptr) { n, qerr = unsentBytes(fd) }); err != nil || qerr != nil {
			return 0, false
		}
		return n, true
	}
	last, ok := queued()
	if !ok {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(stall / 4)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			n, ok := queued()
			if !ok {
				return
			}
			if n < last {
				_ = rc.SetWriteDeadline(time.Now().Add(stall))
			}
			last = n
		}
	}()
	return func() {
		close(done)
		<-exited // the handler's ResponseWriter is not to be touched after it returns
	}
}

type connKey struct{}

// ConnContext is the ConnContext of an http.Server that serves a Proxy:
// it lets the proxy see each connection's send queue (see Proxy.Stall).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}
