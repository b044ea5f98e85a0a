package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/cgroups"
	"github.com/wattd/wattd/supervisor/exechelper"
	"github.com/wattd/wattd/supervisor/front"
	"github.com/wattd/wattd/supervisor/logs"
	"github.com/wattd/wattd/supervisor/procnet"
	"github.com/wattd/wattd/supervisor/reaper"
	"github.com/wattd/wattd/supervisor/telemetry"
)

// ExecHelperArg is argv[1] of wattd when it runs as the exec helper: the
// tiny step between fork and the worker's own exec that sets LISTEN_PID to
// the worker's pid, which the parent cannot know before fork. The helper
// (package exechelper) runs from an init function, before the rest of
// wattd initialises.
const ExecHelperArg = exechelper.Arg

// spawnReq asks the spawner thread to start cmd.
type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

// startCmd starts cmd from one OS thread that never exits. Workers get
// PR_SET_PDEATHSIG, which the kernel fires when the *thread* that forked
// them ends, not the process; Go retires idle threads, so forking from an
// arbitrary goroutine would kill healthy workers at random.
func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as wattd
			for r := range spawnCh {
				// Recorded as wattd's own, so the orphan reaper leaves
				// its exit status to cmd.Wait.
				r.done <- reaper.Start(r.cmd)
			}
		}()
	})
	done := make(chan error, 1)
	spawnCh <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// proc is one worker process. Its fields are written by the goroutines named
// on them and read by the slot's owner through the channels.
type proc struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	// logp is its logger, app and worker fields set: a promoted
	// standby's changes to its slot's (setLogger).
	logp atomic.Pointer[zap.Logger]
	sink *logs.Sink

	ctrl *net.UnixConn
	wmu  sync.Mutex // serialises writes to ctrl
	wcut bool       // a frame went out in part; guarded by wmu

	// inspectPort is its Node.js inspector's port (spawnSpec.inspect);
	// 0: none.
	inspectPort int
	ready       chan struct{} // closed on the first ready message
	readyOnce   sync.Once
	warm        chan struct{} // a standby's: closed on its standby message
	warmOnce    sync.Once
	isStandby   bool // started as a standby (promoted or not)

	// serves is what the ready message said the worker serves (its
	// listeners: "http", "mesh"); set before ready is closed.
	serves []string

	// promotedAt is when a standby was promoted into a slot, and
	// promotedTo that slot; a promoted worker counts its age from then.
	promotedAt atomic.Pointer[time.Time]
	promotedTo atomic.Int64
	// promotedWarm: it had loaded the app when promoted, so taking the
	// slot is a listen() and a message (handoverTimeout), not a start.
	promotedWarm atomic.Bool
	// drainAsked: wattd sent the worker a drain; its frames are no
	// longer paced (framePace).
	drainAsked atomic.Bool

	hello     chan struct{} // closed when the handshake completed
	drained   chan struct{} // closed on the drained message
	drainOnce sync.Once

	exited chan struct{} // closed by the waiter after cmd.Wait returned
	// leaving is closed when the worker said it is exiting (an exiting
	// message), which it does before its process is gone; leaveCode is the
	// exit code it gave, set before. leaveGrace is how long it then has to
	// be gone before it is killed (holdToExit).
	leaving    chan struct{}
	leaveOnce  sync.Once
	leaveCode  int
	leaveGrace time.Duration
	sinkDone   chan struct{} // closed when all of the worker's output was logged
	exitErr    error         // set before exited is closed

	fault atomic.Pointer[string] // the protocol violation the worker was killed for

	// group is the worker's cgroup (or, where cgroups cannot be used, the
	// /proc stand-in that finds its processes); nil in tests that need none.
	group *cgroups.Group
	// limitHit is why the worker was ended for its resources ("oom …",
	// "memory …"), set before exited is closed.
	limitHit atomic.Pointer[string]
	// oomSeen is the group's OOM kill count that watchOOM found the worker
	// outlived: only a count above it is the worker's own OOM kill.
	oomSeen atomic.Uint64
	// pidsHits is the group's pids.events max, read as the worker exits
	// (the count goes with the group); see pidsLimitHint.
	pidsHits atomic.Uint64

	checks checkBook // the app's custom checks and health signals (checks.go)
	diag   diagBook  // the diagnostics it offers and those asked of it (diagnose.go)

	statsMu sync.Mutex // guards stats, statsAt and delayPeak
	stats   ipc.Stats
	statsAt time.Time // when stats arrived; zero until the first report
	// badStats says once that the worker reported impossible figures.
	badStats sync.Once
	// delayPeak is the event-loop delay of the reports since the health
	// watcher last took it (TakeDelayPeak).
	delayPeak delayPeak

	// route takes the worker's messaging frames (message, reply, notify);
	// nil in tests that need none.
	route func(*ipc.Message) bool // messaging frames; false: the frame went nowhere (messenger.route)
	// spans takes the worker's spans messages; nil when tracing is off
	// (the spans are then ignored). Only the control reader uses it, and
	// swaps it (sourceFor) for the slot's when a standby is promoted, so
	// that its spans name the worker it became.
	spans     *telemetry.Source
	spansAs   int
	sourceFor func(worker int) *telemetry.Source

	meshTable   func() (*ipc.MeshTable, uint64) // the current mesh table and its number, sent with welcome
	meshMu      sync.Mutex                      // guards meshPending and meshSeq
	meshPending []byte                          // frame of the newest table not yet sent
	meshSeq     uint64                          // number of the newest table given to the worker or pending
	meshSignal  chan struct{}                   // poked when meshPending is set
}

