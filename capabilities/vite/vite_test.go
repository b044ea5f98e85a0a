package vite

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/capabilities/node"
	"github.com/wattd/wattd/supervisor/freeport"
)

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeNode installs an executable "node" that prints its arguments and
// points WATTD_NODE at it.
func fakeNode(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "node")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(node.EnvNode, p)
	return p
}

// viteApp makes an app directory with the given package.json and, when
// install is set, a node_modules/vite/bin/vite.js.
func viteApp(t *testing.T, pkg string, install bool) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), pkg)
	if install {
		writeFile(t, filepath.Join(dir, viteBin), "// vite\n")
	}
	return dir
}

func TestViteRegistered(t *testing.T) {
	c, err := capabilities.Get(ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() != "vite" {
		t.Fatalf("id %q", c.ID())
	}
}

func TestViteDetect(t *testing.T) {
	cases := []struct {
		name string
		pkg  string // "" = no package.json
		want bool
	}{
		{"devDependency", `{"devDependencies":{"vite":"^8.0.0"}}`, true},
		{"dependency", `{"dependencies":{"vite":"^7.0.0","react":"^19.0.0"}}`, true},
		{"next app with vite for tests", `{"dependencies":{"next":"^16.0.0"},"devDependencies":{"vite":"^8.0.0"}}`, false},
		{"next as devDependency", `{"dependencies":{"vite":"^8.0.0"},"devDependencies":{"next":"^16.0.0"}}`, false},
		{"no vite", `{"dependencies":{"express":"^5.0.0"}}`, false},
		{"vite only in scripts", `{"scripts":{"build":"vite build"}}`, false},
		{"invalid json", `{"devDependencies":`, false},
		{"no package.json", "", false},
	}
	c := &Capability{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.pkg != "" {
				writeFile(t, filepath.Join(dir, "package.json"), tc.pkg)
			}
			got, err := c.Detect(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Detect = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := c.Detect(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Detect of a missing directory: no error")
	}
	f := filepath.Join(t.TempDir(), "file")
	writeFile(t, f, "x")
	if _, err := c.Detect(f); err == nil {
		t.Error("Detect of a file: no error")
	}
}

// TestDetectOrder: the registry tries vite before the node fallback, so a
// Vite app is not taken for a plain Node.js app.
func TestViteDetectOrder(t *testing.T) {
	dir := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, false)
	c, err := capabilities.Detect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() != ID {
		t.Fatalf("detected %q, want vite", c.ID())
	}
	plain := viteApp(t, `{"main":"index.js"}`, false)
	c, err = capabilities.Detect(plain)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() != node.ID {
		t.Fatalf("plain app detected as %q", c.ID())
	}
}

func TestVitePrepareWithoutBuild(t *testing.T) {
	dir := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, true)
	_, err := (&Capability{}).Prepare(capabilities.App{ID: "web", Dir: dir})
	want := `app "web": no Vite build in ` + filepath.Join(dir, "dist") + "; run `wattd build`"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	// A dist without index.html (a library build, or a build in progress)
	// is not a site either.
	writeFile(t, filepath.Join(dir, "dist", "lib.js"), "")
	if _, err := (&Capability{}).Prepare(capabilities.App{ID: "web", Dir: dir}); err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	if _, err := (&Capability{}).Prepare(capabilities.App{ID: "web", Dir: "rel/dir"}); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("relative dir: %v", err)
	}
}

func TestVitePrepareServesDist(t *testing.T) {
	dir := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, false)
	writeFile(t, filepath.Join(dir, "dist", "index.html"), "<h1>hi</h1>")
	l, err := (&Capability{}).Prepare(capabilities.App{ID: "web", Dir: dir, Env: map[string]string{"A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	// The running binary, not the file at its path (which an upgrade may
	// have replaced).
	want := []string{"/proc/self/exe", StaticArg, "--spa", filepath.Join(dir, "dist")}
	if !reflect.DeepEqual(l.Argv, want) {
		t.Fatalf("argv %q\nwant %q", l.Argv, want)
	}
	if l.Dir != dir || l.Env["A"] != "1" || l.Fronted || l.NoWatch {
		t.Fatalf("launch %+v", l)
	}
}

func TestViteOutDirFromConfig(t *testing.T) {
	t.Run("literal outDir", func(t *testing.T) {
		dir := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, false)
		writeFile(t, filepath.Join(dir, "vite.config.ts"), `
import { defineConfig } from 'vite'
export default defineConfig({
  build: { outDir: "build/site", sourcemap: true },
})
`)
		out := filepath.Join(dir, "build", "site")
		_, err := (&Capability{}).Prepare(capabilities.App{ID: "web", Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "no Vite build in "+out+";") {
			t.Fatalf("error names the configured outDir: %v", err)
		}
		writeFile(t, filepath.Join(out, "index.html"), "x")
		got, err := BuildDir(dir)
		if err != nil || got != out {
			t.Fatalf("BuildDir = %q, %v; want %q", got, err, out)
		}
	})
	t.Run("outDir relative to root", func(t *testing.T) {
		dir := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, false)
		writeFile(t, filepath.Join(dir, "vite.config.js"), `export default { root: 'src', build: { outDir: '../public-build', emptyOutDir: true } }`)
		out := filepath.Join(dir, "public-build")
		writeFile(t, filepath.Join(out, "index.html"), "x")
		if got, err := BuildDir(dir); err != nil || got != out {
			t.Fatalf("BuildDir = %q, %v; want %q", got, err, out)
		}
	})
	t.Run("plugin outDir without a site falls back to dist", func(t *testing.T) {
		dir := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, false)
		writeFile(t, filepath.Join(dir, "vite.config.mjs"), `export default { plugins: [dts({ outDir: 'types' })] }`)
		writeFile(t, filepath.Join(dir, "types", "index.d.ts"), "")
		writeFile(t, filepath.Join(dir, "dist", "index.html"), "x")
		if got, err := BuildDir(dir); err != nil || got != filepath.Join(dir, "dist") {
			t.Fatalf("BuildDir = %q, %v", got, err)
		}
	})
	t.Run("computed outDir is not seen", func(t *testing.T) {
		dir := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, false)
		writeFile(t, filepath.Join(dir, "vite.config.js"), "export default { build: { outDir: `${process.env.OUT}/x` } }")
		want := []string{filepath.Join(dir, "dist")}
		if got := OutDirs(dir); !reflect.DeepEqual(got, want) {
			t.Fatalf("OutDirs = %q, want %q", got, want)
		}
	})
}

