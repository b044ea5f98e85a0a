package supervisor_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/admin"
)

// TestAdminRestartErrors goes through the admin API to a real runtime: a
// restart of an app whose workers crash answers with the reason, and a
// restart during shutdown is a conflict (409), not a server error.
func TestAdminRestartErrors(t *testing.T) {
	rt := supervisor.StartTestRuntime(t, map[string]string{"a-web": "drain-slow:3s", "bad": "crash:3"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	srv, err := admin.Serve(ctx, sock, rt, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cl := admin.NewClient(sock)
	defer cl.Close()
	waitApp := func(id, state string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := cl.App(ctx, id)
			if err == nil && st.State == state {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("app %s: want %s, have %+v (%v)", id, state, st, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitApp("a-web", "running")
	waitApp("bad", "failed")

	_, err = cl.Restart(ctx, "bad")
	var ae *admin.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusInternalServerError ||
		!strings.Contains(ae.Message, "worker exited before it was ready: exit status 3; last error output: boom") {
		t.Fatalf("restart of a crashing app: %#v", err)
	}

	rt.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := cl.Status(ctx)
		if err == nil && st.State == "stopping" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runtime not stopping: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err = cl.Restart(ctx, "a-web")
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict || !errors.Is(err, admin.ErrConflict) ||
		!strings.Contains(ae.Message, "runtime is stopping") {
		t.Fatalf("restart during shutdown: %#v, want 409", err)
	}
}
