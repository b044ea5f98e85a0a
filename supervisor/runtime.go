package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/cgroups"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/listeners"
	"github.com/wattd/wattd/supervisor/logs"
	"github.com/wattd/wattd/supervisor/restart"
	"github.com/wattd/wattd/supervisor/rundir"
	"github.com/wattd/wattd/supervisor/scheduler"
	"github.com/wattd/wattd/supervisor/sdnotify"
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

// ErrChangeInProgress is matched by the refusal of a reload or a scaling
// while another one runs (a conflict too): trying again later can succeed.
var ErrChangeInProgress = errors.New("a reload or scaling is in progress")

// busy is that refusal.
type busy string

func (b busy) Error() string { return string(b) }
func (b busy) Is(target error) bool {
	return target == ErrConflict || target == ErrChangeInProgress
}

// notFound is an error that matches ErrNotFound and reads as its text:
// an unknown scheduler job, or an application a reload removed while it
// restarted.
type notFound string

func (n notFound) Error() string        { return string(n) }
func (n notFound) Is(target error) bool { return target == ErrNotFound }

// removed reports whether a reload took the application away.
func (a *app) removed() bool {
	cur, ok := a.rt.lookup(a.id)
	return !ok || cur != a
}

// ErrStopping is matched by a change (a restart, a reload's new workers)
// that the runtime's stop cut short: not a failure of the change.
var ErrStopping = errors.New("runtime is stopping")

// stopping is that error; it is a conflict too.
type stopping string

func (s stopping) Error() string { return string(s) }
func (s stopping) Is(target error) bool {
	return target == ErrConflict || target == ErrStopping
}

// Options configure a Runtime.
type Options struct {
	Config  *config.Config
	Logger  *zap.Logger
	RunDir  *rundir.Dir
	Version string
	Mode    capabilities.Mode // production (start) or development (dev)
	// Notify reaches the service manager (systemd); nil without one.
	Notify *sdnotify.Notifier
	// PublicSocket is a listening TCP socket passed by the service manager
	// (socket activation): every worker of the entrypoint accepts on it,
	// and server.hostname and server.port are not bound.
	PublicSocket *os.File
	// Load reads the configuration again for a reload, the way it was read
	// for the start (same files, environment and mode); nil refuses
	// reloads.
	Load func() (*config.Config, error)
	// Notifier hears when a reload begins and ends; nil tells Notify, the
	// service manager, if there is one.
	Notifier Notifier
	// LogExport is the OTLP log exporter (logger.openTelemetryExporter),
	// whose counts the status shows; nil without one.
	LogExport LogExportCounter
	// AppRemoved, when set, is called with the id of each application a
	// reload took away, once its workers are gone, so that what is kept
	// per application outside the runtime (the recent log lines of `ctl
	// logs`) goes with it: ids come and go over a long life of reloads.
	AppRemoved func(id string)
	// Inspect turns on the inspector of every Node.js worker (inspect.go);
	// nil: none.
	Inspect *Inspect
}

// LogExportCounter is what the status reads of the log exporter: the
// entries sent and those dropped.
type LogExportCounter interface {
	Counts() (exported, dropped uint64)
}

// Runtime runs the applications of one watt.json.
type Runtime struct {
	cfg *config.Config
	// gate bounds the workers starting at once (startupConcurrency).
	gate    *startGate
	log     *zap.Logger
	dir     *rundir.Dir
	version string
	mode    capabilities.Mode
	// topo guards apps, byID and every app's slots: reloads and scaling
	// replace them while the admin API, the mesh and the metrics read them.
	topo sync.RWMutex
	apps []*app
	byID map[string]*app
	url  string
	// publicPort is the entrypoint's port, fixed for the runtime's life.
	publicPort int
	appLog     *zap.Logger
	baseEnv    []string // every worker's environment before its app's own

	notify *sdnotify.Notifier
	passed *os.File // Options.PublicSocket; closed by Close or at the end of Run
	// claimed is the entrypoint's first public socket, bound by New before
	// anything else (claimPublicPort) and taken by its first slot.
	claimed     *os.File
	claimedAddr *net.TCPAddr

	// current is the configuration that runs: cfg until a reload applies
	// another (`ctl config` shows it).
	current atomic.Pointer[config.Config]

	load     func() (*config.Config, error)
	notifier Notifier
	// logExport is the OTLP log exporter, for the status; nil without.
	logExport LogExportCounter
	// appRemoved is Options.AppRemoved; nil: none.
	appRemoved func(id string)
	// onReload is what OnReload set; nil: none.
	onReload atomic.Pointer[func()]
	// sched runs the "scheduler" jobs from the moment the runtime is
	// ready (schedule.go); schedStopped: the stop came first.
	schedMu      sync.Mutex
	sched        *scheduler.Service
	schedStopped bool
	// inspect is Options.Inspect; inspectPorts hands out its ports.
	inspect      *Inspect
	inspectPorts inspectPorts
	// changing serialises reloads and scaling; one that finds it taken is
	// refused rather than queued.
	changing sync.Mutex
	// run is how Run starts and stops worker slots, for the slots that
	// reloads and scaling add after Run began.
	run    runState
	scaler *scaler
	// portGroup mirrors the kernel's order of the entrypoint's sockets,
	// and steered says a steering program is attached to them; steering
	// is what it is attached for (steering.go).
	portGroup listeners.PortGroup
	steered   atomic.Bool
	steering  steering

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

	// cacheWarned are the compile cache directories warned about as not
	// writable (checkCompileCacheWritable), under cacheMu.
	cacheMu     sync.Mutex
	cacheWarned map[string]bool

	// runDirMu serialises checkRunDir; runDirErr is the last problem it
	// logged, so that a lasting one is logged once.
	runDirMu  sync.Mutex
	runDirErr string

	// noProtocolAfter is noProtocolReadyAfter; tests whose workers may
	// start slowly lengthen it.
	noProtocolAfter time.Duration
}

