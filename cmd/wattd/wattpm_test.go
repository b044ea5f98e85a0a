package main_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/wattd/wattd/supervisor/scheduler"
)

// wattpmApp answers /echo with the body it was sent, /url... with the
// request's target as it came, logs a line for /note?text=..., and 200
// elsewhere.
const wattpmApp = `
require('node:http').createServer((req, res) => {
  if (req.url.startsWith('/url')) return res.end('url: ' + req.url)
  if (req.url === '/moved') {
    res.writeHead(302, { location: '/url-after-redirect' })
    return res.end('moved')
  }
  const u = new URL(req.url, 'http://x')
  if (u.pathname === '/note') {
    console.log('note: ' + u.searchParams.get('text'))
    return res.end('noted')
  }
  let body = ''
  req.on('data', (c) => { body += c })
  req.on('end', () => {
    if (u.pathname === '/echo') {
      res.setHeader('x-echo-type', req.headers['content-type'] || '')
      return res.end(req.method + ' ' + body)
    }
    res.end('ok')
  })
}).listen(3000)
`

// wattpmCommand runs Watt's own CLI (installed with the wrapped-express
// fixture) on a Node.js it supports (22.19 or later), or skips.
func wattpmCommand(t *testing.T) func(ctx context.Context, tmp string, args ...string) *exec.Cmd {
	t.Helper()
	cli := fixture("watt/wrapped-express/node_modules/wattpm/bin/cli.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("wattpm is not installed (make deps installs it): %v", err)
	}
	for _, n := range testNodes {
		node := nodePath(t, n)
		v := strings.TrimPrefix(nodeVersion(t, node), "v")
		parts := strings.SplitN(v, ".", 3)
		major, _ := strconv.Atoi(parts[0])
		minor := 0
		if len(parts) > 1 {
			minor, _ = strconv.Atoi(parts[1])
		}
		if major > 22 || major == 22 && minor >= 19 {
			return func(ctx context.Context, tmp string, args ...string) *exec.Cmd {
				cmd := exec.CommandContext(ctx, node, append([]string{cli}, args...)...)
				cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "NO_COLOR=1")
				return cmd
			}
		}
	}
	t.Skip("wattpm needs Node.js 22.19 or later; none in WATTD_TEST_NODES")
	return nil
}

// privateTmp is a TMPDIR of the test's own, short enough for the socket
// path under it, so that wattpm sees this test's runtimes only.
func privateTmp(t *testing.T) string {
	t.Helper()
	tmp, err := os.MkdirTemp("", "wpm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	return tmp
}

// wattpmAppDir is an application directory running wattpmApp.
func wattpmAppDir(t *testing.T) string {
	t.Helper()
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "index.js"), []byte(wattpmApp), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": "api", "main": "index.js"})
	return app
}