func TestViteBuildCommand(t *testing.T) {
	nodeBin := fakeNode(t)
	dir := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, true)
	c := &Capability{}
	l, err := c.BuildCommand(capabilities.App{ID: "web", Dir: dir, NodeOptions: "--max-old-space-size=512", Env: map[string]string{"B": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{nodeBin, "--max-old-space-size=512", filepath.Join(dir, "node_modules/vite/bin/vite.js"), "build"}
	if !reflect.DeepEqual(l.Argv, want) || l.Dir != dir || l.Env["B"] != "2" {
		t.Fatalf("launch %+v\nwant argv %q", l, want)
	}

	// Hoisted into a workspace's node_modules.
	ws := t.TempDir()
	writeFile(t, filepath.Join(ws, viteBin), "")
	app := filepath.Join(ws, "packages", "site")
	writeFile(t, filepath.Join(app, "package.json"), `{"devDependencies":{"vite":"^8.0.0"}}`)
	l, err = c.BuildCommand(capabilities.App{ID: "site", Dir: app})
	if err != nil {
		t.Fatal(err)
	}
	if l.Argv[1] != filepath.Join(ws, viteBin) {
		t.Fatalf("hoisted vite: argv %q", l.Argv)
	}

	// Not installed: say so, and how to fix it.
	bare := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, false)
	_, err = c.BuildCommand(capabilities.App{ID: "web", Dir: bare})
	if err == nil || !strings.Contains(err.Error(), `app "web": vite is not installed`) || !strings.Contains(err.Error(), "npm install") {
		t.Fatalf("error %v", err)
	}
}

func TestVitePrepareDev(t *testing.T) {
	fakeNode(t)
	dir := viteApp(t, `{"devDependencies":{"vite":"^8.0.0"}}`, true)
	c := &Capability{}
	app := capabilities.App{ID: "web", Dir: dir, Mode: capabilities.Development}
	l, err := c.PrepareDev(app)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Fronted || !l.NoWatch || l.Dir != dir {
		t.Fatalf("launch %+v: want Fronted, NoWatch, Dir", l)
	}
	// Prepare in development mode is the same launch.
	if lp, err := c.Prepare(app); err != nil || !reflect.DeepEqual(lp, l) {
		t.Fatalf("Prepare(dev) = %+v, %v", lp, err)
	}
	// The worker's argv puts $PORT into Vite's arguments.
	cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
	cmd.Dir = l.Dir
	cmd.Env = append(os.Environ(), "PORT=4321")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := filepath.Join(dir, viteBin) + " --host 127.0.0.1 --port 4321 --strictPort --clearScreen false"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("node got %q\nwant %q", got, want)
	}
	// Without PORT it fails at once with a message instead of letting Vite
	// pick a port wattd does not know.
	cmd = exec.Command(l.Argv[0], l.Argv[1:]...)
	cmd.Env = withoutPort(os.Environ())
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "PORT") {
		t.Fatalf("without PORT: %v %s", err, out)
	}
}

func withoutPort(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PORT=") {
			out = append(out, kv)
		}
	}
	return out
}

// TestPrepareDevRunsVite runs the development launch of the fixture app
// with the real Vite (when it is installed) and fetches the page from it.
func TestVitePrepareDevRunsVite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node")
	}
	_, file, _, _ := runtime.Caller(0)
	fixture := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "apps", "vite")
	if _, err := os.Stat(filepath.Join(fixture, viteBin)); err != nil {
		t.Skip("fixture not installed (make deps)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node")
	}
	fixture, _ = filepath.Abs(fixture)
	l, err := (&Capability{}).PrepareDev(capabilities.App{ID: "web", Dir: fixture, Mode: capabilities.Development})
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.Argv[0], l.Argv[1:]...)
	cmd.Dir = l.Dir
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				body = string(b)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vite dev server did not answer on %s: %v\n%s", url, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The dev server injects its client and serves the source module.
	if !strings.Contains(body, "/@vite/client") || !strings.Contains(body, `id="app"`) {
		t.Fatalf("not the dev server's index.html:\n%s", body)
	}
	resp, err := http.Get(url + "/src/main.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("/src/main.js: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
