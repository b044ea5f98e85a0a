// Package restart decides what happens after a worker exits: restart now,
// restart after a delay, or give up and mark the application failed. It is a
// pure unit — exits go in, decisions come out — so every rule is tested
// without a process.
//
// Rules:
//   - A worker that served for at least ResetAfter, from becoming ready
//     to its exit, was healthy: its exit starts a fresh count. A worker
//     that dies as soon as it is ready keeps failing, however long its
//     start took.
//   - The first exit of a count restarts after FirstDelay (Watt's numeric
//     restartOnError; 0 by default), so a worker that crashes once under
//     load is back at once.
//   - Every further consecutive exit waits InitialDelay·2^(n-2), capped at
//     MaxDelay, with ±20% jitter so that many workers failing together do
//     not restart in lock step.
//   - More than MaxRestarts consecutive exits is a crash loop: give up.
//   - A slot none of whose workers ever became ready gives up after
//     StartAttempts failed starts, as Watt does (six: the first and five
//     more), even when MaxRestarts would allow more: an application that
//     never started is broken, not unlucky, and its dependants and the
//     operator are waiting for a verdict.
//   - With restarts disabled (restartOnError: false), any exit gives up.
package restart

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy holds the knobs; the zero value never restarts.
type Policy struct {
	Enabled      bool
	FirstDelay   time.Duration
	InitialDelay time.Duration
	MaxDelay     time.Duration
	ResetAfter   time.Duration
	MaxRestarts  int // 0: never give up
	// StartAttempts bounds the starts of a slot that was never ready;
	// 0: only MaxRestarts applies.
	StartAttempts int
}

// Exit is what happened to one worker process.
type Exit struct {
	Uptime   time.Duration // from start to exit
	WasReady bool          // it reported ready (or was taken as ready)
	Served   time.Duration // from ready (or its promotion from standby) to exit
	Reason   string        // "exit status 1", "signal: killed", "start: …", "not ready within 30s"
}

// Decision is what to do about an Exit.
type Decision struct {
	Restart     bool
	Delay       time.Duration
	Consecutive int    // exits counted since the worker was last healthy
	Reason      string // why; for a give-up, the message shown to the user
}

// Tracker applies a Policy to the exits of one worker slot. It is not safe
// for concurrent use; the slot's owner goroutine alone calls it.
type Tracker struct {
	policy      Policy
	consecutive int
	up          bool           // a worker of the slot was ready at least once
	jitter      func() float64 // in [0,1); replaced in tests
}

// NewTracker returns a tracker with a fresh count.
func NewTracker(p Policy) *Tracker {
	return &Tracker{policy: p, jitter: rand.Float64}
}

// Reset forgets past exits, as after an operator's explicit restart.
func (t *Tracker) Reset() { t.consecutive = 0 }

// Next records e and decides.
func (t *Tracker) Next(e Exit) Decision {
	p := t.policy
	if e.WasReady && e.Served >= p.ResetAfter {
		t.consecutive = 0
	}
	t.up = t.up || e.WasReady
	t.consecutive++
	d := Decision{Consecutive: t.consecutive}
	if !p.Enabled {
		d.Reason = fmt.Sprintf("%s; restartOnError is off", e.Reason)
		return d
	}
	if p.MaxRestarts > 0 && t.consecutive > p.MaxRestarts {
		d.Reason = fmt.Sprintf("crash loop: %d exits in a row, none after serving for %s; last: %s",
			t.consecutive, p.ResetAfter, e.Reason)
		return d
	}
	if !t.up && p.StartAttempts > 0 && t.consecutive >= p.StartAttempts {
		d.Reason = fmt.Sprintf("could not start: %d attempts failed; last: %s", t.consecutive, e.Reason)
		return d
	}
	d.Restart = true
	d.Reason = e.Reason
	if t.consecutive == 1 {
		d.Delay = p.FirstDelay
		return d
	}
	delay := p.InitialDelay
	for i := 2; i < t.consecutive && delay < p.MaxDelay; i++ {
		delay *= 2
	}
	if p.MaxDelay > 0 && delay > p.MaxDelay {
		delay = p.MaxDelay
	}
	// ±20% jitter.
	delay = time.Duration(float64(delay) * (0.8 + 0.4*t.jitter()))
	if d.Delay = delay; d.Delay < p.FirstDelay {
		d.Delay = p.FirstDelay
	}
	return d
}