// TestWattpmCommands: Watt's own CLI, wattpm 3.67, finds a running wattd
// and acts on it through the management API, as it does on a Watt
// runtime: ps, applications, env, config, inject, metrics, scheduler
// (list, pause, resume, run), logs, restart and stop.
func TestWattpmCommands(t *testing.T) {
	integration(t)
	wattpm := wattpmCommand(t)
	tmp, app := privateTmp(t), wattpmAppDir(t)
	metricsPort := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"env":          map[string]any{"GREETING": "hello", "API_TOKEN": "s3cret-value"},
		"metrics":      map[string]any{"hostname": "127.0.0.1", "port": metricsPort},
		"applications": []any{map[string]any{"id": "api", "path": app}},
		"scheduler": []any{
			map[string]any{"name": "tick", "cron": "* * * * * *", "callbackUrl": "http://api.plt.local/tick"},
		},
	})
	writeJSON(t, filepath.Join(dir, "package.json"), map[string]any{"name": "wattpm-compat", "version": "1.2.3"})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"TMPDIR=" + tmp}})
	waitHTTP(t, d.url("/"), 30*time.Second)
	pidDir := filepath.Join(tmp, "platformatic", "runtimes", strconv.Itoa(d.cmd.Process.Pid))
	if fi, err := os.Stat(pidDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("management API directory %s: %v %v", pidDir, fi, err)
	}

	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := wattpm(ctx, tmp, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("wattpm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	mustHave := func(what, out string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("wattpm %s: no %q in\n%s", what, w, out)
			}
		}
	}

	mustHave("ps", run("ps"), strconv.Itoa(d.cmd.Process.Pid), "wattpm-compat", "http://"+d.addr())
	mustHave("applications", run("applications", "wattpm-compat"), "api", "nodejs", "Yes")
	env := run("env", "wattpm-compat")
	mustHave("env", env, "GREETING=hello")
	if strings.Contains(env, "s3cret-value") {
		t.Errorf("wattpm env shows the secret:\n%s", env)
	}
	mustHave("env api", run("env", "wattpm-compat", "api"), "GREETING=hello", "LISTEN_FDNAMES=http:mesh")
	var cfg struct {
		Env          map[string]string `json:"env"`
		Applications []struct {
			ID string `json:"id"`
		} `json:"applications"`
	}
	if out := run("config", "wattpm-compat"); json.Unmarshal([]byte(out), &cfg) != nil || len(cfg.Applications) != 1 || cfg.Applications[0].ID != "api" ||
		cfg.Env["GREETING"] != "hello" || cfg.Env["API_TOKEN"] == "s3cret-value" {
		t.Errorf("wattpm config: %s", out)
	}
	// With an application, its own configuration in Watt's shape.
	var own struct {
		Node *struct {
			HasServer *bool `json:"hasServer"`
		} `json:"node"`
		Application map[string]any `json:"application"`
	}
	if out := run("config", "wattpm-compat", "api"); json.Unmarshal([]byte(out), &own) != nil || own.Node == nil || own.Node.HasServer == nil ||
		!*own.Node.HasServer || own.Application == nil || strings.Contains(out, "Capability") {
		t.Errorf("wattpm config PID api: %s", out)
	}
	mustHave("inject", run("inject", "wattpm-compat", "api", "-m", "POST", "-H", "content-type: text/plain", "-d", "payload", "-p", "/echo", "-f"),
		"POST payload", "x-echo-type: text/plain")

	lastRun := func() *time.Time {
		out, err := d.ctl("scheduler", "--json")
		if err != nil {
			t.Fatalf("ctl scheduler: %v\n%s", err, out)
		}
		var jobs []scheduler.Status
		if err := json.Unmarshal([]byte(out), &jobs); err != nil || len(jobs) != 1 {
			t.Fatalf("ctl scheduler --json: %v\n%s", err, out)
		}
		if !jobs[0].Paused && jobs[0].NextRunAt == nil {
			t.Errorf("resumed job without a next run: %+v", jobs[0])
		}
		return jobs[0].LastExecutedAt
	}
	waitFor(t, 10*time.Second, "a run of the job", func() bool { return lastRun() != nil })
	mustHave("metrics", run("metrics", "wattpm-compat"), `"name": "nodejs_heap_size_used_bytes"`, `"job_name": "tick"`)
	mustHave("metrics -f text", run("metrics", "wattpm-compat", "-f", "text"), "nodejs_heap_size_used_bytes{", `wattd_scheduler_runs_total{job_name="tick",result="success"}`)

	// Scheduler: listed, paused (not run meanwhile), resumed, run now.
	mustHave("scheduler", run("scheduler", "wattpm-compat"), "tick", "* * * * * *", "No")
	run("scheduler:pause", "wattpm-compat", "tick")
	mustHave("scheduler, paused", run("scheduler", "wattpm-compat"), "Yes")
	before := lastRun()
	// A job due every second that runs in the next 2.5 s was not paused.
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if l := lastRun(); l != nil && (before == nil || l.After(*before)) {
			t.Fatalf("paused job ran at %v", l)
		}
		time.Sleep(250 * time.Millisecond)
	}
	run("scheduler:resume", "wattpm-compat", "tick")
	waitFor(t, 10*time.Second, "the resumed job to run", func() bool {
		l := lastRun()
		return l != nil && (before == nil || l.After(*before))
	})
	mustHave("scheduler:run", run("scheduler:run", "wattpm-compat", "tick"), "success")
	// wattd ctl does the same.
	for _, verb := range []string{"pause", "resume"} {
		out, err := d.ctl("scheduler", verb, "tick", "--json")
		var st scheduler.Status
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Paused != (verb == "pause") {
			t.Errorf("ctl scheduler %s: %v\n%s", verb, err, out)
		}
	}
	if out, err := d.ctl("scheduler", "pause", "nope"); err == nil || !strings.Contains(out, `no scheduler job "nope" (jobs: tick)`) {
		t.Errorf("ctl scheduler pause of an unknown job: %v\n%s", err, out)
	}

	// Logs: a line the application writes reaches `wattpm logs`.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	lc := wattpm(ctx, tmp, "logs", "wattpm-compat")
	lc.Stdout, lc.Stderr = logs, logs
	if err := lc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); lc.Wait() }()
	waitFor(t, 20*time.Second, "the application's line in wattpm logs", func() bool {
		get(http.DefaultClient, d.url("/note?text=seen-by-wattpm"))
		return strings.Contains(logs.String(), "note: seen-by-wattpm")
	})

	// Restart: a new worker; stop: wattd exits and takes its directory.
	pid := d.waitReady("api", 10*time.Second).Workers[0].PID
	run("restart", "wattpm-compat")
	if now := d.waitReady("api", 10*time.Second).Workers[0].PID; now == pid {
		t.Errorf("wattpm restart: worker pid still %d", pid)
	}
	run("stop", "wattpm-compat")
	if code := d.wait(30 * time.Second); code != 0 {
		t.Errorf("wattd exited %d after wattpm stop", code)
	}
	if _, err := os.Stat(pidDir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", pidDir, err)
	}
}

