package cgroups

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wattd/wattd/supervisor/exechelper"
)

// Group is the cgroup of one worker process, or in fallback mode the
// mark and process group that stand in for it.
type Group struct {
	m      *Manager
	app    string
	index  int
	name   string            // <app>.<index>.<gen>
	dirs   map[string]string // by controller as in Manager.runtime; nil in fallback mode
	limits Limits

	pid int // the worker's pid once bound; read by Kill and Stats
}

// killTimeout bounds Kill: a process that survives SIGKILL for this long
// is stuck in the kernel (D state), and waiting longer helps nobody.
const killTimeout = 5 * time.Second

// useCgroupKill is off in tests that drive the v2 freeze path on a
// kernel that has cgroup.kill.
var useCgroupKill = true

// ErrNotV2 is returned by CgroupFD outside cgroup v2.
var ErrNotV2 = errors.New("cgroups: not on cgroup v2")

// Name is the group's directory name, <app>.<index>.<generation>.
func (g *Group) Name() string { return g.name }

// Dirs returns the group's directories by controller (key "" on v2); nil
// in fallback mode.
func (g *Group) Dirs() map[string]string { return maps.Clone(g.dirs) }

// Limits returns the limits the group was made with.
func (g *Group) Limits() Limits { return g.limits }

// Enforced reports whether the kernel enforces the limits. When it does
// not, the caller polls Stats and restarts a worker above Limits.Memory.
func (g *Group) Enforced() bool { return g.dirs != nil }

// uniqueDirs lists the group's directories once each, sorted.
func (g *Group) uniqueDirs() []string {
	out := slices.Sorted(maps.Values(g.dirs))
	return slices.Compact(out)
}

// JoinEnv is what the spawner adds to the exec helper's environment: the
// directories to join (read and removed by JoinFromEnv) and the mark that
// the worker and all its descendants keep.
func (g *Group) JoinEnv() []string {
	env := g.MarkEnv()
	if dirs := g.uniqueDirs(); len(dirs) > 0 {
		env = append(env, EnvJoin+"="+strings.Join(dirs, ":"))
	}
	return env
}

// MarkEnv is the part of JoinEnv a process started straight into its
// group (DirectStart) gets: the mark alone.
func (g *Group) MarkEnv() []string {
	return []string{EnvGroup + "=" + g.m.mark(g.name)}
}

// DirectStart tells how a worker can be started into the group without
// the exec helper: with ok and a nil file, it needs nothing (fallback
// mode, where the group is the mark in MarkEnv and the process group);
// with ok and a file, it is cloned into the group (v2: SysProcAttr's
// UseCgroupFD with the file's descriptor, which the caller closes after
// the start). Not ok on v1, where only the process itself can join, as
// the exec helper does.
func (g *Group) DirectStart() (f *os.File, ok bool, err error) {
	switch {
	case g.dirs == nil:
		return nil, true, nil
	case g.m.version == V2:
		f, err := g.CgroupFD()
		if err != nil {
			return nil, false, err
		}
		return f, true, nil
	}
	return nil, false, nil
}

// JoinFromEnv moves the calling process into the cgroups named by
// EnvJoin, then removes EnvJoin from its environment. The exec helper
// (package exechelper, where the code lives) does it first thing, before
// it execs the worker; when it fails the helper must not exec, or the
// worker would run outside its limits. Without EnvJoin it does nothing.
func JoinFromEnv() error { return exechelper.Join() }

// CgroupFD opens the group's v2 directory for SysProcAttr.CgroupFD with
// UseCgroupFD (clone3 with CLONE_INTO_CGROUP, Linux 5.7+). The caller
// closes it after the start. Only on v2.
func (g *Group) CgroupFD() (*os.File, error) {
	dir, ok := g.dirs[""]
	if !ok || g.m.version != V2 {
		return nil, ErrNotV2
	}
	return os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
}

// Bind records the worker's pid after it started. Fallback mode needs it
// to find the process tree; with cgroups it only feeds error messages.
func (g *Group) Bind(pid int) {
	g.m.mu.Lock()
	g.pid = pid
	g.m.mu.Unlock()
}

// Assign moves the group to worker slot index in what the manager
// reports per slot (OOM kills): a standby's group, made before it had a
// slot, becomes its slot's when the standby is promoted. The directory
// keeps its name.
func (g *Group) Assign(index int) {
	g.m.mu.Lock()
	g.index = index
	g.m.mu.Unlock()
}