// spawnSpec is everything needed to start one worker.
type spawnSpec struct {
	argv      []string
	dir       string
	env       []string
	listeners []*os.File // in LISTEN_FDNAMES order
	names     []string
	app       string
	worker    int
	entry     bool
	log       *zap.Logger // app/worker fields already set
	rt        *Runtime    // for mesh pushes; nil in tests that need none
	probePort int         // >0: a fronted worker, ready once this loopback port accepts
	group     *cgroups.Group
	logCounts *logs.Counts // the slot's, shared by its processes; nil for none
	// standby starts a standby worker (WATTD_STANDBY=1): listeners are
	// then every slot's, named by ipc.StandbyListener, and worker is
	// ipc.StandbyWorker.
	standby bool
	// direct: the program may start without the exec helper (Launch.Direct).
	direct bool
	// inspect is the port its NODE_OPTIONS give Node.js's inspector
	// (Runtime.inspect); 0: none.
	inspect int
}

// defaultLeaveGrace is how long a worker that said it is exiting may
// still run when there is no application graceful shutdown time to use
// (tests without a runtime, or a time of 0).
const defaultLeaveGrace = 10 * time.Second

// A worker's program starts through the exec helper (wattd re-executed,
// see package exechelper), which joins the worker's cgroup from inside and
// sets LISTEN_PID to its own pid, the pid the program keeps; or, for a
// program that needs no LISTEN_PID (spawnSpec.direct) and a cgroup that
// needs no join from inside (v2, which clones it into the group, or none),
// as itself: the helper's start, a Go runtime's, is then saved, about
// 11 ms of every worker start and crash replacement on a 2-CPU machine.

// directStart tells whether spec's program can start without the helper,
// and gives the cgroup directory to clone it into, if any (the caller
// closes it after the start).
func directStart(spec spawnSpec) (*os.File, bool) {
	if !spec.direct || len(spec.argv) == 0 || !filepath.IsAbs(spec.argv[0]) {
		return nil, false
	}
	if spec.group == nil {
		return nil, true
	}
	f, ok, err := spec.group.DirectStart()
	if err != nil {
		spec.log.Debug("cannot clone the worker into its cgroup; starting through the exec helper", zap.Error(err))
	}
	return f, ok
}

