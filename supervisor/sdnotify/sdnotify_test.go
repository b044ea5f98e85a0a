package sdnotify

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/sdnotify/sdnotifytest"
)

// listen opens a notification socket as a service manager does and
// points NOTIFY_SOCKET at it.
func listen(t *testing.T) *sdnotifytest.Listener {
	t.Helper()
	l := sdnotifytest.Listen(t)
	t.Setenv("NOTIFY_SOCKET", l.Path)
	return l
}

// received waits for n datagrams.
func received(t *testing.T, l *sdnotifytest.Listener, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(l.All()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications, want %d: %q", len(l.All()), n, l.All())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return l.All()
}

func TestProtocol(t *testing.T) {
	c := listen(t)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := FromEnv(zap.NewNop())
	if n == nil {
		t.Fatal("no notifier with NOTIFY_SOCKET set")
	}
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%s still in the environment", k, v)
		}
	}
	if got := n.WatchdogEvery(); got != 1500*time.Millisecond {
		t.Errorf("WatchdogEvery = %v, want half of WATCHDOG_USEC", got)
	}

	n.Update(false, "starting")
	n.Update(false, "starting") // unchanged: nothing sent
	n.Update(true, "1/1 apps ready")
	n.Update(true, "1/1 apps ready")
	n.Watchdog()
	n.Reloading()
	n.Reloaded(errors.New("watt.json: /applications/0/id:\n  missing"))
	n.Update(true, "2/2 apps ready") // the reason stays
	n.Reloading()
	n.Reloaded(nil) // and goes with a reload that succeeds
	n.Stopping()
	n.Update(false, "after stopping") // not sent
	n.Reloading()                     // not sent
	n.Watchdog()                      // not sent
	n.Failed(errors.New("app \"web\" could not start"))

	want := []string{
		"STATUS=starting",
		"READY=1\nSTATUS=1/1 apps ready",
		"WATCHDOG=1",
		"RELOADING=1\nMONOTONIC_USEC=",
		"READY=1\nSTATUS=1/1 apps ready; reload failed: watt.json: /applications/0/id: missing",
		"STATUS=2/2 apps ready; reload failed: watt.json: /applications/0/id: missing",
		"RELOADING=1\nMONOTONIC_USEC=",
		"READY=1\nSTATUS=2/2 apps ready",
		"STOPPING=1\nSTATUS=stopping",
		"STATUS=failed: app \"web\" could not start",
	}
	all := received(t, c, len(want))
	for i, w := range want {
		got := all[i]
		if strings.HasSuffix(w, "=") {
			if !strings.HasPrefix(got, w) {
				t.Fatalf("notification %d = %q, want %q…", i, got, w)
			}
			us, err := strconv.ParseUint(strings.TrimPrefix(got, w), 10, 64)
			if err != nil || us == 0 {
				t.Fatalf("notification %d: bad MONOTONIC_USEC in %q", i, got)
			}
			continue
		}
		if got != w {
			t.Fatalf("notification %d = %q, want %q", i, got, w)
		}
	}
}

func TestWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	n := FromEnv(zap.NewNop())
	if n != nil {
		t.Fatal("a notifier without NOTIFY_SOCKET")
	}
	// Every method is a no-op on nil.
	n.Update(true, "x")
	n.Watchdog()
	n.Reloading()
	n.Reloaded(nil)
	n.Stopping()
	n.Failed(errors.New("x"))
	if n.WatchdogEvery() != 0 {
		t.Fatal("a watchdog without a notifier")
	}
}

// TestWatchdogForAnotherPid: WATCHDOG_USEC meant for another process (the
// variables were inherited) sets no watchdog.
func TestWatchdogForAnotherPid(t *testing.T) {
	listen(t)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if got := FromEnv(zap.NewNop()).WatchdogEvery(); got != 0 {
		t.Fatalf("WatchdogEvery = %v for another pid's watchdog", got)
	}
}

// TestAbstractSocket: NOTIFY_SOCKET may name an abstract socket ("@…").
func TestAbstractSocket(t *testing.T) {
	name := "@wattd-test-" + strconv.Itoa(os.Getpid())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	FromEnv(zap.NewNop()).Update(true, "ok")
	buf := make([]byte, 512)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1\nSTATUS=ok" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}

// TestLongReasonsStayUnderTheDatagramLimit: systemd drops a notification
// over 4096 bytes whole, READY=1 with it; a long reload or start failure
// is cut to fit.
func TestLongReasonsStayUnderTheDatagramLimit(t *testing.T) {
	c := listen(t)
	n := FromEnv(zap.NewNop())
	long := errors.New(strings.Repeat("watt.json:3: /applications/0/id: é bad value; ", 400))
	n.Update(true, "1/1 apps ready")
	n.Reloading()
	n.Reloaded(long)
	n.Failed(long)
	n.Update(true, "2/71 apps ready; failed: "+strings.Repeat("an-application-id-of-sixty-four-characters-or-so-aaaaaaaaaaaaaa, ", 70))
	all := received(t, c, 5)
	for _, got := range all[2:] {
		if len(got) >= 4096 || !strings.Contains(got, "…") || !utf8.ValidString(got) {
			t.Errorf("notification of %d bytes (valid UTF-8 %v): %.80q…", len(got), utf8.ValidString(got), got)
		}
	}
	if !strings.HasPrefix(all[2], "READY=1\nSTATUS=1/1 apps ready; reload failed: watt.json:3:") {
		t.Errorf("reload notification %.100q", all[2])
	}
}
