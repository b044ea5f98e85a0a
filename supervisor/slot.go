package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/front"
	"github.com/wattd/wattd/supervisor/listeners"
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
var errStopped = errors.New("runtime is stopping")

// slot is one worker position of an application. It owns the slot's
// sockets for the life of the runtime; the processes in it come and go.
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
	port       int                // a fronted app's worker port ($PORT); 0 until chosen
	forwarders []*front.Forwarder // a fronted app's: one per socket, to port

	restartReq chan chan error // rolling restart requests, answered when done

	// settled is closed when the slot's first worker became ready or
	// gave up; the entrypoint starts after the other apps settled.
	settled    chan struct{}
	settleOnce sync.Once

	mu       sync.Mutex // guards the fields below, read by status
	state    State
	cur      *proc
	restarts int
	lastExit string
	reason   string // why the slot failed
	everUp   bool   // a worker of this slot was ready at least once
}

func newSlot(a *app, index int) *slot {
	return &slot{
		app:        a,
		index:      index,
		log:        a.log.With(zap.Int("worker", index)),
		restartReq: make(chan chan error),
		settled:    make(chan struct{}),
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
	s.app.rt.stateChanged()
}

func (s *slot) getState() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// run is the slot's owner goroutine. It returns after ctx is cancelled and
// the slot's process has been stopped.
func (s *slot) run(ctx context.Context) {
	tracker := restart.NewTracker(s.app.rt.policy)
	for {
		p, err := s.start()
		var exit restart.Exit
		if err != nil {
			exit = restart.Exit{Reason: "start: " + err.Error()}
			s.log.Error("worker could not be started", zap.Error(err))
		} else {
			var stopped bool
			exit, stopped = s.supervise(ctx, p)
			if stopped {
				return
			}
		}
		s.settle()
		d := tracker.Next(exit)
		s.mu.Lock()
		s.lastExit = exit.Reason
		s.cur = nil
		if !d.Restart {
			s.reason = d.Reason
			s.setStateLocked(StateFailed)
			s.mu.Unlock()
			s.log.Error("worker slot failed; not restarting", zap.String("reason", d.Reason))
			s.closeListeners()
			if !s.idle(ctx) {
				return
			}
			tracker.Reset()
			continue
		}
		s.restarts++
		s.setStateLocked(StateBackoff)
		s.mu.Unlock()
		if d.Delay > 0 {
			s.log.Info("restarting worker after backoff", zap.Duration("delay", d.Delay), zap.Int("consecutive", d.Consecutive))
		}
		t := time.NewTimer(d.Delay)
		select {
		case <-ctx.Done():
			t.Stop()
			s.setState(StateExited)
			return
		case <-t.C:
		case done := <-s.restartReq:
			// An operator's restart during backoff: start now, fresh count.
			t.Stop()
			tracker.Reset()
			done <- nil
		}
	}
}

func (s *slot) settle() { s.settleOnce.Do(func() { close(s.settled) }) }

// idle waits in a failed slot for an operator's restart (true) or the end
// of the runtime (false).
func (s *slot) idle(ctx context.Context) bool {
	s.app.rt.slotFailed()
	select {
	case <-ctx.Done():
		s.setState(StateExited)
		return false
	case done := <-s.restartReq:
		s.mu.Lock()
		s.reason = ""
		s.mu.Unlock()
		done <- nil
		return true
	}
}

// start spawns a new process into the slot.
func (s *slot) start() (*proc, error) {
	s.setState(StateStarting)
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
	var files []*os.File
	var names []string
	fail := func(err error) error {
		for _, f := range files {
			f.Close()
		}
		return fmt.Errorf("app %q worker %d: %w", s.app.id, s.index, err)
	}
	if s.app.entry {
		f, addr, err := listeners.TCP(s.tcpHost, s.tcpPort)
		if err != nil {
			return fail(err)
		}
		files, names, s.addr = append(files, f), append(names, ipc.ListenerHTTP), addr
		s.tcpPort = addr.Port
	}
	mf, err := listeners.Unix(s.meshPath)
	if err != nil {
		return fail(fmt.Errorf("mesh socket: %w", err))
	}
	s.listeners, s.names = append(files, mf), append(names, ipc.ListenerMesh)
	if s.app.launch != nil && s.app.launch.Fronted {
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
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	for _, fw := range s.forwarders {
		// Stop accepting now; connections in flight get the app's grace.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.app.rt.cfg.GracefulShutdown.Application)
			defer cancel()
			fw.Close(ctx)
		}()
	}
	s.forwarders = nil
	for _, f := range s.listeners {
		f.Close()
	}
	s.listeners = nil
}

func (s *slot) spawn() (*proc, error) { return s.spawnOn(0) }

// spawnOn starts a worker; a fronted one listens on port, or on the slot's
// current port when port is 0.
func (s *slot) spawnOn(port int) (*proc, error) {
	a := s.app
	if err := s.openListeners(); err != nil {
		return nil, err
	}
	if a.launch.Fronted && port == 0 {
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
	files, names, env := s.listeners, s.names, a.env
	if a.launch.Fronted {
		// wattd accepts on the sockets itself; the worker gets a port.
		if port == 0 {
			port = s.port
		}
		files, names = nil, nil
		env = append(append([]string{}, env...), "PORT="+strconv.Itoa(port))
	}
	s.sockMu.Unlock()
	return spawn(spawnSpec{
		argv:      a.launch.Argv,
		dir:       a.launch.Dir,
		env:       env,
		probePort: port,
		listeners: files,
		names:     names,
		app:       a.id,
		worker:    s.index,
		entry:     a.entry,
		log:       s.log,
		rt:        a.rt,
	})
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

// supervise watches p until it exits (stopped=false, with the exit) or the
// runtime stops (stopped=true, after p was stopped gracefully). Rolling
// restarts replace p in place.
func (s *slot) supervise(ctx context.Context, p *proc) (exit restart.Exit, stopped bool) {
	rt := s.app.rt
	var readyAt time.Time
	ready := p.ready
	fallback := time.NewTimer(noProtocolReadyAfter)
	startTimeout := time.NewTimer(rt.cfg.StartTimeout)
	defer fallback.Stop()
	defer startTimeout.Stop()
	markReady := func(how string) {
		ready = nil
		readyAt = time.Now()
		s.mu.Lock()
		s.everUp = true
		s.setStateLocked(StateReady)
		s.mu.Unlock()
		s.settle()
		s.log.Info("worker ready", zap.Int("pid", p.pid), zap.String("how", how),
			zap.Duration("startup", readyAt.Sub(p.started).Round(time.Millisecond)))
	}
	for {
		select {
		case <-p.exited:
			reason := p.exitReason()
			wasReady := !readyAt.IsZero()
			if wasReady {
				s.log.Warn("worker exited", zap.Int("pid", p.pid), zap.String("reason", reason),
					zap.Duration("uptime", time.Since(p.started).Round(time.Millisecond)))
			} else {
				tail := p.outputTail(500 * time.Millisecond)
				s.log.Error("worker exited before it was ready", zap.Int("pid", p.pid),
					zap.String("reason", reason), zap.String("output", strings.Join(tail, "\n")))
				if last := p.sink.LastStderr(); last != "" {
					reason += "; last error output: " + last
				} else if len(tail) > 0 {
					reason += "; last output: " + tail[len(tail)-1]
				}
			}
			return restart.Exit{Uptime: time.Since(p.started), WasReady: wasReady, Reason: reason}, false
		case <-ready:
			markReady("ready message")
		case <-fallback.C:
			if ready != nil && !p.spoke() && !s.app.launch.Fronted {
				markReady(fmt.Sprintf("no control protocol; up for %s", noProtocolReadyAfter))
			}
		case <-startTimeout.C:
			if ready == nil {
				continue
			}
			if !s.app.entry {
				// An app that never listens (a queue consumer, a cron) is
				// running as intended; it just serves nothing.
				s.log.Warn("worker did not listen within startTimeout; taken as ready", zap.Duration("startTimeout", rt.cfg.StartTimeout))
				markReady("startTimeout without listen")
				continue
			}
			s.log.Error("worker not ready within startTimeout; killing it", zap.Duration("startTimeout", rt.cfg.StartTimeout))
			p.kill()
			return restart.Exit{Uptime: time.Since(p.started), Reason: fmt.Sprintf("not ready within startTimeout (%s)", rt.cfg.StartTimeout)}, false
		case done := <-s.restartReq:
			np, err := s.replace(ctx, p)
			if err == nil {
				p, ready = np, nil
				readyAt = time.Now()
				s.mu.Lock()
				s.cur = np
				s.restarts++
				s.mu.Unlock()
			}
			done <- err
		case <-ctx.Done():
			p.stop(rt.cfg.GracefulShutdown.Application, s.setState)
			s.mu.Lock()
			s.lastExit = p.exitReason()
			s.cur = nil
			s.setStateLocked(StateExited)
			s.mu.Unlock()
			return restart.Exit{}, true
		}
	}
}

// replace starts a new process in the slot next to old, waits until it is
// ready (both share the slot's sockets, so nothing is refused meanwhile),
// then drains and stops old. If the new process fails to become ready, old
// keeps serving and the error is returned.
func (s *slot) replace(ctx context.Context, old *proc) (*proc, error) {
	rt := s.app.rt
	port := 0
	if s.app.launch.Fronted {
		// The new worker gets a port of its own; the forwarders switch to
		// it once it is ready, so both serve meanwhile.
		p, err := front.FreePort()
		if err != nil {
			return nil, fmt.Errorf("choose a port for the worker: %w", err)
		}
		port = p
	}
	np, err := s.spawnOn(port)
	if err != nil {
		return nil, err
	}
	fallback := time.NewTimer(noProtocolReadyAfter)
	defer fallback.Stop()
	timeout := time.NewTimer(rt.cfg.StartTimeout)
	defer timeout.Stop()
	for waiting := true; waiting; {
		select {
		case <-np.ready:
			waiting = false
		case <-fallback.C:
			if !np.spoke() && !s.app.launch.Fronted {
				waiting = false
			}
		case <-np.exited:
			tail := np.outputTail(500 * time.Millisecond)
			return nil, fmt.Errorf("app %q worker %d: replacement exited before it was ready (%s): %s",
				s.app.id, s.index, np.exitReason(), strings.Join(tail, "\n"))
		case <-timeout.C:
			np.kill()
			return nil, fmt.Errorf("app %q worker %d: replacement not ready within startTimeout (%s)", s.app.id, s.index, rt.cfg.StartTimeout)
		case <-ctx.Done():
			np.kill()
			return nil, errStopped
		}
	}
	if port != 0 {
		s.sockMu.Lock()
		s.port = port
		for _, fw := range s.forwarders {
			if err := fw.SetPort(port); err != nil {
				s.log.Error("forwarder", zap.Error(err))
			}
		}
		s.sockMu.Unlock()
		// A connection dialled to the old port just before the switch may
		// still sit in its accept queue, and closing that listener would
		// reset it; give the old worker a moment to accept it first.
		time.Sleep(frontSwitchSettle)
	}
	s.log.Info("replacement ready; stopping the old worker", zap.Int("pid", np.pid), zap.Int("old_pid", old.pid))
	old.stop(rt.cfg.GracefulShutdown.Application, func(State) {}) // at once if it already stopped
	return np, nil
}

// requestRestart asks the owner for a rolling restart and waits for it.
func (s *slot) requestRestart(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case s.restartReq <- done:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.app.rt.stopping:
		return errStopped
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slot) status() WorkerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := WorkerStatus{
		Index:    s.index,
		State:    s.state.String(),
		Restarts: s.restarts,
		LastExit: s.lastExit,
	}
	s.sockMu.Lock()
	if s.addr != nil {
		ws.ListenAddr = s.addr.String()
	}
	s.sockMu.Unlock()
	if p := s.cur; p != nil && !p.isExited() {
		ws.PID = p.pid
		ws.Uptime = time.Since(p.started).Seconds()
		ws.RSS = rssOf(p.pid)
		st := p.lastStats()
		ws.ELU, ws.HeapUsed, ws.ActiveConns = st.ELU, st.HeapUsed, st.ActiveConns
	}
	return ws
}
