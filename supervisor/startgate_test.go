package supervisor

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/config"
)

// TestStartGatePlaces: a full gate makes the next start wait, and one
// whose cancel closes gives up with no place; a place is given back at
// most hold after it was taken, even by a start that never ends, and the
// late leave of that start does not give back a second place.
func TestStartGatePlaces(t *testing.T) {
	g := newStartGate(1, 300*time.Millisecond)
	first := g.enter(nil)
	if first == nil || g.starting() != 1 {
		t.Fatalf("first enter: place %v, %d starting; want a place and 1", first, g.starting())
	}
	cancel := make(chan struct{})
	close(cancel)
	if p := g.enter(cancel); p != nil {
		t.Fatal("enter into a full gate with its cancel closed gave a place")
	}
	// first never leaves: its hold ends it.
	began := time.Now()
	second := g.enter(nil)
	if waited := time.Since(began); waited < 250*time.Millisecond {
		t.Fatalf("second start waited %s for a full gate; want about the hold (300ms)", waited)
	}
	first.leave() // late: its place went back when the hold ended
	if n := g.starting(); n != 1 {
		t.Fatalf("%d starts hold a place after the first's late leave; want 1 (the second's)", n)
	}
	second.leave()
	second.leave()
	if n := g.starting(); n != 0 {
		t.Fatalf("%d starts hold a place after every leave; want 0", n)
	}
	var none *startPlace
	none.leave() // a start that took no place
}

// startSpan is when a slot's first worker started and became ready.
type startSpan struct {
	name         string
	start, ready time.Time
}

// mostAtOnce is the largest number of spans open at one instant.
func mostAtOnce(spans []startSpan) int {
	type edge struct {
		at   time.Time
		open int
	}
	var edges []edge
	for _, s := range spans {
		edges = append(edges, edge{s.start, 1}, edge{s.ready, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.open - b.open // a ready before a start at the same instant
	})
	most, now := 0, 0
	for _, e := range edges {
		now += e.open
		most = max(most, now)
	}
	return most
}

// TestStartupConcurrencyBoundsStarts: with startupConcurrency 2, six
// workers that take 400 ms to become ready start two at a time, never
// more and not fewer; those waiting for their turn show as waiting, with
// no dependency named.
func TestStartupConcurrencyBoundsStarts(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		c.StartupConcurrency = 2
		for i := range c.Applications {
			if c.Applications[i].ID != "web" {
				c.Applications[i].Workers = 2
			}
		}
	},
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "a", behaviour: "ready-after:400ms"},
		testApp{id: "b", behaviour: "ready-after:400ms"},
		testApp{id: "c", behaviour: "ready-after:400ms"},
	)
	eventually(t, "a worker waiting for its turn while others start", func() bool {
		waiting, starting := 0, 0
		for _, id := range []string{"a", "b", "c"} {
			st, err := tr.App(id)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range st.Workers {
				switch {
				case w.State == "waiting" && w.WaitingFor == "":
					waiting++
				case w.State == "starting":
					starting++
				}
			}
		}
		return waiting > 0 && starting > 0 && starting <= 2
	})
	var spans []startSpan
	for _, id := range []string{"a", "b", "c"} {
		for i := range 2 {
			tr.waitReady(id, i)
			s := tr.slot(id, i)
			spans = append(spans, startSpan{name: fmt.Sprintf("%s/%d", id, i), start: firstEvent(t, s, "starting"), ready: firstEvent(t, s, "ready")})
		}
	}
	tr.waitReady("web", 0)
	if n := mostAtOnce(spans); n != 2 {
		for _, s := range spans {
			t.Logf("%s: starting %s, ready %s", s.name, s.start.Format(time.StampMilli), s.ready.Format(time.StampMilli))
		}
		t.Fatalf("at most %d workers were starting at once; want 2 (startupConcurrency)", n)
	}
	if tr.gate.starting() != 0 {
		t.Fatalf("%d places of the start gate still held once every worker is ready", tr.gate.starting())
	}
}

// TestRestartDuringStartWithOnePlace: with startupConcurrency 1, a rolling
// restart asked for while the slot's only worker is starting (so while
// that start holds the one place) still goes through: the replacement
// uses the start's place rather than waiting for it.
func TestRestartDuringStartWithOnePlace(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		c.StartTimeout = 60 * time.Second
		c.StartupConcurrency = 1
	},
		testApp{id: "api", behaviour: "never-ready,ready"},
		testApp{id: "web", entry: true, behaviour: "ready"},
	)
	awaitHelloWhileStarting(t, tr.slot("api", 0))
	ctx, cancel := context.WithTimeout(context.Background(), pollFor)
	defer cancel()
	if err := tr.RestartApp(ctx, "api"); err != nil {
		t.Fatalf("restart during start with one place: %v", err)
	}
	tr.waitReady("api", 0)
	tr.waitReady("web", 0)
	// A rolling restart of a ready worker takes the place, and gives it back.
	if err := tr.RestartApp(ctx, "web"); err != nil {
		t.Fatalf("rolling restart of web: %v", err)
	}
	if n := tr.gate.starting(); n != 0 {
		t.Fatalf("%d places held after the restarts; want 0", n)
	}
}

// TestCrashRestartDoesNotWaitForAPlace: while every place of the start
// gate is taken (here by the test), a worker that crashes is restarted at
// once, as in Watt, rather than queued behind other starts.
func TestCrashRestartDoesNotWaitForAPlace(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		c.StartupConcurrency = 1
		c.StartTimeout = time.Minute // a place is held up to this long
	},
		testApp{id: "web", entry: true, behaviour: "crash-after:1s,ready"},
	)
	first := tr.waitReady("web", 0)
	held := tr.gate.enter(nil) // every place taken, for longer than pollFor
	defer held.leave()
	var ws WorkerStatus
	eventually(t, "the crashed worker restarted while the gate is full", func() bool {
		ws = tr.slot("web", 0).status()
		return ws.State == "ready" && ws.PID > 0 && ws.PID != first.PID
	})
	if ws.Restarts != 1 {
		t.Fatalf("web worker %+v: want one restart", ws)
	}
}

// TestReplacementLeavesItsPlaceBeforeTheDrain: with one place, a rolling
// restart gives the place back once its new worker is ready, not after
// the old one has drained: another application's restart goes through
// while that drain still runs.
func TestReplacementLeavesItsPlaceBeforeTheDrain(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		c.StartupConcurrency = 1
		c.GracefulShutdown.Application = 20 * time.Second
	},
		testApp{id: "slow", behaviour: "drain-slow:6s,ready"},
		testApp{id: "web", entry: true, behaviour: "ready"},
	)
	old := tr.waitReady("slow", 0).PID
	tr.waitReady("web", 0)
	ctx, cancel := context.WithTimeout(context.Background(), pollFor)
	defer cancel()
	slowDone := make(chan error, 1)
	go func() { slowDone <- tr.RestartApp(ctx, "slow") }()
	eventually(t, "slow's replacement ready while its old worker drains", func() bool {
		return tr.logged("replacement ready; stopping the old worker", map[string]any{"app": "slow"})
	})
	if err := tr.RestartApp(ctx, "web"); err != nil {
		t.Fatalf("restart of web: %v", err)
	}
	if !alive(old) {
		t.Fatal("web's restart finished only after slow's old worker had drained: the place was held through the drain")
	}
	if err := <-slowDone; err != nil {
		t.Fatalf("restart of slow: %v", err)
	}
}
