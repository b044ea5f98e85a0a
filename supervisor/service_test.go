package supervisor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/sdnotify"
	"github.com/wattd/wattd/supervisor/sdnotify/sdnotifytest"
)

// TestWatchdogComesFromTheLoop: keep-alives stop while the supervision
// loop is stuck (here on the mesh table's lock, which publishing a state
// change needs) and resume when it goes on, so a wedged wattd is one the
// service manager restarts.
func TestWatchdogComesFromTheLoop(t *testing.T) {
	l := sdnotifytest.Listen(t)
	t.Setenv("NOTIFY_SOCKET", l.Path)
	t.Setenv("WATCHDOG_USEC", "200000") // a keep-alive every 100 ms
	tr := newLiveRuntime(t, nil, testApp{id: "web", behaviour: "ready"})
	tr.notify = sdnotify.FromEnv(zap.NewNop())
	tr.start()
	tr.waitReady("web", 0)
	eventually(t, "READY=1 and keep-alives", func() bool {
		return l.Count("READY=1") == 1 && l.Count("WATCHDOG=1") >= 3
	})

	tr.mesh.mu.Lock()
	tr.stateChanged()
	// The loop takes the poke and blocks in publishMesh; once the count
	// holds still for a second (ten intervals), it is stuck.
	var stuckAt int
	eventually(t, "keep-alives to stop", func() bool {
		before := l.Count("WATCHDOG=1")
		time.Sleep(time.Second)
		stuckAt = l.Count("WATCHDOG=1")
		return stuckAt == before
	})
	tr.mesh.mu.Unlock()
	eventually(t, "keep-alives to resume", func() bool { return l.Count("WATCHDOG=1") >= stuckAt+3 })
}

// TestServiceStateNamesAFewFailedApps: the status names at most
// maxFailedNamed failed applications and counts the rest, so that its
// notification stays under systemd's 4096 bytes.
func TestServiceStateNamesAFewFailedApps(t *testing.T) {
	apps := map[string][]State{"web": {StateReady}}
	for i := range 25 {
		apps[fmt.Sprintf("failing-application-%02d-%s", i, strings.Repeat("x", 40))] = []State{StateFailed}
	}
	_, status := testRuntime(apps).serviceState()
	if !strings.HasPrefix(status, "1/26 apps ready, 1/26 workers ready; failed: ") || !strings.HasSuffix(status, " and 15 more") ||
		strings.Count(status, "failing-application-") != maxFailedNamed {
		t.Fatalf("status %q", status)
	}
}
