package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// workerEntries returns the entries wattd logged for app's output on
// stream ("STDOUT", "STDERR"), in order.
func workerEntries(d *daemon, app, stream string) []string {
	var msgs []string
	for _, line := range strings.Split(d.out.String(), "\n") {
		var e struct{ Name, Msg, Caller string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Name == app && e.Caller == stream {
			msgs = append(msgs, e.Msg)
		}
	}
	return msgs
}

// goappProject copies the goapp fixture into a new project as its one
// application, "goapp" (app holds extra keys of its entry), and builds it
// with wattd build unless dev is set (wattd dev builds it itself).
func goappProject(t *testing.T, app map[string]any, dev bool) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, fixture("apps/goapp"), filepath.Join(dir, "goapp"))
	entry := map[string]any{"id": "goapp", "path": "./goapp"}
	for k, v := range app {
		entry[k] = v
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"entrypoint":   "goapp",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{entry},
	})
	if dev {
		os.RemoveAll(filepath.Join(dir, "goapp", ".wattd"))
		return dir
	}
	build := exec.Command(wattdBin, "build", "-d", dir)
	build.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+t.TempDir())
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("wattd build: %v\n%s", err, out)
	}
	return dir
}

// TestGoPanicIsOneLogEntry: a Go worker that panics prints the runtime's
// report with many small writes; wattd logs it as one entry (head, blank
// line, goroutine header, frames), as it logs Node's report of an uncaught
// exception, not as one entry per write.
func TestGoPanicIsOneLogEntry(t *testing.T) {
	integration(t)
	dir := goappProject(t, nil, false)
	d := startWattd(t, dir, freePort(t), startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	// Go's standard logger writes on stderr: its line is info, without the
	// logger's own time, where another stderr line is an error.
	waitFor(t, 10*time.Second, "the log.Printf line, at info", func() bool {
		for _, line := range strings.Split(d.out.String(), "\n") {
			var e struct {
				Name, Msg, Caller string
				Level             int
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Name == "goapp" && e.Caller == "STDERR" && strings.HasPrefix(e.Msg, "go app ") && strings.Contains(e.Msg, " listening on ") {
				if e.Level != 30 {
					t.Fatalf("log.Printf's line logged at level %d, want 30: %s", e.Level, line)
				}
				return true
			}
		}
		return false
	})
	// Under load, as in production: wattd's forwarders are busy, and its
	// pipe reader takes the runtime's writes as they come.
	stop := make(chan struct{})
	var served atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if resp, err := c.Get(d.url("/")); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					served.Add(1)
				}
			}
		}()
	}
	waitFor(t, 10*time.Second, "the load to run", func() bool { return served.Load() >= 200 })
	get(fresh, d.url("/panic")) // the worker dies before it answers
	close(stop)
	wg.Wait()
	d.waitOutput(`"reason":"exit status 2"`, 15*time.Second)
	// The report's last line has come once an entry holds it.
	var report string
	waitFor(t, 10*time.Second, "the panic's report in the log", func() bool {
		for _, m := range workerEntries(d, "goapp", "STDERR") {
			if strings.Contains(m, "main.go:") && strings.Contains(m, "created by main.main") {
				return true
			}
		}
		return false
	})
	for _, m := range workerEntries(d, "goapp", "STDERR") {
		if strings.HasPrefix(m, "panic: boom from goapp") {
			report = m
		}
	}
	if !strings.Contains(report, "\ngoroutine ") || !strings.Contains(report, "\ncreated by main.main") {
		t.Errorf("the panic's entry lacks its goroutine and frames: %q", report)
	}
	for _, m := range workerEntries(d, "goapp", "STDERR") {
		if m == "" || strings.HasPrefix(m, "goroutine ") || strings.HasPrefix(m, "main.") || strings.HasPrefix(m, "created by ") {
			t.Errorf("a piece of the panic's report logged on its own: %q", m)
		}
	}
}

// TestGoDevFirstBuildIsNoChange: `wattd dev` builds a Go app into its
// .wattd folder; making that folder is not an edit, so the worker is not
// restarted for it. An edit to a .go file restarts it once.
func TestGoDevFirstBuildIsNoChange(t *testing.T) {
	integration(t)
	dir := goappProject(t, nil, true)
	d := startWattd(t, dir, freePort(t), startOpts{dev: true})
	waitHTTP(t, d.url("/"), 60*time.Second)
	d.waitReady("goapp", 10*time.Second)
	src := filepath.Join(dir, "goapp", "main.go")
	b, _ := os.ReadFile(src)
	edited := strings.Replace(string(b), `"go app %d\n"`, `"go app edited %d\n"`, 1)
	if edited == string(b) {
		t.Fatal("fixture changed; cannot edit it")
	}
	if err := os.WriteFile(src, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the edit to be served", func() bool {
		_, body, err := get(fresh, d.url("/"))
		return err == nil && strings.Contains(body, "go app edited")
	})
	var changes []string
	for _, line := range strings.Split(d.out.String(), "\n") {
		if strings.Contains(line, "files changed; restarting") {
			changes = append(changes, line)
		}
	}
	if len(changes) != 1 || strings.Contains(changes[0], ".wattd") {
		t.Fatalf("want one restart, for main.go; got %d:\n%s", len(changes), strings.Join(changes, "\n"))
	}
}

// TestGoMemLimitFromResources: a Go worker under a memory limit gets
// GOMEMLIMIT at 90% of it, so that its garbage collector works harder as
// the heap nears the limit instead of growing into the kernel's kill.
func TestGoMemLimitFromResources(t *testing.T) {
	integration(t)
	dir := goappProject(t, map[string]any{"resources": map[string]any{"memory": "64MiB"}}, false)
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("goapp", 30*time.Second)
	out, err := d.ctl("env", "goapp")
	if err != nil || !strings.Contains(out, "\nGOMEMLIMIT=60397974\n") {
		t.Errorf("ctl env goapp: %v; want GOMEMLIMIT=60397974 (90%% of 64MiB)\n%s", err, out)
	}
}

// TestGoLogFatalReasonAtWarn: a Go worker that dies by log.Fatal writes
// one line on stderr, which wattd logs at info (the standard logger's
// lines are), and exits 1. At logger.level warn that line is not logged;
// the "worker exited" entry carries it as lastError, and the restart it
// waited for is ready again.
func TestGoLogFatalReasonAtWarn(t *testing.T) {
	integration(t)
	dir := goappProject(t, nil, false)
	var cfg map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "watt.json"))
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("watt.json: %v", err)
	}
	cfg["logger"] = map[string]any{"level": "warn"}
	writeJSON(t, filepath.Join(dir, "watt.json"), cfg)
	d := startWattd(t, dir, freePort(t), startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	old := d.waitReady("goapp", 10*time.Second).Workers[0].PID
	get(fresh, d.url("/fatal")) // the worker dies before it answers
	var exited []map[string]any
	waitFor(t, 15*time.Second, "the worker exited entry", func() bool {
		exited = logEntries(d.out.String(), "worker exited")
		return len(exited) > 0
	})
	const line = "cannot reach the database: connection refused"
	if last, _ := exited[0]["lastError"].(string); exited[0]["reason"] != "exit status 1" || !strings.HasSuffix(last, line) {
		t.Errorf("worker exited: %v, want reason exit status 1 and lastError ending in %q", exited[0], line)
	}
	waitFor(t, 15*time.Second, "the replacement ready", func() bool {
		w := d.app("goapp").Workers[0]
		return w.PID != 0 && w.PID != old && w.State == "ready"
	})
}
