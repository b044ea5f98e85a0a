package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// TestGoAndCommandApps: a Go program built by `wattd build` and a Python
// program started by the command capability, both listening on $PORT and
// fronted by wattd: served on the public port and on the mesh, restarted
// rolling without failed requests, stopped cleanly.
func TestGoAndCommandApps(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	dir := t.TempDir()
	copyDir(t, fixture("apps/goapp"), filepath.Join(dir, "goapp"))
	copyDir(t, fixture("apps/pyapp"), filepath.Join(dir, "pyapp"))
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"entrypoint": "goapp",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "goapp", "path": "./goapp", "workers": 2},
			map[string]any{"id": "pyapp", "path": "./pyapp", "capability": "command", "command": "python3 -u app.py", "workers": 2},
		},
	})
	early := exec.Command(wattdBin, "start", dir)
	early.Env = append(os.Environ(), "PLT_SERVER_PORT=0", "WATTD_RUNTIME_DIR="+t.TempDir())
	out, err := early.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "wattd build") {
		t.Fatalf("start before build should ask for `wattd build`: %v\n%s", err, out)
	}
	build := exec.Command(wattdBin, "build", "-d", dir)
	build.Env = early.Env
	if out, err := build.CombinedOutput(); err != nil || !strings.Contains(string(out), "goapp") || !strings.Contains(string(out), "built in") {
		t.Fatalf("wattd build: %v\n%s", err, out)
	}

	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{})
	body := waitHTTP(t, d.url("/"), 30*time.Second)
	if !strings.Contains(body, "go app") {
		t.Fatalf("GET /: %s", body)
	}
	d.waitReady("goapp", 10*time.Second)
	d.waitReady("pyapp", 10*time.Second)
	if out, err := d.ctl("inject", "pyapp", "/"); err != nil || !strings.Contains(out, "python app") {
		t.Fatalf("mesh to the command app: %v\n%s", err, out)
	}

	// A fronted app: the forwarders switch ports. Its kept-alive connections
	// end as the program's SIGTERM handling ends them.
	d.rollingRestartUnderLoad("goapp", true)
	after := d.app("goapp")
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, w := range after.Workers {
		if alive(w.PID) {
			t.Errorf("worker %d outlived wattd", w.PID)
		}
	}
}

// TestBuildFailureNamesApp: a failing build exits non-zero naming the app
// and the command, with the tail of the build's output.
func TestBuildFailureNamesApp(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	copyDir(t, fixture("apps/goapp"), filepath.Join(dir, "broken"))
	if err := os.WriteFile(filepath.Join(dir, "broken", "oops.go"), []byte("package main\n\nfunc oops() { undefinedThing() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"applications": []any{map[string]any{"id": "broken", "path": "./broken"}},
	})
	out, err := exec.Command(wattdBin, "build", "-d", dir).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, out)
	}
	for _, want := range []string{`app "broken"`, "go build", "undefinedThing"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestGoSDKApp: a Go program using the SDK takes its sockets by LISTEN_FDS
// (not fronted), reports ready, calls another app over the mesh with the
// SDK's table, restarts rolling without losing a request (kept-alive
// connections included), and drains on stop.
func TestGoSDKApp(t *testing.T) {
	integration(t)
	mport := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "api",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"metrics":    map[string]any{"hostname": "127.0.0.1", "port": mport},
		"applications": []any{
			map[string]any{"id": "api", "path": fixture("apps/gosdk"), "workers": 2},
			map[string]any{"id": "plain", "path": fixture("apps/plain")},
		},
	})
	port := freePort(t)
	buildApp(t, dir, "api", port)
	d := startWattd(t, dir, port, startOpts{})
	if body := waitHTTP(t, d.url("/"), 30*time.Second); !strings.Contains(body, "go sdk app") {
		t.Fatalf("GET /: %s", body)
	}
	a := d.waitReady("api", 10*time.Second)
	env, _ := os.ReadFile("/proc/" + strconv.Itoa(a.Workers[0].PID) + "/environ")
	if !strings.Contains(string(env), "LISTEN_FDS=2\x00") || strings.Contains(string(env), "\x00PORT=") {
		t.Fatalf("the SDK app should get its sockets by LISTEN_FDS, not a PORT")
	}
	// The SDK's stats: the Go runtime's series of each worker, under
	// its labels, and no V8 series.
	waitFor(t, 20*time.Second, "go_goroutines of both Go workers", func() bool {
		fams, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), "", "")
		if err != nil {
			return false
		}
		got := map[string]bool{}
		for _, m := range fams["go_goroutines"].GetMetric() {
			l := labelsOf(m)
			if l["applicationId"] == "api" && m.GetGauge().GetValue() > 0 {
				got[l["workerId"]] = true
			}
		}
		for _, m := range fams["nodejs_heap_size_total_bytes"].GetMetric() {
			if labelsOf(m)["applicationId"] == "api" {
				t.Errorf("a Go worker has V8 heap series: %v", m)
			}
		}
		return got["0"] && got["1"] && fams["go_memstats_alloc_bytes"] != nil && fams["go_info"] != nil
	})
	waitFor(t, 10*time.Second, "the mesh call from Go", func() bool {
		_, body, err := get(fresh, d.url("/call?app=plain"))
		return err == nil && strings.Contains(body, `"app":"plain"`)
	})
	// Profiles of a Go worker: Go's own, pprof already, passed on as
	// they are; there is no V8 JSON to give, nor a heap snapshot.
	profDir := t.TempDir()
	for typ, sample := range map[string]string{"cpu": "cpu", "heap": "inuse_space"} {
		file := filepath.Join(profDir, typ+".pb.gz")
		if out, err := d.ctl(typ+"-profile", "-t", "1s", "-w", "1", "-o", file, "api"); err != nil {
			t.Fatalf("ctl %s-profile of a Go worker: %v\n%s", typ, err, out)
		}
		p := readPprofTypes(t, file)
		if !slices.ContainsFunc(p.SampleType, func(v *profile.ValueType) bool { return v.Type == sample }) {
			t.Errorf("%s profile of a Go worker has %v", typ, p.SampleType)
		}
	}
	for args, want := range map[string]string{
		"cpu-profile -t 1s -f v8 api": "gives its profiles as pprof",
		"heap-snapshot api":           "the worker cannot take a heap snapshot",
	} {
		if out, err := d.ctl(strings.Fields(args)...); err == nil || !strings.Contains(out, want) {
			t.Errorf("ctl %s: %v, want an error saying %q:\n%s", args, err, want, out)
		}
	}
	d.rollingRestartUnderLoad("api", false)
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if strings.Contains(d.out.String(), "killing its process group") {
		t.Fatal("the SDK app was killed instead of draining")
	}
}

