package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/cgroups"
)

// worker is a started worker process as its slot sees it: the seam
// between the slot's state machine (slot.go) and the operating system,
// shaped like a task driver's handle. What the process reports arrives on
// channels that are closed once; what the slot does to it is a signal or a
// message. *proc (process.go) is the real one: a process group started
// through the exec helper, with a control socketpair.
//
// Keeping the stop sequence (stopWorker) on this side of the seam means it
// is written once, for any worker, and tested against real processes.
type worker interface {
	PID() int
	Started() time.Time

	// Exited is closed once the process has been reaped; ExitReason is
	// meaningful from then on ("exit status 1", "signal: killed").
	Exited() <-chan struct{}
	ExitReason() string

	// Leaving is closed when the worker said it is exiting, which comes
	// before Exited (it may never come); LeaveReason is then the exit it
	// announced ("exit status 1").
	Leaving() <-chan struct{}
	LeaveReason() string

	// Hello is closed when the control handshake completed, Ready when
	// the worker said it serves (for a fronted worker: when its port
	// accepts), Drained when it has nothing in flight after a drain.
	Hello() <-chan struct{}
	Ready() <-chan struct{}
	Drained() <-chan struct{}
	// Serves names the sockets the worker said it serves when it said
	// ready ("http", "mesh"); nil before, and for a fronted worker.
	Serves() []string

	// Send writes one message on the control channel.
	Send(*ipc.Message) error
	// Signal signals the worker's whole process group, so that the
	// children of a wrapper (npm -> node) get it too.
	Signal(syscall.Signal) error
	// Stats is the worker's last runtime report and when it arrived
	// (zero before the first one).
	Stats() (ipc.Stats, time.Time)
	// TakeDelayPeak returns the longest event-loop delay and the highest
	// p99 delay of the reports since the previous call, in seconds, and
	// starts over; ok is false when no report since then carried the
	// delay.
	TakeDelayPeak() (max, p99 float64, ok bool)

	// OutputTail is the worker's last lines of output, waiting up to max
	// for lines still in its pipes; LastError is its last stderr line.
	OutputTail(max time.Duration) []string
	LastError() string

	// RunCheck runs the app's custom check of a kind (ipc.CheckHealth,
	// ipc.CheckReadiness) in the worker; has is false when the app
	// registered none. HealthSignals are the latest signals the app sent,
	// by type.
	RunCheck(ctx context.Context, kind string) (res ipc.Check, has bool, err error)
	HealthSignals() map[string]json.RawMessage

	// Usage is what the worker's cgroup uses and may use (memory, pids,
	// CPU); ok is false when the worker has no group.
	Usage() (u cgroups.Usage, ok bool)
}

var _ worker = (*proc)(nil)

func (p *proc) PID() int                                { return p.pid }
func (p *proc) Started() time.Time                      { return p.startedAt() }
func (p *proc) Exited() <-chan struct{}                 { return p.exited }
func (p *proc) ExitReason() string                      { return p.exitReason() }
func (p *proc) Leaving() <-chan struct{}                { return p.leaving }
func (p *proc) LeaveReason() string                     { return fmt.Sprintf("exit status %d", p.leaveCode) }
func (p *proc) Hello() <-chan struct{}                  { return p.hello }
func (p *proc) Ready() <-chan struct{}                  { return p.ready }
func (p *proc) Drained() <-chan struct{}                { return p.drained }
func (p *proc) Serves() []string                        { return p.servesOnceReady() }
func (p *proc) Send(m *ipc.Message) error               { return p.send(m) }
func (p *proc) Signal(sig syscall.Signal) error         { return syscall.Kill(-p.pid, sig) }
func (p *proc) TakeDelayPeak() (float64, float64, bool) { return p.takeDelayPeak() }
func (p *proc) OutputTail(max time.Duration) []string   { return p.outputTail(max) }
func (p *proc) LastError() string                       { return p.sink.LastStderr() }

// Stats is the last report; while a diagnostic it was asked for blocks its
// event loop, it reads as that of a worker whose debugger holds it
// (Inspector), which the health checks do not judge.
func (p *proc) Stats() (ipc.Stats, time.Time) {
	st, at := p.lastStats()
	if p.diag.busy() {
		st.Inspector = true
	}
	return st, at
}

// servesOnceReady is what the worker's ready message named, nil before.
func (p *proc) servesOnceReady() []string {
	if !closed(p.ready) {
		return nil
	}
	return p.serves
}

// startedAt is when the process started, or, for a promoted standby, when
// it was promoted: what its slot measures its start and uptime from.
func (p *proc) startedAt() time.Time {
	if at := p.promotedAt.Load(); at != nil {
		return *at
	}
	return p.started
}

func (p *proc) Usage() (cgroups.Usage, bool) {
	if p.group == nil {
		return cgroups.Usage{}, false
	}
	u, err := p.group.Stats()
	return u, err == nil
}

// closed reports whether ch is closed, for the worker's signals.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// stopWorker drains w (if it speaks the protocol), then sends SIGTERM to
// its process group, then SIGKILL, within grace in all. It reports the
// states it passes through to onState and returns when w has exited.
func stopWorker(w worker, grace time.Duration, onState func(State), log *zap.Logger) {
	deadline := time.Now().Add(grace)
	if closed(w.Exited()) {
		return
	}
	if closed(w.Hello()) {
		onState(StateDraining)
		if err := w.Send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: grace.Milliseconds()}); err == nil {
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-w.Drained():
			case <-w.Exited():
			case <-t.C:
				log.Warn("worker did not finish in-flight work in time", zap.Int("pid", w.PID()), zap.Duration("grace", grace))
			}
			t.Stop()
		}
	}
	if closed(w.Exited()) {
		return
	}
	onState(StateStopping)
	_ = w.Signal(syscall.SIGTERM)
	// After a drain there is nothing left to finish, but the app's own
	// SIGTERM handler may still close databases: give it the rest of the
	// grace, and at least a moment.
	rest := max(time.Until(deadline), 500*time.Millisecond)
	t := time.NewTimer(rest)
	defer t.Stop()
	select {
	case <-w.Exited():
		return
	case <-t.C:
	}
	log.Warn("worker ignored SIGTERM; killing its process group", zap.Int("pid", w.PID()), zap.Duration("grace", grace))
	killWorker(w)
}

// killWorker ends w's process group at once and waits for the exit.
func killWorker(w worker) {
	_ = w.Signal(syscall.SIGKILL)
	<-w.Exited()
}
