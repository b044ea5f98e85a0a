package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/cgroups"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/logs"
	"github.com/wattd/wattd/supervisor/restart"
	"github.com/wattd/wattd/supervisor/rundir"
	"github.com/wattd/wattd/supervisor/telemetry"
)

// ErrAllFailed is returned by Run when every application has given up.
var ErrAllFailed = errors.New("every application failed")

// ErrStartFailed is matched by the error Run returns when the entrypoint
// could not start: every one of its workers gave up before any was ready.
// With nothing to serve, the runtime stops, as Watt's does; in development
// it goes on, for the file watcher to restart the entrypoint once fixed.
var ErrStartFailed = errors.New("the entrypoint could not start")

// startAttempts is how many times a worker slot that was never ready is
// started before it gives up: Watt's first start and its five retries.
const startAttempts = 6

// ErrNotFound is returned for an unknown application id.
var ErrNotFound = errors.New("unknown app")

// ErrConflict is matched (errors.Is) by errors about a request that
// conflicts with what the runtime is doing, such as a restart asked for
// during shutdown. The admin API answers them with 409.
var ErrConflict = errors.New("conflict")

// conflict is an error that matches ErrConflict and reads as its text.
type conflict string

func (c conflict) Error() string        { return string(c) }
func (c conflict) Is(target error) bool { return target == ErrConflict }

// Options configure a Runtime.
type Options struct {
	Config  *config.Config
	Logger  *zap.Logger
	RunDir  *rundir.Dir
	Version string
	Mode    capabilities.Mode // production (start) or development (dev)
}

// Runtime runs the applications of one watt.json.
type Runtime struct {
	cfg     *config.Config
	log     *zap.Logger
	dir     *rundir.Dir
	version string
	mode    capabilities.Mode
	apps    []*app
	byID    map[string]*app
	url     string

	// started is set by New, before the admin API can read it, and never
	// written again: the runtime's age is counted from its sockets.
	started  time.Time
	stopOnce sync.Once
	stopping chan struct{} // closed when shutdown begins
	killOnce sync.Once
	killed   chan struct{} // closed by Kill: shutdown no longer waits for workers
	changed  chan struct{} // poked (non-blocking) on slot state changes
	mesh     meshState
	msgs     *messenger    // routes messaging between workers
	failures chan struct{} // poked when a slot gives up
	// cgroups makes each worker process's cgroup (or, where cgroups
	// cannot be used, the /proc stand-in that still finds its processes).
	cgroups *cgroups.Manager
	// tracing exports the spans workers send; nil when telemetry is off.
	tracing *telemetry.Pipeline

	// noProtocolAfter is noProtocolReadyAfter; tests whose workers may
	// start slowly lengthen it.
	noProtocolAfter time.Duration
}

// app is one application and its worker slots.
type app struct {
	rt         *Runtime
	id         string
	entry      bool
	capability string
	dir        string
	launch     *capabilities.Launch
	env        []string
	limits     cgroups.Limits // each worker's, from the resources key
	health     healthRules
	policy     restart.Policy // restartOnError (the app's own, or the runtime's) and the back-off
	deps       []*app         // the applications this one waits for (its dependencies)
	slots      []*slot
	log        *zap.Logger
}

