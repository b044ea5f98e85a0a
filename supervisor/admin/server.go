package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/scheduler"
)

// Server is a running admin API.
type Server struct {
	path    string
	sockFI  fs.FileInfo // our socket file, so Close removes only that
	b       Backend
	log     *zap.Logger
	hs      *http.Server
	selfUID int
	peerOf  func(net.Conn) (peerCred, error)
	routes  []route
	// errBody is the JSON an error answers with: errorBody here, Watt's
	// shape on the management API (watt.go).
	errBody func(status int, err error) any
	// afterClose, when set, runs once the socket is removed.
	afterClose func()
	what       string // options.what

	// ctx lives as long as the server. Restarts run under it rather than
	// under the request, so a `wattd ctl restart` interrupted with ^C
	// does not leave an app half restarted; Close cancels it.
	ctx      context.Context
	cancel   context.CancelFunc
	stopWait func() bool // detaches Close from the caller's ctx
	served   chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// peerCred is who is on the other end of a connection.
type peerCred struct {
	uid, pid int
}

// peerInfo is stashed in each connection's context by ConnContext.
type peerInfo struct {
	cred peerCred
	err  error // why the credentials are unknown
}

type peerKey struct{}

// options are the seams tests use; Serve passes the real ones.
type options struct {
	selfUID int
	peerOf  func(net.Conn) (peerCred, error)
	// routes and errBody are those of the Server; nil routes are wattd's
	// own API.
	routes  []route
	errBody func(status int, err error) any
	// what names the API in errors and the log: "admin API" when empty.
	what string
	// afterClose is the Server's.
	afterClose func()
}

// shutdownGrace is how long Close lets in-flight requests finish (a stop
// request writing its 202, say) before cutting connections.
const shutdownGrace = 5 * time.Second

// Serve listens on socketPath and serves the admin API in a goroutine
// until Close is called or ctx is done. It fails with an error matching
// ErrAlreadyRunning when a live server holds the path; a stale socket
// there is removed.
func Serve(ctx context.Context, socketPath string, b Backend, log *zap.Logger) (*Server, error) {
	return serve(ctx, socketPath, b, log, options{selfUID: os.Geteuid(), peerOf: peerCredentials})
}

func serve(ctx context.Context, socketPath string, b Backend, log *zap.Logger, opt options) (*Server, error) {
	if b == nil {
		return nil, errors.New("admin: nil backend")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if opt.routes == nil {
		opt.routes = routes
	}
	if opt.errBody == nil {
		opt.errBody = func(_ int, err error) any { return errorBody{err.Error()} }
	}
	if opt.what == "" {
		opt.what = "admin API"
	}
	ln, fi, err := listenPrivate(socketPath)
	if err != nil {
		return nil, err
	}
	s := &Server{
		path:    socketPath,
		sockFI:  fi,
		b:       b,
		log:     log,
		selfUID: opt.selfUID,
		peerOf:  opt.peerOf,
		routes:  opt.routes,
		errBody: opt.errBody,
		what:    opt.what,
		served:  make(chan struct{}),

		afterClose: opt.afterClose,
	}
	// The server's own context is cut loose from ctx: ctx ending goes
	// through Close (AfterFunc below), which cancels it in order with the
	// shutdown instead of racing it.
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.hs = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: a restart legitimately takes minutes.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ConnContext:    s.connContext,
		BaseContext:    func(net.Listener) context.Context { return s.ctx },
	}
	// net/http reports accept failures and malformed requests here.
	if stdLog, err := zap.NewStdLogAt(log, zap.WarnLevel); err == nil {
		s.hs.ErrorLog = stdLog
	}
	s.stopWait = context.AfterFunc(ctx, func() { s.Close() })
	go func() {
		defer close(s.served)
		if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(opt.what+" stopped serving", zap.String("socket", socketPath), zap.Error(err))
		}
	}()
	log.Debug(opt.what+" listening", zap.String("socket", socketPath))
	return s, nil
}

// Path is the socket the server listens on.
func (s *Server) Path() string { return s.path }

