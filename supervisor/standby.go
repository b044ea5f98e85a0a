package supervisor

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/cgroups"
	"github.com/wattd/wattd/supervisor/listeners"
	"github.com/wattd/wattd/supervisor/logs"
	"github.com/wattd/wattd/supervisor/restart"
)

// Standby workers (watt.json "standby": N). A standby is a worker process
// started ahead of need: it loads the application (the Node preload runs
// and the app's entry is required), but the preload holds the app's first
// listen(), so it accepts nothing and no slot, mesh table or messaging
// target knows it. It is given copies of every slot's sockets, since it
// may take any slot; holding a copy of a listening socket does not accept
// on it (the kernel queues a socket's connections for whoever calls
// accept, and SO_REUSEPORT membership belongs to the socket, not to its
// descriptors).
//
// When a slot's worker dies (a crash, an OOM kill) or is judged unhealthy,
// the slot promotes a standby instead of starting a process: it sends
// promote {worker}, the standby listens on that slot's sockets, whose
// accept queue still holds the connections that arrived for the dead
// worker, closes its copies of the other slots', and says ready. A crash
// then costs a message and a listen(), not a Node start. The pool starts a
// new standby in the background.
//
// A standby holds the sockets and the code of the moment it started, so it
// is only promoted while both are current: a change of any slot's sockets
// (a slot that gave up or restarted, scaling, shutdown) or of the app
// (reload, `ctl restart`) discards every standby of the app, and the pool
// starts fresh ones. Rolling restarts do not promote the standbys that
// were there: they exist to load new code, which a standby started before
// them does not have. They can still start the new code ahead: an
// application with standbys rolls by first starting, in parallel, as many
// fresh standbys as it has slots (rollAhead), and each slot's turn then
// promotes one of those beside the old worker instead of starting a
// process and waiting for it; the roll costs about one start instead of
// one per slot.

// standbyPool keeps one application's standby workers. Its goroutine (run)
// alone starts and stops them; slots take them with promote.
type standbyPool struct {
	once sync.Once // sets a and wake
	a    *app
	wake chan struct{} // poked (non-blocking) when run should look again

	// gen counts discards: standbys of an older generation hold sockets
	// or code that changed, and are replaced. gaveUp is set when standbys
	// kept dying before they were ready: none is started again until the
	// next discard (a restart or reload). Atomics, so that discard takes no
	// lock: it is called with a slot's socket lock held.
	gen    atomic.Uint64
	gaveUp atomic.Bool
	// ahead is how many standbys a rolling restart in progress wants (one
	// per slot), 0 otherwise; see rollAhead.
	ahead atomic.Int64
	// warmed is closed, and replaced, each time a standby becomes able to
	// take a slot; guarded by mu.
	warmed chan struct{}
	// startup is how long the last standby that became able to take a
	// slot took to get there (a time.Duration; 0 before the first).
	startup atomic.Int64
	// warmCount counts the standbys that became able to take a slot.
	warmCount atomic.Uint64

	mu   sync.Mutex // guards the fields below
	live []*standby // running and not promoted, oldest first
	// started, cancel and done belong to Runtime.startStandbys and stop.
	started bool
	cancel  context.CancelFunc
	done    chan struct{}

	restarts int // standbys replaced after they died

	logCounts logs.Counts
}

// standbys is the app's pool; its count is the app's "standby".
func (a *app) standbys() *standbyPool {
	sp := &a.standby
	sp.once.Do(func() {
		sp.a = a
		sp.wake = make(chan struct{}, 1)
	})
	return sp
}

// want is the standby count: the app's current configuration's, or more
// while a rolling restart starts its replacements ahead.
func (sp *standbyPool) want() int { return max(sp.a.sp().conf.Standby, int(sp.ahead.Load())) }

// rollAhead prepares a rolling restart of an app with standbys: the
// standbys there are have the old code and go, and one fresh standby per
// slot starts at once, in parallel; the slots' turns take them (see
// replaceForRestart). The returned function ends it: the pool goes back to
// its count. An app without standbys rolls as usual.
func (a *app) rollAhead() (done func()) {
	sp := a.standbys()
	if a.sp().conf.Standby == 0 {
		return func() {}
	}
	sp.ahead.Store(int64(len(a.slotList())))
	sp.discard()
	return func() {
		sp.ahead.Store(0)
		sp.poke()
	}
}

