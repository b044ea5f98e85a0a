package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWattFactoryApps runs apps in Watt's application model through the
// real wattd: a Fastify app from create() as the entrypoint with two
// workers, an ES module whose build() returns an Express app on the mesh,
// and a background app (it exports hasServer = false). None calls listen()
// and none has a config of its own. On stop, the entrypoint's close()
// export and its Fastify onClose hooks run, and the background app's close().
func TestWattFactoryApps(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		t.Run(nodeVersion(t, node), func(t *testing.T) {
			port := freePort(t)
			dir := project(t, map[string]any{
				"entrypoint": "web",
				"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"applications": []any{
					map[string]any{"id": "web", "path": fixture("apps/factories/fastify-create"), "workers": 2},
					map[string]any{"id": "api", "path": fixture("apps/factories/express-build")},
					map[string]any{"id": "jobs", "path": fixture("apps/factories/worker")},
				},
			})
			d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node}})
			body := waitHTTP(t, d.url("/"), 30*time.Second)
			var r struct{ App string }
			if json.Unmarshal([]byte(body), &r) != nil || r.App != "fastify-create" {
				t.Fatalf("GET / = %s", body)
			}
			d.waitReady("web", 10*time.Second)
			d.waitReady("api", 10*time.Second)
			d.waitReady("jobs", 10*time.Second)
			if out, err := d.ctl("inject", "api", "/"); err != nil || !strings.Contains(out, "express-build") {
				t.Fatalf("mesh to the build() app: %v\n%s", err, out)
			}
			// The background app stayed ready all along: not restarted for
			// never listening.
			if w := d.app("jobs").Workers; len(w) != 1 || w[0].Restarts != 0 {
				t.Fatalf("background app workers = %+v", w)
			}
			d.waitOutput("started the Fastify app it returned", 5*time.Second)
			// wattd's line, not the app's own output.
			for _, line := range strings.Split(d.out.String(), "\n") {
				if strings.Contains(line, "started the Fastify app it returned") && strings.Contains(line, `"caller":"STDOUT"`) {
					t.Errorf("the preload's line reads as the app's stdout: %s", line)
				}
			}

			d.signal(syscall.SIGTERM)
			if code := d.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			// web's two workers and jobs ran their close() export; web's
			// two Fastify apps ran their onClose hooks.
			out := d.out.String()
			for want, n := range map[string]int{"close-export": 3, "fastify-onClose": 2} {
				if c := strings.Count(out, want); c != n {
					t.Errorf("%q appears %d times in wattd's output, want %d", want, c, n)
				}
			}
		})
	}
}

// TestModuleWithoutServerSaysWhy: a module that neither listens nor exports
// a factory is reported with what it exports, not as a bare exit status 0.
func TestModuleWithoutServerSaysWhy(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/factories/listener")},
			map[string]any{"id": "silent", "path": fixture("apps/factories/silent")},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitOutput("without having listened (it exports handler)", 30*time.Second)
}

