package admin

// Watt's management API. A Watt runtime serves it on a Unix socket at
// $TMPDIR/platformatic/runtimes/PID/socket (watt.json's managementApi, on
// by default), and that is how `wattpm ps`, `wattpm logs`, `wattpm
// inject` and the other commands that act on a running runtime find it
// and talk to it. wattd serves the same routes, under /api/v1, with the
// same answers where wattd has the same thing, from the same Backend as
// its own admin API: so a team moving from Watt keeps its commands and
// scripts. What it cannot do (one application started or stopped alone,
// applications added or removed at run time) answers 501 with Watt's
// error shape and the way to do it with wattd. docs/operations.md has the
// table.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/websocket"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/mesh"
	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/logs"
	"github.com/wattd/wattd/supervisor/scheduler"
	"github.com/wattd/wattd/supervisor/secrets"
)

// WattOptions configure ServeWatt.
type WattOptions struct {
	// Socket is the socket's path; "" for Watt's default place,
	// WattRuntimesDir()/PID/socket.
	Socket string
	// Name is the runtime's name, answered as its packageName when the
	// project has no package.json naming it.
	Name string
	// Version is wattd's version, answered as platformaticVersion.
	Version string
	// Production is false under `wattd dev`.
	Production bool
	// Metrics answers GET /api/v1/metrics; nil when the metrics are off.
	Metrics http.Handler
}

// WattRuntimesDir is where Watt's runtimes, and wattd's, put their
// management sockets: TMPDIR/platformatic/runtimes, with TMPDIR found as
// Node.js's os.tmpdir() does, so that wattpm looks where wattd put it.
func WattRuntimesDir() string {
	dir := "/tmp"
	for _, v := range []string{"TMPDIR", "TMP", "TEMP"} {
		if s := os.Getenv(v); s != "" {
			dir = s
			break
		}
	}
	if len(dir) > 1 {
		dir = strings.TrimSuffix(dir, "/")
	}
	return filepath.Join(dir, "platformatic", "runtimes")
}

// ServeWatt serves Watt's management API for b until Close or ctx ends.
// At the default place it makes the shared directories (mode 1777, as
// Watt does) and its own PID directory (0700), replacing a stale one a
// former process of the same pid left; Close removes both the socket and
// that directory.
func ServeWatt(ctx context.Context, b Backend, o WattOptions, log *zap.Logger) (*Server, error) {
	path := o.Socket
	var pidDir string
	if path == "" {
		var err error
		if pidDir, err = makeWattPIDDir(WattRuntimesDir(), os.Getpid()); err != nil {
			return nil, fmt.Errorf("management API: %w", err)
		}
		path = filepath.Join(pidDir, "socket")
	} else if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("management API: %w", err)
	}
	w := &wattAPI{o: o}
	opt := options{
		selfUID: os.Geteuid(), peerOf: peerCredentials,
		routes: w.routes(), errBody: wattError, what: "management API",
	}
	if pidDir != "" {
		opt.afterClose = func() { os.Remove(pidDir) }
	}
	s, err := serve(ctx, path, b, log, opt)
	if err != nil {
		if pidDir != "" {
			os.Remove(pidDir)
		}
		return nil, fmt.Errorf("management API: %w", err)
	}
	return s, nil
}

