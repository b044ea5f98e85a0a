package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor"
)

// TestIgnoresSigtermIsKilled: a worker that ignores SIGTERM is killed once
// gracefulShutdown.application has passed, and wattd still exits 0.
func TestIgnoresSigtermIsKilled(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"gracefulShutdown": map[string]any{"runtime": 8000, "application": 1000},
		"applications":     []any{map[string]any{"id": "web", "path": fixture("faults/ignore-sigterm")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	pid := d.waitReady("web", 10*time.Second).Workers[0].PID
	start := time.Now()
	d.signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	el := time.Since(start)
	if alive(pid) {
		t.Fatalf("worker %d survived", pid)
	}
	if !strings.Contains(d.out.String(), "SIGTERM received and ignored") || !strings.Contains(d.out.String(), "killing its process group") {
		t.Fatal("log does not show the ignored SIGTERM and the kill")
	}
	if el > 6*time.Second {
		t.Fatalf("stop took %s with a 1s application grace", el)
	}
}

// TestLogFloodNeitherBlocksNorGrows: a worker writing as fast as it can
// keeps serving, wattd keeps answering, and wattd's memory stays bounded.
func TestLogFloodNeitherBlocksNorGrows(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"logger":       map[string]any{"level": "warn"}, // the test keeps wattd's output in memory
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/log-flood")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	var maxRSS uint64
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		begin := time.Now()
		if code, _, err := get(fresh, d.url("/")); err != nil || code != 200 {
			t.Fatalf("flooding worker stopped serving: %d %v", code, err)
		}
		if _, err := d.ctl("ps", "--json"); err != nil {
			t.Fatalf("ctl ps during flood: %v", err)
		}
		if el := time.Since(begin); el > 2*time.Second {
			t.Fatalf("request + ctl ps took %s during the flood", el)
		}
		if r := rssKB(d.cmd.Process.Pid); r > maxRSS {
			maxRSS = r
		}
	}
	if maxRSS > 150*1024 {
		t.Fatalf("wattd RSS grew to %d KiB under a log flood", maxRSS)
	}
	t.Logf("wattd max RSS under flood: %d KiB", maxRSS)
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func rssKB(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// TestCtlRestartIsRolling: `wattd ctl restart web` replaces every worker
// while load runs, with no failed or refused request.
func TestCtlRestartIsRolling(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/express"), "workers": 2}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	ok := d.rollingRestartUnderLoad("web", false)
	t.Logf("rolling restart under load: %d requests ok, 0 failed", ok)
	if out, err := d.ctl("restart", "nope"); err == nil || !strings.Contains(out, "web") {
		t.Fatalf("restart of an unknown app should fail naming the known ones: %v\n%s", err, out)
	}
}

// TestCrashDuringRollingRestartIsRecorded: a worker killed while its
// replacement starts (a rolling restart) is logged, kept as the slot's
// last exit and in its history, and counted by its kind, as the same kill
// outside a restart is; the replacement's adoption hid it.
func TestCrashDuringRollingRestartIsRecorded(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/burn"),
			"env": map[string]any{"START_DELAY_MS": "1500"}}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	old := d.waitReady("web", 30*time.Second).Workers[0].PID
	restarted := make(chan error, 1)
	go func() {
		out, err := d.ctl("restart", "web")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		restarted <- err
	}()
	d.waitOutput(`"msg":"rolling restart requested"`, 10*time.Second)
	// The replacement starting shows under its slot (ctl ps), beside the
	// worker it replaces.
	waitFor(t, 10*time.Second, "ctl ps to show the replacement starting", func() bool {
		out, err := d.ctl("ps", "--json")
		var apps []supervisor.AppStatus
		if err != nil || json.Unmarshal([]byte(out), &apps) != nil || len(apps) == 0 {
			return false
		}
		w := apps[0].Workers[0]
		return w.PID == old && w.Replacement != nil && w.Replacement.PID > 0 && w.Replacement.PID != old && w.Replacement.State == "starting"
	})
	if out, err := d.ctl("ps"); err != nil || !regexp.MustCompile(`(?m)^web\*?\s+0\s+\d+\s+starting`).MatchString(out) {
		t.Errorf("ctl ps during the restart shows no replacement starting: %v\n%s", err, out)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-restarted; err != nil {
		t.Fatalf("ctl restart: %v", err)
	}
	d.waitOutput(fmt.Sprintf(`"msg":"worker exited","worker":0,"reason":"signal: killed","while":"its replacement started","pid":%d`, old), 10*time.Second)
	w := d.app("web").Workers[0]
	if w.PID == old || w.LastExit != "signal: killed" || w.RestartsBy["signal"] != 1 || w.RestartsBy["rolling_restart"] != 0 {
		t.Errorf("after a kill during the restart: pid %d (old %d), lastExit %q, restartsBy %v", w.PID, old, w.LastExit, w.RestartsBy)
	}
	if !slices.ContainsFunc(w.History, func(e supervisor.Event) bool {
		return e.State == "exited" && e.PID == old && e.Reason == "signal: killed"
	}) {
		t.Errorf("history lacks the kill: %+v", w.History)
	}
}

// TestRollingRestartKeepsKeepAliveRequests: kept-alive connections under
// load lose no request through two rolling restarts of a 2-worker app, on
// every node under test. A draining worker must answer each connection's
// next request with "Connection: close" and leave an idle one open long
// enough for a client that is about to send to do so; closing idle
// connections at once loses the requests racing the close.
func TestRollingRestartKeepsKeepAliveRequests(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		t.Run(nodeVersion(t, node), func(t *testing.T) {
			port := freePort(t)
			dir := project(t, map[string]any{
				"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"applications": []any{map[string]any{"id": "web", "path": fixture("apps/express"), "workers": 2}},
			})
			d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node}})
			waitHTTP(t, d.url("/"), 20*time.Second)
			d.waitReady("web", 10*time.Second)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var res *loadResult
			done := make(chan struct{})
			go func() { defer close(done); res = keepAliveLoad(ctx, d.addr(), 16) }()
			for i := range 2 {
				if out, err := d.ctl("restart", "web"); err != nil {
					t.Fatalf("restart %d: %v\n%s", i+1, err, out)
				}
			}
			cancel()
			<-done
			t.Logf("two rolling restarts under keep-alive load: ok %d failed %d refused %d", res.ok, res.failed, res.refused)
			if res.failed != 0 || res.refused != 0 || res.ok == 0 {
				t.Fatalf("requests lost: ok %d failed %d refused %d: %v", res.ok, res.failed, res.refused, res.errs)
			}
		})
	}
}

