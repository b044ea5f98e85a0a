package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/front"
	"github.com/wattd/wattd/supervisor/listeners"
	"github.com/wattd/wattd/supervisor/logs"
	"github.com/wattd/wattd/supervisor/procnet"
	"github.com/wattd/wattd/supervisor/restart"
)

// noProtocolReadyAfter is how long a worker that never says hello on the
// control channel must stay up to be taken as ready (apps started without
// the preload, or programs that ignore the protocol).
const noProtocolReadyAfter = time.Second

// frontSwitchSettle is how long a fronted worker keeps running after the
// forwarders switched to its replacement, before it is stopped.
const frontSwitchSettle = 250 * time.Millisecond

// errStopped is returned by a restart asked for while the runtime stops.
var errStopped error = stopping("runtime is stopping")

// errRemoved is returned by a restart of a worker slot that a reload or
// scaling took away meanwhile.
var errRemoved error = conflict("the worker was removed (scaled down or its app removed)")

// cutShort is what a restart of the slot answers when the slot's context
// ends before the restart is over: errStopped when the runtime stops,
// errRemoved when a reload or scaling takes the slot away.
func (s *slot) cutShort() error {
	select {
	case <-s.app.rt.stopping:
		return errStopped
	default:
	}
	if s.removing.Load() {
		return errRemoved
	}
	return errStopped
}

// slot is one worker position of an application. It owns the slot's
// sockets for its own life (the runtime's, unless scaling or a reload takes
// it away); the processes in it come and go.
// Only the owner goroutine (run) starts and stops processes.
type slot struct {
	app   *app
	index int
	log   *zap.Logger

	// Where the slot's sockets live. tcpHost/tcpPort are set for the
	// entrypoint only.
	tcpHost  string
	tcpPort  int
	meshPath string

	sockMu     sync.Mutex // guards the sockets: the owner reopens, shutdown closes
	listeners  []*os.File // wattd's copies, in LISTEN_FDNAMES order; nil when closed
	names      []string
	addr       *net.TCPAddr       // public address, for status
	tcpInode   uint64             // the public socket's, while open: its place in rt.portGroup
	port       int                // a fronted app's worker port ($PORT); 0 until chosen
	forwarders []*front.Forwarder // a fronted app's: one per socket, to port

	restartReq chan chan error // rolling restart requests, answered when done

	// started, cancel and done belong to rt.startSlots: cancel stops this
	// slot alone (scale down, an app removed), done is closed when its
	// owner goroutine returned. Guarded by rt.run.mu until started.
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
	// removing is set when the slot is being taken away: the mesh and the
	// messaging stop choosing it before its worker drains.
	removing atomic.Bool

	// settled is closed when the slot's first worker became ready or
	// exited; the entrypoint starts after the other apps settled.
	settled    chan struct{}
	settleOnce sync.Once
	// decided is closed when a worker of the slot first became ready or
	// the slot gave up: what its application's dependants wait for.
	decided    chan struct{}
	decideOnce sync.Once

	mu    sync.Mutex // guards the fields below, read by status
	state State
	cur   worker // nil when no process runs in the slot
	// curReady is when cur became the slot's ready worker (its ready
	// message, or its promotion from standby): how long it served is what
	// the restart policy judges (restart.Exit.Served).
	curReady time.Time
	// leavers are the slot's former workers whose processes are not gone
	// yet: those that said they were exiting (see leave) and those being
	// drained after a replacement took their place (see retireBehind).
	leavers  []leaver
	restarts int
	// restartsBy counts restarts by kind (restartKind), oomKills the
	// workers the memory limit ended, and starts/startTime the workers
	// that became ready and how long they took: the figures the metrics
	// endpoint exports as counters.
	restartsBy map[string]int
	oomKills   int
	starts     int
	startTime  time.Duration
	startsIn   startHistogram
	lastExit   string
	reason     string  // why the slot failed
	history    []Event // the last historyLen states entered and replacements, oldest first
	// waitingFor names the applications whose readiness a slot that has
	// not started yet waits for (its dependencies); "" otherwise.
	waitingFor string
	everUp     bool // a worker of this slot was ready at least once
	// begun is set when the slot starts its first worker: before it (a
	// slot waiting for its turn, its dependencies or the other apps), a
	// rolling restart has nothing to roll, since that start reads the
	// application's configuration as it is then.
	begun bool
	// respec is set by a rolling restart asked for before the first start
	// (begun false): a slot that then fails before starting (a dependency
	// could not start) starts once on the configuration it was given.
	respec bool
	// endedKind is the restart kind of a worker that ended while its
	// replacement started (endedMeanwhile), for adopt to count it as.
	endedKind string
	// incoming is the process a replacement (rolling restart, health)
	// started beside cur, until it is ready or has failed: shown under
	// the slot, as the leavers are.
	incoming worker
	// retryAt is when the slot in backoff starts its next worker.
	retryAt time.Time
	// downSince is when the slot's ready worker was seen to exit, until
	// a worker of the slot is ready again (zero otherwise); replaced
	// counts how long those gaps lasted, the replacement times the
	// metrics export. A slot that gives up stops the clock.
	downSince time.Time
	replaced  replaceHistogram

	// logCounts sums the output lines lost by the slot's processes.
	logCounts logs.Counts

	// place is the start gate's place of the start run is making, from
	// before the spawn until the start is over (the worker adopted, or the
	// start failed); nil otherwise, and for a start that took no place.
	// Only the slot's owner goroutine touches it.
	place *startPlace
}

func newSlot(a *app, index int) *slot {
	return &slot{
		app:        a,
		index:      index,
		log:        a.log.With(zap.Int("worker", index)),
		restartReq: make(chan chan error),
		done:       make(chan struct{}),
		settled:    make(chan struct{}),
		decided:    make(chan struct{}),
		state:      StateExited,
	}
}

// setState moves the slot's state machine; an illegal move is a bug in
// wattd, logged loudly rather than crashing a runtime that serves traffic.
func (s *slot) setState(to State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setStateLocked(to)
}

func (s *slot) setStateLocked(to State) {
	if err := transition(&s.state, to); err != nil {
		s.log.DPanic("state machine", zap.Error(err))
		s.state = to
	}
	reason := ""
	switch to {
	case StateBackoff, StateFailed, StateExited:
		reason = s.lastExit // set just before: why the worker is gone
	}
	s.recordLocked(to.String(), reason)
	s.app.rt.stateChanged()
}

// historyLen is how many events a slot keeps for `ctl ps --json`.
const historyLen = 32

