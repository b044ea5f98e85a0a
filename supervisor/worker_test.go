package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/cgroups"
)

// fakeWorker is a worker without a process, for the order of the stop
// sequence in cases a real worker makes hard to arrange (a control channel
// that fails on write). What it does on each signal is up to the test.
type fakeWorker struct {
	mu       sync.Mutex
	signals  []syscall.Signal
	sent     []string
	sendErr  error
	onSignal func(syscall.Signal) // called without mu held
	onSend   func(*ipc.Message)

	exited, hello, ready, drained chan struct{}
	exitOnce                      sync.Once
}

func newFakeWorker() *fakeWorker {
	return &fakeWorker{exited: make(chan struct{}), hello: make(chan struct{}), ready: make(chan struct{}), drained: make(chan struct{})}
}

func (f *fakeWorker) exit() { f.exitOnce.Do(func() { close(f.exited) }) }

func (f *fakeWorker) PID() int                                { return 1 }
func (f *fakeWorker) Started() time.Time                      { return time.Now() }
func (f *fakeWorker) Exited() <-chan struct{}                 { return f.exited }
func (f *fakeWorker) ExitReason() string                      { return "exit status 0" }
func (f *fakeWorker) Leaving() <-chan struct{}                { return nil }
func (f *fakeWorker) LeaveReason() string                     { return "" }
func (f *fakeWorker) Hello() <-chan struct{}                  { return f.hello }
func (f *fakeWorker) Ready() <-chan struct{}                  { return f.ready }
func (f *fakeWorker) Drained() <-chan struct{}                { return f.drained }
func (f *fakeWorker) Serves() []string                        { return nil }
func (f *fakeWorker) Stats() (ipc.Stats, time.Time)           { return ipc.Stats{}, time.Time{} }
func (f *fakeWorker) TakeDelayPeak() (float64, float64, bool) { return 0, 0, false }
func (f *fakeWorker) OutputTail(time.Duration) []string       { return nil }
func (f *fakeWorker) LastError() string                       { return "" }
func (f *fakeWorker) Usage() (cgroups.Usage, bool)            { return cgroups.Usage{}, false }
func (f *fakeWorker) RunCheck(context.Context, string) (ipc.Check, bool, error) {
	return ipc.Check{}, false, nil
}
func (f *fakeWorker) HealthSignals() map[string]json.RawMessage { return nil }
func (f *fakeWorker) Send(m *ipc.Message) error {
	f.mu.Lock()
	f.sent = append(f.sent, m.Type)
	err, on := f.sendErr, f.onSend
	f.mu.Unlock()
	if err == nil && on != nil {
		on(m)
	}
	return err
}
func (f *fakeWorker) Signal(sig syscall.Signal) error {
	f.mu.Lock()
	f.signals = append(f.signals, sig)
	on := f.onSignal
	f.mu.Unlock()
	if on != nil {
		on(sig)
	}
	return nil
}

func recordStates() (func(State), func() []State) {
	var mu sync.Mutex
	var got []State
	return func(s State) { mu.Lock(); got = append(got, s); mu.Unlock() },
		func() []State { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
}

// TestStopWorkerSequence walks the stop sequence through the cases that
// decide it: drained at once, a control channel that fails, no protocol,
// SIGTERM ignored, already gone.
func TestStopWorkerSequence(t *testing.T) {
	log := zap.NewNop()
	exitOnTerm := func(f *fakeWorker) func(syscall.Signal) {
		return func(sig syscall.Signal) {
			if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
				f.exit()
			}
		}
	}

	t.Run("drained", func(t *testing.T) {
		f := newFakeWorker()
		close(f.hello)
		f.onSend = func(m *ipc.Message) { close(f.drained) }
		f.onSignal = exitOnTerm(f)
		onState, states := recordStates()
		began := time.Now()
		stopWorker(f, 5*time.Second, onState, log)
		if time.Since(began) > 2*time.Second {
			t.Fatal("waited for the grace after drained")
		}
		if !slices.Equal(f.sent, []string{ipc.TypeDrain}) || !slices.Equal(f.signals, []syscall.Signal{syscall.SIGTERM}) {
			t.Fatalf("sent %v, signals %v", f.sent, f.signals)
		}
		if !slices.Equal(states(), []State{StateDraining, StateStopping}) {
			t.Fatalf("states %v", states())
		}
	})

	t.Run("control channel broken", func(t *testing.T) {
		f := newFakeWorker()
		close(f.hello)
		f.sendErr = errors.New("broken pipe")
		f.onSignal = exitOnTerm(f)
		began := time.Now()
		stopWorker(f, 5*time.Second, func(State) {}, log)
		if time.Since(began) > 2*time.Second || !slices.Equal(f.signals, []syscall.Signal{syscall.SIGTERM}) {
			t.Fatalf("a failed drain must go straight to SIGTERM: signals %v after %s", f.signals, time.Since(began))
		}
	})

	t.Run("no protocol", func(t *testing.T) {
		f := newFakeWorker()
		f.onSignal = exitOnTerm(f)
		onState, states := recordStates()
		stopWorker(f, 5*time.Second, onState, log)
		if len(f.sent) != 0 || !slices.Equal(states(), []State{StateStopping}) {
			t.Fatalf("sent %v, states %v: a worker without hello is not asked to drain", f.sent, states())
		}
	})

	t.Run("SIGTERM ignored", func(t *testing.T) {
		f := newFakeWorker()
		f.onSignal = func(sig syscall.Signal) {
			if sig == syscall.SIGKILL {
				f.exit()
			}
		}
		began := time.Now()
		stopWorker(f, 300*time.Millisecond, func(State) {}, log)
		if !slices.Equal(f.signals, []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}) {
			t.Fatalf("signals %v", f.signals)
		}
		// Even past the grace, SIGTERM gets a moment before SIGKILL.
		if took := time.Since(began); took < 500*time.Millisecond {
			t.Fatalf("killed after %s", took)
		}
	})

	t.Run("already gone", func(t *testing.T) {
		f := newFakeWorker()
		close(f.hello)
		f.exit()
		stopWorker(f, time.Second, func(State) { t.Error("state change for a worker that is gone") }, log)
		if len(f.sent)+len(f.signals) != 0 {
			t.Fatalf("sent %v, signals %v", f.sent, f.signals)
		}
	})
}