// New prepares a runtime: it resolves each application's capability and
// opens every socket. Nothing is started until Run. On error, whatever was
// opened is closed again.
func New(opts Options) (_ *Runtime, err error) {
	cfg := opts.Config
	rt := &Runtime{
		cfg:             cfg,
		started:         time.Now(),
		noProtocolAfter: noProtocolReadyAfter,
		log:             opts.Logger.Named("runtime"),
		dir:             opts.RunDir,
		version:         opts.Version,
		mode:            opts.Mode,
		byID:            map[string]*app{},
		stopping:        make(chan struct{}),
		killed:          make(chan struct{}),
		changed:         make(chan struct{}, 1),
		failures:        make(chan struct{}, 1),
	}
	timeout := cfg.MessagingTimeout
	if timeout <= 0 {
		timeout = config.DefaultMessagingTimeout
	}
	rt.msgs = newMessenger(rt.log.Named("messaging"), timeout, rt.messageTargets)
	// The cgroups first: opening them sweeps what an earlier instance of
	// this runtime left (after a kill -9), before its ports are bound.
	rt.cgroups, err = cgroups.Open(cgroups.Options{Root: cfg.Cgroups.Root, Name: filepath.Base(rt.dir.Path), Logger: rt.log})
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	if w := rt.cgroups.Warning(); w != "" {
		rt.log.Warn(w)
	}
	defer func() {
		if err != nil {
			rt.Close()
		}
	}()
	if err := rt.openProxy(); err != nil {
		return nil, err
	}
	rt.tracing, err = telemetry.New(telemetry.Options{Config: cfg.Telemetry, Logger: opts.Logger.Named("telemetry")})
	if err != nil {
		return nil, err
	}
	baseEnv := append(inheritedEnv(),
		ipc.EnvMeshDir+"="+filepath.Dir(rt.dir.MeshSocket("x", 0)),
		ipc.EnvMeshProxy+"="+rt.mesh.proxy.url,
		ipc.EnvMeshProxySocket+"="+rt.mesh.proxy.socket,
	)
	var public *net.TCPAddr
	for _, ac := range cfg.Applications {
		a := &app{rt: rt, id: ac.ID, entry: ac.ID == cfg.Entrypoint, log: opts.Logger.Named("app").With(zap.String("app", ac.ID))}
		capb, capApp, err := Resolve(cfg, ac, opts.Mode, rt.dir.Path)
		if err != nil {
			return nil, err
		}
		a.capability, a.dir = capb.ID(), ac.Path
		a.launch, err = launchFor(capb, capApp)
		if err != nil {
			return nil, fmt.Errorf("app %q (%s): %w", ac.ID, a.capability, err)
		}
		a.env = mergeEnv(baseEnv, ac.Env, a.launch.Env)
		a.limits = cgroups.Limits(ac.Resources)
		a.health.Health = ac.Health
		a.policy = policyFor(cfg, ac)
		a.health.statsEvery, a.env = statsEveryFor(ac.Health, a.env)
		for i := 0; i < ac.Workers; i++ {
			s := newSlot(a, i)
			if a.entry {
				port := cfg.Server.Port
				if public != nil {
					port = public.Port // port 0: every slot on the port the first one got
				}
				s.tcpHost, s.tcpPort = cfg.Server.Hostname, port
			}
			s.meshPath = rt.dir.MeshSocket(ac.ID, i)
			a.slots = append(a.slots, s)
			if a.entry && public == nil {
				if err := rt.checkPublicPort(s.tcpHost, s.tcpPort, nil); err != nil {
					return nil, err
				}
			}
			if err := s.openListeners(); err != nil {
				return nil, err
			}
			if a.entry && public == nil {
				public = s.addr
			}
		}
		if a.entry {
			// Again with the group open: a program that joined the port
			// between the check above and wattd's binds is caught too.
			if err := rt.checkPublicPort(cfg.Server.Hostname, public.Port, a.publicInodes()); err != nil {
				return nil, err
			}
		}
		rt.apps = append(rt.apps, a)
		rt.byID[a.id] = a
	}
	if public != nil {
		rt.url = "http://" + public.String()
	}
	port := cfg.Server.Port
	if public != nil {
		port = public.Port
	}
	infos := appInfos(cfg, opts.Mode, port)
	for _, a := range rt.apps {
		path := rt.dir.AppInfoFile(a.id)
		if err := writeAppInfo(path, infos[a.id]); err != nil {
			return nil, err
		}
		a.env = append(a.env, ipc.EnvAppInfo+"="+path)
	}
	// The config loader checked that every dependency exists and that
	// they have no cycle.
	for i, ac := range cfg.Applications {
		for _, d := range ac.Dependencies {
			if dep, ok := rt.byID[d]; ok {
				rt.apps[i].deps = append(rt.apps[i].deps, dep)
			}
		}
	}
	return rt, nil
}

