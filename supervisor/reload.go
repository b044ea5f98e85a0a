package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/listeners"
)

// Reload and scaling change the set of applications and worker slots of a
// running runtime. Both go through rt.changing, so that one change is
// applied at a time; a second one asked for meanwhile is refused with
// ErrConflict rather than queued behind a change that may take minutes.
//
// A slot that is added opens its sockets and starts like the slots of the
// first start. A slot that is taken away leaves the mesh table first, then
// (entrypoint) the kernel stops handing it new connections (see
// listeners/steer.go), then its worker accepts what was already queued on
// its socket for removeSettle, drains and stops; wattd closes its copies of
// the sockets only after that, so no connection waits on a socket nobody
// will accept from.

// ErrInvalidConfig is matched by the error of a reload whose new
// configuration cannot be applied: it does not load, or it changes what
// only a restart of wattd can change. The admin API answers it with 422.
var ErrInvalidConfig = errors.New("configuration not applied")

// removeSettle is how long a worker slot that is being taken away keeps
// accepting after it left the mesh table and the entrypoint's group: the
// connections queued on its sockets before are accepted, and callers
// holding the old mesh table get the new one.
const removeSettle = 300 * time.Millisecond

// Notifier hears about reloads, for a service manager (systemd's
// RELOADING=1 and READY=1). Both calls must return quickly.
type Notifier interface {
	Reloading()
	// Reloaded follows Reloading with the outcome: nil when the new
	// configuration applies, else why it was refused or failed.
	Reloaded(err error)
}

// serviceReloads tells the service manager (systemd) about reloads.
type serviceReloads struct{ rt *Runtime }

func (s serviceReloads) Reloading()         { s.rt.NotifyReloading() }
func (s serviceReloads) Reloaded(err error) { s.rt.NotifyReloaded(err) }

// ReloadResult says what a reload did. Apps are listed by id.
type ReloadResult struct {
	Added   []string      `json:"added"`
	Removed []string      `json:"removed"`
	Changed []string      `json:"changed"` // rolled onto their new configuration
	Scaled  []ScaleChange `json:"scaled"`  // only their worker count changed
	// Standby lists the applications whose standby count changed: they
	// are also in Unchanged or Scaled (their workers keep running), or in
	// Changed (rolled, the new count with them). Otherwise an application
	// is in one list only.
	Standby   []ScaleChange `json:"standby"`
	Unchanged []string      `json:"unchanged"`
	// Warnings are the new configuration's (an unset placeholder, a key
	// wattd does not read), which wattd also logs: ctl reload shows them
	// to whoever reloaded.
	Warnings []string `json:"warnings,omitempty"`
}

// ScaleChange is one application's worker count before and after.
type ScaleChange struct {
	App  string `json:"app"`
	From int    `json:"from"`
	To   int    `json:"to"`
}

// tryChange takes rt.changing, or says what holds it.
func (rt *Runtime) tryChange(what string) (func(), error) {
	if !rt.changing.TryLock() {
		return nil, busy(what + " refused: a reload or scaling is in progress; try again when it is done")
	}
	select {
	case <-rt.stopping:
		rt.changing.Unlock()
		return nil, errStopped
	default:
	}
	return rt.changing.Unlock, nil
}