// workerCommand is the command that starts spec's program, directly or
// through the exec helper, with the listeners and the control socket in
// files (fds 3..), output to outW and errW, cloned into cgroupFD's
// directory when it is not nil.
func workerCommand(spec spawnSpec, direct bool, cgroupFD *os.File, files []*os.File, outW, errW *os.File) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if direct {
		cmd = exec.Command(spec.argv[0], spec.argv[1:]...)
	} else {
		self, err := capabilities.WattdBinary()
		if err != nil {
			return nil, fmt.Errorf("locate wattd binary: %w", err)
		}
		// The helper looks the program up in the worker's PATH.
		cmd = exec.Command(self, append([]string{ExecHelperArg}, spec.argv...)...)
		cmd.Args[0] = spec.argv[0] // ps shows the worker's own name, not wattd's
	}
	cmd.Dir = spec.dir
	ctrlFD := 3 + len(spec.listeners)
	cmd.Env = append(append([]string{}, spec.env...),
		ipc.EnvListenFDs+"="+strconv.Itoa(len(spec.listeners)),
		ipc.EnvListenName+"="+strings.Join(spec.names, ":"),
		ipc.EnvControlFD+"="+strconv.Itoa(ctrlFD),
		ipc.EnvProtocol+"="+strconv.Itoa(ipc.ProtocolVersion),
		ipc.EnvApp+"="+spec.app,
		ipc.EnvWorker+"="+strconv.Itoa(spec.worker),
		ipc.EnvEntrypoint+"="+boolDigit(spec.entry),
	)
	if spec.standby {
		cmd.Env = append(cmd.Env, ipc.EnvStandby+"=1")
	}
	if direct {
		cmd.Env = append(cmd.Env, ipc.EnvParentPID+"="+strconv.Itoa(os.Getpid()))
	}
	if spec.group != nil {
		if direct {
			cmd.Env = append(cmd.Env, spec.group.MarkEnv()...)
		} else {
			cmd.Env = append(cmd.Env, spec.group.JoinEnv()...)
		}
	}
	cmd.ExtraFiles = files
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // one group per worker: stop kills npm -> node -> children together
		Pdeathsig: syscall.SIGKILL, // wattd killed hard: its workers do not outlive it
	}
	if cgroupFD != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cgroupFD.Fd())
	}
	return cmd, nil
}

// spawn starts a worker with the listeners at fds 3.. and the control
// socket after them, through the exec helper or directly (workerCommand).
func spawn(spec spawnSpec) (_ *proc, err error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("control socketpair: %w", err)
	}
	parentF := os.NewFile(uintptr(pair[0]), "control")
	childF := os.NewFile(uintptr(pair[1]), "control-worker")
	defer childF.Close() // the child has its own copy after Start
	defer func() {
		if err != nil {
			parentF.Close()
		}
	}()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	defer outW.Close()
	defer errW.Close()

	files := append(append([]*os.File{}, spec.listeners...), childF)
	var cmd *exec.Cmd
	if f, ok := directStart(spec); ok {
		cmd, _ = workerCommand(spec, true, f, files, outW, errW)
		err = startCmd(cmd)
		if f != nil {
			f.Close()
		}
		if err != nil {
			// A kernel without clone into a cgroup (before 5.7), or any
			// other refusal: the exec helper's way, which also reports a
			// program that cannot run as the worker's exit.
			spec.log.Debug("direct start refused; starting through the exec helper", zap.Error(err))
			cmd = nil
		}
	}
	if cmd == nil {
		cmd, err = workerCommand(spec, false, nil, files, outW, errW)
		if err == nil {
			err = startCmd(cmd)
		}
	}
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, spawnError(spec, err)
	}
	conn, cerr := net.FileConn(parentF)
	parentF.Close()
	if cerr != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		reaper.Forget(cmd.Process.Pid)
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("control channel: %w", cerr)
	}
	if spec.group != nil {
		spec.group.Bind(cmd.Process.Pid)
	}
	p := &proc{
		cmd:         cmd,
		group:       spec.group,
		inspectPort: spec.inspect,
		pid:         cmd.Process.Pid,
		started:     time.Now(),
		ctrl:        conn.(*net.UnixConn),
		ready:       make(chan struct{}),
		warm:        make(chan struct{}),
		isStandby:   spec.standby,
		hello:       make(chan struct{}),
		drained:     make(chan struct{}),
		exited:      make(chan struct{}),
		leaving:     make(chan struct{}),
		sinkDone:    make(chan struct{}),
		meshSignal:  make(chan struct{}, 1),
	}
	p.logp.Store(spec.log.With(zap.Int("pid", cmd.Process.Pid)))
	if spec.rt != nil {
		p.leaveGrace = spec.rt.cfg.GracefulShutdown.Application
		// The welcome's table is built for it, as the workers' states are
		// now, not the last one pushed (Table), which the pushes' pacing
		// (meshPacer) can hold up to meshPublishGap behind: a worker
		// starting in that gap, often the entrypoint, which starts right
		// after the applications it waits for are ready, would otherwise
		// be welcomed with them still "starting" and fail its first mesh
		// calls.
		p.meshTable = spec.rt.numberedTable
		spec.rt.register(p)
		from := msgPeer{w: p, app: spec.app, worker: spec.worker}
		p.route = func(m *ipc.Message) bool {
			if at := p.promotedAt.Load(); at != nil {
				from.worker = int(p.promotedTo.Load()) // a standby speaks for its slot once promoted
			}
			return spec.rt.msgs.route(from, m)
		}
		tr, app, pid := spec.rt.tracing, spec.app, p.pid
		p.spans, p.spansAs = tr.Source(app, spec.worker, pid), spec.worker
		p.sourceFor = func(worker int) *telemetry.Source { return tr.Source(app, worker, pid) }
	}
	p.sink = logs.NewSink(p.logger(), logs.Options{Counts: spec.logCounts})
	p.sink.Follow(outR, "stdout")
	p.sink.Follow(errR, "stderr")
	go p.wait(outR, errR)
	if spec.probePort > 0 && len(spec.listeners) == 0 {
		go p.probe(spec.probePort)
	}
	go p.readControl(spec.app, spec.worker)
	if g := spec.group; g != nil && !g.Enforced() && g.Limits().Memory > 0 {
		go p.watchMemory(memoryPollEvery)
	} else if g != nil && g.Limits().Memory > 0 && !g.OOMKillsGroup() {
		go p.watchOOM(oomPollEvery)
	}
	return p, nil
}

