package main_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// permissionsApp answers /read?f=FILE with the file's content, /write?f=FILE
// by writing it, /model with whether the permission model is on, /dep with
// what a package of a node_modules above it says, /mesh
// with the other app's answer over the mesh, /admin with the status and
// body of a call to wattd's admin API (/mesh-admin: the other app's
// status); a refused call answers 500 and the error's code.
const permissionsApp = `const http = require('node:http')
const fs = require('node:fs')
const fail = (res, err) => { res.statusCode = 500; res.end(String(err.code || err.message)) }
const dep = (() => { try { return require('dep') } catch (err) { return err.code } })()
http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x')
  const f = u.searchParams.get('f')
  try {
    switch (u.pathname) {
      case '/read': return res.end(fs.readFileSync(f, 'utf8'))
      case '/write': fs.writeFileSync(f, 'written'); return res.end('ok')
      case '/model': return res.end(process.permission ? 'on' : 'off')
      case '/dep': return res.end(dep)
      case '/preloaded': return res.end(String(globalThis.preloaded))
      case '/mesh':
        return fetch('http://open.plt.local/model').then((r) => r.text()).then((t) => res.end('open:' + t), (e) => fail(res, e))
      case '/admin':
        // wattd's admin socket, beside the mesh directory.
        return http.get({ socketPath: require('node:path').dirname(process.env.WATTD_MESH_DIR) + '/admin.sock', path: '/v1/status' }, (r) => {
          let b = ''
          r.on('data', (c) => { b += c })
          r.on('end', () => res.end(r.statusCode + ' ' + b))
        }).on('error', (e) => fail(res, e))
      case '/mesh-admin':
        return fetch('http://open.plt.local/admin').then((r) => r.text()).then((t) => res.end('open:' + t.slice(0, 3)), (e) => fail(res, e))
    }
  } catch (err) {
    return fail(res, err)
  }
  res.statusCode = 404
  res.end()
}).listen(3000)
`

// TestPermissions: an application with Watt's permissions.fs runs under
// Node.js's permission model on every Node.js the tests run (20's
// --experimental-permission, 22 and 24's --permission): it reads and writes
// what it is allowed (relative paths from its directory, absolute ones as
// they are; its own directory always, as a Watt worker thread reads its
// application's) and nothing else, loads packages from a node_modules above its
// directory, while wattd's preload works inside the model
// (ready, mesh calls, a standby that warms up and is promoted, the compile
// cache written), also when its directory is named through a symbolic
// link. An application of the same runtime without the key is not
// restricted.
func TestPermissions(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		version := nodeVersion(t, node)
		t.Run(version, func(t *testing.T) {
			root := t.TempDir()
			data := filepath.Join(root, "data")
			secret := filepath.Join(root, "secret")
			for _, d := range []string{data, secret} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			writeFiles(t, data, map[string]string{"allowed.txt": "allowed content"})
			writeFiles(t, secret, map[string]string{"key.txt": "secret content"})
			writeFiles(t, root, map[string]string{
				"node_modules/dep/index.js": "module.exports = 'dep loaded'\n",
				// Watt's preload, outside the application, with a module beside it.
				"pre/setup.js":  "globalThis.preloaded = require('./helper.js')\n",
				"pre/helper.js": "module.exports = 'preloaded'\n",
			})
			guarded := filepath.Join(root, "guarded")
			open := filepath.Join(root, "open")
			for _, d := range []string{guarded, open} {
				writeFiles(t, d, map[string]string{"index.js": permissionsApp, "package.json": `{"name":"p","private":true,"main":"index.js"}`})
			}
			if err := os.MkdirAll(filepath.Join(guarded, "out"), 0o755); err != nil {
				t.Fatal(err)
			}
			// Named through a symbolic link: Node.js loads the code by
			// its real path, which must be allowed too.
			link := filepath.Join(root, "link")
			if err := os.Symlink(guarded, link); err != nil {
				t.Fatal(err)
			}
			dir := project(t, map[string]any{
				"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"entrypoint":   "guarded",
				"compileCache": true,
				"preload":      filepath.Join(root, "pre", "setup.js"),
				"applications": []any{
					map[string]any{"id": "guarded", "path": link, "workers": 2, "standby": 1,
						"permissions": map[string]any{"fs": map[string]any{"read": []string{data}, "write": []string{"out"}}}},
					map[string]any{"id": "open", "path": open},
				},
			})
			d := startWattd(t, dir, freePort(t), startOpts{env: []string{"WATTD_NODE=" + node}})
			waitHTTP(t, d.url("/model"), 30*time.Second)
			c := &http.Client{Timeout: 10 * time.Second}
			call := func(path string, f string) (int, string) {
				t.Helper()
				u := d.url(path)
				if f != "" {
					u += "?f=" + url.QueryEscape(f)
				}
				code, body, err := get(c, u)
				if err != nil {
					t.Fatalf("GET %s: %v", u, err)
				}
				return code, body
			}
			expect := func(path, f string, wantCode int, want string) {
				t.Helper()
				if code, body := call(path, f); code != wantCode || body != want {
					t.Errorf("%s %s: %d %q, want %d %q", path, f, code, body, wantCode, want)
				}
			}
			expect("/model", "", 200, "on")
			expect("/dep", "", 200, "dep loaded") // a hoisted package, as in a workspace
			expect("/preloaded", "", 200, "preloaded")
			expect("/read", filepath.Join(data, "allowed.txt"), 200, "allowed content")
			expect("/read", filepath.Join(secret, "key.txt"), 500, "ERR_ACCESS_DENIED")
			expect("/read", "/etc/hostname", 500, "ERR_ACCESS_DENIED")
			// Its own directory is readable without being listed, as under Watt.
			expect("/read", filepath.Join(guarded, "package.json"), 200, `{"name":"p","private":true,"main":"index.js"}`)
			expect("/write", filepath.Join(guarded, "out", "w.txt"), 200, "ok")
			expect("/write", filepath.Join(guarded, "w.txt"), 500, "ERR_ACCESS_DENIED")
			expect("/write", filepath.Join(data, "w.txt"), 500, "ERR_ACCESS_DENIED")
			// The other application is not restricted, and the mesh works
			// from inside the model.
			expect("/mesh", "", 200, "open:off")
			// The admin API, which would let a worker do anything wattd's
			// user may (a REPL in the other application), turns a confined
			// worker away; the other application may use it.
			if code, body := call("/admin", ""); code != 200 || !strings.HasPrefix(body, "403 ") || !strings.Contains(body, `application \"guarded\", which runs under \"permissions\"`) {
				t.Errorf("the admin API from a confined worker: %d %q, want 403", code, body)
			}
			expect("/mesh-admin", "", 200, "open:200")
			if _, err := os.Stat(filepath.Join(data, "w.txt")); err == nil {
				t.Error("a refused write created its file")
			}

			// A standby warms up and takes a slot under the model.
			var standby int
			waitFor(t, 30*time.Second, "a standby of guarded", func() bool {
				for _, s := range d.app("guarded").Standbys {
					if s.State == "standby" {
						standby = s.PID
						return true
					}
				}
				return false
			})
			victim := d.app("guarded").Workers[0].PID
			if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "the standby in the slot", func() bool {
				for _, w := range d.app("guarded").Workers {
					if w.PID == standby && w.State == "ready" {
						return true
					}
				}
				return false
			})
			for i := 0; i < 6; i++ { // both slots, whichever the kernel picks
				expect("/read", filepath.Join(secret, "key.txt"), 500, "ERR_ACCESS_DENIED")
				expect("/read", filepath.Join(data, "allowed.txt"), 200, "allowed content")
			}

			if nodeAtLeast(version, 22, 10) {
				// The preload writes the compile cache while the worker runs.
				cache := filepath.Join(guarded, ".plt", "compile-cache")
				waitFor(t, 20*time.Second, "compile cache files in "+cache, func() bool {
					found := false
					_ = filepath.WalkDir(cache, func(p string, e os.DirEntry, err error) error {
						if err == nil && !e.IsDir() {
							found = true
						}
						return nil
					})
					return found
				})
			}
			if out := d.out.String(); strings.Contains(out, "preload: disabled") || strings.Contains(out, "ERR_ACCESS_DENIED") || strings.Contains(out, "has been restricted") {
				t.Errorf("wattd's output reports a refused access:\n%s", out)
			}
		})
	}
}

