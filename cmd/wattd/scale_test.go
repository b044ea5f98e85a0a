package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestManyWorkersStartAndStopClean: 60 workers over 20 applications (the
// app of testdata/bench/scale; the bench's scale scenario runs 200) all
// become ready, the entrypoint serves, wattd keeps few OS threads however
// many workers it waits for, and a SIGTERM stops everything: exit 0, no
// worker left, the runtime's cgroups removed.
func TestManyWorkersStartAndStopClean(t *testing.T) {
	integration(t)
	const apps, perApp = 20, 3
	var list []any
	for i := 1; i <= apps; i++ {
		list = append(list, map[string]any{"id": fmt.Sprintf("a%02d", i), "path": fixture("bench/scale/app"), "workers": perApp})
	}
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":   "a01",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"logger":       map[string]any{"level": "warn"},
		"applications": list,
	})
	d := startWattd(t, dir, port, startOpts{})
	started := time.Now()
	// Generous: 60 Node processes start at once, and CI machines are small.
	waitFor(t, 4*time.Minute, "every worker ready", func() bool {
		out, err := d.ctl("status", "--json")
		var st struct {
			Workers int `json:"workers"`
			Ready   int `json:"readyWorkers"`
		}
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Workers == apps*perApp && st.Ready == st.Workers
	})
	t.Logf("%d workers ready after %s", apps*perApp, time.Since(started).Round(time.Millisecond))
	waitHTTP(t, d.url("/"), 30*time.Second)

	var pids []int
	for _, a := range d.ps() {
		if a.State != "running" || len(a.Workers) != perApp {
			t.Fatalf("app %s: state %s with %d workers, want running with %d", a.ID, a.State, len(a.Workers), perApp)
		}
		for _, w := range a.Workers {
			if w.State != "ready" || w.PID == 0 {
				t.Fatalf("app %s worker %d: %s pid %d", a.ID, w.Index, w.State, w.PID)
			}
			pids = append(pids, w.PID)
		}
	}
	if len(pids) != apps*perApp {
		t.Fatalf("ctl ps lists %d workers, want %d", len(pids), apps*perApp)
	}

	wattd := d.cmd.Process.Pid
	// A goroutine blocked in wait4 holds an OS thread; wattd waits for its
	// workers through pidfds instead, so its threads do not follow their
	// number.
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", wattd))
	if err != nil {
		t.Fatal(err)
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", wattd))
	t.Logf("wattd: %d threads, %d open fds for %d workers", len(tasks), len(fds), len(pids))
	if len(tasks) >= len(pids)/2 {
		t.Errorf("wattd runs %d OS threads for %d workers", len(tasks), len(pids))
	}

	name := d.runtimeName()
	cgroups := os.Geteuid() == 0 && len(runtimeCgroups(name)) > 0
	stopAt := time.Now()
	d.signal(syscall.SIGTERM)
	if code := d.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	t.Logf("stopped in %s", time.Since(stopAt).Round(time.Millisecond))
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("worker %d still runs after wattd exited", pid)
		}
	}
	if cgroups {
		if left := runtimeCgroups(name); len(left) != 0 {
			t.Errorf("worker cgroups left after the stop: %v", left)
		}
		if _, err := os.Stat("/sys/fs/cgroup/memory/wattd/" + name); err == nil {
			t.Errorf("the runtime's cgroup subtree %s is left after the stop", name)
		}
	}
}