// makeWattPIDDir makes base (each missing segment 1777, as Watt's shared
// temporary directories) and base/PID, 0700 and ours. A segment that is
// a symbolic link, or a world-writable one without the sticky bit, is
// refused: another user could put our socket elsewhere or take it away;
// so is a base/PID whose socket a live runtime serves.
func makeWattPIDDir(base string, pid int) (string, error) {
	parent := filepath.Dir(base)
	for _, dir := range []string{parent, base} {
		if err := os.Mkdir(dir, 0o777); err == nil {
			// The umask took bits off; set them as Watt does.
			_ = os.Chmod(dir, 0o777|fs.ModeSticky)
		} else if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		fi, err := os.Lstat(dir)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
			what := "is not a directory (" + fi.Mode().Type().String() + ")"
			if fi.Mode()&fs.ModeSymlink != 0 {
				what = "is a symbolic link, not a directory"
			}
			return "", fmt.Errorf("%s %s; refusing to put the socket under it", dir, what)
		}
		if fi.Mode().Perm()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			return "", fmt.Errorf("%s is writable by every user without the sticky bit; refusing to put the socket under it", dir)
		}
		// The owner of a shared (sticky) directory may still rename what
		// others put in it: another user who made it first could move our
		// directory away and answer for us in its place.
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
			return "", fmt.Errorf("%s is owned by uid %d, who could move the socket's directory away and answer in its place; refusing to put the socket under it (remove the directory, or set managementApi.socket)", dir, st.Uid)
		}
	}
	dir := filepath.Join(base, strconv.Itoa(pid))
	if fi, err := os.Lstat(dir); err == nil {
		// A former process of the same pid (a container's PID 1 restarted
		// with its /tmp) left it; ours to replace only if it is ours.
		st, _ := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0 || st == nil || int(st.Uid) != os.Geteuid() {
			return "", fmt.Errorf("%s exists and is not a directory of ours; remove it", dir)
		}
		// Unless a live runtime serves it: one with the same pid in
		// another PID namespace (containers that share a /tmp volume,
		// each wattd their PID 1) would lose its socket to us.
		if err := probe(filepath.Join(dir, "socket")); errors.Is(err, ErrAlreadyRunning) {
			return "", fmt.Errorf("%s is in use: a live runtime serves its socket (another process with pid %d, in a PID namespace that shares this directory?); leaving it", dir, pid)
		} else if err != nil {
			return "", err
		}
		if err := os.RemoveAll(dir); err != nil {
			return "", err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	return dir, nil
}

// wattAPI holds what the management API's handlers need beyond the
// Server they are given.
type wattAPI struct {
	o WattOptions
	// mapped holds, by profileKey, whether a profile pprof/start started
	// is to be mapped to its sources when pprof/stop returns it.
	mapped sync.Map
}

// notImplemented is a 501 whose message is msg alone.
type notImplemented struct{ msg string }

func (e *notImplemented) Error() string        { return e.msg }
func (e *notImplemented) Is(target error) bool { return target == errUnsupported }

func (w *wattAPI) routes() []route {
	const p = "/api/v1"
	return []route{
		{http.MethodGet, p + "/status", read, w.status},
		{http.MethodGet, p + "/metadata", read, w.metadata},
		{http.MethodGet, p + "/config", write, w.config},
		{http.MethodGet, p + "/env", write, w.env},
		{http.MethodPost, p + "/stop", write, w.stop},
		{http.MethodPost, p + "/restart", write, w.restart},
		{http.MethodGet, p + "/scheduler", read, w.scheduler},
		{http.MethodPost, p + "/scheduler/{name}/pause", write, w.schedulerPause},
		{http.MethodPost, p + "/scheduler/{name}/resume", write, w.schedulerResume},
		{http.MethodPost, p + "/scheduler/{name}/run", write, w.schedulerRun},
		{http.MethodGet, p + "/applications", read, w.applications},
		{http.MethodPost, p + "/applications", write, unsupported("wattd does not add applications at run time: add them to watt.json and reload (wattd ctl reload, or SIGHUP)")},
		{http.MethodDelete, p + "/applications", write, unsupported(removeApps)},
		{http.MethodGet, p + "/applications/{id}", read, w.application},
		{http.MethodDelete, p + "/applications/{id}", write, unsupported(removeApps)},
		{http.MethodGet, p + "/applications/{id}/config", write, w.applicationConfig},
		{http.MethodGet, p + "/applications/{id}/env", write, w.applicationEnv},
		{http.MethodGet, p + "/applications/{id}/openapi-schema", read, unsupported("wattd does not collect OpenAPI schemas; ask the application")},
		{http.MethodGet, p + "/applications/{id}/graphql-schema", read, unsupported("wattd does not collect GraphQL schemas; ask the application")},
		{http.MethodPost, p + "/applications/{id}/start", write, unsupported(oneAppAlone)},
		{http.MethodPost, p + "/applications/{id}/stop", write, unsupported(oneAppAlone)},
		{http.MethodPost, p + "/applications/{id}/pprof/start", write, w.pprofStart},
		{http.MethodPost, p + "/applications/{id}/pprof/stop", write, w.pprofStop},
		{http.MethodPost, p + "/applications/{id}/heap-snapshot", write, w.heapSnapshot},
		{http.MethodGet, p + "/applications/{id}/repl", write, w.repl},
		{"*", p + "/applications/{id}/proxy/{path...}", write, w.proxy},
		{http.MethodGet, p + "/metrics", read, w.metrics},
		{http.MethodGet, p + "/logs/live", read, w.logsLive},
	}
}

// The 501 answers said more than once.
const (
	oneAppAlone = "wattd does not start or stop one application alone: it runs every application of watt.json (wattd ctl scale APP N changes its workers, wattd ctl restart APP restarts them)"
	removeApps  = "wattd does not remove applications at run time: remove them from watt.json and reload (wattd ctl reload, or SIGHUP)"
)

// unsupported answers 501 with msg, which says what to do instead.
func unsupported(msg string) func(*Server, *http.Request) (int, any, error) {
	return func(*Server, *http.Request) (int, any, error) {
		return 0, nil, &notImplemented{msg}
	}
}

// wattErrorBody is Watt's error answer (fastify's).
type wattErrorBody struct {
	StatusCode int    `json:"statusCode"`
	Code       string `json:"code,omitempty"`
	Error      string `json:"error"`
	Message    string `json:"message"`
}

// codedError carries the code Watt's answer has for the same error, which
// wattpm tells apart by, and Watt's status for it when that is not the
// one the error would have (0).
type codedError struct {
	code   string
	err    error
	status int
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func (e *codedError) httpStatus() int { return e.status }

func wattError(status int, err error) any {
	b := wattErrorBody{StatusCode: status, Error: http.StatusText(status), Message: err.Error()}
	var ce *codedError
	if errors.As(err, &ce) {
		b.Code = ce.code
	}
	return b
}

// findWattApp is Server.findApp with Watt's answer for an unknown
// application: its code, and 500, which `wattpm inject` looks for to tell
// an unknown application from the application's own 404.
func findWattApp(s *Server, id string) (supervisor.AppStatus, error) {
	a, err := s.findApp(id)
	if err != nil {
		return a, appNotFound(err)
	}
	return a, nil
}

func appNotFound(err error) error {
	return &codedError{code: "PLT_RUNTIME_APPLICATION_NOT_FOUND", err: err, status: http.StatusInternalServerError}
}

// wattState is Watt's word for a runtime or application state.
func wattState(s string) string {
	switch s {
	case "running":
		return "started"
	default:
		return s
	}
}

func (w *wattAPI) status(s *Server, _ *http.Request) (int, any, error) {
	return http.StatusOK, map[string]string{"status": wattState(s.b.Status().State)}, nil
}

// wattMetadata is GET /api/v1/metadata: what `wattpm ps` lists.
type wattMetadata struct {
	PID                 int      `json:"pid"`
	Cwd                 string   `json:"cwd"`
	Argv                []string `json:"argv"`
	UptimeSeconds       int64    `json:"uptimeSeconds"`
	ExecPath            string   `json:"execPath"`
	NodeVersion         *string  `json:"nodeVersion"`
	ProjectDir          string   `json:"projectDir"`
	PackageName         *string  `json:"packageName"`
	PackageVersion      *string  `json:"packageVersion"`
	URL                 *string  `json:"url"`
	PlatformaticVersion string   `json:"platformaticVersion"`
	// Wattd says which runtime this is, for tools that list both.
	Wattd string `json:"wattd"`
}

func (w *wattAPI) metadata(s *Server, _ *http.Request) (int, any, error) {
	st := s.b.Status()
	m := wattMetadata{
		PID: os.Getpid(), Argv: os.Args, UptimeSeconds: int64(st.Uptime),
		ProjectDir: st.ProjectDir, PlatformaticVersion: w.o.Version, Wattd: w.o.Version,
	}
	m.Cwd, _ = os.Getwd()
	m.ExecPath, _ = os.Executable()
	if st.URL != "" {
		m.URL = &st.URL
	}
	name, version := projectPackage(st.ProjectDir)
	if name == "" && w.o.Name != "" {
		name = w.o.Name
	}
	if name != "" {
		m.PackageName = &name
	}
	if version != "" {
		m.PackageVersion = &version
	}
	return http.StatusOK, m, nil
}

// projectPackage reads the name and version of dir's package.json, as Watt
// names a runtime; "" for what it lacks.
func projectPackage(dir string) (name, version string) {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return "", ""
	}
	var p struct {
		Name    any `json:"name"`
		Version any `json:"version"`
	}
	if json.Unmarshal(data, &p) != nil {
		return "", ""
	}
	name, _ = p.Name.(string)
	version, _ = p.Version.(string)
	return name, version
}

// config answers the running configuration as watt.json gave it
// (placeholders replaced, the keys wattd ignores left out, secrets
// masked), as Watt answers its resolved configuration; with
// ?metadata=true, also where it came from, as Watt's __metadata.
func (w *wattAPI) config(s *Server, r *http.Request) (int, any, error) {
	src, err := s.configSource("config")
	if err != nil {
		return 0, nil, err
	}
	cfg := src.Config()
	if cfg == nil {
		return 0, nil, fmt.Errorf("config: %w", errUnsupported)
	}
	var tree any = map[string]any{}
	if len(cfg.Resolved) > 0 {
		if err := json.Unmarshal(cfg.Resolved, &tree); err != nil {
			return 0, nil, fmt.Errorf("config: %w", err)
		}
	}
	tree = secrets.Tree(tree)
	if m, ok := tree.(map[string]any); ok && r.URL.Query().Get("metadata") == "true" {
		m["__metadata"] = map[string]any{"root": cfg.Dir, "path": cfg.File, "production": w.o.Production}
	}
	return http.StatusOK, tree, nil
}

// envObject is env (NAME=value) as a JSON object, later values winning.
func envObject(env []string) map[string]string {
	out := make(map[string]string, len(env))
	for _, kv := range secrets.Environ(env) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

func (w *wattAPI) env(s *Server, _ *http.Request) (int, any, error) {
	src, err := s.configSource("env")
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, envObject(src.RuntimeEnv().Env), nil
}

// stop begins the shutdown and answers once the runtime has stopped its
// applications, as Watt answers after closing (wattd closes this server
// last).
func (w *wattAPI) stop(s *Server, r *http.Request) (int, any, error) {
	s.log.Info("stopping on request (management API)")
	s.b.Stop()
	select {
	case <-s.ctx.Done():
	case <-r.Context().Done():
	}
	return http.StatusOK, struct{}{}, nil
}

// restartRequest is the body of POST /api/v1/restart.
type restartRequest struct {
	Applications []string `json:"applications"`
}

// restart restarts the applications named, or every one, each worker
// after the other as wattd ctl restart does, and answers when they are
// ready.
func (w *wattAPI) restart(s *Server, r *http.Request) (int, any, error) {
	var req restartRequest
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 64<<10))
	if err != nil {
		return 0, nil, badRequest("restart: %v", err)
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return 0, nil, badRequest("restart: the body must be {\"applications\": [ID, ...]}: %v", err)
		}
	}
	ids := req.Applications
	if len(ids) == 0 {
		for _, a := range s.b.Apps() {
			ids = append(ids, a.ID)
		}
	}
	for _, id := range ids {
		if _, err := findWattApp(s, id); err != nil {
			return 0, nil, err
		}
	}
	for _, id := range ids {
		s.log.Debug("restarting app on request (management API)", zap.String("app", id))
		if err := s.b.RestartApp(s.ctx, id); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, struct{}{}, nil
}

