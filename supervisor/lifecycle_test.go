package supervisor

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/config"
)

func restartCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), pollFor)
	t.Cleanup(cancel)
	return ctx
}

// TestCrashAtStartBacksOffThenFails: a worker that dies at start is
// restarted with backoff until maxRestarts, then its slot fails with the
// exit and the worker's last error line as the reason, and closes its
// socket; the rest of the runtime keeps running.
func TestCrashAtStartBacksOffThenFails(t *testing.T) {
	tr := startRuntime(t, nil,
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "bad", behaviour: "crash:3"},
	)
	ws := tr.waitState("bad", 0, StateFailed)
	if ws.Restarts != 3 || ws.PID != 0 || !strings.HasPrefix(ws.LastExit, "exit status 3; last error output: boom: crash at start") {
		t.Fatalf("failed slot %+v: want 3 restarts and the exit with the last error line", ws)
	}
	st, _ := tr.App("bad")
	if st.State != "failed" || !strings.Contains(st.Reason, "crash loop: 4 exits in a row") || !strings.Contains(st.Reason, "boom") {
		t.Fatalf("app %+v", st)
	}
	if n := len(tr.starts("bad")); n != 4 {
		t.Fatalf("%d starts, want 4", n)
	}
	if !tr.logged("restarting worker after backoff", map[string]any{"app": "bad"}) {
		t.Fatal("no backoff between the crashes")
	}
	// A failed slot's mesh socket is closed: nothing queues for it.
	if c, err := net.Dial("unix", tr.slot("bad", 0).meshPath); err == nil {
		c.Close()
		t.Fatal("the failed slot's mesh socket still accepts")
	}
	mt := tr.Table().Apps["bad"]
	if len(mt.Endpoints) != 0 || mt.State != "failed" || !strings.Contains(mt.Reason, "worker 0 failed") {
		t.Fatalf("mesh table entry %+v", mt)
	}
	st2 := tr.Status()
	if len(st2.FailedApps) != 1 || st2.FailedApps[0] != "bad" {
		t.Fatalf("status %+v", st2)
	}
	tr.waitReady("web", 0)
	if _, err := tr.get("/"); err != nil {
		t.Fatalf("the rest of the runtime stopped serving: %v", err)
	}
}

// TestCrashAfterReadyIsRestarted: a worker that crashes after it was ready
// is replaced, and the replacement serves.
func TestCrashAfterReadyIsRestarted(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "crash-after:300ms,ready"})
	eventually(t, "the crash to be recorded", func() bool {
		ws := tr.slot("web", 0).status()
		return ws.Restarts == 1 && strings.HasPrefix(ws.LastExit, "exit status 4")
	})
	// The last exit says why, as a failed start's does.
	if ws := tr.slot("web", 0).status(); ws.LastExit != "exit status 4; last error output: boom: crash after ready" {
		t.Errorf("last exit %q", ws.LastExit)
	}
	ws := tr.waitReady("web", 0)
	if !tr.logged("worker exited", map[string]any{"app": "web", "reason": "exit status 4"}) {
		t.Fatal("no log of the exit")
	}
	if body, err := tr.get("/"); err != nil || !strings.HasPrefix(body, "pid "+strconv.Itoa(ws.PID)+" ") {
		t.Fatalf("GET /: %q, %v", body, err)
	}
}

// TestAnnouncedExitIsReplacedAtOnce: a worker that says it is exiting is
// replaced then, not when its process is gone; the exit counts once, and
// the runtime's stop waits for the process it no longer counts as a worker.
func TestAnnouncedExitIsReplacedAtOnce(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "exiting-after:300ms,ready"})
	first := tr.waitReady("web", 0).PID
	var ws WorkerStatus
	eventually(t, "the replacement to be ready", func() bool {
		ws = tr.slot("web", 0).status()
		return ws.State == "ready" && ws.PID > 0 && ws.PID != first
	})
	if !alive(first) {
		t.Fatal("the replacement was ready only after the old process ended (it lingers 3 s after saying exiting)")
	}
	if ws.Restarts != 1 || !strings.HasPrefix(ws.LastExit, "exit status 5") {
		t.Fatalf("slot %+v: want one restart for exit status 5", ws)
	}
	if !tr.logged("worker exited", map[string]any{"app": "web", "reason": "exit status 5", "announced": true}) {
		t.Fatal("no log of the announced exit")
	}
	if body, err := tr.get("/"); err != nil || !strings.HasPrefix(body, "pid "+strconv.Itoa(ws.PID)+" ") {
		t.Fatalf("GET /: %q, %v", body, err)
	}
	if err := tr.stop(); err != nil {
		t.Fatal(err)
	}
	// It ended by itself: the stop waited for it rather than killing it
	// with the runtime's cgroups.
	if _, err := os.Stat(filepath.Join(tr.states["web"], "ended-"+strconv.Itoa(first))); err != nil || alive(first) {
		t.Fatalf("the runtime stopped before the process of the worker that said it was exiting had ended (%v)", err)
	}
	if ws := tr.slot("web", 0).status(); ws.Restarts != 1 {
		t.Fatalf("%d restarts after the old process ended: its exit counted twice", ws.Restarts)
	}
}

