package main_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/listeners"
)

// reusePortListen listens on addr the way a program that wants to share
// its port does (SO_REUSEPORT), which also lets any same-user socket join
// it: the socket wattd itself opens for its workers is one.
func reusePortListen(t *testing.T, addr string) net.Listener {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	f, _, err := listeners.TCP(host, p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func plainProject(t *testing.T, extra map[string]any) string {
	cfg := map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"workers":      2,
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return project(t, cfg)
}

// TestForeignListenerOnPortRefused: a program that listens on the public
// port with SO_REUSEPORT would silently get part of wattd's traffic; wattd
// refuses to start, names it, exits 1 and leaves nothing behind. With
// exclusive listeners the bind fails and the holder is named the same way.
func TestForeignListenerOnPortRefused(t *testing.T) {
	integration(t)
	for _, shared := range []bool{true, false} {
		t.Run("so_reuseport="+strconv.FormatBool(shared), func(t *testing.T) {
			var l net.Listener
			if shared {
				l = reusePortListen(t, "127.0.0.1:0")
			} else {
				var err error
				if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					t.Fatal(err)
				}
				defer l.Close()
			}
			port := l.Addr().(*net.TCPAddr).Port
			d := startWattd(t, plainProject(t, nil), port, startOpts{})
			if code := d.wait(20 * time.Second); code != 1 {
				t.Fatalf("exit code %d, want 1", code)
			}
			out := d.out.String()
			want := "pid " + strconv.Itoa(os.Getpid()) + " ("
			if !strings.Contains(out, "already in use") || !strings.Contains(out, want) || !strings.Contains(out, "reuseTcpPorts") {
				t.Fatalf("the error does not name the holder (%q) and the way out:\n%s", want, out)
			}
			if strings.Contains(out, "worker ready") {
				t.Fatal("workers were started")
			}
			if entries, _ := os.ReadDir(d.runDir); len(entries) != 0 {
				t.Fatalf("runtime directory left behind: %v", entries)
			}
		})
	}
}

// TestSecondRuntimeOnSamePort: a second wattd project on the port of a
// running one is refused, and the first keeps every request; with
// reuseTcpPorts true in the second's watt.json, both serve the port (the
// funnel pattern: identical runtimes behind one port).
func TestSecondRuntimeOnSamePort(t *testing.T) {
	integration(t)
	port := freePort(t)
	first := startWattd(t, plainProject(t, nil), port, startOpts{})
	first.waitReady("web", 20*time.Second)
	firstPIDs := map[string]bool{strconv.Itoa(first.cmd.Process.Pid): true}
	for _, w := range first.app("web").Workers {
		firstPIDs[strconv.Itoa(w.PID)] = true
	}

	second := startWattd(t, plainProject(t, nil), port, startOpts{})
	if code := second.wait(20 * time.Second); code != 1 {
		t.Fatalf("second runtime: exit code %d, want 1", code)
	}
	out := second.out.String()
	named := false
	for pid := range firstPIDs {
		named = named || strings.Contains(out, "pid "+pid+" (")
	}
	if !named {
		t.Fatalf("the error names none of the first runtime's pids %v:\n%s", firstPIDs, out)
	}
	for range 30 {
		if _, body, err := get(fresh, first.url("/")); err != nil || !strings.Contains(body, `"app":"web"`) {
			t.Fatalf("first runtime lost a request: %v %s", err, body)
		}
	}

	shared := startWattd(t, plainProject(t, map[string]any{"reuseTcpPorts": true}), port, startOpts{})
	shared.waitReady("web", 20*time.Second)
	sharedPIDs := map[int]bool{}
	for _, w := range shared.app("web").Workers {
		sharedPIDs[w.PID] = true
	}
	waitFor(t, 20*time.Second, "requests to reach both runtimes", func() bool {
		seenFirst, seenShared := false, false
		for range 40 {
			_, body, err := get(fresh, first.url("/"))
			var reply struct{ PID int }
			if err != nil || json.Unmarshal([]byte(body), &reply) != nil {
				return false
			}
			seenShared = seenShared || sharedPIDs[reply.PID]
			seenFirst = seenFirst || firstPIDs[strconv.Itoa(reply.PID)]
		}
		return seenFirst && seenShared
	})
}

// TestSameProjectFromAnotherRuntimeDirectory: a second start of a running
// project from another runtime base (a root login shell's XDG_RUNTIME_DIR
// against /run/wattd, say) is refused before it touches anything, naming
// the running wattd. It used to take the running instance's worker
// cgroups, named after the project alone, for a dead instance's leftovers:
// it killed every worker, and on cgroup v1 removed the subtree, so that no
// worker could start again.
func TestSameProjectFromAnotherRuntimeDirectory(t *testing.T) {
	integration(t)
	dir := plainProject(t, nil)
	first := startWattd(t, dir, freePort(t), startOpts{})
	before := first.waitReady("web", 20*time.Second)

	// Its own base (startWattd), another port: only the project is shared.
	second := startWattd(t, dir, freePort(t), startOpts{})
	if code := second.wait(20 * time.Second); code != 1 {
		t.Fatalf("second start: exit code %d, want 1", code)
	}
	out := second.out.String()
	if want := fmt.Sprintf("the project is already running: another wattd (pid %d", first.cmd.Process.Pid); !strings.Contains(out, want) {
		t.Fatalf("second start's error does not say %q:\n%s", want, out)
	}
	after := first.app("web")
	for i, w := range after.Workers {
		if w.PID != before.Workers[i].PID || w.Restarts != 0 || w.State != "ready" {
			t.Errorf("worker %d of the running instance: %+v, was %+v", i, w, before.Workers[i])
		}
	}
	for range 20 {
		if _, body, err := get(fresh, first.url("/")); err != nil || !strings.Contains(body, `"app":"web"`) {
			t.Fatalf("the running instance lost a request: %v %s", err, body)
		}
	}
	// Stopped, the first lets the project start from the other base.
	stopGracefully(first.cmd.Process, first.done)
	third := startWattd(t, dir, freePort(t), startOpts{})
	third.waitReady("web", 20*time.Second)
}

// TestPublicPortInTheEphemeralRange: the sockets wattd opens for itself on a
// port the kernel picks (the mesh proxy's, a fronted app's forwarders) get
// it from the ephemeral range, where a configured public port may lie too.
// wattd binds the public port before any of them, so it never finds one of
// its own sockets there and refuses to start, blaming itself. Each start
// runs in a network namespace of its own whose ephemeral range is two
// ports, 40000 and the public port 40001. Linux gives bind(0) the odd ports
// of the range first, so a wattd that opened the mesh proxy before the
// public port would take 40001 for the proxy every time.
func TestPublicPortInTheEphemeralRange(t *testing.T) {
	integration(t)
	if os.Geteuid() != 0 {
		t.Skip("a network namespace of its own needs root")
	}
	if err := exec.Command("unshare", "-n", "true").Run(); err != nil {
		t.Skipf("unshare -n: %v", err)
	}
	const port = 40001
	wrap := []string{"unshare", "-n", "--", "sh", "-c",
		`ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range="40000 40001" && exec "$0" "$@"`}
	for i := range 5 {
		d := startWattd(t, plainProject(t, map[string]any{"workers": 1}), port, startOpts{wrap: wrap})
		waitFor(t, 20*time.Second, "the worker ready", func() bool {
			select {
			case <-d.done:
				t.Fatalf("start %d: wattd exited: %v\n%s", i+1, d.err, d.out.String())
			default:
			}
			out, err := d.ctl("ps", "--json")
			var apps []supervisor.AppStatus
			if err != nil || json.Unmarshal([]byte(out), &apps) != nil || len(apps) != 1 || len(apps[0].Workers) != 1 {
				return false
			}
			return apps[0].Workers[0].State == supervisor.StateReady.String()
		})
		d.signal(syscall.SIGTERM)
		if code := d.wait(20 * time.Second); code != 0 {
			t.Fatalf("start %d: exit code %d after SIGTERM\n%s", i+1, code, d.out.String())
		}
	}
}

// TestLowFDLimitWarned: started with an open files limit below what it keeps
// for supervising its workers (64 for 8 slots, which want 192), wattd says
// so once at start, with the limit and what it wants, instead of leaving
// each worker's "too many open files" to tell.
func TestLowFDLimitWarned(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit not installed")
	}
	d := startWattd(t, plainProject(t, map[string]any{"workers": 8}), freePort(t), startOpts{wrap: []string{"prlimit", "--nofile=64:64", "--"}})
	d.waitOutput(`"msg":"starting"`, 20*time.Second)
	d.waitOutput("the open files limit is low for this many workers", 10*time.Second)
	out := d.out.String()
	if !strings.Contains(out, `"limit":64`) || !strings.Contains(out, `"wanted":192`) {
		t.Errorf("the warning names no limit or want:\n%s", out)
	}
	if n := strings.Count(out, "the open files limit is low"); n != 1 {
		t.Errorf("warned %d times, want 1", n)
	}
}