// wattJob is a scheduler job as Watt lists it.
type wattJob struct {
	Name           string     `json:"name"`
	Cron           string     `json:"cron"`
	CallbackURL    string     `json:"callbackUrl"`
	Method         string     `json:"method"`
	MaxRetries     int        `json:"maxRetries"`
	Source         string     `json:"source"`
	Paused         bool       `json:"paused"`
	LastExecutedAt *time.Time `json:"lastExecutedAt"`
	LastStatus     *string    `json:"lastStatus"`
	NextRunAt      *time.Time `json:"nextRunAt"`
}

func toWattJob(st scheduler.Status) wattJob {
	j := wattJob{Name: st.Name, Cron: st.Cron, CallbackURL: st.CallbackURL, Method: st.Method, MaxRetries: st.MaxRetries,
		Source: "config", Paused: st.Paused, LastExecutedAt: st.LastExecutedAt, NextRunAt: st.NextRunAt}
	if st.LastStatus != "" {
		ls := st.LastStatus
		j.LastStatus = &ls
	}
	return j
}

func (w *wattAPI) scheduler(s *Server, _ *http.Request) (int, any, error) {
	sc, err := s.scheduler()
	if err != nil {
		return 0, nil, err
	}
	jobs := []wattJob{}
	for _, st := range sc.SchedulerJobs() {
		jobs = append(jobs, toWattJob(st))
	}
	return http.StatusOK, map[string]any{"jobs": jobs}, nil
}