// oomPollEvery is how often the OOM kill count of a worker's cgroup with a
// memory limit is read, to tell of kills the worker itself survived.
const oomPollEvery = 5 * time.Second

// oomSettle is how long a worker must still run after its group's OOM count
// rose to be taken for having outlived the kill.
const oomSettle = 100 * time.Millisecond

// watchOOM logs the processes of the worker's cgroup that the kernel's OOM
// killer ended while the worker itself lives on (a child it started, a
// helper process): the worker's own death is reported with its exit, but
// these would otherwise show only in the cgroup's counter.
func (p *proc) watchOOM(every time.Duration) {
	p.whileAlive(every, func() bool {
		seen := p.oomSeen.Load()
		n, err := p.group.OOMKills()
		if err != nil || n <= seen {
			return true
		}
		// The kill may be the worker's own, not yet reaped (a zombie), or
		// not even done yet (SIGKILL on its way): its exit reports that
		// one. A worker alive a moment after the count rose outlived it.
		select {
		case <-p.exited:
			return false
		case <-time.After(oomSettle):
		}
		if st, ok := procnet.ReadStat(p.pid); !ok || st.State == 'Z' {
			return true
		}
		p.oomSeen.Store(n)
		p.logger().Warn("the kernel's OOM killer ended a process of the worker's cgroup; the worker itself runs on",
			zap.Int("pid", p.pid), zap.Uint64("killed", n-seen), zap.String("memoryLimit", p.oomLimit()))
		return true
	})
}

// logger is the worker's logger (see logp).
func (p *proc) logger() *zap.Logger { return p.logp.Load() }

// setLogger makes l the worker's logger and its output's: a promoted
// standby's lines then carry the slot's worker index, not "standby".
func (p *proc) setLogger(l *zap.Logger) {
	p.logp.Store(l)
	if p.sink != nil {
		p.sink.SetLogger(l)
	}
}

// oomLimit says which memory limit the kernel's OOM killer acted on in the
// worker's cgroup: "memory limit 96.0 MiB" (the application's resources),
// the limit of a cgroup above the worker's (a systemd unit, a container),
// or none, when the whole machine ran out of memory.
func (p *proc) oomLimit() string {
	if l := p.group.Limits().Memory; l > 0 {
		return "memory limit " + FormatBytes(uint64(l))
	}
	if l := p.group.InheritedMemoryLimit(); l > 0 {
		return "memory limit " + FormatBytes(uint64(l)) + " of a cgroup above the worker's"
	}
	return "no memory limit: the machine ran out of memory"
}