// Close stops serving: in-flight restarts are cancelled, other requests
// get a few seconds to finish, and the socket file is removed. It is safe
// to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopWait()
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := s.hs.Shutdown(ctx); err != nil {
			s.hs.Close()
		}
		<-s.served
		s.closeErr = s.removeSocket()
		if s.afterClose != nil {
			s.afterClose()
		}
	})
	return s.closeErr
}

// removeSocket deletes the socket file if it is still the one we created.
func (s *Server) removeSocket() error {
	fi, err := os.Lstat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove admin socket %s: %w", s.path, err)
	}
	if !os.SameFile(fi, s.sockFI) {
		s.log.Warn("admin socket was replaced; leaving it", zap.String("socket", s.path))
		return nil
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove admin socket %s: %w", s.path, err)
	}
	return nil
}

func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	cred, err := s.peerOf(c)
	return context.WithValue(ctx, peerKey{}, peerInfo{cred: cred, err: err})
}

// access says what a route may do to the runtime.
type access int

const (
	read  access = iota // anyone who can open the socket
	write               // our uid or root only
)

func (a access) String() string {
	if a == write {
		return "write"
	}
	return "read"
}

// route is one entry of the handler table. A handler returns the HTTP
// status and the value to send as JSON, or an error that writeError turns
// into a status and {"error": ...}.
type route struct {
	method  string
	pattern string
	access  access
	handle  func(s *Server, r *http.Request) (int, any, error)
}

// routes is the whole API. Keeping method and access next to the path
// makes a write route that forgot its check impossible to miss.
var routes = []route{
	{http.MethodGet, "/v1/status", read, (*Server).getStatus},
	{http.MethodGet, "/v1/apps", read, (*Server).getApps},
	{http.MethodGet, "/v1/apps/{id}", read, (*Server).getApp},
	{http.MethodPost, "/v1/apps/{id}/restart", write, (*Server).restartApp},
	{http.MethodPost, "/v1/apps/{id}/scale", write, (*Server).scaleApp},
	{http.MethodPost, "/v1/apps/{id}/heap-snapshot", write, (*Server).heapSnapshot},
	{http.MethodPost, "/v1/apps/{id}/profile", write, (*Server).profile},
	// Code typed there runs in the worker, as the worker's user.
	{http.MethodGet, "/v1/apps/{id}/repl", write, (*Server).repl},
	{http.MethodPost, "/v1/reload", write, (*Server).reload},
	{http.MethodPost, "/v1/stop", write, (*Server).stop},
	{http.MethodGet, "/v1/mesh", read, (*Server).getMesh},
	{http.MethodGet, "/v1/scheduler", read, (*Server).getScheduler},
	{http.MethodPost, "/v1/scheduler/{name}/run", write, (*Server).runSchedulerJob},
	{http.MethodPost, "/v1/scheduler/{name}/pause", write, (*Server).pauseSchedulerJob},
	{http.MethodPost, "/v1/scheduler/{name}/resume", write, (*Server).resumeSchedulerJob},
	{http.MethodGet, "/v1/logs", read, (*Server).getLogs},
	// Masked by name, but what the processes were given stays with the
	// users who may change the runtime: the rule cannot know every secret.
	{http.MethodGet, "/v1/config", write, (*Server).getConfig},
	{http.MethodGet, "/v1/apps/{id}/env", write, (*Server).getEnv},
	{http.MethodGet, "/v1/env", write, (*Server).getRuntimeEnv},
}