// dependsOnEntry reports whether the application needs the entrypoint,
// directly or through other dependencies. The config loader refused
// cycles, so the walk ends.
func (a *app) dependsOnEntry() bool {
	for _, d := range a.deps {
		if d.entry || d.dependsOnEntry() {
			return true
		}
	}
	return false
}

// policyFor is the restart policy of one application: its own
// restartOnError when it has one, else the runtime's, with wattd's
// back-off.
func policyFor(cfg *config.Config, ac config.Application) restart.Policy {
	roe := cfg.RestartOnError
	if ac.RestartOnError != nil {
		roe = *ac.RestartOnError
	}
	return restart.Policy{
		Enabled:       roe.Enabled,
		FirstDelay:    roe.Delay,
		InitialDelay:  cfg.Restart.InitialDelay,
		MaxDelay:      cfg.Restart.MaxDelay,
		ResetAfter:    cfg.Restart.ResetAfter,
		MaxRestarts:   cfg.Restart.MaxRestarts,
		StartAttempts: startAttempts,
	}
}

// passedSettings are the only WATTD_* variables of wattd's own
// environment that workers inherit. WATTD_STATS_INTERVAL_MS is read on the
// worker side of the protocol (the Node preload, the static file worker);
// WATTD_NODE and WATTD_GO name the toolchain, so a worker that runs wattd
// or the capability tooling itself finds the same binaries. Every other
// WATTD_* variable configures this wattd (WATTD_RUNTIME_DIR,
// WATTD_LOG_FORMAT, …) or is set per worker, and an inherited copy would
// mislead a worker or shadow what wattd sets for it.
var passedSettings = map[string]bool{
	"WATTD_STATS_INTERVAL_MS": true,
	"WATTD_NODE":              true,
	"WATTD_GO":                true,
}

// inheritedEnv is wattd's environment minus what describes wattd's own
// sockets (a socket-activated wattd must not pass its LISTEN_FDS on) and
// minus wattd's own WATTD_* variables, passedSettings excepted.
func inheritedEnv() []string {
	return workerEnviron(os.Environ())
}

func workerEnviron(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LISTEN_") || k == "NOTIFY_SOCKET" ||
			strings.HasPrefix(k, "WATTD_") && !passedSettings[k] {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// mergeEnv overlays maps on a base environment; later maps win.
func mergeEnv(base []string, overlays ...map[string]string) []string {
	m := map[string]string{}
	var order []string
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := m[k]; !ok {
			order = append(order, k)
		}
		m[k] = v
	}
	for _, o := range overlays {
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				order = append(order, k)
			}
			m[k] = o[k]
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+m[k])
	}
	return out
}

// WatchTargets lists, by application id, the directories to watch in
// development mode: every application whose capability has no reloading
// dev server of its own.
func (rt *Runtime) WatchTargets() map[string]string {
	out := map[string]string{}
	for _, a := range rt.apps {
		if a.launch.NoWatch {
			continue
		}
		out[a.id] = a.dir
	}
	return out
}

// URL is the public address of the entrypoint.
func (rt *Runtime) URL() string { return rt.url }

