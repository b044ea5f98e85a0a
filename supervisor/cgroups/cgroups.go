package cgroups

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"go.uber.org/zap"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/exechelper"
	"github.com/wattd/wattd/supervisor/procnet"
)

// Version is the cgroup interface a Manager drives.
type Version int

const (
	// Fallback means no cgroup is used: limits are polled, trees are
	// found through /proc.
	Fallback Version = iota
	V1
	V2
)

func (v Version) String() string {
	switch v {
	case V1:
		return "v1"
	case V2:
		return "v2"
	}
	return "fallback"
}

// Environment variables between the spawner and the exec helper.
const (
	// EnvJoin lists the cgroup directories the exec helper joins before it
	// execs the worker, separated by ':'. JoinFromEnv removes it, so the
	// worker never sees it.
	EnvJoin = exechelper.EnvJoin
	// EnvGroup marks a worker and everything it starts with
	// "<runtime name>/<group name>@<instance>": it is how the fallback
	// finds setsid and detached children, and how a restarted wattd finds
	// what a killed one left when it had no cgroups. The instance (the
	// pid and start time of the wattd that started the worker) tells a
	// live wattd's workers from a dead one's: two wattd of one project
	// that cannot see each other's lock (other mount namespaces) must not
	// take each other's workers for leftovers. It stays in the worker's
	// environment.
	EnvGroup = "WATTD_GROUP"
)

// Options configure Open.
type Options struct {
	// Root is the cgroup directory under which the runtime's subtree is
	// made: on v2 any directory of the unified hierarchy, on v1 a
	// directory of the memory controller's hierarchy (the same relative
	// path is used in the cpu, pids and freezer hierarchies). Empty picks
	// the default described in the package documentation. Absolute.
	Root string
	// Name identifies the runtime: two runtimes never share it, and a
	// runtime restarted after a crash has the same one. The runtime
	// directory's name (project name and a hash of its path) fits.
	// Characters other than letters, digits, '.', '-' and '_' become '_'.
	Name   string
	Logger *zap.Logger
}