// handler builds the mux from the table. Patterns are registered without
// a method so that a wrong method reaches us and gets a JSON 405 instead
// of ServeMux's plain-text one. A pattern that ends in a {name...}
// wildcard is matched before the mux, on the path as the client sent it:
// ServeMux answers a path with "//", "." or ".." segments with a redirect
// to its cleaned form, and the rest of a proxied path must reach the
// application as it was given.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	byPattern := map[string][]route{}
	var order []string
	for _, rt := range s.routes {
		if _, ok := byPattern[rt.pattern]; !ok {
			order = append(order, rt.pattern)
		}
		byPattern[rt.pattern] = append(byPattern[rt.pattern], rt)
	}
	var rests []restPattern
	for _, p := range order {
		rts := byPattern[p]
		if rp, ok := parseRestPattern(p); ok {
			rp.rts = rts
			rests = append(rests, rp)
			continue
		}
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { s.serveRoutes(w, r, rts) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, http.StatusNotFound, s.errBody(http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path)))
	})
	if len(rests) == 0 {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, rp := range rests {
			if rp.match(r) {
				s.serveRoutes(w, r, rp.rts)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// serveRoutes dispatches r to the route of rts for its method, or
// answers 405. HEAD is served by the GET route, as GET without its body
// (net/http writes none for HEAD): the same status and headers. A HEAD
// upgrades no connection, so a REPL's route answers it as a GET without
// an upgrade, and a stream (logs followed) ends once its headers and
// what is at hand are written.
func (s *Server) serveRoutes(w http.ResponseWriter, r *http.Request, rts []route) {
	for _, rt := range rts {
		if rt.method == r.Method || rt.method == "*" {
			s.dispatch(w, r, rt, false)
			return
		}
	}
	if r.Method == http.MethodHead {
		for _, rt := range rts {
			if rt.method == http.MethodGet {
				r.Header.Del("Upgrade")
				s.dispatch(w, r, rt, true)
				return
			}
		}
	}
	allowed := make([]string, 0, len(rts)+1)
	for _, rt := range rts {
		allowed = append(allowed, rt.method)
		if rt.method == http.MethodGet {
			allowed = append(allowed, http.MethodHead)
		}
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	s.reply(w, r, http.StatusMethodNotAllowed, s.errBody(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or "))))
}

// restPattern is a route pattern that ends in a {name...} wildcard.
type restPattern struct {
	segs []string // the segments before the wildcard; "{id}" matches any one
	rest string   // the wildcard's name
	rts  []route
}

func parseRestPattern(p string) (restPattern, bool) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	last := segs[len(segs)-1]
	if len(segs) < 2 || !strings.HasPrefix(last, "{") || !strings.HasSuffix(last, "...}") {
		return restPattern{}, false
	}
	return restPattern{segs: segs[:len(segs)-1], rest: strings.TrimSuffix(strings.TrimPrefix(last, "{"), "...}")}, true
}

// match reports whether r's path is one of rp's and sets its values: a
// single segment's unescaped, as ServeMux does, the rest escaped and
// uncleaned, as the client sent it (without its leading "/").
func (rp restPattern) match(r *http.Request) bool {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/", len(rp.segs)+1)
	if len(parts) != len(rp.segs)+1 {
		return false
	}
	values := map[string]string{}
	for i, seg := range rp.segs {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			v, err := url.PathUnescape(parts[i])
			if err != nil || v == "" {
				return false
			}
			values[seg[1:len(seg)-1]] = v
		} else if parts[i] != seg {
			return false
		}
	}
	for k, v := range values {
		r.SetPathValue(k, v)
	}
	r.SetPathValue(rp.rest, parts[len(rp.segs)])
	return true
}

// dispatch serves r by rt; head says r is a HEAD served by a GET route.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rt route, head bool) {
	start := time.Now()
	peer, _ := r.Context().Value(peerKey{}).(peerInfo)
	var status int
	if err := s.refuseConfined(peer); err != nil {
		status = http.StatusForbidden
		s.reply(w, r, status, s.errBody(status, err))
		s.logRequest(r, rt, peer, status, start, err)
		return
	}
	if rt.access == write {
		if err := authorizeWrite(peer, s.selfUID); err != nil {
			status = http.StatusForbidden
			s.reply(w, r, status, s.errBody(status, err))
			s.logRequest(r, rt, peer, status, start, err)
			return
		}
	}
	status, body, err := rt.handle(s, r)
	if err != nil && errors.Is(err, context.Canceled) && (s.ctx.Err() != nil || r.Context().Err() == nil && s.b.Status().State == "stopping") {
		// Cut short by the runtime's stop (the server closing, or the
		// runtime's own context ending the work), not by the client.
		err = fmt.Errorf("the runtime stopped during the request: %w", err)
	}
	if err != nil {
		status = statusOf(err)
		body = s.errBody(status, err)
	}
	if st, ok := body.(streamer); ok {
		// Logged when it starts: a followed stream lasts as long as the
		// client wants. The request's context ends with the client and,
		// being made from s.ctx, when the server closes.
		s.logRequest(r, rt, peer, status, start, nil)
		ctx := r.Context()
		if head {
			// Nothing it would send goes out: it ends at once.
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			cancel()
		}
		st.write(ctx, w, r)
		return
	}
	s.reply(w, r, status, body)
	s.logRequest(r, rt, peer, status, start, err)
}

// ConfinedCallers is a Backend that can tell its workers that run under
// Node.js's permission model (supervisor.Runtime.RestrictedWorker): they
// run as wattd's user, and would step out of their confinement through
// this API (a REPL in another application's worker, a stop).
type ConfinedCallers interface {
	RestrictedWorker(pid int) (app string, ok bool)
}

var _ ConfinedCallers = (*supervisor.Runtime)(nil)

// refuseConfined turns away a caller that is a confined worker, on every
// route: what the API reads (environments, configuration, logs) is no more
// theirs than what it changes.
func (s *Server) refuseConfined(p peerInfo) error {
	cc, ok := s.b.(ConfinedCallers)
	if !ok || p.err != nil {
		return nil
	}
	if id, ok := cc.RestrictedWorker(p.cred.pid); ok {
		return fmt.Errorf("permission denied: the caller (pid %d) is a worker of application %q, which runs under \"permissions\": it may not use the %s", p.cred.pid, id, s.what)
	}
	return nil
}

// authorizeWrite lets our own uid and root change the runtime. Unknown
// credentials fail closed.
func authorizeWrite(p peerInfo, selfUID int) error {
	if p.err != nil {
		return fmt.Errorf("permission denied: cannot identify the caller: %w", p.err)
	}
	if p.cred.uid == selfUID || p.cred.uid == 0 {
		return nil
	}
	if selfUID == 0 {
		return fmt.Errorf("permission denied: uid %d may only read the runtime's status; this needs root", p.cred.uid)
	}
	return fmt.Errorf("permission denied: uid %d may only read the runtime's status; this needs uid %d or root", p.cred.uid, selfUID)
}

func statusOf(err error) int {
	var hs interface{ httpStatus() int }
	if errors.As(err, &hs) && hs.httpStatus() != 0 {
		return hs.httpStatus()
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrInvalid):
		return http.StatusUnprocessableEntity
	case errors.Is(err, errUnsupported):
		return http.StatusNotImplemented
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The server is closing under the request.
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func (s *Server) logRequest(r *http.Request, rt route, p peerInfo, status int, start time.Time, err error) {
	level := zap.DebugLevel
	if rt.access == write || status >= 500 {
		level = zap.InfoLevel
	}
	ce := s.log.Check(level, s.what+" request")
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("method", r.Method),
		zap.String("path", r.URL.Path),
		zap.Int("status", status),
		zap.Duration("took", time.Since(start)),
	}
	if p.err == nil {
		fields = append(fields, zap.Int("peerUID", p.cred.uid), zap.Int("peerPID", p.cred.pid))
	}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	ce.Write(fields...)
}

type errorBody struct {
	Error string `json:"error"`
}

// streamer is an answer that writes itself (a log stream, a proxied
// response) rather than one JSON value. For a HEAD served by a GET route
// its ctx has ended already: it writes its headers and returns.
type streamer interface {
	write(ctx context.Context, w http.ResponseWriter, r *http.Request)
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		s.log.Error("encode admin response", zap.String("path", r.URL.Path), zap.Error(err))
		status = http.StatusInternalServerError
		data, _ = json.Marshal(s.errBody(status, fmt.Errorf("encode response: %w", err)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

func (s *Server) getStatus(*http.Request) (int, any, error) {
	return http.StatusOK, s.b.Status(), nil
}

func (s *Server) getApps(*http.Request) (int, any, error) {
	apps := s.b.Apps()
	if apps == nil {
		apps = []supervisor.AppStatus{} // [] rather than null
	}
	return http.StatusOK, apps, nil
}

func (s *Server) getMesh(r *http.Request) (int, any, error) {
	t := s.b.Table()
	peer, _ := r.Context().Value(peerKey{}).(peerInfo)
	if t != nil && t.Proxy != "" && authorizeWrite(peer, s.selfUID) != nil {
		// The mesh proxy's token is for the workers and wattd's user; a
		// reader of another uid gets the address without it.
		c := *t
		if u, err := url.Parse(c.Proxy); err == nil {
			u.User = nil
			c.Proxy = u.String()
		} else {
			c.Proxy = ""
		}
		t = &c
	}
	return http.StatusOK, t, nil
}

func (s *Server) getApp(r *http.Request) (int, any, error) {
	app, err := s.findApp(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, app, nil
}

func (s *Server) restartApp(r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	// Fail fast and uniformly on unknown ids, whatever the backend says.
	if _, err := s.findApp(id); err != nil {
		return 0, nil, err
	}
	s.log.Debug("restarting app on request", zap.String("app", id))
	if err := s.b.RestartApp(s.ctx, id); err != nil {
		return 0, nil, err
	}
	app, err := s.findApp(id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, app, nil
}

// errUnsupported answers a route whose backend lacks the optional
// interface it needs.
var errUnsupported = errors.New("not supported by this runtime")

func (s *Server) reload(r *http.Request) (int, any, error) {
	rl, ok := s.b.(Reloader)
	if !ok {
		return 0, nil, fmt.Errorf("reload: %w", errUnsupported)
	}
	s.log.Info("reloading the configuration on request")
	// Under the server's context, as a restart: an interrupted ctl reload
	// does not leave the change half applied.
	res, err := rl.Reload(s.ctx)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, res, nil
}

// Scheduler is a Backend that runs Watt's "scheduler" jobs (GET
// /v1/scheduler, POST /v1/scheduler/{name}/run, pause and resume).
type Scheduler interface {
	SchedulerJobs() []scheduler.Status
	RunSchedulerJob(ctx context.Context, name string) (bool, error)
	PauseSchedulerJob(name string) (scheduler.Status, error)
	ResumeSchedulerJob(name string) (scheduler.Status, error)
}

var _ Scheduler = (*supervisor.Runtime)(nil)

// SchedulerRun is the answer to POST /v1/scheduler/{name}/run.
type SchedulerRun struct {
	Name    string `json:"name"`
	Success bool   `json:"success"`
}

// scheduler is the back end as a Scheduler, or errUnsupported.
func (s *Server) scheduler() (Scheduler, error) {
	sc, ok := s.b.(Scheduler)
	if !ok {
		return nil, fmt.Errorf("scheduler: %w", errUnsupported)
	}
	return sc, nil
}

func (s *Server) getScheduler(r *http.Request) (int, any, error) {
	sc, err := s.scheduler()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, sc.SchedulerJobs(), nil
}

func (s *Server) runSchedulerJob(r *http.Request) (int, any, error) {
	sc, err := s.scheduler()
	if err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	success, err := sc.RunSchedulerJob(r.Context(), name)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, SchedulerRun{Name: name, Success: success}, nil
}

func (s *Server) pauseSchedulerJob(r *http.Request) (int, any, error) {
	return s.setSchedulerPaused(r, true)
}

func (s *Server) resumeSchedulerJob(r *http.Request) (int, any, error) {
	return s.setSchedulerPaused(r, false)
}

// setSchedulerPaused answers the job's status after pausing or resuming it.
func (s *Server) setSchedulerPaused(r *http.Request, pause bool) (int, any, error) {
	st, err := s.pauseJob(r.PathValue("name"), pause)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, st, nil
}

// pauseJob pauses (or resumes) the scheduler job name.
func (s *Server) pauseJob(name string, pause bool) (scheduler.Status, error) {
	sc, err := s.scheduler()
	if err != nil {
		return scheduler.Status{}, err
	}
	if pause {
		return sc.PauseSchedulerJob(name)
	}
	return sc.ResumeSchedulerJob(name)
}

// ScaleRequest is the body of POST /v1/apps/{id}/scale.
type ScaleRequest struct {
	Workers int `json:"workers"`
}

// maxScaleBody bounds what is read of a scale request's body.
const maxScaleBody = 4096

func (s *Server) scaleApp(r *http.Request) (int, any, error) {
	sc, ok := s.b.(AppScaler)
	if !ok {
		return 0, nil, fmt.Errorf("scale: %w", errUnsupported)
	}
	id := r.PathValue("id")
	if _, err := s.findApp(id); err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxScaleBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return 0, nil, badRequest("scale: the body is larger than %d bytes; it must be {\"workers\": N}", maxScaleBody)
		}
		return 0, nil, fmt.Errorf("scale: read the body: %w", err)
	}
	n, err := readScaleRequest(body)
	if err != nil {
		return 0, nil, fmt.Errorf("scale app %q: %w", id, err)
	}
	s.log.Info("scaling app on request", zap.String("app", id), zap.Int("workers", n))
	if err := sc.ScaleApp(s.ctx, id, n); err != nil {
		return 0, nil, err
	}
	app, err := s.findApp(id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, app, nil
}

// outOfRange is a request the runtime refuses as it stands (422), in
// words of its own rather than ErrInvalid's, which speak of a
// configuration.
type outOfRange string

func (o outOfRange) Error() string        { return string(o) }
func (o outOfRange) Is(target error) bool { return target == ErrInvalid }

// readScaleRequest reads a scale request's body, which must be exactly
// {"workers": N} with N a whole number from 1 to config.MaxWorkers: the
// key as written (json's own decoding would take "Workers" too), no other
// key, and nothing after the object. A malformed body is a bad request
// (400), a count out of range one the runtime refuses (422).
func readScaleRequest(body []byte) (int, error) {
	const want = `the body must be {"workers": N}`
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return 0, badRequest("the body is empty; %s", want)
	case err != nil:
		return 0, badRequest("the body is not JSON (%v); %s", err, want)
	}
	if tok != json.Delim('{') {
		return 0, badRequest("the body is %s, not an object; %s", jsonKind(tok), want)
	}
	var n int
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, badRequest("the body is not JSON (%v); %s", err, want)
		}
		key, _ := tok.(string)
		if key != "workers" {
			hint := ""
			if strings.EqualFold(key, "workers") {
				hint = " (keys are case-sensitive)"
			}
			return 0, badRequest("unknown key %q in the body%s; %s", key, hint, want)
		}
		if seen {
			return 0, badRequest(`"workers" is given twice; %s`, want)
		}
		seen = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return 0, badRequest("the body is not JSON (%v); %s", err, want)
		}
		if n, err = workerCount(string(v)); err != nil {
			return 0, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return 0, badRequest("the body is not JSON (%v); %s", err, want)
	}
	if !seen {
		return 0, badRequest(`the body has no "workers"; %s`, want)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return 0, badRequest("something follows the object in the body; %s", want)
	}
	return n, nil
}

// workerCount reads N of {"workers": N}, a JSON value.
func workerCount(v string) (int, error) {
	if v == "" || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, badRequest(`"workers" must be a number, not %s`, v)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, badRequest(`"workers" must be a whole number, written without a fraction or an exponent, not %s`, v)
	}
	if err != nil || n < 1 || n > config.MaxWorkers {
		return 0, outOfRange(fmt.Sprintf("expected a worker count from 1 to %d, got %s", config.MaxWorkers, v))
	}
	return int(n), nil
}

// jsonKind names what a JSON token starts, for messages.
func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func (s *Server) stop(*http.Request) (int, any, error) {
	s.log.Info("stopping on request")
	s.b.Stop()
	return http.StatusAccepted, map[string]string{"state": "stopping"}, nil
}

func (s *Server) findApp(id string) (supervisor.AppStatus, error) {
	apps := s.b.Apps()
	known := make([]string, 0, len(apps))
	for _, a := range apps {
		if a.ID == id {
			return a, nil
		}
		known = append(known, a.ID)
	}
	return supervisor.AppStatus{}, notFound(id, known)
}

// notFound names the known apps, so a typo is fixed without another call.
func notFound(id string, known []string) error {
	sort.Strings(known)
	if len(known) == 0 {
		return fmt.Errorf("%w %q (there are no apps)", ErrNotFound, id)
	}
	return fmt.Errorf("%w %q (known apps: %s)", ErrNotFound, id, strings.Join(known, ", "))
}
