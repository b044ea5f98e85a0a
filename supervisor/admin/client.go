package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/rundir"
	"github.com/wattd/wattd/supervisor/scheduler"
	"github.com/wattd/wattd/supervisor/textclip"
)

// Client calls the admin API of one running wattd.
type Client struct {
	socket string
	hc     *http.Client
}

// Timeouts of the client. Restart has no default deadline: a rolling
// restart of a large app takes as long as it takes, so the caller bounds
// it with its context.
const (
	dialTimeout  = 5 * time.Second
	quickTimeout = 15 * time.Second // status, apps, stop, when ctx has no deadline
	maxBody      = 8 << 20
)

// baseURL has a placeholder host: the transport always dials the socket.
const baseURL = "http://wattd"

// NewClient returns a client for the admin socket at socket.
func NewClient(socket string) *Client {
	dialer := &net.Dialer{Timeout: dialTimeout}
	tr := &http.Transport{
		// Proxy stays nil: HTTP_PROXY must never capture a Unix socket call.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:       2,
		IdleConnTimeout:    30 * time.Second,
		DisableCompression: true,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket is the admin socket the client talks to.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// APIError is a non-success answer from the server. Its Error is the
// server's message, and it matches ErrNotFound for 404 and ErrConflict for
// 409, so callers can tell cases apart on either side of the socket.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string { return e.Message }

func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrInvalid:
		return e.StatusCode == http.StatusUnprocessableEntity
	}
	return false
}

// ServerPID is the pid of the process serving the admin socket, as this
// process sees it: the kernel's peer credentials, translated into this
// process's pid namespace, where the pid a runtime reports of itself is the
// one of its own namespace (1 as a container's init). 0 when the kernel
// cannot tell, or the server runs where this process cannot see it.
func (c *Client) ServerPID(ctx context.Context) int {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return 0
	}
	defer conn.Close()
	return rundir.PeerPID(conn.(*net.UnixConn))
}

// Status returns the runtime's status, its PID as this process sees it
// (ServerPID).
func (c *Client) Status(ctx context.Context) (*supervisor.RuntimeStatus, error) {
	var st supervisor.RuntimeStatus
	if err := c.call(ctx, true, http.MethodGet, "/v1/status", &st); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	// As this process sees it, not as wattd's namespace does; 0 (shown
	// "-") when wattd is not visible from here.
	st.PID = c.ServerPID(ctx)
	st.PIDSeen = st.PID > 0
	return &st, nil
}

// Apps returns every application with its workers.
func (c *Client) Apps(ctx context.Context) ([]supervisor.AppStatus, error) {
	var apps []supervisor.AppStatus
	if err := c.call(ctx, true, http.MethodGet, "/v1/apps", &apps); err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return apps, nil
}

// Mesh returns the mesh table, for clients that call applications
// directly (wattd ctl inject).
func (c *Client) Mesh(ctx context.Context) (*ipc.MeshTable, error) {
	var t ipc.MeshTable
	if err := c.call(ctx, true, http.MethodGet, "/v1/mesh", &t); err != nil {
		return nil, fmt.Errorf("mesh table: %w", err)
	}
	return &t, nil
}

// App returns one application.
func (c *Client) App(ctx context.Context, id string) (*supervisor.AppStatus, error) {
	var app supervisor.AppStatus
	if err := c.call(ctx, true, http.MethodGet, "/v1/apps/"+url.PathEscape(id), &app); err != nil {
		return nil, fmt.Errorf("app %q: %w", id, err)
	}
	return &app, nil
}

// Restart restarts every worker of app, one at a time, and returns the
// app's status once all are back. Cancelling ctx stops the wait, not the
// restart: the server finishes it regardless.
func (c *Client) Restart(ctx context.Context, app string) (*supervisor.AppStatus, error) {
	var st supervisor.AppStatus
	if err := c.call(ctx, false, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/restart", &st); err != nil {
		return nil, fmt.Errorf("restart %q: %w", app, err)
	}
	return &st, nil
}

