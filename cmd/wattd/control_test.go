package main_test

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

// The fault line wattd logs, once, for a worker that broke the protocol.
const faultMsg = "control channel: protocol violation; killing the worker"

// badFrameApp is an application running testdata/faults/bad-frame/worker.js
// with the given fault, once (its replacement behaves).
func badFrameApp(t *testing.T, id, fault, at, onceDir string) map[string]any {
	t.Helper()
	env := map[string]any{"FAULT": fault, "FAULT_AT": at}
	if onceDir != "" {
		env["FAULT_ONCE"] = filepath.Join(onceDir, id)
	}
	return map[string]any{
		"id":         id,
		"path":       fixture("faults/bad-frame"),
		"capability": "command",
		"command":    []any{nodePath(t, testNodes[0]), "worker.js"},
		"listenFds":  true,
		"env":        env,
	}
}

// pino's numbers for the levels, as wattd's JSON lines carry them.
const (
	pinoTrace = 10.0
	pinoDebug = 20.0
	pinoInfo  = 30.0
	pinoWarn  = 40.0
	pinoError = 50.0
	pinoFatal = 60.0
)

// logEntries returns wattd's JSON log lines whose msg is msg.
func logEntries(out, msg string) []map[string]any {
	var found []map[string]any
	for _, line := range strings.Split(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == msg {
			found = append(found, e)
		}
	}
	return found
}

// waitReplaced waits until app's worker 0 is ready again after an exit
// whose reason contains want, and returns its status.
func (d *daemon) waitReplaced(app, want string, timeout time.Duration) supervisor.WorkerStatus {
	d.t.Helper()
	var w supervisor.WorkerStatus
	waitFor(d.t, timeout, app+" restarted after "+strconv.Quote(want), func() bool {
		out, err := d.ctl("ps", "--json") // fails until the admin socket is up
		var apps []supervisor.AppStatus
		if err != nil || json.Unmarshal([]byte(out), &apps) != nil {
			return false
		}
		for _, a := range apps {
			if a.ID == app && len(a.Workers) > 0 {
				w = a.Workers[0]
				return w.State == "ready" && w.PID != 0 && w.Restarts >= 1 && strings.Contains(w.LastExit, want)
			}
		}
		return false
	})
	return w
}

// checkOneFaultLine requires exactly one fault line for app, naming app,
// worker and the fault.
func (d *daemon) checkOneFaultLine(app, fault string) {
	d.t.Helper()
	var mine []map[string]any
	for _, e := range logEntries(d.out.String(), faultMsg) {
		if e["name"] == app {
			mine = append(mine, e)
		}
	}
	if len(mine) != 1 {
		d.t.Fatalf("%d fault lines for %s, want 1: %v", len(mine), app, mine)
	}
	e := mine[0]
	if e["worker"] != float64(0) || !strings.Contains(e["fault"].(string), fault) || e["level"] != pinoError {
		d.t.Fatalf("fault line for %s: %v", app, e)
	}
}

// TestControlFaultAfterReady: a ready worker that sends an oversized,
// malformed or typeless frame, or closes its channel inside a frame, is
// logged once, killed and replaced, with the fault as its exit reason; a
// worker that never writes to its channel, or closes it between frames, is
// left alone; and stopping afterwards does not wait for drains that can
// never be answered.
func TestControlFaultAfterReady(t *testing.T) {
	integration(t)
	once := t.TempDir()
	faults := []struct{ app, fault, reason string }{
		{"oversize", "oversize", "control channel: bad frame: too large: 2097152 bytes"},
		{"malformed", "malformed", "control channel: bad frame: not a JSON message"},
		{"typeless", "typeless", `control channel: bad frame: no "type"`},
		{"cut", "cut", "control channel: channel closed inside a frame"},
	}
	apps := []any{
		badFrameApp(t, "good", "none", "", ""),
		badFrameApp(t, "plain", "silent", "", ""),
		badFrameApp(t, "hangup", "hangup", "", ""),
	}
	for _, f := range faults {
		apps = append(apps, badFrameApp(t, f.app, f.fault, "ready", once))
	}
	const grace = 8 * time.Second
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":       "good",
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"gracefulShutdown": map[string]any{"runtime": 20000, "application": grace.Milliseconds()},
		"applications":     apps,
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	for _, f := range faults {
		w := d.waitReplaced(f.app, f.reason, 20*time.Second)
		d.checkOneFaultLine(f.app, strings.TrimPrefix(f.reason, "control channel: "))
		if out, err := d.ctl("inject", f.app, "/"); err != nil || !strings.Contains(out, "bad-frame none") {
			t.Fatalf("%s replacement (pid %d) does not serve: %v\n%s", f.app, w.PID, err, out)
		}
		if out, _ := d.ctl("ps"); !strings.Contains(out, "control channel: ") {
			t.Fatalf("ctl ps does not show the exit reason:\n%s", out)
		}
	}
	for _, id := range []string{"good", "plain", "hangup"} {
		if w := d.app(id).Workers[0]; w.State != "ready" || w.Restarts != 0 {
			t.Fatalf("%s: %+v", id, w)
		}
	}
	if n := len(logEntries(d.out.String(), faultMsg)); n != len(faults) {
		t.Fatalf("%d fault lines, want %d", n, len(faults))
	}

	start := time.Now()
	if out, err := d.ctl("stop"); err != nil {
		t.Fatalf("ctl stop: %v\n%s", err, out)
	}
	if code := d.wait(2 * grace); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	took := time.Since(start)
	t.Logf("ctl stop took %s (application grace %s)", took.Round(time.Millisecond), grace)
	if took > grace/2 {
		t.Fatalf("ctl stop took %s: it waited for a drain (grace %s)", took, grace)
	}
	if strings.Contains(d.out.String(), "did not finish in-flight work in time") {
		t.Fatal("a worker's drain ran out of time")
	}
}

// TestControlFaultBeforeReady: a starting worker that breaks the protocol
// (bad frames after the handshake, a first frame that is not hello, no
// common version) fails at once instead of sitting in `starting` until
// startTimeout; its replacement then starts normally.
func TestControlFaultBeforeReady(t *testing.T) {
	integration(t)
	once := t.TempDir()
	faults := []struct{ app, fault, reason string }{
		{"oversize", "oversize", "control channel: bad frame: too large"},
		{"malformed", "malformed", "control channel: bad frame: not a JSON message"},
		{"typeless", "typeless", `control channel: bad frame: no "type"`},
		{"nohello", "nohello", `control channel: first message is "ready", not hello`},
		{"badversion", "badversion", "control channel: handshake: no common protocol version"},
	}
	apps := []any{badFrameApp(t, "good", "none", "", "")}
	for _, f := range faults {
		apps = append(apps, badFrameApp(t, f.app, f.fault, "start", once))
	}
	const startTimeout = 30 * time.Second
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":   "good",
		"startTimeout": startTimeout.Milliseconds(),
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": apps,
	})
	start := time.Now()
	d := startWattd(t, dir, port, startOpts{})
	for _, f := range faults {
		d.waitReplaced(f.app, f.reason, 15*time.Second)
		d.checkOneFaultLine(f.app, strings.TrimPrefix(f.reason, "control channel: "))
	}
	took := time.Since(start)
	t.Logf("all faulty workers failed and were replaced within %s (startTimeout %s)", took.Round(time.Millisecond), startTimeout)
	if took > startTimeout/2 {
		t.Fatalf("took %s", took)
	}
	waitHTTP(t, d.url("/"), 20*time.Second)
}