func (w *wattAPI) schedulerPause(s *Server, r *http.Request) (int, any, error) {
	return schedulerPaused(s, r, true)
}

func (w *wattAPI) schedulerResume(s *Server, r *http.Request) (int, any, error) {
	return schedulerPaused(s, r, false)
}

func schedulerPaused(s *Server, r *http.Request, pause bool) (int, any, error) {
	st, err := s.pauseJob(r.PathValue("name"), pause)
	if err != nil {
		return 0, nil, jobError(err)
	}
	return http.StatusOK, toWattJob(st), nil
}

func (w *wattAPI) schedulerRun(s *Server, r *http.Request) (int, any, error) {
	sc, err := s.scheduler()
	if err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	ok, err := sc.RunSchedulerJob(r.Context(), name)
	if err != nil {
		return 0, nil, jobError(err)
	}
	return http.StatusOK, SchedulerRun{Name: name, Success: ok}, nil
}

// jobError gives an unknown job's error Watt's code.
func jobError(err error) error {
	if errors.Is(err, ErrNotFound) {
		return &codedError{code: "PLT_RUNTIME_SCHEDULER_JOB_NOT_FOUND", err: err}
	}
	return err
}

// wattApplication is an application as Watt details it.
type wattApplication struct {
	ID           string   `json:"id"`
	Type         string   `json:"type"`
	Config       *string  `json:"config"`
	Path         string   `json:"path"`
	Status       string   `json:"status"`
	Dependencies []string `json:"dependencies"`
	Version      *string  `json:"version"`
	LocalURL     string   `json:"localUrl"`
	Entrypoint   bool     `json:"entrypoint"`
	SourceMaps   bool     `json:"sourceMaps"`
	// Workers is given in production only, as Watt (wattpm's table has
	// no such column under dev and breaks on a row with it).
	Workers *int    `json:"workers,omitempty"`
	URL     *string `json:"url,omitempty"`
}