func (g *Group) boundPid() int {
	g.m.mu.Lock()
	defer g.m.mu.Unlock()
	return g.pid
}

// apply writes the limits. Unset ones are not written: a new group
// starts without limits.
func (g *Group) apply() error {
	l := g.limits
	if g.m.version == V2 {
		dir := g.dirs[""]
		var errs error
		if l.Memory > 0 {
			errs = errors.Join(errs, writeFile(dir, "memory.max", strconv.FormatInt(l.Memory, 10)))
			// The limit is the worker's memory, not its RAM: without this a
			// machine with swap would page the worker out instead of
			// stopping it at the limit.
			if _, err := os.Stat(path.Join(dir, "memory.swap.max")); err == nil {
				errs = errors.Join(errs, writeFile(dir, "memory.swap.max", "0"))
			}
			// An OOM kills the whole worker (npm and the node below it),
			// not one process of it, so the worker exits with its reason.
			if _, err := os.Stat(path.Join(dir, "memory.oom.group")); err == nil {
				errs = errors.Join(errs, writeFile(dir, "memory.oom.group", "1"))
			}
		}
		if l.MemoryHigh > 0 {
			errs = errors.Join(errs, writeFile(dir, "memory.high", strconv.FormatInt(l.MemoryHigh, 10)))
		}
		if l.CPUs > 0 {
			errs = errors.Join(errs, writeFile(dir, "cpu.max", fmt.Sprintf("%d %d", quota(l.CPUs), cpuPeriod)))
		}
		if l.Pids > 0 {
			errs = errors.Join(errs, writeFile(dir, "pids.max", strconv.FormatInt(l.Pids, 10)))
		}
		return errs
	}
	var errs error
	if l.Memory > 0 {
		errs = errors.Join(errs, writeFile(g.dirs["memory"], "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)))
		// As on v2, swap counts: memory+swap gets the same limit where the
		// kernel accounts swap (memsw needs limit_in_bytes set first).
		if _, err := os.Stat(path.Join(g.dirs["memory"], "memory.memsw.limit_in_bytes")); err == nil {
			errs = errors.Join(errs, writeFile(g.dirs["memory"], "memory.memsw.limit_in_bytes", strconv.FormatInt(l.Memory, 10)))
		}
	}
	if l.MemoryHigh > 0 {
		errs = errors.Join(errs, writeFile(g.dirs["memory"], "memory.soft_limit_in_bytes", strconv.FormatInt(l.MemoryHigh, 10)))
	}
	if l.CPUs > 0 {
		errs = errors.Join(errs,
			writeFile(g.dirs["cpu"], "cpu.cfs_period_us", strconv.Itoa(cpuPeriod)),
			writeFile(g.dirs["cpu"], "cpu.cfs_quota_us", strconv.FormatInt(quota(l.CPUs), 10)))
	}
	if l.Pids > 0 {
		errs = errors.Join(errs, writeFile(g.dirs["pids"], "pids.max", strconv.FormatInt(l.Pids, 10)))
	}
	return errs
}

// quota turns CPUs into microseconds per period; the kernel refuses
// quotas under 1 ms.
func quota(cpus float64) int64 {
	return max(int64(cpus*cpuPeriod+0.5), 1000)
}

// Kill kills every process of the group and waits until none is left.
// In fallback mode it kills the worker's process group, its descendants
// and every process carrying the group's mark.
func (g *Group) Kill() error {
	if g.dirs == nil {
		_, err := killTree(g.boundPid(), g.m.mark(g.name))
		return err
	}
	if g.m.version == V2 {
		return killSubtree(V2, "", g.dirs[""])
	}
	if err := killSubtree(V1, "freezer", g.dirs["freezer"]); err != nil {
		return err
	}
	// A process that joined only some hierarchies (a failed join) is
	// still found in memory's.
	return killSubtree(V1, "memory", g.dirs["memory"])
}

// killSubtree is killDir for dir and every group below it: a worker's
// process may make a group of its own under the worker's and move into it
// (the group is not the worker's to divide, but root can), and a kill of
// the worker's group alone would leave it running, and the worker's group
// not removable.
func killSubtree(v Version, ctrl, dir string) error {
	var errs error
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				errs = errors.Join(errs, killSubtree(v, ctrl, path.Join(dir, e.Name())))
			}
		}
	}
	return errors.Join(errs, killDir(v, ctrl, dir))
}