// TestWattpmInject: `wattpm inject` sends the path as given, "//", ".."
// and escapes included, where a cleaned path (or a redirect to it) would
// be another request; an application's redirect is its answer, not
// followed (by `wattd ctl inject` either); and an unknown application is
// wattpm's error, as under Watt, not a response printed with exit status
// 0.
func TestWattpmInject(t *testing.T) {
	integration(t)
	wattpm := wattpmCommand(t)
	tmp, app := privateTmp(t), wattpmAppDir(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "api", "path": app}},
	})
	writeJSON(t, filepath.Join(dir, "package.json"), map[string]any{"name": "wattpm-inject"})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"TMPDIR=" + tmp}})
	waitHTTP(t, d.url("/"), 30*time.Second)

	inject := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := wattpm(ctx, tmp, append([]string{"inject", "wattpm-inject"}, args...)...).CombinedOutput()
		return string(out), err
	}
	for _, path := range []string{"/url//a", "/url/../b", "/url/./c", "/url/a%25b%2Fc?q=1"} {
		out, err := inject("api", "-p", path)
		if err != nil || out != "url: "+path {
			t.Errorf("wattpm inject -p %s: %v, %q", path, err, out)
		}
	}
	// A redirect comes back as the application answered it, without the
	// headers that described the application's own connection to wattd
	// (Node.js's Keep-Alive).
	out, err := inject("api", "-p", "/moved", "-f")
	if err != nil || !strings.Contains(out, "< HTTP/1.1 302") || !strings.Contains(out, "< location: /url-after-redirect") ||
		!strings.HasSuffix(out, "moved") || strings.Contains(out, "keep-alive: timeout") {
		t.Errorf("wattpm inject -p /moved: %v\n%s", err, out)
	}
	if out, err := d.ctl("inject", "api", "-i", "--no-fail", "/moved"); err != nil || !strings.Contains(out, "302") || !strings.Contains(out, "moved") {
		t.Errorf("ctl inject /moved: %v\n%s", err, out)
	}
	out, err = inject("nope", "-p", "/url")
	if err == nil || !strings.Contains(out, "Cannot find a matching application.") {
		t.Errorf("wattpm inject to an unknown application: %v\n%s", err, out)
	}
}

