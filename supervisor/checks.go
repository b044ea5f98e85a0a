package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/textclip"
)

// Custom checks and health signals: what an app registers with Watt's
// setCustomHealthCheck / setCustomReadinessCheck and sends with
// sendHealthSignal, carried by the optional messages of the control
// protocol (checkSet, check/checked, healthSignals). A worker that never
// announced a check is never asked for one, so workers that do not know
// these messages (the Go SDK, other runtimes) cost nothing and never time
// out.

// Bounds on what a worker's health signals may make wattd keep: the
// latest signal of each type, for so many types, each so large.
const (
	maxSignalTypes = 16
	maxSignalBytes = 4 << 10
)

// errWorkerGone is returned for a worker that exited meanwhile: a check
// of it, or a message to or from it.
var errWorkerGone = errors.New("the worker exited")

// checkBook is a worker's side of the custom checks and signals. Its
// zero value is ready to use.
type checkBook struct {
	mu      sync.Mutex // guards the fields below
	kinds   map[string]bool
	seq     uint64
	waiting map[uint64]chan ipc.Check
	signals map[string]json.RawMessage // latest signal by type
}

// set records that the app registered a check of kind.
func (b *checkBook) set(c *ipc.Check) {
	if c == nil || (c.Kind != ipc.CheckHealth && c.Kind != ipc.CheckReadiness) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kinds == nil {
		b.kinds = map[string]bool{}
	}
	b.kinds[c.Kind] = true
}

func (b *checkBook) has(kind string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.kinds[kind]
}

// answered hands a checked message to the check waiting for it; an
// answer nobody waits for (it came after its deadline) is dropped.
func (b *checkBook) answered(c *ipc.Check) {
	if c == nil {
		return
	}
	b.mu.Lock()
	ch, ok := b.waiting[c.ID]
	delete(b.waiting, c.ID)
	b.mu.Unlock()
	if ok {
		res := *c
		if res.StatusCode != 0 && (res.StatusCode < 100 || res.StatusCode > 599) {
			// Not an HTTP status a probe could answer with (net/http
			// panics on a code outside 100-999): the default answer's
			// code stands, and the reason says what the app gave.
			if res.Error == "" && !res.OK {
				res.Error = fmt.Sprintf("the check asked for status %d, which is not an HTTP status", res.StatusCode)
			}
			res.StatusCode = 0
		}
		ch <- res // buffered, one send per id
	}
}

// signalled keeps the latest of each type of the signals a worker sent.
// Malformed, oversized and excess types are dropped: a worker's reports
// must not grow wattd's memory.
func (b *checkBook) signalled(signals []json.RawMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, raw := range signals {
		if len(raw) > maxSignalBytes {
			continue
		}
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &head) != nil || head.Type == "" {
			continue
		}
		if b.signals == nil {
			b.signals = map[string]json.RawMessage{}
		}
		if _, known := b.signals[head.Type]; !known && len(b.signals) >= maxSignalTypes {
			continue
		}
		b.signals[head.Type] = append(json.RawMessage(nil), raw...)
	}
}

// latestSignals returns a copy of the latest signals by type; nil when
// there are none.
func (b *checkBook) latestSignals() map[string]json.RawMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.signals) == 0 {
		return nil
	}
	out := make(map[string]json.RawMessage, len(b.signals))
	for k, v := range b.signals {
		out[k] = v
	}
	return out
}

// RunCheck asks the worker to run its custom check of kind and waits for
// the answer until ctx ends. has is false, and nothing is asked, when the
// app registered no such check.
func (p *proc) RunCheck(ctx context.Context, kind string) (res ipc.Check, has bool, err error) {
	if !p.checks.has(kind) {
		return ipc.Check{Kind: kind, OK: true}, false, nil
	}
	ch := make(chan ipc.Check, 1)
	p.checks.mu.Lock()
	p.checks.seq++
	id := p.checks.seq
	if p.checks.waiting == nil {
		p.checks.waiting = map[uint64]chan ipc.Check{}
	}
	p.checks.waiting[id] = ch
	p.checks.mu.Unlock()
	defer func() {
		p.checks.mu.Lock()
		delete(p.checks.waiting, id)
		p.checks.mu.Unlock()
	}()
	if err := p.send(&ipc.Message{Type: ipc.TypeCheck, Check: &ipc.Check{ID: id, Kind: kind}}); err != nil {
		return ipc.Check{}, true, fmt.Errorf("ask for the %s check: %w", kind, err)
	}
	select {
	case res := <-ch:
		return res, true, nil
	case <-p.exited:
		return ipc.Check{}, true, errWorkerGone
	case <-ctx.Done():
		return ipc.Check{}, true, ctx.Err()
	}
}