// Reload asks the runtime to read its configuration again and apply the
// difference, and returns what it did. Like Restart, cancelling ctx stops
// the wait, not the reload.
func (c *Client) Reload(ctx context.Context) (*supervisor.ReloadResult, error) {
	var res supervisor.ReloadResult
	if err := c.callBody(ctx, false, http.MethodPost, "/v1/reload", nil, &res); err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	return &res, nil
}

// SchedulerJobs lists the runtime's scheduler jobs.
func (c *Client) SchedulerJobs(ctx context.Context) ([]scheduler.Status, error) {
	var jobs []scheduler.Status
	if err := c.call(ctx, true, http.MethodGet, "/v1/scheduler", &jobs); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	return jobs, nil
}

// RunSchedulerJob runs the job named name now, retries included, and says
// whether it succeeded.
func (c *Client) RunSchedulerJob(ctx context.Context, name string) (*SchedulerRun, error) {
	var res SchedulerRun
	if err := c.callBody(ctx, false, http.MethodPost, "/v1/scheduler/"+url.PathEscape(name)+"/run", nil, &res); err != nil {
		return nil, fmt.Errorf("run scheduler job %q: %w", name, err)
	}
	return &res, nil
}

// PauseSchedulerJob stops the job named name from running on its schedule
// until ResumeSchedulerJob, and answers its status.
func (c *Client) PauseSchedulerJob(ctx context.Context, name string) (*scheduler.Status, error) {
	return c.setSchedulerPaused(ctx, name, "pause")
}

// ResumeSchedulerJob lets a paused job run on its schedule again.
func (c *Client) ResumeSchedulerJob(ctx context.Context, name string) (*scheduler.Status, error) {
	return c.setSchedulerPaused(ctx, name, "resume")
}

func (c *Client) setSchedulerPaused(ctx context.Context, name, verb string) (*scheduler.Status, error) {
	var st scheduler.Status
	if err := c.callBody(ctx, false, http.MethodPost, "/v1/scheduler/"+url.PathEscape(name)+"/"+verb, nil, &st); err != nil {
		return nil, fmt.Errorf("%s scheduler job %q: %w", verb, name, err)
	}
	return &st, nil
}

// Scale sets the number of workers of app and returns its status once the
// change is done.
func (c *Client) Scale(ctx context.Context, app string, workers int) (*supervisor.AppStatus, error) {
	var st supervisor.AppStatus
	body, _ := json.Marshal(ScaleRequest{Workers: workers})
	if err := c.callBody(ctx, false, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/scale", body, &st); err != nil {
		return nil, fmt.Errorf("scale %q to %d: %w", app, workers, err)
	}
	return &st, nil
}

