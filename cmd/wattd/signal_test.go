package main_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/sdnotify/sdnotifytest"
)

// TestSecondStopSignal: a second SIGTERM while a worker ignores the first
// kills the workers at once, and wattd still removes its runtime
// directory and admin socket before it exits 1, telling the service
// manager why. A copy of the first that comes at once (one Ctrl-C sent by
// the terminal and forwarded by npm start) is the same request.
func TestSecondStopSignal(t *testing.T) {
	integration(t)
	notes := sdnotifytest.Listen(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"gracefulShutdown": map[string]any{"runtime": 60000, "application": 60000},
		"applications":     []any{map[string]any{"id": "web", "path": fixture("faults/ignore-sigterm"), "workers": 2}},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"NOTIFY_SOCKET=" + notes.Path}})
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
	first := time.Now()
	d.signal(syscall.SIGTERM)
	d.signal(syscall.SIGINT)
	waitFor(t, 15*time.Second, "both workers to ignore SIGTERM", func() bool {
		return strings.Count(d.out.String(), "SIGTERM received and ignored") == 2
	})
	d.waitOutput("stop signal repeated at once; taken as the same request", time.Second)
	// A signal within 300 ms of the first would be taken as its copy too.
	time.Sleep(time.Until(first.Add(400 * time.Millisecond)))
	start := time.Now()
	d.signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 1 {
		t.Fatalf("exit code %d after a second SIGTERM, want 1", code)
	}
	t.Logf("exited %s after the second SIGTERM", time.Since(start).Round(time.Millisecond))
	if out := d.out.String(); strings.Contains(out, "panic") || strings.Count(out, "second stop signal; killing every worker") != 1 {
		t.Errorf("output:\n%s", out)
	}
	waitFor(t, 5*time.Second, "STATUS=failed", func() bool {
		all := notes.All()
		return len(all) > 0 && strings.HasPrefix(all[len(all)-1], "STATUS=failed: stopped by a second stop signal")
	})
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
		// As soon as wattd has taken the signals, well before the setup is
		// done. A signal before that gets its default action (see
		// TestSignalsTakenEarly for how early wattd takes them); on a
		// machine loaded enough to delay that past the first wait, the
		// round is tried again, waiting longer.
		for wait := 20 * time.Millisecond; ; wait *= 2 {
			d := startWattd(t, dir, freePort(t), startOpts{})
			time.Sleep(wait)
			d.signal(sig)
			if sig == syscall.SIGHUP {
				waitFor(t, 20*time.Second, "wattd ready or ended", func() bool {
					select {
					case <-d.done:
						return true
					default:
					}
					out, err := d.ctl("ps", "--json")
					return err == nil && strings.Contains(out, `"ready"`)
				})
				select {
				case <-d.done:
				default:
					// Not a stop: wattd runs on, with the one reload.
					d.waitReady("web", 20*time.Second)
					d.signal(syscall.SIGTERM)
				}
			}
			code := d.wait(20 * time.Second)
			if defaultAction(d, sig) && wait < 640*time.Millisecond {
				t.Logf("%v %s after the start got its default action; again", sig, wait)
				continue
			}
			if code != 0 {
				t.Fatalf("%v %s after the start: exit code %d, want 0\n%s", sig, wait, code, d.out.String())
			}
			if ents, _ := os.ReadDir(d.runDir); len(ents) != 0 {
				t.Errorf("%v while setting up: %v left in the runtime base", sig, ents)
			}
			break
		}
	}
}

// defaultAction tells whether wattd, ended, was ended by sig's default
// action: killed by it, or for SIGQUIT, Go's goroutine dump and exit 2.
func defaultAction(d *daemon, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(d.err, &ee) {
		return false
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == sig {
		return true
	}
	return sig == syscall.SIGQUIT && ee.ExitCode() == 2 && strings.Contains(d.out.String(), "SIGQUIT: quit")
}

// TestSignalsTakenEarly: wattd start takes its signals from the
// initialisation of a package that only needs os/signal, before the heavy
// packages (gRPC and protobuf of the OTLP exporters, the Prometheus
// client) are initialised, so that a signal sent right after the start
// finds them taken. Go's own trace of the initialisation says in which
// order the packages ran.
func TestSignalsTakenEarly(t *testing.T) {
	integration(t)
	cmd := exec.Command(wattdBin, "start", filepath.Join(t.TempDir(), "none"))
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, _ := cmd.CombinedOutput()
	var order []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "init" {
			order = append(order, f[1])
		}
	}
	at := slices.Index(order, "github.com/wattd/wattd/cmd/wattd/internal/earlysig")
	if at < 0 {
		t.Fatalf("no init of earlysig in the trace:\n%s", out)
	}
	for _, heavy := range []string{"google.golang.org/grpc", "google.golang.org/protobuf/reflect/protoregistry", "github.com/prometheus/client_golang/prometheus", "go.uber.org/zap"} {
		if i := slices.Index(order, heavy); i >= 0 && i < at {
			t.Errorf("%s is initialised before the signals are taken (%d before %d of %d)", heavy, i, at, len(order))
		}
	}
	if at > len(order)/4 {
		t.Errorf("the signals are taken by the %dth package initialised of %d; want among the first quarter", at+1, len(order))
	}
}