// wattType is Watt's type for a wattd capability (@platformatic/node's
// is "nodejs"); the others have the same name in both.
func wattType(capability string) string {
	if capability == "node" {
		return "nodejs"
	}
	return capability
}

func (w *wattAPI) details(a supervisor.AppStatus, cfg *config.Config, st supervisor.RuntimeStatus) wattApplication {
	d := wattApplication{ID: a.ID, Type: wattType(a.Capability), Status: wattState(a.State), Dependencies: []string{},
		LocalURL: "http://" + a.ID + "." + mesh.Domain, Entrypoint: a.Entrypoint}
	if w.o.Production {
		n := len(a.Workers)
		d.Workers = &n
	}
	if cfg != nil {
		for _, ca := range cfg.Applications {
			if ca.ID == a.ID {
				d.Path = ca.Path
				if ca.Dependencies != nil {
					d.Dependencies = ca.Dependencies
				}
			}
		}
	}
	if a.Entrypoint {
		var u *string
		if d.Status == "started" && st.URL != "" {
			u = &st.URL
		}
		d.URL = u
	}
	return d
}

func runtimeConfig(s *Server) *config.Config {
	if src, err := s.configSource("config"); err == nil {
		return src.Config()
	}
	return nil
}

func (w *wattAPI) applications(s *Server, _ *http.Request) (int, any, error) {
	st := s.b.Status()
	cfg := runtimeConfig(s)
	apps := []wattApplication{}
	for _, a := range s.b.Apps() {
		apps = append(apps, w.details(a, cfg, st))
	}
	return http.StatusOK, map[string]any{"entrypoint": st.Entrypoint, "production": w.o.Production, "applications": apps}, nil
}

