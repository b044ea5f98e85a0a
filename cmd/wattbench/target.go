package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wattd/wattd/supervisor/freeport"
)

// target describes how to start one of the servers under comparison.
type target struct {
	name string
	dir  string   // working directory
	argv []string // argv[0] is the executable
	// portEnv names the variable through which the target learns its port.
	portEnv string
	env     []string // extra variables on top of the cleaned environment
	// count is how many processes make the target: 1, or the worker count
	// for the reuseport baseline, whose processes have no parent in common.
	count int
	// standby is the number of standby workers a wattd target's app gets
	// (its project is then a copy of the fixture's, see projectCopy).
	standby int
}

// envKeysOwned are variables the runner sets itself; inherited values are
// dropped so that a stray export in the caller's shell cannot skew a run.
// INTERNAL_URL especially: inherited, it would send wattd's mesh fixture
// over TCP instead of the mesh.
var envKeysOwned = []string{"PORT", "PLT_SERVER_PORT", "EXIT_AFTER_MS", "EXIT_JITTER_PCT", "WORKERS",
	"BENCH_HOST", "BENCH_REUSEPORT", "BENCH_EVENTS", "INTERNAL_URL", "INTERNAL_CLIENT"}

// baseEnv is the environment every target starts with: the caller's, minus
// the variables above, with the chosen node first on PATH so that wattd's
// workers run the same node binary as the cluster baseline.
func baseEnv(nodePath string) []string {
	var env []string
	path := ""
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "PATH" {
			path = v
			continue
		}
		owned := false
		for _, o := range envKeysOwned {
			owned = owned || k == o
		}
		if !owned {
			env = append(env, kv)
		}
	}
	nodeDir := filepath.Dir(nodePath)
	if path == "" {
		path = nodeDir
	} else {
		path = nodeDir + string(os.PathListSeparator) + path
	}
	return append(env, "PATH="+path)
}

// proc is one running target. The runner stops it by signalling its own pid
// (never by name), then sweeps any descendant left behind.
type proc struct {
	t       target
	cmd     *exec.Cmd
	pid     int
	started time.Time // just before exec: the zero of the startup clock
	logPath string
	log     *os.File

	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // valid after exited is closed
	stopped atomic.Bool
}

// spawnRequests is served by one goroutine locked to its OS thread for the
// life of the program. Children are started with Pdeathsig, which fires when
// the *thread* that forked them exits, not the process; forking from a thread
// that never exits makes it mean "when the runner dies", so a runner killed
// with SIGKILL still takes its targets with it.
var spawnRequests = make(chan spawnRequest)

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked, see spawnRequests
		for req := range spawnRequests {
			req.done <- req.cmd.Start()
		}
	}()
}

// registry holds every proc not yet reaped, so that an interrupt can stop
// them all by pid.
var registry = struct {
	sync.Mutex
	procs map[*proc]bool
}{procs: make(map[*proc]bool)}

func startProc(ctx context.Context, t target, env []string, logPath string) (*proc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(t.argv[0], t.argv[1:]...)
	cmd.Dir = t.dir
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl-C in the terminal reaches the runner
		// only, which then stops targets in order instead of having the
		// signal race its teardown.
		Setpgid:   true,
		Pdeathsig: syscall.SIGTERM,
	}
	p := &proc{t: t, cmd: cmd, logPath: logPath, log: logf, exited: make(chan struct{})}

	done := make(chan error, 1)
	registry.Lock()
	p.started = time.Now()
	spawnRequests <- spawnRequest{cmd: cmd, done: done}
	err = <-done
	if err != nil {
		registry.Unlock()
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", t.name, err)
	}
	p.pid = cmd.Process.Pid
	registry.procs[p] = true
	registry.Unlock()

	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		registry.Lock()
		delete(registry.procs, p)
		registry.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// stopResult says how a target went away.
type stopResult struct {
	took    time.Duration // SIGTERM to reaped
	forced  bool          // needed SIGKILL after the grace period
	exit    string        // exit status as the OS reported it
	orphans int           // descendants still alive after the root exited
}

const (
	stopGrace   = 10 * time.Second
	killGrace   = 5 * time.Second
	orphanGrace = 2 * time.Second
)

// stop sends SIGTERM to the target's pid and waits for it to exit, escalating
// to SIGKILL after stopGrace. Descendants are listed before the signal; any
// still alive once the root is gone (and after a short grace) are orphans:
// they are reported and killed, each by pid after checking its start time so
// that a recycled pid is never hit.
func (p *proc) stop() stopResult {
	var r stopResult
	if p.stopped.Swap(true) {
		// Someone else is stopping it; wait as long as they may take.
		select {
		case <-p.exited:
		case <-time.After(stopGrace + killGrace):
		}
		return r
	}
	var kids []procID
	for _, st := range processTree(p.pid) {
		if st.id.pid != p.pid {
			kids = append(kids, st.id)
		}
	}
	t0 := time.Now()
	select {
	case <-p.exited:
	default:
		// Process.Signal goes through a pidfd where the kernel has one, so
		// it cannot reach another process that reused the pid after reaping.
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopGrace):
			r.forced = true
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			select {
			case <-p.exited:
			case <-time.After(killGrace):
				// Unkillable (D state); give up waiting rather than hang.
			}
		}
	}
	r.took = time.Since(t0)
	r.exit = exitString(p)

	deadline := time.Now().Add(orphanGrace)
	for _, id := range kids {
		for alive(id) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, id := range kids {
		if alive(id) {
			r.orphans++
			_ = syscall.Kill(id.pid, syscall.SIGKILL)
		}
	}
	return r
}

func exitString(p *proc) string {
	select {
	case <-p.exited:
	default:
		return "still running"
	}
	if p.waitErr == nil {
		return "exit 0"
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
		}
		return "exit " + strconv.Itoa(ee.ExitCode())
	}
	return p.waitErr.Error()
}

// killAll is the second-interrupt path: SIGKILL every registered target now.
func killAll() {
	registry.Lock()
	defer registry.Unlock()
	for p := range registry.procs {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// stopAll stops whatever is still registered, in parallel.
func stopAll() {
	registry.Lock()
	ps := make([]*proc, 0, len(registry.procs))
	for p := range registry.procs {
		ps = append(ps, p)
	}
	registry.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.stop() })
	}
	wg.Wait()
}

// logTail returns the last lines of the target's log, for start failures.
func (p *proc) logTail(lines int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 8 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(-window, 2)
	}
	var all []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// freePort picks an unused loopback port below the kernel's ephemeral range
// (freeport), where the other target's bind(0) sockets and the load
// generator's connections cannot take it. Another process could still bind
// it before the target does; a start failure says so.
func freePort() (int, error) {
	return freeport.Pick()
}
