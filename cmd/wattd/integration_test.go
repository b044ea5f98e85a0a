package main_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFrameworksServeOnePortWithWorkers runs unchanged node:http, Express
// and Fastify apps with 2 workers each on one public port, on every node
// in WATTD_TEST_NODES, and checks that both workers take requests, that
// ctl ps tells the truth, and that SIGTERM stops everything with exit 0.
func TestFrameworksServeOnePortWithWorkers(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		ver := nodeVersion(t, node)
		for _, fw := range []string{"plain", "express", "fastify"} {
			t.Run(ver+"/"+fw, func(t *testing.T) {
				port := freePort(t)
				dir := project(t, map[string]any{
					"entrypoint":   "web",
					"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
					"applications": []any{map[string]any{"id": "web", "path": fixture("apps/" + fw), "workers": 2}},
				})
				d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node}})
				waitHTTP(t, d.url("/"), 20*time.Second)
				a := d.waitReady("web", 10*time.Second)
				if len(a.Workers) != 2 {
					t.Fatalf("want 2 workers, got %+v", a.Workers)
				}
				pids := map[int]bool{}
				for _, w := range a.Workers {
					pids[w.PID] = true
					if w.RSS == 0 {
						t.Errorf("worker %d: RSS not reported", w.Index)
					}
				}
				// New connections are spread by the kernel over the two
				// sockets; within a bounded number of tries both answer.
				seen := map[int]bool{}
				waitFor(t, 10*time.Second, "both workers to answer", func() bool {
					code, body, err := get(fresh, d.url("/"))
					if err != nil || code != 200 {
						return false
					}
					var r struct{ PID int }
					if json.Unmarshal([]byte(body), &r) == nil && pids[r.PID] {
						seen[r.PID] = true
					}
					return len(seen) == 2
				})
				if fw == "express" || fw == "fastify" {
					if _, body, _ := get(fresh, d.url("/")); !strings.Contains(body, fw) {
						t.Fatalf("response is not from %s: %s", fw, body)
					}
				}
				d.signal(syscall.SIGTERM)
				if code := d.wait(20 * time.Second); code != 0 {
					t.Fatalf("exit code %d after SIGTERM", code)
				}
				for pid := range pids {
					if alive(pid) {
						t.Errorf("worker %d outlived wattd", pid)
					}
				}
			})
		}
	}
}

// TestCrashedWorkerReplacedOnSameSocket: a worker that crashes under load
// is replaced; the port never refuses a connection meanwhile.
func TestCrashedWorkerReplacedOnSameSocket(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/crash-later"), "workers": 1}},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"CRASH_AFTER_MS=700"}})
	waitHTTP(t, d.url("/"), 20*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	var res *loadResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); res = load(ctx, d.url("/"), 4) }()
	waitFor(t, 20*time.Second, "three restarts", func() bool {
		a := d.app("web")
		return a.Workers[0].Restarts >= 3
	})
	cancel()
	wg.Wait()
	if res.refused != 0 {
		t.Fatalf("%d connections refused during restarts (ok %d, failed %d)", res.refused, res.ok, res.failed)
	}
	if res.ok == 0 {
		t.Fatal("no request succeeded")
	}
	a := d.app("web")
	if a.Workers[0].LastExit != "exit status 7" {
		t.Fatalf("last exit %q, want exit status 7", a.Workers[0].LastExit)
	}
	if a.State == "failed" {
		t.Fatalf("a worker that was healthy for a while was marked failed: %s", a.Reason)
	}
	t.Logf("under crashes: ok %d, failed %d (in flight when a worker died), refused %d", res.ok, res.failed, res.refused)
}