// Reload reads the configuration again and applies the difference:
// applications added are started (after their dependencies), removed ones
// drained and stopped, changed ones rolled one worker at a time, and those
// whose worker count alone changed scaled; the others are not touched. A
// configuration that does not load, or that changes settings only a
// restart applies, is refused with every reason, matching
// ErrInvalidConfig, and nothing changes.
func (rt *Runtime) Reload(ctx context.Context) (res ReloadResult, err error) {
	if rt.load == nil {
		return res, conflict("reload is not available in this runtime")
	}
	release, err := rt.tryChange("reload")
	if err != nil {
		return res, err
	}
	defer release()
	if n := rt.notifier; n != nil {
		n.Reloading()
		defer func() { n.Reloaded(err) }()
	}
	rt.log.Info("reloading the configuration", zap.String("file", rt.cfg.File))
	cfg, err := rt.load()
	if err != nil {
		rt.log.Error("reload refused: the configuration does not load; the running applications keep serving unchanged", zap.Error(err))
		return res, fmt.Errorf("%w: the configuration does not load; the running applications keep serving unchanged:\n%w", ErrInvalidConfig, err)
	}
	for _, w := range cfg.Warnings {
		rt.log.Warn(w)
	}
	p, err := rt.plan(cfg)
	if err != nil {
		rt.log.Error("reload refused; the running applications keep serving unchanged", zap.Error(err))
		return res, err
	}
	res = p.result
	res.Warnings = slices.Clone(cfg.Warnings)
	rt.log.Info("reload plan", zap.Strings("added", res.Added), zap.Strings("removed", res.Removed),
		zap.Strings("changed", res.Changed), zap.Any("scaled", res.Scaled), zap.Any("standby", res.Standby), zap.Strings("unchanged", res.Unchanged))
	// Whatever part of the plan was carried out, what wattd dev watches
	// follows it before the caller hears of the reload.
	defer func() {
		if f := rt.onReload.Load(); f != nil {
			(*f)()
		}
	}()
	if wentBack, err := rt.apply(ctx, cfg, p); err != nil {
		if cutByStop(err) {
			rt.log.Info("reload interrupted by the stop", zap.Error(err))
			return res, err
		}
		// The rest of the plan was carried out: say what, since the
		// error names only what failed.
		err = fmt.Errorf("%w\n%s", err, appliedDespite(res, wentBack))
		rt.log.Error("reload applied with errors", zap.Error(err))
		return res, err
	}
	rt.log.Info("reload done")
	return res, nil
}

// OnReload has f called at the end of every reload that was carried out,
// in whole or in part, before Reload returns: wattd dev then watches the
// folders of the applications the reload added or moved, and no longer
// those of the ones it removed (WatchTargets). A refused reload changes
// nothing and calls nothing.
func (rt *Runtime) OnReload(f func()) { rt.onReload.Store(&f) }

// cutByStop tells whether every failure joined in err is the runtime's
// stop cutting a change short.
func cutByStop(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !cutByStop(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, ErrStopping)
}

// reloadPlan is what a reload will do, prepared before anything changes.
type reloadPlan struct {
	result  ReloadResult
	added   []*app
	removed []*app
	changed map[*app]*appSpec // the new spec of each changed app
	counts  map[*app]int      // new worker count of every kept app
	// kept holds the new configuration of the kept apps that are not
	// rolled: only their counts (workers, standbys, scaling) may have
	// changed, and their spec takes them, so that the next reload compares
	// with this file, not the one wattd started with.
	kept map[*app]config.Application
	byID map[string]*app // kept and added apps
}

// restartOnly are the settings applied once at start; a reload that
// changes one is refused with the reason, naming the file and the key's
// JSON path as every other problem of a configuration does.
func restartOnly(old, cfg *config.Config) []string {
	var out []string
	check := func(key string, a, b any, why string) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, cfg.Problem("/"+strings.ReplaceAll(key, ".", "/"), "changed: "+why+"; restart wattd to change it").Error())
		}
	}
	if cfg.Single() && old.Entrypoint != cfg.Entrypoint {
		// The application's id, the runtime's entrypoint, is its
		// package.json name: no key of the file changed.
		out = append(out, fmt.Sprintf("%s: /name: changed from %q to %q: the application's id, the runtime's entrypoint, comes from it; restart wattd to change it",
			filepath.Join(cfg.Dir, "package.json"), old.Entrypoint, cfg.Entrypoint))
	} else {
		check("entrypoint", old.Entrypoint, cfg.Entrypoint, "the public port belongs to the entrypoint's workers")
	}
	check("server.hostname", old.Server.Hostname, cfg.Server.Hostname, "the public sockets are bound once, at start")
	check("server.port", old.Server.Port, cfg.Server.Port, "the public sockets are bound once, at start")
	check("reuseTcpPorts", old.SharePort, cfg.SharePort, "the port check runs at start")
	oldLogger, newLogger := old.Logger, cfg.Logger
	if !reflect.DeepEqual(old.Telemetry, cfg.Telemetry) {
		// Tracing turns request ids on by default: a telemetry change
		// alone would also read as a logger change the operator did not
		// make. The telemetry line below says what to do.
		oldLogger.RequestID, newLogger.RequestID = config.RequestID{}, config.RequestID{}
	}
	check("logger", oldLogger, newLogger, "wattd's log (level, redaction) and the request ids are set up at start")
	check("telemetry", old.Telemetry, cfg.Telemetry, "the trace exporters are set up at start")
	check("metrics", old.Metrics, cfg.Metrics, "the metrics server is bound at start")
	check("healthProbes", old.Probes, cfg.Probes, "the probes server is bound at start")
	check("managementApi", old.ManagementAPI, cfg.ManagementAPI, "the management API's socket is made at start")
	check("cgroups.root", old.Cgroups, cfg.Cgroups, "the runtime's cgroup is made at start")
	check("gracefulShutdown", old.GracefulShutdown, cfg.GracefulShutdown, "runtime-wide setting")
	check("startTimeout", old.StartTimeout, cfg.StartTimeout, "runtime-wide setting")
	check("startupConcurrency", old.StartupConcurrency, cfg.StartupConcurrency, "runtime-wide setting")
	check("applicationTimeout", old.ApplicationTimeout, cfg.ApplicationTimeout, "runtime-wide setting")
	check("messagingTimeout", old.MessagingTimeout, cfg.MessagingTimeout, "runtime-wide setting")
	return out
}

