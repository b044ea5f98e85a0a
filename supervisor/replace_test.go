package supervisor

import (
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/config"
)

// TestCrashReplacementIsTimed: the time from a ready worker's exit to its
// replacement being ready is counted for the slot (and logged on the
// replacement's ready line); a rolling restart, which starts the new
// worker before stopping the old one, is not a crash and is not counted.
func TestCrashReplacementIsTimed(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "crash-after:300ms,ready"})
	s := tr.slot("web", 0)
	var ws WorkerStatus
	eventually(t, "the crashed worker's replacement to be counted", func() bool {
		ws = s.status()
		return ws.Replacements == 1
	})
	if ws.ReplacementTime <= 0 || ws.ReplacementTime > pollFor.Seconds() {
		t.Errorf("replacement time %v s", ws.ReplacementTime)
	}
	if len(ws.ReplacementsWithin) != len(ReplacementBuckets) || ws.ReplacementsWithin[len(ReplacementBuckets)-1] > 1 {
		t.Errorf("replacements within the buckets: %v", ws.ReplacementsWithin)
	}
	found := false
	for _, e := range tr.logs.FilterMessage("worker ready").All() {
		if d, ok := e.ContextMap()["replacement"].(time.Duration); ok {
			found = true
			if d <= 0 || d.Seconds() > ws.ReplacementTime+0.001 {
				t.Errorf("logged replacement %v, counted %v s", d, ws.ReplacementTime)
			}
		}
	}
	if !found {
		t.Error("no worker ready line with the replacement time")
	}

	if err := tr.RestartApp(restartCtx(t), "web"); err != nil {
		t.Fatal(err)
	}
	if ws := s.status(); ws.Replacements != 1 || ws.Restarts != 2 {
		t.Errorf("after a rolling restart: %d replacements, %d restarts; want 1 and 2", ws.Replacements, ws.Restarts)
	}
}

// TestGiveUpStopsReplacementClock: a slot that gives up is not being
// replaced; the worker an operator's restart brings up later does not
// count as the crashed one's replacement.
func TestGiveUpStopsReplacementClock(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		c.Restart.ResetAfter = time.Minute // every crash counts towards the limit
		c.Restart.MaxRestarts = 2
	}, testApp{id: "main", entry: true, behaviour: "ready"},
		testApp{id: "web", behaviour: "crash-after:100ms,crash-after:100ms,crash-after:100ms,ready"})
	ws := tr.waitState("web", 0, StateFailed)
	// Three workers were ready and crashed; the first two were replaced.
	if ws.Replacements != 2 || len(tr.starts("web")) != 3 {
		t.Fatalf("failed slot: %d replacements after %d starts; want 2 after 3", ws.Replacements, len(tr.starts("web")))
	}
	if err := tr.RestartApp(restartCtx(t), "web"); err != nil {
		t.Fatal(err)
	}
	if ws := tr.waitReady("web", 0); ws.Replacements != 2 {
		t.Fatalf("after the operator's restart: %d replacements, want still 2", ws.Replacements)
	}
}

// TestReplacedWorkerDrainsBehind: once a rolling restart's new worker is
// ready, the slot is the new worker's, while the old one drains: ctl ps
// shows the new pid, ready, and the old one as draining under it, and the
// new worker is supervised meanwhile (its crash during the old one's drain
// is seen at once, not once the drain is over). The restart still returns
// only when the old worker is gone, so a roll moves on one slot at a time.
func TestReplacedWorkerDrainsBehind(t *testing.T) {
	const drain = 4 * time.Second
	tr := startRuntime(t, nil, testApp{id: "web", behaviour: "drain-slow:4s,crash-after:1s,ready"})
	s := tr.slot("web", 0)
	old := tr.waitReady("web", 0).PID
	began := time.Now()
	restarted := make(chan error, 1)
	go func() { restarted <- tr.RestartApp(restartCtx(t), "web") }()

	var ws WorkerStatus
	eventually(t, "the new worker to be the slot's while the old one drains", func() bool {
		ws = s.status()
		return ws.State == "ready" && ws.PID != 0 && ws.PID != old && len(ws.Leaving) == 1
	})
	if l := ws.Leaving[0]; l.PID != old || l.State != leaverDraining || !alive(old) {
		t.Fatalf("leaving %+v (old pid %d alive %v)", ws.Leaving, old, alive(old))
	}
	select {
	case err := <-restarted:
		t.Fatalf("the restart returned before the old worker was gone: %v", err)
	default:
	}

	// The new worker crashes a second after ready, within the old one's
	// drain: the slot sees it then. (Should the poll above have missed
	// that second, it saw the worker after it, and the crash is already
	// the slot's last exit.)
	eventually(t, "the new worker's crash to be seen during the old one's drain", func() bool {
		return strings.Contains(s.status().LastExit, "exit status 4")
	})
	if !alive(old) || time.Since(began) >= drain {
		t.Fatalf("the crash was seen only after the old worker's drain (%s, old alive %v)", time.Since(began), alive(old))
	}

	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	if time.Since(began) < drain || alive(old) {
		t.Fatalf("the restart returned after %s, old worker alive %v: want it gone, after its drain", time.Since(began), alive(old))
	}
	eventually(t, "no leaving worker once the old one is gone", func() bool { return len(s.status().Leaving) == 0 })
}
