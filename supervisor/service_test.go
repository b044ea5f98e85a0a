package supervisor

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/sdnotify"
)

// serviceListener plays the service manager's notification socket.
type serviceListener struct {
	mu  sync.Mutex
	got []string
}

func (l *serviceListener) count(line string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, g := range l.got {
		for _, x := range strings.Split(g, "\n") {
			if x == line {
				n++
			}
		}
	}
	return n
}

func listenService(t *testing.T) *serviceListener {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	l := &serviceListener{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.got = append(l.got, string(buf[:n]))
			l.mu.Unlock()
		}
	}()
	return l
}

// TestWatchdogComesFromTheLoop: keep-alives stop while the supervision
// loop is stuck (here on the mesh table's lock, which publishing a state
// change needs) and resume when it goes on, so a wedged wattd is one the
// service manager restarts.
func TestWatchdogComesFromTheLoop(t *testing.T) {
	l := listenService(t)
	t.Setenv("WATCHDOG_USEC", "200000") // a keep-alive every 100 ms
	tr := newLiveRuntime(t, nil, testApp{id: "web", behaviour: "ready"})
	tr.notify = sdnotify.FromEnv(zap.NewNop())
	tr.start()
	tr.waitReady("web", 0)
	eventually(t, "READY=1 and keep-alives", func() bool {
		return l.count("READY=1") == 1 && l.count("WATCHDOG=1") >= 3
	})

	tr.mesh.mu.Lock()
	tr.stateChanged()
	// The loop takes the poke and blocks in publishMesh; once the count
	// holds still for a second (ten intervals), it is stuck.
	var stuckAt int
	eventually(t, "keep-alives to stop", func() bool {
		before := l.count("WATCHDOG=1")
		time.Sleep(time.Second)
		stuckAt = l.count("WATCHDOG=1")
		return stuckAt == before
	})
	tr.mesh.mu.Unlock()
	eventually(t, "keep-alives to resume", func() bool { return l.count("WATCHDOG=1") >= stuckAt+3 })
}