// sameApp tells whether two resolved application configurations start the
// same workers. The worker count and the dynamic scaling bounds are left
// out: they change how many workers run, not how one runs.
func sameApp(a, b config.Application) bool {
	a.Workers, b.Workers = 0, 0
	a.Standby, b.Standby = 0, 0
	a.Scale, b.Scale = config.Scale{}, config.Scale{}
	a.Pointer, b.Pointer = "", ""
	a.Watch, b.Watch = config.Watch{}, config.Watch{} // wattd dev's watching, set up at start
	return reflect.DeepEqual(a, b)
}

// plan compares cfg with what runs. It builds the new specs of added and
// changed applications, so that a capability that cannot prepare one
// refuses the reload before anything changes.
func (rt *Runtime) plan(cfg *config.Config) (*reloadPlan, error) {
	p := &reloadPlan{changed: map[*app]*appSpec{}, counts: map[*app]int{}, kept: map[*app]config.Application{}, byID: map[string]*app{}}
	// Empty lists, not null, in ctl reload --json and the admin API.
	p.result = ReloadResult{Added: []string{}, Removed: []string{}, Changed: []string{}, Scaled: []ScaleChange{}, Standby: []ScaleChange{}, Unchanged: []string{}}
	problems := restartOnly(rt.cfg, cfg)
	current := rt.appList()
	kept := map[string]bool{}
	for _, ac := range cfg.Applications {
		a, ok := rt.lookup(ac.ID)
		if !ok {
			a = &app{rt: rt, id: ac.ID, entry: ac.ID == cfg.Entrypoint, log: rt.appLog.With(zap.String("app", ac.ID))}
			p.added = append(p.added, a)
			p.result.Added = append(p.result.Added, ac.ID)
		} else {
			kept[ac.ID] = true
		}
		p.byID[ac.ID] = a
	}
	for _, a := range current {
		if !kept[a.id] {
			p.removed = append(p.removed, a)
			p.result.Removed = append(p.result.Removed, a.id)
		}
	}
	var errs []error
	for _, ac := range cfg.Applications {
		a := p.byID[ac.ID]
		if slices.Contains(p.added, a) {
			sp, err := rt.buildSpec(cfg, ac)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sp.deps = rt.depsOf(ac, p.byID)
			a.spec.Store(sp)
			continue
		}
		old := a.sp()
		// The file's count against the last one applied: a reload of a
		// file whose count did not change keeps a `ctl scale`.
		scaled := false
		if n := len(a.slotList()); n != ac.Workers && old.conf.Workers != ac.Workers {
			p.counts[a] = ac.Workers
			p.result.Scaled = append(p.result.Scaled, ScaleChange{App: a.id, From: n, To: ac.Workers})
			scaled = true
		}
		same := sameApp(old.conf, ac) && reflect.DeepEqual(old.policy, policyFor(cfg, ac))
		if same {
			// The same configuration may still start differently: a
			// deploy changed the package.json's main or the start script.
			changed, err := rt.launchChanged(cfg, ac, old)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			same = !changed
		}
		if same {
			if !scaled {
				p.result.Unchanged = append(p.result.Unchanged, a.id)
			}
			p.kept[a] = ac
			if old.conf.Standby != ac.Standby {
				// The workers keep running, and the standby pool follows
				// the new count.
				p.result.Standby = append(p.result.Standby, ScaleChange{App: a.id, From: old.conf.Standby, To: ac.Standby})
			}
			continue
		}
		sp, err := rt.buildSpec(cfg, ac)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if sp.launch.Fronted != old.launch.Fronted {
			problems = append(problems, cfg.Problem(ac.Pointer, frontedChange(a.id)).Error())
			continue
		}
		sp.deps = rt.depsOf(ac, p.byID)
		p.changed[a] = sp
		p.result.Changed = append(p.result.Changed, a.id)
		if old.conf.Standby != ac.Standby {
			// Rolled onto the new configuration, its standby pool too.
			p.result.Standby = append(p.result.Standby, ScaleChange{App: a.id, From: old.conf.Standby, To: ac.Standby})
		}
	}
	for _, pr := range problems {
		errs = append(errs, errors.New(pr))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w; the running applications keep serving unchanged:\n%w", ErrInvalidConfig, errors.Join(errs...))
	}
	return p, nil
}

