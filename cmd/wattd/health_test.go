package main_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

// TestStuckEventLoopReplacedByHealth: a Node worker whose event loop
// blocks for good after it served (`for (;;) {}`) stops reporting stats;
// the health check finds it unhealthy and replaces it start-new-then-stop-
// old. Meanwhile the other worker serves, requests that the kernel queued
// on the stuck worker's socket are served by its replacement (none fails),
// and `ctl ps` shows the reason. With a standby worker, the standby is
// what replaces it.
func TestStuckEventLoopReplacedByHealth(t *testing.T) {
	integration(t)
	t.Run("new process", func(t *testing.T) { testStuckLoop(t, 0) })
	t.Run("standby", func(t *testing.T) { testStuckLoop(t, 1) })
}

func testStuckLoop(t *testing.T, standby int) {
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":       "web",
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"gracefulShutdown": map[string]any{"runtime": 5000, "application": 1000},
		"health":           map[string]any{"interval": 200, "gracePeriod": 500, "maxUnhealthyChecks": 3},
		"applications":     []any{map[string]any{"id": "web", "path": fixture("faults/stuck-loop"), "workers": 2, "standby": standby}},
		"logger":           map[string]any{"level": "debug"},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_STATS_INTERVAL_MS=100"}})
	waitHTTP(t, d.url("/"), 20*time.Second)
	before := d.waitReady("web", 20*time.Second)
	var sb supervisor.StandbyStatus
	if standby > 0 {
		sb = warmStandby(t, d, "web")
	}
	pids := map[int]bool{}
	for _, w := range before.Workers {
		pids[w.PID] = true
	}

	// Stick one worker, whichever the kernel hands the request to.
	stuck := stickOne(t, d)
	if !pids[stuck] {
		t.Fatalf("pid %d answered /stick; workers are %v", stuck, pids)
	}
	// Once its answer is out the loop blocks within 20 ms.
	time.Sleep(100 * time.Millisecond)

	// Load from now on: every request must succeed, the ones queued on
	// the stuck worker's socket once its replacement accepts them.
	slow := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	ok, failed, servedBy := 0, []string{}, map[int]int{}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, body, err := get(slow, d.url("/"))
				mu.Lock()
				if err == nil && code == 200 {
					ok++
					pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(body, "ok ")))
					servedBy[pid]++
				} else {
					failed = append(failed, strconv.Itoa(code)+" "+errString(err))
				}
				mu.Unlock()
			}
		}()
	}

	// The other worker serves while the stuck one is still in its slot.
	var other int
	for pid := range pids {
		if pid != stuck {
			other = pid
		}
	}
	waitFor(t, 20*time.Second, "a request served by the other worker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return servedBy[other] > 0
	})
	inSlot := false
	for _, w := range d.app("web").Workers {
		inSlot = inSlot || w.PID == stuck
	}
	if !inSlot {
		t.Log("the stuck worker was replaced before the other worker's first answer was seen")
	}

	// Replaced, with the reason in ctl ps.
	var reason string
	waitFor(t, 20*time.Second, "the stuck worker replaced", func() bool {
		a := d.app("web")
		replaced := true
		for _, w := range a.Workers {
			if w.PID == stuck || w.State != "ready" {
				replaced = false
			}
			if strings.HasPrefix(w.LastExit, "unhealthy: ") {
				reason = w.LastExit
			}
		}
		return replaced && reason != ""
	})
	if !strings.HasPrefix(reason, "unhealthy: no stats in ") || !strings.HasSuffix(reason, " for 3 checks") {
		t.Errorf("reason %q", reason)
	}
	out, err := d.ctl("ps")
	if err != nil || !strings.Contains(out, reason) {
		t.Errorf("ctl ps does not show %q:\n%s %v", reason, out, err)
	}
	waitFor(t, 10*time.Second, "the stuck process gone", func() bool { return !alive(stuck) })
	if standby > 0 {
		found := false
		for _, w := range d.app("web").Workers {
			found = found || w.PID == sb.PID
		}
		if !found || !strings.Contains(d.out.String(), "standby promoted into the slot") {
			t.Errorf("the standby %d did not take the stuck worker's slot: %+v", sb.PID, d.app("web").Workers)
		}
	}

	// A few more answers from the replacement, then stop the load.
	mu.Lock()
	n := ok
	mu.Unlock()
	waitFor(t, 10*time.Second, "more answers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ok >= n+20
	})
	cancel()
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d requests failed during the replacement (ok %d): %v", len(failed), ok, failed[:min(len(failed), 5)])
	}
	warnings := 0
	for _, e := range logEntries(d.out.String(), "worker unhealthy; replacing it") {
		if e["pid"] == float64(stuck) && e["reason"] == reason && e["level"] == pinoWarn {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings naming the stuck worker and the reason, want 1", warnings)
	}
	t.Logf("reason %q; requests ok %d, per pid %v", reason, ok, servedBy)
}

