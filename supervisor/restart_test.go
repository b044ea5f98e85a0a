package supervisor

import (
	"context"
	"testing"

	"github.com/wattd/wattd/supervisor/config"
)

// TestRestartDuringStart restarts a worker that is still starting: the
// replacement that becomes ready must make the slot ready, settle it (so
// the entrypoint starts) and publish its mesh socket.
func TestRestartDuringStart(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.StartTimeout = 60e9 },
		testApp{id: "api", behaviour: "never-ready,ready"},
		testApp{id: "web", entry: true, behaviour: "ready"},
	)
	s := tr.slot("api", 0)
	awaitHelloWhileStarting(t, s)
	first := s.status().PID
	ctx, cancel := context.WithTimeout(context.Background(), pollFor)
	defer cancel()
	if err := tr.RestartApp(ctx, "api"); err != nil {
		t.Fatalf("restart during start: %v", err)
	}
	ws := tr.waitReady("api", 0)
	if ws.PID == first || ws.Restarts != 1 {
		t.Fatalf("api worker %+v: want a new pid (first %d) and one restart", ws, first)
	}
	select {
	case <-s.settled:
	default:
		t.Fatal("slot not settled after its replacement became ready")
	}
	eventually(t, "the first worker to be stopped", func() bool { return !alive(first) })
	eventually(t, "api's socket in the mesh table", func() bool {
		eps := tr.Table().Apps["api"].Endpoints
		return len(eps) == 1 && eps[0] == s.meshPath
	})
	// The entrypoint starts only once the other apps settled.
	tr.waitReady("web", 0)
	if st := tr.appState("api"); st != "running" {
		t.Fatalf("api state %q, want running", st)
	}
}

// awaitHelloWhileStarting polls until the slot's worker, still starting,
// has said hello: a restart asked for now finds a start in progress.
func awaitHelloWhileStarting(t *testing.T, s *slot) {
	t.Helper()
	eventually(t, s.app.id+"'s first worker to say hello", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cur != nil && s.state == StateStarting && closed(s.cur.Hello())
	})
}