// recordLocked adds an event to the slot's history, dropping the oldest
// beyond historyLen. Called with mu held.
func (s *slot) recordLocked(what, reason string) {
	e := Event{At: time.Now(), State: what, Reason: reason}
	if s.cur != nil {
		e.PID = s.cur.PID()
	}
	if len(s.history) == historyLen {
		s.history = append(s.history[:0], s.history[1:]...)
	}
	s.history = append(s.history, e)
}

func (s *slot) getState() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// run is the slot's owner goroutine. It returns after ctx is cancelled and
// the slot's process has been stopped.
func (s *slot) run(ctx context.Context) {
	defer s.awaitLeavers()
	defer s.app.rt.slotUp(s)
	trackedSpec := s.app.sp()
	tracker := restart.NewTracker(trackedSpec.policy)
	// Restarts asked for while no worker runs (backoff, failed) are
	// answered by the outcome of the start they cause, so that whoever
	// asked learns whether the worker came up, and why not.
	var waiting []chan error
	reason, ok := s.awaitDependencies(ctx)
	if !ok {
		return
	}
	if reason != "" {
		// Started anyway, its first requests to the dependency would fail;
		// an operator's restart starts it regardless.
		s.mu.Lock()
		s.lastExit, s.reason = reason, reason
		s.setStateLocked(StateFailed)
		s.mu.Unlock()
		s.log.Error("worker slot failed; not starting it", zap.String("reason", reason))
		s.settle()
		s.decide()
		s.closeListeners()
		done, ok := s.idle(ctx)
		if !ok {
			return
		}
		waiting = append(waiting, done)
	}
	// next is a standby promoted into the slot: its next worker, in place
	// of a start.
	var next worker
	// gated: the next start waits for a place in the runtime's start gate
	// (startupConcurrency). The first start and one an operator asked for
	// do; the restart of a worker that exited does not, as in Watt: a
	// crash is never left waiting behind other applications' starts.
	gated := true
	// noPromote: the last worker was a promoted standby that never became
	// ready (it died, or did not take the slot in time). The next attempt
	// starts a process: the standbys run the same code from the same
	// state, and the next one would most likely fail the same way.
	noPromote := false
	for {
		var exit restart.Exit
		var w worker
		var err error
		promoted := next != nil
		if promoted {
			w, next = next, nil
			s.mu.Lock()
			s.cur = w
			s.setStateLocked(StateStarting)
			s.mu.Unlock()
		} else {
			// Meanwhile a slot that never started shows as waiting for its
			// turn, one an operator restarts as failed or in backoff.
			if gated {
				if s.place = s.app.rt.gate.enter(ctx.Done()); s.place == nil {
					if s.getState() != StateExited {
						s.setState(StateExited)
					}
					return
				}
			}
			w, err = s.start()
		}
		if err != nil {
			s.leaveGate()
			exit = restart.Exit{Reason: "start: " + err.Error()}
			s.log.Error("worker could not be started", zap.Error(err))
			answer(waiting, fmt.Errorf("start: %w", err))
		} else {
			var stopped bool
			exit, stopped = s.supervise(ctx, w, waiting)
			if stopped {
				return
			}
		}
		noPromote = promoted && !exit.WasReady
		waiting = nil
		s.settle()
		if sp := s.app.sp(); sp.policy != trackedSpec.policy {
			// A reload changed the app's restart policy: it applies from
			// now. A reload that changed something else (the standby
			// count) keeps the count of crashes in a row.
			trackedSpec, tracker = sp, restart.NewTracker(sp.policy)
		}
		d := tracker.Next(exit)
		s.mu.Lock()
		s.lastExit = exit.Reason
		s.cur = nil
		if k := restartKind(exit.Reason); k == "oom" || k == "memory" {
			s.oomKills++
		}
		if !d.Restart {
			s.reason = d.Reason
			s.downSince = time.Time{}
			s.setStateLocked(StateFailed)
			s.mu.Unlock()
			s.log.Error("worker slot failed; not restarting", zap.String("reason", d.Reason))
			s.decide()
			s.closeListeners()
			done, ok := s.idle(ctx)
			if !ok {
				return
			}
			tracker.Reset()
			waiting = append(waiting, done)
			gated = true
			continue
		}
		gated = false
		s.restarts++
		s.countRestartLocked(restartKind(exit.Reason))
		// Shown with the state; a standby's promotion below may shorten it.
		s.retryAt = time.Now().Add(d.Delay)
		s.setStateLocked(StateBackoff)
		s.mu.Unlock()
		// A standby takes the slot at once after a crash whose worker
		// lived at least its back-off: it is started and loaded already,
		// and the slot's connections are waiting for it. What the
		// back-off is for, pacing a worker that keeps failing, that
		// worker's life has done already: from one attempt to the next
		// there was at least the back-off, as there is without standbys.
		// A worker that died sooner (an app that dies as it starts to
		// serve, its database down) has the slot wait out the rest of the
		// back-off before it promotes; promoted at once, one standby
		// after another would go through the crash-loop limit in a
		// second. With no standby to take the slot it waits the whole
		// back-off and starts a process, as without standbys.
		delay := d.Delay
		if !noPromote && s.app.sp().conf.Standby > 0 {
			rest := d.Delay - exit.Uptime
			if rest <= 0 {
				if w := s.app.standbys().promote(s); w != nil {
					if d.Delay > 0 {
						s.log.Info("worker lived longer than its back-off; a standby takes the slot at once",
							zap.Duration("delay", d.Delay), zap.Duration("uptime", exit.Uptime.Round(time.Millisecond)),
							zap.Int("consecutive", d.Consecutive))
					}
					if p, ok := w.(*proc); ok && !p.promotedWarm.Load() {
						// Still loading (a second crash soon after a
						// first took the standby that was ready): it
						// is ahead of a fresh start, but not a matter
						// of milliseconds. Until it is ready the slot
						// is steered around, as for a start, and what
						// its socket holds is relayed (rescue.go).
						s.app.rt.slotDown(s, time.Now())
					}
					next = w
					continue
				}
			} else {
				delay = rest
			}
		}
		// Until a worker of the slot is ready again, its socket takes no
		// new connections (steering.go): they go to the slots that serve
		// instead of waiting there for a start (and a back-off), as the
		// clients of the dead worker would, who connect again as it dies.
		// A worker that said it is exiting is still tearing down, so the
		// steering is in place before its connections close. Once the
		// slot serves, the other slots' workers shed their connections
		// (adopt), which spreads those clients over every slot again. A
		// standby's immediate promotion (above) is not steered around:
		// the standby serves the slot's queue in milliseconds. Before the
		// log line, so that whoever reads it sees the steering.
		s.app.rt.slotDown(s, time.Now().Add(delay))
		s.mu.Lock()
		s.retryAt = time.Now().Add(delay)
		s.mu.Unlock()
		if delay > 0 {
			s.log.Info("restarting worker after backoff", zap.Duration("delay", delay), zap.Int("consecutive", d.Consecutive))
		}
		t := time.NewTimer(delay)
	backoff:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				s.setState(StateExited)
				return
			case <-t.C:
				break backoff
			case done := <-s.restartReq:
				if s.refuse(done) {
					continue
				}
				// An operator's restart during backoff: start now, fresh count.
				t.Stop()
				tracker.Reset()
				waiting = append(waiting, done)
				gated = true
				// Sooner than the steering was told (firstBack).
				s.app.rt.slotDown(s, time.Now())
				break backoff
			}
		}
		s.mu.Lock()
		s.retryAt = time.Time{}
		s.mu.Unlock()
		if delay > 0 && len(waiting) == 0 && !noPromote {
			next = s.app.standbys().promote(s)
		}
	}
}