// TestStopKeepsKeepAliveRequests: a graceful stop under keep-alive load
// answers every request sent on a kept-alive connection (the last ones with
// "Connection: close") instead of closing connections under them. What
// comes after, a new connection that is refused, or reset because it
// was still queued when the last worker closed the socket, is what a stop
// means and is not counted.
func TestStopKeepsKeepAliveRequests(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 2}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	d.waitReady("web", 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var res *loadResult
	done := make(chan struct{})
	go func() { defer close(done); res = keepAliveLoad(ctx, d.addr(), 16) }()
	// Let every connection get past its first request.
	time.Sleep(500 * time.Millisecond)
	d.signal(syscall.SIGTERM)
	code := d.wait(20 * time.Second)
	cancel()
	<-done
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	t.Logf("stop under keep-alive load: ok %d, failed on kept-alive connections %d, other failures %d, refused %d",
		res.ok, res.failedKeptAlive, res.failed-res.failedKeptAlive, res.refused)
	if res.failedKeptAlive != 0 || res.ok == 0 {
		t.Fatalf("requests on kept-alive connections lost at stop: ok %d failed %d: %v", res.ok, res.failedKeptAlive, res.errs)
	}
}

// TestCtlFindsRuntimeAndStops: ctl finds the runtime from a subdirectory of
// the project, status and ps print tables, stop stops.
func TestCtlFindsRuntimeAndStops(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	})
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 20*time.Second)
	d.dir = sub
	out, err := d.ctl("ps")
	if err != nil || !strings.Contains(out, "APP") || !strings.Contains(out, "web") || !strings.Contains(out, "ready") {
		t.Fatalf("ctl ps from a subdirectory: %v\n%s", err, out)
	}
	out, err = d.ctl("status")
	if err != nil || !strings.Contains(out, dir) {
		t.Fatalf("ctl status: %v\n%s", err, out)
	}
	// --wait returns once wattd has exited, as systemd's ExecStop= needs.
	if out, err := d.ctl("stop", "--wait"); err != nil || strings.TrimSpace(out) != "stopped" {
		t.Fatalf("ctl stop --wait: %v\n%s", err, out)
	}
	if alive(d.cmd.Process.Pid) {
		t.Fatal("ctl stop --wait returned while wattd runs")
	}
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	entries, _ := os.ReadDir(d.runDir)
	if len(entries) != 0 {
		t.Fatalf("runtime directory not cleaned up: %v", entries)
	}
	if out, err := d.ctl("ps"); err == nil || !strings.Contains(strings.ToLower(out), "no") {
		t.Fatalf("ctl ps with nothing running should fail clearly: %v\n%s", err, out)
	}
}

