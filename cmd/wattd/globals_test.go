package main_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

// TestWattRuntimeAPI runs testdata/apps/globals, an app written for Watt
// that uses the real @platformatic/globals package from npm (getLogger,
// getApplicationId, getEvents, setCustomHealthCheck, getPrometheus, …),
// under wattd on every node in WATTD_TEST_NODES. It checks what the app
// reads, that its logger's lines reach wattd's log with their level,
// fields, app and worker, that a health signal shows in `ctl ps`, that a
// failing custom health check gets the worker replaced, and that stopping
// sets closing and emits Watt's event.
func TestWattRuntimeAPI(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		t.Run(nodeVersion(t, node), func(t *testing.T) {
			port := freePort(t)
			dir := project(t, map[string]any{
				"entrypoint": "web",
				"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"logger":     map[string]any{"level": "debug"},
				// Checks often enough for a quick test, not so often that a
				// healthy worker on a loaded machine looks stuck.
				"health": map[string]any{"interval": 500, "gracePeriod": 500, "maxUnhealthyChecks": 3},
				"applications": []any{map[string]any{
					"id": "web", "path": fixture("apps/globals"), "workers": 2,
				}},
			})
			d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node}})
			waitHTTP(t, d.url("/"), 20*time.Second)
			d.waitReady("web", 20*time.Second)

			_, body, err := get(fresh, d.url("/"))
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("GET /: %q: %v", body, err)
			}
			want := map[string]any{
				"applicationId": "web", "isEntrypoint": true, "host": "127.0.0.1", "port": float64(port),
				"logLevel": "debug", "closing": false, "entrypoint": "web", "appConfigId": "web",
				"hasServer": true, "hasMessaging": true,
				"root": "file://" + fixture("apps/globals"),
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			if w := got["workerId"]; w != 0.0 && w != 1.0 {
				t.Errorf("workerId = %v", w)
			}
			if got["runtimeId"] != got["pid"] {
				t.Errorf("runtimeId = %v, pid %v", got["runtimeId"], got["pid"])
			}

			// The app's logger: each worker's line at load, and a line per
			// request, in wattd's log with the app's level and fields.
			waitFor(t, 10*time.Second, "both workers' load lines", func() bool {
				return len(logEntries(d.out.String(), "globals fixture loaded")) >= 2
			})
			for _, e := range logEntries(d.out.String(), "globals fixture loaded") {
				if e["name"] != "web" || e["level"] != pinoInfo || e["component"] != "fixture" || e["applicationId"] != "web" || e["workerId"] != e["worker"] {
					t.Errorf("load line: %v", e)
				}
			}
			if _, body, err := get(fresh, d.url("/log?msg=hello")); err != nil || body != "logged" {
				t.Fatalf("GET /log: %q %v", body, err)
			}
			var logged map[string]any
			waitFor(t, 10*time.Second, "the request's log line", func() bool {
				if es := logEntries(d.out.String(), "fixture says hello"); len(es) == 1 {
					logged = es[0]
				}
				return logged != nil
			})
			// A structured line keeps its own fields; like Watt, wattd adds
			// no caller to it.
			if logged["level"] != pinoError || logged["name"] != "web" || logged["code"] != "E_FIXTURE" || logged["caller"] != nil {
				t.Errorf("request log line: %v", logged)
			}
			if w, ok := logged["worker"].(float64); !ok || (w != 0 && w != 1) {
				t.Errorf("request log line without its worker: %v", logged)
			}

			// prometheus: the app's own registry, from the app's prom-client.
			if _, body, err := get(fresh, d.url("/metrics")); err != nil || !strings.Contains(body, "fixture_hits_total") {
				t.Errorf("GET /metrics: %q %v", body, err)
			}

			// A health signal shows on its worker in ctl ps.
			_, body, err = get(fresh, d.url("/signal?v=5"))
			if err != nil || !strings.HasPrefix(body, "signalled ") {
				t.Fatalf("GET /signal: %q %v", body, err)
			}
			signalled, _ := strconv.Atoi(strings.TrimPrefix(body, "signalled "))
			waitFor(t, 10*time.Second, "the health signal in ctl ps", func() bool {
				for _, w := range d.app("web").Workers {
					if w.PID != signalled {
						continue
					}
					var s struct {
						Type  string
						Value float64
					}
					return json.Unmarshal(w.HealthSignals["fixture"], &s) == nil && s.Type == "fixture" && s.Value == 5
				}
				return false
			})

			// A failing custom health check: that worker is replaced, the
			// other one is left alone.
			_, body, err = get(fresh, d.url("/sick"))
			if err != nil || !strings.HasPrefix(body, "sick ") {
				t.Fatalf("GET /sick: %q %v", body, err)
			}
			sick, _ := strconv.Atoi(strings.TrimPrefix(body, "sick "))
			slot := d.slotOf("web", sick)
			var replaced supervisor.WorkerStatus
			reason := ""
			waitFor(t, 20*time.Second, "the sick worker replaced", func() bool {
				replaced = d.app("web").Workers[slot]
				for _, e := range replaced.History {
					if e.State == "replaced" {
						reason = e.Reason
					}
				}
				return replaced.State == "ready" && replaced.PID != 0 && replaced.PID != sick && reason != ""
			})
			if !strings.Contains(reason, "custom health check failed") {
				t.Errorf("replacement reason = %q", reason)
			}
			for _, w := range d.app("web").Workers {
				if w.Index != replaced.Index && w.Restarts != 0 {
					t.Errorf("healthy worker %d restarted too: %+v", w.Index, w)
				}
			}

			// Stopping (and the replacement's drain before): closing is
			// true when the app's 'closing' handler runs, in every worker.
			stopping := map[float64]bool{float64(sick): true}
			for _, w := range d.app("web").Workers {
				stopping[float64(w.PID)] = true
			}
			d.signal(syscall.SIGTERM)
			if code := d.wait(20 * time.Second); code != 0 {
				t.Fatalf("wattd exit %d", code)
			}
			closing := logEntries(d.out.String(), "globals fixture closing")
			for _, e := range closing {
				if e["closing"] != true || e["level"] != pinoWarn {
					t.Errorf("closing line: %v", e)
				}
				delete(stopping, e["pid"].(float64))
			}
			if len(stopping) != 0 || len(closing) != 3 {
				t.Errorf("closing lines %v; workers without one: %v", closing, stopping)
			}
		})
	}
}
