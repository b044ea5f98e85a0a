package supervisor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
)

// touch creates the marker file a "checks" test worker looks for.
func (tr *liveRuntime) touch(app, name string, pid int) {
	tr.t.Helper()
	if err := os.WriteFile(filepath.Join(tr.states[app], name+"-"+strconv.Itoa(pid)), nil, 0o600); err != nil {
		tr.t.Fatal(err)
	}
}

// TestFailingCustomHealthCheckReplacesWorker: a worker whose app's custom
// health check fails for maxUnhealthyChecks checks is replaced like one
// over maxELU; a worker without checks is never asked for one.
func TestFailingCustomHealthCheckReplacesWorker(t *testing.T) {
	tr := startRuntime(t, withHealth(fastHealth("")),
		testApp{id: "web", behaviour: "checks"},
		testApp{id: "plain", behaviour: "probe:200"})
	first := tr.waitReady("web", 0)
	plain := tr.waitReady("plain", 0)
	stays(t, "the worker whose checks pass", time.Second, func() bool { return len(tr.starts("web")) == 1 })

	tr.touch("web", "sick", first.PID)
	ws := tr.waitReplaced("web", 0, first.PID)
	if want := "unhealthy: custom health check failed for 3 checks"; ws.LastExit != want {
		t.Errorf("lastExit %q, want %q", ws.LastExit, want)
	}
	stays(t, "the replacement and the app without checks", 1500*time.Millisecond, func() bool {
		return len(tr.starts("web")) == 2 && tr.slot("plain", 0).status().PID == plain.PID
	})
}

// TestReadiness: per worker, ready once the slot's worker is ready and its
// custom readiness check (if any) passes, with the status and body the
// check gave.
func TestReadiness(t *testing.T) {
	tr := startRuntime(t, nil,
		testApp{id: "web", behaviour: "checks"},
		testApp{id: "plain", behaviour: "ready"})
	web := tr.waitReady("web", 0)
	tr.waitReady("plain", 0)

	byApp := func() map[string]WorkerReadiness {
		out := map[string]WorkerReadiness{}
		for _, r := range tr.Readiness(context.Background(), 5*time.Second) {
			out[r.App] = r
		}
		return out
	}
	r := byApp()
	if w := r["web"]; w.Ready || !w.Checked || !w.CheckFailed || w.StatusCode != 503 || w.Body != "warming up" ||
		w.Reason != `custom readiness check failed (status 503, body "warming up")` || w.PID != web.PID {
		t.Errorf("web before its readiness check passes: %+v", w)
	}
	if p := r["plain"]; !p.Ready || p.Checked || p.CheckFailed || p.Reason != "" {
		t.Errorf("app without a readiness check: %+v", p)
	}
	tr.touch("web", "ready", web.PID)
	if w := byApp()["web"]; !w.Ready || !w.Checked || w.CheckFailed || w.Reason != "" {
		t.Errorf("web once its check passes: %+v", w)
	}
}

// TestHealthSignalsInStatus: the latest signal of each type shows in the
// worker's status as sent; malformed ones are dropped.
func TestHealthSignalsInStatus(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "checks"})
	tr.waitReady("web", 0)
	var ws WorkerStatus
	eventually(t, "the boot signal", func() bool {
		ws = tr.slot("web", 0).status()
		return ws.HealthSignals["boot"] != nil
	})
	var sig map[string]any
	if err := json.Unmarshal(ws.HealthSignals["boot"], &sig); err != nil || sig["n"] != 0.0 || sig["type"] != "boot" {
		t.Errorf("boot signal %s: %v", ws.HealthSignals["boot"], err)
	}
	if len(ws.HealthSignals) != 1 {
		t.Errorf("signals = %v, want only boot", ws.HealthSignals)
	}
}

// TestCheckAnswerWithoutHTTPStatus: a check's answer that asks for a code
// no HTTP status can have reaches the probe without it, and says why.
func TestCheckAnswerWithoutHTTPStatus(t *testing.T) {
	for _, code := range []int{42, 1000, -1} {
		var b checkBook
		ch := make(chan ipc.Check, 1)
		b.waiting = map[uint64]chan ipc.Check{7: ch}
		b.answered(&ipc.Check{ID: 7, Kind: ipc.CheckReadiness, StatusCode: code, Body: "warming up"})
		got := <-ch
		if got.StatusCode != 0 || got.Body != "warming up" || got.Error == "" {
			t.Errorf("code %d: %+v, want no status code, the body, and an error", code, got)
		}
	}
	var b checkBook
	ch := make(chan ipc.Check, 1)
	b.waiting = map[uint64]chan ipc.Check{1: ch}
	b.answered(&ipc.Check{ID: 1, Kind: ipc.CheckReadiness, StatusCode: 503})
	if got := <-ch; got.StatusCode != 503 || got.Error != "" {
		t.Errorf("status 503: %+v", got)
	}
}