// Limits are one worker's limits; zero means no limit.
type Limits struct {
	Memory     int64   // bytes; v2 memory.max, v1 memory.limit_in_bytes
	MemoryHigh int64   // bytes; v2 memory.high, v1 memory.soft_limit_in_bytes
	CPUs       float64 // CPUs' worth of time per period; v2 cpu.max, v1 cfs quota
	Pids       int64   // processes and threads; pids.max
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// cpuPeriod is the CFS period quotas are expressed in: the kernel's
// default, 100 ms.
const cpuPeriod = 100000

// requiredV2 are the controllers a v2 subtree must offer. A variable so
// that tests can drive the v2 code on a hierarchy without controllers.
var requiredV2 = []string{"memory", "cpu", "pids"}

// v1 controllers: the required ones hold limits and the freezer kills;
// cpuacct, when mounted apart from cpu, gives CPU usage.
var (
	requiredV1 = []string{"memory", "cpu", "pids", "freezer"}
	optionalV1 = []string{"cpuacct"}
)

// Manager owns one runtime's cgroup subtree.
type Manager struct {
	version Version
	warning string
	name    string
	log     *zap.Logger
	// runtime maps a controller to the runtime's directory in its
	// hierarchy: the key "" alone on v2, one per controller on v1.
	runtime map[string]string
	// lockFD holds the flock on the runtime's directory (lock.go); 0
	// without one (fallback mode).
	lockFD int
	// instance names this wattd in its marks: "<pid>.<start ticks>".
	instance string
	// unbound names a memory limit of wattd's own cgroup that the
	// default root is not under (see unboundLimit); "" for none.
	unbound string

	mu     sync.Mutex // guards gen, groups and retiredOOM
	gen    uint64
	groups map[*Group]struct{}
	// retiredOOM keeps, by worker slot, the OOM kills of the slot's
	// groups already removed (see OOMKills).
	retiredOOM map[slotKey]uint64
}

// unavailable says why cgroups cannot be used and what would fix it.
type unavailable struct{ what, fix string }

func (u *unavailable) Error() string { return u.what }

// Open prepares the runtime's subtree and removes what a previous
// instance with the same name left there. It fails only for invalid
// options; when cgroups cannot be used it returns a Manager in fallback
// mode whose Warning says why.
func Open(o Options) (*Manager, error) {
	if o.Name == "" {
		return nil, errors.New("cgroups: no runtime name")
	}
	// The name becomes one path component; the runtime directory's name
	// already is one, this only guards other callers.
	o.Name = sanitize(o.Name)
	if o.Root != "" && (!filepath.IsAbs(o.Root) || strings.Contains(o.Root, ":")) {
		return nil, fmt.Errorf("cgroups: root %q: want an absolute path without ':'", o.Root)
	}
	m := &Manager{name: o.Name, log: o.Logger, groups: map[*Group]struct{}{}, instance: instanceOf(os.Getpid())}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	root := ""
	if o.Root != "" {
		root = filepath.Clean(o.Root)
	}
	err := m.open(root)
	var u *unavailable
	switch {
	case errors.As(err, &u):
		// The directories made before what is missing was found (v1's
		// memory, cpu and pids when freezer is not mounted) go: nothing
		// will use them, and no stop would remove them.
		for _, dir := range m.runtime {
			_ = syscall.Rmdir(dir)
		}
		m.version, m.runtime = Fallback, nil
		m.warning = "cgroups unavailable: " + u.what + "; " + u.fix +
			". Until then worker limits are not enforced by the kernel: memory is polled from /proc and a worker above its limit is restarted, cpus and pids are not limited, and a stopped worker's leftover processes are found through /proc"
	case err != nil:
		return nil, err
	}
	if m.version != Fallback {
		if err := m.lockRuntime(); err != nil {
			return nil, err
		}
	}
	if n, err := m.Sweep(); err != nil {
		m.log.Warn("cgroups: cleaning up after a previous instance", zap.Error(err))
	} else if n > 0 {
		m.log.Warn("cgroups: killed processes a previous instance left behind", zap.Int("processes", n))
	}
	if m.unbound != "" && m.version != Fallback {
		m.log.Warn("cgroups: wattd's own cgroup has a memory limit that does not bind its workers, whose groups are outside it; under systemd set Delegate=yes (the workers' groups then go inside the unit), or set cgroups.root below that cgroup",
			zap.String("limit", m.unbound), zap.String("workers", path.Dir(m.Dirs()[m.lockKey()])))
	}
	m.log.Debug("cgroups ready", zap.Stringer("version", m.version), zap.Any("dirs", m.runtime))
	return m, nil
}

func (m *Manager) open(root string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return &unavailable{"cannot read the mount table: " + err.Error(), "mount /proc"}
	}
	// A mount another one hides (a tmpfs mounted over /sys/fs/cgroup
	// leaves the cgroup mounts below it in the table) is not there to
	// use: its directories would be made in the other filesystem, and
	// every worker would fail to join them.
	mounts = slices.DeleteFunc(mounts, func(m mount) bool { return !isCgroupFS(m) })
	var mt mount
	if root != "" {
		var ok bool
		if mt, ok = mountOf(mounts, root); !ok {
			return &unavailable{fmt.Sprintf("cgroups.root %s is not in a cgroup filesystem", root),
				"point cgroups.root at a directory under /sys/fs/cgroup"}
		}
		if mt.fstype == "cgroup" && !mt.has("memory") {
			return &unavailable{fmt.Sprintf("cgroups.root %s is in the cgroup v1 hierarchy of %s, not of memory", root, strings.Join(mt.ctrls, ",")),
				"point cgroups.root into the memory hierarchy, e.g. /sys/fs/cgroup/memory/wattd"}
		}
	} else {
		i := slices.IndexFunc(mounts, func(m mount) bool { return m.fstype == "cgroup" && m.has("memory") })
		j := slices.IndexFunc(mounts, func(m mount) bool { return m.fstype == "cgroup2" })
		switch {
		case i >= 0: // v1 or hybrid: the controllers are on v1
			mt = mounts[i]
		case j >= 0:
			mt = mounts[j]
		default:
			return &unavailable{"no cgroup filesystem is mounted", "mount cgroup2 at /sys/fs/cgroup"}
		}
	}
	if mt.ro {
		return &unavailable{fmt.Sprintf("the cgroup filesystem at %s is mounted read-only", mt.point),
			"give wattd a writable cgroup: run it under systemd with Delegate=yes, or in a container with its own writable cgroup (--cgroupns=private with a read-write /sys/fs/cgroup, or --privileged)"}
	}
	if mt.fstype == "cgroup2" {
		return m.openV2(mt, root)
	}
	return m.openV1(mounts, mt, root)
}