// TestFalseExitingIsKilled: a worker that says it is exiting and goes on
// running is replaced, and killed once the application's graceful
// shutdown time has passed.
func TestFalseExitingIsKilled(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.GracefulShutdown.Application = time.Second },
		testApp{id: "web", behaviour: "exiting-lie:300ms,ready"})
	first := tr.waitReady("web", 0).PID
	eventually(t, "the replacement to be ready", func() bool {
		ws := tr.slot("web", 0).status()
		return ws.State == "ready" && ws.PID > 0 && ws.PID != first
	})
	eventually(t, "the false exiter to be killed", func() bool { return !alive(first) })
	if !tr.logged("the worker said it was exiting but still runs; killing it", map[string]any{"app": "web"}) {
		t.Fatal("no log of the kill")
	}
	if ws := tr.slot("web", 0).status(); ws.Restarts != 1 || ws.State != "ready" {
		t.Fatalf("slot %+v: want one restart and the replacement serving", ws)
	}
}

// TestRestartOnErrorOff: with restartOnError false the first exit fails
// the slot.
func TestRestartOnErrorOff(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.RestartOnError.Enabled = false },
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "bad", behaviour: "crash-after:200ms"},
	)
	tr.waitState("bad", 0, StateFailed)
	st, _ := tr.App("bad")
	if !strings.Contains(st.Reason, "restartOnError is off") || len(tr.starts("bad")) != 1 {
		t.Fatalf("app %+v after %d starts", st, len(tr.starts("bad")))
	}
}

// TestStartFailure: a worker that cannot even be started (its directory
// is gone) backs off and fails like one that crashes, with the start
// error as the reason; an operator's restart reports the same error.
func TestStartFailure(t *testing.T) {
	tr := newLiveRuntime(t, nil,
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "gone", behaviour: "ready"},
	)
	gone := filepath.Join(t.TempDir(), "gone")
	sp := tr.byID["gone"].sp()
	sp.launch.Dir, sp.conf.Path = gone, gone
	tr.start()
	ws := tr.waitState("gone", 0, StateFailed)
	if !strings.HasPrefix(ws.LastExit, "start: ") || !strings.Contains(ws.LastExit, "the application's directory "+gone+" does not exist") {
		t.Fatalf("last exit %q", ws.LastExit)
	}
	// The restart is refused before a worker is started, naming the
	// directory as the start did.
	err := tr.RestartApp(restartCtx(t), "gone")
	if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `restart refused; the workers keep running: app "gone": the application's directory `+gone+" does not exist") {
		t.Fatalf("restart of an app that cannot start: %v", err)
	}
}

// TestRestartOutOfFailed: an operator's restart starts a failed slot
// again with a fresh count, and returns once its worker is ready.
func TestRestartOutOfFailed(t *testing.T) {
	tr := startRuntime(t, nil,
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "api", behaviour: "crash:3,crash:3,crash:3,crash:3,ready"},
	)
	tr.waitState("api", 0, StateFailed)
	if err := tr.RestartApp(restartCtx(t), "api"); err != nil {
		t.Fatalf("restart out of failed: %v", err)
	}
	// Ready when RestartApp returns, not some time later.
	ws := tr.slot("api", 0).status()
	if ws.State != "ready" || ws.PID == 0 {
		t.Fatalf("after the restart: %+v", ws)
	}
	st, _ := tr.App("api")
	if st.State != "running" || st.Reason != "" {
		t.Fatalf("app %+v: want running, reason cleared", st)
	}
	eventually(t, "api back in the mesh table", func() bool { return len(tr.Table().Apps["api"].Endpoints) == 1 })
}

