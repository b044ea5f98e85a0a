package main_test

// wattd under a service manager and as a container's PID 1: the sd_notify
// protocol, socket activation, orphan reaping, and what a SIGKILL leaves.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/sdnotify/sdnotifytest"
)

// activateShimEnv makes the test binary a tiny exec helper: it sets
// LISTEN_PID to its own pid, which exec keeps, and execs its arguments,
// as systemd does for a socket-activated service.
const activateShimEnv = "WATTD_TEST_ACTIVATE_SHIM"

func init() {
	if os.Getenv(activateShimEnv) != "1" || len(os.Args) < 2 {
		return
	}
	os.Unsetenv(activateShimEnv)
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	fmt.Fprintln(os.Stderr, "activation shim: exec:", err)
	os.Exit(127)
}

// TestNotifySocket: under Type=notify, wattd sends READY=1 once every app
// has a ready worker, STATUS= lines only when they change, WATCHDOG=1 at
// half of WATCHDOG_USEC, and STOPPING=1 when it stops; then it exits 0.
func TestNotifySocket(t *testing.T) {
	integration(t)
	notes := sdnotifytest.Listen(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":  map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"workers": 2,
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain")},
			map[string]any{"id": "api", "path": fixture("apps/plain")},
		},
		"entrypoint": "web",
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"NOTIFY_SOCKET=" + notes.Path, "WATCHDOG_USEC=1000000"}})
	var ready int
	waitFor(t, 30*time.Second, "READY=1", func() bool { ready = notes.Index(0, "READY=1"); return ready >= 0 })
	// Ready as soon as each app has a ready worker, like the /ready probe;
	// the last workers' readiness follows as a new status.
	if got := notes.All()[ready]; !strings.Contains(got, "STATUS=2/2 apps ready, ") {
		t.Errorf("READY=1 came with %q, want every app ready", got)
	}
	waitFor(t, 20*time.Second, "every worker ready in STATUS=", func() bool {
		return notes.Index(ready, "STATUS=2/2 apps ready, 4/4 workers ready") >= 0
	})
	if notes.Index(ready+1, "READY=1") >= 0 {
		t.Errorf("READY=1 sent twice: %q", notes.All())
	}
	// Keep-alives go on while the runtime runs: two after READY=1 are at
	// least half a second apart, so the clock is the one WATCHDOG_USEC set.
	waitFor(t, 20*time.Second, "two keep-alives after READY=1", func() bool {
		first := notes.Index(ready, "WATCHDOG=1")
		return first >= 0 && notes.Index(first+1, "WATCHDOG=1") >= 0
	})
	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	all := notes.All()
	stopping := notes.Index(ready, "STOPPING=1")
	if stopping < 0 {
		t.Fatalf("no STOPPING=1 in %q", all)
	}
	if i := notes.Index(stopping+1, "WATCHDOG=1"); i >= 0 {
		t.Errorf("a keep-alive after STOPPING=1: %q", all[i:])
	}
	var last string
	for _, n := range all {
		for _, line := range strings.Split(n, "\n") {
			if !strings.HasPrefix(line, "STATUS=") {
				continue
			}
			if line == last {
				t.Errorf("STATUS sent again unchanged: %q", line)
			}
			last = line
		}
	}
	if !strings.HasPrefix(all[0], "STATUS=0/2 apps ready") {
		t.Errorf("first notification %q, want the starting status", all[0])
	}
}

// TestNotifyStatusOnStartFailure: a wattd that cannot start says why in
// STATUS= and exits 1, never READY=1.
func TestNotifyStatusOnStartFailure(t *testing.T) {
	integration(t)
	notes := sdnotifytest.Listen(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":         map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restartOnError": false,
		"applications":   []any{map[string]any{"id": "web", "path": fixture("faults/crash-start")}},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"NOTIFY_SOCKET=" + notes.Path}})
	if code := d.wait(60 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if !strings.Contains(d.out.String(), "wattd: the entrypoint could not start: app \"web\"") {
		t.Errorf("no clear message on stderr:\n%s", d.out.String())
	}
	waitFor(t, 10*time.Second, "STATUS=failed", func() bool {
		all := notes.All()
		return len(all) > 0 && strings.HasPrefix(all[len(all)-1], "STATUS=failed: the entrypoint could not start")
	})
	if notes.Index(0, "READY=1") >= 0 {
		t.Errorf("READY=1 from a runtime that could not start: %q", notes.All())
	}
}