// isCgroupFS tells whether m's mount point is the cgroup filesystem the
// mount table says is there.
func isCgroupFS(m mount) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(m.point, &st); err != nil {
		return false
	}
	if m.fstype == "cgroup2" {
		return st.Type == unix.CGROUP2_SUPER_MAGIC
	}
	return st.Type == unix.CGROUP_SUPER_MAGIC
}

// permission turns a refused write into the reason to fall back.
func permission(err error, dir string) error {
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EROFS) {
		return &unavailable{fmt.Sprintf("cannot write cgroup %s (%v)", dir, errors.Unwrap(err)),
			"run wattd as root, under systemd with Delegate=yes, or set cgroups.root to a cgroup it may write"}
	}
	return err
}

func (m *Manager) openV1(mounts []mount, mem mount, root string) error {
	m.version = V1
	if root == "" {
		root = path.Join(mem.point, "wattd")
		if own, ok := ownV1(mounts, mem); ok {
			root = own
		} else if p := selfCgroups()["memory"]; within(p, mem.root) {
			m.unbound = unboundLimit("memory.limit_in_bytes", mem.dirOf(p), root, mem.point)
		}
	}
	rel := path.Join(mem.root, strings.TrimPrefix(root, mem.point))
	m.runtime = map[string]string{}
	for _, ctrl := range append(slices.Clone(requiredV1), optionalV1...) {
		mt, ok := mem, true
		if ctrl != "memory" {
			mt, ok = v1Mount(mounts, ctrl, rel)
		}
		if !ok {
			if slices.Contains(optionalV1, ctrl) {
				continue
			}
			return &unavailable{fmt.Sprintf("cgroup v1 has no %s hierarchy mounted that holds %s", ctrl, rel),
				"mount the " + ctrl + " controller under /sys/fs/cgroup, or use cgroup v2"}
		}
		if mt.ro {
			return &unavailable{fmt.Sprintf("the cgroup %s hierarchy at %s is mounted read-only", ctrl, mt.point),
				"give wattd a writable cgroup filesystem (a privileged container, or run on the host)"}
		}
		dir := path.Join(mt.dirOf(rel), m.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return permission(err, dir)
		}
		m.runtime[ctrl] = dir
	}
	return nil
}

// v1Mount finds the hierarchy of ctrl that contains the relative path rel,
// preferring a mount of the hierarchy's top.
func v1Mount(mounts []mount, ctrl, rel string) (mount, bool) {
	best, found := mount{}, false
	for _, mt := range mounts {
		if mt.fstype != "cgroup" || !mt.has(ctrl) || !within(rel, mt.root) {
			continue
		}
		if !found || len(mt.root) < len(best.root) {
			best, found = mt, true
		}
	}
	return best, found
}

