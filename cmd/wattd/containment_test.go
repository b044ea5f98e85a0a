package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor"
)

// cgroupV1 skips a test unless wattd can make real v1 cgroups here: root,
// and the memory hierarchy writable.
func cgroupV1(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make cgroups")
	}
	probe := "/sys/fs/cgroup/memory/wattd-test-probe"
	if err := os.Mkdir(probe, 0o755); err != nil && !os.IsExist(err) {
		t.Skipf("cgroup v1 memory hierarchy not writable: %v", err)
	}
	os.Remove(probe)
}

// runtimeCgroups lists the worker cgroups of d's runtime in the memory
// hierarchy; name is the runtime's directory name (see runtimeName).
func runtimeCgroups(name string) []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/memory/wattd/" + name + "/*")
	var out []string
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// runtimeName is the name of d's running runtime: its directory under
// WATTD_RUNTIME_DIR, which also names its cgroup subtree.
func (d *daemon) runtimeName() string {
	d.t.Helper()
	entries, err := runtimeDirs(d.runDir)
	if err != nil || len(entries) != 1 {
		d.t.Fatalf("runtime directory of the running wattd: %v %v", entries, err)
	}
	return entries[0].Name()
}

// runtimeDirs lists the runtime directories in base: its entries but the
// hidden directory each runtime keeps its sockets' second names in.
func runtimeDirs(base string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(base)
	return slices.DeleteFunc(entries, func(e os.DirEntry) bool {
		return strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".sockets")
	}), err
}

// orphans asks the orphans fixture behind d for the pids of the children
// it detached.
func orphans(t *testing.T, d *daemon) []int {
	t.Helper()
	var r struct{ Children []int }
	_, body, err := get(fresh, d.url("/"))
	if err != nil || json.Unmarshal([]byte(body), &r) != nil || len(r.Children) != 2 {
		t.Fatalf("GET / of the orphans fixture: %v %s", err, body)
	}
	return r.Children
}

// TestOOMIsAReasonAndOthersServe: a worker limited to 96 MiB that
// allocates without bound is killed by the kernel inside its cgroup and
// restarted with the reason "oom", while another application serves load
// with no failed request.
func TestOOMIsAReasonAndOthersServe(t *testing.T) {
	integration(t)
	cgroupV1(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":    map[string]any{"initialDelay": 200, "maxDelay": 1000, "maxRestarts": 0},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 2},
			map[string]any{"id": "hog", "path": fixture("faults/memory-hog"), "resources": map[string]any{"memory": "96MiB"}},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	var res *loadResult
	var wg sync.WaitGroup
	wg.Go(func() { res = load(ctx, d.url("/"), 4) })
	var hog struct{ LastExit string }
	loadUntil := time.Now().Add(2 * time.Second)
	waitFor(t, 60*time.Second, "hog to be OOM-killed and restarted", func() bool {
		w := d.app("hog").Workers[0]
		hog.LastExit = w.LastExit
		return strings.HasPrefix(w.LastExit, "oom") && w.Restarts > 0 && time.Now().After(loadUntil)
	})
	cancel()
	wg.Wait()
	if !strings.Contains(hog.LastExit, "96.0 MiB") {
		t.Fatalf("last exit %q does not name the limit", hog.LastExit)
	}
	inHistory := false
	for _, e := range d.app("hog").Workers[0].History {
		inHistory = inHistory || (e.State == "backoff" && strings.HasPrefix(e.Reason, "oom (memory limit 96.0 MiB)"))
	}
	if !inHistory {
		t.Fatalf("the state history has no backoff for oom: %+v", d.app("hog").Workers[0].History)
	}
	if res.failed != 0 || res.refused != 0 || res.ok == 0 {
		t.Fatalf("web during the OOM kills: ok %d failed %d refused %d: %v", res.ok, res.failed, res.refused, res.errs)
	}
	if !strings.Contains(d.out.String(), `"reason":"oom (memory limit 96.0 MiB)"`) {
		t.Fatal("the log does not give oom as the reason")
	}
	// The usage and the limit show while a hog worker runs; between an OOM
	// kill and its restart (backoff up to 1 s) the slot has no process.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := d.ctl("ps")
		if strings.Contains(out, "MEMORY") && usageAndLimit.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ctl ps never showed hog's memory against its limit in 30 s; last:\n%s", out)
		}
	}
	t.Logf("web served %d requests meanwhile, 0 failed", res.ok)
}

// usageAndLimit is hog's memory in ctl ps while a worker runs: its usage
// against its limit (with no process, "- / 96.0 MiB").
var usageAndLimit = regexp.MustCompile(`[0-9] [KMG]iB / 96\.0 MiB`)

// TestWholeTreeKilled: detached and setsid children of a worker do not
// outlive it: not a rolling restart, not a stop; and wattd's cgroups are
// gone after the stop.
func TestWholeTreeKilled(t *testing.T) {
	integration(t)
	cgroupV1(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/orphans")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	w := d.waitReady("web", 20*time.Second).Workers[0]
	// On v1 a worker joins its cgroups from inside, so it starts through
	// the exec helper, whose pid it keeps: LISTEN_PID is its own.
	if env := environ(t, w.PID); env[ipc.EnvListenPID] != strconv.Itoa(w.PID) || env[ipc.EnvParentPID] != "" {
		t.Fatalf("worker %d on v1: LISTEN_PID %q, %s %q; want its own pid and none", w.PID, env[ipc.EnvListenPID], ipc.EnvParentPID, env[ipc.EnvParentPID])
	}
	first := orphans(t, d)
	if out, err := d.ctl("restart", "web"); err != nil {
		t.Fatalf("ctl restart: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "the first worker's children to be gone", func() bool {
		return !alive(first[0]) && !alive(first[1])
	})
	second := orphans(t, d)
	name := d.runtimeName()
	if len(runtimeCgroups(name)) == 0 {
		t.Fatal("no worker cgroup while the worker runs")
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, pid := range second {
		if alive(pid) {
			t.Fatalf("child %d of the stopped worker still runs", pid)
		}
	}
	if left := runtimeCgroups(name); len(left) != 0 {
		t.Fatalf("cgroups left after stop: %v", left)
	}
}

// TestKillNineLeftoversSwept: after kill -9 of wattd, the next start of
// the same project kills what the previous instance left in its cgroups
// (the detached children, which the kernel's parent-death signal does not
// reach) before it starts anything.
func TestKillNineLeftoversSwept(t *testing.T) {
	integration(t)
	cgroupV1(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/orphans")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	children := orphans(t, d)
	d.signal(syscall.SIGKILL)
	d.wait(10 * time.Second)
	for _, pid := range children {
		if !alive(pid) {
			t.Fatalf("child %d died with wattd; the test needs a leftover", pid)
		}
	}
	again := startWattd(t, dir, port, startOpts{env: []string{"WATTD_RUNTIME_DIR=" + d.runDir}})
	// Not just any answer on the port: the killed instance's worker keeps
	// serving on its copy of the socket until it notices wattd is gone.
	again.waitOutput(`"msg":"ready"`, 30*time.Second)
	waitHTTP(t, again.url("/"), 30*time.Second)
	for _, pid := range children {
		if alive(pid) {
			t.Fatalf("leftover %d of the killed instance still runs after the next start", pid)
		}
	}
	again.signal(syscall.SIGTERM)
	again.wait(30 * time.Second)
}

// TestPidsLimitStopsForkBomb: a worker that forks without end stops at
// its pids limit, and wattd keeps answering.
func TestPidsLimitStopsForkBomb(t *testing.T) {
	integration(t)
	cgroupV1(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server": map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/fork-bomb"),
			"resources": map[string]any{"pids": 64}}},
	})
	d := startWattd(t, dir, port, startOpts{})
	var r struct {
		Started int
		Stopped string
	}
	waitFor(t, 60*time.Second, "the fork bomb to stop", func() bool {
		_, body, err := get(fresh, d.url("/"))
		return err == nil && json.Unmarshal([]byte(body), &r) == nil && r.Stopped != ""
	})
	if r.Stopped != "EAGAIN" || r.Started >= 64 {
		t.Fatalf("fork bomb: started %d, stopped by %q; want EAGAIN below 64", r.Started, r.Stopped)
	}
	start := time.Now()
	if out, err := d.ctl("ps"); err != nil || !strings.Contains(out, "web") {
		t.Fatalf("ctl ps during the fork bomb: %v\n%s", err, out)
	}
	t.Logf("fork bomb stopped after %d children (%s); ctl ps answered in %s", r.Started, r.Stopped, time.Since(start).Round(time.Millisecond))
}

// TestOOMKillOfAChildIsLogged: a process of a worker's cgroup other than
// the worker (a child it started) that the OOM killer ends is logged, with
// the worker's pid; the worker serves on. It used to show only in the
// cgroup's counter.
func TestOOMKillOfAChildIsLogged(t *testing.T) {
	integration(t)
	cgroupV1(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/oom-child"), "resources": map[string]any{"memory": "160MiB"}}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	pid := d.waitReady("web", 30*time.Second).Workers[0].PID
	if code, body, err := get(fresh, d.url("/child")); err != nil || code != 200 {
		t.Fatalf("GET /child: %d %v %s", code, err, body)
	}
	d.waitOutput("the kernel's OOM killer ended a process of the worker's cgroup", 30*time.Second)
	d.waitOutput("child exited: SIGKILL", 10*time.Second)
	w := d.app("web").Workers[0]
	if w.PID != pid || w.Restarts != 0 || w.State != "ready" {
		t.Fatalf("the worker did not live on: %+v (was pid %d)", w, pid)
	}
	if !strings.Contains(d.out.String(), fmt.Sprintf(`"pid":%d`, pid)) {
		t.Errorf("the log does not name the worker's pid %d", pid)
	}
	// The worker's own exit later is not taken for an OOM kill: the
	// group's count includes the child's.
	get(fresh, d.url("/exit"))
	waitFor(t, 20*time.Second, "the worker's exit", func() bool { return d.app("web").Workers[0].Restarts > 0 })
	if w := d.app("web").Workers[0]; w.LastExit != "exit status 3" || w.OOMKills != 0 {
		t.Errorf("the worker's exit after its child's OOM kill: %q, oom kills %d", w.LastExit, w.OOMKills)
	}
	// Nor is a death by another signal right after the child's kill,
	// before wattd's next look at the count.
	pid = d.waitReady("web", 30*time.Second).Workers[0].PID
	if code, body, err := get(fresh, d.url("/child")); err != nil || code != 200 {
		t.Fatalf("GET /child: %d %v %s", code, err, body)
	}
	waitFor(t, 30*time.Second, "the second child's OOM kill", func() bool {
		return strings.Count(d.out.String(), "child exited: SIGKILL") >= 2
	})
	if err := syscall.Kill(pid, syscall.SIGABRT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the worker's death", func() bool { return d.app("web").Workers[0].Restarts > 1 })
	if w := d.app("web").Workers[0]; !strings.Contains(w.LastExit, "signal: aborted") || w.OOMKills != 0 {
		t.Errorf("the worker's SIGABRT after its child's OOM kill: %q, oom kills %d", w.LastExit, w.OOMKills)
	}
}

// TestOOMKillOfAChildOfAPromotedStandby: a standby that took a slot
// reports its child's OOM kill as the slot's worker, not as a standby.
func TestOOMKillOfAChildOfAPromotedStandby(t *testing.T) {
	integration(t)
	cgroupV1(t)
	dir := project(t, map[string]any{
		"server": map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/oom-child"), "standby": 1,
			"resources": map[string]any{"memory": "160MiB"}}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	old := d.waitReady("web", 30*time.Second).Workers[0].PID
	sb := warmStandby(t, d, "web")
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the standby in slot 0", func() bool {
		w := d.app("web").Workers[0]
		return w.PID == sb.PID && w.State == "ready"
	})
	if code, body, err := get(fresh, d.url("/child")); err != nil || code != 200 {
		t.Fatalf("GET /child: %d %v %s", code, err, body)
	}
	const warning = "the kernel's OOM killer ended a process of the worker's cgroup; the worker itself runs on"
	d.waitOutput(warning, 30*time.Second)
	for _, line := range strings.Split(d.out.String(), "\n") {
		if strings.Contains(line, warning) && (!strings.Contains(line, `"worker":0`) || strings.Contains(line, `"standby":true`) ||
			!strings.Contains(line, fmt.Sprintf(`"pid":%d`, sb.PID))) {
			t.Errorf("the warning does not name slot 0's worker, pid %d:\n%s", sb.PID, line)
		}
	}
}

// TestSameProjectFromAnotherNamespace: a second start of a running project
// from another mount or network namespace (a systemd unit with
// PrivateTmp=, PrivateNetwork=) does not see the first one's claim, but
// shares its cgroups: it is refused by the lock on the runtime's cgroup
// directory before it sweeps anything. It used to kill the first one's
// workers and, as it stopped, remove the cgroup subtree under them.
func TestSameProjectFromAnotherNamespace(t *testing.T) {
	integration(t)
	cgroupV1(t)
	if err := exec.Command("unshare", "--mount", "--net", "true").Run(); err != nil {
		t.Skipf("unshare: %v", err)
	}
	dir := plainProject(t, nil)
	first := startWattd(t, dir, freePort(t), startOpts{})
	before := first.waitReady("web", 20*time.Second)
	for _, wrap := range [][]string{{"unshare", "--mount", "--"}, {"unshare", "--net", "--"}} {
		second := startWattd(t, dir, freePort(t), startOpts{wrap: wrap})
		if code := second.wait(20 * time.Second); code != 1 {
			t.Fatalf("%v: second start: exit code %d, want 1", wrap, code)
		}
		if want := fmt.Sprintf("the runtime's cgroups belong to a running wattd: %s", ""); !strings.Contains(second.out.String(), want) ||
			!strings.Contains(second.out.String(), fmt.Sprintf("is held by pid %d", first.cmd.Process.Pid)) {
			t.Fatalf("%v: second start's error:\n%s", wrap, second.out.String())
		}
	}
	after := first.app("web")
	for i, w := range after.Workers {
		if w.PID != before.Workers[i].PID || w.Restarts != 0 || w.State != "ready" {
			t.Errorf("worker %d of the running instance: %+v, was %+v", i, w, before.Workers[i])
		}
	}
	// Its cgroups are all there: a restart makes new ones.
	if out, err := first.ctl("restart", "web"); err != nil {
		t.Fatalf("ctl restart after the refused starts: %v\n%s", err, out)
	}
}

// TestAPidsLimitTooLowForNode: a Node.js application whose pids limit is
// below the threads node needs hangs before any of its code runs. It used
// to be taken for an application that serves nothing by design (not the
// entrypoint, up at startTimeout: "ready") and left so for good. It fails
// its start instead, and the reason says the limit was hit. So does one
// whose cpus limit is too low for node to reach wattd's preload within
// startTimeout: the reason names the limit that held it back.
func TestAPidsLimitTooLowForNode(t *testing.T) {
	integration(t)
	cgroupV1(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"entrypoint":   "web",
		"startTimeout": 3000,
		"restart":      map[string]any{"initialDelay": 20, "maxDelay": 100, "maxRestarts": 1},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain")},
			map[string]any{"id": "small", "path": fixture("apps/plain"), "resources": map[string]any{"pids": 3}},
			map[string]any{"id": "slow", "path": fixture("apps/plain"), "resources": map[string]any{"cpus": 0.01}},
		},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	var small supervisor.AppStatus
	waitFor(t, 30*time.Second, "small to fail its start", func() bool {
		if _, err := d.ctl("ps"); err != nil {
			return false // not up yet
		}
		small = d.app("small")
		return small.State == "failed"
	})
	if r := small.Workers[0].LastExit; !strings.Contains(r, "no hello on the control channel") || !strings.Contains(r, "pids limit (resources.pids 3)") {
		t.Fatalf("small's last exit: %q", r)
	}
	var slow supervisor.AppStatus
	waitFor(t, 30*time.Second, "slow to fail its start", func() bool {
		slow = d.app("slow")
		return slow.State == "failed"
	})
	if r := slow.Workers[0].LastExit; !strings.Contains(r, "no hello on the control channel") || !strings.Contains(r, "cpus limit (resources.cpus 0.01) held it back") {
		t.Fatalf("slow's last exit: %q", r)
	}
	d.waitReady("web", 10*time.Second)
}

// TestFallbackWithoutCgroups: where the cgroup root cannot be written,
// wattd says so once, starts anyway, and still holds the memory limit by
// polling the worker tree's RSS (reason "memory") and still kills a
// worker's detached children.
func TestFallbackWithoutCgroups(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"cgroups":    map[string]any{"root": "/proc/wattd-not-writable"},
		"restart":    map[string]any{"initialDelay": 200, "maxDelay": 1000, "maxRestarts": 0},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("faults/orphans")},
			map[string]any{"id": "hog", "path": fixture("faults/memory-hog"), "resources": map[string]any{"memory": "200MiB"}},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	// Without cgroups to join a Node.js worker starts as itself, without
	// the exec helper: no LISTEN_PID, and WATTD_PARENT_PID names wattd.
	w := d.waitReady("web", 20*time.Second).Workers[0]
	if env := environ(t, w.PID); env[ipc.EnvParentPID] != strconv.Itoa(d.cmd.Process.Pid) || env[ipc.EnvListenPID] != "" {
		t.Fatalf("worker %d without cgroups: %s %q (wattd is %d), LISTEN_PID %q", w.PID, ipc.EnvParentPID, env[ipc.EnvParentPID], d.cmd.Process.Pid, env[ipc.EnvListenPID])
	}
	var hog string
	waitFor(t, 60*time.Second, "hog to be stopped at its limit", func() bool {
		w := d.app("hog").Workers[0]
		hog = w.LastExit
		return strings.HasPrefix(w.LastExit, "memory (") && strings.Contains(w.LastExit, "limit 200.0 MiB; no cgroup") && w.Restarts > 0
	})
	// hog climbs by 500 MiB a second; polled once a second, it was
	// stopped near 500 MiB, whatever its limit. The polls come sooner as
	// it climbs.
	var used float64
	if _, err := fmt.Sscanf(hog, "memory (%f MiB used", &used); err != nil || used > 350 {
		t.Errorf("hog stopped at %q: want it well under 350 MiB (limit 200 MiB)", hog)
	}
	if n := strings.Count(d.out.String(), "/proc/wattd-not-writable"); n != 1 {
		t.Fatalf("the fallback warning naming the root appears %d times, want once:\n%s", n, d.out.String())
	}
	children := orphans(t, d)
	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, pid := range children {
		if alive(pid) {
			t.Fatalf("detached child %d outlived the stop without cgroups", pid)
		}
	}
}

// environ is the environment process pid was started with.
func environ(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}