// frontedChange is the reason a new start of application id is refused
// when it passes the sockets differently than the running one (a program
// on $PORT that wattd fronts, or one that takes its sockets): the slots'
// sockets were made for the one way.
func frontedChange(id string) string {
	return fmt.Sprintf("app %q: the change makes wattd pass its sockets differently (a program on $PORT that wattd fronts, or one that takes its sockets); restart wattd to change it", id)
}

// apply carries a plan out: removed applications first (nothing kept
// depends on them), then the added ones, then the changed ones rolled and
// the scaled ones scaled.
func (rt *Runtime) apply(ctx context.Context, cfg *config.Config, p *reloadPlan) (wentBack []string, _ error) {
	var errs []error
	for _, a := range p.removed {
		rt.removeApp(a)
	}
	// Every worker reads its app info file when it starts: the rolled and
	// added ones must find the new configuration there.
	if err := rt.writeAppInfos(cfg); err != nil {
		errs = append(errs, err)
	}
	if len(p.added) > 0 {
		if err := rt.addApps(ctx, p.added); err != nil {
			errs = append(errs, err)
		}
	}
	// applied is the configuration that runs once the reload is done:
	// cfg, but for an application whose roll failed and went back, its
	// previous configuration (with the new worker count, which is applied
	// anyway). ctl config shows it, and the app info files the workers
	// read at start are written from it.
	applied := cfg
	for a, sp := range p.changed {
		old := a.sp()
		back := func() {
			prev := *old
			prev.conf.Workers, prev.conf.Scale = sp.conf.Workers, sp.conf.Scale
			a.spec.Store(&prev)
			applied = withApp(applied, prev.conf)
			wentBack = append(wentBack, a.id)
			// Before the workers rolled go back: they must read the
			// previous configuration, not the one that failed.
			if err := rt.writeAppInfos(applied); err != nil {
				a.log.Error("could not write the previous configuration back to the app info files", zap.Error(err))
			}
		}
		if err := rt.roll(ctx, a, sp, back); err != nil {
			errs = append(errs, err)
		}
	}
	for a, ac := range p.kept {
		sp := *a.sp()
		standby := sp.conf.Standby != ac.Standby
		sp.conf = ac
		a.spec.Store(&sp)
		if standby {
			a.standbys().poke()
		}
	}
	for a, n := range p.counts {
		if err := rt.scaleTo(ctx, a, rt.scaler.clamp(a, n), "configuration reloaded"); err != nil {
			errs = append(errs, err)
		}
	}
	rt.scaler.configure(cfg)
	rt.current.Store(applied)
	rt.stateChanged() // the mesh table's disabled applications
	rt.setScheduler(applied)
	return wentBack, errors.Join(errs...)
}

// appliedDespite says what a reload whose plan was res did apply although
// the applications in wentBack went back to their previous configuration.
func appliedDespite(res ReloadResult, wentBack []string) string {
	rolled := slices.DeleteFunc(slices.Clone(res.Changed), func(id string) bool { return slices.Contains(wentBack, id) })
	var scaled []string
	for _, c := range res.Scaled {
		scaled = append(scaled, fmt.Sprintf("%s %d->%d", c.App, c.From, c.To))
	}
	list := func(ids []string) string {
		if len(ids) == 0 {
			return "-"
		}
		return strings.Join(ids, ", ")
	}
	msg := fmt.Sprintf("the rest of the reload was applied: added %s; removed %s; changed (rolled) %s; scaled %s",
		list(res.Added), list(res.Removed), list(rolled), list(scaled))
	if len(wentBack) > 0 {
		msg += fmt.Sprintf("; back on the previous configuration: %s (a reload of the same file tries it again)", list(wentBack))
	}
	return msg
}