// stickOne asks the stuck-loop fixture behind d to block its event loop
// for good, and returns the pid of the worker the kernel handed it to.
func stickOne(t *testing.T, d *daemon) int {
	t.Helper()
	_, body, err := get(fresh, d.url("/stick"))
	if err != nil || !strings.HasPrefix(body, "sticking ") {
		t.Fatalf("GET /stick: %q %v", body, err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(body, "sticking ")))
	return pid
}

// slotOf returns the index of app's worker slot that pid runs in.
func (d *daemon) slotOf(app string, pid int) int {
	d.t.Helper()
	for _, w := range d.app(app).Workers {
		if w.PID == pid {
			return w.Index
		}
	}
	d.t.Fatalf("pid %d is no worker of %s", pid, app)
	return -1
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestHealthProbeOnMeshSocket: with health.path set, each Node worker is
// probed on its own mesh socket (served by the preload); the application
// whose probe answers 503 is replaced with the probe's reason, the one whose
// probe answers 200 is left alone. The application's health block adds the
// path to the runtime's timings.
func TestHealthProbeOnMeshSocket(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":       "web",
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"gracefulShutdown": map[string]any{"runtime": 5000, "application": 1000},
		"health":           map[string]any{"interval": 200, "gracePeriod": 500, "maxUnhealthyChecks": 3},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("faults/stuck-loop"), "env": map[string]any{"HEALTH_STATUS": "503"},
				"health": map[string]any{"path": "/health"}},
			map[string]any{"id": "api", "path": fixture("faults/stuck-loop"), "env": map[string]any{"HEALTH_STATUS": "200"},
				"health": map[string]any{"path": "/health", "timeout": 1000}},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	api := d.waitReady("api", 20*time.Second).Workers[0]
	w := d.waitReplaced("web", "unhealthy: ", 20*time.Second)
	if want := "unhealthy: probe GET /health: status 503 for 3 checks"; w.LastExit != want {
		t.Errorf("web: last exit %q, want %q", w.LastExit, want)
	}
	// The api worker has been probed for longer than the grace period
	// plus three checks by now; it stays through a few more checks.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if got := d.app("api").Workers[0]; got.PID != api.PID || got.Restarts != 0 {
			t.Fatalf("api worker, whose probe answers 200, was replaced: %+v (was pid %d)", got, api.PID)
		}
	}
	if web := d.app("web"); web.State != "running" {
		t.Errorf("web state %q after health replacements", web.State)
	}
}