// answer replies to restart requests.
func answer(waiting []chan error, err error) {
	for _, done := range waiting {
		done <- err
	}
}

// refuse answers a restart request with errStopped once the runtime
// stops. The slot's own context may end well after that (applications
// other than the entrypoint stop last), and a worker started then would
// be killed at once.
func (s *slot) refuse(done chan error) bool {
	select {
	case <-s.app.rt.stopping:
		done <- errStopped
		return true
	default:
		return false
	}
}

// leaveGate ends the hold of the slot's start on its place in the gate.
func (s *slot) leaveGate() {
	s.place.leave()
	s.place = nil
}

func (s *slot) settle() { s.settleOnce.Do(func() { close(s.settled) }) }

func (s *slot) decide() { s.decideOnce.Do(func() { close(s.decided) }) }

// awaitDependencies waits until every worker slot of the applications this
// one depends on has decided (a worker ready, or given up), so that
// the requests a worker makes while it starts find them on the mesh. It
// returns why the slot must not start ("" when it may), or false when the
// runtime stops first. A dependency none of whose workers was ever ready
// could not start, and then neither can its dependants: the reason names
// it and carries its own.
func (s *slot) awaitDependencies(ctx context.Context) (string, bool) {
	defer func() {
		s.mu.Lock()
		s.waitingFor = ""
		s.mu.Unlock()
	}()
	var deps []*app
	for said := false; ; {
		// Read again after each wait: a reload meanwhile may have changed
		// the dependencies, or removed an application waited for (its
		// slots are then decided, see stopSlot).
		deps = s.app.sp().deps
		var pending []string
		var wait *slot
		for _, d := range deps {
			for _, ds := range d.slotList() {
				if !closed(ds.decided) {
					pending = append(pending, d.id)
					wait = ds
					break
				}
			}
		}
		if wait == nil {
			break
		}
		if !said && s.index == 0 {
			s.app.log.Info("waiting for dependencies to be ready", zap.Strings("dependencies", pending))
			said = true
		}
		s.mu.Lock()
		s.waitingFor = strings.Join(pending, ", ")
		s.mu.Unlock()
		select {
		case <-wait.decided:
		case <-ctx.Done():
			return "", false
		case <-s.app.rt.stopping:
			return "", false
		}
	}
	for _, d := range deps {
		if cur, ok := s.app.rt.lookup(d.id); !ok || cur != d {
			// Removed by a reload, which gives this application a
			// configuration without it: nothing to wait for.
			continue
		}
		up, why := false, ""
		for _, ds := range d.slotList() {
			ds.mu.Lock()
			up = up || ds.everUp
			if why == "" {
				why = ds.reason
			}
			ds.mu.Unlock()
		}
		if !up {
			return fmt.Sprintf("dependency %q could not start: %s", d.id, why), true
		}
	}
	return "", true
}

// idle waits in a failed slot for an operator's restart (the request, to
// be answered by the start's outcome, and true) or the end of the runtime
// (false).
func (s *slot) idle(ctx context.Context) (chan error, bool) {
	s.mu.Lock()
	respec := s.respec
	s.respec = false
	s.mu.Unlock()
	if respec {
		return make(chan error, 1), true // nobody waits for its answer
	}
	s.app.rt.slotFailed()
	for {
		select {
		case <-ctx.Done():
			s.setState(StateExited)
			return nil, false
		case done := <-s.restartReq:
			if s.refuse(done) {
				continue
			}
			s.mu.Lock()
			s.reason = ""
			s.mu.Unlock()
			return done, true
		}
	}
}

// start spawns a new process into the slot.
func (s *slot) start() (worker, error) {
	s.mu.Lock()
	s.begun, s.respec = true, false // this start reads the configuration in force
	s.setStateLocked(StateStarting)
	s.mu.Unlock()
	p, err := s.spawn()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cur = p
	s.mu.Unlock()
	return p, nil
}

// openListeners opens the slot's sockets unless they are open.
func (s *slot) openListeners() error {
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	if s.listeners != nil {
		return nil
	}
	// New sockets, which the app's standbys have no copies of.
	defer s.app.standbys().discard()
	var files []*os.File
	var names []string
	fail := func(err error) error {
		for _, f := range files {
			f.Close()
		}
		return fmt.Errorf("app %q worker %d: %w", s.app.id, s.index, err)
	}
	if s.app.entry {
		f, addr, err := s.app.rt.publicListener(s.tcpHost, s.tcpPort)
		if err != nil {
			return fail(err)
		}
		files, names, s.addr = append(files, f), append(names, ipc.ListenerHTTP), addr
		s.tcpPort = addr.Port
		if ino, err := listeners.Inode(f); err == nil {
			s.tcpInode = ino
			s.app.rt.portGroup.Joined(ino)
		}
	}
	mf, err := listeners.Unix(s.meshPath)
	if err != nil {
		return fail(fmt.Errorf("mesh socket: %w", err))
	}
	s.app.rt.dir.KeepSocket(s.meshPath)
	s.listeners, s.names = append(files, mf), append(names, ipc.ListenerMesh)
	if s.app.sp().launch != nil && s.app.sp().launch.Fronted {
		if err := s.startForwarders(); err != nil {
			for _, f := range s.listeners {
				f.Close()
			}
			s.listeners = nil
			return fail(err)
		}
	}
	return nil
}

