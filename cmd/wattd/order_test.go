package main_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDependantStartsAfterDependency: an application that calls another
// while it starts, and lists it in dependencies, is started only once that
// one is ready, so its startup call is answered (not 503) although the
// dependency takes over a second to listen.
func TestDependantStartsAfterDependency(t *testing.T) {
	integration(t)
	port := freePort(t)
	// The entrypoint starts after every other app anyway: the dependant
	// here is not the entrypoint, and is asked through it.
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/caller")},
			map[string]any{"id": "api", "path": fixture("order/startup-caller"), "dependencies": []string{"db"}},
			map[string]any{"id": "db", "path": fixture("order/slow-db")},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/env"), 30*time.Second)
	c := &http.Client{Timeout: 5 * time.Second}
	var body string
	waitFor(t, 10*time.Second, "api's startup call to finish", func() bool {
		_, b, err := get(c, d.url("/fetch?app=api&path=/"))
		body = b
		return err == nil && strings.Contains(b, "startup call:") && !strings.Contains(b, "pending")
	})
	if !strings.Contains(body, `"body":"startup call: 200 db ok\n"`) {
		t.Fatalf("api's startup call to db: %s", body)
	}
	if !strings.Contains(d.out.String(), "waiting for dependencies to be ready") {
		t.Error("no log of api waiting for db")
	}
}

// TestEntrypointThatCannotStartExits: when the entrypoint gives up before
// it was ever ready, wattd stops and exits 1 with a message naming the app
// and why, as `wattpm start` does; it does not retry forever.
func TestEntrypointThatCannotStartExits(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":    map[string]any{"initialDelay": 20, "maxDelay": 100, "maxRestarts": 0},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("faults/crash-start")},
			map[string]any{"id": "other", "path": fixture("apps/plain")},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	if code := d.wait(60 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	out := d.out.String()
	if !strings.Contains(out, `the entrypoint could not start: app \"web\": 6 attempts failed; last: exit status 3`) {
		t.Fatalf("output does not say why:\n%s", out)
	}
}

// TestWorkerOutputFraming: through the real binary and a real Node worker,
// a message of several lines and an error with its stack are one entry
// each, stderr is logged at error, pino records keep their trace and fatal
// levels and their fields, and a JSON object that is not a pino record is
// kept whole.
func TestWorkerOutputFraming(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":   "web",
		"logger":       map[string]any{"level": "trace"},
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/logs")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	d.waitOutput("single line", 10*time.Second)
	d.waitOutput("Error: boom", 10*time.Second) // held a moment for more of its stack
	entries := map[string]map[string]any{}
	for _, l := range strings.Split(d.out.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["name"] != "web" {
			continue
		}
		msg, _ := m["msg"].(string)
		if _, seen := entries[msg]; !seen {
			entries[msg] = m
		}
	}
	check := func(msg string, level float64, fields map[string]any) {
		t.Helper()
		e, ok := entries[msg]
		if !ok {
			t.Errorf("no entry %q; entries: %q", msg, keys(entries))
			return
		}
		if e["level"] != level || e["worker"] != 0.0 {
			t.Errorf("%q: level %v worker %v, want %v 0", msg, e["level"], e["worker"], level)
		}
		for k, v := range fields {
			if e[k] != v {
				t.Errorf("%q: %s = %#v, want %#v", msg, k, e[k], v)
			}
		}
	}
	check("multi-line message\nsecond line of it", pinoInfo, map[string]any{"caller": "STDOUT"})
	check("pino trace", pinoTrace, map[string]any{"reqId": "r1"})
	check("pino fatal", pinoFatal, map[string]any{"reqId": "r2"})
	check("pino string fatal", pinoFatal, nil)
	check("", pinoInfo, map[string]any{"event": "sync", "worker.time": "2026-01-01T00:00:00Z", "items": 3.0})
	check("single line", pinoInfo, nil)
	var stack string
	for msg := range entries {
		if strings.HasPrefix(msg, "Error: boom\n    at ") {
			stack = msg
			check(msg, pinoError, map[string]any{"caller": "STDERR"})
		}
	}
	if stack == "" {
		t.Errorf("no entry holds the error with its stack; entries: %q", keys(entries))
	}
	for msg := range entries {
		if strings.HasPrefix(strings.TrimSpace(msg), "at ") {
			t.Errorf("a stack frame was logged on its own: %q", msg)
		}
	}
}

func keys(m map[string]map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