// killedBySIGKILL tells whether a Wait error says the process died of
// SIGKILL.
func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// whileAlive calls check every period until the worker exits or check
// returns false.
func (p *proc) whileAlive(every time.Duration, check func() bool) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.exited:
			return
		case <-t.C:
		}
		if !check() {
			return
		}
	}
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// wait is the only caller of cmd.Wait.
func (p *proc) wait(pipes ...*os.File) {
	reaper.AwaitExit(p.pid) // so that Wait below holds no OS thread while the worker runs
	err := p.cmd.Wait()
	reaper.Forget(p.pid)
	// Anything else left in the worker's process group (a child that
	// ignored the parent's death) goes too, so it cannot keep the pipes
	// open or hold sockets; with a cgroup, so does everything the worker
	// started, detached and setsid children included.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	if p.group != nil {
		if kerr := p.group.Kill(); kerr != nil {
			p.logger().Warn("could not kill every process of the worker's cgroup", zap.Error(kerr))
		}
		// Kills the worker outlived (watchOOM) are not its reason, and
		// the OOM killer ends a process with SIGKILL: a worker that died
		// otherwise (its own exit, SIGABRT) was not its victim, whatever
		// the count says of its children.
		if n, _ := p.group.OOMKills(); n > p.oomSeen.Load() {
			if killedBySIGKILL(err) {
				reason := "oom (" + p.oomLimit() + ")"
				p.limitHit.CompareAndSwap(nil, &reason)
			} else {
				p.logger().Warn("the kernel's OOM killer ended a process of the worker's cgroup before the worker exited",
					zap.Int("pid", p.pid), zap.Uint64("killed", n-p.oomSeen.Load()), zap.String("memoryLimit", p.oomLimit()))
			}
		}
		p.pidsHits.Store(p.group.PidsLimitHits())
	}
	p.exitErr = err
	p.ctrl.Close()
	close(p.exited)
	// The readers end on EOF once the last holder of the pipe is gone; a
	// grandchild that escaped the group keeps them open, so do not wait
	// for the sink before reporting the exit.
	go func() {
		if p.group != nil {
			if rerr := p.group.Remove(); rerr != nil {
				p.logger().Warn("could not remove the worker's cgroup", zap.Error(rerr))
			}
		}
		p.sink.Close()
		close(p.sinkDone)
		for _, f := range pipes {
			f.Close()
		}
	}()
}

