package main_test

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The Next.js fixture (testdata/apps/next) is built once per test binary
// run, by `wattd build` itself, and every test below serves that build.
var (
	nextBuildOnce sync.Once
	nextBuildErr  error
)

// nextNodes returns the test nodes that Next.js 16 runs on (20.9 or later).
func nextNodes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, n := range testNodes {
		node := nodePath(t, n)
		if nodeAtLeast(nodeVersion(t, node), 20, 9) {
			out = append(out, node)
		} else {
			t.Logf("skipping %s for Next.js 16 (needs Node.js 20.9 or later)", nodeVersion(t, node))
		}
	}
	if len(out) == 0 {
		t.Skip("no test node runs Next.js 16")
	}
	return out
}

// nodeAtLeast compares a "vMAJOR.MINOR.PATCH" version.
func nodeAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}

// nextProject is a watt.json with the Next.js fixture as the entrypoint
// (app id "next") and the Express fixture beside it for the mesh.
func nextProject(t *testing.T, nextPath string, workers int) string {
	return project(t, map[string]any{
		"entrypoint": "next",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "next", "path": nextPath, "workers": workers},
			map[string]any{"id": "express", "path": fixture("apps/express"), "workers": 1},
		},
	})
}

// buildNextFixture runs `wattd build` for the fixture once; later calls
// report the first one's result.
func buildNextFixture(t *testing.T, node string) {
	t.Helper()
	nextBuildOnce.Do(func() {
		app := fixture("apps/next")
		if _, err := os.Stat(filepath.Join(app, "node_modules", "next", "package.json")); err != nil {
			nextBuildErr = fmt.Errorf("the Next.js fixture has no node_modules (run make deps, or npm ci in %s): %w", app, err)
			return
		}
		dir := nextProject(t, app, 1)
		cmd := exec.Command(wattdBin, "build", "--app", "next", dir)
		cmd.Env = append(os.Environ(), "WATTD_NODE="+node, "PLT_SERVER_PORT="+strconv.Itoa(freePort(t)))
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			nextBuildErr = fmt.Errorf("wattd build: %v\n%s", err, out)
			return
		}
		if _, err := os.Stat(filepath.Join(app, ".next", "BUILD_ID")); err != nil {
			nextBuildErr = fmt.Errorf("wattd build left no .next/BUILD_ID: %v\n%s", err, out)
			return
		}
		t.Logf("wattd build of the Next.js fixture took %s", time.Since(start).Round(100*time.Millisecond))
	})
	if nextBuildErr != nil {
		t.Fatal(nextBuildErr)
	}
}

// checkNextApp checks the fixture's three pages: static text, a route
// handler answering from the given worker pids, and a server component
// that calls the express app over the mesh.
func checkNextApp(t *testing.T, d *daemon, pids map[int]bool) {
	t.Helper()
	if _, body, err := get(fresh, d.url("/")); err != nil || !strings.Contains(body, "Hello from Next.js on wattd") {
		t.Fatalf("GET /: %v\n%s", err, body)
	}
	seen := map[int]bool{}
	waitFor(t, 15*time.Second, fmt.Sprintf("every worker of %v to answer /api/hello", pids), func() bool {
		code, body, err := get(fresh, d.url("/api/hello"))
		if err != nil || code != 200 {
			return false
		}
		var r struct {
			From string
			PID  int
		}
		if json.Unmarshal([]byte(body), &r) != nil || r.From != "next" {
			t.Fatalf("/api/hello answered %s", body)
		}
		if !pids[r.PID] {
			t.Fatalf("/api/hello answered from pid %d, not a worker of next (%v)", r.PID, pids)
		}
		seen[r.PID] = true
		return len(seen) == len(pids)
	})
	express := d.waitReady("express", 10*time.Second)
	want := fmt.Sprintf(`{"framework":"express","pid":%d}`, express.Workers[0].PID)
	code, body, err := get(fresh, d.url("/mesh"))
	if err != nil || code != 200 || !strings.Contains(html.UnescapeString(body), want) {
		t.Fatalf("GET /mesh: %d %v, want %s in\n%s", code, err, want, body)
	}
}

// TestNextStartServesBuildWithWorkers: a built Next.js app runs as 2
// workers on one port (`next start` under the preload), a route handler
// answers from both, a server component reaches another app over the
// mesh, and SIGTERM stops everything with exit 0.
func TestNextStartServesBuildWithWorkers(t *testing.T) {
	integration(t)
	nodes := nextNodes(t)
	buildNextFixture(t, nodes[0])
	for _, node := range nodes {
		t.Run(nodeVersion(t, node), func(t *testing.T) {
			port := freePort(t)
			dir := nextProject(t, fixture("apps/next"), 2)
			start := time.Now()
			d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node}})
			waitHTTP(t, d.url("/"), 30*time.Second)
			t.Logf("first 200 from / after %s", time.Since(start).Round(10*time.Millisecond))
			a := d.waitReady("next", 10*time.Second)
			if a.Capability != "next" {
				t.Errorf("capability %q, want next", a.Capability)
			}
			if len(a.Workers) != 2 {
				t.Fatalf("want 2 workers, got %+v", a.Workers)
			}
			pids := map[int]bool{}
			for _, w := range a.Workers {
				pids[w.PID] = true
			}
			checkNextApp(t, d, pids)

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

// TestNextStartWithoutBuildFails: with no build, wattd start stops before
// starting anything and says to run wattd build.
func TestNextStartWithoutBuildFails(t *testing.T) {
	integration(t)
	app := t.TempDir()
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{
		"name":         "unbuilt",
		"dependencies": map[string]any{"next": "16.4.5", "react": "19.3.1", "react-dom": "19.3.1"},
	})
	dir := nextProject(t, app, 2)
	start := time.Now()
	d := startWattd(t, dir, freePort(t), startOpts{})
	if code := d.wait(15 * time.Second); code == 0 {
		t.Fatalf("wattd start without a build exited 0\n%s", d.out.String())
	}
	want := fmt.Sprintf("no Next.js build in %s; run `wattd build`", filepath.Join(app, ".next"))
	if out := d.out.String(); !strings.Contains(out, want) {
		t.Fatalf("output does not say %q:\n%s", want, out)
	}
	if strings.Contains(d.out.String(), "worker ready") {
		t.Fatalf("a worker started before the error:\n%s", d.out.String())
	}
	t.Logf("failed after %s", time.Since(start).Round(10*time.Millisecond))
}

// TestNextDev: wattd dev runs the Next.js dev server in the worker process
// itself, so it is served on wattd's port and reaches the mesh too. It
// writes only under .next/dev in the fixture.
func TestNextDev(t *testing.T) {
	integration(t)
	node := nextNodes(t)[0]
	app := fixture("apps/next")
	if _, err := os.Stat(filepath.Join(app, "node_modules", "next", "package.json")); err != nil {
		t.Fatalf("the Next.js fixture has no node_modules (run make deps): %v", err)
	}
	dir := nextProject(t, app, 1)
	start := time.Now()
	d := startWattd(t, dir, freePort(t), startOpts{dev: true, env: []string{"WATTD_NODE=" + node}})
	waitHTTP(t, d.url("/"), 60*time.Second)
	t.Logf("first 200 from the dev server after %s", time.Since(start).Round(10*time.Millisecond))
	a := d.waitReady("next", 10*time.Second)
	checkNextApp(t, d, map[int]bool{a.Workers[0].PID: true})
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if alive(a.Workers[0].PID) {
		t.Errorf("dev worker %d outlived wattd", a.Workers[0].PID)
	}
}