// TestPermissionsRefusedWhereUnsupported: an application wattd does not
// start as node with its preload (here a command of its own) cannot apply
// permissions, and refuses the key rather than run without them.
func TestPermissionsRefusedWhereUnsupported(t *testing.T) {
	refusedAtStart(t, "permissions", map[string]any{"fs": map[string]any{"read": []string{"./"}}}, "expected no permissions")
}

// refusedAtStart starts wattd with one command application that has key
// set to value, and expects the configuration problem: exit 2, with the
// file, the key's place, the application and want in the output.
func refusedAtStart(t *testing.T, key string, value any, want string) {
	t.Helper()
	integration(t)
	dir := project(t, map[string]any{
		"entrypoint": "cmd",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{
			"id": "cmd", "path": fixture("apps/plain"), "capability": "command", "command": []any{"sleep", "60"}, key: value,
		}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	if code := d.wait(30 * time.Second); code != 2 {
		t.Fatalf("wattd exited %d with %s it cannot apply, want 2 (a configuration problem)", code, key)
	}
	out := d.out.String()
	for _, w := range []string{dir + "/watt.json:", "/applications/0/" + key, `app "cmd" (command)`, want} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestPermissionsExample runs testdata/examples/permissions (a watt.json5)
// as its README says, in a copy (the application writes a file), and
// expects the answer the README shows.
func TestPermissionsExample(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	copyDir(t, fixture("examples/permissions"), dir)
	d := startWattd(t, dir, freePort(t), startOpts{})
	body := waitHTTP(t, d.url("/"), 30*time.Second)
	const want = `{"model":"on","readData":"allowed","readEtc":"ERR_ACCESS_DENIED","writeUploads":"allowed","writeData":"ERR_ACCESS_DENIED","greeting":"hello from a file the application may read"}`
	if body != want {
		t.Errorf("GET /: %s\nwant %s", body, want)
	}
	readme, err := os.ReadFile(fixture("examples/permissions/README.md"))
	if err != nil || !strings.Contains(string(readme), want) {
		t.Errorf("the README does not show the answer: %v", err)
	}
}