// TestUnresponsiveWorkerReplacedAtOnce: with Watt's health timings (a check
// every 30 s after 30 s of grace, 10 failures in a row), a worker whose
// event loop is stuck, or whose process is stopped (SIGSTOP), would keep
// its share of new connections waiting for over five minutes;
// maxUnresponsive replaces it once it has sent no stats for that long.
// A worker whose inspector is open is left alone: a debugger may hold it
// at a breakpoint.
func TestUnresponsiveWorkerReplacedAtOnce(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":       "web",
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"gracefulShutdown": map[string]any{"runtime": 15000, "application": 10000},
		"health":           map[string]any{"maxUnresponsive": 1500},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("faults/stuck-loop"), "workers": 2},
			map[string]any{"id": "debugged", "path": fixture("faults/stuck-loop"), "nodeOptions": "--inspect=127.0.0.1:0",
				"env": map[string]any{"STICK_AFTER_MS": "500"}},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	d.waitReady("web", 20*time.Second)
	debugged := d.waitReady("debugged", 20*time.Second).Workers[0].PID
	debuggedReady := time.Now()

	// replaced waits until pid's slot of web runs another worker, ready,
	// with the unresponsive reason in ctl ps, and pid's process is gone.
	replaced := func(pid int, within time.Duration) {
		t.Helper()
		slot := d.slotOf("web", pid)
		var reason string
		start := time.Now()
		waitFor(t, within, "worker "+strconv.Itoa(pid)+" replaced", func() bool {
			for _, w := range d.app("web").Workers {
				if w.Index == slot {
					reason = w.LastExit
					return w.PID != pid && w.State == "ready" && reason != ""
				}
			}
			return false
		})
		t.Logf("worker %d replaced %s after it stopped: %q", pid, time.Since(start).Round(10*time.Millisecond), reason)
		if !strings.HasPrefix(reason, "unhealthy: no stats in ") || !strings.HasSuffix(reason, " (maxUnresponsive 1.5s)") {
			t.Errorf("reason %q", reason)
		}
		// It can neither drain nor run a SIGTERM handler: killed at once,
		// not after the application's 10 s of grace.
		waitFor(t, 3*time.Second, "process "+strconv.Itoa(pid)+" gone", func() bool { return !alive(pid) })
	}

	// A stuck event loop.
	stuck := stickOne(t, d)
	replaced(stuck, 10*time.Second)

	// A stopped process: the kernel still queues connections on its socket.
	var frozen int
	for _, w := range d.app("web").Workers {
		if w.PID != stuck && (frozen == 0 || w.PID < frozen) {
			frozen = w.PID
		}
	}
	if err := syscall.Kill(frozen, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(frozen, syscall.SIGCONT) })
	replaced(frozen, 10*time.Second)
	// Every new connection is answered: none waits on a dead socket.
	slow := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 40 {
		if code, _, err := get(slow, d.url("/")); code != 200 {
			t.Fatalf("request %d after the replacement: %d %v", i, code, err)
		}
	}
	for _, msg := range []string{"worker unhealthy; replacing it", "worker sends no stats; killing it without a drain"} {
		if n := len(logEntries(d.out.String(), msg)); n != 2 {
			t.Errorf("%d warnings %q, want one per replaced worker", n, msg)
		}
	}

	// The debugged app's loop stuck 500 ms after it listened; with its
	// inspector open it keeps its slot. Nothing announces that wattd
	// decided to leave it: give it twice maxUnresponsive past its last
	// possible report (the test has usually taken longer by now).
	if wait := time.Until(debuggedReady.Add(500*time.Millisecond + 3*time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	for _, w := range d.app("debugged").Workers {
		if w.PID != debugged || w.Restarts != 0 {
			t.Errorf("the worker with an open inspector was replaced: %+v (first pid %d)", w, debugged)
		}
	}
}

// TestSupervisorPauseIsNotWorkersSilence: when wattd itself is stopped (or
// frozen with its cgroup, as docker pause does), the workers' reports wait
// unread in their sockets; once it runs again it must read them, not take
// every worker for an unresponsive one and replace them all.
func TestSupervisorPauseIsNotWorkersSilence(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"health":       map[string]any{"maxUnresponsive": 1000},
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/stuck-loop"), "workers": 4}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	d.waitReady("web", 20*time.Second)
	for range 2 {
		d.signal(syscall.SIGSTOP)
		time.Sleep(3 * time.Second) // the pause: three times maxUnresponsive
		d.signal(syscall.SIGCONT)
		// Nothing announces that wattd decided to keep a worker: watch for
		// a replacement over twice maxUnresponsive and its stats period.
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			for _, w := range d.app("web").Workers {
				if w.Restarts != 0 {
					t.Fatalf("worker %d replaced after wattd's pause: %q", w.Index, w.LastExit)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// A worker that does stop is still replaced.
	stuck := stickOne(t, d)
	waitFor(t, 10*time.Second, "the stuck worker replaced", func() bool {
		for _, w := range d.app("web").Workers {
			if w.PID == stuck {
				return false
			}
		}
		return true
	})
}

// TestWorkerThatStopsAcceptingIsReplaced: a ready worker whose app closed
// its server but keeps running still sends its stats and would pass its
// checks, but the connections the kernel hands its socket wait for nobody.
// wattd sees them in the socket's accept queue and replaces the worker
// once they have waited maxUnresponsive; the replacement serves them.
func TestWorkerThatStopsAcceptingIsReplaced(t *testing.T) {
	d := startStandbyFixture(t, 1, 0, nil, map[string]any{"health": map[string]any{"maxUnresponsive": 2000}})
	first := d.waitReady("web", 30*time.Second).Workers[0]
	code, body, err := get(fresh, d.url("/close-server"))
	if err != nil || code != http.StatusOK || body != fmt.Sprintf("closing pid=%d", first.PID) {
		t.Fatalf("GET /close-server: %d %q %v", code, body, err)
	}
	// Requests that reach the closed server's socket now wait in its
	// queue; the first answer from another process comes from the
	// replacement.
	slow := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	for {
		code, body, err = get(slow, d.url("/"))
		if err != nil {
			t.Fatalf("GET / after the app closed its server: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
		}
		if body != fmt.Sprintf("pid=%d", first.PID) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the worker that closed its server still answers")
		}
	}
	took := time.Since(start)
	if code != http.StatusOK {
		t.Fatalf("GET /: %d %q", code, body)
	}
	w := d.app("web").Workers[0]
	if !strings.HasPrefix(w.LastExit, "unhealthy: ") || !strings.Contains(w.LastExit, "waiting on its http socket, none taken for") {
		t.Fatalf("slot's last exit %q, want the accept queue's verdict", w.LastExit)
	}
	t.Logf("a request to the closed server answered by the replacement after %s; reason %q", took.Round(time.Millisecond), w.LastExit)
	if took < 1500*time.Millisecond {
		t.Errorf("answered after %s, before maxUnresponsive could have passed", took)
	}
	// It still sends stats: it is drained and stopped within its grace.
	waitFor(t, 15*time.Second, "the old process gone", func() bool { return !alive(first.PID) })
}

// TestWorkerReadyWithoutListeningIsReplaced: a worker that says on its
// control channel that it serves its sockets, and never listens, is not
// believed for longer than maxUnresponsive once connections wait.
func TestWorkerReadyWithoutListeningIsReplaced(t *testing.T) {
	d := startStandbyFixture(t, 1, 0, map[string]any{"LIE_READY": "serving"}, map[string]any{"health": map[string]any{"maxUnresponsive": 1000}})
	liar := d.waitReady("web", 30*time.Second).Workers[0]
	// A connection for it to leave waiting.
	conn, err := net.Dial("tcp", d.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d.waitOutput("connection(s) waiting on its http socket, none taken for", 10*time.Second)
	waitFor(t, 10*time.Second, "the liar replaced", func() bool {
		w := d.app("web").Workers[0]
		return w.PID != liar.PID && strings.Contains(w.LastExit, "waiting on its http socket")
	})
}

// TestBusyWorkerIsNotTakenForOneThatDoesNotAccept: a worker whose handler
// holds its event loop for 600 ms while clients keep opening connections
// has one waiting in its queue at every sample, yet takes one at every
// turn of its loop: it is busy, not ignoring its socket, and keeps its
// slot.
func TestBusyWorkerIsNotTakenForOneThatDoesNotAccept(t *testing.T) {
	d := startStandbyFixture(t, 1, 0, nil, map[string]any{"health": map[string]any{"maxUnresponsive": 1000}})
	first := d.waitReady("web", 30*time.Second).Workers[0]
	// Each client as curl does it: a connection per request, the request
	// written as soon as it is open, read to the end, the next connection
	// 20 ms later (curl's start). A client quicker than that connects
	// before the worker's loop has taken the last one, and both are taken
	// together: nothing waits.
	once := func() bool {
		time.Sleep(20 * time.Millisecond)
		c, err := net.DialTimeout("tcp", d.addr(), 5*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /busy HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n"); err != nil {
			return false
		}
		b, err := io.ReadAll(c)
		return err == nil && strings.HasPrefix(string(b), "HTTP/1.1 200")
	}
	var wg sync.WaitGroup
	var served atomic.Int64
	end := time.Now().Add(4 * time.Second)
	for range 2 {
		wg.Go(func() {
			for time.Now().Before(end) {
				if once() {
					served.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if w := d.app("web").Workers[0]; w.PID != first.PID || w.Restarts != 0 {
		t.Fatalf("the busy worker %d was replaced by %d, %d restarts, last exit %q", first.PID, w.PID, w.Restarts, w.LastExit)
	}
	if served.Load() < 4 {
		t.Fatalf("%d requests served in 4 s", served.Load())
	}
	t.Logf("%d requests of 600 ms served, the worker kept", served.Load())
}

// listenFDsProject is a project whose entrypoint, "web", is one worker of
// command, a program that takes its sockets by LISTEN_FDS and does not
// speak the protocol, judged with maxUnresponsive 1 s.
func listenFDsProject(t *testing.T, port, maxUnresponsiveMs int, command ...any) string {
	t.Helper()
	return project(t, map[string]any{
		"server":  map[string]any{"hostname": "127.0.0.1", "port": port},
		"health":  map[string]any{"maxUnresponsive": maxUnresponsiveMs},
		"workers": 1,
		"applications": []any{map[string]any{
			"id": "web", "path": fixture("apps/plain"), "capability": "command", "listenFds": true,
			"command": command,
		}},
	})
}

// TestListenFDsProgramThatListensElsewhereIsReplaced: a program that does
// not speak the protocol and takes its sockets by LISTEN_FDS ("listenFds":
// true) names none of them, but must serve the first one, fd 3: for the
// entrypoint, the public socket. One that ignores LISTEN_FDS and listens
// on a port of its own would keep its slot's share of the public port's
// connections waiting, unseen; wattd judges fd 3's accept queue as it
// judges the sockets a protocol worker names, and replaces it.
func TestListenFDsProgramThatListensElsewhereIsReplaced(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := listenFDsProject(t, port, 1000, nodePath(t, testNodes[0]), "-e",
		"require('http').createServer((q, s) => s.end('elsewhere')).listen(0, '127.0.0.1')")
	d := startWattd(t, dir, port, startOpts{})
	first := d.waitReady("web", 30*time.Second).Workers[0]
	conn, err := net.Dial("tcp", d.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitFor(t, 15*time.Second, "the program that listens elsewhere replaced", func() bool {
		w := d.app("web").Workers[0]
		return w.PID != first.PID && strings.Contains(w.LastExit, "waiting on its http socket, none taken for")
	})
}

// TestListenFDsProgramThatServesOneAtATimeIsKept: a program that does not
// speak the protocol and serves fd 3 one connection at a time, each
// waiting on something else (an upstream, here a sleep) rather than
// using CPU, has a queue that need not shrink from one sample to the
// next while clients keep connecting, and is idle. It takes connections
// all along, so it is not replaced: wattd sees the connections its
// process takes from the socket. (Before, it was replaced for "none
// taken" every maxUnresponsive, and the requests in hand failed.)
func TestListenFDsProgramThatServesOneAtATimeIsKept(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	port := freePort(t)
	server := `import socket, time
s = socket.socket(fileno=3)
s.setblocking(True)
while True:
    c, _ = s.accept()
    time.sleep(0.3)
    c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
    c.close()
`
	// maxUnresponsive leaves room for a loaded machine, where a process
	// that slept may wait long for a CPU; the load lasts three times it.
	dir := listenFDsProject(t, port, 2000, "python3", "-c", server)
	d := startWattd(t, dir, port, startOpts{})
	first := d.waitReady("web", 30*time.Second).Workers[0]
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var served, failed atomic.Int64
	stop := time.Now().Add(6 * time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				resp, err := client.Get("http://" + d.addr() + "/")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				served.Add(1)
			}
		}()
	}
	wg.Wait()
	w := d.app("web").Workers[0]
	if w.PID != first.PID || w.LastExit != "" {
		t.Fatalf("the program that served one at a time was replaced: pid %d -> %d, last exit %q", first.PID, w.PID, w.LastExit)
	}
	if failed.Load() > 0 || served.Load() < 10 {
		t.Fatalf("%d requests served, %d failed", served.Load(), failed.Load())
	}
	t.Logf("%d requests of 300 ms served one at a time, the worker kept", served.Load())
}