// TestCrashAtStartFailsAppKeepsOthers: an app that cannot start is
// retried with backoff, then marked failed with its stderr in the reason
// and the log, while the other app keeps serving.
func TestCrashAtStartFailsAppKeepsOthers(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":    map[string]any{"initialDelay": 20, "maxDelay": 100, "maxRestarts": 3},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain")},
			map[string]any{"id": "db", "path": fixture("faults/crash-start"), "resources": map[string]any{"memory": "64MiB"}},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	var db struct {
		State, Reason string
	}
	waitFor(t, 20*time.Second, "db to be failed", func() bool {
		a := d.app("db")
		db.State, db.Reason = a.State, a.Reason
		return a.State == "failed"
	})
	if !strings.Contains(db.Reason, "crash loop") || !strings.Contains(db.Reason, "exit status 3") || !strings.Contains(db.Reason, "ECONNREFUSED") {
		t.Fatalf("reason %q should say crash loop, the exit status and the last stderr line", db.Reason)
	}
	if !strings.Contains(d.out.String(), "FATAL: could not connect to postgres") {
		t.Fatal("the failing worker's stderr is not in wattd's log")
	}
	if code, _, err := get(fresh, d.url("/")); err != nil || code != 200 {
		t.Fatalf("web stopped serving: %d %v", code, err)
	}
	// No process, no usage; the limit its workers are held to still shows.
	if out, _ := d.ctl("ps"); !strings.Contains(out, "crash loop") || !regexp.MustCompile(`(?m)^db\s.*\s- / 64\.0 MiB`).MatchString(out) {
		t.Fatalf("ctl ps does not show the reason and the memory limit:\n%s", out)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestMovedAppDirectoryIsNamed: an application whose folder is moved away
// while wattd runs cannot start again; the restart's error and the slot's
// reason name the folder, not the program, which the kernel's answer
// names. Put back, the application serves again.
func TestMovedAppDirectoryIsNamed(t *testing.T) {
	integration(t)
	root := t.TempDir()
	api := filepath.Join(root, "api")
	copyDir(t, fixture("apps/plain"), api)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":    map[string]any{"initialDelay": 20, "maxDelay": 200},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain")},
			map[string]any{"id": "api", "path": api},
		},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("api", 20*time.Second)
	if err := os.Rename(api, api+".moved"); err != nil {
		t.Fatal(err)
	}
	out, err := d.ctl("restart", "api")
	want := "the application's directory " + api + " does not exist"
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("ctl restart api of a moved folder: %v\n%s\nwant it to say %q", err, out, want)
	}
	if strings.Contains(out, "/proc/self/exe") {
		t.Errorf("the error names the exec helper: %s", out)
	}
	if err := os.Rename(api+".moved", api); err != nil {
		t.Fatal(err)
	}
	if out, err := d.ctl("restart", "api"); err != nil {
		t.Fatalf("ctl restart api once put back: %v\n%s", err, out)
	}
	d.waitReady("api", 20*time.Second)
}

// TestEveryAppFailedExitsNonZero: with nothing left to run wattd exits 1.
func TestEveryAppFailedExitsNonZero(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":      map[string]any{"initialDelay": 10, "maxDelay": 20, "maxRestarts": 1},
		"applications": []any{map[string]any{"id": "db", "path": fixture("faults/crash-start")}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	if code := d.wait(30 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if !strings.Contains(d.out.String(), "FATAL: could not connect") {
		t.Fatal("stderr of the failing worker not shown")
	}
}

// TestRestartOnErrorFalse: a crashed worker stays down.
func TestRestartOnErrorFalse(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":     "web",
		"restartOnError": false,
		"server":         map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain")},
			map[string]any{"id": "crashy", "path": fixture("faults/crash-later")},
		},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"CRASH_AFTER_MS=300"}})
	waitHTTP(t, d.url("/"), 20*time.Second)
	waitFor(t, 10*time.Second, "crashy to fail", func() bool { return d.app("crashy").State == "failed" })
	a := d.app("crashy")
	if a.Workers[0].Restarts != 0 || a.Workers[0].PID != 0 || !strings.Contains(a.Reason, "restartOnError") {
		t.Fatalf("restartOnError false not honoured: %+v", a)
	}
}

// TestSlowStartReadyWhenListening: a worker is ready when it listens, not
// when its process exists; the runtime says so.
func TestSlowStartReadyWhenListening(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/slow-start")}},
	})
	start := time.Now()
	d := startWattd(t, dir, port, startOpts{env: []string{"SLOW_START_MS=1500"}})
	waitFor(t, 10*time.Second, "ctl to answer", func() bool { _, err := d.ctl("status"); return err == nil })
	if st := d.app("web").Workers[0].State; st != "starting" && time.Since(start) < 1400*time.Millisecond {
		t.Fatalf("state %q before the app listened", st)
	}
	d.waitReady("web", 10*time.Second)
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Fatalf("ready after %s, before the app listened", el)
	}
	if out, _ := d.ctl("status"); !strings.Contains(out, "running") {
		t.Fatalf("ctl status:\n%s", out)
	}
}

// TestGracefulStopFinishesInFlight: SIGTERM lets a slow request finish,
// then stops with exit 0.
func TestGracefulStopFinishesInFlight(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"gracefulShutdown": map[string]any{"runtime": 10000, "application": 5000},
		"applications":     []any{map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 2}},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_STATS_INTERVAL_MS=100"}})
	waitHTTP(t, d.url("/"), 20*time.Second)
	a := d.waitReady("web", 10*time.Second)
	type result struct {
		code int
		err  error
	}
	results := make(chan result, 4)
	for range 4 {
		go func() {
			code, _, err := get(fresh, d.url("/slow?ms=3000"))
			results <- result{code, err}
		}()
	}
	// The requests are in flight once each worker reports an open
	// connection; poll rather than guess.
	waitFor(t, 10*time.Second, "slow requests in flight", func() bool {
		n := 0
		for _, w := range d.app("web").Workers {
			n += w.ActiveConns
		}
		return n >= 4
	})
	d.signal(syscall.SIGTERM)
	for range 4 {
		r := <-results
		if r.err != nil || r.code != 200 {
			t.Fatalf("in-flight request cut by the graceful stop: %d %v", r.code, r.err)
		}
	}
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if _, _, err := get(fresh, d.url("/")); err == nil {
		t.Fatal("port still answering after wattd exited")
	}
	for _, w := range a.Workers {
		if alive(w.PID) {
			t.Errorf("worker %d outlived wattd", w.PID)
		}
	}
}