// TestBadConfigExitsBeforeStarting: a wrong watt.json names the file, the
// JSON path, what was expected and a suggestion, exits 2, starts nothing.
func TestBadConfigExitsBeforeStarting(t *testing.T) {
	integration(t)
	cases := []struct {
		name string
		cfg  map[string]any
		want []string
	}{
		{"misspelt key", map[string]any{
			"entrypoint":   "web",
			"server":       map[string]any{"prot": 3000},
			"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
		}, []string{"watt.json", "/server/prot", `did you mean "port"`}},
		{"bad entrypoint", map[string]any{
			"entrypoint":   "wbe",
			"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
		}, []string{"/entrypoint", `"wbe"`, "web"}},
		{"wrong type", map[string]any{
			"server":       map[string]any{"port": "abc"},
			"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
		}, []string{"/server/port", "abc"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := project(t, c.cfg)
			cmd := exec.Command(wattdBin, "start", dir)
			cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			var code int
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != 2 {
				t.Fatalf("exit code %d (err %v), want 2\n%s", code, err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("error output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "starting") {
				t.Errorf("something started:\n%s", out)
			}
		})
	}
}

// TestBackoffShowsTheNextStart: a worker in back-off shows when its next
// start comes (ctl ps: "backoff (3.9s)", --json retryInSeconds), and an
// application none of whose workers is ready at the moment is "down", not
// "running".
func TestBackoffShowsTheNextStart(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"server": map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		// resetAfter: a loaded machine may take over the default second
		// to start a worker, and then an exit would not be in a row.
		"restart":      map[string]any{"initialDelay": 4000, "maxDelay": 8000, "resetAfter": 60000},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 1}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	first := d.waitReady("web", 20*time.Second).Workers[0].PID
	// The first restart in a row is immediate, the second waits 4 s.
	get(fresh, d.url("/exit"))
	waitFor(t, 20*time.Second, "a new worker", func() bool {
		w := d.app("web").Workers[0]
		return w.State == "ready" && w.PID != 0 && w.PID != first
	})
	get(fresh, d.url("/exit"))
	var a supervisor.AppStatus
	waitFor(t, 10*time.Second, "the back-off", func() bool {
		a = d.app("web")
		return a.Workers[0].State == "backoff"
	})
	// 4 s, with the policy's ±20% jitter.
	if r := a.Workers[0].RetryIn; r <= 0 || r > 4.8 {
		t.Errorf("retryInSeconds %v, want within the 4 s back-off", r)
	}
	if a.State != "down" {
		t.Errorf("app state %q with its only worker in back-off, want down", a.State)
	}
	out, err := d.ctl("ps")
	if err != nil || !regexp.MustCompile(`backoff \([0-4]\.\ds\)`).MatchString(out) {
		t.Errorf("ctl ps: %v\n%s", err, out)
	}
	d.waitReady("web", 20*time.Second)
	if s := d.app("web").State; s != "running" {
		t.Errorf("app state %q once its worker is ready again", s)
	}
}

// TestTmpfilesCleaningSparesTheRuntimeDirectory: systemd-tmpfiles ages out
// files under /tmp, where a user without XDG_RUNTIME_DIR has wattd's runtime
// directories, and would take a long-running runtime's Node preload and
// runtime.json with it: every later worker start would then fail. wattd
// holds a shared flock on its runtime directory, which tmpfiles honours by
// skipping it. The lock is checked here always; where systemd-tmpfiles is
// installed, a real cleaning with age 0 runs too, and a worker killed
// afterwards must come back.
func TestTmpfilesCleaningSparesTheRuntimeDirectory(t *testing.T) {
	integration(t)
	d := startWattd(t, plainProject(t, nil), freePort(t), startOpts{})
	before := d.waitReady("web", 30*time.Second)
	rtDir := filepath.Dir(d.adminSocket())
	f, err := os.Open(rtDir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// What tmpfiles tries before it descends into a directory.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("exclusive flock on the runtime directory %s: %v, want EWOULDBLOCK (wattd holds a shared one)", rtDir, err)
	}

	tmpfiles, err := exec.LookPath("systemd-tmpfiles")
	if err != nil {
		t.Log("systemd-tmpfiles is not installed; checked the lock only")
		return
	}
	conf := filepath.Join(t.TempDir(), "wattd-test.conf")
	if err := os.WriteFile(conf, []byte("e "+d.runDir+" - - - 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tmpfiles, "--clean", conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles --clean: %v\n%s", err, out)
	}
	for _, name := range []string{"runtime.json", "runtime.lock", "admin.sock"} {
		if _, err := os.Stat(filepath.Join(rtDir, name)); err != nil {
			t.Errorf("after systemd-tmpfiles --clean: %v", err)
		}
	}
	old := before.Workers[0].PID
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the killed worker's replacement to be ready", func() bool {
		w := d.app("web").Workers[0]
		return w.PID != 0 && w.PID != old && w.State == "ready"
	})
}

