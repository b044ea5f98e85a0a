package supervisor

import (
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