func (m *Manager) openV2(mt mount, root string) error {
	m.version = V2
	if root == "" {
		root = path.Join(mt.point, "wattd")
		own, ok := ownV2(mt)
		// A wattd that already moved itself into its leaf (an earlier
		// Open in this process) looks from the cgroup above it.
		if ok && path.Base(own) == "supervisor" {
			own = path.Dir(own)
		}
		if ok && own != mt.point && delegated(own) {
			root = own
		} else if ok {
			m.unbound = unboundLimit("memory.max", own, root, mt.point)
		}
	}
	// Controllers are enabled from the deepest directory that exists on
	// the way to the runtime's directory: wattd does not touch cgroups
	// above the root it was given or found.
	dir := path.Join(root, m.name)
	start := dir
	for {
		if _, err := os.Stat(start); err == nil || start == mt.point {
			break
		}
		start = path.Dir(start)
	}
	avail, err := readFile(start, "cgroup.controllers")
	if err != nil {
		return permission(err, start)
	}
	var missing []string
	for _, c := range requiredV2 {
		if !slices.Contains(strings.Fields(avail), c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return &unavailable{fmt.Sprintf("cgroup v2 at %s does not offer the %s controller(s)", start, strings.Join(missing, ", ")),
			"delegate them to wattd: run it under systemd with Delegate=yes, enable them in the parent's cgroup.subtree_control, or set cgroups.root to a cgroup that has them"}
	}
	for cur := start; ; {
		if err := m.enableV2(cur); err != nil {
			return err
		}
		if cur == dir {
			break
		}
		next := path.Join(cur, strings.SplitN(strings.TrimPrefix(dir, cur+"/"), "/", 2)[0])
		if err := os.Mkdir(next, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return permission(err, next)
		}
		cur = next
	}
	m.runtime = map[string]string{"": dir}
	return nil
}

// selfCgroupPath is a variable so tests can read a prepared file.
var selfCgroupPath = "/proc/self/cgroup"

// selfCgroups reads wattd's own cgroups, one path per hierarchy keyed by
// its controllers as /proc/self/cgroup lists them ("memory", "cpu,cpuacct",
// "name=systemd", and "" for v2).
func selfCgroups() map[string]string {
	b, err := os.ReadFile(selfCgroupPath)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		// "4:memory:/system.slice/wattd.service", "0::/user.slice"
		if _, rest, ok := strings.Cut(line, ":"); ok {
			if ctrls, p, ok := strings.Cut(rest, ":"); ok {
				out[ctrls] = p
			}
		}
	}
	return out
}

// ownV2 returns the directory of wattd's own v2 cgroup.
func ownV2(mt mount) (string, bool) {
	if p, ok := selfCgroups()[""]; ok && within(p, mt.root) {
		return mt.dirOf(p), true
	}
	return "", false
}

// unboundLimit names the memory limit of wattd's own cgroup own, or of
// one above it below the mount point top, when root, the default root the
// workers' groups go under, is not below that cgroup: under systemd a
// unit's MemoryMax= (v2) or MemoryLimit= (v1) without Delegate=yes, which
// the workers would escape.
func unboundLimit(file, own, root, top string) string {
	for dir := own; dir != top && within(dir, top) && !within(root, dir); dir = path.Dir(dir) {
		s, err := readFile(dir, file)
		if n, ok := limitBytes(s); err == nil && ok {
			return fmt.Sprintf("%s has %s %d MiB", dir, file, n>>20)
		}
	}
	return ""
}

// ownV1 returns wattd's own cgroup in the v1 memory hierarchy when it was
// delegated to wattd, so that the workers' groups go below it and the
// limits of the unit (MemoryLimit=, CPUQuota=, TasksMax=) bound them too.
// On v1 systemd marks a Delegate=yes unit on its own hierarchy
// (name=systemd, or the empty v2 one of a hybrid machine), not on the
// controllers' ones; it puts the unit at the same path in each of those,
// so the mark counts when that path is the memory one's. A cgroup owned by
// wattd's non-root user counts too, as on v2.
func ownV1(mounts []mount, mem mount) (string, bool) {
	self := selfCgroups()
	var memPath string
	for ctrls, p := range self {
		if slices.Contains(strings.Split(ctrls, ","), "memory") {
			memPath = p
		}
	}
	if memPath == "" || memPath == mem.root || !within(memPath, mem.root) {
		return "", false
	}
	own := mem.dirOf(memPath)
	if delegated(own) {
		return own, true
	}
	for _, mt := range mounts {
		key := ""
		switch {
		case mt.fstype == "cgroup" && mt.name == "systemd":
			key = "name=systemd"
		case mt.fstype == "cgroup2":
		default:
			continue
		}
		if p, ok := self[key]; ok && p == memPath && within(p, mt.root) &&
			delegated(mt.dirOf(p)) {
			return own, true
		}
	}
	return "", false
}

