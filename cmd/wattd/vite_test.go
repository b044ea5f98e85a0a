package main_test

import (
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
)

// buildViteFixture runs the fixture's production build. It calls Vite
// directly, the same command the vite capability gives `wattd build`, so
// this test depends on the capability and the fixture only.
func buildViteFixture(t *testing.T) string {
	t.Helper()
	dir := fixture("apps/vite")
	cli := filepath.Join(dir, "node_modules", "vite", "bin", "vite.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("the vite fixture is not installed (make deps, or npm ci in %s): %v", dir, err)
	}
	start := time.Now()
	cmd := exec.Command("node", cli, "build")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vite build: %v\n%s", err, out)
	}
	t.Logf("vite build took %s", time.Since(start).Round(time.Millisecond))
	return dir
}

// TestViteStaticSite serves the built Vite fixture with two workers that
// are wattd itself as a static file server: the index, client-side routes,
// hashed assets with long-lived caching, 404 for missing files, ctl ps and
// a clean SIGTERM.
func TestViteStaticSite(t *testing.T) {
	integration(t)
	app := buildViteFixture(t)
	index, err := os.ReadFile(filepath.Join(app, "dist", "index.html"))
	if err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":   "site",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "site", "path": app, "workers": 2}},
	})
	start := time.Now()
	// Periodic stats only every 10 minutes: what ctl ps shows is the
	// report each worker sends before it says ready.
	d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_STATS_INTERVAL_MS=600000"}})
	body := waitHTTP(t, d.url("/"), 20*time.Second)
	a := d.waitReady("site", 10*time.Second)
	t.Logf("first 200 and both workers ready after %s", time.Since(start).Round(time.Millisecond))
	if body != string(index) {
		t.Fatalf("GET / is not dist/index.html:\n%s", body)
	}
	if a.Capability != "vite" || len(a.Workers) != 2 {
		t.Fatalf("ctl ps: %+v", a)
	}
	pids := map[int]bool{}
	for _, w := range a.Workers {
		if w.State != "ready" || w.PID == 0 {
			t.Fatalf("worker %+v not ready", w)
		}
		if w.HeapUsed == 0 {
			t.Errorf("worker %d: no stats report before ready", w.PID)
		}
		pids[w.PID] = true
		// The worker is wattd's static server, not a node process.
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(w.PID) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) < 4 || args[1] != "__wattd-static" || args[len(args)-1] != filepath.Join(app, "dist") {
			t.Fatalf("worker %d runs %q", w.PID, args)
		}
	}

	// Client-side routes get index.html.
	for _, p := range []string{"/some/route", "/users/42/settings"} {
		code, b, err := get(fresh, d.url(p))
		if err != nil || code != 200 || b != string(index) {
			t.Fatalf("GET %s: %d %v (index.html? %v)", p, code, err, b == string(index))
		}
	}

	// Hashed assets: the right type and cached for good.
	assets := regexp.MustCompile(`/assets/[^"]+\.(js|css)`).FindAllString(string(index), -1)
	if len(assets) != 2 {
		t.Fatalf("index.html links %q, want one script and one stylesheet", assets)
	}
	for _, p := range assets {
		resp, err := fresh.Get(d.url(p))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := "text/javascript; charset=utf-8"
		if strings.HasSuffix(p, ".css") {
			want = "text/css; charset=utf-8"
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want ||
			resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Fatalf("GET %s: %d %v", p, resp.StatusCode, resp.Header)
		}
		// Revalidation answers 304.
		req, _ := http.NewRequest("GET", d.url(p), nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		resp, err = fresh.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("GET %s with its ETag: %d, want 304", p, resp.StatusCode)
		}
	}
	// The image imported by main.js is an asset too.
	svg, err := filepath.Glob(filepath.Join(app, "dist", "assets", "logo-*.svg"))
	if err != nil || len(svg) != 1 {
		t.Fatalf("hashed logo in dist/assets: %v %v", svg, err)
	}
	resp, err := fresh.Get(d.url("/assets/" + filepath.Base(svg[0])))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("svg: %d %v", resp.StatusCode, resp.Header)
	}
	// index.html is revalidated every time.
	resp, err = fresh.Get(d.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("index.html Cache-Control %q", resp.Header.Get("Cache-Control"))
	}

	// Missing files are 404, not the SPA page.
	for _, p := range []string{"/missing.js", "/assets/index-0ldHa5h0.js"} {
		if code, _, err := get(fresh, d.url(p)); err != nil || code != 404 {
			t.Fatalf("GET %s: %d %v, want 404", p, code, err)
		}
	}
	// Only GET and HEAD.
	resp, err = fresh.Post(d.url("/"), "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %d, want 405", resp.StatusCode)
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
	// The workers exited cleanly: drained, then SIGTERM, exit 0.
	if out := d.out.String(); strings.Contains(out, "ignored SIGTERM") || strings.Contains(out, "did not finish in-flight work") {
		t.Fatalf("unclean worker stop:\n%s", out)
	}
}

// TestViteDev: `wattd dev` runs Vite's own dev server, fronted on the
// public port, and stops with wattd.
func TestViteDev(t *testing.T) {
	integration(t)
	dir := fixture("apps/vite")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "vite", "bin", "vite.js")); err != nil {
		t.Fatalf("the vite fixture is not installed (make deps): %v", err)
	}
	proj := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "site", "path": dir}},
	})
	d := startWattd(t, proj, freePort(t), startOpts{dev: true})
	body := waitHTTP(t, d.url("/"), 60*time.Second)
	if !strings.Contains(body, "/@vite/client") {
		t.Fatalf("not Vite's dev server:\n%s", body)
	}
	pid := d.waitReady("site", 10*time.Second).Workers[0].PID
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if alive(pid) {
		t.Fatalf("vite dev server %d outlived wattd", pid)
	}
}

// TestViteStaticAfterTheBinaryIsRemoved: the static server workers are
// wattd itself, and start from the running binary as every worker does,
// not from the file at its path: once that file is removed (an upgrade,
// an uninstall), a static worker that dies is still replaced.
func TestViteStaticAfterTheBinaryIsRemoved(t *testing.T) {
	integration(t)
	bin := filepath.Join(t.TempDir(), "wattd")
	copyWattd(t, bin)
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name":"site","devDependencies":{"vite":"*"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(app, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "dist", "index.html"), []byte("<p>site</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "site", "path": app, "workers": 1}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{bin: bin})
	old := d.waitReady("site", 20*time.Second).Workers[0].PID
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a new static worker after the binary was removed, ready", func() bool {
		a := d.app("site")
		return len(a.Workers) == 1 && a.Workers[0].PID != old && a.Workers[0].State == "ready"
	})
	if body := waitHTTP(t, d.url("/"), 10*time.Second); body != "<p>site</p>\n" {
		t.Fatalf("GET / after the restart: %q", body)
	}
	// ps and top name it wattd, not "exe".
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(d.app("site").Workers[0].PID) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(comm)); got != "wattd" {
		t.Errorf("the static worker's process name is %q, want wattd", got)
	}
}