// Run starts every worker and supervises until ctx is cancelled or Stop is
// called, then shuts down gracefully within gracefulShutdown.runtime. It
// returns ErrAllFailed if every application gave up.
func (rt *Runtime) Run(ctx context.Context) error {
	// The entrypoint stops first and the other applications after it, so
	// requests the entrypoint finishes while draining can still call them
	// on the mesh.
	entryCtx, cancelEntry := context.WithCancel(context.Background())
	restCtx, cancelRest := context.WithCancel(context.Background())
	defer cancelEntry()
	defer cancelRest()
	var entryWG, restWG sync.WaitGroup
	var entryMu sync.Mutex // orders the delayed start of the entrypoint before shutdown's Wait
	entryClosed := false
	start := func(a *app, ctx context.Context, wg *sync.WaitGroup) {
		for _, s := range a.slots {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.run(ctx)
			}()
		}
	}
	for _, a := range rt.apps {
		if !a.entry {
			start(a, restCtx, &restWG)
		}
	}
	// The entrypoint starts once every other application's first workers
	// are ready (or have failed), so its first requests find them on the
	// mesh; an application that depends on the entrypoint waits for it
	// instead.
	go func() {
		for _, a := range rt.apps {
			for _, s := range a.slots {
				if a.entry || a.dependsOnEntry() {
					continue
				}
				select {
				case <-s.settled:
				case <-rt.stopping:
					return
				}
			}
		}
		entryMu.Lock()
		defer entryMu.Unlock()
		if entryClosed {
			return
		}
		for _, a := range rt.apps {
			if a.entry {
				start(a, entryCtx, &entryWG)
			}
		}
	}()
	rt.serveProxy()
	rt.log.Info("starting", zap.Int("apps", len(rt.apps)), zap.Int("workers", rt.slotCount()), zap.String("url", rt.url))
	var runErr error
	announced := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-rt.stopping:
			break loop
		case <-rt.changed:
			rt.publishMesh()
			if !announced && rt.entryReady() {
				announced = true
				rt.log.Info("ready", zap.String("url", rt.url), zap.Duration("startup", time.Since(rt.started).Round(time.Millisecond)))
			}
		case <-rt.failures:
			if err := rt.entryStartFailed(); err != nil && rt.mode == capabilities.Development {
				// In development the file watcher restarts the entrypoint
				// when its code changes: the fix is a save away.
				rt.log.Error("the entrypoint could not start; a change to its files restarts it", zap.Error(err))
			} else if err != nil {
				runErr = err
				if rt.allFailed() {
					runErr = errors.Join(err, ErrAllFailed)
				}
				rt.log.Error("the entrypoint could not start; stopping", zap.Error(err))
				break loop
			}
			if rt.allFailed() {
				runErr = ErrAllFailed
				rt.log.Error("every application failed; stopping", zap.Strings("apps", rt.failedApps()))
				break loop
			}
		}
	}
	rt.Stop()
	rt.log.Info("stopping", zap.Duration("grace", rt.cfg.GracefulShutdown.Runtime))
	deadline := time.NewTimer(rt.cfg.GracefulShutdown.Runtime)
	defer deadline.Stop()
	// Meanwhile the mesh table keeps following the slots, so callers stop
	// picking workers that are going away.
	keepPublishing := make(chan struct{})
	defer close(keepPublishing)
	go func() {
		for {
			select {
			case <-keepPublishing:
				return
			case <-rt.changed:
				rt.publishMesh()
			}
		}
	}()
	expired := false
	phase := func(entry bool, cancel context.CancelFunc, wg *sync.WaitGroup) {
		// Stop accepting: once each worker has closed its copy too (drain),
		// the kernel refuses new connections instead of queueing them.
		rt.closeListeners(entry)
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		if !expired {
			select {
			case <-done:
				return
			case <-deadline.C:
				expired = true
				rt.log.Warn("graceful shutdown took longer than gracefulShutdown.runtime; killing the rest")
			case <-rt.killed:
				expired = true
			}
		}
		rt.kill(entry)
		<-done
	}
	entryMu.Lock()
	entryClosed = true
	entryMu.Unlock()
	phase(true, cancelEntry, &entryWG)
	phase(false, cancelRest, &restWG)
	rt.flushTracing()
	rt.closeProxy()
	rt.removeSockets()
	rt.closeCgroups()
	if n := logs.OutputDropped(); n > 0 {
		// Reaches the output only if it works again (a full disk freed);
		// `wattd ctl status` showed the count while running.
		rt.log.Warn("log entries were dropped: wattd's output could not be written", zap.Uint64("dropped", n))
	}
	rt.log.Info("stopped")
	return runErr
}

// Stop begins a graceful shutdown; it returns at once.
func (rt *Runtime) Stop() { rt.stopOnce.Do(func() { close(rt.stopping) }) }