// TestFrontedProgramOnAnotherPortIsNamed: a fronted program (one that
// listens on $PORT) that listens on a port of its own instead is never
// ready; the reason it is killed at startTimeout says where it listens.
func TestFrontedProgramOnAnotherPortIsNamed(t *testing.T) {
	integration(t)
	port, other := freePort(t), freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": port},
		"startTimeout": 2000,
		"applications": []any{map[string]any{
			"id": "web", "path": fixture("apps/plain"), "capability": "command",
			"command": []any{nodePath(t, testNodes[0]), "-e",
				fmt.Sprintf("require('http').createServer((q, s) => s.end('elsewhere')).listen(%d, '127.0.0.1')", other)},
		}},
	})
	d := startWattd(t, dir, port, startOpts{})
	want := fmt.Sprintf("not ready within startTimeout (2s); its processes listen on 127.0.0.1:%d, not on the port in $PORT", other)
	d.waitOutput("worker not ready within startTimeout; killing it", 30*time.Second)
	waitFor(t, 10*time.Second, "the first start to fail, naming where the program listens", func() bool {
		ws := d.app("web").Workers
		return len(ws) == 1 && ws[0].LastExit == want
	})
}

// buildApp runs `wattd build --app app dir` as a start on port would see
// the project (PLT_SERVER_PORT), failing the test on an error.
// TestWorkerProtocolKey: a Go SDK program that says hello only after
// 1.5 s is taken, without the key, for one that does not speak the
// protocol and counted ready after 1 s, before it serves; with
// "workerProtocol": true it is ready on its own ready message.
func TestWorkerProtocolKey(t *testing.T) {
	integration(t)
	slow := map[string]any{"HELLO_DELAY_MS": "1500"}
	dir := project(t, map[string]any{
		"entrypoint": "told",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "told", "path": fixture("apps/gosdk"), "env": slow, "workerProtocol": true},
			map[string]any{"id": "untold", "path": fixture("apps/gosdk"), "env": slow},
		},
	})
	port := freePort(t)
	buildApp(t, dir, "told", port)
	buildApp(t, dir, "untold", port)
	d := startWattd(t, dir, port, startOpts{})
	d.waitOutput(`"name":"told","msg":"worker ready","worker":0,"how":"ready message"`, 30*time.Second)
	d.waitOutput(`"name":"untold","msg":"worker ready","worker":0,"how":"no control protocol; up for 1s"`, 30*time.Second)
	// Ready on its message, the told app serves at once.
	if _, body, err := get(fresh, d.url("/")); err != nil || !strings.Contains(body, "go sdk app") {
		t.Errorf("GET / once told is ready: %v %q", err, body)
	}
}

func buildApp(t *testing.T, dir, app string, port int) {
	t.Helper()
	build := exec.Command(wattdBin, "build", "--app", app, dir)
	build.Env = append(os.Environ(), "PLT_SERVER_PORT="+strconv.Itoa(port))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("wattd build: %v\n%s", err, out)
	}
}