// replaceForRestart is a slot's turn in a rolling restart: while the app
// rolls ahead it waits (up to startTimeout) for one of the fresh standbys,
// started after the roll began and so with the new code, and promotes it
// beside old; otherwise, or if none comes, it starts a new process as
// replace does.
func (s *slot) replaceForRestart(ctx context.Context, old worker) (worker, string, error) {
	sp := s.app.standbys()
	if sp.ahead.Load() == 0 {
		return s.replace(ctx, old)
	}
	wait := s.app.rt.cfg.StartTimeout
	if wait <= 0 {
		wait = time.Minute
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		sp.mu.Lock()
		if sp.warmed == nil {
			sp.warmed = make(chan struct{})
		}
		warmed := sp.warmed
		sp.mu.Unlock()
		nw, how, err := s.replaceByStandby(ctx, old)
		if nw != nil || err != nil {
			return nw, how, err
		}
		if sp.gaveUp.Load() {
			return s.replace(ctx, old)
		}
		select {
		case <-warmed:
		case <-deadline.C:
			s.log.Warn("no fresh standby became ready for the rolling restart; starting a replacement instead")
			return s.replace(ctx, old)
		case <-ctx.Done():
			return nil, "", s.cutShort()
		}
	}
}

// announceWarm wakes the rolling restarts waiting for a standby.
func (sp *standbyPool) announceWarm() {
	sp.mu.Lock()
	if sp.warmed != nil {
		close(sp.warmed)
		sp.warmed = nil
	}
	sp.mu.Unlock()
}

// standby is one standby worker process.
type standby struct {
	p    *proc
	gen  uint64
	spec *appSpec // the app's when it started (see current)
	// held are the slots' sockets (wattd's own files) it has copies of,
	// by slot index: it may take a slot only while that slot still has
	// exactly these.
	held map[int][]*os.File
	// place is its start's place in the runtime's start gate, given back
	// once it is warm or gone (watch).
	place *startPlace
}

func (a *app) standbyLog() *zap.Logger {
	return a.log.With(zap.Int("worker", ipc.StandbyWorker), zap.Bool("standby", true))
}

// poke wakes the pool's goroutine.
func (sp *standbyPool) poke() {
	select {
	case sp.wake <- struct{}{}:
	default:
	}
}

// discard makes every running standby stale: the pool stops them and
// starts new ones. It takes no lock and never blocks.
func (sp *standbyPool) discard() {
	sp.gen.Add(1)
	sp.gaveUp.Store(false)
	sp.poke()
}

// releaseWait bounds how long release waits for a killed standby to end.
const releaseWait = 2 * time.Second

// release ends, and waits for, every standby holding copies of s's
// sockets, before s closes its own: a socket stays in its port's
// SO_REUSEPORT group, taking new connections, for as long as any process
// has a copy. The pool then starts fresh ones (discard). Standbys serve
// nothing, so they are killed rather than drained.
func (sp *standbyPool) release(s *slot) {
	sp.mu.Lock()
	var gone []*standby
	sp.live = slices.DeleteFunc(slices.Clone(sp.live), func(sb *standby) bool {
		_, holds := sb.held[s.index]
		if holds {
			gone = append(gone, sb)
		}
		return holds
	})
	sp.mu.Unlock()
	sp.discard()
	if len(gone) == 0 {
		return
	}
	t := time.NewTimer(releaseWait)
	defer t.Stop()
	log := sp.a.standbyLog()
	for _, sb := range gone {
		log.Info("stopping a standby worker: it holds copies of sockets wattd closes", zap.Int("pid", sb.p.pid), zap.Int("slot", s.index))
		_ = sb.p.Signal(syscall.SIGKILL)
	}
	for _, sb := range gone {
		select {
		case <-sb.p.exited:
		case <-t.C:
			s.log.Warn("a standby holding the slot's sockets has not ended; closing them anyway", zap.Int("pid", sb.p.pid))
			return
		}
	}
}

// current reports whether sb runs the app as configured now. A spec that
// differs only in the standby count (a reload) shares its launch.
func (sb *standby) current(sp *appSpec) bool {
	return sb.spec == sp || sb.spec.launch == sp.launch
}

// silent reports whether sb, which reported stats before, has sent none
// for two stats periods and a second: an idle standby's event loop is
// free, so it is stuck or its process stopped.
func (sb *standby) silent(statsEvery time.Duration) bool {
	_, at := sb.p.Stats()
	return !at.IsZero() && time.Since(at) > 2*statsEvery+time.Second
}

