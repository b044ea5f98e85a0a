package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWorkersExhaustMaxUserProcesses: under a max user processes limit
// (ulimit -u, which counts threads) that eight Node.js workers exceed,
// wattd warns once at start with the limit, the workers that find no room
// fail with the cause, and wattd itself stays up and answers. Before, the
// workers took the last threads the limit allowed and the Go runtime of
// wattd, needing one more, died (`fatal error: newosproc`).
func TestWorkersExhaustMaxUserProcesses(t *testing.T) {
	integration(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs wattd as a user of its own")
	}
	for _, tool := range []string{"setpriv", "prlimit"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	// A uid no other process has: the limit counts every thread of it.
	const uid = "24517"
	if out, _ := exec.Command("ps", "-u", uid, "-o", "pid=").Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Skipf("uid %s has processes: %s", uid, out)
	}
	base, err := os.MkdirTemp("", "wattd-nproc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir, runBase, bin := filepath.Join(base, "project"), filepath.Join(base, "run"), filepath.Join(base, "wattd")
	for _, d := range []string{dir, runBase} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(uid)
	if err := os.Chown(runBase, n, n); err != nil {
		t.Fatal(err)
	}
	copyWattd(t, bin)
	port := freePort(t)
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": port},
		"workers":      8,
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	})
	d := startWattd(t, dir, port, startOpts{
		bin:  bin,
		wrap: []string{"setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups", "prlimit", "--nproc=40:40", "--"},
		env:  []string{"WATTD_RUNTIME_DIR=" + runBase, "HOME=" + dir},
	})
	waitFor(t, 30*time.Second, "a worker slot to give up for want of threads, or wattd to exit", func() bool {
		select {
		case <-d.done:
			return true
		default:
		}
		return strings.Contains(d.out.String(), "worker slot failed; not restarting")
	})
	select {
	case <-d.done:
		t.Fatalf("wattd exited under the limit: %v", d.err)
	default:
	}
	out := d.out.String()
	if strings.Count(out, "the max user processes limit is low for this many workers") != 1 || !strings.Contains(out, `"limit":40`) {
		t.Fatalf("want one warning naming the limit:\n%s", out)
	}
	if !strings.Contains(out, "resource temporarily unavailable") {
		t.Fatalf("want the workers' failures to name the cause:\n%s", out)
	}
	socks, _ := filepath.Glob(filepath.Join(runBase, "*", "admin.sock"))
	if len(socks) != 1 {
		t.Fatalf("admin sockets under %s: %v", runBase, socks)
	}
	ps, err := d.ctl("ps", "--socket", socks[0])
	if err != nil || strings.Count(ps, "\nweb") != 8 {
		t.Fatalf("ctl ps: %v\n%s", err, ps)
	}
	// wattd's own runtime would print its report as plain lines; the
	// exec helper of a worker that starts into the limit is a Go program
	// too, and its report is that worker's output, logged as an entry.
	for _, l := range strings.Split(d.out.String(), "\n") {
		if !strings.HasPrefix(l, "{") && strings.Contains(l, "newosproc") {
			t.Fatalf("wattd's Go runtime ran out of threads:\n%s", d.out.String())
		}
	}
}