// readControl handles the worker's side of the control protocol until the
// channel closes. A worker that breaks the protocol is failed at once (see
// controlFault); a channel that just ends, or that the worker never writes
// to, means a worker that does not speak the protocol, and readiness falls
// back (see supervise).
func (p *proc) readControl(app string, worker int) {
	// A frame mostly arrives in one piece: buffered, its header and body
	// take one read instead of two, which counts with hundreds of workers
	// reporting stats.
	cr := &countingReader{r: p.ctrl}
	r := bufio.NewReaderSize(cr, controlReadBuffer)
	m, err := ipc.ReadMessage(r)
	if err != nil {
		p.controlEnded(err)
		return
	}
	if m.Type != ipc.TypeHello {
		p.controlFault(fmt.Sprintf("first message is %q, not hello", m.Type))
		return
	}
	v, err := ipc.Negotiate(m.Versions)
	if err != nil {
		_ = p.send(&ipc.Message{Type: ipc.TypeError, Error: err.Error()})
		p.controlFault("handshake: " + strings.TrimPrefix(err.Error(), "ipc: "))
		return
	}
	p.diag.offer(m.Diagnostics)
	// The welcome carries the mesh table of the moment, so that a worker
	// never serves a request before it knows the mesh: the first mesh
	// message would otherwise race the first request the slot's socket
	// already holds.
	welcome := &ipc.Message{Type: ipc.TypeWelcome, Version: v, App: app, Worker: worker}
	if p.meshTable != nil {
		var seq uint64
		welcome.Mesh, seq = p.meshTable()
		// Pushes of older tables, made before the welcome or racing it,
		// are not sent after it.
		p.meshMu.Lock()
		if seq > p.meshSeq {
			p.meshSeq, p.meshPending = seq, nil
		}
		p.meshMu.Unlock()
	}
	if err := p.send(welcome); err != nil {
		return
	}
	close(p.hello)
	if p.meshTable != nil {
		go p.meshWriter()
	}
	earlyReady := false // a standby's ready before its promotion was logged
	var pace framePace
	for {
		// What this frame took from the socket (read-ahead included, which
		// the next frame then does not count), for the pace.
		before := cr.n - int64(r.Buffered())
		m, release, err := ipc.ReadMessagePooled(r)
		if err != nil {
			p.controlEnded(err)
			return
		}
		paced := true // counted against the pace: all but messaging that went somewhere
		switch m.Type {
		case ipc.TypeReady:
			if p.isStandby && p.promotedAt.Load() == nil {
				// A standby serves nothing until promoted: taken at its
				// word, its slot would adopt it at once on promotion,
				// before it listens.
				if !earlyReady {
					earlyReady = true // once: a worker must not flood the log
					p.logger().Warn("a standby said ready before it was promoted; ignoring it")
				}
				break
			}
			p.readyOnce.Do(func() {
				// A slot has two sockets; a longer list is a worker's
				// nonsense, and not kept whole.
				p.serves = slices.Clone(m.Listeners[:min(len(m.Listeners), 8)])
				close(p.ready)
			})
		case ipc.TypeStandby:
			p.warmOnce.Do(func() { close(p.warm) })
			if w := m.Warm; w != nil {
				p.logger().Debug("standby warmed up", zap.Int("requests", w.Requests), zap.Int64("ms", w.Ms), zap.Int64("afterMs", w.After))
			}
		case ipc.TypeStats:
			if m.Stats != nil {
				st, fixed := m.Stats.Sanitized()
				if fixed {
					p.badStats.Do(func() {
						p.logger().Warn("the worker reported impossible figures (utilisation outside 0..1, negative counts or delays, values that are not numbers); they are bounded, and this is said once per worker", zap.Any("stats", statsSummary(*m.Stats)))
					})
				}
				p.statsMu.Lock()
				if p.diag.takeAfter() {
					// A report right after a diagnostic: its window holds
					// the block of the event loop wattd asked for, and its
					// utilisation and delay say nothing of the app's.
					st.ELU, st.Delay = p.stats.ELU, nil
				}
				p.stats = st
				p.statsAt = time.Now()
				if d := st.Delay; d != nil {
					p.delayPeak.add(d.Max, d.P99)
				}
				p.statsMu.Unlock()
			}
		case ipc.TypeDrained:
			p.drainOnce.Do(func() { close(p.drained) })
		case ipc.TypeExiting:
			p.leaveOnce.Do(func() {
				p.leaveCode = m.ExitCode
				close(p.leaving)
				go p.holdToExit()
			})
		case ipc.TypeMessage, ipc.TypeReply, ipc.TypeNotify:
			if p.route != nil {
				paced = !p.route(m)
			}
		case ipc.TypeCheckSet:
			p.checks.set(m.Check)
		case ipc.TypeChecked:
			p.checks.answered(m.Check)
		case ipc.TypeDiagnosed:
			// An answer is a sign of life: the stats it could not send
			// while it wrote are not held against it.
			p.statsMu.Lock()
			if p.diag.answered(m.Diagnose) && !p.statsAt.IsZero() {
				p.statsAt = time.Now()
			}
			p.statsMu.Unlock()
		case ipc.TypeHealthSignals:
			p.checks.signalled(m.Signals)
		case ipc.TypeSpans:
			if p.promotedAt.Load() != nil && p.sourceFor != nil {
				if w := int(p.promotedTo.Load()); w != p.spansAs {
					p.spans, p.spansAs = p.sourceFor(w), w
				}
			}
			if m.SpansBinary != nil {
				p.spans.IngestBinary(m.SpansBinary) // copies what it keeps
			} else {
				p.spans.Ingest(m.Spans)
			}
		}
		release()
		// A worker asked to drain is on its way out: its drained, and
		// whatever it sends before, is read at once, or the stop would
		// wait out the grace behind its backlog.
		if paced && !p.drainAsked.Load() {
			pace.take(time.Now(), int(cr.n-int64(r.Buffered())-before), p.logger())
		}
	}
}