// delegated reports whether the cgroup was handed to wattd to manage:
// systemd marks a Delegate=yes unit's cgroup with an extended attribute,
// and an unprivileged owner can only have got it by delegation.
func delegated(dir string) bool {
	for _, attr := range []string{"trusted.delegate", "user.delegate"} {
		if n, err := unix.Getxattr(dir, attr, nil); err == nil && n > 0 {
			return true
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err == nil && st.Uid != 0 && int(st.Uid) == os.Geteuid() {
		return true
	}
	return false
}

// enableV2 makes dir hand the required controllers to its children. A
// cgroup with processes cannot (the "no internal processes" rule), so
// when wattd itself is what sits there, it moves into a leaf first.
func (m *Manager) enableV2(dir string) error {
	have, err := readFile(dir, "cgroup.subtree_control")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return permission(err, dir)
	}
	var want []string
	for _, c := range requiredV2 {
		if !slices.Contains(strings.Fields(have), c) {
			want = append(want, "+"+c)
		}
	}
	if len(want) == 0 {
		return nil
	}
	err = writeFile(dir, "cgroup.subtree_control", strings.Join(want, " "))
	if errors.Is(err, syscall.EBUSY) {
		if pids, _ := procs(dir); slices.Contains(pids, os.Getpid()) {
			leaf := path.Join(dir, "supervisor")
			if merr := os.Mkdir(leaf, 0o755); merr != nil && !errors.Is(merr, os.ErrExist) {
				return permission(merr, leaf)
			}
			if jerr := writeFile(leaf, "cgroup.procs", strconv.Itoa(os.Getpid())); jerr != nil {
				return permission(jerr, leaf)
			}
			m.log.Info("cgroups: moved wattd into a leaf cgroup so its own can hold the workers' groups", zap.String("cgroup", leaf))
			err = writeFile(dir, "cgroup.subtree_control", strings.Join(want, " "))
		}
	}
	if errors.Is(err, syscall.EBUSY) {
		return &unavailable{fmt.Sprintf("cgroup %s holds other processes, so it cannot hand controllers to wattd's groups", dir),
			"give wattd a cgroup of its own: systemd Delegate=yes, or set cgroups.root to an empty cgroup"}
	}
	if err != nil {
		return permission(err, dir)
	}
	return nil
}

// Version is the cgroup interface in use.
func (m *Manager) Version() Version { return m.version }

// Warning is the one message to log at start when cgroups are not used,
// naming what is missing and what to do; empty otherwise.
func (m *Manager) Warning() string { return m.warning }

// Dirs returns the runtime's cgroup directories, by controller on v1
// (key "" on v2); nil in fallback mode.
func (m *Manager) Dirs() map[string]string { return maps.Clone(m.runtime) }

// Worker makes the cgroup of one worker process with its limits applied.
// Each call makes a new group, even for the same app and index.
func (m *Manager) Worker(app string, index int, limits Limits) (_ *Group, err error) {
	m.mu.Lock()
	m.gen++
	g := &Group{m: m, app: app, index: index, limits: limits,
		name: fmt.Sprintf("%s.%d.%d", sanitize(app), index, m.gen)}
	m.mu.Unlock()
	if m.version != Fallback {
		g.dirs = map[string]string{}
		defer func() {
			if err != nil {
				_ = g.Remove()
			}
		}()
		for ctrl, rt := range m.runtime {
			if m.version == V1 && limits.CPUs == 0 && (ctrl == "cpu" || ctrl == "cpuacct") {
				// A cpu group of its own puts the worker under CFS group
				// scheduling, where on v1 a child group weighs as much as
				// one task of its parent: workers that asked for no CPU
				// limit would lose CPU to every process outside wattd's
				// tree under load (measured: requests/s 0.99 -> 0.64 of
				// node:cluster's on 2 CPUs shared with the load generator).
				continue
			}
			dir := path.Join(rt, g.name)
			// Co-mounted v1 controllers (cpu,cpuacct) share a directory.
			if !slices.Contains(slices.Collect(maps.Values(g.dirs)), dir) {
				if err := os.Mkdir(dir, 0o755); err != nil {
					return nil, fmt.Errorf("app %q worker %d: create cgroup: %w", app, index, err)
				}
			}
			g.dirs[ctrl] = dir
		}
		if err := g.apply(); err != nil {
			return nil, fmt.Errorf("app %q worker %d: cgroup limits: %w", app, index, err)
		}
	}
	m.mu.Lock()
	m.groups[g] = struct{}{}
	m.mu.Unlock()
	return g, nil
}

// Sweep kills and removes every worker group under the runtime's
// directory that this Manager did not make, and every process still
// marked with the runtime's name: what an instance killed with SIGKILL
// left behind. It returns how many processes it killed.
func (m *Manager) Sweep() (int, error) {
	m.mu.Lock()
	mine := map[string]bool{}
	for g := range m.groups {
		mine[g.name] = true
	}
	m.mu.Unlock()
	var killed int
	var errs error
	// Freezer first on v1: it is the hierarchy that can stop a group
	// from forking while it is being killed.
	for _, ctrl := range []string{"", "freezer", "memory", "cpu", "pids", "cpuacct"} {
		rt, ok := m.runtime[ctrl]
		if !ok {
			continue
		}
		entries, err := os.ReadDir(rt)
		if err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || mine[e.Name()] {
				continue
			}
			n, err := removeTree(path.Join(rt, e.Name()), func(dir string) error { return killDir(m.version, ctrl, dir) })
			killed += n
			errs = errors.Join(errs, err)
		}
	}
	n, err := killMarked(m.name+"/", m.mineMarks(mine))
	return killed + n, errors.Join(errs, err)
}