// Kill turns a shutdown into an immediate one: every worker's process
// group gets SIGKILL now rather than at the end of its grace period. Run
// still returns the usual way, having removed its sockets, so the caller
// cleans up as after any stop. It returns at once.
func (rt *Runtime) Kill() {
	rt.Stop()
	rt.killOnce.Do(func() { close(rt.killed) })
	rt.kill(true)
	rt.kill(false)
}

func (rt *Runtime) stateChanged() {
	select {
	case rt.changed <- struct{}{}:
	default:
	}
}

func (rt *Runtime) slotFailed() {
	select {
	case rt.failures <- struct{}{}:
	default:
	}
}

// kill ends the processes of the entrypoint (entry) or of the other
// applications at once; their slots must already be stopping.
func (rt *Runtime) kill(entry bool) {
	for _, a := range rt.apps {
		if a.entry != entry {
			continue
		}
		for _, s := range a.slots {
			s.mu.Lock()
			w := s.cur
			s.mu.Unlock()
			if w != nil {
				go killWorker(w)
			}
		}
	}
}

// closeListeners closes wattd's copies of the sockets of the entrypoint
// (entry) or of the other applications.
func (rt *Runtime) closeListeners(entry bool) {
	for _, a := range rt.apps {
		if a.entry != entry {
			continue
		}
		for _, s := range a.slots {
			s.closeListeners()
		}
	}
}

// Close releases what New made, for a runtime that will not Run (Run
// releases it itself): sockets, the mesh proxy, cgroups.
func (rt *Runtime) Close() {
	rt.flushTracing()
	rt.closeListeners(true)
	rt.closeListeners(false)
	rt.closeProxy()
	rt.removeSockets()
	rt.closeCgroups()
}

// tracingFlushTimeout bounds the export of the spans still queued when
// the runtime stops: a collector that is down must not hold up the exit.
const tracingFlushTimeout = 5 * time.Second

// flushTracing exports the spans the workers sent before they stopped.
func (rt *Runtime) flushTracing() {
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
	defer cancel()
	if err := rt.tracing.Shutdown(ctx); err != nil {
		rt.log.Warn("tracing: could not export every span before stopping", zap.Error(err))
	}
}

// closeCgroups kills what is left in the runtime's cgroups and removes
// them; every worker has exited by now.
func (rt *Runtime) closeCgroups() {
	if err := rt.cgroups.Close(); err != nil {
		rt.log.Warn("could not remove the runtime's cgroups", zap.Error(err))
	}
}

// removeSockets removes the mesh socket files.
func (rt *Runtime) removeSockets() {
	for _, a := range rt.apps {
		for _, s := range a.slots {
			if s.meshPath != "" {
				os.Remove(s.meshPath)
			}
		}
	}
}

func (rt *Runtime) slotCount() int {
	n := 0
	for _, a := range rt.apps {
		n += len(a.slots)
	}
	return n
}

func (rt *Runtime) entryReady() bool {
	for _, a := range rt.apps {
		if !a.entry {
			continue
		}
		for _, s := range a.slots {
			if s.getState() != StateReady {
				return false
			}
		}
	}
	return true
}

// entryStartFailed returns an error matching ErrStartFailed when every
// worker slot of the entrypoint gave up without ever being ready, else nil.
// An entrypoint that was up and then failed (restartOnError off, a crash
// loop) leaves the runtime running, as in Watt: the other applications
// keep working and an operator's restart can bring it back.
func (rt *Runtime) entryStartFailed() error {
	for _, a := range rt.apps {
		if !a.entry {
			continue
		}
		reason := ""
		for _, s := range a.slots {
			s.mu.Lock()
			failed, up, r := s.state == StateFailed, s.everUp, s.reason
			s.mu.Unlock()
			if !failed || up {
				return nil
			}
			if reason == "" {
				reason = r
			}
		}
		return fmt.Errorf("%w: app %q: %s", ErrStartFailed, a.id, reason)
	}
	return nil
}

func (rt *Runtime) allFailed() bool {
	for _, a := range rt.apps {
		if a.state() != "failed" {
			return false
		}
	}
	return true
}