// TestRestartOfFailingAppSaysWhy: restarting an app whose workers crash
// waits for the outcome and returns the reason, instead of reporting
// success while the app crash-loops back to failed.
func TestRestartOfFailingAppSaysWhy(t *testing.T) {
	tr := startRuntime(t, nil,
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "bad", behaviour: "crash:3"},
	)
	tr.waitState("bad", 0, StateFailed)
	err := tr.RestartApp(restartCtx(t), "bad")
	if err == nil {
		t.Fatal("restart of a crashing app reported success")
	}
	for _, want := range []string{`app "bad" worker 0: worker exited before it was ready`, "exit status 3", "boom: crash at start"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
	if errors.Is(err, ErrConflict) {
		t.Fatalf("a failed start is not a conflict: %v", err)
	}
	// The slot goes on with its restart policy and fails again.
	tr.waitState("bad", 0, StateFailed)
}

// TestRestartDuringShutdownConflicts: once the runtime stops, a restart
// is refused with an error matching ErrConflict.
func TestRestartDuringShutdownConflicts(t *testing.T) {
	tr := startRuntime(t, nil,
		testApp{id: "web", entry: true, behaviour: "drain-slow:2s"},
		testApp{id: "api", behaviour: "ready"},
	)
	tr.waitReady("web", 0)
	tr.waitReady("api", 0)
	tr.Stop()
	tr.waitState("web", 0, StateDraining)
	for _, id := range []string{"web", "api"} {
		err := tr.RestartApp(restartCtx(t), id)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "runtime is stopping") {
			t.Fatalf("restart of %s during shutdown: %v, want a conflict", id, err)
		}
	}
	if st := tr.Status(); st.State != "stopping" {
		t.Fatalf("status %+v", st)
	}
}

// TestRestartUnknownApp names the known apps.
func TestRestartUnknownApp(t *testing.T) {
	tr := newLiveRuntime(t, nil, testApp{id: "web", behaviour: "ready"}, testApp{id: "api", behaviour: "ready"})
	err := tr.RestartApp(context.Background(), "nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "known: web, api") {
		t.Fatalf("RestartApp: %v", err)
	}
	if _, err := tr.App("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("App: %v", err)
	}
	if w := tr.WatchTargets(); len(w) != 2 || w["web"].Dir == "" {
		t.Fatalf("watch targets %v", w)
	}
}

// TestWatchTargetsFollowWatch: the runtime's "watch": false leaves wattd
// dev nothing to watch; an application's own "watch" turns it off for
// that one, or gives its globs.
func TestWatchTargetsFollowWatch(t *testing.T) {
	off := newLiveRuntime(t, func(c *config.Config) { c.NoWatch = true }, testApp{id: "web", behaviour: "ready"})
	if w := off.WatchTargets(); len(w) != 0 {
		t.Errorf(`with "watch": false, watch targets %v`, w)
	}
	tr := newLiveRuntime(t, func(c *config.Config) {
		c.Applications[0].Watch = config.Watch{Off: true}
		c.Applications[1].Watch = config.Watch{Ignore: []string{"data/**"}}
	}, testApp{id: "web", behaviour: "ready"}, testApp{id: "api", behaviour: "ready"})
	w := tr.WatchTargets()
	if _, ok := w["web"]; ok || len(w) != 1 || !slices.Equal(w["api"].Ignore, []string{"data/**"}) {
		t.Errorf("watch targets %+v, want api's alone, with its ignore", w)
	}
}

// TestRollingRestart replaces each worker of a two-worker app while a
// client keeps sending requests on new connections: none fails, every
// old worker drains and is gone, the new ones serve.
func TestRollingRestart(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", workers: 2, behaviour: "ready"})
	old := []int{tr.waitReady("web", 0).PID, tr.waitReady("web", 1).PID}
	var failures, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := tr.get("/"); err != nil {
				failures.Add(1)
				t.Logf("request failed: %v", err)
			}
			done.Add(1)
		}
	}()
	err := tr.RestartApp(restartCtx(t), "web")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if failures.Load() != 0 || done.Load() == 0 {
		t.Fatalf("%d of %d requests failed during the rolling restart", failures.Load(), done.Load())
	}
	for i, pid := range old {
		ws := tr.slot("web", i).status()
		if ws.State != "ready" || ws.PID == pid || ws.PID == 0 || ws.Restarts != 1 {
			t.Fatalf("worker %d after the restart: %+v (old pid %d)", i, ws, pid)
		}
		if alive(pid) {
			t.Fatalf("old worker %d (pid %d) still runs", i, pid)
		}
	}
	// The old workers drained: no wait for the grace period.
	if tr.logs.FilterMessage("worker did not finish in-flight work in time").Len() != 0 {
		t.Fatal("an old worker's drained message was not honoured")
	}
	if n := tr.logs.FilterMessage("replacement ready; stopping the old worker").Len(); n != 2 {
		t.Fatalf("%d replacements logged, want 2", n)
	}
	// RestartAll goes through every app the same way.
	if err := tr.RestartAll(restartCtx(t)); err != nil {
		t.Fatal(err)
	}
	if ws := tr.slot("web", 1).status(); ws.Restarts != 2 {
		t.Fatalf("after RestartAll: %+v", ws)
	}
}