// TestNodeOptionsInspectWarned: NODE_OPTIONS=--inspect opens the inspector
// in every worker on the same port, and every worker but the first logs
// that the address is in use. wattd says so once, naming the option and
// its own --inspect, which gives each worker a port; the app still serves.
func TestNodeOptionsInspectWarned(t *testing.T) {
	integration(t)
	opt := fmt.Sprintf("--inspect=127.0.0.1:%d", freePort(t))
	d := startWattd(t, plainProject(t, nil), freePort(t), startOpts{env: []string{"NODE_OPTIONS=" + opt}})
	d.waitReady("web", 30*time.Second)
	out := d.out.String()
	if n := strings.Count(out, "NODE_OPTIONS opens the inspector in every worker"); n != 1 || !strings.Contains(out, `"option":"`+opt+`"`) {
		t.Errorf("want one warning naming %s:\n%s", opt, out)
	}
}

// TestRemovedRuntimeDirectoryIsMadeAgain: a runtime directory removed
// while wattd runs (by hand, or by a cleaner that ignores its lock) takes
// the Node.js preload, runtime.json and the sockets' names with it. wattd
// makes it again when a worker start next needs it, says so once naming
// the path, and the killed worker's replacement starts; `wattd ctl` finds
// the runtime again and the mesh still reaches the other application.
func TestRemovedRuntimeDirectoryIsMadeAgain(t *testing.T) {
	integration(t)
	cfg := map[string]any{
		"entrypoint": "caller",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "caller", "path": fixture("apps/caller")},
			map[string]any{"id": "plain", "path": fixture("apps/plain"), "workers": 2},
		},
	}
	d := startWattd(t, project(t, cfg), freePort(t), startOpts{})
	waitHTTP(t, d.url("/env"), 30*time.Second)
	before := d.waitReady("plain", 30*time.Second)
	rtDir := filepath.Dir(d.adminSocket())
	if err := os.RemoveAll(rtDir); err != nil {
		t.Fatal(err)
	}
	old := before.Workers[0].PID
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the killed worker's replacement to be ready", func() bool {
		out, err := d.ctl("ps", "--json")
		if err != nil {
			return false
		}
		var apps []supervisor.AppStatus
		if json.Unmarshal([]byte(out), &apps) != nil {
			return false
		}
		for _, a := range apps {
			if a.ID == "plain" {
				w := a.Workers[0]
				return w.PID != 0 && w.PID != old && w.State == "ready"
			}
		}
		return false
	})
	for _, name := range []string{"runtime.json", "runtime.lock", "admin.sock", "proxy.sock"} {
		if _, err := os.Stat(filepath.Join(rtDir, name)); err != nil {
			t.Errorf("after the runtime directory was made again: %v", err)
		}
	}
	if out, err := d.ctl("ps"); err != nil {
		t.Errorf("ctl ps: %v\n%s", err, out)
	}
	for range 10 {
		if r := call(t, d, "/fetch", "plain", "/hello"); r.Status != 200 || !strings.Contains(r.Body, `"app":"plain"`) {
			t.Fatalf("plain.plt.local after the runtime directory was made again: %+v", r)
		}
	}
	out := d.out.String()
	if n := strings.Count(out, "runtime directory was removed while wattd runs; made it again"); n != 1 || !strings.Contains(out, `"path":"`+rtDir+`"`) {
		t.Errorf("want one warning naming %s, got %d:\n%s", rtDir, n, out)
	}
}

// TestWorkersStartAfterTheBinaryIsReplaced: a running wattd whose binary
// file is replaced (a package upgrade, a deploy) or removed still starts
// its workers, through its own running binary: a worker killed afterwards
// is replaced and ready again, and nothing runs the file now at the path.
func TestWorkersStartAfterTheBinaryIsReplaced(t *testing.T) {
	integration(t)
	bin := filepath.Join(t.TempDir(), "wattd")
	copyWattd(t, bin)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 1}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{bin: bin})
	old := d.waitReady("web", 20*time.Second).Workers[0].PID
	// Another program at the path, written as an upgrade writes it: a new
	// file renamed over the old one.
	next := bin + ".new"
	if err := os.WriteFile(next, []byte("#!/bin/sh\necho 'the replaced binary ran' >&2\nexit 97\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a new worker, ready", func() bool {
		a := d.app("web")
		return len(a.Workers) == 1 && a.Workers[0].PID != old && a.Workers[0].State == "ready"
	})
	// And with no file at all.
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	second := d.app("web").Workers[0].PID
	if err := syscall.Kill(second, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a new worker after the binary was removed, ready", func() bool {
		a := d.app("web")
		return len(a.Workers) == 1 && a.Workers[0].PID != second && a.Workers[0].State == "ready"
	})
	if strings.Contains(d.out.String(), "the replaced binary ran") {
		t.Error("a worker was started through the file now at wattd's path")
	}
}
