package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/exechelper"
)

// Config is the configuration that runs: the one the runtime started
// with, or the last one a reload applied, with the defaults the runtime
// chose itself filled in (startupConcurrency), as ctl config shows it.
// It is shared; callers must not change it.
func (rt *Runtime) Config() *config.Config {
	cfg := rt.current.Load()
	if cfg == nil || cfg.StartupConcurrency > 0 || rt.gate == nil {
		return cfg
	}
	c := *cfg
	c.StartupConcurrency = rt.gate.limit() // chosen once, at start
	return &c
}

// WorkerEnv is the environment an application's worker program started
// with, as wattd built it: the app's environment with the worker's own
// variables (PORT, the WATTD_* protocol variables), after the exec
// helper's changes (see programEnv). It is kept from the spawn rather
// than read from /proc/PID/environ: that file is the program's to
// rewrite, and a process of another user (or gone) cannot be read.
type WorkerEnv struct {
	App    string   `json:"app"`
	Worker int      `json:"worker"`
	PID    int      `json:"pid"`
	Env    []string `json:"env"` // NAME=value, in the order the process got them
}

// RuntimeEnv is the environment every application's workers start from:
// wattd's own (without what describes wattd itself: its LISTEN_* sockets,
// NOTIFY_SOCKET, its WATTD_* settings), the mesh variables, PLT_ROOT and
// the runtime's env (the project's .env, watt.json's env, Watt's PLT_*
// variables). An application's env, and a worker's own variables, come on
// top of it (WorkerEnv).
type RuntimeEnv struct {
	PID int      `json:"pid"` // wattd's
	Env []string `json:"env"` // NAME=value
}

// RuntimeEnv returns the runtime's environment, as the configuration that
// runs now (after the last reload) gives it.
func (rt *Runtime) RuntimeEnv() RuntimeEnv {
	cfg := rt.Config()
	var overlay []map[string]string
	if cfg != nil {
		root := map[string]string{}
		if cfg.File != "" {
			root["PLT_ROOT"] = filepath.Dir(cfg.File)
		}
		overlay = append(overlay, root, cfg.Env)
	}
	return RuntimeEnv{PID: os.Getpid(), Env: mergeEnv(rt.baseEnv, overlay...)}
}

// WorkerEnv returns the environment of worker index of app id. Without a
// running process in that slot (starting over after a crash, say), the
// error says so; an unknown id or index wraps ErrNotFound and names what
// exists.
func (rt *Runtime) WorkerEnv(id string, index int) (WorkerEnv, error) {
	a, ok := rt.lookup(id)
	if !ok {
		return WorkerEnv{}, rt.notFound(id)
	}
	slots := a.slotList()
	for _, s := range slots {
		if s.index != index {
			continue
		}
		s.mu.Lock()
		cur := s.cur
		s.mu.Unlock()
		p, ok := cur.(*proc)
		if !ok || p == nil {
			return WorkerEnv{}, fmt.Errorf("%w: app %q worker %d has no running process now (state %s); see wattd ctl ps", ErrConflict, id, index, s.getState())
		}
		return WorkerEnv{App: id, Worker: index, PID: p.pid, Env: programEnv(p.cmd.Env, p.pid)}, nil
	}
	have := make([]string, 0, len(slots))
	for _, s := range slots {
		have = append(have, strconv.Itoa(s.index))
	}
	return WorkerEnv{}, fmt.Errorf("%w %q worker %d (its workers: %s); pick one with --worker", ErrNotFound, id, index, strings.Join(have, ", "))
}

// programEnv is the environment the worker's program gets from the exec
// helper, whose own environment is env and pid pid: the cgroup to join is
// consumed, and LISTEN_PID, the process's pid, is added. ctl env reports
// it from the environment wattd spawned the helper with.
func programEnv(env []string, pid int) []string { return exechelper.ProgramEnv(env, pid) }
