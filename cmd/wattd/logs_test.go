package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// follower is a running `wattd ctl logs … -f --json`.
type follower struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
}

func (d *daemon) follow(args ...string) *follower {
	d.t.Helper()
	cmd := exec.Command(wattdBin, append([]string{"ctl", "logs"}, args...)...)
	cmd.Dir = d.dir
	cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+d.runDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	f := &follower{cmd: cmd}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			f.mu.Lock()
			f.lines = append(f.lines, sc.Text())
			f.mu.Unlock()
		}
	}()
	d.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return f
}

func (f *follower) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// entries decodes lines and keeps those whose msg is msg ("" for all).
func entries(t *testing.T, lines []string, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("ctl logs --json printed %q: %v", l, err)
		}
		if msg == "" || m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestCtlLogs: `wattd ctl logs -f` follows a live worker's lines as the app
// logs them on request, --worker keeps one worker's, -n prints the last
// lines, logger.redact masks values in them, an application's own
// logger.level filters its logger's lines (not those of a logger of its
// own), and a follower that goes
// away leaves wattd logging.
func TestCtlLogs(t *testing.T) {
	integration(t)
	port := freePort(t)
	quietCfg := filepath.Join(t.TempDir(), "quiet.json")
	writeJSON(t, quietCfg, map[string]any{
		"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json",
		"logger":  map[string]any{"level": "warn"},
	})
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"workers":    2,
		"logger": map[string]any{"level": "debug", "redact": map[string]any{
			"paths": []any{"secret", "user.token"},
		}},
		"server": map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/logreq")},
			map[string]any{"id": "quiet", "path": fixture("apps/logreq"), "config": quietCfg},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)

	all := d.follow("web", "-f", "-n", "0", "--json")
	one := d.follow("web", "--worker", "1", "-f", "-n", "0", "--json")
	// Requests land on either worker; go on until worker 1 has logged.
	seen := map[float64]bool{}
	i := 0
	waitFor(t, 30*time.Second, "info lines of both workers in the follower", func() bool {
		i++
		if _, _, err := get(fresh, d.url(fmt.Sprintf("/?msg=m%d", i))); err != nil {
			return false
		}
		for _, e := range entries(t, all.snapshot(), "") {
			if w, ok := e["worker"].(float64); ok && strings.HasSuffix(fmt.Sprint(e["msg"]), " info") {
				seen[w] = true
			}
		}
		return seen[0] && seen[1] && len(entries(t, one.snapshot(), "")) > 0
	})
	t.Logf("%d requests until both workers logged", i)

	for _, e := range entries(t, one.snapshot(), "") {
		if e["name"] != "web" || e["worker"] != 1.0 {
			t.Errorf("--worker 1 printed %v", e)
		}
	}
	// The first request the follower saw in full (it may have connected
	// after the first few).
	var info map[string]any
	for _, e := range entries(t, all.snapshot(), "") {
		if m := fmt.Sprint(e["msg"]); strings.HasSuffix(m, " info") {
			info = e
			break
		}
	}
	req := strings.TrimSuffix(info["msg"].(string), " info")
	user, _ := info["user"].(map[string]any)
	if info["secret"] != "[redacted]" || user["token"] != "[redacted]" || user["name"] != "n" || info["level"] != pinoInfo {
		t.Errorf("redacted info line: %v", info)
	}
	// wattd masks a worker's own pino lines too, not only those of its
	// logger; at the runtime's debug level they are kept.
	if own := entries(t, all.snapshot(), req+" own pino debug"); len(own) != 1 || own[0]["secret"] != "[redacted]" || own[0]["level"] != pinoDebug {
		t.Errorf("own pino line: %v", own)
	}
	// The same lines in wattd's own output.
	if out := logEntries(d.out.String(), req+" info"); len(out) != 1 || out[0]["secret"] != "[redacted]" {
		t.Errorf("wattd's output: %v", out)
	}
	if strings.Contains(d.out.String(), `"s3"`) {
		t.Error("wattd's output holds a redacted value")
	}

	// -n: the last lines, as the follower saw them.
	var last []string
	waitFor(t, 10*time.Second, "ctl logs -n 3 to match the follower's last lines", func() bool {
		out, err := d.ctl("logs", "web", "-n", "3", "--json")
		if err != nil {
			t.Fatalf("ctl logs -n 3: %v\n%s", err, out)
		}
		last = strings.Split(strings.TrimSpace(out), "\n")
		got := all.snapshot()
		return len(last) == 3 && len(got) >= 3 && strings.Join(got[len(got)-3:], "\n") == strings.Join(last, "\n")
	})
	human, err := d.ctl("logs", "web", "-n", "1")
	if err != nil || !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO |WARN |ERROR) web:[01] `).MatchString(human) {
		t.Errorf("ctl logs web -n 1: %q %v", human, err)
	}

	// The quiet app's own level (warn) is its logger's: that drops its
	// info and debug lines; its own pino line and its plain output are
	// kept, as in Watt (the runtime's level is debug).
	if out, err := d.ctl("inject", "quiet", "/?msg=q1"); err != nil {
		t.Fatalf("ctl inject quiet: %v\n%s", err, out)
	}
	var quiet []string
	waitFor(t, 10*time.Second, "the quiet app's plain line", func() bool {
		out, err := d.ctl("logs", "quiet", "-n", "100", "--json")
		quiet = strings.Split(strings.TrimSpace(out), "\n")
		return err == nil && len(entries(t, quiet, "q1 plain")) == 1
	})
	if len(entries(t, quiet, "q1 warn")) != 1 {
		t.Errorf("the quiet app's warn line is missing: %q", quiet)
	}
	for _, msg := range []string{"q1 info", "q1 debug"} {
		if len(entries(t, quiet, msg)) != 0 || len(logEntries(d.out.String(), msg)) != 0 {
			t.Errorf("%q logged by an app whose level is warn", msg)
		}
	}
	if own := entries(t, quiet, "q1 own pino debug"); len(own) != 1 || own[0]["level"] != pinoDebug {
		t.Errorf("the quiet app's own pino line: %v in %q", own, quiet)
	}

	// A follower that vanishes: wattd goes on logging and serving.
	if err := all.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = all.cmd.Wait()
	if _, _, err := get(fresh, d.url("/?msg=after")); err != nil {
		t.Fatalf("GET after the follower left: %v", err)
	}
	waitFor(t, 10*time.Second, "the line logged after the follower left", func() bool {
		out, err := d.ctl("logs", "web", "-n", "20", "--json")
		return err == nil && len(entries(t, strings.Split(strings.TrimSpace(out), "\n"), "after info")) == 1
	})
}

// TestCtlLogsErrors: what ctl logs says when asked for what is not there.
func TestCtlLogsErrors(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/logreq")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"nope"}, "known apps: web"},
		{[]string{"web", "--worker", "3"}, "it has workers 0 to 0"},
		{[]string{"--worker", "1"}, "--worker needs APP"},
		{[]string{"web", "-n", "many"}, "want a number of lines"},
		{[]string{"web", "extra"}, "one APP at most"},
	} {
		out, err := d.ctl(append([]string{"logs"}, c.args...)...)
		if err == nil || !strings.Contains(out, c.says) {
			t.Errorf("ctl logs %q: %v %q, want an error saying %q", c.args, err, out, c.says)
		}
	}
}

// TestCtlLogsForgedLines: what a worker logs cannot pass for another line
// in ctl logs' console output, nor reach the terminal as control
// characters: a message of several lines has its later lines indented,
// and escape sequences and carriage returns are shown escaped.
func TestCtlLogsForgedLines(t *testing.T) {
	integration(t)
	port := freePort(t)
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "index.js"), []byte(`
const http = require('node:http')
console.log(JSON.stringify({ level: 30, time: Date.now(), msg: 'harmless\n12:00:00.000 FATAL wattd forged-json' }))
console.log('plain\n12:00:00.000 FATAL wattd forged-plain')
console.log('title \u001b]0;pwned\u0007 erase \u001b[2K\rforged-cr')
console.log(JSON.stringify({ level: 30, msg: 'fields', ['k\u001b[8m']: 'v\u001b[8m' }))
http.createServer((req, res) => res.end('ok')).listen(3000)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": "forger", "main": "index.js"})
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": app}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)

	var out string
	waitFor(t, 10*time.Second, "the forger's four entries in ctl logs", func() bool {
		var err error
		out, err = d.ctl("logs", "web", "-n", "100")
		return err == nil && strings.Contains(out, "forged-json") && strings.Contains(out, "forged-plain") &&
			strings.Contains(out, "forged-cr") && strings.Contains(out, "fields")
	})
	entry := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} `)
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.Contains(line, "forged-") && entry.MatchString(line) && !strings.Contains(line, " web:0 ") {
			t.Errorf("a worker's message printed as a line of its own: %q", line)
		}
	}
	if strings.ContainsAny(out, "\x1b\r\x07") {
		t.Errorf("ctl logs printed control characters: %q", out)
	}
	for _, want := range []string{`\x1b]0;pwned\x07`, `\x1b[2K\x0dforged-cr`, `k\x1b[8m=`} {
		if !strings.Contains(out, want) {
			t.Errorf("ctl logs lacks %q:\n%s", want, out)
		}
	}
	// --json is the record as logged, for machines.
	js, err := d.ctl("logs", "web", "-n", "100", "--json")
	if err != nil || !strings.Contains(js, `harmless\n12:00:00.000 FATAL wattd forged-json`) {
		t.Errorf("ctl logs --json: %v\n%s", err, js)
	}
}

// TestLineWithoutNewlineIsLogged: a worker that writes the start of a line
// and then nothing more (a "waiting for the database... " before a hang)
// has it logged on its own within a moment, as Watt logs each write; the
// rest, written much later, is an entry of its own, not glued to it.
func TestLineWithoutNewlineIsLogged(t *testing.T) {
	integration(t)
	port := freePort(t)
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "index.js"), []byte(`
const http = require('node:http')
process.stdout.write('waiting for the database... ')
http.createServer((req, res) => {
  if (req.url === '/finish') console.log('database ready')
  res.end('ok')
}).listen(3000)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": "partial", "main": "index.js"})
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": app}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	waitFor(t, 10*time.Second, "the line without its newline in the log", func() bool {
		return slices.Contains(workerEntries(d, "web", "STDOUT"), "waiting for the database... ")
	})
	if code, _, err := get(fresh, d.url("/finish")); err != nil || code != 200 {
		t.Fatalf("GET /finish: %d %v", code, err)
	}
	waitFor(t, 10*time.Second, "the rest of the line as an entry of its own", func() bool {
		return slices.Contains(workerEntries(d, "web", "STDOUT"), "database ready")
	})
	if out, err := d.ctl("logs", "web", "-n", "100"); err != nil || !strings.Contains(out, "waiting for the database... ") {
		t.Errorf("ctl logs: %v\n%s", err, out)
	}
}

