package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// compileCacheApp writes a small node:http app of two modules, whose
// answer is the compile cache directory Node.js says it uses ("" for
// none), into a fresh directory.
func compileCacheApp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"package.json": `{"name":"cc","private":true,"main":"index.js"}`,
		"lib.js":       "module.exports = (m) => (m.getCompileCacheDir ? m.getCompileCacheDir() : undefined) || ''\n",
		"index.js": "const m = require('node:module')\nconst dirOf = require('./lib.js')\n" +
			"require('node:http').createServer((req, res) => res.end(dirOf(m))).listen(3000)\n",
	})
	return dir
}

// TestCompileCache: with "compileCache": true the workers run with Node.js's
// module compile cache in the application's .plt/compile-cache, the preload
// writes it while the worker runs (a worker ends by a signal, so Node.js's
// own write at exit never happens), and the next start of wattd loads the
// app's modules from it. On a Node.js without the cache the setting is
// ignored and the app serves as usual.
func TestCompileCache(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		version := nodeVersion(t, node)
		t.Run(version, func(t *testing.T) {
			app := compileCacheApp(t)
			dir := project(t, map[string]any{
				"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"compileCache": true,
				"applications": []any{map[string]any{"id": "cc", "path": app}},
			})
			cacheDir := filepath.Join(app, ".plt", "compile-cache")
			port := freePort(t)
			d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node}})
			body := waitHTTP(t, d.url("/"), 30*time.Second)
			if !nodeAtLeast(version, 22, 10) {
				// 22.1 to 22.9 have the cache but no way to write it before
				// a signal ends the worker; older ones have none.
				if !nodeAtLeast(version, 22, 1) && body != "" {
					t.Errorf("Node.js %s reports a compile cache %q", version, body)
				}
				return
			}
			if !strings.HasPrefix(body, cacheDir+string(filepath.Separator)) {
				t.Fatalf("the worker's compile cache is %q, want one under %s", body, cacheDir)
			}
			// Written after ready, while the worker still runs.
			waitFor(t, 20*time.Second, "compile cache files in "+body, func() bool {
				entries, err := os.ReadDir(body)
				return err == nil && len(entries) >= 2
			})
			d.signal(syscall.SIGTERM)
			if code := d.wait(30 * time.Second); code != 0 {
				t.Fatalf("wattd exit %d", code)
			}

			d = startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node, "NODE_DEBUG_NATIVE=COMPILE_CACHE"}})
			waitHTTP(t, d.url("/"), 30*time.Second)
			// Node.js 24 says "V8 code cache for CommonJS FILE was accepted",
			// 22 "cache for FILE was accepted, keeping the in-memory entry".
			for _, m := range []string{"index.js", "lib.js"} {
				file := filepath.Join(app, m)
				waitFor(t, 20*time.Second, "Node.js to accept the cache of "+file, func() bool {
					out := d.out.String()
					return strings.Contains(out, "CommonJS "+file+" was accepted") || strings.Contains(out, "cache for "+file+" was accepted")
				})
			}
		})
	}
}

// TestCompileCacheUnwritable: a cache directory wattd cannot create is
// warned about, naming the application, and the application starts
// without the cache.
func TestCompileCacheUnwritable(t *testing.T) {
	integration(t)
	app := compileCacheApp(t)
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := project(t, map[string]any{
		"server": map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "cc", "path": app,
			"compileCache": map[string]any{"directory": filepath.Join(blocker, "cache")}}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"WATTD_NODE=" + nodePath(t, testNodes[len(testNodes)-1])}})
	if body := waitHTTP(t, d.url("/"), 30*time.Second); body != "" {
		t.Errorf("the worker uses compile cache %q", body)
	}
	d.waitOutput("cannot create the directory", 5*time.Second)
	out := d.out.String()
	i := strings.Index(out, "cannot create the directory")
	line := out[strings.LastIndex(out[:i], "\n")+1:]
	if line = line[:strings.Index(line+"\n", "\n")]; !strings.Contains(line, `"name":"cc"`) {
		t.Errorf("the warning does not name the application:\n%s", out)
	}
}

// TestCompileCacheReadOnly: a cache directory that exists but that the
// workers cannot write to (a read-only mount) is warned about once at the
// start, naming the directory and that the cache will only be read, however
// many applications and workers use it; the applications serve.
func TestCompileCacheReadOnly(t *testing.T) {
	integration(t)
	cache := t.TempDir()
	if os.Geteuid() == 0 {
		// Root writes to any mode; only a read-only mount stops it.
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", cache).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a read-only file system: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", cache).Run() })
	} else if err := os.Chmod(cache, 0o555); err != nil {
		t.Fatal(err)
	}
	cc := map[string]any{"directory": cache}
	dir := project(t, map[string]any{
		"server":  map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"workers": 2,
		"applications": []any{
			map[string]any{"id": "cc", "path": compileCacheApp(t), "compileCache": cc},
			map[string]any{"id": "other", "path": compileCacheApp(t), "compileCache": cc},
		},
		"entrypoint": "cc",
	})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"WATTD_NODE=" + nodePath(t, testNodes[len(testNodes)-1])}})
	waitHTTP(t, d.url("/"), 30*time.Second)
	d.waitReady("other", 30*time.Second)
	const warning = "compileCache: the workers cannot write to the directory; Node.js will only read the cache already there, never write it"
	if got := logEntries(d.out.String(), warning); len(got) != 1 || got[0]["directory"] != cache {
		t.Errorf("want one warning naming %s, got %v:\n%s", cache, got, d.out.String())
	}
}