// app is one application and its worker slots.
type app struct {
	rt    *Runtime
	id    string
	entry bool
	log   *zap.Logger
	// spec is how the app's workers are started; a reload that changes the
	// app swaps it, then rolls the workers onto it.
	spec atomic.Pointer[appSpec]
	// slots is guarded by rt.topo; the slice is replaced, never changed in
	// place, so a copy of it read under the lock stays valid.
	slots []*slot
	// former holds the counters of the slots a scale-down took away
	// (guarded by rt.topo, and changed with slots), so that the
	// application's totals never go down.
	former FormerCounts
	// standby is the app's standby workers (standby.go); use standbys().
	standby standbyPool
	// Rolling restarts (RestartApp): at most one runs and one waits;
	// requests made meanwhile join the waiting one. Guarded by rollMu.
	rollMu   sync.Mutex
	rolling  bool
	nextRoll *rollReq
}

// rollReq is one rolling restart of an app, shared by the requests it
// answers: done is closed when it has ended, err then says how.
type rollReq struct {
	done chan struct{}
	err  error
}

// appSpec is an application's resolved configuration as its workers use it.
type appSpec struct {
	conf       config.Application // as loaded: what a reload compares
	capability string
	dir        string
	launch     *capabilities.Launch
	env        []string
	limits     cgroups.Limits // each worker's, from the resources key
	health     healthRules
	policy     restart.Policy // restartOnError (the app's own, or the runtime's) and the back-off
	deps       []*app         // the applications this one waits for (its dependencies)
}

// sp is the app's current spec.
func (a *app) sp() *appSpec { return a.spec.Load() }

// appList is the runtime's applications; the slice is never changed in place.
func (rt *Runtime) appList() []*app {
	rt.topo.RLock()
	defer rt.topo.RUnlock()
	return rt.apps
}

// lookup finds an application by id.
func (rt *Runtime) lookup(id string) (*app, bool) {
	rt.topo.RLock()
	defer rt.topo.RUnlock()
	a, ok := rt.byID[id]
	return a, ok
}

// slotList is the app's worker slots; the slice is never changed in place.
func (a *app) slotList() []*slot {
	a.rt.topo.RLock()
	defer a.rt.topo.RUnlock()
	return a.slots
}

