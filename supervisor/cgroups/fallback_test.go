package cgroups

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

func TestFallbackRootNotCgroup(t *testing.T) {
	root := filepath.Join(t.TempDir(), "cg")
	m, err := Open(Options{Root: root, Name: "rt", Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != Fallback || !strings.Contains(m.Warning(), "is not in a cgroup filesystem") ||
		!strings.Contains(m.Warning(), "cgroups.root") {
		t.Fatalf("version %s, warning %q", m.Version(), m.Warning())
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("fallback created %s", root)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	m, err := Open(Options{Name: "a/b", Root: filepath.Join(t.TempDir(), "x")})
	if err != nil || m.name != "a_b" {
		t.Fatalf("a name with a slash: %v, %q", err, m.name)
	}
	for _, o := range []Options{
		{Name: ""},
		{Name: "rt", Root: "relative/path"},
		{Name: "rt", Root: "/sys/fs/cgroup/a:b"},
	} {
		if _, err := Open(o); err == nil {
			t.Errorf("Open(%+v) accepted", o)
		}
	}
}

// roCgroupMount bind-mounts the v1 memory hierarchy read-only at a
// temporary directory, as an unprivileged container sees its cgroupfs.
func roCgroupMount(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a read-only bind mount of the cgroup filesystem")
	}
	src := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(src, "memory.limit_in_bytes")); err != nil {
		t.Skip("no cgroup v1 memory hierarchy at " + src)
	}
	dir := t.TempDir()
	if err := unix.Mount(src, dir, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	return dir
}

func TestFallbackReadOnlyCgroupfs(t *testing.T) {
	ro := roCgroupMount(t)
	m, err := Open(Options{Root: filepath.Join(ro, "wattd"), Name: testName(t), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("warning: %s", m.Warning())
	if m.Version() != Fallback || !strings.Contains(m.Warning(), "read-only") || !strings.Contains(m.Warning(), "Delegate=yes") {
		t.Fatalf("version %s, warning %q", m.Version(), m.Warning())
	}
	if m.Dirs() != nil {
		t.Fatalf("fallback dirs %v", m.Dirs())
	}

	// The fallback still kills a whole tree and measures it.
	g, err := m.Worker("tree", 0, Limits{Memory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if g.Enforced() {
		t.Fatal("fallback group claims enforced limits")
	}
	for _, kv := range g.JoinEnv() {
		if strings.HasPrefix(kv, EnvJoin+"=") {
			t.Fatalf("fallback asks the helper to join a cgroup: %s", kv)
		}
	}
	w := startWorker(t, g, "tree", nil)
	pids := append(w.treePids(t), w.cmd.Process.Pid)
	u, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fallback usage %+v", u)
	if over, _, err := g.OverMemory(); over || err != nil {
		t.Fatalf("OverMemory = %v, %v with %d of %d bytes", over, err, u.Memory, u.MemoryLimit)
	}
	g.limits.Memory = 1 << 20 // below any Go process's RSS
	if over, u, err := g.OverMemory(); !over || err != nil {
		t.Fatalf("OverMemory = %v, %v with %d of %d bytes", over, err, u.Memory, u.MemoryLimit)
	}
	g.limits.Memory = 64 << 20
	if u.Memory == 0 || u.Pids < 2 || u.MemoryLimit != 64<<20 {
		t.Fatalf("fallback usage %+v", u)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pids...)
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

// TestFallbackHiddenCgroupfs: a cgroup mount that another one hides (a
// tmpfs mounted over it) is still in the mount table; wattd falls back
// rather than make its groups as plain directories in the tmpfs, which
// no worker could join.
func TestFallbackHiddenCgroupfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	src := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(src, "memory.limit_in_bytes")); err != nil {
		t.Skip("no cgroup v1 memory hierarchy at " + src)
	}
	ro := t.TempDir() // a writable cgroup mount, then a tmpfs over it
	if err := unix.Mount(src, ro, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(ro, unix.MNT_DETACH) })
	if err := unix.Mount("tmpfs", ro, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(ro, unix.MNT_DETACH) })
	m, err := Open(Options{Root: filepath.Join(ro, "wattd"), Name: testName(t), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if m.Version() != Fallback || !strings.Contains(m.Warning(), "is not in a cgroup filesystem") {
		t.Fatalf("version %s, warning %q", m.Version(), m.Warning())
	}
	if _, err := os.Stat(filepath.Join(ro, "wattd")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directories made in the tmpfs (stat: %v)", err)
	}
}

func TestFallbackSweepFindsMarkedLeftovers(t *testing.T) {
	ro := roCgroupMount(t)
	name := testName(t)
	old, err := Open(Options{Root: filepath.Join(ro, "wattd"), Name: name})
	if err != nil || old.Version() != Fallback {
		t.Fatalf("%v %v", old.Version(), err)
	}
	g, err := old.Worker("tree", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "tree", nil)
	tree := w.treePids(t)
	// The child that dropped its environment cannot be found once its
	// parent is gone: the documented limit of the fallback.
	setsid, unmarked := tree[:2], tree[2]
	t.Cleanup(func() { _ = unix.Kill(unmarked, unix.SIGKILL) })
	// As after kill -9 of wattd: a new instance of the runtime finds the
	// setsid children by their mark alone.
	m, err := Open(Options{Root: filepath.Join(ro, "wattd"), Name: name, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, setsid...)
	_ = m.Close()
}

// TestFallbackSweepSparesALiveInstance: without cgroups, a second wattd
// of the same runtime name that does not see the first one's lock
// (another mount namespace) must not take the first one's workers for
// leftovers: their mark names a wattd that is running. Once that one is
// gone, they are leftovers.
func TestFallbackSweepSparesALiveInstance(t *testing.T) {
	ro := roCgroupMount(t)
	name := testName(t)
	other, err := Open(Options{Root: filepath.Join(ro, "wattd"), Name: name})
	if err != nil || other.Version() != Fallback {
		t.Fatalf("%v %v", other.Version(), err)
	}
	// The other wattd: a process of its own, running.
	first := exec.Command("/usr/bin/sleep", "1000")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _ = first.Wait() })
	other.instance = instanceOf(first.Process.Pid)
	g, err := other.Worker("tree", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "tree", nil)
	setsid := w.treePids(t)[:2]
	m, err := Open(Options{Root: filepath.Join(ro, "wattd"), Name: name, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Close()
	for _, pid := range append(setsid, w.cmd.Process.Pid) {
		if !alive(pid) {
			t.Fatalf("process %d of a running wattd killed as a leftover", pid)
		}
	}
	_ = first.Process.Kill()
	_ = first.Wait()
	m, err = Open(Options{Root: filepath.Join(ro, "wattd"), Name: name, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, setsid...)
	_ = m.Close()
}

func TestTreeRSS(t *testing.T) {
	m := &Manager{name: "rt", groups: map[*Group]struct{}{}}
	g := &Group{m: m, name: "tree.0.1"}
	w := startWorker(t, g, "tree", nil)
	setsid := w.treePids(t)
	pid := w.cmd.Process.Pid
	tree, own := TreeRSS(pid), RSS(pid)
	t.Logf("tree %d, worker %d, setsid child %d", tree, own, RSS(setsid[0]))
	if own == 0 || tree <= own {
		t.Fatalf("TreeRSS %d does not count the worker's children (worker alone %d)", tree, own)
	}
	if RSS(-1) != 0 {
		t.Fatal("RSS of no process")
	}
	if _, err := killTree(pid, "rt/tree.0.1"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, append(setsid, pid)...)
}

func TestJoinFromEnvFailsForAVanishedGroup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	t.Setenv(EnvJoin, dir)
	err := JoinFromEnv()
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("JoinFromEnv = %v, want an error naming %s", err, dir)
	}
	if _, ok := os.LookupEnv(EnvJoin); ok {
		t.Fatalf("%s still set", EnvJoin)
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); !os.IsNotExist(err) {
		t.Fatal("the join created a file")
	}
	os.Unsetenv(EnvJoin)
	if err := JoinFromEnv(); err != nil {
		t.Fatalf("without %s: %v", EnvJoin, err)
	}
}

// TestV1MissingFreezerLeavesNothing: with one v1 hierarchy wattd needs
// not mounted (freezer here, in a mount namespace of the test's), wattd
// falls back, and the groups it made in the others before it found out
// are removed, not left behind for good.
func TestV1MissingFreezerLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to unmount in a mount namespace")
	}
	if _, err := os.Stat("/sys/fs/cgroup/freezer/cgroup.procs"); err != nil {
		t.Skip("no cgroup v1 freezer hierarchy")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare")
	}
	name := testName(t)
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c",
		`umount -l /sys/fs/cgroup/freezer && exec "$0" -test.run='^$'`, os.Args[0])
	cmd.Env = append(os.Environ(), envChild+"=open-root", "TEST_ROOT="+v1Root, "TEST_NAME="+name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("cannot unmount freezer in a namespace: %v %s", err, out)
	}
	if !strings.Contains(string(out), "fallback: cgroups unavailable: cgroup v1 has no freezer hierarchy") {
		t.Fatalf("got %s", out)
	}
	for _, ctrl := range []string{"memory", "cpu", "pids", "cpuacct"} {
		dir := filepath.Join("/sys/fs/cgroup", ctrl, "wattd-test", name)
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind (%v)", dir, err)
			_ = syscall.Rmdir(dir)
		}
	}
}

func TestUnprivilegedFallsBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a process as another user")
	}
	// The build directory is root's alone: run a copy nobody may read.
	dir, err := os.MkdirTemp("", "cgroups-unpriv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "cgroups.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envChild+"=open")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "permission denied") || errors.Is(err, fs.ErrPermission) {
		t.Skipf("the test binary cannot run as nobody: %v %s", err, out)
	}
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("%s", out)
	if !strings.HasPrefix(string(out), "fallback: cgroups unavailable: cannot write cgroup ") || !strings.Contains(string(out), "run wattd as root") {
		t.Fatalf("got %s", out)
	}
}