// Config returns the running configuration as the admin API serves it:
// plain JSON values with secrets masked.
func (c *Client) Config(ctx context.Context) (map[string]any, error) {
	var cfg map[string]any
	if err := c.call(ctx, true, http.MethodGet, "/v1/config", &cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Env returns the environment of worker of app, secrets masked.
func (c *Client) Env(ctx context.Context, app string, worker int) (*supervisor.WorkerEnv, error) {
	var env supervisor.WorkerEnv
	path := "/v1/apps/" + url.PathEscape(app) + "/env?worker=" + strconv.Itoa(worker)
	if err := c.call(ctx, true, http.MethodGet, path, &env); err != nil {
		return nil, fmt.Errorf("environment of app %q worker %d: %w", app, worker, err)
	}
	return &env, nil
}

// RuntimeEnv returns the runtime's environment, the one every worker
// starts from, secrets masked.
func (c *Client) RuntimeEnv(ctx context.Context) (*supervisor.RuntimeEnv, error) {
	var env supervisor.RuntimeEnv
	if err := c.call(ctx, true, http.MethodGet, "/v1/env", &env); err != nil {
		return nil, fmt.Errorf("environment of the runtime: %w", err)
	}
	return &env, nil
}

// Stop asks the runtime to shut down gracefully and returns once the
// request is accepted, not when the runtime has exited.
func (c *Client) Stop(ctx context.Context) error {
	if err := c.call(ctx, true, http.MethodPost, "/v1/stop", nil); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// call performs one request and decodes a 2xx JSON answer into out (when
// non-nil). Anything else becomes an *APIError carrying the server's
// message. quick calls get a default deadline when ctx has none.
func (c *Client) call(ctx context.Context, quick bool, method, path string, out any) error {
	return c.callBody(ctx, quick, method, path, nil, out)
}

// callBody is call with a JSON request body (none when nil).
func (c *Client) callBody(ctx context.Context, quick bool, method, path string, body []byte, out any) error {
	if _, ok := ctx.Deadline(); quick && !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, quickTimeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, baseURL+path, rd)
	if err != nil {
		return fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read answer from wattd at %s: %w", c.socket, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp, answer)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("decode answer from wattd at %s: %w", c.socket, err)
	}
	return nil
}

// transportError turns a failure to talk to the socket at all into advice.
func (c *Client) transportError(err error) error {
	// url.Error repeats method and URL, and the URL's host is made up;
	// what matters is the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("wattd at %s is not yours to administer: %w; %s", c.socket, err, ownerAdvice(c.socket))
		}
		if fi, serr := os.Stat(c.socket); serr == nil && fi.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("cannot reach wattd at %s: it is not a socket but %s (wattd ctl list shows the runtimes that are running)", c.socket, rundir.FileKind(fi.Mode()))
		}
		return fmt.Errorf("cannot reach wattd at %s (is it running? wattd ctl list shows the runtimes that are): %w", c.socket, err)
	}
	return fmt.Errorf("talk to wattd at %s: %w", c.socket, err)
}

// ownerAdvice names who may use the admin socket at path. Only the user
// wattd runs as can: the socket's directories are private to that user, so
// the socket itself may not be visible, and the nearest path that is names
// the owner.
func ownerAdvice(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			if int(st.Uid) == os.Geteuid() {
				return "it is yours, so check the modes of " + p
			}
			uid := strconv.FormatUint(uint64(st.Uid), 10)
			who, sudo := "uid "+uid, "sudo -u #"+uid
			if u, err := user.LookupId(uid); err == nil {
				who, sudo = u.Username+" (uid "+uid+")", "sudo -u "+u.Username
			}
			if st.Uid == 0 {
				sudo = "sudo"
			}
			return fmt.Sprintf("only its owner, %s, may use it: run %s wattd ctl ...", who, sudo)
		}
		if p == filepath.Dir(p) {
			return "only the user wattd runs as may use it"
		}
	}
}

// decodeError prefers the server's {"error": ...}; a body that is not one
// (a proxy, a wrong socket) is shown trimmed rather than dropped.
func decodeError(resp *http.Response, body []byte) error {
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		return &APIError{StatusCode: resp.StatusCode, Message: eb.Error}
	}
	msg := strings.TrimSpace(string(body))
	msg = textclip.Clip(msg, 200)
	if msg == "" {
		msg = "no details"
	}
	return &APIError{StatusCode: resp.StatusCode, Message: fmt.Sprintf("wattd answered %s: %s", resp.Status, msg)}
}

// HeapSnapshot has worker (-1: wattd picks the lowest ready one) of app
// take a V8 heap snapshot and copies it to w as it comes. It returns the
// file name wattd gives it (heap-APP-N-TIME.heapsnapshot) and its size.
// Nothing is written to w unless the snapshot was taken.
func (c *Client) HeapSnapshot(ctx context.Context, app string, worker int, w io.Writer) (string, int64, error) {
	q := url.Values{}
	if worker >= 0 {
		q.Set("worker", strconv.Itoa(worker))
	}
	return c.download(ctx, "heap snapshot of app "+strconv.Quote(app), "/v1/apps/"+url.PathEscape(app)+"/heap-snapshot", q, w)
}