// holds reports whether sb has copies of s's current sockets.
func (sb *standby) holds(s *slot) bool {
	files, ok := sb.held[s.index]
	if !ok {
		return false
	}
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	return slices.Equal(files, s.listeners)
}

// promote makes a standby the worker of s and returns it, or nil when the
// app has no standby that can take s now. The returned worker listens on
// s's sockets once it says ready; until then its connections wait in the
// sockets' queues. Called by s's owner goroutine.
func (sp *standbyPool) promote(s *slot) worker {
	cur := s.app.sp()
	for {
		sp.mu.Lock()
		var sb, starting *standby
		var silent []*standby
		stale := false
		for _, c := range sp.live {
			if closed(c.p.exited) || closed(c.p.leaving) {
				continue
			}
			if c.gen != sp.gen.Load() || !c.current(cur) {
				continue // being replaced already
			}
			if !c.holds(s) {
				stale = true
				continue
			}
			if !closed(c.p.warm) {
				if starting == nil && sp.onTime(c) {
					starting = c // the one furthest along (live is oldest first)
				}
				continue
			}
			if c.silent(cur.health.statsEvery) {
				silent = append(silent, c)
				continue
			}
			sb = c
			break
		}
		if sb == nil {
			// A standby still starting is further along than a process
			// started now would be: the slot takes it, and it listens as
			// soon as its app does (see the preload's promote). Measured
			// in the bench's crash scenario, a death that came while the
			// successor of the last promoted standby was still loading
			// waited a whole start (about 330 ms under load) before.
			sb = starting
		}
		if sb != nil || len(silent) > 0 {
			sp.live = slices.DeleteFunc(slices.Clone(sp.live), func(c *standby) bool { return c == sb || slices.Contains(silent, c) })
		}
		sp.mu.Unlock()
		for _, c := range silent {
			// Stuck or stopped: promoted, it would hold the slot until
			// startTimeout while the slot's connections wait.
			_, at := c.p.Stats()
			s.log.Warn("standby sends no stats; killing it instead of promoting it", zap.Int("pid", c.p.pid),
				zap.Duration("silent", time.Since(at).Round(time.Millisecond)))
			go killWorker(c.p)
		}
		if len(silent) > 0 {
			sp.poke() // their successors
		}
		if sb == nil {
			if stale {
				// The slot's sockets changed under a current standby
				// without a discard reaching it; every change of sockets
				// discards, so this is a safety net.
				sp.discard()
			}
			return nil
		}
		now := time.Now()
		sb.p.promotedTo.Store(int64(s.index))
		sb.p.promotedAt.Store(&now)
		// Its output and its own warnings are the slot's worker's from
		// now on (ctl logs --worker).
		sb.p.setLogger(s.log.With(zap.Int("pid", sb.p.pid)))
		if g := sb.p.group; g != nil {
			g.Assign(s.index)
		}
		warm := closed(sb.p.warm)
		sb.p.promotedWarm.Store(warm)
		msg := &ipc.Message{Type: ipc.TypePromote, Worker: s.index}
		if !closed(sb.p.hello) {
			// Not past the handshake yet: the message follows the
			// welcome, which the worker reads first.
			go func() {
				select {
				case <-sb.p.hello:
				case <-sb.p.exited:
					return
				}
				if err := sb.p.send(msg); err != nil {
					s.log.Warn("could not promote a starting standby; stopping it", zap.Int("pid", sb.p.pid), zap.Error(err))
					killWorker(sb.p)
				}
			}()
		} else if err := sb.p.send(msg); err != nil {
			s.log.Warn("could not promote a standby; trying another", zap.Int("pid", sb.p.pid), zap.Error(err))
			go killWorker(sb.p)
			sp.poke() // its successor
			continue
		}
		s.log.Info("standby promoted into the slot", zap.Int("pid", sb.p.pid), zap.Bool("warm", warm),
			zap.Duration("standby_for", now.Sub(sb.p.started).Round(time.Millisecond)))
		// Its successor starts once it serves: a Node start next to it
		// would take CPU from the connections waiting for it.
		// One that was still starting takes as long as its start does
		// (its slot kills it if that is past startTimeout). And once it
		// serves, the successor waits for a CPU to spare, 0.3 s at most
		// (waitSpareCPU).
		go func() {
			var late <-chan time.Time
			if warm {
				t := time.NewTimer(time.Second)
				defer t.Stop()
				late = t.C
			}
			select {
			case <-sb.p.ready:
				waitSpareCPU(sp.a.rt.stopping)
			case <-sb.p.exited:
			case <-late:
			}
			sp.poke()
		}()
		return sb.p
	}
}

