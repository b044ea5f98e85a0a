package supervisor

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/config"
)

// TestReadyMessage starts two workers that speak the protocol: each slot
// becomes ready on the ready message, serves on the public address and
// on its mesh socket, shows its stats, and the runtime says it is running.
func TestReadyMessage(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", workers: 2, behaviour: "ready"})
	pids := map[int]bool{}
	for i := 0; i < 2; i++ {
		ws := tr.waitReady("web", i)
		pids[ws.PID] = true
		if !tr.logged("worker ready", map[string]any{"pid": int64(ws.PID), "how": "ready message"}) {
			t.Errorf("worker %d: no 'worker ready' log with how=ready message", i)
		}
		if ws.ListenAddr == "" || !strings.HasSuffix(tr.URL(), ws.ListenAddr) {
			t.Errorf("worker %d listens on %q, runtime URL %s", i, ws.ListenAddr, tr.URL())
		}
	}
	if len(pids) != 2 {
		t.Fatalf("want two worker processes, got %v", pids)
	}
	body, err := tr.get("/")
	if err != nil || !strings.HasPrefix(body, "pid ") || !strings.Contains(body, "app web") {
		t.Fatalf("GET /: %q, %v", body, err)
	}
	if pid, _ := strconv.Atoi(strings.Fields(body)[1]); !pids[pid] {
		t.Fatalf("answered by pid %d, not one of the workers %v", pid, pids)
	}
	// The mesh socket of each slot reaches that slot's worker.
	for i := 0; i < 2; i++ {
		s := tr.slot("web", i)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", s.meshPath)
			},
		}}
		resp, err := c.Get("http://web.plt.local/")
		if err != nil {
			t.Fatalf("mesh socket %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "pid " + strconv.Itoa(s.status().PID) + " "; !strings.HasPrefix(string(b), want) {
			t.Fatalf("mesh socket %d answered %q, want %q...", i, b, want)
		}
	}
	eventually(t, "stats to show in the status", func() bool {
		ws := tr.slot("web", 0).status()
		return ws.ELU == 0.25 && ws.HeapUsed == 4096 && ws.ActiveConns == 2 && ws.RSS > 0 && ws.Uptime > 0
	})
	eventually(t, "the mesh table to list both sockets", func() bool {
		return len(tr.Table().Apps["web"].Endpoints) == 2
	})
	st := tr.Status()
	if st.State != "running" || st.Workers != 2 || st.Ready != 2 || st.Apps != 1 || st.URL != tr.URL() {
		t.Fatalf("status %+v", st)
	}
	if !tr.logged("ready", map[string]any{"url": tr.URL()}) {
		t.Error("the runtime did not log that it is ready")
	}
	apps := tr.Apps()
	if len(apps) != 1 || apps[0].State != "running" || !apps[0].Entrypoint || apps[0].Capability != "command" || len(apps[0].Workers) != 2 {
		t.Fatalf("apps %+v", apps)
	}
}

// TestNoProtocolFallback: a program that never opens the control channel
// is taken as ready once it has stayed up for noProtocolReadyAfter, not
// before.
func TestNoProtocolFallback(t *testing.T) {
	tr := newLiveRuntime(t, nil, testApp{id: "web", behaviour: "no-protocol"})
	tr.noProtocolAfter = noProtocolReadyAfter
	begun := time.Now()
	tr.start()
	ws := tr.waitReady("web", 0)
	if took := time.Since(begun); took < noProtocolReadyAfter {
		t.Fatalf("ready after %s, before the %s fallback", took, noProtocolReadyAfter)
	}
	if !tr.logged("worker ready", map[string]any{"pid": int64(ws.PID), "how": "no control protocol; up for 1s"}) {
		t.Fatal("no 'worker ready' log naming the fallback")
	}
	if body, err := tr.get("/"); err != nil || !strings.HasPrefix(body, "pid "+strconv.Itoa(ws.PID)) {
		t.Fatalf("GET /: %q, %v", body, err)
	}
	// Stopping it skips the drain: it never said hello.
	if err := tr.stop(); err != nil {
		t.Fatal(err)
	}
	if tr.logs.FilterMessage("worker did not finish in-flight work in time").Len() != 0 {
		t.Fatal("a worker without the protocol was asked to drain")
	}
	if ws := tr.slot("web", 0).status(); ws.State != "exited" || ws.LastExit != "exit status 0" {
		t.Fatalf("after stop: %+v", ws)
	}
}

// TestStartTimeoutKillsEntrypointWorker: an entrypoint worker that never
// gets ready is killed at startTimeout and counts as a failed start; when
// it was the only app, Run ends with ErrAllFailed (and ErrStartFailed).
func TestStartTimeoutKillsEntrypointWorker(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		c.StartTimeout = time.Second
		c.Restart.MaxRestarts = 1
	}, testApp{id: "web", behaviour: "never-ready"})
	select {
	case err := <-tr.runErr:
		tr.runErr <- err
		if !errors.Is(err, ErrAllFailed) {
			t.Fatalf("Run: %v, want ErrAllFailed", err)
		}
	case <-time.After(pollFor):
		t.Fatal("Run did not end when every app failed")
	}
	s := tr.slot("web", 0)
	s.mu.Lock()
	lastExit, reason := s.lastExit, s.reason
	s.mu.Unlock()
	if lastExit != "not ready within startTimeout (1s)" {
		t.Fatalf("last exit %q", lastExit)
	}
	if !strings.Contains(reason, "crash loop: 2 exits") || !strings.Contains(reason, "startTimeout") {
		t.Fatalf("reason %q", reason)
	}
	if n := tr.logs.FilterMessage("worker not ready within startTimeout; killing it").Len(); n != 2 {
		t.Fatalf("%d workers killed for startTimeout, want 2 (one restart)", n)
	}
	runErr := <-tr.runErr
	tr.runErr <- runErr
	if !errors.Is(runErr, ErrStartFailed) {
		t.Fatal("Run's error does not say that the entrypoint could not start")
	}
	if !tr.logged("the entrypoint could not start; stopping", nil) {
		t.Fatal("no log of the runtime giving up")
	}
}