// TestRestartFailureKeepsOldWorker: a replacement that crashes leaves the
// old worker serving and the error says why.
func TestRestartFailureKeepsOldWorker(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "ready,crash:3"})
	before := tr.waitReady("web", 0)
	err := tr.RestartApp(restartCtx(t), "web")
	if err == nil || !strings.Contains(err.Error(), `app "web" worker 0: replacement exited before it was ready: exit status 3; last error output: boom`) {
		t.Fatalf("restart with a crashing replacement: %v", err)
	}
	after := tr.slot("web", 0).status()
	if after.PID != before.PID || after.State != "ready" || after.Restarts != 0 {
		t.Fatalf("after a failed restart: %+v, before %+v", after, before)
	}
	if body, err := tr.get("/"); err != nil || !strings.HasPrefix(body, "pid "+strconv.Itoa(before.PID)+" ") {
		t.Fatalf("GET /: %q, %v", body, err)
	}
}

// TestReplacementStartTimeout: a replacement is bound by startTimeout like
// a first worker; it is killed and the old worker keeps serving.
func TestReplacementStartTimeout(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.StartTimeout = 1500 * time.Millisecond },
		testApp{id: "web", behaviour: "ready,never-ready"})
	before := tr.waitReady("web", 0)
	began := time.Now()
	err := tr.RestartApp(restartCtx(t), "web")
	if err == nil || !strings.Contains(err.Error(), "replacement not ready within startTimeout: not ready within startTimeout (1.5s)") {
		t.Fatalf("restart with a replacement that never gets ready: %v", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("took %s", took)
	}
	starts := tr.starts("web")
	if len(starts) != 2 {
		t.Fatalf("starts %v", starts)
	}
	if pid, _ := strconv.Atoi(starts[1]); alive(pid) {
		t.Fatalf("the timed-out replacement %d still runs", pid)
	}
	if ws := tr.slot("web", 0).status(); ws.PID != before.PID || ws.State != "ready" {
		t.Fatalf("after: %+v", ws)
	}
}

// TestRestartDuringStartReplacementFails: when the replacement of a
// starting worker fails, the first one goes on starting within its own
// startTimeout, counted from its own start.
func TestRestartDuringStartReplacementFails(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.StartTimeout = 6 * time.Second },
		testApp{id: "web", behaviour: "never-ready,crash:3,ready"})
	s := tr.slot("web", 0)
	eventually(t, "the first worker to say hello", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cur != nil && closed(s.cur.Hello())
	})
	err := tr.RestartApp(restartCtx(t), "web")
	if err == nil || !strings.Contains(err.Error(), "replacement exited before it was ready") {
		t.Fatalf("restart: %v", err)
	}
	// The first worker misses its startTimeout, is killed, and the third
	// start gets ready.
	ws := tr.waitReady("web", 0)
	if ws.LastExit != "not ready within startTimeout (6s)" || len(tr.starts("web")) != 3 {
		t.Fatalf("after: %+v, starts %v", ws, tr.starts("web"))
	}
}

// TestRestartDuringStartInterruptedByStop: a restart during a start that the
// stop of the runtime interrupts is answered with a conflict, not left
// hanging.
func TestRestartDuringStartInterruptedByStop(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "never-ready,never-ready"})
	s := tr.slot("web", 0)
	eventually(t, "the first worker to say hello", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cur != nil && closed(s.cur.Hello())
	})
	errc := make(chan error, 1)
	go func() { errc <- tr.RestartApp(context.Background(), "web") }()
	eventually(t, "the replacement to start", func() bool { return len(tr.starts("web")) == 2 })
	if err := tr.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("restart interrupted by the stop: %v", err)
		}
	case <-time.After(pollFor):
		t.Fatal("the restart was never answered")
	}
	for _, line := range tr.starts("web") {
		if pid, _ := strconv.Atoi(line); alive(pid) {
			t.Fatalf("worker %d outlived the runtime", pid)
		}
	}
}

