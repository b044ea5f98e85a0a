package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/config"
)

func TestSameAppIgnoresCountAndBounds(t *testing.T) {
	a := config.Application{ID: "api", Workers: 2, Env: map[string]string{"A": "1"}, Pointer: "/applications/0"}
	b := a
	b.Workers, b.Pointer = 4, "/applications/1"
	b.Scale = config.Scale{Dynamic: true, Minimum: 1, Maximum: 4}
	if !sameApp(a, b) {
		t.Fatal("a change of the worker count, the scaling bounds or the entry's place counts as a change")
	}
	b.Env = map[string]string{"A": "2"}
	if sameApp(a, b) {
		t.Fatal("a change of the environment does not count as a change")
	}
}

func TestRestartOnlySettingsAreNamed(t *testing.T) {
	old := &config.Config{File: "/srv/watt.json", Entrypoint: "web", Server: config.Server{Hostname: "127.0.0.1", Port: 3000}}
	same := *old
	if got := restartOnly(old, &same); len(got) != 0 {
		t.Fatalf("no change reported as %v", got)
	}
	moved := *old
	moved.Server.Port = 3001
	moved.StartTimeout = time.Second
	got := restartOnly(old, &moved)
	if len(got) != 2 || !strings.HasPrefix(got[0], "/srv/watt.json: /server/port: changed") || !strings.HasPrefix(got[1], "/srv/watt.json: /startTimeout: changed") {
		t.Fatalf("restartOnly = %v", got)
	}
	traced := *old
	traced.Telemetry = config.Telemetry{Enabled: true}
	traced.Logger.Redact = &config.Redact{Paths: []string{"password"}, Censor: "***"}
	got = restartOnly(old, &traced)
	if len(got) != 2 || !strings.HasPrefix(got[0], "/srv/watt.json: /logger: changed") || !strings.HasPrefix(got[1], "/srv/watt.json: /telemetry: changed") {
		t.Fatalf("restartOnly = %v", got)
	}
	off := *old
	off.ManagementAPI = config.ManagementAPI{Enabled: true, Socket: "/run/m.sock"}
	if got = restartOnly(old, &off); len(got) != 1 || !strings.HasPrefix(got[0], "/srv/watt.json: /managementApi: changed") {
		t.Fatalf("restartOnly = %v, want the managementApi line", got)
	}
	// Tracing turns request ids on by default: turning it on is a
	// telemetry change, not also a logger one.
	tracedOnly := *old
	tracedOnly.Telemetry = config.Telemetry{Enabled: true}
	tracedOnly.Logger.RequestID = config.RequestID{Enabled: true, Header: config.DefaultRequestIDHeader}
	got = restartOnly(old, &tracedOnly)
	if len(got) != 1 || !strings.HasPrefix(got[0], "/srv/watt.json: /telemetry: changed") {
		t.Fatalf("restartOnly = %v, want the telemetry line alone", got)
	}
}

// TestRestartOnlySettingsOfASingleApplicationFolder: in one application's
// own file the runtime settings are under /runtime (the server under
// /server), and the refusal names them there.
func TestRestartOnlySettingsOfASingleApplicationFolder(t *testing.T) {
	dir := t.TempDir()
	write := func(timeout int) *config.Config {
		t.Helper()
		doc := fmt.Sprintf(`{"module": "@platformatic/node", "server": {"port": 3000}, "runtime": {"startTimeout": %d}}`, timeout)
		if err := os.WriteFile(filepath.Join(dir, "platformatic.json"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(dir, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := os.WriteFile(filepath.Join(dir, "index.js"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := write(5000)
	moved := write(6000)
	moved.Server.Port = 3001
	got := restartOnly(old, moved)
	if len(got) != 2 || !strings.Contains(got[0], "platformatic.json:1: /server/port: changed") || !strings.Contains(got[1], "platformatic.json:1: /runtime/startTimeout: changed") {
		t.Fatalf("restartOnly = %v", got)
	}
	// The application's id comes from package.json, not from the file.
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name": "@acme/renamed"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	renamed := write(5000)
	got = restartOnly(old, renamed)
	if len(got) != 1 || !strings.Contains(got[0], filepath.Join(dir, "package.json")+`: /name: changed from "main" to "renamed"`) {
		t.Fatalf("restartOnly after a rename = %v", got)
	}
}

// TestMeshTableLeavesOutRemovedSlots: a slot being taken away leaves the
// mesh table before its worker drains, so callers stop choosing it.
func TestMeshTableLeavesOutRemovedSlots(t *testing.T) {
	rt := testRuntime(map[string][]State{"api": {StateReady, StateReady}})
	rt.byID["api"].slots[1].removing.Store(true)
	eps := rt.buildMeshTable().Apps["api"].Endpoints
	if len(eps) != 1 || eps[0] != rt.byID["api"].slots[0].meshPath {
		t.Fatalf("endpoints %v, want worker 0's only", eps)
	}
}

type recordingNotifier struct{ calls []string }

func (n *recordingNotifier) Reloading()     { n.calls = append(n.calls, "reloading") }
func (n *recordingNotifier) Reloaded(error) { n.calls = append(n.calls, "ready") }

// TestReloadRefusedKeepsRuntime: a configuration that does not load is
// refused with its error, matching ErrInvalidConfig, the notifier hears
// the reload begin and end, and a reload while another change is applied
// is refused as a conflict.
func TestReloadRefusedKeepsRuntime(t *testing.T) {
	rt := testRuntime(map[string][]State{"api": {StateReady}})
	loadErr := errors.New(`watt.json: /workers: expected a worker count from 1 to 512, got 0`)
	rt.load = func() (*config.Config, error) { return nil, loadErr }
	n := &recordingNotifier{}
	rt.notifier = n
	_, err := rt.Reload(context.Background())
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, loadErr) || !strings.Contains(err.Error(), "keep serving unchanged") {
		t.Fatalf("Reload = %v", err)
	}
	if strings.Join(n.calls, ",") != "reloading,ready" {
		t.Fatalf("notifier calls %v", n.calls)
	}
	if len(rt.appList()) != 1 {
		t.Fatal("a refused reload changed the applications")
	}

	rt.changing.Lock()
	_, err = rt.Reload(context.Background())
	rt.changing.Unlock()
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("Reload during another change = %v, want a conflict", err)
	}
	if len(n.calls) != 2 {
		t.Fatalf("a refused concurrent reload notified: %v", n.calls)
	}

	rt.load = nil
	if _, err := rt.Reload(context.Background()); !errors.Is(err, ErrConflict) {
		t.Fatalf("Reload without a loader = %v", err)
	}
}
