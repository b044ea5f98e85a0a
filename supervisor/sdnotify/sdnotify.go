// Package sdnotify tells a service manager how wattd is doing, over
// systemd's notification protocol (sd_notify(3)): READY=1 once the
// runtime serves, STATUS= lines when what it would say changes,
// WATCHDOG=1 keep-alives, RELOADING=1 and READY=1 around a reload, and
// STOPPING=1. Without NOTIFY_SOCKET in the environment it does nothing.
//
// Every method is safe on a nil *Notifier, so the supervisor calls them
// unconditionally.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/textclip"
)

// Notifier sends notifications to the socket named by NOTIFY_SOCKET.
type Notifier struct {
	log      *zap.Logger
	addr     *net.UnixAddr
	watchdog time.Duration // keep-alive interval, 0 without a watchdog

	mu       sync.Mutex // guards the fields below and orders the datagrams
	ready    bool       // READY=1 was sent and no reload is under way
	stopping bool       // STOPPING=1 was sent: nothing else follows
	status   string     // the last STATUS= sent
	base     string     // the last status Update was given
	reload   string     // why the last reload failed; "" after one that did not
	failed   bool       // a send failed; logged once
}

// composeLocked is the STATUS= value: the runtime's status, and why the
// last reload failed until one succeeds, so that the reason stays in
// `systemctl status` after the next count changes.
func (n *Notifier) composeLocked() string {
	base := clip(n.base, maxBaseText)
	if n.reload == "" {
		return base
	}
	if base == "" {
		return "reload failed: " + n.reload
	}
	return base + "; reload failed: " + n.reload
}

// withStatusLocked adds the STATUS= line to lines when the status to show
// differs from the last one sent.
func (n *Notifier) withStatusLocked(lines []string) []string {
	if full := n.composeLocked(); full != n.status {
		lines = append(lines, "STATUS="+full)
		n.status = full
	}
	return lines
}

// FromEnv returns a Notifier for NOTIFY_SOCKET, or nil when it is unset.
// It removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the
// environment: they are wattd's, and a child must not act on them.
func FromEnv(log *zap.Logger) *Notifier {
	watchdog, err := daemon.SdWatchdogEnabled(true)
	if err != nil {
		log.Warn("ignoring the service manager's watchdog settings", zap.Error(err))
	}
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	// Half the timeout, as sd_watchdog_enabled(3) advises: one late
	// keep-alive is not yet a missed one.
	return &Notifier{log: log, addr: &net.UnixAddr{Name: path, Net: "unixgram"}, watchdog: watchdog / 2}
}

// WatchdogEvery is how often Watchdog must be called, 0 when the service
// manager set no watchdog.
func (n *Notifier) WatchdogEvery() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Update reports the runtime's state: READY=1 the first time ready is
// true (and after a reload), STATUS= whenever status differs from the last
// one sent.
func (n *Notifier) Update(ready bool, status string) {
	n.beforeStop(func() []string {
		var lines []string
		if ready && !n.ready {
			lines = append(lines, daemon.SdNotifyReady)
			n.ready = true
		}
		n.base = status
		return n.withStatusLocked(lines)
	})
}

// Starting reports whether READY=1 is still to come (false without a
// service manager): the runtime's first start is under way.
func (n *Notifier) Starting() bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.ready && !n.stopping
}

// ExtendStart asks the service manager for d more to start
// (EXTEND_TIMEOUT_USEC; systemd 236 and later), until READY=1: the
// runtime is still starting applications, each attempt bounded by
// startTimeout, and one that keeps failing must not make systemd kill the
// others at TimeoutStartSec before it gives up. A request never shortens
// the unit's own timeout, and the extension lapses d after the last one,
// so a wattd that stopped making progress is still timed out.
func (n *Notifier) ExtendStart(d time.Duration) {
	n.beforeStop(func() []string {
		if n.ready {
			return nil
		}
		return []string{fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", d.Microseconds())}
	})
}

// Watchdog sends a keep-alive. The supervision loop calls it, so the
// service manager restarts a wattd whose loop is stuck.
func (n *Notifier) Watchdog() {
	n.beforeStop(func() []string { return []string{daemon.SdNotifyWatchdog} })
}

// Reloading reports that a reload of the configuration began. Reloaded
// must follow. The monotonic time lets systemd 253 and later match the
// reload it asked for (Type=notify-reload) to this answer.
func (n *Notifier) Reloading() {
	n.beforeStop(func() []string {
		n.ready = false
		return []string{daemon.SdNotifyReloading, strings.TrimSpace(daemon.SdNotifyMonotonicUsec())}
	})
}

// Reloaded reports that the reload ended: READY=1 either way, since a
// rejected configuration leaves the running one serving, with the failure
// in STATUS= until a reload succeeds.
func (n *Notifier) Reloaded(err error) {
	n.beforeStop(func() []string {
		n.ready = true
		lines := []string{daemon.SdNotifyReady}
		n.reload = ""
		if err != nil {
			n.reload = clip(oneLine(err.Error()), maxReloadText)
		}
		return n.withStatusLocked(lines)
	})
}

// Stopping reports that the runtime began to stop; later updates are not
// sent.
func (n *Notifier) Stopping() {
	n.beforeStop(func() []string {
		n.stopping = true
		return []string{daemon.SdNotifyStopping, "STATUS=stopping"}
	})
}

// Failed reports why wattd is about to exit with an error, stopping or
// not.
func (n *Notifier) Failed(err error) {
	if n == nil || err == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sendLocked("STATUS=failed: " + clip(oneLine(err.Error()), maxFailedText))
}

// beforeStop sends the lines that build returns, under the lock, unless n
// is nil or STOPPING=1 was sent: after it the service manager expects the
// process to go away, not news of it.
func (n *Notifier) beforeStop(build func() []string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return
	}
	n.sendLocked(build()...)
}

// oneLine keeps a STATUS= value on one line: a newline would start
// another assignment of the datagram.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// maxReloadText bounds the reason of a failed reload in STATUS=: systemd
// ignores a whole datagram over 4096 bytes (READY=1 and all), and the
// reason goes with every status until a reload succeeds. The log has all
// of it.
const maxReloadText = 512

// maxFailedText bounds the reason of a failed start in STATUS=, for the
// same limit; stderr has all of it.
const maxFailedText = 2048

// maxBaseText bounds the status the runtime gives (its counts and the
// applications that failed), which goes with a reload's reason and with
// READY=1 in one datagram.
const maxBaseText = 2048

// clip cuts s to at most max bytes, on a rune boundary, marking the cut.
func clip(s string, max int) string { return textclip.Clip(s, max) }

func (n *Notifier) sendLocked(lines ...string) {
	if len(lines) == 0 {
		return
	}
	if err := n.send(strings.Join(lines, "\n")); err != nil && !n.failed {
		n.failed = true
		n.log.Warn("could not notify the service manager", zap.String("socket", n.addr.Name), zap.Error(err))
	}
}

// sendTimeout bounds a send: the supervision loop sends the keep-alives,
// and a service manager that does not read must not stop it.
const sendTimeout = time.Second

// send writes one datagram. A name starting with "@" is an abstract
// socket; the net package maps it.
func (n *Notifier) send(state string) error {
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return err
	}
	_, err = conn.Write([]byte(state))
	return err
}
