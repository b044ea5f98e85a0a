package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/scheduler"
)

// schedulerApp answers /tick with 200 and /fail with 500, and lists at
// /calls what it was sent (method, path, headers, body).
const schedulerApp = `
const calls = []
require('node:http').createServer((req, res) => {
  if (req.url === '/calls') return res.end(JSON.stringify(calls))
  let body = ''
  req.on('data', (c) => { body += c })
  req.on('end', () => {
    calls.push({ method: req.method, path: req.url, headers: req.headers, body, at: Date.now() })
    res.statusCode = req.url === '/fail' ? 500 : 200
    res.end()
  })
}).listen(3000)
`

type schedulerCall struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	At      int64             `json:"at"`
}

// TestScheduler: Watt's "scheduler" jobs run as Watt runs them. A job
// every second reaches an application through the mesh with its method,
// headers, body and x-retry-attempt; a failing one is tried maxRetries
// times and logged; a disabled one never runs. `ctl scheduler` lists the
// jobs with their next and last runs, and `ctl scheduler run` runs one at
// once.
func TestScheduler(t *testing.T) {
	integration(t)
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "index.js"), []byte(schedulerApp), 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": "api", "main": "index.js"})
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "api", "path": app}},
		"scheduler": []any{
			map[string]any{"name": "tick", "cron": "* * * * * *", "callbackUrl": "http://api.plt.local/tick", "method": "POST",
				"headers": map[string]any{"x-job": "tick"}, "body": map[string]any{"n": 1}},
			map[string]any{"name": "nightly", "cron": "0 3 * * *", "callbackUrl": "http://api.plt.local/fail", "maxRetries": 2},
			map[string]any{"name": "off", "cron": "* * * * * *", "callbackUrl": "http://api.plt.local/off", "enabled": false},
		},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("api", 20*time.Second)
	calls := func() []schedulerCall {
		_, body, err := get(fresh, d.url("/calls"))
		var out []schedulerCall
		if err == nil {
			_ = json.Unmarshal([]byte(body), &out)
		}
		return out
	}
	var ticks []schedulerCall
	waitFor(t, 10*time.Second, "two runs of the job every second", func() bool {
		ticks = nil
		for _, c := range calls() {
			if c.Path == "/tick" {
				ticks = append(ticks, c)
			}
		}
		return len(ticks) >= 2
	})
	c := ticks[0]
	if c.Method != "POST" || c.Headers["x-job"] != "tick" || c.Headers["x-retry-attempt"] != "1" || c.Body != `{"n":1}` || c.Headers["content-type"] != "application/json" {
		t.Errorf("the job's request: %+v", c)
	}
	if gap := ticks[1].At - ticks[0].At; gap < 500 || gap > 1500 {
		t.Errorf("runs %d ms apart, want about 1000", gap)
	}

	out, err := d.ctl("scheduler", "--json")
	if err != nil {
		t.Fatalf("ctl scheduler: %v\n%s", err, out)
	}
	var jobs []scheduler.Status
	if err := json.Unmarshal([]byte(out), &jobs); err != nil || len(jobs) != 2 || jobs[0].Name != "tick" || jobs[1].Name != "nightly" {
		t.Fatalf("ctl scheduler --json: %v\n%s", err, out)
	}
	if n := jobs[1].NextRunAt; n == nil || n.UTC().Hour() != 3 || n.Minute() != 0 || !n.After(time.Now()) {
		t.Errorf("nightly's next run: %v", n)
	}
	if jobs[0].LastExecutedAt == nil || jobs[0].LastStatus != "success" {
		t.Errorf("tick's last run: %v %q", jobs[0].LastExecutedAt, jobs[0].LastStatus)
	}
	if out, err := d.ctl("scheduler"); err != nil || !strings.Contains(out, "nightly") || !strings.Contains(out, "0 3 * * *") {
		t.Errorf("ctl scheduler: %v\n%s", err, out)
	}

	// Run now: two attempts at the failing URL, then a failure.
	out, err = d.ctl("scheduler", "run", "nightly")
	if err == nil || !strings.Contains(out, `"nightly" failed`) {
		t.Errorf("ctl scheduler run nightly: %v\n%s", err, out)
	}
	fails := 0
	for _, c := range calls() {
		if c.Path == "/fail" {
			fails++
		}
		if c.Path == "/off" {
			t.Errorf("the disabled job ran")
		}
	}
	if fails != 2 {
		t.Errorf("%d attempts at the failing job, want its maxRetries, 2", fails)
	}
	for _, want := range []string{`Error executing scheduler \"nightly\" (attempt 2/2): HTTP error 500`, `Scheduler \"nightly\" failed after 2 attempts`} {
		if !strings.Contains(d.out.String(), want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	if out, err := d.ctl("scheduler", "run", "nope"); err == nil || !strings.Contains(out, `no scheduler job "nope" (jobs: tick, nightly)`) {
		t.Errorf("ctl scheduler run nope: %v\n%s", err, out)
	}

	// A reload applies the file's jobs: tick gone, hourly added, nightly
	// kept with its last run.
	cfg := map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "api", "path": app}},
		"scheduler": []any{
			map[string]any{"name": "nightly", "cron": "0 3 * * *", "callbackUrl": "http://api.plt.local/fail", "maxRetries": 2},
			map[string]any{"name": "hourly", "cron": "@hourly", "callbackUrl": "http://api.plt.local/tick"},
		},
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), cfg)
	if out, err := d.ctl("reload"); err != nil {
		t.Fatalf("ctl reload: %v\n%s", err, out)
	}
	out, err = d.ctl("scheduler", "--json")
	jobs = nil
	if err := json.Unmarshal([]byte(out), &jobs); err != nil || len(jobs) != 2 || jobs[0].Name != "nightly" || jobs[1].Name != "hourly" || jobs[0].LastStatus != "failed" {
		t.Fatalf("ctl scheduler after the reload: %v\n%s", err, out)
	}
	d.waitOutput(`Scheduler \"tick\" removed`, 10*time.Second)
	before := 0
	for _, c := range calls() {
		if c.Path == "/tick" {
			before++
		}
	}
	time.Sleep(1500 * time.Millisecond) // an absence: tick ran every second, so 1.5 s without a run says it is gone
	after := 0
	for _, c := range calls() {
		if c.Path == "/tick" {
			after++
		}
	}
	if after != before {
		t.Errorf("tick, removed by the reload, ran %d more times", after-before)
	}
}