// withApp is cfg with the application of ac's id replaced by ac; cfg is
// not changed.
func withApp(cfg *config.Config, ac config.Application) *config.Config {
	c := *cfg
	c.Applications = slices.Clone(cfg.Applications)
	for i := range c.Applications {
		if c.Applications[i].ID == ac.ID {
			c.Applications[i] = ac
		}
	}
	return &c
}

// roll moves app a onto spec sp, one worker after another, as `ctl
// restart` does. If a worker's replacement fails, back puts the previous
// configuration in place again (the app's spec and what its workers read
// at start), the workers already rolled go back to it and the error says
// why.
//
// An application that had failed (every slot given up) has no worker to
// keep and no configuration known to work: it stays on the new one, whose
// workers its restart policy tries as after wattd ctl restart, rather than
// going back to the one that failed and trying that again.
func (rt *Runtime) roll(ctx context.Context, a *app, sp *appSpec, back func()) error {
	old := a.sp()
	a.log.Info("configuration changed; rolling restart onto it")
	a.spec.Store(sp)
	// The standbys run the previous configuration: they go, and with
	// standbys the new workers start ahead, together.
	defer a.rollAhead()()
	slots := a.slotList()
	failed := len(slots) > 0 && !slices.ContainsFunc(slots, func(s *slot) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.state != StateFailed
	})
	for i, s := range slots {
		if err := s.requestRestart(ctx); err != nil {
			if failed && !errors.Is(err, ErrStopping) {
				a.log.Warn("a worker did not start with the new configuration; the application had failed, so it stays on the new one, tried again by its restart policy",
					zap.Int("worker", s.index), zap.Error(err))
				continue
			}
			a.spec.Store(old)
			if errors.Is(err, ErrStopping) {
				// Nothing to roll back: every worker is being stopped.
				return fmt.Errorf("app %q: the stop interrupted the rolling restart onto the new configuration: %w", a.id, err)
			}
			a.log.Error("a worker did not start with the new configuration; going back to the previous one", zap.Int("worker", s.index), zap.Error(err))
			back()
			for _, r := range slots[:i] {
				if berr := r.requestRestart(ctx); berr != nil {
					a.log.Error("could not roll a worker back to the previous configuration", zap.Int("worker", r.index), zap.Error(berr))
				}
			}
			return fmt.Errorf("app %q worker %d did not start with the new configuration (the app keeps its previous one): %w", a.id, s.index, err)
		}
	}
	return nil
}

// addApps opens the sockets of new applications, publishes them and
// starts their workers, each after its dependencies, then waits until every
// new worker is ready or has given up.
func (rt *Runtime) addApps(ctx context.Context, added []*app) error {
	var opened []*slot
	for _, a := range added {
		n := rt.scaler.clamp(a, a.sp().conf.Workers)
		for i := 0; i < n; i++ {
			s := newSlot(a, i)
			s.meshPath = rt.dir.MeshSocket(a.id, i)
			if err := s.openListeners(); err != nil {
				for _, o := range opened {
					o.closeListeners()
				}
				return fmt.Errorf("app %q not added: %w", a.id, err)
			}
			a.slots = append(a.slots, s)
			opened = append(opened, s)
		}
	}
	rt.topo.Lock()
	apps := slices.Clone(rt.apps)
	for _, a := range added {
		apps = append(apps, a)
		rt.byID[a.id] = a
	}
	rt.apps = apps
	rt.topo.Unlock()
	for _, a := range added {
		a.log.Info("application added", zap.Int("workers", len(a.slots)))
		rt.startSlots(a.slotList())
	}
	return rt.awaitDecided(ctx, opened)
}

// awaitDecided waits until every slot has had a ready worker or given up,
// and says which gave up.
func (rt *Runtime) awaitDecided(ctx context.Context, slots []*slot) error {
	var errs []error
	for _, s := range slots {
		select {
		case <-s.decided:
		case <-ctx.Done():
			return ctx.Err()
		case <-rt.stopping:
			return errStopped
		}
		s.mu.Lock()
		up, reason := s.everUp, s.reason
		s.mu.Unlock()
		if !up {
			errs = append(errs, fmt.Errorf("app %q worker %d did not start: %s", s.app.id, s.index, reason))
		}
	}
	return errors.Join(errs...)
}

