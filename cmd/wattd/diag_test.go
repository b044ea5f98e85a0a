package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
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
		"health": map[string]any{"maxUnresponsive": 500, "interval": 200, "gracePeriod": 1500,
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
	// Past the busy start (300,000 objects made) and the grace: the
	// checks judge what the workers report from now on.
	waitFor(t, 20*time.Second, "web's workers idle, past their grace", func() bool {
		for _, w := range d.app("web").Workers {
			if w.PID != pids[w.Index] || w.ELU > 0.5 || w.Uptime < 2 {
				return false
			}
		}
		return true
	})

	out := t.TempDir()
	// While V8 writes, the runtime directory holds a FIFO, never the
	// snapshot itself (a file there would take its size in memory on a
	// tmpfs, charged to the worker's cgroup).
	diagSeen := make(chan [2]int, 1)
	stopLooking := make(chan struct{})
	go func() {
		fifos, files := 0, 0
		for {
			select {
			case <-stopLooking:
				diagSeen <- [2]int{fifos, files}
				return
			case <-time.After(20 * time.Millisecond):
			}
			entries, _ := filepath.Glob(filepath.Join(d.runDir, "*", "diag", "*"))
			for _, e := range entries {
				if fi, err := os.Lstat(e); err == nil {
					if fi.Mode()&os.ModeNamedPipe != 0 {
						fifos++
					} else {
						files++
					}
				}
			}
		}
	}()
	start := time.Now()
	res, err := d.ctl("heap-snapshot", "--worker", "1", "--dir", out, "--json", "web")
	took := time.Since(start)
	close(stopLooking)
	if err != nil {
		t.Fatalf("ctl heap-snapshot: %v\n%s", err, res)
	}
	if seen := <-diagSeen; seen[0] == 0 || seen[1] != 0 {
		t.Errorf("while the snapshot was taken, the diagnostics directory held a FIFO %d times and a file %d times; want a FIFO, never a file", seen[0], seen[1])
	}
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
	// An output that is a directory is refused before any snapshot is
	// taken (it failed at the end, the work done).
	began := time.Now()
	if res, err := d.ctl("heap-snapshot", "-o", out, "web"); err == nil || !strings.Contains(res, "it is a directory; give --dir") || time.Since(began) > 5*time.Second {
		t.Errorf("ctl heap-snapshot -o DIR: %v after %s\n%s", err, time.Since(began), res)
	}
	// An output that is not a regular file is written into, never
	// replaced: a pipe (as /dev/null or /dev/stdout would be), a link.
	fifo := filepath.Join(out, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	piped := make(chan int, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		piped <- len(b)
	}()
	if res, err := d.ctl("heap-snapshot", "-o", fifo, "web"); err != nil {
		t.Fatalf("ctl heap-snapshot -o FIFO: %v\n%s", err, res)
	}
	select {
	case n := <-piped:
		if n < 1<<20 {
			t.Errorf("%d bytes came through the pipe", n)
		}
	case <-time.After(10 * time.Second):
		t.Error("nothing came through the pipe")
	}
	target, link := filepath.Join(out, "target"), filepath.Join(out, "link")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if res, err := d.ctl("heap-snapshot", "-o", link, "web"); err != nil {
		t.Fatalf("ctl heap-snapshot -o LINK: %v\n%s", err, res)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the pipe was replaced: %v %v", fi, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	checkSnapshot(t, target, -1, true)

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
	if !strings.Contains(all, "Failed to take heap snapshot for application py") || !strings.Contains(all, "cannot take a heap snapshot") {
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
		{[]string{"heap-snapshot", "py"}, "the worker cannot take a heap snapshot"},
		{[]string{"heap-snapshot", "-o", filepath.Join(out, "missing", "x"), "web"}, "cannot save the heap snapshot"},
	} {
		res, err := d.ctl(c.args...)
		if err == nil || !strings.Contains(res, c.want) {
			t.Errorf("ctl %s: %v, want an error saying %q:\n%s", strings.Join(c.args, " "), err, c.want, res)
		}
	}

	// A client that goes away in the middle: the worker's writes fail,
	// and it goes on serving; the next snapshot of it is whole.
	sock := d.adminSocket()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "POST /v1/apps/web/heap-snapshot?worker=0 HTTP/1.1\r\nHost: wattd\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadFull(conn, make([]byte, 1<<20)); err != nil {
		t.Fatalf("the first MiB of a snapshot: %v", err)
	}
	conn.Close()
	d.waitOutput("heap snapshot cut on its way to the client", 30*time.Second)
	waitFor(t, 30*time.Second, "web worker 0 ready, the same process", func() bool {
		w := d.app("web").Workers[0]
		return w.State == "ready" && w.PID == pids[0]
	})
	cut := filepath.Join(out, "after-cut.heapsnapshot")
	if res, err := d.ctl("heap-snapshot", "-w", "0", "-o", cut, "web"); err != nil {
		t.Fatalf("ctl heap-snapshot after a cut one: %v\n%s", err, res)
	}
	checkSnapshot(t, cut, -1, true)

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
	if left, _ := filepath.Glob(filepath.Join(out, ".wattd-*")); len(left) > 0 {
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

// TestCPUProfile: `wattd ctl cpu-profile` profiles a worker for the time
// asked and saves pprof (go tool pprof reads it; the worker's busy code is
// in it) or V8's .cpuprofile, `wattd ctl heap-profile` the same with the
// sampling heap profiler; `wattpm pprof start` and `stop` do the same
// by Watt's routes, for the application or each of its workers; a client
// that goes away ends the profile; what cannot work is a clear error.
func TestCPUProfile(t *testing.T) {
	integration(t)
	wattpm := wattpmCommand(t)
	tmp := privateTmp(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 2},
			map[string]any{"id": "py", "path": fixture("apps/pyapp"), "capability": "command", "command": "python3 -u app.py"},
			// Compiled "TypeScript" with a source map, spinning by itself.
			map[string]any{"id": "ts", "path": fixture("apps/mapped"), "env": map[string]any{"SPIN_EVERY_MS": "40"}},
		},
	})
	writeJSON(t, filepath.Join(dir, "package.json"), map[string]any{"name": "prof"})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"TMPDIR=" + tmp}})
	waitHTTP(t, d.url("/"), 30*time.Second)
	d.waitReady("web", 30*time.Second)
	d.waitReady("py", 30*time.Second)
	d.waitReady("ts", 30*time.Second)

	// Load that keeps the workers' event loops busy in the app's code, a
	// connection a request, so that the kernel spreads them over both.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	loaded := make(chan struct{})
	go func() { load(loadCtx, d.url("/spin?ms=20"), 1); close(loaded) }()
	defer func() { stopLoad(); <-loaded }()

	out := t.TempDir()
	res, err := d.ctl("cpu-profile", "--duration", "2s", "--dir", out, "--json", "web")
	if err != nil {
		t.Fatalf("ctl cpu-profile: %v\n%s", err, res)
	}
	var saved struct {
		File  string `json:"file"`
		Bytes int64  `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(res), &saved); err != nil {
		t.Fatalf("ctl cpu-profile --json: %v\n%s", err, res)
	}
	if !regexp.MustCompile(`^cpu-web-0-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.pb\.gz$`).MatchString(filepath.Base(saved.File)) {
		t.Errorf("saved as %q", saved.File)
	}
	p := readPprof(t, saved.File)
	if p.SampleType[1].Type != "wall" {
		t.Errorf("CPU profile of %v", p.SampleType)
	}
	if p.DurationNanos < int64(1500*time.Millisecond) || p.DurationNanos > int64(4*time.Second) {
		t.Errorf("a profile of 2 s lasts %s", time.Duration(p.DurationNanos))
	}
	if p.TimeNanos < time.Now().Add(-time.Minute).UnixNano() {
		t.Errorf("the profile's time %s is not now", time.Unix(0, p.TimeNanos))
	}
	total, app := valueIn(p, 1, "apps/plain/index.js")
	if total < int64(time.Second) || total > p.DurationNanos*11/10 {
		t.Errorf("samples cover %s of a %s profile", time.Duration(total), time.Duration(p.DurationNanos))
	}
	if app < total/10 {
		t.Errorf("the app's code has %s of %s: the spinning worker's code is not in its profile", time.Duration(app), time.Duration(total))
	}
	t.Logf("profile of web worker 0: %d bytes, %s sampled, %s in the app's code", saved.Bytes, time.Duration(total), time.Duration(app))

	// V8's own format, for Chrome DevTools.
	named := filepath.Join(out, "w1.cpuprofile")
	if res, err := d.ctl("cpu-profile", "-t", "1s", "-w", "1", "-f", "v8", "-o", named, "web"); err != nil {
		t.Fatalf("ctl cpu-profile -f v8: %v\n%s", err, res)
	}
	var v8 struct {
		Nodes   []json.RawMessage `json:"nodes"`
		Samples []int             `json:"samples"`
	}
	if b, err := os.ReadFile(named); err != nil || json.Unmarshal(b, &v8) != nil || len(v8.Nodes) == 0 || len(v8.Samples) == 0 {
		t.Fatalf("%s is not a V8 CPU profile: %v", named, err)
	}

	// A client that goes away ends the profile: the worker takes the
	// next start.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, wattdBin, "ctl", "cpu-profile", "-t", "60s", "-o", filepath.Join(out, "never.pb.gz"), "web")
	cmd.Dir, cmd.Env = d.dir, append(os.Environ(), "WATTD_RUNTIME_DIR="+d.runDir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the profile to start", func() bool { return strings.Contains(d.out.String(), `"profile started"`) })
	cancel()
	cmd.Wait()

	run := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := wattpm(ctx, tmp, args...)
		cmd.Dir = out
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	var started string
	waitFor(t, 10*time.Second, "wattpm pprof start to be taken", func() bool {
		started, err = run("pprof", "start", "prof", "web")
		return err == nil
	})
	if res, err := run("pprof", "stop", "prof", "web"); err != nil {
		t.Fatalf("wattpm pprof stop: %v\n%s\n(start: %s)", err, res, started)
	}
	if res, err := run("pprof", "start", "prof", "web", "--all-workers"); err != nil || !strings.Contains(res, "(workers 0, 1)") {
		t.Fatalf("wattpm pprof start --all-workers: %v\n%s", err, res)
	}
	if res, err := run("pprof", "stop", "prof", "web", "-a"); err != nil {
		t.Fatalf("wattpm pprof stop --all-workers: %v\n%s", err, res)
	}
	for _, glob := range []string{"pprof-cpu-web-2*.pb", "pprof-cpu-web-0-*.pb", "pprof-cpu-web-1-*.pb"} {
		files, _ := filepath.Glob(filepath.Join(out, glob))
		if len(files) != 1 {
			t.Fatalf("wattpm saved %v for %s in %s", files, glob, out)
		}
		if p := readPprof(t, files[0]); len(p.Sample) == 0 || p.SampleType[1].Type != "wall" {
			t.Errorf("%s: %d samples of %v", files[0], len(p.Sample), p.SampleType)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "never.pb.gz")); err == nil {
		t.Error("the interrupted profile was saved")
	}

	// The sampling heap profiler, by ctl and by wattpm.
	heap := filepath.Join(out, "heap.pb.gz")
	if res, err := d.ctl("heap-profile", "-t", "2s", "--interval", "4KiB", "-o", heap, "web"); err != nil {
		t.Fatalf("ctl heap-profile: %v\n%s", err, res)
	}
	hp := readPprof(t, heap)
	if hp.SampleType[1].Type != "space" || hp.SampleType[1].Unit != "bytes" || hp.Period != 4096 {
		t.Errorf("heap profile of %v, period %d", hp.SampleType, hp.Period)
	}
	if space, _ := valueIn(hp, 1, ""); space <= 0 {
		t.Errorf("heap profile holds %d bytes", space)
	}
	if res, err := run("pprof", "start", "prof", "web", "-t", "heap"); err != nil {
		t.Fatalf("wattpm pprof start -t heap: %v\n%s", err, res)
	}
	if res, err := run("pprof", "stop", "prof", "web", "-t", "heap"); err != nil {
		t.Fatalf("wattpm pprof stop -t heap: %v\n%s", err, res)
	}
	if files, _ := filepath.Glob(filepath.Join(out, "pprof-heap-web-*.pb")); len(files) != 1 {
		t.Fatalf("wattpm saved %v heap profiles", files)
	} else if p := readPprof(t, files[0]); p.SampleType[1].Type != "space" {
		t.Errorf("wattpm's heap profile is of %v", p.SampleType)
	}

	// Source maps: the compiled app's code shows where its map puts it.
	mapped := filepath.Join(out, "ts.pb.gz")
	if res, err := d.ctl("cpu-profile", "-t", "2s", "--source-maps", "-o", mapped, "ts"); err != nil {
		t.Fatalf("ctl cpu-profile --source-maps: %v\n%s", err, res)
	}
	checkMapped := func(file string) {
		t.Helper()
		p := readPprof(t, file)
		if _, src := valueIn(p, 1, "apps/mapped/src/index.ts"); src <= 0 {
			t.Errorf("%s: no samples in src/index.ts", file)
		}
		if _, dist := valueIn(p, 1, "apps/mapped/lib/index.js"); dist > 0 {
			t.Errorf("%s: samples in lib/index.js, which its map covers", file)
		}
		// The functions of the TypeScript source, by their lines there:
		// spinInTypeScript, and the timer's arrow that calls it (into
		// which V8 may inline it), the server's.
		for _, f := range p.Function {
			if !strings.HasSuffix(f.Filename, "apps/mapped/src/index.ts") {
				continue
			}
			want := map[string]int64{"spinInTypeScript": 14}[f.Name]
			if want == 0 && f.StartLine != 23 && f.StartLine != 25 || want != 0 && f.StartLine != want {
				t.Errorf("%s: %s at src/index.ts:%d, which is not where the source has it", file, f.Name, f.StartLine)
			}
		}
	}
	checkMapped(mapped)
	if res, err := run("pprof", "start", "prof", "ts", "--source-maps"); err != nil {
		t.Fatalf("wattpm pprof start --source-maps: %v\n%s", err, res)
	}
	time.Sleep(time.Second) // the profile's length, not a wait for an event
	if res, err := run("pprof", "stop", "prof", "ts"); err != nil {
		t.Fatalf("wattpm pprof stop: %v\n%s", err, res)
	}
	if files, _ := filepath.Glob(filepath.Join(out, "pprof-cpu-ts-*.pb")); len(files) != 1 {
		t.Fatalf("wattpm saved %v profiles of ts", files)
	} else {
		checkMapped(files[0])
	}

	// Refusals.
	if res, err := run("pprof", "stop", "prof", "web"); err == nil || !strings.Contains(res, "no CPU profile is being taken") {
		t.Errorf("wattpm pprof stop with none running: %v\n%s", err, res)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cpu-profile", "py"}, "the worker cannot start a CPU profile"},
		{[]string{"cpu-profile", "-t", "1500ms", "web"}, "want whole seconds"},
		{[]string{"cpu-profile", "-f", "svg", "web"}, "want pprof or v8"},
		{[]string{"cpu-profile", "-f", "v8", "--source-maps", "web"}, "--source-maps applies to pprof"},
		{[]string{"cpu-profile", "--interval", "1KiB", "web"}, "want a duration from 10µs to 1s"},
		{[]string{"heap-profile", "--interval", "1ms", "web"}, "want a size from 1KiB to 64MiB"},
		{[]string{"heap-profile", "py"}, "the worker cannot start a heap profile"},
	} {
		res, err := d.ctl(c.args...)
		if err == nil || !strings.Contains(res, c.want) {
			t.Errorf("ctl %s: %v, want an error saying %q:\n%s", strings.Join(c.args, " "), err, c.want, res)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(d.runDir, "*", "diag", "*")); len(left) > 0 {
		t.Errorf("left in the runtime directory: %v", left)
	}

	// Last: the runtime stopping during a profile is said as such, not as
	// a bare "context canceled".
	stopCmd := exec.Command(wattdBin, "ctl", "cpu-profile", "-t", "60s", "-o", filepath.Join(out, "cut.pb.gz"), "web")
	stopCmd.Dir, stopCmd.Env = d.dir, append(os.Environ(), "WATTD_RUNTIME_DIR="+d.runDir)
	var cut syncBuffer
	stopCmd.Stdout, stopCmd.Stderr = &cut, &cut
	before := strings.Count(d.out.String(), `"profile started"`)
	if err := stopCmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the last profile to start", func() bool { return strings.Count(d.out.String(), `"profile started"`) > before })
	d.signal(syscall.SIGTERM)
	if err := stopCmd.Wait(); err == nil || !strings.Contains(cut.String(), "the runtime stopped during the request") {
		t.Errorf("ctl cpu-profile while the runtime stopped: %v\n%s", err, cut.String())
	}
}

// readPprof parses a pprof file of wattd's making, gzipped or not, as go
// tool pprof does: two values a sample. A short heap profile may have no
// sample: allocations are sampled every 512 KiB.
func readPprof(t *testing.T, path string) *profile.Profile {
	t.Helper()
	p := readPprofTypes(t, path)
	if len(p.SampleType) != 2 {
		t.Fatalf("%s: samples of %v", path, p.SampleType)
	}
	return p
}

// readPprofTypes parses any pprof file.
func readPprofTypes(t *testing.T, path string) *profile.Profile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}

// valueIn sums value i (a CPU profile's wall time, a heap profile's
// space) of p's samples, and of those whose stack has a frame in a file
// whose name ends with file.
func valueIn(p *profile.Profile, i int, file string) (total, in int64) {
	for _, s := range p.Sample {
		total += s.Value[i]
		for _, l := range s.Location {
			if strings.HasSuffix(l.Line[0].Function.Filename, file) {
				in += s.Value[i]
				break
			}
		}
	}
	return total, in
}

// TestProfileConflict: a profile asked of a worker that is already taking
// one, or stopped where none is taken, is a conflict (409) on both APIs,
// as the worker's refusal says, not a failure of wattd (500).
func TestProfileConflict(t *testing.T) {
	integration(t)
	tmp := privateTmp(t)
	dir := project(t, map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"TMPDIR=" + tmp}})
	d.waitReady("web", 30*time.Second)
	over := func(sock string) *http.Client {
		return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	}
	post := func(hc *http.Client, url string) (int, string) {
		t.Helper()
		resp, err := hc.Post(url, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	admin := over(d.adminSocket())
	first := make(chan int, 1)
	go func() {
		resp, err := admin.Post("http://wattd/v1/apps/web/profile?worker=0&seconds=3", "", nil)
		if err != nil {
			first <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	waitFor(t, 10*time.Second, "the first profile to start", func() bool { return strings.Contains(d.out.String(), `"profile started"`) })
	if code, body := post(admin, "http://wattd/v1/apps/web/profile?worker=0&seconds=1"); code != http.StatusConflict || !strings.Contains(body, "already being taken") {
		t.Errorf("a second profile at once: %d %s, want 409", code, body)
	}
	if code := <-first; code != http.StatusOK {
		t.Errorf("the first profile: %d, want 200", code)
	}

	sock := filepath.Join(tmp, "platformatic", "runtimes", strconv.Itoa(d.cmd.Process.Pid), "socket")
	watt := over(sock)
	start, stop := "http://wattd/api/v1/applications/web/pprof/start", "http://wattd/api/v1/applications/web/pprof/stop"
	if code, body := post(watt, start); code != http.StatusOK {
		t.Fatalf("pprof/start: %d %s", code, body)
	}
	if code, body := post(watt, start); code != http.StatusConflict || !strings.Contains(body, "already being taken") {
		t.Errorf("pprof/start again: %d %s, want 409", code, body)
	}
	if code, body := post(watt, stop); code != http.StatusOK {
		t.Fatalf("pprof/stop: %d %s", code, body)
	}
	if code, body := post(watt, stop); code != http.StatusConflict || !strings.Contains(body, "no CPU profile is being taken") {
		t.Errorf("pprof/stop again: %d %s, want 409", code, body)
	}
}