// onTime reports whether sb, still starting, is not yet late: younger
// than twice the last standby's start and a second. One older than that
// is more likely stuck (a stopped process, a hung start) than further
// along than a new process, and promoted it would hold the slot until
// startTimeout; the pool's own start timeout takes care of it.
func (sp *standbyPool) onTime(sb *standby) bool {
	last := time.Duration(sp.startup.Load())
	return last <= 0 || time.Since(sb.p.started) < 2*last+time.Second
}

// replaceByStandby replaces old, a worker judged unhealthy or one a
// rolling restart replaces, with a standby promoted next to it, and
// returns it once ready, as replace does with a new process. It
// returns nil and no error when no standby can take the slot; an error
// when the promoted standby did not become ready (old keeps serving).
func (s *slot) replaceByStandby(ctx context.Context, old worker) (worker, string, error) {
	nw := s.app.standbys().promote(s)
	if nw == nil {
		return nil, "", nil
	}
	nw, how, err := s.awaitReady(ctx, nw, nil)
	if err != nil {
		if ctx.Err() != nil {
			killWorker(nw)
			return nil, "", s.cutShort()
		}
		return nil, "", fmt.Errorf("promoted standby %w", err)
	}
	s.log.Info("standby ready; stopping the old worker", zap.Int("pid", nw.PID()), zap.Int("old_pid", old.PID()))
	return nw, how, nil
}

// run keeps the pool at its count until ctx ends, then stops every
// standby. It starts none before each of the app's slots has settled, so
// standbys do not slow the first starts down.
func (sp *standbyPool) run(ctx context.Context) {
	a := sp.a
	rt := a.rt
	log := a.standbyLog()
	wake := sp.wake
	exits := make(chan *standby, 8)
	quit := make(chan struct{})
	var stops sync.WaitGroup
	defer func() {
		sp.mu.Lock()
		live := sp.live
		sp.live = nil
		sp.mu.Unlock()
		for _, sb := range live {
			stops.Go(func() { sp.stopOne(sb, log) })
		}
		stops.Wait()
		close(quit)
	}()
	for _, s := range a.slotList() {
		select {
		case <-s.settled:
		case <-ctx.Done():
			return
		}
	}
	trackedSpec := a.sp()
	tracker := restart.NewTracker(trackedSpec.policy)
	// The tracker counts standbys that died before they were warm; one
	// that warmed up, or a discard (a restart, a reload), starts the count
	// afresh, so that failures scattered over the app's life do not add
	// up to giving up.
	warmSeen, genSeen := sp.warmCount.Load(), sp.gen.Load()
	var retry <-chan time.Time
	// look is false after an event that changes nothing here (the exit of
	// a standby that was promoted): a start now would only take CPU from
	// the promotion's successor schedule (see promote).
	look := true
	for {
		if cur := a.sp(); cur.policy != trackedSpec.policy {
			// A reload changed the app's restart policy: it applies from now.
			trackedSpec, tracker = cur, restart.NewTracker(cur.policy)
		}
		if look {
			sp.stopStale(&stops, log)
		}
		if look && retry == nil && !closed(rt.stopping) && ctx.Err() == nil {
			if err := sp.fill(ctx, exits, quit, log); err != nil {
				d := tracker.Next(restart.Exit{Reason: "start: " + err.Error()})
				log.Error("standby worker could not be started", zap.Error(err), zap.Duration("retry_in", d.Delay))
				retry = time.After(max(d.Delay, 100*time.Millisecond))
			}
		}
		look = true
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-retry:
			retry = nil
		case sb := <-exits:
			sp.mu.Lock()
			i := slices.Index(sp.live, sb)
			if i >= 0 {
				sp.live = slices.Delete(slices.Clone(sp.live), i, i+1)
			}
			sp.mu.Unlock()
			if i < 0 {
				look = false // promoted or stopped by the pool
				continue
			}
			if w, g := sp.warmCount.Load(), sp.gen.Load(); w != warmSeen || g != genSeen {
				warmSeen, genSeen = w, g
				tracker.Reset()
			}
			reason := sb.p.exitReason()
			d := tracker.Next(restart.Exit{Uptime: time.Since(sb.p.started), WasReady: closed(sb.p.warm), Reason: reason})
			sp.mu.Lock()
			sp.restarts++
			sp.mu.Unlock()
			if !d.Restart {
				sp.gaveUp.Store(true)
				log.Error("standby workers keep failing; starting no more until the app is restarted or reloaded",
					zap.Int("pid", sb.p.pid), zap.String("reason", reason), zap.String("why", d.Reason))
				sp.announceWarm() // a rolling restart waiting for one starts a process now
				continue
			}
			log.Warn("standby worker exited; replacing it", zap.Int("pid", sb.p.pid), zap.String("reason", reason),
				zap.Duration("delay", d.Delay))
			if d.Delay > 0 {
				retry = time.After(d.Delay)
			}
		}
	}
}

