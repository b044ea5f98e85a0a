package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// openReal opens a Manager on this machine's cgroup hierarchy under a
// test root, or skips the test saying why it cannot.
func openReal(t *testing.T, want Version, root, name string) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: cgroups are created and processes moved into them")
	}
	m, err := Open(Options{Root: root, Name: name, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != want {
		t.Skipf("cgroup %s not usable here (got %s: %s)", want, m.Version(), m.Warning())
	}
	return m
}

const v1Root = "/sys/fs/cgroup/memory/wattd-test"

func testName(t *testing.T) string {
	return fmt.Sprintf("t%d-%s", os.Getpid(), sanitize(t.Name()))
}

func openV1(t *testing.T) *Manager {
	t.Helper()
	m := openReal(t, V1, v1Root, testName(t))
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		for _, dir := range m.runtime {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("%s left behind", dir)
			}
		}
	})
	return m
}

func TestV1LimitsWritten(t *testing.T) {
	m := openV1(t)
	g, err := m.Worker("api", 0, Limits{Memory: 96 << 20, MemoryHigh: 64 << 20, CPUs: 1.5, Pids: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ctrl, file, want string }{
		{"memory", "memory.limit_in_bytes", "100663296"},
		{"memory", "memory.soft_limit_in_bytes", "67108864"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.cfs_quota_us", "150000"},
		{"pids", "pids.max", "64"},
	} {
		got, err := readFile(g.Dirs()[c.ctrl], c.file)
		if err != nil || got != c.want {
			t.Errorf("%s/%s = %q, %v; want %q", c.ctrl, c.file, got, err, c.want)
		}
	}
	for _, ctrl := range requiredV1 {
		if !strings.HasPrefix(g.Dirs()[ctrl], "/sys/fs/cgroup/"+ctrl+"/wattd-test/"+m.name+"/api.0.") {
			t.Errorf("%s group at %s", ctrl, g.Dirs()[ctrl])
		}
	}
	// A second worker process for the same slot gets its own group.
	g2, err := m.Worker("api", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if g2.Name() == g.Name() {
		t.Fatalf("two worker processes share group %s", g.Name())
	}
}

func TestV1JoinBeforeExec(t *testing.T) {
	m := openV1(t)
	g, err := m.Worker("api", 1, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "sleep", nil)
	if l := w.line(t, "ready"); l != `ready join=""` {
		t.Errorf("the worker sees %s: %s must not reach the program the helper execs", l, EnvJoin)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", w.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, ctrl := range requiredV1 {
		want := ctrl + ":/wattd-test/" + m.name + "/" + g.Name()
		if ctrl == "cpu" {
			// Without a CPU limit the worker keeps the CPU group it was
			// started in (see Worker).
			if strings.Contains(string(b), "cpu:/wattd-test/") || strings.Contains(string(b), "cpu,cpuacct:/wattd-test/") {
				t.Errorf("worker without a CPU limit in a cpu group of wattd's:\n%s", b)
			}
			continue
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("worker not in its %s group: want %q in\n%s", ctrl, want, b)
		}
	}
}

// TestV1ExecHelperPath runs the helper's sequence, join then exec, and
// checks the program it execs: in every hierarchy of its group, with the
// group's mark and without the join list.
func TestV1ExecHelperPath(t *testing.T) {
	m := openV1(t)
	g, err := m.Worker("api", 2, Limits{Memory: 128 << 20, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "exec", nil)
	pid := w.cmd.Process.Pid
	deadline := time.Now().Add(20 * time.Second)
	for {
		// The kernel switches exe before it lays out the new environment:
		// wait for both.
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if exe == "/usr/bin/sleep" && len(env) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the helper did not exec the worker")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	for _, ctrl := range requiredV1 {
		if want := ctrl + ":/wattd-test/" + m.name + "/" + g.Name() + "\n"; !strings.Contains(string(b), want) {
			t.Errorf("worker not in its %s group: want %q in\n%s", ctrl, want, b)
		}
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if strings.Contains(string(env), EnvJoin+"=") {
		t.Errorf("%s reached the worker", EnvJoin)
	}
	if !strings.Contains(string(env), EnvGroup+"="+m.name+"/"+g.Name()+"@"+m.instance+"\x00") || m.instance == "" {
		t.Errorf("the worker lacks its mark %s", EnvGroup)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

func TestV1MemoryLimitOOMKills(t *testing.T) {
	m := openV1(t)
	g, err := m.Worker("hog", 0, Limits{Memory: 96 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "alloc", nil)
	select {
	case err := <-w.done:
		ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("worker ended with %v, want killed by SIGKILL", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a worker allocating without bound under a 96 MiB limit is still running after 60s")
	}
	oom, err := g.OOMKilled()
	if err != nil || !oom {
		t.Fatalf("OOMKilled = %v, %v; want true", oom, err)
	}
	u, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the OOM kill: %+v", u)
	if u.MemoryLimit != 96<<20 {
		t.Errorf("stats %+v", u)
	}
	kills, err := g.OOMKills()
	if err != nil || kills == 0 {
		t.Errorf("OOMKills = %d, %v; want > 0", kills, err)
	}
	// The slot's count survives the group: the kernel's counter goes
	// with the directory, wattd's total must not.
	before, ok := m.OOMKills("hog", 0)
	if !ok || before != kills {
		t.Errorf("slot count with the group alive = %d, %v; want %d", before, ok, kills)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if after, ok := m.OOMKills("hog", 0); !ok || after != before {
		t.Errorf("slot count after the group was removed = %d, %v; want %d", after, ok, before)
	}
}

func TestV1PidsLimitStopsForks(t *testing.T) {
	m := openV1(t)
	const limit = 24
	g, err := m.Worker("bomb", 0, Limits{Pids: limit})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "fork", nil)
	l := w.line(t, "fork failed after ")
	var n int
	fmt.Sscanf(l, "fork failed after %d", &n)
	u, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s; pids.current %d", l, u.Pids)
	if n >= limit || u.Pids > limit || !strings.Contains(l, "resource temporarily unavailable") {
		t.Fatalf("%s with pids.current %d; want the fork refused below %d", l, u.Pids, limit)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if pids, _ := procs(g.Dirs()["pids"]); len(pids) != 0 {
		t.Fatalf("after Kill: %v", pids)
	}
}

func TestV1CPULimit(t *testing.T) {
	m := openV1(t)
	g, err := m.Worker("spin", 0, Limits{CPUs: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Dirs()["cpuacct"]; !ok {
		t.Skip("no cpuacct hierarchy: CPU usage cannot be read")
	}
	w := startWorker(t, g, "spin", nil)
	w.line(t, "ready")
	time.Sleep(300 * time.Millisecond) // past the start-up, which is not what is measured
	u0, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for time.Since(t0) < 2500*time.Millisecond {
		time.Sleep(100 * time.Millisecond)
	}
	u1, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	cpus := float64(u1.CPU-u0.CPU) / float64(time.Since(t0))
	t.Logf("measured %.3f CPU over %s with a 0.5 CPU limit", cpus, time.Since(t0).Round(time.Millisecond))
	if cpus > 0.6 {
		t.Fatalf("used %.3f CPU, limit 0.5", cpus)
	}
	if cpus < 0.05 {
		t.Fatalf("used %.3f CPU: the spinner did not run, the measure proves nothing", cpus)
	}
	// The spinner ran in CFS periods of its own. It is throttled only
	// when it got its whole quota: on a busy machine other processes may
	// keep it below.
	th := u1.Throttling
	if th == nil || th.Periods == 0 || th.Throttled > th.Periods {
		t.Fatalf("throttling of a spinner under a CPU limit: %+v", th)
	}
	if cpus > 0.45 && (th.Throttled == 0 || th.Time <= 0) {
		t.Fatalf("used %.3f CPU of 0.5 but never throttled: %+v", cpus, th)
	}
	t.Logf("throttled in %d of %d periods, %s in all", th.Throttled, th.Periods, th.Time)
	if u1.Pressure != nil {
		t.Errorf("Pressure on v1 = %+v, want none: v1 has no PSI", u1.Pressure)
	}
}

func TestV1KillTakesSetsidAndOrphans(t *testing.T) {
	m := openV1(t)
	g, err := m.Worker("tree", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "tree", nil)
	pids := append(w.treePids(t), w.cmd.Process.Pid)
	in, _ := procs(g.Dirs()["freezer"])
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("process %d not running before the kill", pid)
		}
		if !contains(in, pid) {
			t.Fatalf("process %d not in the group %v", pid, in)
		}
	}
	killAndRemove(t, g, pids)
}

// killAndRemove kills g, waits for pids to be gone, and removes g, whose
// directories must then be gone.
func killAndRemove(t *testing.T, g *Group, pids []int) {
	t.Helper()
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pids...)
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range g.Dirs() {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists (%v)", dir, err)
		}
	}
}

// TestV1KillTakesSubgroups: a process of the worker that made a group of
// its own below the worker's, in every hierarchy, and moved into it is
// killed with the worker, and the groups are removed (the kill read the
// worker's group alone, and its removal failed busy).
func TestV1KillTakesSubgroups(t *testing.T) {
	m := openV1(t)
	g, err := m.Worker("nest", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "tree", nil)
	pids := append(w.treePids(t), w.cmd.Process.Pid)
	moved := pids[0]
	for _, dir := range g.uniqueDirs() {
		sub := path.Join(dir, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writeFile(sub, "cgroup.procs", fmt.Sprint(moved)); err != nil {
			t.Fatal(err)
		}
	}
	if in, _ := procs(path.Join(g.Dirs()["freezer"], "sub")); !contains(in, moved) {
		t.Fatalf("process %d not in the sub-group: %v", moved, in)
	}
	killAndRemove(t, g, pids)
}

func TestV1SweepAfterCrash(t *testing.T) {
	name := testName(t)
	old := openReal(t, V1, v1Root, name)
	g, err := old.Worker("tree", 0, Limits{Memory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "tree", nil)
	pids := append(w.treePids(t), w.cmd.Process.Pid)
	// While it lives, a second manager of the runtime is refused: it would
	// sweep the first one's workers.
	if _, err := Open(Options{Root: v1Root, Name: name, Logger: zaptest.NewLogger(t)}); !errors.Is(err, ErrInUse) ||
		!strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("a second manager of a live runtime: %v, want ErrInUse naming this pid", err)
	}
	if !alive(w.cmd.Process.Pid) {
		t.Fatal("the refused manager killed the live runtime's worker")
	}
	// The old manager is dropped without Close, as when wattd is killed
	// with SIGKILL, which lets its lock go; a new one for the same runtime
	// cleans up in Open.
	old.unlockRuntime()
	m := openV1(t)
	if m.name != name {
		t.Fatal("names differ")
	}
	waitGone(t, pids...)
	for _, dir := range g.Dirs() {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("leftover %s still exists (%v)", dir, err)
		}
	}
	// Another runtime's groups are not touched.
	other := openV1Named(t, name+"-other")
	og, err := other.Worker("x", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ow := startWorker(t, og, "sleep", nil)
	ow.line(t, "ready")
	if n, err := m.Sweep(); err != nil || n != 0 {
		t.Fatalf("sweep of an empty runtime: %d, %v", n, err)
	}
	if !alive(ow.cmd.Process.Pid) {
		t.Fatal("a sweep killed another runtime's worker")
	}
}

func openV1Named(t *testing.T, name string) *Manager {
	m := openReal(t, V1, v1Root, name)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestV1CloseLeavesNothing(t *testing.T) {
	m := openReal(t, V1, v1Root, testName(t))
	var pids []int
	for i := 0; i < 2; i++ {
		g, err := m.Worker("app", i, Limits{Memory: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		w := startWorker(t, g, "tree", nil)
		pids = append(append(pids, w.treePids(t)...), w.cmd.Process.Pid)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pids...)
	for _, ctrl := range requiredV1 {
		dir := path.Join("/sys/fs/cgroup", ctrl, "wattd-test", m.name)
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Close (%v)", dir, err)
		}
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestV1ReplacementKeepsRunning: during a rolling restart the new worker
// of a slot runs beside the old one; killing the old one's group must
// leave the new one alone.
func TestV1ReplacementKeepsRunning(t *testing.T) {
	m := openV1(t)
	old, err := m.Worker("web", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	repl, err := m.Worker("web", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	wo := startWorker(t, old, "tree", nil)
	oldPids := append(wo.treePids(t), wo.cmd.Process.Pid)
	wn := startWorker(t, repl, "tree", nil)
	newPids := append(wn.treePids(t), wn.cmd.Process.Pid)
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, oldPids...)
	if err := old.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range newPids {
		if !alive(pid) {
			t.Fatalf("process %d of the replacement died with the old worker", pid)
		}
	}
}