// Profile profiles worker (-1: the lowest ready one) of app for d with
// V8's profiler of typ ("cpu", "heap"), sampling every interval (µs,
// bytes; 0: wattd's default), and copies the profile to w: pprof (format
// "pprof" or "") or V8's own JSON ("v8"); sourceMaps maps a pprof
// profile's compiled scripts to their sources. It returns the file name
// wattd gives it and its size. Nothing is written to w unless the profile was
// taken.
func (c *Client) Profile(ctx context.Context, app string, worker int, typ string, d time.Duration, interval int, format string, sourceMaps bool, w io.Writer) (string, int64, error) {
	q := url.Values{"type": {typ}, "seconds": {strconv.Itoa(int(d.Round(time.Second) / time.Second))}}
	if sourceMaps {
		q.Set("sourceMaps", "1")
	}
	if worker >= 0 {
		q.Set("worker", strconv.Itoa(worker))
	}
	if interval > 0 {
		q.Set("interval", strconv.Itoa(interval))
	}
	if format != "" {
		q.Set("format", format)
	}
	return c.download(ctx, typ+" profile of app "+strconv.Quote(app), "/v1/apps/"+url.PathEscape(app)+"/profile", q, w)
}

// download POSTs to path and copies a 2xx answer's body, what it is, to
// w, returning the name its Content-Disposition gives and its size. An
// error answer is wattd's message, which says what failed.
func (c *Client) download(ctx context.Context, what, path string, q url.Values, w io.Writer) (string, int64, error) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+path, nil)
	if err != nil {
		return "", 0, fmt.Errorf("build request POST %s: %w", path, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", 0, c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		answer, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return "", 0, fmt.Errorf("read answer from wattd at %s: %w", c.socket, err)
		}
		return "", 0, decodeError(resp, answer)
	}
	name := ""
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		name = filepath.Base(params["filename"])
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of its %d bytes", n, resp.ContentLength)
	}
	if err != nil {
		return name, n, fmt.Errorf("%s cut short: %w", what, err)
	}
	return name, n, nil
}

// REPLConn is a REPL session in a worker: what is written goes to the
// REPL, what it prints is read. CloseWrite says there is nothing more to
// send (the REPL ends once it has answered what it had); Close ends it.
type REPLConn struct {
	c *net.UnixConn
	r *bufio.Reader // holds what came with the answer
}

func (c *REPLConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *REPLConn) Write(p []byte) (int, error) { return c.c.Write(p) }
func (c *REPLConn) CloseWrite() error           { return c.c.CloseWrite() }
func (c *REPLConn) Close() error                { return c.c.Close() }

// REPL opens a REPL in worker (-1: the lowest ready one) of app:
// terminal asks for line editing (the caller passes its raw terminal's
// keys), columns is the terminal's width.
func (c *Client) REPL(ctx context.Context, app string, worker int, terminal bool, columns int) (*REPLConn, error) {
	q := url.Values{}
	if worker >= 0 {
		q.Set("worker", strconv.Itoa(worker))
	}
	if terminal {
		q.Set("terminal", "1")
	}
	if columns > 0 {
		q.Set("columns", strconv.Itoa(columns))
	}
	path := "/v1/apps/" + url.PathEscape(app) + "/repl?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+path, nil)
	if err != nil {
		return nil, fmt.Errorf("build request GET %s: %w", path, err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", REPLUpgrade)
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, c.transportError(err)
	}
	conn := nc.(*net.UnixConn)
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		_ = conn.SetDeadline(dl)
	}
	if err := req.Write(conn); err != nil {
		return nil, c.transportError(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("read answer from wattd at %s: %w", c.socket, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		answer, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return nil, fmt.Errorf("read answer from wattd at %s: %w", c.socket, err)
		}
		return nil, decodeError(resp, answer)
	}
	_ = conn.SetDeadline(time.Time{})
	ok = true
	return &REPLConn{c: conn, r: br}, nil
}
