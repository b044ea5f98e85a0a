package supervisor

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/wattd/wattd/supervisor/listeners"
)

// serviceState is what the service manager is told (sdnotify): ready
// once every application has a ready worker or has given up (an
// application that cannot start does not stop the others, so it must not
// hold the whole service in "activating" until systemd's start timeout
// kills it), and a one-line status that changes only when a count does.
func (rt *Runtime) serviceState() (ready bool, status string) {
	apps, readyApps, workers, readyWorkers := 0, 0, 0, 0
	var failed []string
	ready = true
	for _, a := range rt.apps {
		apps++
		has := false
		for _, s := range a.slots {
			workers++
			if s.getState() == StateReady {
				readyWorkers++
				has = true
			}
		}
		switch {
		case has:
			readyApps++
		case a.state() == "failed" && !a.entry:
			failed = append(failed, a.id)
		default:
			ready = false
		}
	}
	status = fmt.Sprintf("%d/%d apps ready, %d/%d workers ready", readyApps, apps, readyWorkers, workers)
	if len(failed) > 0 {
		status += "; failed: " + strings.Join(failed[:min(len(failed), maxFailedNamed)], ", ")
		if more := len(failed) - maxFailedNamed; more > 0 {
			status += fmt.Sprintf(" and %d more", more)
		}
	}
	return ready, status
}

// maxFailedNamed is how many failed applications the status names: a
// notification over 4096 bytes is dropped by systemd whole, READY=1 with
// it, and ids are up to 64 bytes. ctl ps names them all.
const maxFailedNamed = 10

// tellService sends the service manager the current state; unchanged
// state sends nothing.
func (rt *Runtime) tellService() {
	if rt.notify == nil {
		return
	}
	rt.notify.Update(rt.serviceState())
}

// watchdogTicks is the supervision loop's keep-alive clock: nil (never
// fires) without a watchdog.
func (rt *Runtime) watchdogTicks() (<-chan time.Time, func()) {
	every := rt.notify.WatchdogEvery()
	if every <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(every)
	return t.C, t.Stop
}

// extendEvery is how often, until READY=1, the supervision loop asks the
// service manager for startExtension more to start (see
// sdnotify.ExtendStart).
const (
	extendEvery    = 2 * time.Second
	startExtension = 5 * extendEvery
)

// extendTicks is extendEvery's clock while a service manager waits for
// READY=1: nil (never fires) without one.
func (rt *Runtime) extendTicks() (<-chan time.Time, func()) {
	if !rt.notify.Starting() {
		return nil, func() {}
	}
	t := time.NewTicker(extendEvery)
	return t.C, t.Stop
}

// NotifyReloading tells the service manager that a reload of the
// configuration began; NotifyReloaded must follow with its outcome.
func (rt *Runtime) NotifyReloading() { rt.notify.Reloading() }

// NotifyReloaded tells the service manager that the reload ended; err is
// why the new configuration was rejected, nil when it applies.
func (rt *Runtime) NotifyReloaded(err error) {
	rt.notify.Reloaded(err)
	rt.tellService()
}

// publicListener opens one entrypoint slot's public socket: its own
// SO_REUSEPORT socket on host:port, or, under socket activation, a
// duplicate of the socket the service manager passed, so every worker
// accepts from that socket's one queue.
func (rt *Runtime) publicListener(host string, port int) (*os.File, *net.TCPAddr, error) {
	if rt.passed != nil {
		return listeners.Share(rt.passed)
	}
	if f := rt.claimed; f != nil {
		rt.claimed = nil
		return f, rt.claimedAddr, nil
	}
	return listeners.TCP(host, port)
}

// closePassed closes wattd's copy of the passed socket. The service
// manager keeps its own, and queues connections on it for the next wattd.
func (rt *Runtime) closePassed() {
	if rt.passed != nil {
		rt.passed.Close()
	}
}