// TestSchedulerBadCron: a cron expression Watt would refuse stops the
// start with the file, the job's JSON path and what is wrong.
func TestSchedulerBadCron(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
		"scheduler":    []any{map[string]any{"name": "x", "cron": "61 * * * *", "callbackUrl": "http://web.plt.local/"}},
	})
	out, code := runCLI(t, dir, nil, "start", dir)
	if code != 2 || !strings.Contains(out, filepath.Join(dir, "watt.json")) || !strings.Contains(out, "/scheduler/0/cron") || !strings.Contains(out, "out of range") {
		t.Fatalf("start with a bad cron: exit %d\n%s", code, out)
	}
}

// TestSchedulerExample runs testdata/examples/scheduler as its README
// says: the cleanup job reaches the application with its body and header
// within its 5 s period, and ctl lists both jobs.
func TestSchedulerExample(t *testing.T) {
	integration(t)
	d := startWattd(t, fixture("examples/scheduler"), freePort(t), startOpts{})
	d.waitReady("api", 20*time.Second)
	var runs []struct {
		Path, Job, Attempt, Body string
	}
	waitFor(t, 15*time.Second, "a run of the cleanup job", func() bool {
		_, body, err := get(fresh, d.url("/"))
		return err == nil && json.Unmarshal([]byte(body), &runs) == nil && len(runs) > 0
	})
	if r := runs[0]; r.Path != "/cleanup" || r.Job != "cleanup" || r.Attempt != "1" || r.Body != `{"olderThanDays":30}` {
		t.Errorf("the run: %+v", r)
	}
	if out, err := d.ctl("scheduler"); err != nil || !strings.Contains(out, "cleanup") || !strings.Contains(out, "0 6 * * mon-fri") {
		t.Errorf("ctl scheduler: %v\n%s", err, out)
	}
}
