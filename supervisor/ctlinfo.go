package supervisor

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/wattd/wattd/supervisor/config"
)

// Config is the configuration that runs: the one the runtime started
// with, or the last one a reload applied. It is shared; callers must not
// change it.
func (rt *Runtime) Config() *config.Config { return rt.current.Load() }

// WorkerEnv is the environment of an application's worker as wattd handed
// it to the process: the app's environment with the worker's own
// variables (PORT, the WATTD_* protocol variables, the cgroup to join).
// The exec helper adds LISTEN_PID, the worker's own pid, on top.
type WorkerEnv struct {
	App    string   `json:"app"`
	Worker int      `json:"worker"`
	PID    int      `json:"pid"`
	Env    []string `json:"env"` // NAME=value, in the order the process got them
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
		return WorkerEnv{App: id, Worker: index, PID: p.pid, Env: append([]string(nil), p.cmd.Env...)}, nil
	}
	have := make([]string, 0, len(slots))
	for _, s := range slots {
		have = append(have, strconv.Itoa(s.index))
	}
	return WorkerEnv{}, fmt.Errorf("%w %q worker %d (its workers: %s); pick one with --worker", ErrNotFound, id, index, strings.Join(have, ", "))
}
