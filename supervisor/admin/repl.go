package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/net/websocket"

	"github.com/wattd/wattd/supervisor"
)

// REPLOpener is a Backend that opens REPLs inside workers: GET
// /v1/apps/{id}/repl (`wattd ctl repl`) and Watt's
// /api/v1/applications/{id}/repl (`wattpm repl`); without it they answer
// 501.
type REPLOpener interface {
	// OpenREPL starts a REPL in worker (-1: the lowest ready one) of app
	// id and returns the connection to it, and the worker's index.
	OpenREPL(ctx context.Context, id string, worker int, o supervisor.REPLOptions) (net.Conn, int, error)
}

var _ REPLOpener = (*supervisor.Runtime)(nil)

// REPLUpgrade is the protocol of GET /v1/apps/{id}/repl: the client asks
// for it in Upgrade, and after the 101 the connection carries the REPL's
// bytes both ways, as they are. Each side half-closes its direction when
// it has no more to send.
const REPLUpgrade = "wattd-repl"

// repl is GET /v1/apps/{id}/repl[?worker=N&terminal=1&columns=C] with
// Upgrade: wattd-repl.
func (s *Server) repl(r *http.Request) (int, any, error) {
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", REPLUpgrade) {
		return 0, nil, badRequest("a REPL is a connection upgraded to %q (Connection: Upgrade, Upgrade: %s); wattd ctl repl makes one", REPLUpgrade, REPLUpgrade)
	}
	id, worker, err := s.appWorker(r)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	o := supervisor.REPLOptions{Terminal: q.Get("terminal") == "1"}
	if v := q.Get("columns"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10000 {
			return 0, nil, badRequest("columns must be a whole number from 0 to 10000, not %q", v)
		}
		o.Columns = n
	}
	conn, err := s.openREPL(r.Context(), id, worker, o)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusSwitchingProtocols, rawREPL{conn: conn, log: s.log}, nil
}

func (s *Server) openREPL(ctx context.Context, id string, worker int, o supervisor.REPLOptions) (net.Conn, error) {
	ro, ok := s.b.(REPLOpener)
	if !ok {
		return nil, fmt.Errorf("REPL: %w", errUnsupported)
	}
	conn, _, err := ro.OpenREPL(ctx, id, worker, o)
	return conn, err
}

// headerHas reports whether a comma list header holds token (case
// insensitive).
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// rawREPL carries a REPL over the hijacked connection.
type rawREPL struct {
	conn net.Conn
	log  *zap.Logger
}

func (a rawREPL) write(ctx context.Context, w http.ResponseWriter, _ *http.Request) {
	defer a.conn.Close()
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		a.log.Warn("cannot take over the connection for a REPL", zap.Error(err))
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Time{})
	_, err = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + REPLUpgrade + "\r\n\r\n")
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		return
	}
	// What the client sent after its request is already in brw's reader.
	pump(ctx, a.conn, readerConn{Conn: c, r: brw.Reader}, io.Copy)
}

// readerConn reads what r buffered, then the connection itself: reading
// on through r would read through the HTTP server, whose end of input
// ends the request's context, and so the session, when the client only
// half-closed.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c readerConn) Read(p []byte) (int, error) {
	if n := c.r.Buffered(); n > 0 {
		return c.r.Read(p[:min(len(p), n)])
	}
	return c.Conn.Read(p)
}

// pump copies between the REPL and the client (what the REPL writes
// through toClient) until both directions ended, or one failed, or ctx
// ended: each direction's end half-closes the other side when it can, so
// that what is on its way still arrives.
func pump(ctx context.Context, repl, client net.Conn, toClient func(io.Writer, io.Reader) (int64, error)) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	closeBoth := sync.OnceFunc(func() {
		repl.Close()
		client.Close()
	})
	half := func(c net.Conn) {
		if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return
		}
		closeBoth()
	}
	wg.Go(func() {
		if _, err := io.Copy(repl, client); err != nil && !errors.Is(err, net.ErrClosed) {
			closeBoth()
			return
		}
		half(repl)
	})
	wg.Go(func() {
		_, _ = toClient(client, repl)
		// The REPL ended: nothing more is read from the client either.
		closeBoth()
	})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		closeBoth()
		<-done
	}
}

// repl is Watt's GET /api/v1/applications/{id}/repl, a WebSocket that
// `wattpm repl` sends lines over and prints what comes back; id is "app"
// or "app:N".
func (w *wattAPI) repl(s *Server, r *http.Request) (int, any, error) {
	a, worker, err := wattAppWorker(s, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if !headerHas(r.Header, "Upgrade", "websocket") {
		return 0, nil, badRequest("the REPL is a WebSocket")
	}
	conn, err := s.openREPL(r.Context(), a.ID, worker, supervisor.REPLOptions{})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusSwitchingProtocols, wsREPL{conn: conn}, nil
}

// wsREPL carries a REPL over a WebSocket: what the client sends goes to
// the REPL as it is; what the REPL writes goes back in text messages,
// each whole UTF-8 (a character split by a read waits for its rest).
type wsREPL struct{ conn net.Conn }

func (a wsREPL) write(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	served := false
	ws := websocket.Server{
		// The socket is private to its owner; wattpm sends no origin.
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler: func(c *websocket.Conn) {
			served = true
			c.PayloadType = websocket.TextFrame
			_ = c.SetDeadline(time.Time{})
			pump(ctx, a.conn, c, copyText)
		},
	}
	ws.ServeHTTP(w, r)
	if !served {
		a.conn.Close() // the handshake failed
	}
}

// copyText copies src to dst in writes that are each valid UTF-8: a
// sequence cut at the end of a read waits for its rest, and bytes that
// are no UTF-8 become U+FFFD (a WebSocket text message must be UTF-8, and
// wattpm's client drops a connection that sends one that is not).
func copyText(dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 32*1024)
	var n int64
	held := 0
	for {
		m, err := src.Read(buf[held:])
		end := held + m
		cut := end
		if err == nil {
			cut = end - incompleteTail(buf[:end])
		}
		if cut > 0 {
			out := strings.ToValidUTF8(string(buf[:cut]), "\uFFFD")
			if _, werr := dst.Write([]byte(out)); werr != nil {
				return n, werr
			}
			n += int64(cut)
		}
		held = copy(buf, buf[cut:end])
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
}

// incompleteTail is how many bytes at the end of b start a UTF-8
// sequence that b does not finish (0 to 3).
func incompleteTail(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0 // ASCII: nothing is open
		}
		if utf8.RuneStart(c) {
			need := 0
			switch {
			case c&0xE0 == 0xC0:
				need = 2
			case c&0xF0 == 0xE0:
				need = 3
			case c&0xF8 == 0xF0:
				need = 4
			}
			if need > i {
				return i
			}
			return 0
		}
	}
	return 0
}