// New prepares a runtime: it resolves each application's capability and
// opens every socket. Nothing is started until Run. On error, whatever was
// opened is closed again.
func New(opts Options) (_ *Runtime, err error) {
	cfg := opts.Config
	rt := &Runtime{
		cfg:             cfg,
		started:         time.Now(),
		inspect:         opts.Inspect,
		noProtocolAfter: noProtocolReadyAfter,
		log:             opts.Logger.Named("runtime"),
		appLog:          opts.Logger.Named("app"),
		dir:             opts.RunDir,
		version:         opts.Version,
		mode:            opts.Mode,
		notify:          opts.Notify,
		passed:          opts.PublicSocket,
		load:            opts.Load,
		notifier:        opts.Notifier,
		logExport:       opts.LogExport,
		appRemoved:      opts.AppRemoved,
		byID:            map[string]*app{},
		stopping:        make(chan struct{}),
		killed:          make(chan struct{}),
		changed:         make(chan struct{}, 1),
		failures:        make(chan struct{}, 1),
	}
	rt.current.Store(cfg)
	rt.gate = newStartGate(startupConcurrency(cfg), startHold(cfg))
	if rt.notifier == nil && rt.notify != nil {
		rt.notifier = serviceReloads{rt}
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
	// The public port before any socket of wattd's own on a port the kernel
	// picks (the mesh proxy's, a fronted app's forwarders): those come from
	// the ephemeral range, where a configured public port may lie too.
	if err := rt.claimPublicPort(cfg); err != nil {
		return nil, err
	}
	if err := rt.openProxy(); err != nil {
		return nil, err
	}
	rt.tracing, err = telemetry.New(telemetry.Options{Config: cfg.Telemetry, Logger: opts.Logger.Named("telemetry")})
	if err != nil {
		return nil, err
	}
	rt.baseEnv = append(inheritedEnv(),
		ipc.EnvMeshDir+"="+filepath.Dir(rt.dir.MeshSocket("x", 0)),
		ipc.EnvMeshProxy+"="+rt.mesh.proxy.url,
		ipc.EnvMeshProxySocket+"="+rt.mesh.proxy.socket,
	)
	public := rt.claimedAddr
	if rt.passed != nil {
		if public, err = listeners.Addr(rt.passed); err != nil {
			return nil, fmt.Errorf("socket activation: %w", err)
		}
		rt.log.Info("using the public socket passed by the service manager; server.hostname and server.port are not bound",
			zap.String("addr", public.String()))
	}
	// Every application's launch first, so that what keeps several from
	// starting (builds not made: a Go app's, a Next.js app's) is said at
	// once, before any socket is opened.
	specs := make([]*appSpec, len(cfg.Applications))
	var specErrs []error
	for i, ac := range cfg.Applications {
		if specs[i], err = rt.buildSpec(cfg, ac); err != nil {
			specErrs = append(specErrs, err)
		}
	}
	if len(specErrs) > 0 {
		return nil, errors.Join(specErrs...)
	}
	for i, ac := range cfg.Applications {
		a := &app{rt: rt, id: ac.ID, entry: ac.ID == cfg.Entrypoint, log: rt.appLog.With(zap.String("app", ac.ID))}
		a.spec.Store(specs[i])
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
			if err := s.openListeners(); err != nil {
				return nil, err
			}
			if a.entry && public == nil {
				public = s.addr
			}
		}
		if a.entry && rt.passed == nil {
			// Again with the group open: a program that joined the port
			// between claimPublicPort's check and wattd's binds is caught
			// too.
			if err := rt.checkPublicPort(cfg.Server.Hostname, public.Port, a.publicInodes()); err != nil {
				return nil, err
			}
		}
		rt.apps = append(rt.apps, a)
		rt.byID[a.id] = a
	}
	if public != nil {
		rt.url = "http://" + public.String()
		if public.IP.IsUnspecified() {
			// Every interface: the URL to print is one that answers here.
			host := "127.0.0.1"
			if strings.Contains(cfg.Server.Hostname, ":") {
				host = "::1" // an IPv6 wildcard written as such
			}
			rt.url = "http://" + net.JoinHostPort(host, strconv.Itoa(public.Port))
		}
		rt.publicPort = public.Port
	} else {
		rt.publicPort = cfg.Server.Port
	}
	if err := rt.writeAppInfos(cfg); err != nil {
		return nil, err
	}
	// The config loader checked that every dependency exists and that
	// they have no cycle.
	for _, a := range rt.apps {
		a.sp().deps = rt.depsOf(a.sp().conf, rt.byID)
	}
	rt.scaler = newScaler(rt, cfg)
	return rt, nil
}

// resolve is Resolve for the runtime's applications, whose workers read
// the info file wattd writes in its runtime directory.
func (rt *Runtime) resolve(cfg *config.Config, ac config.Application) (capabilities.Capability, capabilities.App, error) {
	c, app, err := Resolve(cfg, ac, rt.mode, rt.dir.Path)
	app.InfoFile = rt.dir.AppInfoFile(ac.ID)
	app.DiagDir = DiagDir(rt.dir.Path)
	return c, app, err
}