// startForwarders makes wattd accept on the slot's sockets and forward to
// the worker's $PORT, for programs that cannot take a passed socket.
// Called with sockMu held.
func (s *slot) startForwarders() error {
	if s.port == 0 {
		p, err := front.FreePort()
		if err != nil {
			return fmt.Errorf("choose a port for the worker: %w", err)
		}
		s.port = p
	}
	for _, f := range s.listeners {
		fw, err := front.New(f, s.port, s.log.Named("front"))
		if err != nil {
			for _, fw := range s.forwarders {
				fw.Close(context.Background())
			}
			s.forwarders = nil
			return err
		}
		fw.Start()
		s.forwarders = append(s.forwarders, fw)
	}
	return nil
}

// closeListeners closes wattd's copies of the slot's sockets. A slot that
// gave up closes them so the kernel stops queueing connections for it (the
// other slots' sockets take them all); a restart opens them again.
func (s *slot) closeListeners() {
	// Last, with the socket out of the group: steering stops counting the
	// slot, and the other sockets' positions are read again.
	defer s.app.rt.slotUp(s)
	s.sockMu.Lock()
	for _, fw := range s.forwarders {
		// Stop accepting now; connections in flight get the app's grace.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.app.rt.cfg.GracefulShutdown.Application)
			defer cancel()
			fw.Close(ctx)
		}()
	}
	s.forwarders = nil
	files, inode := s.listeners, s.tcpInode
	// From here no standby starts with copies of them (spawn copies a
	// slot's sockets under sockMu).
	s.listeners, s.tcpInode = nil, 0
	s.sockMu.Unlock()
	// The standbys' copies would keep the sockets open, and in the port's
	// group, with nobody accepting on them: the kernel would go on handing
	// them new connections, reset when the standbys exit. They go first,
	// with the copy of a rescue (rescue.go).
	s.app.rt.releaseSocket(s)
	s.app.standbys().release(s)
	for _, f := range files {
		f.Close()
	}
	if inode != 0 {
		// Callers close the sockets once no worker holds a copy, so the
		// kernel has taken the socket out of the group.
		s.app.rt.portGroup.Left(inode)
	}
}

func (s *slot) spawn() (*proc, error) { return s.spawnOn(0) }

// spawnOn starts a worker; a fronted one listens on port, or on the slot's
// current port when port is 0.
func (s *slot) spawnOn(port int) (*proc, error) {
	a := s.app
	sp := a.sp() // one spec for the whole start, should a reload swap it meanwhile
	a.rt.needRunDir()
	if err := s.openListeners(); err != nil {
		return nil, err
	}
	if sp.launch.Fronted && port == 0 {
		// A fresh start (not a replacement, which brings its own port) gets
		// a fresh port too: the last worker may have failed because its
		// port was taken, and the taker would keep it.
		p, err := front.FreePort()
		if err != nil {
			return nil, fmt.Errorf("choose a port for the worker: %w", err)
		}
		s.setPort(p)
	}
	s.sockMu.Lock()
	// Held until the worker has its copies: a socket closed (at shutdown)
	// while it is being passed would hand the worker a dead or reused fd.
	defer s.sockMu.Unlock()
	files, names, env := s.listeners, s.names, sp.env
	if sp.launch.Fronted {
		// wattd accepts on the sockets itself; the worker gets a port.
		if port == 0 {
			port = s.port
		}
		files, names = nil, nil
		env = append(append([]string{}, env...), "PORT="+strconv.Itoa(port))
	}
	inspectPort := 0
	if a.rt.inspect != nil && sp.launch.Direct {
		// A Node.js worker (Launch.Direct: the preload's process is the
		// one wattd starts), not a command it runs.
		inspectPort = a.rt.nextInspectPort()
		env = withNodeOption(env, "--inspect="+net.JoinHostPort(a.rt.inspect.Host, strconv.Itoa(inspectPort)))
	}
	group, err := a.rt.cgroups.Worker(a.id, s.index, sp.limits)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	p, err := spawn(spawnSpec{
		group:     group,
		argv:      sp.launch.Argv,
		dir:       sp.launch.Dir,
		direct:    sp.launch.Direct,
		inspect:   inspectPort,
		env:       env,
		probePort: port,
		listeners: files,
		names:     names,
		app:       a.id,
		worker:    s.index,
		entry:     a.entry,
		log:       s.log,
		rt:        a.rt,
		logCounts: &s.logCounts,
	})
	if err != nil {
		_ = group.Remove()
		return nil, err
	}
	return p, nil
}

// setPort points the slot's forwarders at a new worker port.
func (s *slot) setPort(port int) {
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	s.port = port
	for _, fw := range s.forwarders {
		if err := fw.SetPort(port); err != nil {
			s.log.Error("forwarder", zap.Error(err))
		}
	}
}

// supervise owns w from its start until it exits (stopped=false, with
// the exit) or the runtime stops (stopped=true, after the slot's worker
// was stopped gracefully). waiting are restart requests to answer with the
// outcome of w's start. Rolling restarts replace the worker in place.
func (s *slot) supervise(ctx context.Context, w worker, waiting []chan error) (exit restart.Exit, stopped bool) {
	first := w
	w, how, err := s.awaitReady(ctx, w, &waiting)
	if err != nil {
		s.leaveGate()
		var se *startError
		if !errors.As(err, &se) { // ctx ended: the runtime stops, or the slot goes
			answer(waiting, s.cutShort())
			s.stopAtEnd(w)
			return restart.Exit{}, true
		}
		answer(waiting, fmt.Errorf("worker %w", err))
		return restart.Exit{Uptime: time.Since(w.Started()), Reason: se.reason}, false
	}
	replaced := ""
	if w != first {
		replaced = "rolling restart"
	}
	s.adopt(w, how, replaced)
	s.leaveGate() // the start is over: the slot is ready
	answer(waiting, nil)
	health := s.watchHealth(w)
	defer func() { health.stop() }()
	for {
		select {
		case reason := <-health.unhealthy():
			health.stop()
			w = s.replaceUnhealthy(ctx, w, reason)
			health = s.watchHealth(w)
		case <-w.Exited():
			fields := lastErrorFields(w)
			exit := s.lost(w, w.ExitReason(), fields...)
			if len(fields) > 0 {
				// ctl ps's LAST EXIT says why, as for a failed start.
				exit.Reason += "; last error output: " + fields[0].String
			}
			return exit, false
		case <-w.Leaving():
			// The worker said it is exiting: its process still has to
			// end, which takes the kernel milliseconds (tens with a large
			// heap) in which the slot's connections would wait. The slot
			// moves on now, as for an exit; the process is followed to its
			// end (leave), and killed if it is still there after the grace.
			s.leave(w, leaverExiting)
			return s.lost(w, w.LeaveReason(), zap.Bool("announced", true)), false
		case done := <-s.restartReq:
			if s.refuse(done) {
				continue
			}
			health.stop()
			nw, how, err := s.replaceForRestart(ctx, w)
			if err != nil {
				health = s.watchHealth(w)
				done <- err
				continue
			}
			old := w
			w = nw
			s.endedMeanwhile(old)
			s.adopt(w, how, "rolling restart")
			health = s.watchHealth(w)
			// The restart is done once the old worker is gone: a rolling
			// restart moves to the next slot only then, so that no more
			// than one extra process per slot runs at a time.
			s.retireBehind(old, func() { done <- nil })
		case <-ctx.Done():
			s.stopAtEnd(w)
			return restart.Exit{}, true
		}
	}
}

