package supervisor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wattd/wattd/capabilities"
	_ "github.com/wattd/wattd/capabilities/command" // the test workers are "command" apps
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/rundir"
)

// pollFor bounds every wait in these tests: generous, because the machine
// running them may be loaded; a passing test never waits for it.
const pollFor = 20 * time.Second

// runtimeSeq numbers the test runtimes of this process.
var runtimeSeq atomic.Int64

// testApp is one application of a test runtime, played by the test binary.
type testApp struct {
	id        string
	entry     bool
	workers   int    // 0 means 1
	behaviour string // envTestWorker: behaviours of successive workers
	fronted   bool   // listen on $PORT behind wattd's forwarders
	protocol  bool   // the launch says the worker speaks the protocol
}

// liveRuntime is a real Runtime, built by New from a config and run by
// Run, whose workers are this test binary.
type liveRuntime struct {
	*Runtime
	t      *testing.T
	logs   *observer.ObservedLogs
	states map[string]string // app id → its workers' state directory
	cancel context.CancelFunc
	runErr chan error
}

// newLiveRuntime builds a runtime for apps with short test timings;
// tweak adjusts the config before New. The first app is the entrypoint
// unless one says entry.
func newLiveRuntime(t *testing.T, tweak func(*config.Config), apps ...testApp) *liveRuntime {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := &config.Config{
		File:               filepath.Join(dir, "watt.json"),
		Dir:                dir,
		Server:             config.Server{Hostname: "127.0.0.1"},
		RestartOnError:     config.RestartOnError{Enabled: true},
		GracefulShutdown:   config.GracefulShutdown{Runtime: 15 * time.Second, Application: 5 * time.Second},
		StartTimeout:       15 * time.Second,
		ApplicationTimeout: 5 * time.Second,
		Restart: config.RestartPolicy{
			InitialDelay: 20 * time.Millisecond,
			MaxDelay:     100 * time.Millisecond,
			ResetAfter:   time.Second,
			MaxRestarts:  3,
		},
	}
	tr := &liveRuntime{t: t, states: map[string]string{}, runErr: make(chan error, 1)}
	for _, a := range apps {
		state := filepath.Join(dir, "state-"+a.id)
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		tr.states[a.id] = state
		workers := a.workers
		if workers == 0 {
			workers = 1
		}
		cfg.Applications = append(cfg.Applications, config.Application{
			ID:         a.id,
			Path:       dir,
			Workers:    workers,
			Capability: "command",
			Command:    []string{exe},
			ListenFDs:  !a.fronted,
			Env:        map[string]string{envTestWorker: a.behaviour, envTestState: state},
		})
		if a.entry {
			cfg.Entrypoint = a.id
		}
	}
	if cfg.Entrypoint == "" {
		cfg.Entrypoint = apps[0].id
	}
	if tweak != nil {
		tweak(cfg)
	}
	// The directory's name also names the runtime's cgroups, and opening
	// them sweeps an earlier runtime of the same name: one name per runtime.
	rd := &rundir.Dir{Path: filepath.Join(dir, fmt.Sprintf("run%d-%d", os.Getpid(), runtimeSeq.Add(1)))}
	if err := os.MkdirAll(filepath.Join(rd.Path, "mesh"), 0o700); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	rt, err := New(Options{Config: cfg, Logger: zap.New(core), RunDir: rd, Version: "test", Mode: capabilities.Production})
	if err != nil {
		t.Fatal(err)
	}
	// A worker of a race-enabled test binary on a loaded machine may say
	// hello later than the real fallback; tests of the fallback set it.
	rt.noProtocolAfter = 5 * time.Second
	for _, a := range apps {
		rt.byID[a.id].sp().launch.Protocol = a.protocol
	}
	tr.Runtime, tr.logs = rt, logs
	t.Cleanup(func() {
		if tr.cancel == nil {
			rt.Close() // never run: release what New made
		}
		// Whatever the test did, the runtime's cgroups are gone with it.
		for ctrl, dir := range rt.cgroups.Dirs() {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("cgroup %s of the runtime left behind (%s)", dir, ctrl)
			}
		}
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("%s %s %s %v", e.Time.Format("15:04:05.000"), e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return tr
}

// start runs the runtime until the test ends.
func (tr *liveRuntime) start() *liveRuntime {
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	go func() { tr.runErr <- tr.Run(ctx) }()
	tr.t.Cleanup(func() {
		cancel()
		select {
		case <-tr.runErr:
		case <-time.After(pollFor + tr.cfg.GracefulShutdown.Runtime):
			tr.t.Error("Run did not return after the test")
		}
	})
	return tr
}

// startRuntime is newLiveRuntime followed by start.
func startRuntime(t *testing.T, tweak func(*config.Config), apps ...testApp) *liveRuntime {
	t.Helper()
	return newLiveRuntime(t, tweak, apps...).start()
}

// stop cancels Run and returns its result.
func (tr *liveRuntime) stop() error {
	tr.t.Helper()
	tr.cancel()
	select {
	case err := <-tr.runErr:
		tr.runErr <- err // for the cleanup
		return err
	case <-time.After(pollFor + tr.cfg.GracefulShutdown.Runtime):
		tr.t.Fatal("Run did not return")
		return nil
	}
}

func (tr *liveRuntime) slot(app string, i int) *slot {
	tr.t.Helper()
	a, ok := tr.byID[app]
	if !ok || i >= len(a.slots) {
		tr.t.Fatalf("no slot %s/%d", app, i)
	}
	return a.slots[i]
}

func (tr *liveRuntime) appState(id string) string {
	st, err := tr.App(id)
	if err != nil {
		tr.t.Fatal(err)
	}
	return st.State
}

// waitState polls until the slot is in want.
func (tr *liveRuntime) waitState(app string, i int, want State) WorkerStatus {
	tr.t.Helper()
	s := tr.slot(app, i)
	eventually(tr.t, app+" worker "+want.String(), func() bool { return s.getState() == want })
	return s.status()
}

// waitReady polls until the slot's worker is ready and has a pid.
func (tr *liveRuntime) waitReady(app string, i int) WorkerStatus {
	tr.t.Helper()
	s := tr.slot(app, i)
	var ws WorkerStatus
	eventually(tr.t, app+" worker ready", func() bool {
		ws = s.status()
		return ws.State == "ready" && ws.PID > 0
	})
	return ws
}

// get fetches path from the entrypoint's public address.
func (tr *liveRuntime) get(path string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return getBody(c, tr.URL()+path)
}

// getBody GETs url with c and returns the body.
func getBody(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// byPID is how a test worker's answer begins.
func byPID(pid int) string { return "pid " + strconv.Itoa(pid) + " " }

// logged reports whether a log entry with msg was written whose fields
// include every key/value in want.
func (tr *liveRuntime) logged(msg string, want map[string]any) bool {
	for _, e := range tr.logs.FilterMessage(msg).All() {
		m := e.ContextMap()
		ok := true
		for k, v := range want {
			if m[k] != v {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// starts returns the pids of the workers an app started, in order.
func (tr *liveRuntime) starts(app string) []string {
	return readLines(filepath.Join(tr.states[app], "starts"))
}

// eventually polls cond until it holds or pollFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", pollFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether a process exists (a zombie counts as gone: it
// no longer runs).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