// holdToExit makes an exiting message true: its slot may have replaced
// the worker on the strength of it, so a worker still running leaveGrace
// later (an exit handler that never returns, or a worker that said so
// falsely) is killed, rather than serving beside its replacement.
func (p *proc) holdToExit() {
	grace := p.leaveGrace
	if grace <= 0 {
		grace = defaultLeaveGrace
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.logger().Warn("the worker said it was exiting but still runs; killing it", zap.Duration("after", grace))
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

// controlReadBuffer holds a stats report with room to spare; larger frames
// (app metrics, spans) are read through it in pieces.
const controlReadBuffer = 4 << 10

// cutFrameGrace is how long a worker whose channel ended inside a frame
// has to exit before the cut counts as a protocol fault: a worker that
// crashes in the middle of a write is a crash, not a violation.
const cutFrameGrace = time.Second

// controlEnded sorts out why reading the channel stopped: a bad frame is a
// fault; the end of the stream between frames, or wattd closing the channel
// after the worker exited, is not.
func (p *proc) controlEnded(err error) {
	switch {
	case errors.Is(err, ipc.ErrBadFrame):
		p.controlFault(strings.TrimPrefix(err.Error(), "ipc: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		t := time.NewTimer(cutFrameGrace)
		defer t.Stop()
		select {
		case <-p.exited:
		case <-t.C:
			p.controlFault("channel closed inside a frame")
		}
	default:
		// The worker hung up (or exited). It can no longer answer a drain,
		// so close this end too: a stop then finds the channel closed and
		// goes straight to SIGTERM instead of waiting out the grace.
		p.ctrl.Close()
	}
}

// controlFault fails a worker that broke the protocol. Its channel cannot
// be trusted any more (a drain sent on it might never be answered, so every
// stop would wait the whole grace period), so the fault is logged once, the
// channel closed and the worker's process group killed. The slot then sees
// an exit whose reason names the fault, and the restart policy decides.
func (p *proc) controlFault(fault string) {
	if !p.fault.CompareAndSwap(nil, &fault) {
		return
	}
	p.logger().Error("control channel: protocol violation; killing the worker", zap.String("fault", fault))
	p.ctrl.Close()
	if !p.isExited() {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

func (p *proc) send(m *ipc.Message) error {
	buf, err := ipc.EncodeFrame(m)
	if err != nil {
		return err
	}
	if m.Type == ipc.TypeDrain {
		p.drainAsked.Store(true) // its frames are read unpaced from now (framePace)
	}
	return p.sendFrame(buf, m.Type)
}

// sendFrame writes an encoded message of type typ.
func (p *proc) sendFrame(buf []byte, typ string) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.wcut {
		return errFrameCut
	}
	_ = p.ctrl.SetWriteDeadline(time.Now().Add(sendTimeout))
	n, err := p.ctrl.Write(buf)
	if err != nil && n > 0 {
		// The worker would read the next frame as the rest of this one, so
		// nothing more may be written, and a worker whose channel is
		// broken cannot be drained or told anything: it is replaced.
		p.wcut = true
		p.controlFault(fmt.Sprintf("not reading its control channel: a %s frame was cut after %d of %d bytes (%v)",
			typ, n, len(buf), err))
	}
	return err
}

// sendTimeout bounds one write to a worker's control channel. Only a worker
// that has not read its channel for long enough to fill the socket buffer
// makes a write wait at all.
const sendTimeout = 2 * time.Second

// errFrameCut fails every send after a frame was written in part.
var errFrameCut = errors.New("control channel broken: an earlier frame was cut short")

func (p *proc) isExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *proc) lastStats() (ipc.Stats, time.Time) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	return p.stats, p.statsAt
}

func (p *proc) takeDelayPeak() (maxDelay, p99 float64, ok bool) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	pk := p.delayPeak
	p.delayPeak = delayPeak{}
	return pk.max, pk.p99, pk.seen
}

// exitReason renders how the process ended: "exit status 1",
// "signal: killed" and so on, or "control channel: <fault>" for a worker
// killed for breaking the protocol.
func (p *proc) exitReason() string {
	if f := p.fault.Load(); f != nil {
		return "control channel: " + *f
	}
	if l := p.limitHit.Load(); l != nil {
		return *l
	}
	if p.exitErr == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.String()
	}
	return p.exitErr.Error()
}

// outputTail returns the worker's last output lines, waiting up to max for
// the lines still in its pipes to be read.
func (p *proc) outputTail(max time.Duration) []string {
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-p.sinkDone:
	case <-t.C:
	}
	return p.sink.Tail()
}

// memoryPollEvery is how often, at most, a worker whose memory limit the
// kernel cannot hold (no cgroups) has its process tree measured. The next
// measure comes sooner when the tree grows: at half the time the last
// growth rate would take to reach the limit, and never sooner than
// memoryPollMin (the first one comes then), so that a fast climb overshoots
// the limit by less while a steady worker costs a measure a second.
const (
	memoryPollEvery = time.Second
	memoryPollMin   = 50 * time.Millisecond
)

