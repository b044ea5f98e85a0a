package main_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondStopSignal: a second SIGTERM while a worker ignores the first
// kills the workers at once, and wattd still removes its runtime
// directory and admin socket before it exits 1.
func TestSecondStopSignal(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"gracefulShutdown": map[string]any{"runtime": 60000, "application": 60000},
		"applications":     []any{map[string]any{"id": "web", "path": fixture("faults/ignore-sigterm"), "workers": 2}},
	})
	d := startWattd(t, dir, port, startOpts{})
	a := d.waitReady("web", 20*time.Second)
	// Each worker's SIGTERM handler is in place once it has answered.
	seen := map[string]bool{}
	waitFor(t, 20*time.Second, "both workers to answer", func() bool {
		if code, body, err := get(fresh, d.url("/")); err == nil && code == 200 {
			seen[body] = true
		}
		return len(seen) == 2
	})
	sock := d.adminSocket()
	rtDir := filepath.Dir(sock)
	d.signal(syscall.SIGTERM)
	waitFor(t, 15*time.Second, "both workers to ignore SIGTERM", func() bool {
		return strings.Count(d.out.String(), "SIGTERM received and ignored") == 2
	})
	start := time.Now()
	d.signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 1 {
		t.Fatalf("exit code %d after a second SIGTERM, want 1", code)
	}
	t.Logf("exited %s after the second SIGTERM", time.Since(start).Round(time.Millisecond))
	for _, p := range []string{sock, rtDir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (stat: %v)", p, err)
		}
	}
	for _, w := range a.Workers {
		waitFor(t, 5*time.Second, "worker to be gone", func() bool { return !alive(w.PID) })
	}
}

// TestQuitStopsGracefully: SIGQUIT (the STOPSIGNAL of some images) stops
// wattd as SIGTERM does, exit 0 with nothing left behind, where Go's
// default dumped the goroutines and exited 2 with the runtime directory and
// every worker cgroup still there.
func TestQuitStopsGracefully(t *testing.T) {
	integration(t)
	d := startWattd(t, plainProject(t, nil), freePort(t), startOpts{})
	a := d.waitReady("web", 20*time.Second)
	rtDir := filepath.Dir(d.adminSocket())
	d.signal(syscall.SIGQUIT)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGQUIT, want 0", code)
	}
	if !strings.Contains(d.out.String(), `"msg":"stopped"`) {
		t.Errorf("no graceful stop in the log")
	}
	if _, err := os.Stat(rtDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind (stat: %v)", rtDir, err)
	}
	for _, w := range a.Workers {
		if alive(w.PID) {
			t.Errorf("worker %d still runs", w.PID)
		}
	}
}

// TestSignalsWhileSettingUp: a signal that comes while wattd sets up (a
// deploy script's SIGHUP right after a restart, a stop at once) is acted
// on once the runtime runs, instead of ending wattd by the signal's
// default action with its runtime directory and cgroups left behind.
func TestSignalsWhileSettingUp(t *testing.T) {
	integration(t)
	dir := plainProject(t, nil)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM} {
		d := startWattd(t, dir, freePort(t), startOpts{})
		// As soon as Go's runtime has taken the signals, well before the
		// setup is done; a signal before that gets the default action.
		time.Sleep(20 * time.Millisecond)
		d.signal(sig)
		if sig == syscall.SIGHUP {
			// Not a stop: wattd runs on, with the one reload.
			d.waitReady("web", 20*time.Second)
			d.signal(syscall.SIGTERM)
		}
		if code := d.wait(20 * time.Second); code != 0 {
			t.Fatalf("%v while setting up: exit code %d, want 0\n%s", sig, code, d.out.String())
		}
		if ents, _ := os.ReadDir(d.runDir); len(ents) != 0 {
			t.Errorf("%v while setting up: %v left in the runtime base", sig, ents)
		}
	}
}