// lost records the end of w, the slot's ready worker, for reason: the
// slot is down from now, and the exit goes to the restart policy.
func (s *slot) lost(w worker, reason string, fields ...zap.Field) restart.Exit {
	up := time.Since(w.Started())
	s.mu.Lock()
	s.downSince = time.Now()
	// When w became ready is known for the slot's current worker; else
	// its whole life is taken for its service, as before it was known.
	served := up
	if s.cur == w && s.curReady.After(w.Started()) {
		served = time.Since(s.curReady)
	}
	s.mu.Unlock()
	s.log.Warn("worker exited", append([]zap.Field{zap.Int("pid", w.PID()), zap.String("reason", reason),
		zap.Duration("uptime", up.Round(time.Millisecond))}, fields...)...)
	return restart.Exit{Uptime: up, WasReady: true, Served: served, Reason: reason}
}

// leaver is a former worker of the slot whose process is still there:
// state says what it does meanwhile, "exiting" (it said it is) or
// "draining" (a replacement took its place, see retireBehind).
type leaver struct {
	w     worker
	state string
}

// Leaver states, as ctl ps shows them.
const (
	leaverExiting  = "exiting"
	leaverDraining = "draining"
)

// leave follows w, a former worker of the slot, until its process is
// gone: the slot, which no longer counts it as its worker, waits for it
// before it ends (awaitLeavers), and the runtime kills it with the slot's
// worker should the shutdown grace run out.
func (s *slot) leave(w worker, state string) {
	s.mu.Lock()
	s.leavers = append(s.leavers, leaver{w: w, state: state})
	s.mu.Unlock()
	go func() {
		<-w.Exited()
		s.mu.Lock()
		s.leavers = slices.DeleteFunc(s.leavers, func(l leaver) bool { return l.w == w })
		s.mu.Unlock()
	}()
}

// retireBehind stops old, the worker a replacement just took the place of
// (adopted already), as retire does, without holding up the slot: its
// owner goes on watching the new worker, whose crash, health or
// unresponsiveness in the meantime must not wait for the old one's drain.
// old stays one of the slot's leavers until its process is gone; then
// done, when not nil, is called.
func (s *slot) retireBehind(old worker, done func()) {
	s.leave(old, leaverDraining)
	go func() {
		s.retire(old, func(State) {})
		if done != nil {
			done()
		}
	}()
}

// awaitLeavers waits until the processes of the slot's former workers
// are gone; each is killed if it outstays its grace (proc.holdToExit,
// stopWorker).
func (s *slot) awaitLeavers() {
	s.mu.Lock()
	ls := slices.Clone(s.leavers)
	s.mu.Unlock()
	for _, l := range ls {
		<-l.w.Exited()
	}
}

// stopAtEnd stops the slot's worker gracefully as the runtime ends.
func (s *slot) stopAtEnd(w worker) {
	s.retire(w, s.setState)
	s.mu.Lock()
	s.lastExit = w.ExitReason()
	s.cur = nil
	s.setStateLocked(StateExited)
	s.mu.Unlock()
}

// startError says why a worker did not become ready; the worker is gone.
type startError struct {
	what   string // "exited before it was ready", "not ready within startTimeout"
	reason string // the exit as the restart policy records it
}

func (e *startError) Error() string { return e.what + ": " + e.reason }

// handoverTimeout bounds how long a standby promoted warm may take to be
// ready in its slot.
const handoverTimeout = 2 * time.Second