// killDir kills everything in one cgroup directory: v2 cgroup.kill when
// the kernel has it (5.14+), else freeze, SIGKILL every process, thaw,
// until the group is empty. A group that cannot be frozen (a v1
// hierarchy other than freezer) is killed pid by pid.
func killDir(v Version, ctrl, dir string) error {
	deadline := time.Now().Add(killTimeout)
	for {
		pids, err := procs(dir)
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %d process(es) still alive %s after SIGKILL: %v", dir, len(pids), killTimeout, pids)
		}
		switch {
		case v == V2 && useCgroupKill && exists(dir, "cgroup.kill"):
			if err := writeFile(dir, "cgroup.kill", "1"); err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENODEV) {
				return err
			}
		case v == V2 && exists(dir, "cgroup.freeze"):
			freezeKill(dir, "cgroup.freeze", "1", "0", "")
		case v == V1 && ctrl == "freezer":
			freezeKill(dir, "freezer.state", "FROZEN", "THAWED", "FROZEN")
		default:
			killAll(pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freezeKill freezes the group so that nothing in it can fork, sends
// SIGKILL to every process, and thaws it so the kills are delivered.
// frozen, when set, is the state file's value once freezing completed.
func freezeKill(dir, file, freeze, thaw, frozen string) {
	if err := writeFile(dir, file, freeze); err != nil {
		pids, _ := procs(dir)
		killAll(pids)
		return
	}
	if frozen != "" {
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if s, _ := readFile(dir, file); s == frozen {
				break
			}
		}
	}
	pids, _ := procs(dir)
	killAll(pids)
	_ = writeFile(dir, file, thaw)
}

func killAll(pids []int) {
	self := os.Getpid()
	for _, pid := range pids {
		if pid > 0 && pid != self {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func exists(dir, name string) bool {
	_, err := os.Stat(path.Join(dir, name))
	return err == nil
}

// OOMKills returns how many processes of the group the kernel's OOM
// killer killed: v2 memory.events oom_kill, v1 memory.oom_control
// oom_kill (Linux 4.13+). Always 0 in fallback mode, where a worker over
// its memory is restarted by the caller instead.
func (g *Group) OOMKills() (uint64, error) {
	if g.dirs == nil {
		return 0, nil
	}
	n, _, err := oomKillsIn(g.m.version, g.memoryDir())
	return n, err
}

// InheritedMemoryLimit is the lowest memory limit that holds the group
// from a cgroup above it (a systemd unit's MemoryMax=, a container's), in
// bytes; 0 for none, and in fallback mode. On v1 it is the hierarchy's
// own figure (memory.stat hierarchical_memory_limit), which counts the
// group's own limit too.
func (g *Group) InheritedMemoryLimit() int64 {
	if g.dirs == nil {
		return 0
	}
	dir := g.memoryDir()
	if g.m.version == V1 {
		stat, err := readFile(dir, "memory.stat")
		if err != nil {
			return 0
		}
		for line := range strings.SplitSeq(stat, "\n") {
			if v, ok := strings.CutPrefix(line, "hierarchical_memory_limit "); ok {
				if n, ok := limitBytes(v); ok {
					return int64(n)
				}
			}
		}
		return 0
	}
	var lowest uint64
	for d := path.Dir(dir); d != "/" && d != "."; d = path.Dir(d) {
		v, err := readFile(d, "memory.max")
		if err != nil {
			break // the hierarchy's root has none
		}
		if n, ok := limitBytes(v); ok && (lowest == 0 || n < lowest) {
			lowest = n
		}
	}
	return int64(lowest)
}

// PidsLimitHits returns how many times the group's processes were refused
// a new process or thread at its pids limit (pids.events max, v1 and v2);
// 0 without a pids group or when the kernel keeps no count. A Node.js
// worker refused its threads this way hangs before it runs any code.
func (g *Group) PidsLimitHits() uint64 {
	if g.dirs == nil {
		return 0
	}
	dir := g.dirs["pids"]
	if g.m.version == V2 {
		dir = g.dirs[""]
	}
	if dir == "" {
		return 0
	}
	text, err := readFile(dir, "pids.events")
	if err != nil {
		return 0
	}
	return flatKeyed(text)["max"]
}

// OOMKillsGroup tells whether an OOM kill in the group ends all of it
// (v2, memory.oom.group set at apply): then no process of the group
// outlives another's OOM kill.
func (g *Group) OOMKillsGroup() bool {
	return g.dirs != nil && g.m.version == V2 && exists(g.dirs[""], "memory.oom.group")
}

// OOMKilled reports whether the OOM killer killed a process of the
// group. Read it before Remove: the counters go with the directory.
func (g *Group) OOMKilled() (bool, error) {
	n, err := g.OOMKills()
	return n > 0, err
}

// Usage is a group's resource use.
type Usage struct {
	Memory      uint64        // bytes charged to the group (fallback: RSS of the worker's tree)
	MemoryLimit uint64        // 0: none
	Pids        uint64        // processes (and threads, with cgroups)
	PidsLimit   uint64        // 0: none
	CPU         time.Duration // CPU time used since the group was made
	CPULimit    float64       // CPUs; 0: none
	// Throttling is nil without a CPU controller group (on v1, a worker
	// without a CPU limit has none) and in fallback mode; Pressure is nil
	// where there is no PSI: v1, fallback, a kernel without it.
	Throttling *Throttling
	Pressure   *Pressure
}

// Stats reads the group's usage.
func (g *Group) Stats() (Usage, error) {
	u := Usage{MemoryLimit: uint64(max(g.limits.Memory, 0)), PidsLimit: uint64(max(g.limits.Pids, 0)), CPULimit: g.limits.CPUs}
	var errs error
	switch {
	case g.dirs == nil:
		u.Memory, u.Pids, u.CPU = treeUsage(g.boundPid())
		return u, nil
	case g.m.version == V2:
		dir := g.dirs[""]
		var err1, err2, err3 error
		u.Memory, err1 = readUint(dir, "memory.current")
		u.Pids, err2 = readUint(dir, "pids.current")
		var stat string
		if stat, err3 = readFile(dir, "cpu.stat"); err3 == nil {
			cpu := flatKeyed(stat)
			u.CPU = time.Duration(cpu["usage_usec"]) * time.Microsecond
			u.Throttling = throttlingV2(cpu)
		}
		u.Pressure = pressureV2(dir)
		errs = errors.Join(err1, err2, err3)
	default:
		var err1, err2, err3 error
		u.Memory, err1 = readUint(g.dirs["memory"], "memory.usage_in_bytes")
		u.Pids, err2 = readUint(g.dirs["pids"], "pids.current")
		if dir, ok := g.dirs["cpuacct"]; ok {
			var ns uint64
			ns, err3 = readUint(dir, "cpuacct.usage")
			u.CPU = time.Duration(ns)
		}
		if dir, ok := g.dirs["cpu"]; ok {
			// Best effort: the figures are extras, and a failed read must
			// not cost the caller the memory figures above.
			if stat, err := readFile(dir, "cpu.stat"); err == nil {
				u.Throttling = throttlingV1(flatKeyed(stat))
			}
		}
		errs = errors.Join(err1, err2, err3)
	}
	if errs != nil {
		return u, fmt.Errorf("app %q worker %d: cgroup stats: %w", g.app, g.index, errs)
	}
	return u, nil
}

// OverMemory is the fallback's memory check, for the caller to poll: it
// reports whether the kernel does not enforce the limits and the worker's
// tree uses more than Limits.Memory, in which case the caller restarts
// the worker with the reason "memory". With cgroups it is always false:
// the kernel enforces the limit itself.
func (g *Group) OverMemory() (bool, Usage, error) {
	if g.Enforced() || g.limits.Memory <= 0 {
		return false, Usage{}, nil
	}
	u, err := g.Stats()
	return err == nil && u.Memory > u.MemoryLimit, u, err
}

// Remove kills what is left in the group and removes it. Call it once
// the worker is gone and its exit reason (OOMKilled) was read.
func (g *Group) Remove() error {
	errs := g.Kill()
	// The OOM count goes with the directory: keep it for the slot first.
	g.m.retire(g)
	for _, dir := range g.uniqueDirs() {
		// The groups a process made below the worker's go first; Kill
		// emptied them.
		_, err := removeTree(dir, func(string) error { return nil })
		errs = errors.Join(errs, err)
	}
	if errs != nil {
		return fmt.Errorf("app %q worker %d: %w", g.app, g.index, errs)
	}
	return nil
}