// TestNodeBuildScript: wattd build runs a node app's package.json build
// script, as Watt builds a node app without application.commands.build.
func TestNodeBuildScript(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	dir := t.TempDir()
	app := filepath.Join(dir, "web")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{
		"name": "web", "private": true, "main": "index.js",
		"scripts": map[string]any{"build": `node -e "require('fs').writeFileSync('built.txt', 'yes')"`},
	})
	if err := os.WriteFile(filepath.Join(app, "index.js"), []byte("require('node:http').createServer((q, s) => s.end('ok')).listen(3000)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	out, err := exec.Command(wattdBin, "build", "-d", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "npm run build") {
		t.Fatalf("wattd build: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(app, "built.txt")); err != nil || string(b) != "yes" {
		t.Fatalf("build script did not run: %q, %v\n%s", b, err, out)
	}
}

// TestBuildMakesTheEntry: an application whose "main" is what its build
// makes (a TypeScript app's dist/index.js) is built by wattd build, which
// does not ask for the entry first; wattd start before the build says to
// run it.
func TestBuildMakesTheEntry(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	dir := t.TempDir()
	app := filepath.Join(dir, "web")
	writeFiles(t, app, map[string]string{
		"src/index.js": "require('node:http').createServer((q, s) => s.end('built')).listen(3000)\n",
	})
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{
		"name": "web", "private": true, "main": "dist/index.js",
		"scripts": map[string]any{"build": `node -e "require('fs').cpSync('src', 'dist', {recursive: true})"`},
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	start := exec.Command(wattdBin, "start", dir)
	start.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+t.TempDir())
	if out, err := start.CombinedOutput(); err == nil || !strings.Contains(string(out), `"main" names "dist/index.js": no such file (the package has a build script, which may make it: run wattd build)`) {
		t.Errorf("wattd start before the build: %v\n%s", err, out)
	}
	if out, err := exec.Command(wattdBin, "build", dir).CombinedOutput(); err != nil {
		t.Fatalf("wattd build: %v\n%s", err, out)
	}
	d := startWattd(t, dir, freePort(t), startOpts{})
	if body := waitHTTP(t, d.url("/"), 20*time.Second); body != "built" {
		t.Errorf("GET /: %q", body)
	}
}

// TestStartNamesEveryBuildMissing: wattd start of a project whose
// applications were not built names each one, not the first alone.
func TestStartNamesEveryBuildMissing(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	for _, id := range []string{"a", "b"} {
		copyDir(t, fixture("apps/vite"), filepath.Join(dir, id))
		os.RemoveAll(filepath.Join(dir, id, "dist"))
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"entrypoint": "a",
		"applications": []any{
			map[string]any{"id": "a", "path": "./a"},
			map[string]any{"id": "b", "path": "./b"},
		},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	if code := d.wait(30 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, id := range []string{"a", "b"} {
		if want := fmt.Sprintf("app %q: no Vite build in %s", id, filepath.Join(dir, id, "dist")); !strings.Contains(d.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, d.out.String())
		}
	}
}

// TestBuildStoppedStopsItsCommand: a wattd build that is sent SIGTERM
// (a CI job's timeout, docker stop) stops the build it runs, and the
// processes that build started, before it exits, instead of leaving them
// running on their own.
func TestBuildStoppedStopsItsCommand(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	dir, app := buildProject(t, "node build.js", map[string]string{"build.js": waitingBuild})
	b := startBuild(t, dir, app, nil)
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	b.waitStopped(15*time.Second, 143)
}

// waitingBuild is a build script that writes its pid to build.pid and
// then never ends.
const waitingBuild = "require('node:fs').writeFileSync(__dirname + '/build.pid', String(process.pid))\nsetInterval(() => {}, 1000)\n"

// runningBuild is a `wattd build` whose build script has started.
type runningBuild struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *strings.Builder
	exited chan error
	pid    int // the build script's node process
}

// startBuild runs `wattd build` of dir, with tty as its terminal when it
// is set, and waits for the build script (waitingBuild, or one that
// writes build.pid as it does) to run in app.
func startBuild(t *testing.T, dir, app string, tty *os.File) *runningBuild {
	t.Helper()
	b := &runningBuild{t: t, cmd: exec.Command(wattdBin, "build", "-d", dir), out: &strings.Builder{}, exited: make(chan error, 1)}
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if tty != nil {
		b.cmd.Stdin = tty
		b.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if tty != nil {
		tty.Close()
	}
	go func() { b.exited <- b.cmd.Wait() }()
	t.Cleanup(func() {
		if b.pid > 0 && alive(b.pid) {
			_ = syscall.Kill(b.pid, syscall.SIGKILL)
		}
		_ = b.cmd.Process.Kill()
	})
	waitFor(t, 20*time.Second, "the build to write its pid", func() bool {
		raw, err := os.ReadFile(filepath.Join(app, "build.pid"))
		if err != nil {
			return false
		}
		b.pid, err = strconv.Atoi(strings.TrimSpace(string(raw)))
		return err == nil && b.pid > 0
	})
	return b
}

// waitStopped checks that wattd build, asked to stop, exits with code
// (128 and the signal's number, as a shell reports a command the signal
// ended) within timeout naming the app, its build script gone with it.
func (b *runningBuild) waitStopped(timeout time.Duration, code int) {
	b.t.Helper()
	select {
	case err := <-b.exited:
		if got := b.cmd.ProcessState.ExitCode(); err == nil || got != code {
			b.t.Fatalf("an interrupted build exited %d (%v), want %d\n%s", got, err, code, b.out.String())
		}
	case <-time.After(timeout):
		b.t.Fatalf("wattd build did not exit within %s of being stopped", timeout)
	}
	// Stopped before wattd build exited; a short poll covers the reaping.
	waitFor(b.t, 2*time.Second, "the build process to be gone", func() bool { return !alive(b.pid) })
	if !strings.Contains(b.out.String(), `app "web"`) {
		b.t.Errorf("the output should name the interrupted app:\n%s", b.out.String())
	}
}

// TestNodeProductionCommand: an application whose own watt.json has
// application.commands.production runs that command instead of its entry,
// on $PORT with wattd in front, with its arguments.
func TestNodeProductionCommand(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "web", "svc")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"entrypoint": "svc",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"autoload":   map[string]any{"path": "web"},
	})
	writeJSON(t, filepath.Join(app, "watt.json"), map[string]any{
		"$schema":     "https://schemas.platformatic.dev/@platformatic/node/3.65.0.json",
		"application": map[string]any{"commands": map[string]any{"production": "node server.js --flag"}},
	})
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": "svc", "private": true})
	// index.js would be the entry: it must not run.
	if err := os.WriteFile(filepath.Join(app, "index.js"), []byte("process.exit(3)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	server := "require('node:http').createServer((q, s) => s.end(JSON.stringify(process.argv.slice(2)))).listen(process.env.PORT)\n"
	if err := os.WriteFile(filepath.Join(app, "server.js"), []byte(server), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startWattd(t, dir, port, startOpts{})
	if body := waitHTTP(t, d.url("/"), 30*time.Second); body != `["--flag"]` {
		t.Fatalf("GET / = %q, want the command's arguments", body)
	}
}

// buildProject writes a project of one Node app, web, whose package.json
// build script is script, with the given files beside it.
func buildProject(t *testing.T, script string, files map[string]string) (dir, app string) {
	t.Helper()
	dir = t.TempDir()
	app = filepath.Join(dir, "web")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{
		"name": "web", "private": true, "main": "index.js",
		"scripts": map[string]any{"build": script},
	})
	files["index.js"] = "require('node:http').createServer((q, s) => s.end('ok')).listen(3000)\n"
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(app, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	return dir, app
}

// TestBuildFromATerminalCanPrompt: run from a terminal, a build that asks
// on the terminal (git or ssh asking for a password) gets its answer and
// finishes, as it does run by hand: it is not stopped for reading the
// terminal from a background process group.
func TestBuildFromATerminalCanPrompt(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	dir, app := buildProject(t, "sh build.sh", map[string]string{
		"build.sh": "printf 'Password: ' > /dev/tty\nread answer < /dev/tty\necho \"$answer\" > answer.txt\n",
	})
	master, slave := openPTY(t)
	cmd := exec.Command(wattdBin, "build", "-d", dir)
	var out strings.Builder
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	prompt := make(chan struct{})
	go func() {
		var seen []byte
		buf := make([]byte, 256)
		for {
			n, err := master.Read(buf)
			seen = append(seen, buf[:n]...)
			if strings.Contains(string(seen), "Password: ") {
				close(prompt)
				_, _ = io.Copy(io.Discard, master)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-prompt:
	case <-time.After(30 * time.Second):
		t.Fatalf("the build did not prompt\n%s", out.String())
	}
	if _, err := master.Write([]byte("hunter2\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("wattd build: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the build did not finish after its prompt was answered\n%s", out.String())
	}
	if b, err := os.ReadFile(filepath.Join(app, "answer.txt")); err != nil || strings.TrimSpace(string(b)) != "hunter2" {
		t.Errorf("the build read %q (%v), want the answer typed", b, err)
	}
}

// TestBuildStoppedTwiceIsKilled: a second stop signal to wattd build kills
// a build that ignores the first, without waiting out the grace.
func TestBuildStoppedTwiceIsKilled(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	dir, app := buildProject(t, "node build.js", map[string]string{
		"build.js": "process.on('SIGTERM', () => {})\n" + waitingBuild,
	})
	b := startBuild(t, dir, app, nil)
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond) // the first one taken and ignored
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	b.waitStopped(3*time.Second, 143) // under the 5 s grace
}

// TestBuildFromATerminalCtrlC: Ctrl-C on the terminal wattd build runs on
// stops the build and all it started, and wattd build exits non-zero
// naming the app.
func TestBuildFromATerminalCtrlC(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	dir, app := buildProject(t, "node build.js", map[string]string{"build.js": waitingBuild})
	master, slave := openPTY(t)
	go func() { _, _ = io.Copy(io.Discard, master) }()
	b := startBuild(t, dir, app, slave)
	t.Cleanup(func() { _ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL) })
	if _, err := master.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	b.waitStopped(15*time.Second, 130)
}