// TestNotifyStatusOnConfigProblem: a configuration problem, found before
// the runtime exists, also reaches the service manager as the failed
// start's status.
func TestNotifyStatusOnConfigProblem(t *testing.T) {
	integration(t)
	notes := sdnotifytest.Listen(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"bogus":        1,
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"NOTIFY_SOCKET=" + notes.Path}})
	if code := d.wait(30 * time.Second); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	waitFor(t, 10*time.Second, "STATUS=failed", func() bool {
		all := notes.All()
		return len(all) == 1 && strings.HasPrefix(all[0], "STATUS=failed: "+dir+"/watt.json:") && strings.Contains(all[0], `unknown key "bogus"`)
	})
}

// TestSocketActivation: given a listening socket (LISTEN_FDS=1,
// LISTEN_PID its own pid), wattd binds nothing public, every worker
// accepts on that socket, and connections made while no wattd runs wait
// in its queue for the next one.
func TestSocketActivation(t *testing.T) {
	integration(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr := l.Addr().String()
	configured := freePort(t) // in watt.json, and must stay unbound
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"workers":      2,
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts := startOpts{
		env:   []string{activateShimEnv + "=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=http"},
		wrap:  []string{self},
		files: []*os.File{f},
	}
	d := startWattd(t, dir, configured, opts)
	d.waitOutput(`"msg":"ready"`, 30*time.Second)
	workers := map[int]bool{}
	for _, w := range d.waitReady("web", 20*time.Second).Workers {
		workers[w.PID] = true
	}
	seen := map[int]bool{}
	waitFor(t, 20*time.Second, "both workers to answer on the passed socket", func() bool {
		// A new connection each time, so the kernel may pick either worker.
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		_, body, err := get(c, "http://"+addr+"/")
		var r struct{ PID int }
		if err == nil && json.Unmarshal([]byte(body), &r) == nil && workers[r.PID] {
			seen[r.PID] = true
		}
		return len(seen) == 2
	})
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", configured), time.Second); err == nil {
		c.Close()
		t.Fatalf("wattd bound server.port %d besides the passed socket", configured)
	}
	if out, err := d.ctl("status", "--json"); err != nil || !strings.Contains(out, addr) {
		t.Errorf("ctl status does not show the passed socket's address %s: %v\n%s", addr, err, out)
	}

	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// No wattd now: the socket is still open here, as systemd keeps it, so
	// a request waits in its queue and the next wattd answers it.
	answered := make(chan error, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}
		resp, err := c.Get("http://" + addr + "/queued")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("answered with no wattd running: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	again := startWattd(t, dir, configured, opts)
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the request queued while wattd was down: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the request queued while wattd was down was never answered")
	}
	again.signal(syscall.SIGTERM)
	if code := again.wait(30 * time.Second); code != 0 {
		t.Fatalf("second wattd: exit code %d", code)
	}
}

