package supervisor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/supervisor/config"
)

// dependOn makes app depend on deps in the config.
func dependOn(app string, deps ...string) func(*config.Config) {
	return func(c *config.Config) {
		for i := range c.Applications {
			if c.Applications[i].ID == app {
				c.Applications[i].Dependencies = deps
			}
		}
	}
}

// firstEvent is when the slot first entered state, from its history.
func firstEvent(t *testing.T, s *slot, state string) time.Time {
	t.Helper()
	for _, e := range s.status().History {
		if e.State == state {
			return e.At
		}
	}
	t.Fatalf("app %s worker %d never was %s", s.app.id, s.index, state)
	return time.Time{}
}

// TestDependantStartsAfterDependencyReady: an application starts only once
// the applications it lists in dependencies are ready, while one without
// dependencies starts at once, in parallel with them.
func TestDependantStartsAfterDependencyReady(t *testing.T) {
	tr := startRuntime(t, dependOn("api", "db"),
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "db", behaviour: "ready-after:1500ms"},
		testApp{id: "api", behaviour: "ready"},
		testApp{id: "free", behaviour: "ready"},
	)
	// While db warms up, api shows that it waits, and for what.
	eventually(t, "api shown waiting for db", func() bool {
		api, _ := tr.App("api")
		return len(api.Workers) == 1 && api.Workers[0].State == "waiting" && api.Workers[0].WaitingFor == "db"
	})
	for _, id := range []string{"web", "db", "api", "free"} {
		tr.waitReady(id, 0)
	}
	dbReady := firstEvent(t, tr.slot("db", 0), "ready")
	if apiStart := firstEvent(t, tr.slot("api", 0), "starting"); apiStart.Before(dbReady) {
		t.Fatalf("api started at %s, before its dependency db was ready at %s", apiStart.Format(time.StampMicro), dbReady.Format(time.StampMicro))
	}
	if freeReady := firstEvent(t, tr.slot("free", 0), "ready"); !freeReady.Before(dbReady) {
		t.Fatalf("free (no dependencies) was ready at %s, not before db at %s: it waited", freeReady.Format(time.StampMicro), dbReady.Format(time.StampMicro))
	}
	if !tr.logged("waiting for dependencies to be ready", map[string]any{"app": "api"}) {
		t.Error("no log of api waiting for its dependencies")
	}
}

// TestDependencyThatCannotStartFailsDependants: when a dependency gives up
// before it was ever ready, its dependants (here through a chain) are
// failed without being started, with a reason naming it; the entrypoint,
// which needs neither, keeps serving.
func TestDependencyThatCannotStartFailsDependants(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		dependOn("api", "db")(c)
		dependOn("ui", "api")(c)
	},
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "db", behaviour: "crash:3"},
		testApp{id: "api", behaviour: "ready"},
		testApp{id: "ui", behaviour: "ready"},
	)
	tr.waitState("ui", 0, StateFailed)
	api, _ := tr.App("api")
	if api.State != "failed" || !strings.HasPrefix(api.Reason, `dependency "db" could not start: crash loop`) {
		t.Fatalf("api: %+v", api)
	}
	ui, _ := tr.App("ui")
	if !strings.HasPrefix(ui.Reason, `dependency "api" could not start: dependency "db" could not start`) {
		t.Fatalf("ui reason %q", ui.Reason)
	}
	if n := len(tr.starts("api")) + len(tr.starts("ui")); n != 0 {
		t.Fatalf("%d workers of the dependants were started", n)
	}
	tr.waitReady("web", 0)
	if body, err := tr.get("/"); err != nil || body == "" {
		t.Fatalf("entrypoint: %q, %v", body, err)
	}
	// An operator's restart starts a dependant anyway.
	if err := tr.RestartApp(t.Context(), "api"); err != nil {
		t.Fatalf("restart of api: %v", err)
	}
	tr.waitReady("api", 0)
}

// TestEntrypointDependingOnFailedAppStopsRuntime: the entrypoint waits for
// its dependency; when that cannot start, the entrypoint cannot either and
// Run ends with an error matching ErrStartFailed that names both.
func TestEntrypointDependingOnFailedAppStopsRuntime(t *testing.T) {
	tr := startRuntime(t, dependOn("web", "db"),
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "db", behaviour: "crash:3"},
		testApp{id: "other", behaviour: "ready"},
	)
	err := runResult(t, tr)
	if !errors.Is(err, ErrStartFailed) || errors.Is(err, ErrAllFailed) ||
		!strings.Contains(err.Error(), `app "web": dependency "db" could not start`) {
		t.Fatalf("Run: %v", err)
	}
	if len(tr.starts("web")) != 0 {
		t.Fatal("the entrypoint was started although its dependency failed")
	}
}