// TestLineAtTheLimitIsWhole: a worker line exactly as long as the log's
// line limit (16 KiB), ended by CRLF, is logged whole, without its \r and
// not marked truncated; one byte more is cut to the limit and marked.
func TestLineAtTheLimitIsWhole(t *testing.T) {
	integration(t)
	app := t.TempDir()
	// Each line in a write of its own, a moment apart: lines that come in
	// one read are one entry.
	if err := os.WriteFile(filepath.Join(app, "index.js"), []byte(`
const http = require('node:http')
const n = 16384
process.stdout.write('a'.repeat(n) + '\r\n')
setTimeout(() => process.stdout.write('b'.repeat(n + 1) + '\r\n'), 300)
http.createServer((req, res) => res.end('ok')).listen(3000)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": "limit", "main": "index.js"})
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": app}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	at, over := strings.Repeat("a", 16384), strings.Repeat("b", 16384)
	waitFor(t, 10*time.Second, "both lines in the log", func() bool {
		return len(logEntries(d.out.String(), at)) == 1 && len(logEntries(d.out.String(), over)) == 1
	})
	if e := logEntries(d.out.String(), at)[0]; e["truncated"] != nil {
		t.Errorf("the line at the limit is marked truncated: %v", e["truncated"])
	}
	if e := logEntries(d.out.String(), over)[0]; e["truncated"] != true {
		t.Errorf("the line over the limit: truncated = %v, want true", e["truncated"])
	}
}