func (w *wattAPI) application(s *Server, r *http.Request) (int, any, error) {
	a, err := findWattApp(s, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, w.details(a, runtimeConfig(s), s.b.Status()), nil
}

// applicationConfig answers the application's own configuration in
// Watt's shape (node, application), as its workers see it in
// globalThis.platformatic.config: what wattpm config PID APP prints.
func (w *wattAPI) applicationConfig(s *Server, r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	if _, err := findWattApp(s, id); err != nil {
		return 0, nil, err
	}
	if cfg := runtimeConfig(s); cfg != nil {
		for _, ca := range cfg.Applications {
			if ca.ID == id {
				return http.StatusOK, secrets.Tree(supervisor.OwnConfig(ca)), nil
			}
		}
	}
	return 0, nil, appNotFound(fmt.Errorf("%w %q in the configuration", ErrNotFound, id))
}

// applicationEnv answers the environment of the application's first
// worker, secrets masked.
func (w *wattAPI) applicationEnv(s *Server, r *http.Request) (int, any, error) {
	src, err := s.configSource("env")
	if err != nil {
		return 0, nil, err
	}
	id := r.PathValue("id")
	if _, err := findWattApp(s, id); err != nil {
		return 0, nil, err
	}
	env, err := src.WorkerEnv(id, 0)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, envObject(env.Env), nil
}

// proxy sends the request on to the application over the mesh, as
// wattpm inject asks, and answers with its response. The path goes on as
// the client sent it, escapes and all ("path" is escaped: handler).
func (w *wattAPI) proxy(s *Server, r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	if _, err := findWattApp(s, id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, proxyAnswer{table: s.b.Table(), id: id, path: "/" + r.PathValue("path"), log: s.log}, nil
}

// proxyAnswer writes the application's answer to a proxied request.
type proxyAnswer struct {
	table *ipc.MeshTable
	id    string
	path  string
	log   *zap.Logger
}

func (p proxyAnswer) write(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	u := "http://" + p.id + "." + mesh.Domain + p.path
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, u, r.Body)
	if err != nil {
		writeWattError(w, http.StatusBadRequest, err)
		return
	}
	out.Header = r.Header.Clone()
	dropHopHeaders(out.Header)
	// As Watt: the body goes on as it came, its encoding header does not.
	out.Header.Del("Content-Encoding")
	out.ContentLength = r.ContentLength
	client := mesh.NewClient(mesh.StaticResolver{T: p.table})
	// The application's redirect is its answer, as Watt's inject gives it;
	// following it would answer for another request.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(out)
	if err != nil {
		writeWattError(w, http.StatusBadGateway, fmt.Errorf("%s %s: %w", r.Method, u, err))
		return
	}
	defer resp.Body.Close()
	dropHopHeaders(resp.Header)
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		p.log.Debug("management API: proxied response cut", zap.String("app", p.id), zap.Error(err))
	}
}