// awaitKeptReady waits, for shrink, until one of keep has a ready worker
// or none of gone has, up to startTimeout or ctx's end.
func (rt *Runtime) awaitKeptReady(ctx context.Context, a *app, keep, gone []*slot) {
	anyReady := func(slots []*slot) bool {
		return slices.ContainsFunc(slots, func(s *slot) bool { return s.getState() == StateReady })
	}
	if anyReady(keep) || !anyReady(gone) {
		return
	}
	a.log.Info("scaling down once a worker that stays is ready: none is now")
	deadline := time.NewTimer(rt.cfg.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !anyReady(keep) && anyReady(gone) {
		select {
		case <-tick.C:
		case <-deadline.C:
			a.log.Warn("scaling down although no worker that stays is ready", zap.Duration("waited", rt.cfg.StartTimeout))
			return
		case <-ctx.Done():
			return
		case <-rt.stopping:
			return
		}
	}
}

// removeApp takes an application away: out of the mesh, then its workers
// drained and stopped, then its sockets closed.
func (rt *Runtime) removeApp(a *app) {
	a.log.Info("application removed from the configuration; draining its workers")
	slots := a.slotList()
	for _, s := range slots {
		s.removing.Store(true)
	}
	rt.topo.Lock()
	rt.apps = slices.DeleteFunc(slices.Clone(rt.apps), func(x *app) bool { return x == a })
	delete(rt.byID, a.id)
	rt.topo.Unlock()
	rt.publishMesh()
	a.standbys().stop()
	rt.retire(slots)
	os.Remove(rt.dir.AppInfoFile(a.id))
	a.log.Info("application stopped and removed")
	if rt.appRemoved != nil {
		rt.appRemoved(a.id)
	}
}

// retire stops slots that left the mesh (and the entrypoint's group), in
// parallel, then closes their sockets.
func (rt *Runtime) retire(slots []*slot) {
	timer := time.NewTimer(removeSettle)
	select {
	case <-timer.C:
	case <-rt.stopping:
		timer.Stop()
	}
	var wg sync.WaitGroup
	for _, s := range slots {
		wg.Go(func() {
			rt.stopSlot(s)
			s.closeListeners()
			if s.meshPath != "" {
				rt.dir.RemoveSocket(s.meshPath)
			}
		})
	}
	wg.Wait()
}

// stopSlot stops a slot's owner goroutine and waits for it; a slot never
// started is marked so that it never starts. The slot is settled and
// decided then: what waits for it (the entrypoint's first start, an
// application that depends on it) must not wait for a slot that is gone.
func (rt *Runtime) stopSlot(s *slot) {
	defer func() {
		s.settle()
		s.decide()
	}()
	r := &rt.run
	r.mu.Lock()
	if !s.started {
		s.started = true
		close(s.done)
		r.mu.Unlock()
		return
	}
	cancel := s.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	<-s.done
}

// ScaleApp sets the number of workers of an application (`wattd ctl
// scale`). New workers are ready, or have given up, when it returns;
// removed ones have drained and stopped.
func (rt *Runtime) ScaleApp(ctx context.Context, id string, n int) error {
	a, ok := rt.lookup(id)
	if !ok {
		return rt.notFound(id)
	}
	if n < 1 || n > config.MaxWorkers {
		return fmt.Errorf("%w: app %q: expected a worker count from 1 to %d, got %d", ErrInvalidConfig, id, config.MaxWorkers, n)
	}
	release, err := rt.tryChange("scale")
	if err != nil {
		return err
	}
	defer release()
	return rt.scaleTo(ctx, a, n, "requested with wattd ctl scale")
}

// scaleTo changes the number of worker slots of a to n; called with
// rt.changing held.
func (rt *Runtime) scaleTo(ctx context.Context, a *app, n int, reason string) error {
	cur := a.slotList()
	if n == len(cur) {
		return nil
	}
	a.log.Info("scaling", zap.Int("from", len(cur)), zap.Int("to", n), zap.String("reason", reason))
	rt.scaler.record(a, len(cur), n, reason)
	if n > len(cur) {
		return rt.grow(ctx, a, cur, n)
	}
	rt.shrink(ctx, a, cur, n)
	return nil
}

// grow adds slots to a up to n and waits for their workers.
func (rt *Runtime) grow(ctx context.Context, a *app, cur []*slot, n int) error {
	grown := false
	if a.entry {
		// The new sockets join the group at once; until their workers
		// serve, connections go to the sockets that have one.
		rt.steerScale(a, cur)
		defer func() {
			rt.endScaleSteering(a)
			if grown {
				// The clients kept alive on the slots there were would
				// stay there and leave the new ones only the connections
				// opened from now: those slots shed theirs, to spread
				// over all.
				rt.shed(cur)
			}
		}()
	}
	var added []*slot
	for i := len(cur); i < n; i++ {
		s := newSlot(a, i)
		if a.entry {
			s.tcpHost, s.tcpPort = rt.cfg.Server.Hostname, rt.publicPort
		}
		s.meshPath = rt.dir.MeshSocket(a.id, i)
		if err := s.openListeners(); err != nil {
			for _, o := range added {
				o.closeListeners()
				rt.dir.RemoveSocket(o.meshPath)
			}
			return fmt.Errorf("app %q: scale to %d: %w", a.id, n, err)
		}
		added = append(added, s)
	}
	rt.topo.Lock()
	a.slots = append(slices.Clone(a.slots), added...)
	rt.topo.Unlock()
	a.standbys().discard() // they hold no copy of the new slots' sockets
	rt.startSlots(added)
	err := rt.awaitDecided(ctx, added)
	a.log.Info("scaled up", zap.Int("workers", n))
	grown = err == nil
	return err
}

// shrink takes a's last slots away until n are left. While none of the
// slots it keeps has a ready worker (one crashed and is starting again)
// and one of those it takes away has, it first waits for a kept one to be
// ready, up to startTimeout: taking the last ready workers away would
// leave the application serving nobody until then.
func (rt *Runtime) shrink(ctx context.Context, a *app, cur []*slot, n int) {
	keep, gone := cur[:n], cur[n:]
	rt.awaitKeptReady(ctx, a, keep, gone)
	for _, s := range gone {
		s.removing.Store(true)
	}
	rt.publishMesh()
	if a.entry {
		rt.steerScale(a, keep)
		defer rt.endScaleSteering(a)
	}
	rt.retire(gone)
	final := make([]WorkerStatus, len(gone))
	for i, s := range gone {
		final[i] = s.status()
	}
	rt.topo.Lock()
	a.slots = slices.Clone(keep)
	for _, w := range final {
		a.former.add(w)
	}
	rt.topo.Unlock()
	rt.stateChanged()
	a.log.Info("scaled down", zap.Int("workers", n))
}

// steer makes the entrypoint's group hand new connections only to the
// sockets of slots, and reports whether it did; a failure is logged, and
// connections then go where the kernel's hash sends them. Only
// applySteering calls it (steering.go).
func (rt *Runtime) steer(a *app, slots []*slot) bool {
	if rt.cfg.SharePort {
		// Other programs' sockets in the group: positions are unknown.
		return false
	}
	allowed := map[uint64]bool{}
	var f *os.File
	ipv6 := strings.Contains(rt.cfg.Server.Hostname, ":")
	for _, s := range slots {
		s.sockMu.Lock()
		if s.tcpInode != 0 && len(s.listeners) > 0 {
			allowed[s.tcpInode] = true
			f = s.listeners[0]
			ipv6 = s.addr.IP.To4() == nil
		}
		s.sockMu.Unlock()
	}
	if f == nil {
		return false
	}
	if err := listeners.Steer(f, ipv6, rt.portGroup.Positions(allowed)); err != nil {
		a.log.Warn("could not steer new connections while the workers change; some may wait on a starting worker or be reset", zap.Error(err))
		return false
	}
	rt.steered.Store(true)
	return true
}

// unsteer hands the choice of socket back to the kernel.
func (rt *Runtime) unsteer(a *app) {
	if !rt.steered.Swap(false) {
		return
	}
	for _, s := range a.slotList() {
		s.sockMu.Lock()
		var f *os.File
		if len(s.listeners) > 0 {
			f = s.listeners[0]
		}
		s.sockMu.Unlock()
		if f != nil {
			if err := listeners.Unsteer(f); err != nil {
				a.log.Warn("could not stop steering new connections", zap.Error(err))
			}
			return
		}
	}
}