// TestStopDrainsThenTerminates: stopping waits for the worker to drain,
// then ends it with SIGTERM, well within the grace.
func TestStopDrainsThenTerminates(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "drain-slow:700ms"})
	tr.waitReady("web", 0)
	began := time.Now()
	if err := tr.stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	ws := tr.slot("web", 0).status()
	if ws.State != "exited" || ws.LastExit != "exit status 0" || ws.PID != 0 {
		t.Fatalf("after stop: %+v", ws)
	}
	if took < 700*time.Millisecond || took >= tr.cfg.GracefulShutdown.Application {
		t.Fatalf("stop took %s: want the drain (700ms), not the grace", took)
	}
	if tr.logs.FilterMessage("worker did not finish in-flight work in time").Len() != 0 {
		t.Fatal("the drained message was not honoured")
	}
	if _, err := os.Stat(tr.slot("web", 0).meshPath); !os.IsNotExist(err) {
		t.Fatalf("mesh socket left behind: %v", err)
	}
}

// TestStopKillsWorkerIgnoringSIGTERM: a worker that neither drains nor
// ends on SIGTERM is killed when gracefulShutdown.application has passed.
func TestStopKillsWorkerIgnoringSIGTERM(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.GracefulShutdown.Application = time.Second },
		testApp{id: "web", behaviour: "ignore-term"})
	tr.waitReady("web", 0)
	if err := tr.stop(); err != nil {
		t.Fatal(err)
	}
	ws := tr.slot("web", 0).status()
	if ws.LastExit != "signal: killed" {
		t.Fatalf("after stop: %+v", ws)
	}
	for _, msg := range []string{"worker did not finish in-flight work in time", "worker ignored SIGTERM; killing its process group"} {
		if tr.logs.FilterMessage(msg).Len() != 1 {
			t.Fatalf("no log %q", msg)
		}
	}
}

// TestRuntimeGraceKillsTheRest: when gracefulShutdown.runtime runs out
// before the workers' own grace, the rest are killed.
func TestRuntimeGraceKillsTheRest(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		c.GracefulShutdown.Runtime = time.Second
		c.GracefulShutdown.Application = 30 * time.Second
	}, testApp{id: "web", behaviour: "ignore-term"}, testApp{id: "api", behaviour: "ignore-term"})
	tr.waitReady("web", 0)
	tr.waitReady("api", 0)
	began := time.Now()
	if err := tr.stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("stop took %s with a 1s runtime grace", took)
	}
	if !tr.logged("graceful shutdown took longer than gracefulShutdown.runtime; killing the rest", nil) {
		t.Fatal("no log of the runtime grace running out")
	}
	for _, id := range []string{"web", "api"} {
		if ws := tr.slot(id, 0).status(); ws.LastExit != "signal: killed" {
			t.Fatalf("%s: %+v", id, ws)
		}
	}
}

// TestStopKillsGrandchildren: a worker's children go with it.
func TestStopKillsGrandchildren(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "grandchild"})
	tr.waitReady("web", 0)
	var gc int
	eventually(t, "the grandchild's pid", func() bool {
		b, err := os.ReadFile(filepath.Join(tr.states["web"], "grandchild"))
		gc, _ = strconv.Atoi(string(b))
		return err == nil && gc > 0
	})
	if !alive(gc) {
		t.Fatal("grandchild not running")
	}
	if err := tr.stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the grandchild to be gone", func() bool { return !alive(gc) })
}

// TestHistoryRecordsStatesAndReasons: a slot's history lists the states
// it went through, the exit reason where a worker went away, and the
// replacements of a rolling restart, oldest first, each with its pid.
func TestHistoryRecordsStatesAndReasons(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "api", behaviour: "crash:7,ready,ready"})
	first := tr.waitReady("api", 0)
	if err := tr.RestartApp(restartCtx(t), "api"); err != nil {
		t.Fatal(err)
	}
	ws := tr.slot("api", 0).status()
	var got []string
	for _, e := range ws.History {
		got = append(got, e.State+" "+e.Reason)
	}
	want := []string{"starting ", "backoff exit status 7; last error output: boom: crash at start", "starting ", "ready ", "replaced rolling restart"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history %q, want %q", got, want)
	}
	if h := ws.History; h[3].PID != first.PID || h[4].PID == first.PID || h[4].PID != ws.PID {
		t.Fatalf("pids in the history %+v: first worker %d, now %d", h, first.PID, ws.PID)
	}
	for i := 1; i < len(ws.History); i++ {
		if ws.History[i].At.Before(ws.History[i-1].At) {
			t.Fatalf("history not in order: %+v", ws.History)
		}
	}
}