// TestWattLiveLogsGap: the live log stream (`wattpm logs`) drops lines for
// a reader that falls behind rather than hold wattd up, and then says how
// many it dropped, in a line of wattd's shape, instead of leaving a gap
// nobody sees.
func TestWattLiveLogsGap(t *testing.T) {
	integration(t)
	tmp := privateTmp(t)
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "index.js"), []byte(`
require('node:http').createServer((req, res) => {
  if (req.url === '/flood') {
    // pino's lines, one entry each
    for (let i = 0; i < 20000; i++) console.log(JSON.stringify({ level: 30, time: Date.now(), msg: 'flood line ' + i + ' ' + 'x'.repeat(200) }))
  } else if (req.url === '/mark') {
    console.log('mark')
  }
  res.end('ok')
}).listen(3000)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "api", "path": app}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"TMPDIR=" + tmp}})
	waitHTTP(t, d.url("/"), 30*time.Second)
	ws := dialWattWS(t, tmp, d.cmd.Process.Pid, "/api/v1/logs/live")
	defer ws.Close()
	// The reader hands each line over and reads the next only once the
	// test takes it: while the test takes none, nothing is read.
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			var line string
			if err := websocket.Message.Receive(ws, &line); err != nil {
				return
			}
			lines <- line
		}
	}()
	// next takes the next line, asking for one (a request to path, whose
	// line wattd logs) every 250 ms meanwhile.
	next := func(path string) string {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("the live log stream ended")
				}
				return line
			case <-time.After(250 * time.Millisecond):
				get(http.DefaultClient, d.url(path))
			case <-deadline:
				t.Fatal("no line on the live log stream for 30 s")
			}
		}
	}
	next("/mark") // followed from here on
	// 20000 lines, one entry each, logged while the reader takes none:
	// more than the queue and the socket's buffers hold.
	if _, _, err := get(http.DefaultClient, d.url("/flood")); err != nil {
		t.Fatal(err)
	}
	// Every line before a later mark has been through wattd's log (some
	// dropped on the way from the worker, as a flood's are).
	waitFor(t, 30*time.Second, "a mark after the flood in wattd's output", func() bool {
		get(http.DefaultClient, d.url("/mark"))
		return strings.Count(d.out.String(), `"msg":"mark"`) >= 2
	})
	var seen, missed int
	deadline := time.Now().Add(30 * time.Second)
	for missed == 0 && time.Now().Before(deadline) {
		line := next("/mark")
		seen += strings.Count(line, "flood line ")
		var notice struct {
			Level  int    `json:"level"`
			Msg    string `json:"msg"`
			Missed int    `json:"missed"`
		}
		if json.Unmarshal([]byte(line), &notice) == nil && notice.Missed > 0 {
			if notice.Level != 40 || !strings.Contains(notice.Msg, "dropped") {
				t.Errorf("notice: %s", line)
			}
			missed += notice.Missed
		}
	}
	if seen >= 20000 || missed == 0 {
		t.Errorf("a flood of 20000 lines while not reading: %d read, and a notice of %d dropped", seen, missed)
	}
}

// TestWattpmMetricsWithoutServer: as under Watt, `wattpm metrics` answers
// on a runtime whose watt.json has no "metrics" (the workers' process and
// V8 figures; request durations, which cost the workers something per
// request, need the key), while no metrics port is opened; "metrics":
// false turns it off.
func TestWattpmMetricsWithoutServer(t *testing.T) {
	integration(t)
	wattpm := wattpmCommand(t)
	for _, tt := range []struct {
		name    string
		metrics any // nil: no key
	}{{"no key", nil}, {"false", false}} {
		t.Run(tt.name, func(t *testing.T) {
			tmp, app := privateTmp(t), wattpmAppDir(t)
			cfg := map[string]any{
				"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"applications": []any{map[string]any{"id": "api", "path": app}},
			}
			if tt.metrics != nil {
				cfg["metrics"] = tt.metrics
			}
			dir := project(t, cfg)
			writeJSON(t, filepath.Join(dir, "package.json"), map[string]any{"name": "nometrics"})
			d := startWattd(t, dir, freePort(t), startOpts{env: []string{"TMPDIR=" + tmp}})
			waitHTTP(t, d.url("/"), 30*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tt.metrics == false {
				out, err := wattpm(ctx, tmp, "metrics", "nometrics").CombinedOutput()
				if err == nil || !strings.Contains(string(out), "Metrics are disabled") {
					t.Errorf("wattpm metrics with \"metrics\": false: %v\n%s", err, out)
				}
				return
			}
			// The series come with the workers' stats reports.
			var out []byte
			waitFor(t, 20*time.Second, "the workers' series in wattpm metrics", func() bool {
				var err error
				out, err = wattpm(ctx, tmp, "metrics", "nometrics", "-f", "text").CombinedOutput()
				return err == nil && strings.Contains(string(out), `nodejs_heap_size_used_bytes{applicationId="api"`)
			})
			if strings.Contains(string(out), "http_request_all_duration_seconds") {
				t.Errorf("request durations without the metrics key:\n%s", out)
			}
			if strings.Contains(d.out.String(), "metrics server listening") {
				t.Errorf("a metrics server without the metrics key:\n%s", d.out.String())
			}
		})
	}
}

// TestManagementAPIOff: "managementApi": false leaves nothing for wattpm.
func TestManagementAPIOff(t *testing.T) {
	integration(t)
	tmp := t.TempDir()
	dir := project(t, map[string]any{
		"server":        map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"managementApi": false,
		"applications":  []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"TMPDIR=" + tmp}})
	waitHTTP(t, d.url("/"), 30*time.Second)
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("TMPDIR has %v with managementApi off", entries)
	}
}

// TestWattpmUnderDev: under wattd dev the applications are listed without
// a worker count, as Watt lists them under wattpm dev (wattpm's table has
// no column for it there).
func TestWattpmUnderDev(t *testing.T) {
	integration(t)
	wattpm := wattpmCommand(t)
	tmp := privateTmp(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{dev: true, args: []string{"--name", "devcompat"}, env: []string{"TMPDIR=" + tmp}})
	waitHTTP(t, d.url("/"), 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := wattpm(ctx, tmp, "applications", "devcompat").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "web") || strings.Contains(string(out), "Workers") {
		t.Errorf("wattpm applications under dev: %v\n%s", err, out)
	}
}

// dialWattWS opens a WebSocket to path on the management API of the
// runtime with pid, whose socket is under tmp (its TMPDIR), as wattpm's
// client does.
func dialWattWS(t *testing.T, tmp string, pid int, path string) *websocket.Conn {
	t.Helper()
	sock := filepath.Join(tmp, "platformatic", "runtimes", strconv.Itoa(pid), "socket")
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := websocket.NewConfig("ws://localhost"+path, "http://localhost")
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	ws, err := websocket.NewClient(wc, conn)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return ws
}
