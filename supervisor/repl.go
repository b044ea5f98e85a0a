package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/rundir"
)

// A REPL inside a worker (`wattd ctl repl`, `wattpm repl`). wattd listens
// on a Unix socket in the diagnostics directory of its runtime directory
// (0700, its own user's), asks the worker to connect to it (the diagnose
// kind "repl"), and hands the connection to its caller, which carries it
// to the user. The worker's end is Node.js's own REPL, evaluating in the
// worker's process: what the user types runs there, as it would at a
// breakpoint. Only a connection from the worker's own process tree is
// taken; the socket is gone once it is.

// replConnectWait bounds the wait for the worker to connect after it was
// asked: it connects in the turn of its event loop that reads the ask.
const replConnectWait = 10 * time.Second

// replSeq names the REPL sockets of one wattd.
var replSeq atomic.Uint64

// REPLOptions shape a REPL session.
type REPLOptions struct {
	// Terminal asks for line editing, history and completion: the
	// client's terminal is in raw mode and passes every key.
	Terminal bool
	// Columns is the width of the client's terminal (0: not known).
	Columns int
}

// OpenREPL starts a REPL in worker (-1: the lowest ready one) of app id
// and returns the connection to it and the worker's index. Closing the
// connection ends the REPL; the REPL's end (.exit) closes it.
func (rt *Runtime) OpenREPL(ctx context.Context, id string, worker int, o REPLOptions) (net.Conn, int, error) {
	p, s, err := rt.diagWorker(id, worker)
	if err != nil {
		return nil, 0, err
	}
	c, err := rt.openREPL(ctx, p, s, o)
	if err != nil {
		return nil, 0, fmt.Errorf("REPL of app %q worker %d: %w", s.app.id, s.index, err)
	}
	return c, s.index, nil
}

func (rt *Runtime) openREPL(ctx context.Context, p *proc, s *slot, o REPLOptions) (net.Conn, error) {
	dir, err := rt.diagDirFor(ctx, p, ipc.DiagREPL)
	if err != nil {
		return nil, err
	}
	// Short: the runtime directory may take most of what a socket path
	// allows.
	path := filepath.Join(dir, "r"+strconv.FormatUint(replSeq.Add(1), 10)+".sock")
	if len(path) > rundir.MaxSocketPath {
		return nil, fmt.Errorf("its socket path %s is %d bytes, over the %d a Unix socket allows; set %s to a shorter directory", path, len(path), rundir.MaxSocketPath, rundir.EnvRuntimeDir)
	}
	_ = os.Remove(path) // a leftover of a wattd killed mid-ask
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(true)
	defer l.Close()
	ctx, cancel := context.WithTimeout(ctx, replConnectWait)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = l.SetDeadline(deadline)

	type accepted struct {
		c   *net.UnixConn
		err error
	}
	got := make(chan accepted, 1)
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				got <- accepted{err: err}
				return
			}
			pid, ok := peerPID(c)
			if ok && inTree(pid, p.pid) {
				got <- accepted{c: c}
				return
			}
			s.log.Warn("a process outside the worker connected to its REPL socket; closing it", zap.Int("pid", p.pid), zap.Int("peer_pid", pid))
			c.Close()
		}
	}()
	log := s.log.With(zap.Int("pid", p.pid))
	d := &ipc.Diagnose{Kind: ipc.DiagREPL, Path: path, Terminal: o.Terminal, Columns: max(o.Columns, 0),
		Prompt: fmt.Sprintf("%s:%d> ", s.app.id, s.index)}
	if _, err := p.ask(ctx, d); err != nil {
		l.Close()
		if a := <-got; a.c != nil {
			a.c.Close()
		}
		return nil, err
	}
	select {
	case a := <-got:
		if a.err != nil {
			return nil, fmt.Errorf("the worker said it connected, but: %w", a.err)
		}
		_ = a.c.SetDeadline(time.Time{})
		log.Info("REPL session opened", zap.Bool("terminal", o.Terminal))
		return &replConn{UnixConn: a.c, log: log, opened: time.Now()}, nil
	case <-ctx.Done():
		l.Close()
		if a := <-got; a.c != nil {
			a.c.Close()
		}
		return nil, fmt.Errorf("the worker did not connect within %s", replConnectWait)
	}
}

// replConn logs the session's end once.
type replConn struct {
	*net.UnixConn
	log    *zap.Logger
	opened time.Time
	closed atomic.Bool
}

func (c *replConn) Close() error {
	if !c.closed.Swap(true) {
		c.log.Info("REPL session closed", zap.Duration("lasted", time.Since(c.opened).Round(time.Millisecond)))
	}
	return c.UnixConn.Close()
}

// peerPID is the pid of the process at the other end of c.
func peerPID(c *net.UnixConn) (int, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	pid := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid, pid > 0
}

// inTree reports whether pid is root or below it.
func inTree(pid, root int) bool {
	return pid == root || ancestry(pid, 0, func(p, _ int) bool { return p == root })
}