func (m *Manager) mineMarks(mine map[string]bool) map[string]bool {
	out := make(map[string]bool, len(mine))
	for n := range mine {
		out[m.mark(n)] = true
	}
	return out
}

// mark is the EnvGroup value of this runtime's group called group.
func (m *Manager) mark(group string) string {
	if m.instance == "" { // its own /proc/self/stat unreadable
		return m.name + "/" + group
	}
	return m.name + "/" + group + "@" + m.instance
}

// instanceOf names the process pid as marks do: its pid and its start
// time, "" when it is gone.
func instanceOf(pid int) string {
	st, ok := procnet.ReadStat(pid)
	if !ok {
		return ""
	}
	return strconv.Itoa(pid) + "." + strconv.FormatUint(st.Start, 10)
}

// liveInstance tells whether a mark's instance names a running process
// other than this one: another wattd, alive, whose workers are its own.
func liveInstance(instance string) bool {
	pidText, _, ok := strings.Cut(instance, ".")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid == os.Getpid() {
		return false
	}
	return instanceOf(pid) == instance
}

// Close kills and removes every group of the runtime and the runtime's
// own directories. The root above them stays: other runtimes may use it.
func (m *Manager) Close() error {
	m.mu.Lock()
	groups := make([]*Group, 0, len(m.groups))
	for g := range m.groups {
		groups = append(groups, g)
	}
	m.mu.Unlock()
	var errs error
	for _, g := range groups {
		errs = errors.Join(errs, g.Remove())
	}
	_, err := m.Sweep()
	errs = errors.Join(errs, err)
	for _, dir := range m.runtime {
		errs = errors.Join(errs, rmdir(dir, 0))
	}
	m.unlockRuntime()
	return errs
}

// sanitize keeps a name usable as one cgroup path component.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if s == "." || s == ".." {
		return "_"
	}
	return string(b)
}