// buildSpec resolves how the workers of application ac start.
func (rt *Runtime) buildSpec(cfg *config.Config, ac config.Application) (*appSpec, error) {
	launch, capID, err := rt.prepareLaunch(cfg, ac)
	if err != nil {
		return nil, err
	}
	sp := &appSpec{conf: ac, capability: capID, dir: ac.Path, launch: launch}
	if ac.Standby > 0 && (!sp.launch.Standby || sp.launch.Fronted) {
		return nil, fmt.Errorf("%s: %s/standby: %s", cfg.File, ac.Pointer, noStandby(ac.ID, sp.capability))
	}
	// PLT_ROOT is the configuration's directory, as Watt sets it for its
	// applications over any inherited value; the application's own env
	// block may still set it.
	root := map[string]string{}
	if cfg.File != "" {
		root["PLT_ROOT"] = filepath.Dir(cfg.File)
	}
	sp.env = mergeEnv(rt.baseEnv, root, ac.Env, sp.launch.Env)
	if flag := inspectorOption(sp.env); flag != "" && sp.launch.Protocol && ac.Workers+ac.Standby > 1 {
		rt.log.Warn("NODE_OPTIONS opens the inspector in every worker, all on the same port: only the first worker gets it, the others log \"address already in use\"; wattd start --inspect gives each worker its own port",
			zap.String("app", ac.ID), zap.String("option", flag), zap.Int("workers", ac.Workers+ac.Standby))
	}
	if rt.inspect != nil && sp.launch.Direct && ac.Watt.Permissions.On() {
		rt.log.Warn("permissions: Node.js's permission model keeps the inspector of this application's workers closed; Node.js 24 and later open it with --allow-inspector in execArgv, which lets the inspector past the model",
			zap.String("app", ac.ID))
	}
	sp.env = rt.withCompileCache(ac, sp.env)
	sp.limits = cgroups.Limits(ac.Resources)
	if ac.LogLevel != "" {
		// The level of the app's globalThis.platformatic.logger (its app
		// info); checked here as the schema allows any string.
		if _, err := logs.ParseLevel(ac.LogLevel); err != nil {
			return nil, fmt.Errorf("app %q: logger.level: %w", ac.ID, err)
		}
	}
	sp.health.Health = ac.Health
	sp.policy = policyFor(cfg, ac)
	sp.health.statsEvery, sp.env = statsEveryFor(ac.Health, sp.env)
	sp.env = append(sp.env, ipc.EnvAppInfo+"="+rt.dir.AppInfoFile(ac.ID))
	return sp, nil
}

// prepareLaunch asks the application's capability how to start its
// workers: what a deploy can change without a word in the configuration
// (package.json's main, a start script, a build's output) is read here.
func (rt *Runtime) prepareLaunch(cfg *config.Config, ac config.Application) (*capabilities.Launch, string, error) {
	capb, capApp, err := rt.resolve(cfg, ac)
	if err != nil {
		return nil, "", err
	}
	launch, err := launchFor(capb, capApp)
	if err != nil {
		if strings.Contains(err.Error(), fmt.Sprintf("app %q", ac.ID)) {
			return nil, "", err // the capability's message names the app already
		}
		return nil, "", fmt.Errorf("app %q (%s): %w", ac.ID, capb.ID(), err)
	}
	if ac.WorkerProtocol {
		launch.Protocol = true
	}
	return launch, capb.ID(), nil
}

// launchChanged tells whether the application of sp, prepared again from
// ac, would start differently: the entry in its package.json or the
// start command its capability reads changed since its workers started.
func (rt *Runtime) launchChanged(cfg *config.Config, ac config.Application, sp *appSpec) (bool, error) {
	launch, capID, err := rt.prepareLaunch(cfg, ac)
	if err != nil {
		return false, err
	}
	return capID != sp.capability || !reflect.DeepEqual(launch, sp.launch), nil
}

// inspectorOption returns the option of env's NODE_OPTIONS that opens
// Node.js's inspector (--inspect, --inspect-brk, --inspect-wait, with or
// without =[host:]port), or "".
func inspectorOption(env []string) string {
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, "NODE_OPTIONS=")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(v) {
			name, _, _ := strings.Cut(f, "=")
			switch name {
			case "--inspect", "--inspect-brk", "--inspect-wait":
				return f
			}
		}
	}
	return ""
}

// envCompileCache is Node.js's switch for its module compile cache.
const envCompileCache = "NODE_COMPILE_CACHE"

// withCompileCache adds NODE_COMPILE_CACHE for the application's
// compileCache to env, creating the directory. A value env already has
// (from wattd's environment or the application's env) is kept. A directory
// that cannot be made is warned about and the application starts without
// the cache: the cache only saves time.
func (rt *Runtime) withCompileCache(ac config.Application, env []string) []string {
	dir := ac.CompileCache
	if dir == "" {
		return env
	}
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == envCompileCache && v != "" {
			rt.log.Debug("compileCache: NODE_COMPILE_CACHE is set already and wins", zap.String("app", ac.ID), zap.String("directory", v))
			return env
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		rt.log.Warn("compileCache: cannot create the directory; the application starts without the compile cache",
			zap.String("app", ac.ID), zap.String("directory", dir), zap.Error(err))
		return env
	}
	rt.checkCompileCacheWritable(ac.ID, dir)
	// An empty NODE_COMPILE_CACHE= would come first and win over ours.
	env = slices.DeleteFunc(env, func(kv string) bool { return kv == envCompileCache+"=" })
	return append(env, envCompileCache+"="+dir)
}

// checkCompileCacheWritable warns, once per directory, when the compile
// cache's directory exists but the workers (wattd's user) cannot write to
// it: a read-only mount, another owner. Node.js says nothing then; it
// reads what the directory holds, and never adds to it.
func (rt *Runtime) checkCompileCacheWritable(app, dir string) {
	err := unix.Access(dir, unix.W_OK|unix.X_OK)
	if err == nil {
		return
	}
	rt.cacheMu.Lock()
	defer rt.cacheMu.Unlock()
	if rt.cacheWarned[dir] {
		return
	}
	if rt.cacheWarned == nil {
		rt.cacheWarned = map[string]bool{}
	}
	rt.cacheWarned[dir] = true
	rt.log.Warn("compileCache: the workers cannot write to the directory; Node.js will only read the cache already there, never write it",
		zap.String("app", app), zap.String("directory", dir), zap.Int("uid", os.Geteuid()), zap.Error(err))
}

