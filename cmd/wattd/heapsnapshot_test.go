package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestHeapSnapshot: `wattd ctl heap-snapshot` and `wattpm heap-snapshot`
// save a V8 heap snapshot of a worker; the worker, whose event loop V8
// blocks for seconds while it writes, is not taken for a stuck one (its
// health says maxUnresponsive 500 ms, and one slow event loop is a
// failure), and one under Node.js's permission model can write it too.
// What cannot work is a clear error, and nothing is left behind.
func TestHeapSnapshot(t *testing.T) {
	integration(t)
	wattpm := wattpmCommand(t)
	tmp := privateTmp(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"health": map[string]any{"maxUnresponsive": 500, "interval": 200, "gracePeriod": 200,
			"maxUnhealthyChecks": 1, "maxEventLoopDelay": 1000},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 2,
				"env": map[string]any{"HEAP_OBJECTS": "300000"}},
			map[string]any{"id": "locked", "path": fixture("apps/plain"),
				"permissions": map[string]any{"fs": map[string]any{"read": []string{"/etc/hostname"}}}},
			map[string]any{"id": "py", "path": fixture("apps/pyapp"), "capability": "command", "command": "python3 -u app.py"},
		},
	})
	writeJSON(t, filepath.Join(dir, "package.json"), map[string]any{"name": "snap"})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"TMPDIR=" + tmp}})
	web := d.waitReady("web", 30*time.Second)
	d.waitReady("locked", 30*time.Second)
	d.waitReady("py", 30*time.Second)
	pids := map[int]int{}
	for _, w := range web.Workers {
		pids[w.Index] = w.PID
	}

	out := t.TempDir()
	start := time.Now()
	res, err := d.ctl("heap-snapshot", "--worker", "1", "--dir", out, "--json", "web")
	if err != nil {
		t.Fatalf("ctl heap-snapshot: %v\n%s", err, res)
	}
	took := time.Since(start)
	var saved struct {
		App   string `json:"app"`
		File  string `json:"file"`
		Bytes int64  `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(res), &saved); err != nil {
		t.Fatalf("ctl heap-snapshot --json: %v\n%s", err, res)
	}
	if !regexp.MustCompile(`^heap-web-1-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.heapsnapshot$`).MatchString(filepath.Base(saved.File)) || filepath.Dir(saved.File) != out {
		t.Errorf("saved as %q", saved.File)
	}
	nodes := checkSnapshot(t, saved.File, saved.Bytes, true)
	if nodes < 300000 {
		t.Errorf("snapshot of %d nodes; the worker keeps 300000 objects alive", nodes)
	}
	t.Logf("snapshot of web worker 1: %d bytes, %d nodes, %s", saved.Bytes, nodes, took.Round(time.Millisecond))
	if took < time.Second {
		t.Logf("the snapshot took %s, less than maxUnresponsive's 500 ms twice: the health exemption was not put to the test", took)
	}

	// Without --worker: the lowest ready worker; --output names the file.
	named := filepath.Join(out, "mine.heapsnapshot")
	if res, err := d.ctl("heap-snapshot", "-o", named, "web"); err != nil || !strings.Contains(res, "heap snapshot of web saved to "+named) {
		t.Fatalf("ctl heap-snapshot -o: %v\n%s", err, res)
	}
	checkSnapshot(t, named, -1, true)

	// wattpm, as against Watt: one worker named app:N, then every app
	// (the Python one fails, and wattpm says so and goes on).
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := wattpm(ctx, tmp, args...)
		cmd.Dir = out
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("wattpm %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	run("heap-snapshot", "snap", "web:0")
	run("heap-snapshot", "snap", "locked")
	all := run("heap-snapshot", "snap")
	if !strings.Contains(all, "Failed to take heap snapshot for application py") || !strings.Contains(all, "does not take a heapSnapshot") {
		t.Errorf("wattpm heap-snapshot of every app, with a Python one:\n%s", all)
	}
	for _, glob := range []string{"heap-web:0-*.heapsnapshot", "heap-locked-*.heapsnapshot", "heap-web-*Z.heapsnapshot"} {
		files, _ := filepath.Glob(filepath.Join(out, glob))
		if len(files) == 0 {
			t.Fatalf("wattpm saved no %s in %s", glob, out)
		}
		checkSnapshot(t, files[0], -1, false)
	}

	// Refusals.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"heap-snapshot", "nope"}, `unknown app "nope" (known apps: locked, py, web)`},
		{[]string{"heap-snapshot", "-w", "7", "web"}, `unknown app "web" worker 7 (its workers: 0, 1)`},
		{[]string{"heap-snapshot", "py"}, "the worker does not take a heapSnapshot"},
		{[]string{"heap-snapshot", "-o", filepath.Join(out, "missing", "x"), "web"}, "cannot save the heap snapshot"},
	} {
		res, err := d.ctl(c.args...)
		if err == nil || !strings.Contains(res, c.want) {
			t.Errorf("ctl %s: %v, want an error saying %q:\n%s", strings.Join(c.args, " "), err, c.want, res)
		}
	}

	// The workers blocked by their snapshots were not replaced, and stay
	// so for ten health checks more.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, w := range d.app("web").Workers {
			if w.PID != pids[w.Index] || w.Restarts != 0 {
				t.Fatalf("web worker %d was replaced (pid %d, was %d): %q", w.Index, w.PID, pids[w.Index], w.LastExit)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Nothing is left in the runtime directory, nor beside the saved files.
	if left, _ := filepath.Glob(filepath.Join(d.runDir, "*", "diag", "*")); len(left) > 0 {
		t.Errorf("left in the runtime directory: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".heap-*")); len(left) > 0 {
		t.Errorf("left beside the snapshots: %v", left)
	}
}

// checkSnapshot reads the head of a .heapsnapshot file (V8's JSON: meta,
// node_count, edge_count, then the arrays) and returns its node count;
// size, unless -1, is the size it must have. wattd's files are private
// (wattpm's are not, as under Watt).
func checkSnapshot(t *testing.T, path string, size int64, private bool) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if size >= 0 && fi.Size() != size {
		t.Errorf("%s: %d bytes, said %d", path, fi.Size(), size)
	}
	if private && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("%s: mode %v, want private", path, fi.Mode())
	}
	head := make([]byte, 4096)
	n, _ := bufio.NewReader(f).Read(head)
	m := regexp.MustCompile(`^\{"snapshot":\{"meta":\{.*"node_count":(\d+),"edge_count":\d+`).FindSubmatch(head[:n])
	if m == nil {
		t.Fatalf("%s is not a heap snapshot: %q", path, head[:min(n, 200)])
	}
	var nodes int
	_ = json.Unmarshal(m[1], &nodes)
	return nodes
}
