package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// fakeV2 lays out a directory like the top of a v2 hierarchy offering
// controllers.
func fakeV2(t *testing.T, controllers string) (mount, string) {
	dir := t.TempDir()
	for name, v := range map[string]string{
		"cgroup.controllers":     controllers,
		"cgroup.subtree_control": "",
		"cgroup.procs":           "",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return mount{root: "/", point: dir, fstype: "cgroup2"}, dir
}

func TestV2FormatsOnALaidOutHierarchy(t *testing.T) {
	mt, top := fakeV2(t, "cpuset cpu io memory hugetlb pids rdma misc")
	m := &Manager{name: "rt", log: zaptest.NewLogger(t), groups: map[*Group]struct{}{}}
	if err := m.openV2(mt, filepath.Join(top, "wattd")); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{top, filepath.Join(top, "wattd"), filepath.Join(top, "wattd", "rt")} {
		if got, _ := readFile(dir, "cgroup.subtree_control"); got != "+memory +cpu +pids" {
			t.Errorf("%s/cgroup.subtree_control = %q", dir, got)
		}
	}
	g, err := m.Worker("web api", 2, Limits{Memory: 512 << 20, MemoryHigh: 400 << 20, CPUs: 1.5, Pids: 256})
	if err != nil {
		t.Fatal(err)
	}
	dir := g.Dirs()[""]
	if want := filepath.Join(top, "wattd", "rt", "web_api.2.1"); dir != want {
		t.Fatalf("group at %s, want %s", dir, want)
	}
	for file, want := range map[string]string{
		"memory.max":  "536870912",
		"memory.high": "419430400",
		"cpu.max":     "150000 100000",
		"pids.max":    "256",
	} {
		if got, _ := readFile(dir, file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	env := g.JoinEnv()
	if len(env) != 2 || env[0] != EnvGroup+"=rt/web_api.2.1" || env[1] != EnvJoin+"="+dir {
		t.Errorf("JoinEnv %q", env)
	}
	// What the kernel would report.
	for file, v := range map[string]string{
		"memory.current": "104857600",
		"pids.current":   "7",
		"cpu.stat":       "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\n",
		"memory.events":  "low 0\nhigh 12\nmax 40\noom 3\noom_kill 2\noom_group_kill 1\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	u, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{Memory: 100 << 20, MemoryLimit: 512 << 20, Pids: 7, PidsLimit: 256, CPU: 2500 * time.Millisecond, CPULimit: 1.5}
	if u != want {
		t.Errorf("Stats = %+v, want %+v", u, want)
	}
	if n, err := g.OOMKills(); n != 2 || err != nil {
		t.Errorf("OOMKills = %d, %v; want 2", n, err)
	}
	if oom, err := g.OOMKilled(); !oom || err != nil {
		t.Errorf("OOMKilled = %v, %v", oom, err)
	}
}

func TestV2MissingControllersFallBack(t *testing.T) {
	mt, top := fakeV2(t, "cpu io")
	m := &Manager{name: "rt", log: zaptest.NewLogger(t)}
	err := m.openV2(mt, filepath.Join(top, "wattd"))
	u, ok := err.(*unavailable)
	if !ok || !strings.Contains(u.what, "memory, pids") || !strings.Contains(u.fix, "Delegate=yes") {
		t.Fatalf("got %v", err)
	}
}

func TestV2LimitsLeftUnsetAreNotWritten(t *testing.T) {
	m := openFakeV2(t)
	g, err := m.Worker("a", 0, Limits{CPUs: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(g.Dirs()[""], "cpu.max"); got != "1000 100000" {
		t.Errorf("cpu.max = %q: the kernel's minimum quota is 1000", got)
	}
	for _, f := range []string{"memory.max", "memory.high", "pids.max"} {
		if exists(g.Dirs()[""], f) {
			t.Errorf("%s written without a limit", f)
		}
	}
}

// v2Root is a directory in this machine's v2 hierarchy; it has no
// controllers here, but process membership, cgroup.kill and cgroup.freeze
// are the core's and work without them.
const v2Root = "/sys/fs/cgroup/unified/wattd-test"

func openV2Real(t *testing.T) *Manager {
	t.Helper()
	mounts, _ := cgroupMounts()
	if mt, ok := mountOf(mounts, v2Root); !ok || mt.fstype != "cgroup2" {
		t.Skip("no cgroup2 filesystem at /sys/fs/cgroup/unified")
	}
	saved := requiredV2
	requiredV2 = nil
	t.Cleanup(func() { requiredV2 = saved })
	m := openReal(t, V2, v2Root, testName(t))
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if _, err := os.Stat(m.runtime[""]); !os.IsNotExist(err) {
			t.Errorf("%s left behind", m.runtime[""])
		}
	})
	return m
}

func inCgroup(t *testing.T, pid int, g *Group) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	want := "0::/wattd-test/" + g.m.name + "/" + g.Name() + "\n"
	if !strings.Contains(string(b), want) {
		t.Fatalf("process %d not in %q:\n%s", pid, want, b)
	}
}

func TestV2RealJoinAndKill(t *testing.T) {
	for _, c := range []struct {
		name      string
		cgroupFD  bool
		cgroupKil bool
	}{
		{"env join, cgroup.kill", false, true},
		{"clone into cgroup, freeze and kill", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := openV2Real(t)
			useCgroupKill = c.cgroupKil
			t.Cleanup(func() { useCgroupKill = true })
			g, err := m.Worker("tree", 0, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var attr *syscall.SysProcAttr
			if c.cgroupFD {
				// As the spawner starts a worker without the exec helper.
				f, ok, err := g.DirectStart()
				if err != nil || !ok || f == nil {
					t.Fatalf("DirectStart on v2 = %v, %v, %v; want the group's directory", f, ok, err)
				}
				defer f.Close()
				attr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
				// Without the join variable the child can only be in the
				// group if clone put it there.
				g.dirs = nil
			}
			w := startWorker(t, g, "tree", attr)
			if c.cgroupFD {
				g.dirs = map[string]string{"": filepath.Join(m.runtime[""], g.Name())}
			}
			pids := append(w.treePids(t), w.cmd.Process.Pid)
			for _, pid := range pids {
				inCgroup(t, pid, g)
			}
			if err := g.Kill(); err != nil {
				t.Fatal(err)
			}
			waitGone(t, pids...)
			if err := g.Remove(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestV2RealSweep(t *testing.T) {
	old := openV2Real(t)
	g, err := old.Worker("tree", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "tree", nil)
	pids := append(w.treePids(t), w.cmd.Process.Pid)
	if _, err := Open(Options{Root: v2Root, Name: old.name, Logger: zaptest.NewLogger(t)}); !errors.Is(err, ErrInUse) {
		t.Fatalf("a second manager of a live runtime: %v, want ErrInUse", err)
	}
	old.unlockRuntime() // as a SIGKILL of its wattd would
	m, err := Open(Options{Root: v2Root, Name: old.name, Logger: zaptest.NewLogger(t)})
	if err != nil || m.Version() != V2 {
		t.Fatalf("%v %v", m, err)
	}
	waitGone(t, pids...)
	if _, err := os.Stat(g.Dirs()[""]); !os.IsNotExist(err) {
		t.Fatalf("leftover group still exists (%v)", err)
	}
}

func TestCgroupFDOnlyOnV2(t *testing.T) {
	m := &Manager{name: "rt", version: V1, groups: map[*Group]struct{}{}}
	g := &Group{m: m, dirs: map[string]string{"memory": "/x"}}
	if _, err := g.CgroupFD(); err != ErrNotV2 {
		t.Fatalf("got %v", err)
	}
	// v1: only the process itself can join, through the exec helper.
	if f, ok, err := g.DirectStart(); f != nil || ok || err != nil {
		t.Fatalf("DirectStart on v1 = %v, %v, %v", f, ok, err)
	}
	// Fallback: the group is a mark; nothing to join.
	fb := &Group{m: &Manager{name: "rt", version: Fallback, groups: map[*Group]struct{}{}}}
	if f, ok, err := fb.DirectStart(); f != nil || !ok || err != nil {
		t.Fatalf("DirectStart in fallback = %v, %v, %v", f, ok, err)
	}
}