// TestStartTimeoutOtherAppTakenAsReady: an app other than the entrypoint
// that never says ready (a queue consumer) is taken as ready at
// startTimeout, and the entrypoint starts after it.
func TestStartTimeoutOtherAppTakenAsReady(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.StartTimeout = 1500 * time.Millisecond },
		testApp{id: "worker", behaviour: "never-ready"},
		testApp{id: "web", entry: true, behaviour: "ready"},
	)
	ws := tr.waitReady("worker", 0)
	if !tr.logged("worker ready", map[string]any{"pid": int64(ws.PID), "how": "startTimeout without listen"}) {
		t.Fatal("no 'worker ready' log naming startTimeout")
	}
	settledAt := tr.logs.FilterMessage("worker ready").FilterField(zap.String("app", "worker")).All()[0].Time
	web := tr.waitReady("web", 0)
	webStart := time.Now().Add(-time.Duration(web.Uptime * float64(time.Second)))
	if webStart.Before(settledAt.Add(-100 * time.Millisecond)) {
		t.Fatalf("the entrypoint started at %s, before the other app settled at %s", webStart, settledAt)
	}
	if n := len(tr.starts("worker")); n != 1 {
		t.Fatalf("%d starts of the worker app, want 1", n)
	}
}

// TestFrontedWorker: a program that listens on $PORT is ready when the
// port accepts, is reached through wattd's forwarders, and a rolling
// restart moves it to a new port.
func TestFrontedWorker(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "ready", fronted: true})
	ws := tr.waitReady("web", 0)
	if !tr.logged("worker ready", map[string]any{"pid": int64(ws.PID), "how": "port accepts"}) {
		t.Fatal("no 'worker ready' log with how=port accepts")
	}
	body, err := tr.get("/")
	if err != nil || !strings.HasPrefix(body, "pid "+strconv.Itoa(ws.PID)+" ") {
		t.Fatalf("GET / through the forwarder: %q, %v", body, err)
	}
	s := tr.slot("web", 0)
	s.sockMu.Lock()
	port := s.port
	s.sockMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), pollFor)
	defer cancel()
	if err := tr.RestartApp(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	nws := tr.waitReady("web", 0)
	if nws.PID == ws.PID {
		t.Fatal("same worker after a restart")
	}
	s.sockMu.Lock()
	newPort := s.port
	s.sockMu.Unlock()
	if newPort == port {
		t.Fatalf("replacement on the old port %d", port)
	}
	body, err = tr.get("/")
	if err != nil || !strings.HasPrefix(body, "pid "+strconv.Itoa(nws.PID)+" ") {
		t.Fatalf("GET / after the restart: %q, %v", body, err)
	}
}

// TestBadFrameNeverReady: a worker whose first frame after the handshake
// is not JSON never counts as ready; the channel's own fault handling ends
// it.
func TestBadFrameNeverReady(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		// Long enough for the bad frame to arrive on a loaded machine: a
		// worker that says hello and has not listened by startTimeout is
		// taken as ready, which is not what this test is about.
		c.StartTimeout = 10 * time.Second
		c.Restart.MaxRestarts = 1
		// The runtime keeps running: an entrypoint that cannot start would
		// stop it.
	}, testApp{id: "web", behaviour: "bad-frame"}, testApp{id: "other", entry: true, behaviour: "ready"})
	ws := tr.waitState("web", 0, StateFailed)
	if tr.logs.FilterMessage("worker ready").FilterField(zap.String("app", "web")).Len() != 0 {
		t.Fatal("a worker that sent a bad frame was taken as ready")
	}
	if ws.LastExit == "" {
		t.Fatalf("no exit recorded: %+v", ws)
	}
}

// TestSlowHelloNotTakenForSilence: a worker whose launch says it speaks
// the protocol (a Node worker with the preload) is not taken as ready by
// the no-protocol fallback when it boots slowly; it is ready on its ready
// message. Without that hint the fallback takes it after a second.
func TestSlowHelloNotTakenForSilence(t *testing.T) {
	tr := newLiveRuntime(t, nil,
		testApp{id: "web", behaviour: "hello-after:2500ms", protocol: true},
		testApp{id: "plain", behaviour: "hello-after:2500ms"},
	)
	tr.noProtocolAfter = noProtocolReadyAfter
	tr.start()
	web := tr.waitReady("web", 0)
	if !tr.logged("worker ready", map[string]any{"pid": int64(web.PID), "how": "ready message"}) {
		t.Fatal("a slow worker that speaks the protocol was taken as ready before its ready message")
	}
	plain := tr.waitReady("plain", 0)
	if !tr.logged("worker ready", map[string]any{"pid": int64(plain.PID), "how": "no control protocol; up for 1s"}) {
		t.Fatal("without the hint, a silent worker is taken as ready after a second")
	}
}