// TestKillNineLeavesNoWorker: wattd killed with SIGKILL takes its workers
// with it (their parent-death signal), so the port is free at once for a
// new wattd.
func TestKillNineLeavesNoWorker(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"workers":      2,
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	var pids []int
	for _, w := range d.waitReady("web", 30*time.Second).Workers {
		pids = append(pids, w.PID)
	}
	d.signal(syscall.SIGKILL)
	d.wait(10 * time.Second)
	waitFor(t, 10*time.Second, "every worker to die with wattd", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	// A plain bind, without SO_REUSEPORT: nothing holds the port.
	l, err := net.Listen("tcp", d.addr())
	if err != nil {
		t.Fatalf("port still held after the workers died: %v", err)
	}
	l.Close()
	again := startWattd(t, dir, port, startOpts{env: []string{"WATTD_RUNTIME_DIR=" + d.runDir}})
	again.waitOutput(`"msg":"ready"`, 30*time.Second)
	again.signal(syscall.SIGTERM)
	if code := again.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// children lists the children of pid, from every one of its threads.
func children(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// TestPID1InNamespace builds the image's layout without a container:
// wattd and the project where the Dockerfile puts them (under a root of
// their own), started as its ENTRYPOINT and CMD start them, as PID 1 of a
// new PID namespace and as the image's unprivileged user. An app leaves orphans that exit; wattd reaps them, so no zombie
// is left, and SIGTERM stops it with exit 0.
func TestPID1InNamespace(t *testing.T) {
	integration(t)
	if os.Geteuid() != 0 {
		t.Skip("unshare --pid needs root")
	}
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("no PID namespaces here: %v", err)
	}
	layout := dockerLayout(t)
	root := t.TempDir()
	bin := filepath.Join(root, layout.bin)
	app := filepath.Join(root, layout.project)
	web := filepath.Join(app, "web")
	for _, d := range []string{filepath.Dir(bin), web} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, wattdBin, bin, 0o755)
	for _, name := range []string{"index.js", "package.json"} {
		copyFile(t, fixture(filepath.Join("faults", "short-orphans", name)), filepath.Join(web, name), 0o644)
	}
	writeJSON(t, filepath.Join(app, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"logger":       map[string]any{"level": "debug"},
		"workers":      1,
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	// t.TempDir's directories are private; the unprivileged user must
	// reach the layout.
	for p := root; strings.HasPrefix(p, os.TempDir()+"/"); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runBase := filepath.Join(root, "run")
	if err := os.Mkdir(runBase, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(runBase, imageUID, imageUID); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	// wattd itself is PID 1: unshare forks setpriv, which execs wattd.
	d := startWattd(t, app, port, startOpts{
		bin: bin,
		env: []string{"WATTD_RUNTIME_DIR=" + runBase},
		wrap: []string{
			"unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
			"setpriv", "--reuid=" + strconv.Itoa(imageUID), "--regid=" + strconv.Itoa(imageUID), "--clear-groups", "--",
		},
	})
	var pid1 int
	waitFor(t, 10*time.Second, "wattd inside the namespace", func() bool {
		if c := children(d.cmd.Process.Pid); len(c) == 1 {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", c[0])); exe == bin {
				pid1 = c[0]
			}
		}
		return pid1 != 0
	})
	// Runs before startWattd's cleanup, which signals unshare: unshare
	// ignores SIGTERM, and setpriv's change of user cleared the
	// parent-death signal that --kill-child gave wattd.
	t.Cleanup(func() {
		_ = syscall.Kill(pid1, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(pid1, syscall.SIGKILL) // the whole namespace with it
		}
	})
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid1))
	if !regexp.MustCompile(`(?m)^NSpid:\s+\d+\s+1$`).Match(status) {
		t.Fatalf("wattd is not PID 1 of its namespace:\n%s", status)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^Uid:\s+%d\s`, imageUID)).Match(status) {
		t.Fatalf("wattd does not run as the unprivileged user:\n%s", status)
	}
	waitHTTP(t, d.url("/"), 30*time.Second)
	const spawns = 5
	for i := 0; i < spawns; i++ {
		if code, body, err := get(http.DefaultClient, d.url("/spawn")); err != nil || code != 200 {
			t.Fatalf("GET /spawn: %d %s %v", code, body, err)
		}
	}
	waitFor(t, 20*time.Second, "every orphan reaped", func() bool {
		return strings.Count(d.out.String(), "reaped an orphaned process") >= spawns
	})
	waitFor(t, 10*time.Second, "no zombie child of wattd", func() bool {
		for _, c := range children(pid1) {
			if !alive(c) { // listed as a child, but no longer running
				return false
			}
		}
		return true
	})
	// From outside the namespace, ctl gives wattd's pid as seen here, and
	// `ctl stop --wait` waits for that process, not for this namespace's
	// PID 1 (which it used to, until its timeout).
	socks, _ := filepath.Glob(filepath.Join(runBase, "*", "admin.sock"))
	if len(socks) != 1 {
		t.Fatalf("admin sockets under %s: %v", runBase, socks)
	}
	out, err := exec.Command(wattdBin, "ctl", "status", "--json", "--socket", socks[0]).CombinedOutput()
	var st struct{ PID int }
	if err != nil || json.Unmarshal(out, &st) != nil || st.PID != pid1 {
		t.Fatalf("ctl status from outside: pid %d, want %d (%v)\n%s", st.PID, pid1, err, out)
	}
	out, err = exec.Command(wattdBin, "ctl", "stop", "--wait", "--timeout", "30s", "--socket", socks[0]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "stopped") {
		t.Fatalf("ctl stop --wait from outside: %v\n%s", err, out)
	}
	if code := d.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit code %d after ctl stop", code)
	}
	if !strings.Contains(d.out.String(), `"msg":"stopped"`) {
		t.Errorf("no graceful stop in the log")
	}
}

// imageUID is the uid the namespace test runs wattd as: the Node image's
// "node" user.
const imageUID = 1000

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestNotifyReadyWithAFailedApp: an application that cannot start does
// not stop the others, so it must not keep the unit from READY=1 either;
// STATUS= names it. While it is still being tried, wattd asks systemd to
// extend the start's timeout (EXTEND_TIMEOUT_USEC), so that attempts
// longer than TimeoutStartSec in all do not get the runtime killed; after
// READY=1 it asks no more.
func TestNotifyReadyWithAFailedApp(t *testing.T) {
	integration(t)
	notes := sdnotifytest.Listen(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"entrypoint": "web",
		// Three attempts about 3 s apart: given up after more than 2 s,
		// when the first extension is asked for.
		"restart": map[string]any{"initialDelay": 3000, "maxDelay": 3000, "maxRestarts": 2},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain")},
			map[string]any{"id": "db", "path": fixture("faults/crash-start")},
		},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"NOTIFY_SOCKET=" + notes.Path}})
	var ready int
	waitFor(t, 60*time.Second, "READY=1", func() bool { ready = notes.Index(0, "READY=1"); return ready >= 0 })
	if got := notes.All()[ready]; !strings.Contains(got, "STATUS=1/2 apps ready, 1/2 workers ready; failed: db") {
		t.Errorf("READY=1 came with %q", got)
	}
	if i := notes.Index(0, "EXTEND_TIMEOUT_USEC=10000000"); i < 0 || i > ready {
		t.Errorf("no extension of the start's timeout before READY=1: %q", notes.All())
	}
	// The next extension would have come 2 s after the last: after
	// READY=1, none.
	after := time.Now()
	waitFor(t, 10*time.Second, "the extensions' period to pass", func() bool { return time.Since(after) > 3*time.Second })
	if i := notes.Index(ready, "EXTEND_TIMEOUT_USEC"); i >= 0 {
		t.Errorf("an extension after READY=1: %q", notes.All())
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestSIGUSR2RestartsEveryApp: SIGUSR2 replaces every worker of every
// application, rolling, while requests keep being answered.
func TestSIGUSR2RestartsEveryApp(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"entrypoint": "web",
		"workers":    2,
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain")},
			map[string]any{"id": "api", "path": fixture("apps/plain")},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	before := map[string][]int{}
	for _, id := range []string{"web", "api"} {
		for _, w := range d.waitReady(id, 30*time.Second).Workers {
			before[id] = append(before[id], w.PID)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan *loadResult, 1)
	go func() { results <- load(ctx, d.url("/"), 4) }()
	d.signal(syscall.SIGUSR2)
	waitFor(t, 60*time.Second, "every worker of every app replaced and ready", func() bool {
		for id, pids := range before {
			for i, w := range d.app(id).Workers {
				if w.PID == pids[i] || w.State != "ready" || alive(pids[i]) {
					return false
				}
			}
		}
		return true
	})
	cancel()
	if res := <-results; res.failed != 0 || res.refused != 0 || res.ok == 0 {
		t.Fatalf("during the restart: ok %d failed %d refused %d: %v", res.ok, res.failed, res.refused, res.errs)
	}

	// `wattd ctl restart` without an application does the same, as
	// `wattpm restart` does, and returns once every one has rolled.
	mid := map[string][]int{}
	for id := range before {
		for _, w := range d.app(id).Workers {
			mid[id] = append(mid[id], w.PID)
		}
	}
	out, err := d.ctl("restart", "--json")
	var rolled []struct{ ID string }
	if err != nil || json.Unmarshal([]byte(out), &rolled) != nil || len(rolled) != 2 {
		t.Fatalf("ctl restart: %v\n%s", err, out)
	}
	for id, pids := range mid {
		for i, w := range d.app(id).Workers {
			if w.PID == pids[i] || w.State != "ready" {
				t.Errorf("%s worker %d: pid %d (was %d), %s after ctl restart", id, i, w.PID, pids[i], w.State)
			}
		}
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