// TestEntrypointThatCannotStartStopsRuntime: an entrypoint whose workers
// all give up before any was ready stops the runtime (the other apps were
// fine), as Watt's start fails; wattd start then exits non-zero.
func TestEntrypointThatCannotStartStopsRuntime(t *testing.T) {
	tr := startRuntime(t, nil,
		testApp{id: "web", entry: true, behaviour: "crash:5"},
		testApp{id: "other", behaviour: "ready"},
	)
	err := runResult(t, tr)
	if !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), `app "web": crash loop`) {
		t.Fatalf("Run: %v", err)
	}
}

// TestEntrypointThatCannotStartInDevKeepsRuntime: in development an
// entrypoint that cannot start leaves the runtime running, so that the
// restart a file change causes can bring it up.
func TestEntrypointThatCannotStartInDevKeepsRuntime(t *testing.T) {
	tr := newLiveRuntime(t, nil,
		testApp{id: "web", entry: true, behaviour: "crash:5,crash:5,crash:5,crash:5,ready"},
		testApp{id: "other", behaviour: "ready"},
	)
	tr.mode = capabilities.Development
	tr.start()
	tr.waitState("web", 0, StateFailed)
	eventually(t, "the dev log", func() bool {
		return tr.logged("the entrypoint could not start; a change to its files restarts it", nil)
	})
	restartStillRunning(t, tr, "web")
}

// TestEntrypointFailingAfterReadyKeepsRuntime: an entrypoint that was up
// and then failed (restartOnError off) leaves the runtime running, as in
// Watt, so that an operator can restart it.
func TestEntrypointFailingAfterReadyKeepsRuntime(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.RestartOnError.Enabled = false },
		testApp{id: "web", entry: true, behaviour: "crash-after:300ms,ready"},
		testApp{id: "other", behaviour: "ready"},
	)
	tr.waitState("web", 0, StateFailed)
	restartStillRunning(t, tr, "web")
}

// TestStartAttemptsBoundNeverReadyEntrypoint: with maxRestarts 0 (never
// give up on crashes) an entrypoint that never gets ready is still given up
// after Watt's six start attempts, instead of being retried forever.
func TestStartAttemptsBoundNeverReadyEntrypoint(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		c.StartTimeout = 500 * time.Millisecond
		c.Restart.MaxRestarts = 0
	}, testApp{id: "web", entry: true, behaviour: "never-ready"})
	err := runResult(t, tr)
	if !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), `app "web": 6 attempts failed; last: not ready within startTimeout`) {
		t.Fatalf("Run: %v", err)
	}
	// Counted from the kills: a worker killed at startTimeout may not have
	// got as far as recording its start.
	if n := tr.logs.FilterMessage("worker not ready within startTimeout; killing it").Len(); n != startAttempts {
		t.Fatalf("%d starts, want %d", n, startAttempts)
	}
}

// TestStartTimeoutZeroMeansNoLimit: startTimeout 0 waits as long as the
// worker takes, as in Watt, rather than failing every start at once.
func TestStartTimeoutZeroMeansNoLimit(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.StartTimeout = 0 },
		testApp{id: "web", entry: true, behaviour: "ready-after:700ms"})
	tr.waitReady("web", 0)
	if n := len(tr.starts("web")); n != 1 {
		t.Fatalf("%d starts, want 1", n)
	}
}

// TestApplicationRestartOnErrorOverridesRuntime: an application's own
// restartOnError false wins over the runtime's true, and the other way
// round.
func TestApplicationRestartOnErrorOverridesRuntime(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		for i := range c.Applications {
			switch c.Applications[i].ID {
			case "once":
				c.Applications[i].RestartOnError = &config.RestartOnError{}
			case "again":
				c.RestartOnError.Enabled = false
				c.Applications[i].RestartOnError = &config.RestartOnError{Enabled: true}
			}
		}
	},
		testApp{id: "web", entry: true, behaviour: "ready"},
		testApp{id: "once", behaviour: "crash-after:200ms"},
		testApp{id: "again", behaviour: "crash-after:200ms,ready"},
	)
	tr.waitState("once", 0, StateFailed)
	if st, _ := tr.App("once"); !strings.Contains(st.Reason, "restartOnError is off") || len(tr.starts("once")) != 1 {
		t.Fatalf("once: %+v after %d starts", st, len(tr.starts("once")))
	}
	eventually(t, "again restarted", func() bool { return len(tr.starts("again")) == 2 })
	tr.waitReady("again", 0)
}

// runResult waits for Run to end by itself and returns its error.
func runResult(t *testing.T, tr *liveRuntime) error {
	t.Helper()
	select {
	case err := <-tr.runErr:
		tr.runErr <- err // for the cleanup
		return err
	case <-time.After(2 * pollFor):
		t.Fatal("Run did not end")
		return nil
	}
}

// restartStillRunning restarts app, waits for its first worker to be ready
// and checks that the runtime kept running through it all.
func restartStillRunning(t *testing.T, tr *liveRuntime, app string) {
	t.Helper()
	if err := tr.RestartApp(t.Context(), app); err != nil {
		t.Fatalf("restart: %v", err)
	}
	tr.waitReady(app, 0)
	select {
	case err := <-tr.runErr:
		tr.runErr <- err
		t.Fatalf("Run ended: %v", err)
	default:
	}
}
