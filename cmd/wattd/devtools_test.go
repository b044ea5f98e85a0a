package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeAppsConfig writes dir/watt.json listing the applications ids, each
// in the folder of its name, served at {PLT_SERVER_PORT} on loopback.
func writeAppsConfig(t *testing.T, dir, entrypoint string, ids ...string) {
	t.Helper()
	apps := []any{}
	for _, id := range ids {
		apps = append(apps, map[string]any{"id": id, "path": "./" + id})
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"entrypoint":   entrypoint,
		"applications": apps,
	})
}

// copyDir copies a fixture app (no node_modules) so a test may edit it.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			if fi.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDevRestartsOnChange: `wattd dev` runs one worker per app and
// replaces it when a file of the app changes.
func TestDevRestartsOnChange(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	copyDir(t, fixture("apps/plain"), filepath.Join(dir, "web"))
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": "./web", "workers": 3}},
	})
	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{args: nil, dev: true})
	waitHTTP(t, d.url("/"), 20*time.Second)
	a := d.waitReady("web", 10*time.Second)
	if len(a.Workers) != 1 {
		t.Fatalf("dev mode runs %d workers, want 1", len(a.Workers))
	}
	src := filepath.Join(dir, "web", "index.js")
	b, _ := os.ReadFile(src)
	edited := strings.Replace(string(b), "path: url.pathname", "path: url.pathname, edited: true", 1)
	if edited == string(b) {
		t.Fatal("fixture changed; cannot edit it")
	}
	if err := os.WriteFile(src, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the edit to be served", func() bool {
		_, body, err := get(fresh, d.url("/"))
		return err == nil && strings.Contains(body, `"edited":true`)
	})
	// A broken edit keeps the last good worker serving.
	if err := os.WriteFile(src, []byte("syntax error here {"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.waitOutput("restart after change failed", 15*time.Second)
	if code, body, err := get(fresh, d.url("/")); err != nil || code != 200 || !strings.Contains(body, `"edited":true`) {
		t.Fatalf("after a broken edit: %d %v %s", code, err, body)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestDevOneBrokenAppKeepsRunning: under wattd dev, a project of one
// application that never starts (a syntax error from the first save) keeps
// running until the file is fixed, and then serves; wattd start exits 1.
func TestDevOneBrokenAppKeepsRunning(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	copyDir(t, fixture("apps/plain"), filepath.Join(dir, "web"))
	src := filepath.Join(dir, "web", "index.js")
	good, _ := os.ReadFile(src)
	if err := os.WriteFile(src, []byte("syntax error here {"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":      map[string]any{"initialDelay": 10, "maxDelay": 20, "maxRestarts": 2},
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{dev: true})
	d.waitOutput("every application failed; a change to their files restarts them", 20*time.Second)
	if err := os.WriteFile(src, good, 0o644); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, d.url("/"), 20*time.Second)
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestDevAppliesEditedConfig: under wattd dev, an edit of an application's
// .env or of its own watt.json restarts it with what was edited, as under
// wattpm dev: the configuration is read again (a reload), not only the
// workers restarted. An edit that leaves the configuration broken says so
// and restarts the application with the configuration in use.
func TestDevAppliesEditedConfig(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "web")
	writeFiles(t, app, map[string]string{
		"index.js":     "require('node:http').createServer((q, s) => s.end(JSON.stringify({x: process.env.DOTENV_X, base: globalThis.platformatic?.basePath, pid: process.pid}))).listen(3000)\n",
		"package.json": `{"name": "web", "main": "index.js"}`,
	})
	ownConfig := func(base string) {
		writeJSON(t, filepath.Join(app, "watt.json"), map[string]any{
			"$schema":     "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json",
			"application": map[string]any{"basePath": base},
		})
	}
	ownConfig("/one")
	dotenv := func(v string) { writeFiles(t, app, map[string]string{".env": "DOTENV_X=" + v + "\n"}) }
	dotenv("one")
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{dev: true})
	type answer struct {
		X, Base string
		Pid     int
	}
	served := func(what string, want func(answer) bool) answer {
		var a answer
		waitFor(t, 20*time.Second, what, func() bool {
			_, body, err := get(fresh, d.url("/"))
			a = answer{}
			return err == nil && json.Unmarshal([]byte(body), &a) == nil && want(a)
		})
		return a
	}
	first := served("the first worker", func(a answer) bool { return a.X == "one" && a.Base == "/one/" })

	dotenv("two")
	second := served("the edited .env applied", func(a answer) bool { return a.X == "two" })
	if second.Pid == first.Pid || second.Base != "/one/" {
		t.Errorf("after the .env edit: %+v (first %+v)", second, first)
	}
	ownConfig("/two")
	third := served("the edited watt.json applied", func(a answer) bool { return a.Base == "/two/" })
	if third.Pid == second.Pid || third.X != "two" {
		t.Errorf("after the watt.json edit: %+v", third)
	}

	// A configuration left broken: said, and the application restarted
	// with the one in use.
	if err := os.WriteFile(filepath.Join(app, "watt.json"), []byte(`{"application": {"basePath": }`), 0o644); err != nil {
		t.Fatal(err)
	}
	d.waitOutput("the configuration cannot be applied", 15*time.Second)
	fourth := served("a worker restarted with the configuration in use", func(a answer) bool { return a.Pid != third.Pid })
	if fourth.X != "two" || fourth.Base != "/two/" {
		t.Errorf("after the broken edit: %+v", fourth)
	}
	if !strings.Contains(d.out.String(), "watt.json") {
		t.Error("the error does not name the file")
	}
}

// TestDevReloadsOnProjectConfig: under wattd dev, the project's own
// watt.json and .env, outside every application's folder, are watched too:
// an edit is applied by a reload (an application added, a variable
// changed), and one that breaks the configuration is refused with the
// running applications unchanged.
func TestDevReloadsOnProjectConfig(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	copyDir(t, fixture("apps/plain"), filepath.Join(dir, "web"))
	writeFiles(t, filepath.Join(dir, "env"), map[string]string{
		"index.js":     "require('node:http').createServer((q, s) => s.end(String(process.env.PROJECT_X))).listen(3000)\n",
		"package.json": `{"name": "env", "main": "index.js"}`,
	})
	writeFiles(t, dir, map[string]string{".env": "PROJECT_X=one\n"})
	conf := func(apps ...string) { writeAppsConfig(t, dir, "env", apps...) }
	conf("env")
	d := startWattd(t, dir, freePort(t), startOpts{dev: true})
	served := func(what, want string) {
		t.Helper()
		waitFor(t, 20*time.Second, what, func() bool {
			_, body, err := get(fresh, d.url("/"))
			return err == nil && body == want
		})
	}
	served("the first worker", "one")

	writeFiles(t, dir, map[string]string{".env": "PROJECT_X=two\n"})
	served("the edited project .env applied", "two")

	conf("env", "web")
	d.waitReady("web", 20*time.Second)
	d.waitOutput("the project's configuration changed; reloading", time.Second)

	if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(`{"applications": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	d.waitOutput("reload refused: the configuration does not load", 15*time.Second)
	if code, body, err := get(fresh, d.url("/")); err != nil || code != 200 || body != "two" {
		t.Fatalf("after a broken edit: %d %v %q", code, err, body)
	}
	d.waitReady("web", time.Second)
}

// TestDevRenamedFolder: after a folder of the app is renamed (`mv lib
// lib2`, a refactoring), an edit of a file in it still restarts the app.
func TestDevRenamedFolder(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	web := filepath.Join(dir, "web")
	copyDir(t, fixture("apps/plain"), web)
	if err := os.MkdirAll(filepath.Join(web, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(web, "lib", "tag.js"), []byte("module.exports = 'one'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(web, "index.js")
	b, _ := os.ReadFile(src)
	edited := strings.Replace(string(b), "path: url.pathname", "path: url.pathname, tag: require('./lib2/tag.js')", 1)
	if edited == string(b) {
		t.Fatal("fixture changed; cannot edit it")
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{dev: true})
	waitHTTP(t, d.url("/"), 20*time.Second)
	d.waitReady("web", 10*time.Second)
	if err := os.Rename(filepath.Join(web, "lib"), filepath.Join(web, "lib2")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the renamed folder's module to be served", func() bool {
		_, body, err := get(fresh, d.url("/"))
		return err == nil && strings.Contains(body, `"tag":"one"`)
	})
	if err := os.WriteFile(filepath.Join(web, "lib2", "tag.js"), []byte("module.exports = 'two'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the edit in the renamed folder to be served", func() bool {
		_, body, err := get(fresh, d.url("/"))
		return err == nil && strings.Contains(body, `"tag":"two"`)
	})
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestInitWritesRunnableConfig: `wattd init` on a folder of apps writes a
// watt.json that `wattd start` runs.
func TestInitWritesRunnableConfig(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	for _, app := range []string{"gateway", "users", "orders", "catalog"} {
		copyDir(t, fixture("examples/pyramid/"+app), filepath.Join(dir, "web", app))
	}
	out, err := exec.Command(wattdBin, "init", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "* gateway") {
		t.Fatalf("init: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "watt.json"))
	if !strings.Contains(string(b), `"autoload"`) || !strings.Contains(string(b), `"entrypoint": "gateway"`) {
		t.Fatalf("watt.json:\n%s", b)
	}
	if out, err := exec.Command(wattdBin, "init", dir).CombinedOutput(); err == nil || !strings.Contains(string(out), "--force") {
		t.Fatalf("init over an existing watt.json: %v\n%s", err, out)
	}
	// A configuration in another format, which a watt.json would shadow.
	other := t.TempDir()
	copyDir(t, filepath.Join(dir, "web"), filepath.Join(other, "web"))
	if err := os.WriteFile(filepath.Join(other, "watt.json5"), []byte("{applications: []}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(wattdBin, "init", other).CombinedOutput(); err == nil || !strings.Contains(string(out), "watt.json5 exists, and a new watt.json would be read instead") {
		t.Fatalf("init beside a watt.json5: %v\n%s", err, out)
	}
	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{})
	body := waitHTTP(t, d.url("/"), 20*time.Second)
	if !strings.Contains(body, "users") {
		t.Fatalf("gateway answer: %s", body)
	}
}

// TestDevWatchIgnore: an application that writes into its own folder at
// start (a database file) restarts for ever under wattd dev unless its
// watt.json says "watch": {"ignore": [...]}, as with Watt: with it, each
// edit of the code restarts the application once, and no restart is for
// the file it writes.
func TestDevWatchIgnore(t *testing.T) {
	devWatchOnlyEdits(t, map[string]any{"ignore": []any{"data/**"}})
}

// TestDevWatchAllowBraces: the same with an allow list in braces, as
// Watt's path.matchesGlob reads it: "*.{js,json}" lets an edit of index.js
// through, and not the data file.
func TestDevWatchAllowBraces(t *testing.T) {
	devWatchOnlyEdits(t, map[string]any{"allow": []any{"*.{js,json}"}})
}

func devWatchOnlyEdits(t *testing.T, watch map[string]any) {
	integration(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "web")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(app, "index.js")
	code := "const fs = require('node:fs')\n" +
		"fs.mkdirSync(__dirname + '/data', { recursive: true })\n" +
		"fs.writeFileSync(__dirname + '/data/app.db', String(process.pid))\n" +
		"require('node:http').createServer((q, s) => s.end(String(process.pid))).listen(3000)\n"
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": "web", "main": "index.js"})
	writeJSON(t, filepath.Join(app, "watt.json"), map[string]any{
		"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json",
		"watch":   watch,
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{dev: true})
	served := func() string {
		_, body, _ := get(fresh, d.url("/"))
		return body
	}
	// written reports the pid now serving once it has written its file.
	written := func(not string) string {
		var pid string
		waitFor(t, 20*time.Second, "a worker serving, its data file written", func() bool {
			pid = served()
			b, _ := os.ReadFile(filepath.Join(app, "data", "app.db"))
			return pid != "" && pid != not && string(b) == pid
		})
		return pid
	}
	pid := written("")
	for i := range 2 {
		if err := os.WriteFile(src, []byte(code+fmt.Sprintf("// edit %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		pid = written(pid)
	}
	// Two edits, two restarts: the data file's writes restarted nothing.
	changed := 0
	for _, e := range logEntries(d.out.String(), "files changed; restarting") {
		changed++
		if strings.Contains(fmt.Sprint(e["paths"]), "data") {
			t.Errorf("a restart for the file the app writes: %v", e["paths"])
		}
	}
	if changed != 2 {
		t.Errorf("%d restarts for changes, want 2 (one per edit)", changed)
	}
}

// TestDevWatchConfigAndOwnFiles: an edit of a file the configuration is
// read from (here the app's .env) counts even when the app's watch.allow
// does not take it, so the edit is applied; the span file wattd itself
// writes inside the app's folder (the file exporter) restarts nothing,
// even when the globs take it.
func TestDevWatchConfigAndOwnFiles(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "web")
	writeFiles(t, app, map[string]string{
		"index.js": "require('node:http').createServer((q, s) => s.end(String(process.env.GREETING))).listen(3000)\n",
		".env":     "GREETING=one\n",
	})
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": "web", "main": "index.js"})
	writeJSON(t, filepath.Join(app, "watt.json"), map[string]any{
		"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json",
		"watch":   map[string]any{"allow": []any{"**/*.js", "**/*.log"}},
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"telemetry":    map[string]any{"applicationName": "dev", "exporter": map[string]any{"type": "file", "options": map[string]any{"path": "web/spans.log"}}},
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{dev: true})
	if body := waitHTTP(t, d.url("/"), 20*time.Second); body != "one" {
		t.Fatalf("GET /: %q", body)
	}
	// Requests make spans, written to web/spans.log.
	waitFor(t, 20*time.Second, "spans in web/spans.log", func() bool {
		get(fresh, d.url("/"))
		fi, err := os.Stat(filepath.Join(app, "spans.log"))
		return err == nil && fi.Size() > 0
	})
	if err := os.WriteFile(filepath.Join(app, ".env"), []byte("GREETING=two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the edited .env to be served", func() bool {
		_, body, err := get(fresh, d.url("/"))
		return err == nil && body == "two"
	})
	for _, e := range logEntries(d.out.String(), "files changed; restarting") {
		if strings.Contains(fmt.Sprint(e["paths"]), "spans.log") {
			t.Errorf("a restart for the span file wattd writes: %v", e["paths"])
		}
	}
}

// TestDevWatchFollowsReload: under wattd dev, what is watched follows a
// reload. An application the reload adds restarts when its files change,
// one it removes is no longer watched, and a kept application whose
// "watch" the reload turned off stops restarting on edits.
func TestDevWatchFollowsReload(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	code := "require('node:http').createServer((q, s) => s.end(String(process.pid))).listen(process.env.PORT || 3000)\n"
	for _, id := range []string{"web", "api", "old"} {
		app := filepath.Join(dir, id)
		if err := os.MkdirAll(app, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(app, "index.js"), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": id, "main": "index.js"})
	}
	config := func(apps ...map[string]any) {
		list := []any{}
		for _, a := range apps {
			list = append(list, a)
		}
		writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
			"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
			"entrypoint":   "web",
			"applications": list,
		})
	}
	config(map[string]any{"id": "web", "path": "./web"}, map[string]any{"id": "old", "path": "./old"})
	d := startWattd(t, dir, freePort(t), startOpts{dev: true})
	d.waitReady("web", 20*time.Second)
	d.waitReady("old", 20*time.Second)

	restarts := func(app string) int {
		n := 0
		for _, e := range logEntries(d.out.String(), "files changed; restarting") {
			if e["name"] == app {
				n++
			}
		}
		return n
	}
	// web's own watt.json turns its watching off; written in the watched
	// folder, it restarts web once, and the reload applies it.
	first := pids(d.app("web"))
	writeJSON(t, filepath.Join(dir, "web", "watt.json"), map[string]any{
		"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json",
		"watch":   false,
	})
	waitFor(t, 20*time.Second, "web restarted once for its watt.json", func() bool {
		a := d.app("web")
		now := pids(a)
		return restarts("web") == 1 && len(now) == 1 && now[0] != first[0] && a.Workers[0].State == "ready"
	})
	// The reload adds api, removes old and applies web's watch: false.
	config(map[string]any{"id": "web", "path": "./web"}, map[string]any{"id": "api", "path": "./api"})
	if out, err := d.ctl("reload"); err != nil {
		t.Fatalf("ctl reload: %v\n%s", err, out)
	}
	before := pids(d.waitReady("api", 20*time.Second))
	web := pids(d.app("web"))
	for _, id := range []string{"web", "old", "api"} {
		if err := os.WriteFile(filepath.Join(dir, id, "index.js"), []byte(code+"// edited\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "api, added by the reload, to restart after its edit", func() bool {
		a := d.app("api")
		now := pids(a)
		return restarts("api") == 1 && len(now) == 1 && now[0] != before[0] && a.Workers[0].State == "ready"
	})
	// The edits were saved at the same time: a restart of web or old
	// would have been logged by now (the same 300 ms debounce).
	if n := restarts("web"); n != 1 {
		t.Errorf("web restarted %d times after its watching was turned off", n-1)
	}
	if n := restarts("old"); n != 0 {
		t.Errorf("old, removed by the reload, restarted %d times", n)
	}
	if now := pids(d.app("web")); !slices.Equal(now, web) {
		t.Errorf("web's workers changed: %v, were %v", now, web)
	}
	if !strings.Contains(d.out.String(), "no longer watching the application's files") {
		t.Error("no log line says which application is no longer watched")
	}
}

// TestDevChangeOfAppBeingRemoved: a file of an application saved as a
// reload removes it (the change's debounce ends while the removal drains
// the application's workers) makes no failed restart: no previous worker
// keeps serving, so wattd dev says, at info, that the application was not
// restarted, instead of an error that says the old worker goes on.
func TestDevChangeOfAppBeingRemoved(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	web := filepath.Join(dir, "web")
	if err := os.MkdirAll(web, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(web, "index.js"), []byte("require('node:http').createServer((q, s) => s.end('web')).listen(process.env.PORT || 3000)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(web, "package.json"), map[string]any{"name": "web", "main": "index.js"})
	old := filepath.Join(dir, "old")
	copyDir(t, fixture("apps/plain"), old)
	config := func(ids ...string) { writeAppsConfig(t, dir, "web", ids...) }
	config("web", "old")
	d := startWattd(t, dir, freePort(t), startOpts{dev: true})
	d.waitReady("web", 20*time.Second)
	d.waitReady("old", 20*time.Second)
	// A request in flight holds old's drain for seconds once the reload
	// removes it: longer than the change's 300 ms debounce.
	slow := make(chan string, 1)
	go func() {
		out, err := d.ctl("inject", "old", "/slow?ms=5000")
		slow <- fmt.Sprint(out, err)
	}()
	waitFor(t, 10*time.Second, "the slow request in flight", func() bool {
		a := d.app("old")
		return len(a.Workers) == 1 && a.Workers[0].ActiveConns > 0
	})
	config("web")
	if err := os.WriteFile(filepath.Join(old, "index.js"), []byte("// edited as it is removed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := d.ctl("reload"); err != nil {
		t.Fatalf("ctl reload: %v\n%s", err, out)
	}
	<-slow
	waitFor(t, 10*time.Second, "the change of old seen and not applied", func() bool {
		return len(logEntries(d.out.String(), "files changed, but the application is being removed or wattd is stopping; not restarted")) == 1
	})
	if es := logEntries(d.out.String(), "restart after change failed; the previous worker keeps serving"); len(es) > 0 {
		t.Errorf("the change of an application being removed logged as a failed restart: %v", es)
	}
}