// stopStale stops the standbys a discard or a spec change made stale, and
// those beyond the count, in the background.
func (sp *standbyPool) stopStale(stops *sync.WaitGroup, log *zap.Logger) {
	cur := sp.a.sp()
	sp.mu.Lock()
	var keep, gone []*standby
	for _, sb := range sp.live {
		if sb.gen != sp.gen.Load() || !sb.current(cur) || len(keep) >= sp.want() {
			gone = append(gone, sb)
		} else {
			keep = append(keep, sb)
		}
	}
	sp.live = keep
	sp.mu.Unlock()
	for _, sb := range gone {
		if closed(sp.a.rt.stopping) {
			log.Info("stopping a standby worker", zap.Int("pid", sb.p.pid))
		} else {
			log.Info("stopping a standby worker that is no longer current", zap.Int("pid", sb.p.pid))
		}
		stops.Go(func() { sp.stopOne(sb, log) })
	}
}

// stopOne stops a standby; it serves nothing, so there is nothing to drain
// but the app's own shutdown.
func (sp *standbyPool) stopOne(sb *standby, log *zap.Logger) {
	stopWorker(sb.p, sp.a.rt.cfg.GracefulShutdown.Application, func(State) {}, log)
}

// fill starts standbys until the pool has its count.
func (sp *standbyPool) fill(ctx context.Context, exits chan<- *standby, quit <-chan struct{}, log *zap.Logger) error {
	for {
		gen := sp.gen.Load()
		sp.mu.Lock()
		need := len(sp.live) < sp.want() && !sp.gaveUp.Load()
		sp.mu.Unlock()
		if !need {
			return nil
		}
		// A standby start waits for its place in the start gate like any
		// other, and holds it until it is warm (watch).
		place := sp.a.rt.gate.enter(ctx.Done())
		if place == nil {
			return nil
		}
		sb, err := sp.spawn(gen, log)
		if err != nil {
			place.leave()
			return err
		}
		if sb == nil {
			place.leave()
			return nil // no slot has sockets to hold
		}
		sb.place = place
		sp.mu.Lock()
		sp.live = append(slices.Clone(sp.live), sb)
		sp.mu.Unlock()
		sp.a.rt.stateChanged()
		go sp.watch(sb, exits, quit, log)
	}
}

// watch reports sb's exit to run; a standby that does not reach its held
// listen() within startTimeout is killed.
func (sp *standbyPool) watch(sb *standby, exits chan<- *standby, quit <-chan struct{}, log *zap.Logger) {
	var timeout <-chan time.Time
	if st := sp.a.rt.cfg.StartTimeout; st > 0 {
		t := time.NewTimer(st)
		defer t.Stop()
		timeout = t.C
	}
	defer sb.place.leave()
	ready := sb.p.ready
wait:
	for {
		select {
		case <-sb.p.warm:
			sb.place.leave()
			sp.warmCount.Add(1)
			if sb.p.promotedAt.Load() != nil {
				break wait // promoted while it started; its slot has it
			}
			startup := time.Since(sb.p.started)
			sp.startup.Store(int64(startup))
			log.Info("standby worker ready to take a slot", zap.Int("pid", sb.p.pid),
				zap.Duration("startup", startup.Round(time.Millisecond)))
			sp.a.rt.stateChanged()
			sp.announceWarm()
			break wait
		case <-ready:
			if sb.p.promotedAt.Load() == nil {
				// A standby says standby, not ready: this one breaks
				// the protocol, and its start timeout still stands.
				ready = nil
				continue
			}
			// Promoted while it started, and serving now: its slot has it.
			sb.place.leave()
			break wait
		case <-sb.p.exited:
			break wait
		case <-timeout:
			if sb.p.promotedAt.Load() != nil {
				// Promoted while it started: its slot times its start
				// from the promotion.
				timeout = nil
				continue
			}
			log.Error("standby worker did not reach its listen() within startTimeout; killing it", zap.Int("pid", sb.p.pid))
			_ = sb.p.Signal(syscall.SIGKILL)
			break wait
		}
	}
	<-sb.p.exited
	sp.a.rt.stateChanged()
	select {
	case exits <- sb:
	case <-quit:
	}
}