// depsOf finds the applications ac depends on among byID.
func (rt *Runtime) depsOf(ac config.Application, byID map[string]*app) []*app {
	var deps []*app
	for _, d := range ac.Dependencies {
		if dep, ok := byID[d]; ok {
			deps = append(deps, dep)
		}
	}
	return deps
}

// writeAppInfos writes the app info file of every application of cfg;
// workers read theirs when they start. It also makes the directory they
// write diagnostics in (DiagDir): Node.js's permission model lets a
// worker write under a directory only if it exists when the worker starts.
func (rt *Runtime) writeAppInfos(cfg *config.Config) error {
	if err := os.Mkdir(DiagDir(rt.dir.Path), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	infos := appInfos(cfg, rt.mode, rt.publicPort)
	for _, ac := range cfg.Applications {
		if err := writeAppInfo(rt.dir.AppInfoFile(ac.ID), infos[ac.ID]); err != nil {
			return err
		}
	}
	return nil
}

// dependsOnEntry reports whether the application needs the entrypoint,
// directly or through other dependencies. The config loader refused
// cycles, so the walk ends.
func (a *app) dependsOnEntry() bool {
	for _, d := range a.sp().deps {
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
// dev server of its own, unless Watt's "watch" turns it off (the runtime's,
// or the application's own), as the configuration that runs says: after a
// reload, the reloaded one's.
func (rt *Runtime) WatchTargets() map[string]WatchTarget {
	out := map[string]WatchTarget{}
	if rt.current.Load().NoWatch {
		return out
	}
	for _, a := range rt.appList() {
		sp := a.sp()
		if sp.launch.NoWatch || sp.conf.Watch.Off {
			continue
		}
		out[a.id] = WatchTarget{Dir: sp.dir, Allow: sp.conf.Watch.Allow, Ignore: sp.conf.Watch.Ignore}
	}
	return out
}

// WatchTarget is an application folder wattd dev watches, with the globs of
// the application's "watch" (relative to Dir): a change counts when it
// matches Allow (every change when Allow is empty) and no Ignore.
type WatchTarget struct {
	Dir           string
	Allow, Ignore []string
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
	r := &rt.run
	r.mu.Lock()
	r.entryCtx, r.cancelEntry = context.WithCancel(context.Background())
	r.restCtx, r.cancelRest = context.WithCancel(context.Background())
	r.running = true
	r.mu.Unlock()
	defer r.cancelEntry()
	defer r.cancelRest()
	rt.warnLowProcLimit()
	for _, a := range rt.appList() {
		if !a.entry {
			rt.startSlots(a.slotList())
		}
	}
	// The entrypoint starts once every other application's first workers
	// are ready (or have failed), so its first requests find them on the
	// mesh; an application that depends on the entrypoint waits for it
	// instead.
	go func() {
		for _, a := range rt.appList() {
			for _, s := range a.slotList() {
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
		r.mu.Lock()
		r.entryStarted = true
		r.mu.Unlock()
		for _, a := range rt.appList() {
			if a.entry {
				rt.startSlots(a.slotList())
			}
		}
	}()
	if rt.scaler != nil {
		go rt.scaler.run()
	}
	rt.serveProxy()
	// The admin and mesh proxy sockets are up: give them their second
	// names, then look after the directory.
	rt.checkRunDir()
	go rt.watchRunDir(ctx)
	rt.log.Info("starting", zap.Int("apps", len(rt.appList())), zap.Int("workers", rt.slotCount()),
		zap.Int("startupConcurrency", rt.gate.limit()), zap.String("url", rt.url))
	rt.warnLowFDLimit()
	var runErr error
	announced := false
	rt.tellService()
	// Keep-alives come from this loop, not a timer of their own, so a
	// stuck loop stops them and the service manager restarts wattd.
	watchdog, stopWatchdog := rt.watchdogTicks()
	defer stopWatchdog()
	extend, stopExtend := rt.extendTicks()
	defer stopExtend()
	mesh := newMeshPacer(rt.publishMesh, meshPublishGap)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-rt.stopping:
			break loop
		case <-watchdog:
			rt.notify.Watchdog()
		case <-extend:
			if !rt.notify.Starting() {
				stopExtend()
				extend = nil
				continue
			}
			rt.notify.ExtendStart(startExtension)
		case <-mesh.due():
			mesh.fire()
		case <-rt.changed:
			mesh.changed()
			rt.tellService()
			if !announced && rt.entryReady() {
				announced = true
				rt.log.Info("ready", zap.String("url", rt.url), zap.Duration("startup", time.Since(rt.started).Round(time.Millisecond)))
				rt.startScheduler()
			}
		case <-rt.failures:
			rt.tellService()
			if err := rt.entryStartFailed(); err != nil && rt.mode == capabilities.Development {
				// In development the file watcher restarts the entrypoint
				// when its code changes: the fix is a save away.
				rt.log.Error("the entrypoint could not start; a change to its files restarts it", zap.Error(err))
			} else if err != nil {
				runErr = err
				if rt.allFailed() {
					runErr = alsoAllFailed{err}
				}
				rt.log.Error("the entrypoint could not start; stopping", zap.Error(err))
				break loop
			}
			if rt.allFailed() {
				if rt.mode == capabilities.Development {
					// A one-application project with a syntax error:
					// the same promise as for the entrypoint above.
					rt.log.Error("every application failed; a change to their files restarts them", zap.Strings("apps", rt.failedApps()))
					continue
				}
				runErr = ErrAllFailed
				rt.log.Error("every application failed; stopping", zap.Strings("apps", rt.failedApps()))
				break loop
			}
		}
	}
	rt.Stop()
	rt.stopScheduler()
	rt.notify.Stopping()
	rt.log.Info("stopping", zap.Duration("grace", rt.cfg.GracefulShutdown.Runtime))
	deadline := time.NewTimer(rt.cfg.GracefulShutdown.Runtime)
	defer deadline.Stop()
	// Meanwhile the mesh table keeps following the slots, so callers stop
	// picking workers that are going away.
	keepPublishing := make(chan struct{})
	publishing := make(chan struct{})
	defer func() { close(keepPublishing); <-publishing }()
	go func() {
		defer close(publishing)
		defer mesh.stop()
		for {
			select {
			case <-keepPublishing:
				return
			case <-mesh.due():
				mesh.fire()
			case <-rt.changed:
				mesh.changed()
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
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	phase(true, r.cancelEntry, &r.entryWG)
	phase(false, r.cancelRest, &r.restWG)
	rt.flushTracing()
	rt.closePassed()
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

// runState is what Run made to start and stop worker slots.
type runState struct {
	mu                      sync.Mutex // guards the fields below and the Adds of the wait groups
	running                 bool       // Run has begun
	entryStarted            bool       // the entrypoint's turn came
	closed                  bool       // shutdown waits on the groups: no new slot may start
	entryCtx, restCtx       context.Context
	cancelEntry, cancelRest context.CancelFunc
	entryWG, restWG         sync.WaitGroup
}

// startSlots starts the owner goroutines of slots, each with a context of
// its own under its group's (the entrypoint's or the others'), so that a
// slot can be stopped alone. The entrypoint's wait for the entrypoint's
// turn; after shutdown began nothing starts.
func (rt *Runtime) startSlots(slots []*slot) {
	r := &rt.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running || r.closed {
		return
	}
	for _, s := range slots {
		parent, wg := r.restCtx, &r.restWG
		if s.app.entry {
			if !r.entryStarted {
				continue // started when the entrypoint's turn comes
			}
			parent, wg = r.entryCtx, &r.entryWG
		}
		rt.startStandbys(s.app, parent, wg)
		if s.started {
			continue
		}
		s.started = true
		ctx, cancel := context.WithCancel(parent)
		s.cancel = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(s.done)
			defer cancel()
			s.run(ctx)
		}()
	}
}

// startStandbys starts the goroutine of a's standby pool, once, beside
// its slots: the pool starts standbys when the app has "standby" set (now
// or after a reload) and stops them when parent ends. Called with
// rt.run.mu held.
func (rt *Runtime) startStandbys(a *app, parent context.Context, wg *sync.WaitGroup) {
	sp := a.standbys()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.started {
		return
	}
	sp.started = true
	ctx, cancel := context.WithCancel(parent)
	sp.cancel, sp.done = cancel, make(chan struct{})
	done := sp.done
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		defer cancel()
		sp.run(ctx)
	}()
}

// Stop begins a graceful shutdown; it returns at once.
func (rt *Runtime) Stop() { rt.stopOnce.Do(func() { close(rt.stopping) }) }

// Stopping is closed when a graceful shutdown begins, whatever began it
// (Stop, a stop signal, ctl stop, or every application failing).
func (rt *Runtime) Stopping() <-chan struct{} { return rt.stopping }

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
	rt.mesh.stale.Store(true)
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
	for _, a := range rt.appList() {
		if a.entry != entry {
			continue
		}
		a.standbys().kill()
		for _, s := range a.slotList() {
			s.mu.Lock()
			w := s.cur
			leavers := slices.Clone(s.leavers)
			s.mu.Unlock()
			if w != nil {
				go killWorker(w)
			}
			for _, l := range leavers {
				go killWorker(l.w)
			}
		}
	}
}

// closeListeners closes wattd's copies of the sockets of the entrypoint
// (entry) or of the other applications.
func (rt *Runtime) closeListeners(entry bool) {
	for _, a := range rt.appList() {
		if a.entry != entry {
			continue
		}
		for _, s := range a.slotList() {
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
	rt.closePassed()
	if rt.claimed != nil { // New failed before the first slot took it
		rt.claimed.Close()
		rt.claimed = nil
	}
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
	for _, a := range rt.appList() {
		for _, s := range a.slotList() {
			if s.meshPath != "" {
				rt.dir.RemoveSocket(s.meshPath)
			}
		}
	}
}

func (rt *Runtime) slotCount() int {
	n := 0
	for _, a := range rt.appList() {
		n += len(a.slotList())
	}
	return n
}

func (rt *Runtime) entryReady() bool {
	for _, a := range rt.appList() {
		if !a.entry {
			continue
		}
		for _, s := range a.slotList() {
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
	for _, a := range rt.appList() {
		if !a.entry {
			continue
		}
		reason := ""
		for _, s := range a.slotList() {
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
		// The slot's reason starts "could not start: …" too.
		return fmt.Errorf("%w: app %q: %s", ErrStartFailed, a.id, strings.TrimPrefix(reason, "could not start: "))
	}
	return nil
}

// alsoAllFailed is the entrypoint's start failure when no application is
// left either: it reads as that failure and matches ErrAllFailed too.
type alsoAllFailed struct{ error }

func (e alsoAllFailed) Unwrap() error        { return e.error }
func (e alsoAllFailed) Is(target error) bool { return target == ErrAllFailed }

func (rt *Runtime) allFailed() bool {
	for _, a := range rt.appList() {
		if a.state() != "failed" {
			return false
		}
	}
	return true
}

func (rt *Runtime) failedApps() []string {
	var out []string
	for _, a := range rt.appList() {
		if a.state() == "failed" {
			out = append(out, a.id)
		}
	}
	return out
}

// state is "failed" when every slot gave up, "degraded" when some did,
// "starting" before every slot was ready once, "down" when none has a
// ready worker at the moment (all restarting: a crash loop), else
// "running".
func (a *app) state() string {
	failed, up, ready := 0, 0, 0
	slots := a.slotList()
	for _, s := range slots {
		s.mu.Lock()
		if s.state == StateFailed {
			failed++
		}
		if s.everUp {
			up++
		}
		if s.servesLocked() {
			ready++
		}
		s.mu.Unlock()
	}
	switch {
	case failed == len(slots):
		return "failed"
	case failed > 0:
		return "degraded"
	case up < len(slots):
		return "starting"
	case ready == 0 && len(slots) > 0:
		return "down"
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
		Apps:       len(rt.appList()),
		FailedApps: rt.failedApps(),

		MeshProxy:       rt.proxyStatus(),
		LogLinesDropped: logs.OutputDropped(),
	}
	if rt.logExport != nil {
		e, d := rt.logExport.Counts()
		st.LogExport = &LogExportStatus{Exported: e, Dropped: d}
	}
	select {
	case <-rt.stopping:
		st.State = "stopping"
	default:
		if !rt.entryReady() {
			st.State = "starting"
		}
	}
	for _, a := range rt.appList() {
		for _, s := range a.slotList() {
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
	out := make([]AppStatus, 0, len(rt.appList()))
	for _, a := range rt.appList() {
		out = append(out, a.status())
	}
	return out
}

func (a *app) status() AppStatus {
	as := AppStatus{ID: a.id, Entrypoint: a.entry, Capability: a.sp().capability, State: a.state()}
	as.Standby, as.Standbys, as.StandbyRestarts = a.standbys().status()
	if sc := a.rt.scaler; sc != nil {
		as.Scaling = sc.status(a)
	}
	a.rt.topo.RLock()
	slots, former := a.slots, a.former.clone()
	a.rt.topo.RUnlock()
	if !former.zero() {
		as.Former = &former
	}
	for _, s := range slots {
		as.Workers = append(as.Workers, s.status())
		s.mu.Lock()
		if as.Reason == "" && s.reason != "" {
			as.Reason = s.reason
		}
		s.mu.Unlock()
	}
	if tr := a.rt.tracing; tr != nil {
		c := tr.Counts()[a.id]
		as.Spans = &SpanCounts{Received: c.Received, Invalid: c.Invalid, QueueFull: c.QueueFull, ExportFailed: c.ExportFailed}
	}
	return as
}

// App returns one application's status.
func (rt *Runtime) App(id string) (AppStatus, error) {
	a, ok := rt.lookup(id)
	if !ok {
		return AppStatus{}, rt.notFound(id)
	}
	return a.status(), nil
}

func (rt *Runtime) notFound(id string) error {
	ids := make([]string, 0, len(rt.appList()))
	for _, a := range rt.appList() {
		ids = append(ids, a.id)
	}
	return fmt.Errorf("%w %q (known: %s)", ErrNotFound, id, strings.Join(ids, ", "))
}

// RestartApp restarts every worker of the application one at a time, each
// new worker ready before the old one is drained, so the app keeps serving.
// A failed or backing-off slot is started at once with a fresh crash count.
//
// Requests do not pile up: while a rolling restart runs, the requests made
// meanwhile share one more, which starts when it ends (its workers must
// load what changed since it began), and further requests join that one
// while it waits. Ten `ctl restart` in a row, or a burst of saved files in
// development, roll the app at most twice, not ten times. The restart runs
// to its end even when the caller stops waiting (ctx): an app left half
// rolled would serve two versions.
func (rt *Runtime) RestartApp(ctx context.Context, id string) error {
	a, ok := rt.lookup(id)
	if !ok {
		return rt.notFound(id)
	}
	if closed(rt.stopping) {
		return errStopped // refused before anything is said of a restart
	}
	a.rollMu.Lock()
	r := a.nextRoll
	if r == nil {
		r = &rollReq{done: make(chan struct{})}
		a.nextRoll = r
		a.log.Info("rolling restart requested")
	} else {
		a.log.Info("rolling restart requested; it joins the one waiting to start")
	}
	if !a.rolling {
		a.rolling = true
		go a.rollLoop()
	}
	a.rollMu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// noRestart is a restart refused because the application cannot be
// started as it is on disk now; it matches ErrInvalidConfig, for which the
// admin API answers 422.
type noRestart struct{ err error }

func (e noRestart) Error() string {
	return "restart refused; the workers keep running: " + e.err.Error()
}
func (e noRestart) Unwrap() error        { return e.err }
func (e noRestart) Is(target error) bool { return target == ErrInvalidConfig }

// refreshLaunch prepares the application's start again before a
// restart, which is how new code is deployed (ctl restart, SIGUSR2, wattd
// dev's restarts): a package.json whose main changed, or a start script,
// starts the new entry, and one whose entry is gone is refused before any
// worker stops. The configuration itself is the one in use.
func (a *app) refreshLaunch() error {
	old := a.sp()
	cfg := a.rt.current.Load()
	if old == nil || cfg == nil {
		return nil
	}
	if _, err := os.Stat(old.conf.Path); errors.Is(err, os.ErrNotExist) {
		// Named as a start names it, not as the capability's look for
		// its files there fails.
		return noRestart{fmt.Errorf("app %q: the application's directory %s does not exist (moved or removed since the configuration was read)", a.id, old.conf.Path)}
	}
	changed, err := a.rt.launchChanged(cfg, old.conf, old)
	if err != nil {
		return noRestart{err}
	}
	if !changed {
		return nil
	}
	sp, err := a.rt.buildSpec(cfg, old.conf)
	if err != nil {
		return noRestart{err}
	}
	if sp.launch.Fronted != old.launch.Fronted {
		return noRestart{errors.New(frontedChange(a.id))}
	}
	sp.deps = old.deps
	// A reload that stored a newer spec meanwhile wins: it rolls the
	// workers onto its own.
	if a.spec.CompareAndSwap(old, sp) {
		a.log.Info("the application starts differently since its workers started (its package.json or start command changed); the restart takes the new start",
			zap.Strings("from", old.launch.Argv), zap.Strings("to", sp.launch.Argv))
	}
	return nil
}

// rollLoop runs the waiting rolling restarts one after the other until
// none waits.
func (a *app) rollLoop() {
	for {
		a.rollMu.Lock()
		r := a.nextRoll
		if r == nil {
			a.rolling = false
			a.rollMu.Unlock()
			return
		}
		a.nextRoll = nil
		a.rollMu.Unlock()
		r.err = a.roll()
		close(r.done)
	}
}

// roll restarts the app's workers one at a time.
func (a *app) roll() error {
	if err := a.refreshLaunch(); err != nil {
		return err
	}
	// The restart is for new code, which the standbys have not loaded:
	// they go, and with standbys the new workers start ahead, together.
	defer a.rollAhead()()
	for _, s := range a.slotList() {
		if err := s.requestRestart(context.Background()); err != nil {
			if errors.Is(err, errRemoved) && a.removed() {
				return notFound(fmt.Sprintf("app %q was removed (by a reload) while it restarted", a.id))
			}
			return fmt.Errorf("app %q worker %d: %w", a.id, s.index, err)
		}
	}
	a.log.Info("rolling restart done")
	return nil
}

// RestartAll restarts every application in turn (SIGUSR2).
func (rt *Runtime) RestartAll(ctx context.Context) error {
	var errs []error
	for _, a := range rt.appList() {
		if err := rt.RestartApp(ctx, a.id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