// HealthSignals returns the latest health signal of each type the worker
// sent, as the JSON objects it sent.
func (p *proc) HealthSignals() map[string]json.RawMessage { return p.checks.latestSignals() }

// checkCause runs w's custom health check, if its app registered one, and
// returns why it failed, or "" when it passed or there is none.
func checkCause(ctx context.Context, w worker, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, has, err := w.RunCheck(ctx, ipc.CheckHealth)
	switch {
	case !has:
		return ""
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("custom health check: no answer within %s", timeout)
	case err != nil:
		return "custom health check: " + err.Error()
	case res.Error != "":
		return "custom health check failed: " + res.Error
	case !res.OK:
		return "custom health check failed" + checkDetail(res)
	}
	return ""
}

// checkDetail renders the status code and body an app gave with a
// failed check, shortened.
func checkDetail(res ipc.Check) string {
	s := ""
	if res.StatusCode != 0 {
		s += fmt.Sprintf(" (status %d", res.StatusCode)
	}
	if res.Body != "" {
		body := textclip.Clip(res.Body, 200)
		if s == "" {
			s += " ("
		} else {
			s += ", "
		}
		s += fmt.Sprintf("body %q", body)
	}
	if s != "" {
		s += ")"
	}
	return s
}

// WorkerReadiness is one worker slot's readiness, as a readiness probe
// would judge it: the slot's worker is ready and, when the app registered
// a custom readiness check (setCustomReadinessCheck), that check passes.
type WorkerReadiness struct {
	App    string `json:"app"`
	Worker int    `json:"worker"`
	PID    int    `json:"pid,omitempty"`
	Ready  bool   `json:"ready"`
	// Checked says the app's custom readiness check ran; StatusCode and
	// Body are what it asked a probe to answer, when it said.
	Checked    bool   `json:"checked,omitempty"`
	StatusCode int    `json:"statusCode,omitempty"`
	Body       string `json:"body,omitempty"`
	Reason     string `json:"reason,omitempty"` // why not ready
	// CheckFailed says the worker is ready but its custom readiness check
	// failed or did not answer in time (not that it could not be asked,
	// the worker ending meanwhile).
	CheckFailed bool `json:"checkFailed,omitempty"`
}

// Readiness judges every worker slot of every application, running the
// custom readiness checks concurrently, each bounded by timeout. Watt's
// readiness probe is ready when every application has a started worker and
// every custom readiness check passes; the per-worker answers let a probe
// apply that rule or a finer one.
func (rt *Runtime) Readiness(ctx context.Context, timeout time.Duration) []WorkerReadiness {
	var out []WorkerReadiness
	var ws []worker
	for _, a := range rt.appList() {
		for _, s := range a.slotList() {
			s.mu.Lock()
			st, w := s.state, s.cur
			neverStarted, waitingFor := len(s.history) == 0, s.waitingFor
			s.mu.Unlock()
			r := WorkerReadiness{App: a.id, Worker: s.index}
			if w != nil {
				r.PID = w.PID()
			}
			if st != StateReady || w == nil {
				r.Reason = "worker " + st.String()
				if st == StateExited && neverStarted {
					// Never started, as status shows it (slot.status).
					r.Reason = "worker waiting"
					if waitingFor != "" {
						r.Reason += " for " + waitingFor
					}
				}
				w = nil
			}
			out = append(out, r)
			ws = append(ws, w)
		}
	}
	var wg sync.WaitGroup
	for i, w := range ws {
		if w == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			res, has, err := w.RunCheck(cctx, ipc.CheckReadiness)
			r := &out[i]
			r.Checked = has
			r.StatusCode, r.Body = res.StatusCode, res.Body
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				r.Reason = fmt.Sprintf("custom readiness check: no answer within %s", timeout)
				r.CheckFailed = true
			case err != nil:
				// Not the check's verdict: the worker went away meanwhile.
				r.Reason = "custom readiness check: " + err.Error()
			case res.Error != "":
				r.Reason = "custom readiness check failed: " + res.Error
				r.CheckFailed = true
			case !res.OK:
				r.Reason = "custom readiness check failed" + checkDetail(res)
				r.CheckFailed = true
			default:
				r.Ready = true
			}
		}()
	}
	wg.Wait()
	return out
}