func (rt *Runtime) failedApps() []string {
	var out []string
	for _, a := range rt.apps {
		if a.state() == "failed" {
			out = append(out, a.id)
		}
	}
	return out
}

// state is "failed" when every slot gave up, "degraded" when some did,
// "starting" before every slot was ready once, else "running".
func (a *app) state() string {
	failed, up := 0, 0
	for _, s := range a.slots {
		s.mu.Lock()
		if s.state == StateFailed {
			failed++
		}
		if s.everUp {
			up++
		}
		s.mu.Unlock()
	}
	switch {
	case failed == len(a.slots):
		return "failed"
	case failed > 0:
		return "degraded"
	case up < len(a.slots):
		return "starting"
	}
	return "running"
}

// Status implements the admin backend.
func (rt *Runtime) Status() RuntimeStatus {
	st := RuntimeStatus{
		PID:        os.Getpid(),
		Version:    rt.version,
		ProjectDir: rt.cfg.Dir,
		ConfigFile: rt.cfg.File,
		Entrypoint: rt.cfg.Entrypoint,
		URL:        rt.url,
		State:      "running",
		StartedAt:  rt.started,
		Uptime:     time.Since(rt.started).Seconds(),
		Apps:       len(rt.apps),
		FailedApps: rt.failedApps(),

		MeshProxy:       rt.proxyStatus(),
		LogLinesDropped: logs.OutputDropped(),
	}
	select {
	case <-rt.stopping:
		st.State = "stopping"
	default:
		if !rt.entryReady() {
			st.State = "starting"
		}
	}
	for _, a := range rt.apps {
		for _, s := range a.slots {
			st.Workers++
			if s.getState() == StateReady {
				st.Ready++
			}
		}
	}
	return st
}

// Apps implements the admin backend.
func (rt *Runtime) Apps() []AppStatus {
	out := make([]AppStatus, 0, len(rt.apps))
	for _, a := range rt.apps {
		out = append(out, a.status())
	}
	return out
}

func (a *app) status() AppStatus {
	as := AppStatus{ID: a.id, Entrypoint: a.entry, Capability: a.capability, State: a.state()}
	for _, s := range a.slots {
		as.Workers = append(as.Workers, s.status())
		s.mu.Lock()
		if as.Reason == "" && s.reason != "" {
			as.Reason = s.reason
		}
		s.mu.Unlock()
	}
	if tr := a.rt.tracing; tr != nil {
		c := tr.Counts()[a.id]
		as.Spans = &SpanCounts{Received: c.Received, Invalid: c.Invalid, QueueFull: c.QueueFull}
	}
	return as
}

// App returns one application's status.
func (rt *Runtime) App(id string) (AppStatus, error) {
	a, ok := rt.byID[id]
	if !ok {
		return AppStatus{}, rt.notFound(id)
	}
	return a.status(), nil
}

func (rt *Runtime) notFound(id string) error {
	ids := make([]string, 0, len(rt.apps))
	for _, a := range rt.apps {
		ids = append(ids, a.id)
	}
	return fmt.Errorf("%w %q (known: %s)", ErrNotFound, id, strings.Join(ids, ", "))
}

// RestartApp restarts every worker of the application one at a time, each
// new worker ready before the old one is drained, so the app keeps serving.
// A failed or backing-off slot is started at once with a fresh crash count.
func (rt *Runtime) RestartApp(ctx context.Context, id string) error {
	a, ok := rt.byID[id]
	if !ok {
		return rt.notFound(id)
	}
	a.log.Info("rolling restart requested")
	for _, s := range a.slots {
		if err := s.requestRestart(ctx); err != nil {
			return fmt.Errorf("app %q worker %d: %w", id, s.index, err)
		}
	}
	a.log.Info("rolling restart done")
	return nil
}

// RestartAll restarts every application in turn (SIGUSR2).
func (rt *Runtime) RestartAll(ctx context.Context) error {
	var errs []error
	for _, a := range rt.apps {
		if err := rt.RestartApp(ctx, a.id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