// dropHopHeaders deletes what describes one connection rather than the
// message (RFC 9110, 7.6.1), and Content-Length, which the connection on
// the other side sets for itself.
func dropHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"} {
		h.Del(name)
	}
}

func writeWattError(w http.ResponseWriter, status int, err error) {
	data, _ := json.Marshal(wattError(status, err))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// handlerAnswer serves a request with an http.Handler.
type handlerAnswer struct{ h http.Handler }

func (a handlerAnswer) write(_ context.Context, w http.ResponseWriter, r *http.Request) {
	a.h.ServeHTTP(w, r)
}

// metrics answers what the metrics server's endpoint answers (text, or
// Watt's JSON for a client that asks for JSON only), without its
// credentials: the socket is its owner's. 501 when the metrics are off,
// as Watt.
func (w *wattAPI) metrics(s *Server, _ *http.Request) (int, any, error) {
	if w.o.Metrics == nil {
		return 0, nil, &notImplemented{"Metrics are disabled."}
	}
	return http.StatusOK, handlerAnswer{w.o.Metrics}, nil
}

// logsLive streams every line wattd logs from now on (its own and the
// applications', as its JSON output has them) over a WebSocket, one line
// a message, as Watt's live log stream; `wattpm logs` reads it.
func (w *wattAPI) logsLive(s *Server, r *http.Request) (int, any, error) {
	recent, err := s.recentLogs()
	if err != nil {
		return 0, nil, err
	}
	if !headerHas(r.Header, "Upgrade", "websocket") {
		// A HEAD too: it upgrades nothing.
		return 0, nil, badRequest("the live log stream is a WebSocket")
	}
	return http.StatusOK, liveLogs{recent: recent}, nil
}

// liveLogsStall is how long a line may wait for the live log stream's
// client to take it.
const liveLogsStall = 30 * time.Second

// missedLine is the line that tells a live log stream's reader that n
// lines were dropped for it, a warning in the shape of wattd's own lines
// so that wattpm logs shows it.
func missedLine(n uint64) []byte {
	host, _ := os.Hostname()
	data, _ := json.Marshal(struct {
		Level    int    `json:"level"`
		Time     int64  `json:"time"`
		Msg      string `json:"msg"`
		Missed   uint64 `json:"missed"`
		PID      int    `json:"pid"`
		Hostname string `json:"hostname"`
	}{40, time.Now().UnixMilli(), fmt.Sprintf("%d log lines were dropped for this reader, which fell too far behind", n), n, os.Getpid(), host})
	return append(data, '\n')
}

// liveLogs is the WebSocket stream of logsLive.
type liveLogs struct {
	recent *logs.Recent
}

func (l liveLogs) write(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	ws := websocket.Server{
		// The socket is private to its owner; there is no browser origin
		// to check, and wattpm sends none.
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler: func(c *websocket.Conn) {
			defer c.Close()
			c.PayloadType = websocket.TextFrame
			_, fo := l.recent.Follow(logs.Filter{Worker: -1}, 0)
			defer fo.Close()
			// The client sends nothing; reading tells when it has gone.
			gone := make(chan struct{})
			go func() {
				defer close(gone)
				io.Copy(io.Discard, c)
			}()
			for {
				select {
				case <-ctx.Done():
					return
				case <-gone:
					return
				case line := <-fo.Lines():
					// A client that takes nothing for that long (a
					// stopped wattpm logs) is let go.
					c.SetWriteDeadline(time.Now().Add(liveLogsStall))
					if _, err := c.Write(append(line.JSON, '\n')); err != nil {
						return
					}
					// Lines are dropped only while the queue is full, so
					// the gap comes after the lines queued then: here.
					if len(fo.Lines()) == 0 {
						if n := fo.Missed(); n > 0 {
							if _, err := c.Write(missedLine(n)); err != nil {
								return
							}
						}
					}
				}
			}
		},
	}
	ws.ServeHTTP(w, r)
}