// awaitReady is the one wait for a worker to become ready, for a slot's
// first worker and for a replacement alike. A worker is ready when it says
// so (a fronted worker: when its port accepts); when it never said hello
// and stayed up for noProtocolReadyAfter (a program that ignores the
// protocol), unless its launch says it always speaks it; or, outside the
// entrypoint, when it still runs at startTimeout (a queue consumer never
// listens). It returns the ready worker and how its readiness was
// established; a *startError when the worker exited first, or missed
// startTimeout and was killed; or ctx's error, with the worker left
// running for the caller to stop.
//
// With waiting set, restart requests that arrive meanwhile are served by
// replacing w, and the replacement's readiness is this same wait (without
// serving requests). A replacement that became ready is returned in w's
// place, its request appended to *waiting, to be answered once the slot
// has adopted it; one that failed is answered at once, and w goes on
// starting within its own deadlines.
func (s *slot) awaitReady(ctx context.Context, w worker, waiting *[]chan error) (worker, string, error) {
	rt := s.app.rt
	// Deadlines count from the worker's start, so that time spent on a
	// failed replacement meanwhile does not extend them.
	fallback := time.NewTimer(time.Until(w.Started().Add(rt.noProtocolAfter)))
	defer fallback.Stop()
	// startTimeout 0 means no limit, as in Watt.
	var timedOut <-chan time.Time
	if rt.cfg.StartTimeout > 0 {
		timeout := time.NewTimer(time.Until(w.Started().Add(rt.cfg.StartTimeout)))
		defer timeout.Stop()
		timedOut = timeout.C
	}
	// A standby promoted warm takes the slot with a listen() and a
	// message (13-22 ms measured): one that has not within
	// handoverTimeout is stuck or lying, and holding the slot until
	// startTimeout would keep its connections waiting that long.
	var handover <-chan time.Time
	if p, ok := w.(*proc); ok && p.promotedWarm.Load() {
		t := time.NewTimer(time.Until(w.Started().Add(handoverTimeout)))
		defer t.Stop()
		handover = t.C
	}
	var requests chan chan error
	if waiting != nil {
		requests = s.restartReq
	}
	for {
		select {
		case <-handover:
			s.log.Error("promoted standby did not take the slot in time; killing it", zap.Int("pid", w.PID()), zap.Duration("within", handoverTimeout))
			killWorker(w)
			return w, "", &startError{what: "promoted standby did not take the slot", reason: fmt.Sprintf("promoted standby not ready within %s", handoverTimeout)}
		case <-w.Ready():
			if s.app.sp().launch.Fronted {
				return w, "port accepts", nil
			}
			return w, "ready message", nil
		case <-fallback.C:
			if !closed(w.Hello()) && !s.app.sp().launch.Fronted && !s.app.sp().launch.Protocol {
				return w, fmt.Sprintf("no control protocol; up for %s", rt.noProtocolAfter), nil
			}
		case <-w.Exited():
			reason := w.ExitReason()
			tail := w.OutputTail(500 * time.Millisecond)
			fields := []zap.Field{zap.Int("pid", w.PID()), zap.String("reason", reason), zap.String("output", strings.Join(tail, "\n"))}
			gone := s.app.rt.runDirHint()
			if gone != "" {
				fields = append(fields, zap.String("hint", strings.TrimPrefix(gone, "; ")))
			}
			s.log.Error("worker exited before it was ready", fields...)
			if last := w.LastError(); last != "" {
				reason += "; last error output: " + last
			} else if len(tail) > 0 {
				reason += "; last output: " + tail[len(tail)-1]
			}
			return w, "", &startError{what: "exited before it was ready", reason: reason + pidsLimitHint(w) + gone}
		case <-timedOut:
			if s.app.sp().launch.Protocol && !closed(w.Hello()) {
				// A Node.js worker's preload says hello before the
				// application's code runs: one that has not by now is
				// stuck before any code of its own ran, not a worker that
				// serves nothing by design (nor one slow to listen).
				why := "stuck before wattd's preload ran"
				if sp := s.app.sp(); sp.conf.WorkerProtocol && (sp.capability == "command" || sp.capability == "go") {
					why = `the app says "workerProtocol": true`
				}
				reason := fmt.Sprintf("no hello on the control channel within startTimeout (%s): %s", rt.cfg.StartTimeout, why) + pidsLimitHint(w) + cpuLimitHint(w)
				s.log.Error("worker never spoke the control protocol; killing it", zap.Int("pid", w.PID()), zap.String("reason", reason))
				killWorker(w)
				return w, "", &startError{what: "not ready within startTimeout", reason: reason}
			}
			if !s.app.entry {
				// An app that never listens (a queue consumer, a cron) is
				// running as intended; it just serves nothing.
				s.log.Warn("worker did not listen within startTimeout; taken as ready", zap.Int("pid", w.PID()), zap.Duration("startTimeout", rt.cfg.StartTimeout))
				return w, "startTimeout without listen", nil
			}
			s.log.Error("worker not ready within startTimeout; killing it", zap.Int("pid", w.PID()), zap.Duration("startTimeout", rt.cfg.StartTimeout))
			hint := s.listenHint(w) + pidsLimitHint(w) + cpuLimitHint(w)
			killWorker(w)
			return w, "", &startError{what: "not ready within startTimeout", reason: fmt.Sprintf("not ready within startTimeout (%s)", rt.cfg.StartTimeout) + hint}
		case done := <-requests:
			if s.refuse(done) {
				continue
			}
			nw, how, err := s.replace(ctx, w)
			if err != nil {
				done <- err
				continue
			}
			// The worker replaced was still starting: it served nothing
			// and there is nothing to watch it for, so it is stopped
			// before the slot goes on.
			s.retire(w, func(State) {})
			*waiting = append(*waiting, done)
			return nw, how, nil
		case <-ctx.Done():
			return w, "", ctx.Err()
		}
	}
}

// servesLocked tells whether the slot has a worker that serves: ready and
// its process not gone. A ready slot whose process is gone is about to
// move on (lost, then run). s.mu is held.
func (s *slot) servesLocked() bool {
	return s.state == StateReady && s.cur != nil && !closed(s.cur.Exited())
}

// listenHint says where the processes of w, a fronted entrypoint worker
// not ready in time, listen: a program that ignores $PORT and listens on a
// port of its own, or one that listens nowhere. Workers that take their
// sockets are ready by their word or after a second (see awaitReady), and
// the Node.js preload puts a listen() on wattd's socket whatever port it
// asks for.
func (s *slot) listenHint(w worker) string {
	if !s.app.sp().launch.Fronted {
		return ""
	}
	addrs := procnet.ListeningOf(procnet.Tree(w.PID()), nil)
	if len(addrs) == 0 {
		return "; its processes listen on no TCP port; it must listen on the port in $PORT"
	}
	shown := make([]string, 0, 4)
	for i, a := range addrs {
		if i == 3 {
			shown = append(shown, fmt.Sprintf("and %d more", len(addrs)-3))
			break
		}
		shown = append(shown, a.String())
	}
	return "; its processes listen on " + strings.Join(shown, ", ") + ", not on the port in $PORT"
}