// spawn starts one standby with copies of every slot's sockets, named
// "http.N" and "mesh.N"; nil when no slot has sockets.
func (sp *standbyPool) spawn(gen uint64, log *zap.Logger) (_ *standby, err error) {
	a := sp.a
	spec := a.sp()
	a.rt.needRunDir() // the Node.js preload is read from there
	held := map[int][]*os.File{}
	var files []*os.File
	var names []string
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, s := range a.slotList() {
		if s.removing.Load() {
			continue
		}
		s.sockMu.Lock()
		// Copies made under the lock: a socket closed meanwhile could
		// otherwise hand the standby a dead or reused descriptor.
		for i, f := range s.listeners {
			d, derr := listeners.HoldCopy(f, f.Name())
			if derr != nil {
				s.sockMu.Unlock()
				return nil, fmt.Errorf("copy worker %d's %s socket: %w", s.index, s.names[i], derr)
			}
			files = append(files, d)
			names = append(names, ipc.StandbyListener(s.names[i], s.index))
		}
		if s.listeners != nil {
			held[s.index] = slices.Clone(s.listeners)
		}
		s.sockMu.Unlock()
	}
	if len(files) == 0 {
		return nil, nil
	}
	group, err := a.rt.cgroups.Worker(a.id, ipc.StandbyWorker, spec.limits)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	p, err := spawn(spawnSpec{
		group:     group,
		argv:      spec.launch.Argv,
		dir:       spec.launch.Dir,
		direct:    spec.launch.Direct,
		env:       spec.env,
		listeners: files,
		names:     names,
		app:       a.id,
		worker:    ipc.StandbyWorker,
		entry:     a.entry,
		log:       log,
		rt:        a.rt,
		logCounts: &sp.logCounts,
		standby:   true,
	})
	if err != nil {
		_ = group.Remove()
		return nil, err
	}
	log.Info("standby worker started", zap.Int("pid", p.pid))
	return &standby{p: p, gen: gen, spec: spec, held: held}, nil
}

// kill ends every standby at once (an immediate shutdown).
func (sp *standbyPool) kill() {
	sp.mu.Lock()
	live := slices.Clone(sp.live)
	sp.mu.Unlock()
	for _, sb := range live {
		go killWorker(sb.p)
	}
}

// stop ends the pool's goroutine, which stops its standbys, and waits for
// it (an application removed).
func (sp *standbyPool) stop() {
	sp.mu.Lock()
	cancel, done := sp.cancel, sp.done
	sp.started = true // never started after this
	sp.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// StandbyStatus is one standby worker in `ctl ps`.
type StandbyStatus struct {
	PID int `json:"pid"`
	// State is "starting" while it loads the app, "standby" once it can
	// take a slot.
	State  string  `json:"state"`
	Uptime float64 `json:"uptimeSeconds"`
	RSS    uint64  `json:"rssBytes,omitempty"` // as a worker's
	// Memory and MemoryLimit are its cgroup's, as a worker's (the standby
	// is held to the app's limits from its start).
	Memory      uint64 `json:"memoryBytes,omitempty"`
	MemoryLimit uint64 `json:"memoryLimitBytes,omitempty"`
}

// status lists the running standbys and the configured count.
func (sp *standbyPool) status() (want int, list []StandbyStatus, restarts int) {
	want = sp.want()
	sp.mu.Lock()
	live := slices.Clone(sp.live)
	restarts = sp.restarts
	sp.mu.Unlock()
	for _, sb := range live {
		if closed(sb.p.exited) {
			continue
		}
		st := StandbyStatus{PID: sb.p.pid, State: "starting", Uptime: time.Since(sb.p.started).Seconds(), RSS: cgroups.RSS(sb.p.pid)}
		if closed(sb.p.warm) {
			st.State = "standby"
		}
		if u, ok := sb.p.Usage(); ok {
			st.Memory, st.MemoryLimit = u.Memory, u.MemoryLimit
		}
		list = append(list, st)
	}
	return want, list, restarts
}