// TestTerminalHangup: when the terminal wattd runs in goes away (its pty
// master closed, as when an SSH session drops), the kernel's SIGHUP is no
// request to reload. It ends a program run in that terminal: wattd stops
// gracefully, exit 0, without reading the configuration again. Started
// under nohup (SIGHUP ignored), wattd outlives the terminal instead,
// workers untouched, and a SIGHUP sent afterwards reloads.
func TestTerminalHangup(t *testing.T) {
	integration(t)
	start := func(t *testing.T, wrap []string) (d *daemon, master *os.File) {
		master, slave := openPTY(t)
		d = startWattd(t, plainProject(t, nil), freePort(t), startOpts{tty: slave, wrap: wrap})
		slave.Close()
		return d, master
	}
	t.Run("stops", func(t *testing.T) {
		// SIGHUP at its default, should the tests run under nohup: a
		// child keeps the signals its parent ignores.
		d, master := start(t, []string{"env", "--default-signal=HUP"})
		d.waitReady("web", 20*time.Second)
		master.Close()
		if code := d.wait(30 * time.Second); code != 0 {
			t.Errorf("exit code %d after the hang-up, want 0", code)
		}
		out := d.out.String()
		if strings.Contains(out, "reloading the configuration") {
			t.Errorf("the terminal's hang-up reloaded the configuration:\n%s", out)
		}
		if n := strings.Count(out, "the controlling terminal hung up; stopping gracefully"); n != 1 {
			t.Errorf("hang-up logged %d times, want 1:\n%s", n, out)
		}
		if !strings.Contains(out, `"msg":"stopped"`) {
			t.Errorf("no graceful stop after the hang-up:\n%s", out)
		}
	})
	t.Run("nohup", func(t *testing.T) {
		if _, err := exec.LookPath("nohup"); err != nil {
			t.Skip("no nohup")
		}
		d, master := start(t, []string{"nohup"})
		before := d.waitReady("web", 20*time.Second)
		master.Close()
		d.waitOutput("the controlling terminal hung up; not reloading", 10*time.Second)
		// The hang-up's own SIGHUPs (the kernel's to the session leader
		// and to the foreground group) have all come within hangupEcho; a
		// reload or a stop would have begun at once.
		waitHTTP(t, d.url("/"), 10*time.Second)
		out := d.out.String()
		if strings.Contains(out, "reloading the configuration") || strings.Contains(out, "stopping") {
			t.Fatalf("the terminal's hang-up under nohup reloaded or stopped wattd:\n%s", out)
		}
		if n := strings.Count(out, "the controlling terminal hung up"); n != 1 {
			t.Errorf("hang-up logged %d times, want 1", n)
		}
		select {
		case <-d.done:
			t.Fatalf("wattd exited after the terminal's hang-up: %v", d.err)
		default:
		}
		after := d.app("web")
		for i, w := range after.Workers {
			if w.PID != before.Workers[i].PID {
				t.Errorf("worker %d: pid %d, was %d", i, w.PID, before.Workers[i].PID)
			}
		}
		// An operator's SIGHUP, once the hang-up is over, reloads as ever.
		waitFor(t, 10*time.Second, "a later SIGHUP to reload", func() bool {
			d.signal(syscall.SIGHUP)
			return strings.Contains(d.out.String(), "SIGHUP: reloading the configuration")
		})
		d.waitOutput(`"msg":"reload done"`, 10*time.Second)
	})
}

// openPTY opens a pseudo-terminal: its master and its slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}