// runDirHint says, when wattd's runtime directory is gone (removed while
// wattd runs, by hand or by a cleaner that ignores its lock), that it is:
// a worker then fails to start for want of the files wattd keeps there
// (the Node.js preload), with an error that does not say why. "" when
// the directory is there.
func (rt *Runtime) runDirHint() string {
	if rt.dir == nil {
		return ""
	}
	if _, err := os.Stat(rt.dir.Path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	return fmt.Sprintf("; wattd's runtime directory %s was removed while wattd runs (its workers' preload, the admin and mesh sockets): restart wattd", rt.dir.Path)
}

// exitErrorWait bounds how long the report of a worker's exit waits for
// the end of its stderr pipe, so that it can carry what the worker wrote
// last (a Go program's log.Fatal line): the end comes as soon as wattd has
// read the lines the exit left in the pipe, well within this, and only a
// process of the worker's that escaped its kill holds the pipe longer. The
// restart waits as long, at most.
const exitErrorWait = 20 * time.Millisecond

// lastErrorFields is the lastError field of the report of w's exit: its
// last telling stderr line (logs.Sink.LastStderr), none when it wrote
// none.
func lastErrorFields(w worker) []zap.Field {
	var last string
	if p, ok := w.(*proc); ok {
		last = p.sink.LastStderrAfterEnd(exitErrorWait)
	} else {
		last = w.LastError()
	}
	if last == "" {
		return nil
	}
	return []zap.Field{zap.String("lastError", last)}
}

// pidsLimitHint says, when w's cgroup refused it processes or threads at
// its pids limit, that it did: a likely reason for a start that failed or
// hung. "" otherwise.
func pidsLimitHint(w worker) string {
	p, ok := w.(*proc)
	if !ok || p.group == nil {
		return ""
	}
	var n uint64
	if closed(p.Exited()) {
		n = p.pidsHits.Load() // read before the group went
	} else {
		n = p.group.PidsLimitHits()
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; its cgroup hit its pids limit (resources.pids %d) %d times: a new process or thread was refused", p.group.Limits().Pids, n)
}

// cpuLimitHint says, when w is still running and its cgroup's cpus limit
// held it back for most of its start, that it did: a start that timed out
// under "cpus": 0.01 was otherwise told as a worker stuck before the
// preload ran. "" otherwise (no limit, no throttling, a worker gone).
func cpuLimitHint(w worker) string {
	p, ok := w.(*proc)
	if !ok || p.group == nil || p.group.Limits().CPUs <= 0 || closed(p.Exited()) {
		return ""
	}
	u, _ := p.group.Stats()
	t := u.Throttling
	if t == nil || t.Throttled == 0 || t.Periods == 0 || t.Throttled*2 < t.Periods {
		return ""
	}
	return fmt.Sprintf("; its cgroup's cpus limit (resources.cpus %g) held it back in %d of %d periods (%s in all)",
		p.group.Limits().CPUs, t.Throttled, t.Periods, t.Time.Round(time.Millisecond))
}

// adopt makes w, which just became ready, the slot's worker. It is the one
// place where a slot becomes ready: for its first worker, for the
// replacement of a ready worker, and for one that replaced a worker still
// starting. replacedFor says why w replaced another worker ("" for none):
// that counts as a restart and goes into the slot's history.
func (s *slot) adopt(w worker, how, replacedFor string) {
	s.mu.Lock()
	var down time.Duration
	if !s.downSince.IsZero() {
		down = time.Since(s.downSince)
		s.downSince = time.Time{}
		s.replaced.observe(down)
	}
	s.mu.Unlock()
	// Logged before anyone can see the slot ready (ctl ps, the mesh), so
	// the log never lags behind what the runtime reports.
	fields := []zap.Field{zap.Int("pid", w.PID()), zap.String("how", how),
		zap.Duration("startup", time.Since(w.Started()).Round(time.Millisecond))}
	if down > 0 {
		// How long the slot served nothing: its last worker's exit to now.
		fields = append(fields, zap.Duration("replacement", down.Round(time.Millisecond)))
	}
	s.log.Info("worker ready", fields...)
	s.mu.Lock()
	s.cur = w
	s.curReady = time.Now()
	s.everUp = true
	if s.state != StateReady {
		s.setStateLocked(StateReady)
	}
	took := time.Since(w.Started())
	s.starts++
	s.startTime += took
	s.startsIn.observe(took)
	if replacedFor != "" {
		s.restarts++
		switch {
		case s.endedKind != "":
			s.countRestartLocked(s.endedKind)
			s.endedKind = ""
		case replacedFor == "rolling restart":
			s.countRestartLocked("rolling_restart")
		default:
			s.countRestartLocked("unhealthy")
		}
		s.recordLocked("replaced", replacedFor)
	}
	s.mu.Unlock()
	// New connections may come here again; if they were steered to the
	// other slots meanwhile, those shed theirs so that they spread again.
	if s.app.rt.slotUp(s) {
		s.app.rt.shedOthers(s)
	}
	s.settle()
	s.decide()
}

// endedMeanwhile records the end of old, the slot's worker, if it ended
// while its replacement started (a crash, a kill, the OOM killer during a
// rolling restart or a health replacement): logged, kept as the slot's
// last exit and in its history like any exit, and counted by its own kind
// rather than as the replacement it was about to be. Otherwise the
// replacement's adoption hid it. It reports whether old had ended.
func (s *slot) endedMeanwhile(old worker) bool {
	if !closed(old.Exited()) {
		return false
	}
	reason := old.ExitReason()
	s.log.Warn("worker exited", zap.Int("pid", old.PID()), zap.String("reason", reason),
		zap.String("while", "its replacement started"))
	s.mu.Lock()
	s.lastExit = reason
	s.recordLocked("exited", reason)
	s.endedKind = restartKind(reason)
	s.mu.Unlock()
	return true
}

// replace starts a new process in the slot next to old and waits until it
// is ready (both share the slot's sockets, so nothing is refused
// meanwhile). It returns the new worker and how it became ready, for the
// caller to adopt it and then stop old (retireBehind); if it fails to, old
// keeps running and the error says why.
func (s *slot) replace(ctx context.Context, old worker) (worker, string, error) {
	rt := s.app.rt
	port := 0
	if s.app.sp().launch.Fronted {
		// The new worker gets a port of its own; the forwarders switch to
		// it once it is ready, so both serve meanwhile.
		p, err := front.FreePort()
		if err != nil {
			return nil, "", fmt.Errorf("choose a port for the worker: %w", err)
		}
		port = p
	}
	// A replacement of a ready worker waits for its place in the start
	// gate, and gives it back once its start is over, not after the old
	// worker's drain; one asked for while the slot's own start is in
	// progress has that start's place already (pl stays nil).
	var pl *startPlace
	if s.place == nil {
		if pl = rt.gate.enter(ctx.Done()); pl == nil {
			return nil, "", s.cutShort()
		}
	}
	np, err := s.spawnOn(port)
	if err != nil {
		pl.leave()
		return nil, "", fmt.Errorf("start replacement: %w", err)
	}
	s.mu.Lock()
	s.incoming = np
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.incoming = nil
		s.mu.Unlock()
	}()
	nw, how, err := s.awaitReady(ctx, np, nil)
	pl.leave()
	if err != nil {
		if ctx.Err() != nil {
			killWorker(np)
			return nil, "", s.cutShort()
		}
		return nil, "", fmt.Errorf("replacement %w", err)
	}
	if port != 0 {
		s.setPort(port)
		// A connection dialled to the old port just before the switch may
		// still sit in its accept queue, and closing that listener would
		// reset it; give the old worker a moment to accept it first.
		time.Sleep(frontSwitchSettle)
	}
	s.log.Info("replacement ready; stopping the old worker", zap.Int("pid", nw.PID()), zap.Int("old_pid", old.PID()))
	return nw, how, nil
}

// requestRestart asks the owner for a rolling restart and waits for its
// outcome: the new worker ready, or why it is not.
func (s *slot) requestRestart(ctx context.Context) error {
	select {
	case <-s.app.rt.stopping:
		return errStopped
	default:
	}
	s.mu.Lock()
	if !s.begun && s.state != StateFailed {
		// No worker yet: the slot's first start, still to come, runs
		// the configuration in force then (a reload swapped it before
		// asking), and its owner does not read requests until then. If
		// it fails before it starts, it starts once on this one (idle).
		s.respec = true
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	done := make(chan error, 1)
	select {
	case s.restartReq <- done:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.app.rt.stopping:
		return errStopped
	case <-s.done:
		return errRemoved
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slot) countRestartLocked(kind string) {
	if s.restartsBy == nil {
		s.restartsBy = map[string]int{}
	}
	s.restartsBy[kind]++
}

// RestartKinds are the kinds restartKind and adopt give, for the metrics
// to export each one, zeros included.
var RestartKinds = []string{"exit", "signal", "oom", "memory", "start_timeout", "control_channel", "unhealthy", "rolling_restart", "other"}

// restartKind sorts the reason a worker ended into the few kinds the
// metrics label restarts with; the reason itself (exit codes, output)
// would make a series per distinct message.
func restartKind(reason string) string {
	switch {
	case strings.HasPrefix(reason, "oom"):
		return "oom"
	case strings.HasPrefix(reason, "control channel:"):
		return "control_channel"
	case strings.HasPrefix(reason, "not ready within startTimeout"):
		return "start_timeout"
	case strings.HasPrefix(reason, "memory"):
		return "memory"
	case strings.HasPrefix(reason, "exit status"):
		return "exit"
	case strings.HasPrefix(reason, "signal:"):
		return "signal"
	}
	return "other"
}

// shownStateLocked is the slot's state as the status and the mesh table
// show it: "waiting" for a slot that never started (its turn has not
// come: the entrypoint waits for the other applications, an application
// for its dependencies).
func (s *slot) shownStateLocked() string {
	if s.state == StateExited && len(s.history) == 0 {
		return "waiting"
	}
	return s.state.String()
}

func (s *slot) status() WorkerStatus {
	s.mu.Lock()
	ws := WorkerStatus{
		Index:     s.index,
		State:     s.state.String(),
		Restarts:  s.restarts,
		LastExit:  s.lastExit,
		OOMKills:  s.oomKills,
		Starts:    s.starts,
		StartTime: s.startTime.Seconds(),
		History:   append([]Event(nil), s.history...),

		StartsWithin:       s.startsIn.cumulative(),
		Replacements:       s.replaced.n,
		ReplacementTime:    s.replaced.sum.Seconds(),
		ReplacementsWithin: s.replaced.cumulative(),
		LogLinesDropped:    s.logCounts.Dropped.Load(),
		LogLinesTruncated:  s.logCounts.Truncated.Load(),
	}
	if len(s.restartsBy) > 0 {
		ws.RestartsBy = maps.Clone(s.restartsBy)
	}
	if s.state == StateBackoff && !s.retryAt.IsZero() {
		ws.RetryIn = max(0, time.Until(s.retryAt)).Seconds()
	}
	if ws.State = s.shownStateLocked(); ws.State == "waiting" {
		ws.WaitingFor = s.waitingFor
	}
	s.sockMu.Lock()
	if s.addr != nil {
		ws.ListenAddr = s.addr.String()
	}
	s.sockMu.Unlock()
	w := s.cur
	if s.state == StateReady && w != nil && !s.servesLocked() {
		// The process is gone and the slot is about to decide what comes
		// next (lost, then run): until then it shows the exit, not a ready
		// slot without a pid.
		ws.State = StateExited.String()
	}
	leavers := slices.Clone(s.leavers)
	incoming := s.incoming
	s.mu.Unlock()
	if incoming != nil && !closed(incoming.Exited()) {
		rw := LeavingWorker{PID: incoming.PID(), State: StateStarting.String(), Uptime: time.Since(incoming.Started()).Seconds()}
		if st, ok := procnet.ReadStat(rw.PID); ok {
			rw.RSS = st.RSS
		}
		ws.Replacement = &rw
	}
	// The readings of /proc and the cgroup are made outside the slot's
	// lock, which the slot's own goroutine needs to supervise the worker.
	for _, l := range leavers {
		if closed(l.w.Exited()) {
			continue
		}
		lw := LeavingWorker{PID: l.w.PID(), State: l.state, Uptime: time.Since(l.w.Started()).Seconds()}
		if st, ok := procnet.ReadStat(lw.PID); ok {
			lw.RSS = st.RSS
		}
		ws.Leaving = append(ws.Leaving, lw)
	}
	if n, ok := s.app.rt.cgroups.OOMKills(s.app.id, s.index); ok {
		ws.CgroupOOMKills = &n
	}
	if w != nil && !closed(w.Exited()) {
		ws.PID = w.PID()
		ws.Uptime = time.Since(w.Started()).Seconds()
		ws.Started = float64(w.Started().UnixNano()) / 1e9
		if st, ok := procnet.ReadStat(w.PID()); ok {
			ws.CPU, ws.RSS = st.CPU.Seconds(), st.RSS
			ws.CPUUser, ws.CPUSystem, ws.VirtualMemory = st.User.Seconds(), st.System.Seconds(), st.VSize
		}
		ws.OpenFDs, _ = procnet.OpenFDs(w.PID())
		if u, ok := w.Usage(); ok {
			ws.Memory, ws.MemoryLimit = u.Memory, u.MemoryLimit
			ws.CPUThrottling, ws.Pressure = throttlingStatus(u.Throttling), pressureStatus(u.Pressure)
		}
		st, _ := w.Stats()
		ws.ELU, ws.HeapUsed, ws.HeapTotal, ws.ActiveConns = st.ELU, st.HeapUsed, st.HeapTotal, st.ActiveConns
		ws.RequestsDone, ws.Requests, ws.GC, ws.Lag, ws.AppMetrics = st.RequestsDone, st.Requests, st.GC, st.Lag, st.AppMetrics
		ws.Process, ws.ClientRequests = st.Process, st.ClientRequests
		ws.HealthSignals = w.HealthSignals()
		if p, ok := w.(*proc); ok {
			ws.InspectPort = p.inspectPort
		}
	}
	if ws.PID == 0 {
		// No process (backoff, failed, waiting): the limit its next one
		// will be held to, so that ctl ps shows "- / 96.0 MiB".
		if sp := s.app.sp(); sp != nil {
			ws.MemoryLimit = uint64(max(sp.limits.Memory, 0))
		}
	}
	return ws
}