// watchMemory is the fallback of a memory limit without cgroups: the RSS of
// the worker's process tree is polled, and a worker above its limit is
// killed with the reason "memory", which the restart policy treats like a
// crash.
func (p *proc) watchMemory(every time.Duration) {
	t := time.NewTimer(min(every, memoryPollMin))
	defer t.Stop()
	var last uint64
	lastAt := time.Now()
	for {
		select {
		case <-p.exited:
			return
		case <-t.C:
		}
		over, u, err := p.group.OverMemory()
		if err != nil || !over {
			next := every
			now := time.Now()
			if limit := uint64(p.group.Limits().Memory); err == nil && u.Memory > last && limit > u.Memory {
				rate := float64(u.Memory-last) / now.Sub(lastAt).Seconds() // bytes a second
				next = time.Duration(float64(limit-u.Memory) / rate / 2 * float64(time.Second))
				next = max(min(next, every), min(every, memoryPollMin))
			}
			if err == nil {
				last, lastAt = u.Memory, now
			}
			t.Reset(next)
			continue
		}
		reason := fmt.Sprintf("memory (%s used, limit %s; no cgroup)", FormatBytes(u.Memory), FormatBytes(uint64(p.group.Limits().Memory)))
		if p.limitHit.CompareAndSwap(nil, &reason) {
			p.logger().Error("worker above its memory limit; killing it", zap.Uint64("rss", u.Memory), zap.Int64("limit", p.group.Limits().Memory))
		}
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		return
	}
}

// pushMesh queues a mesh table's frame for the worker; only the newest
// unsent one is kept, so a slow worker never makes wattd buffer tables.
// The frame is shared by every worker and never changed.
func (p *proc) pushMesh(seq uint64, frame []byte) {
	p.meshMu.Lock()
	if seq <= p.meshSeq {
		p.meshMu.Unlock()
		return // the worker has or will get a newer table
	}
	p.meshSeq, p.meshPending = seq, frame
	p.meshMu.Unlock()
	select {
	case p.meshSignal <- struct{}{}:
	default:
	}
}

// meshWriter sends queued mesh tables once the handshake is done, until
// the worker exits.
func (p *proc) meshWriter() {
	for {
		select {
		case <-p.exited:
			return
		case <-p.meshSignal:
		}
		p.meshMu.Lock()
		m := p.meshPending
		p.meshPending = nil
		p.meshMu.Unlock()
		if m != nil && p.sendFrame(m, ipc.TypeMesh) != nil {
			return
		}
	}
}

// probe marks a fronted worker ready once its $PORT accepts connections on
// a socket of the worker's own (see front.Ready).
func (p *proc) probe(port int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	warn := func(err error) {
		p.logger().Warn("worker's port is taken by another program; the worker is not ready while it is",
			zap.Int("port", port), zap.Error(err))
	}
	if front.Ready(ctx, port, p.pid, warn) == nil {
		p.readyOnce.Do(func() { close(p.ready) })
	}
}

// delayPeak is the highest event-loop delay of some stats reports.
type delayPeak struct {
	max, p99 float64 // seconds
	seen     bool
}

func (d *delayPeak) add(maxDelay, p99 float64) {
	d.max, d.p99, d.seen = max(d.max, maxDelay), max(d.p99, p99), true
}

// spawnError is the error of a worker that could not be started. The
// kernel's answer names the program, as if it were missing, when the
// working directory is: an application folder moved or removed while
// wattd runs is named as such.
func spawnError(spec spawnSpec, err error) error {
	if spec.dir != "" && errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(spec.dir); errors.Is(serr, fs.ErrNotExist) {
			return fmt.Errorf("start %s: the application's directory %s does not exist (moved or removed since the configuration was read)", spec.argv[0], spec.dir)
		}
	}
	return fmt.Errorf("start %s: %w", spec.argv[0], err)
}

// statsSummary is what a log line shows of a report: its scalar figures,
// as text, since a JSON log line cannot hold an infinite number.
func statsSummary(st ipc.Stats) map[string]string {
	out := map[string]string{
		"elu":         strconv.FormatFloat(st.ELU, 'g', -1, 64),
		"activeConns": strconv.Itoa(st.ActiveConns),
	}
	if l := st.Lag; l != nil {
		out["lag.max"] = strconv.FormatFloat(l.Max, 'g', -1, 64)
	}
	if d := st.Delay; d != nil {
		out["delay.max"] = strconv.FormatFloat(d.Max, 'g', -1, 64)
	}
	return out
}
