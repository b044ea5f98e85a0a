package restart

import (
	"strings"
	"testing"
	"time"
)

var testPolicy = Policy{
	Enabled:      true,
	InitialDelay: 100 * time.Millisecond,
	MaxDelay:     time.Second,
	ResetAfter:   time.Second,
	MaxRestarts:  6,
}

func newTest(p Policy) *Tracker {
	t := NewTracker(p)
	t.jitter = func() float64 { return 0.5 } // the middle: no net jitter
	return t
}

func TestBackoffSequence(t *testing.T) {
	tr := newTest(testPolicy)
	crash := Exit{Uptime: 10 * time.Millisecond, Reason: "exit status 1"}
	want := []time.Duration{0, 100, 200, 400, 800, 1000}
	for i, w := range want {
		d := tr.Next(crash)
		if !d.Restart || d.Delay != w*time.Millisecond {
			t.Fatalf("exit %d: got %+v, want restart after %v", i+1, d, w*time.Millisecond)
		}
		if d.Consecutive != i+1 {
			t.Fatalf("exit %d: consecutive %d", i+1, d.Consecutive)
		}
	}
	d := tr.Next(crash)
	if d.Restart || !strings.Contains(d.Reason, "crash loop: 7 exits") || !strings.Contains(d.Reason, "exit status 1") {
		t.Fatalf("7th exit: %+v", d)
	}
}

func TestHealthyUptimeResets(t *testing.T) {
	tr := newTest(testPolicy)
	for range 4 {
		tr.Next(Exit{Uptime: time.Millisecond, Reason: "x"})
	}
	d := tr.Next(Exit{Uptime: 2 * time.Second, WasReady: true, Served: 2 * time.Second, Reason: "exit status 1"})
	if !d.Restart || d.Delay != 0 || d.Consecutive != 1 {
		t.Fatalf("after healthy uptime: %+v", d)
	}
}

func TestLongUptimeButNeverReadyDoesNotReset(t *testing.T) {
	tr := newTest(testPolicy)
	tr.Next(Exit{Uptime: time.Millisecond, Reason: "x"})
	d := tr.Next(Exit{Uptime: time.Hour, WasReady: false, Reason: "not ready"})
	if d.Consecutive != 2 || d.Delay != 100*time.Millisecond {
		t.Fatalf("%+v", d)
	}
}

// TestSlowStartDyingWhenReadyKeepsFailing: a worker whose start takes
// longer than ResetAfter and that dies as soon as it is ready keeps
// failing: it is backed off and given up on like a quick one.
func TestSlowStartDyingWhenReadyKeepsFailing(t *testing.T) {
	tr := newTest(testPolicy)
	var d Decision
	for range testPolicy.MaxRestarts + 1 {
		d = tr.Next(Exit{Uptime: 1100 * time.Millisecond, WasReady: true, Served: 20 * time.Millisecond, Reason: "exit status 7"})
	}
	if d.Restart || !strings.Contains(d.Reason, "crash loop") || !strings.Contains(d.Reason, "none after serving for 1s") {
		t.Fatalf("after %d quick deaths of slow starters: %+v", testPolicy.MaxRestarts+1, d)
	}
}

func TestDisabled(t *testing.T) {
	p := testPolicy
	p.Enabled = false
	d := newTest(p).Next(Exit{Uptime: time.Hour, WasReady: true, Served: time.Hour, Reason: "exit status 3"})
	if d.Restart || !strings.Contains(d.Reason, "exit status 3") || !strings.Contains(d.Reason, "restartOnError") {
		t.Fatalf("%+v", d)
	}
}

func TestUnlimitedAndFirstDelay(t *testing.T) {
	p := testPolicy
	p.MaxRestarts = 0
	p.FirstDelay = 250 * time.Millisecond
	tr := newTest(p)
	for i := range 100 {
		d := tr.Next(Exit{Reason: "x"})
		if !d.Restart {
			t.Fatalf("exit %d gave up with MaxRestarts 0", i)
		}
		if d.Delay < p.FirstDelay || d.Delay > p.MaxDelay {
			t.Fatalf("exit %d: delay %v outside [%v, %v]", i, d.Delay, p.FirstDelay, p.MaxDelay)
		}
	}
}

func TestJitterBounds(t *testing.T) {
	for _, j := range []float64{0, 0.999999} {
		tr := NewTracker(testPolicy)
		tr.jitter = func() float64 { return j }
		tr.Next(Exit{})
		d := tr.Next(Exit{})
		if d.Delay < 80*time.Millisecond || d.Delay > 120*time.Millisecond {
			t.Fatalf("jitter %v: delay %v", j, d.Delay)
		}
	}
}

func TestReset(t *testing.T) {
	tr := newTest(testPolicy)
	for range 5 {
		tr.Next(Exit{})
	}
	tr.Reset()
	if d := tr.Next(Exit{}); d.Consecutive != 1 || d.Delay != 0 {
		t.Fatalf("%+v", d)
	}
}

// TestStartAttemptsBoundANeverReadySlot: a slot that never became ready
// gives up after StartAttempts failed starts even though MaxRestarts (0:
// never) would retry forever.
func TestStartAttemptsBoundANeverReadySlot(t *testing.T) {
	p := testPolicy
	p.MaxRestarts = 0
	p.StartAttempts = 3
	tr := newTest(p)
	timeout := Exit{Uptime: time.Second, Reason: "not ready within startTimeout (1s)"}
	for i := range 2 {
		if d := tr.Next(timeout); !d.Restart {
			t.Fatalf("start %d: gave up early: %+v", i+1, d)
		}
	}
	d := tr.Next(timeout)
	if d.Restart || d.Reason != "could not start: 3 attempts failed; last: not ready within startTimeout (1s)" {
		t.Fatalf("3rd failed start: %+v", d)
	}
}

// TestStartAttemptsDoNotBoundASlotThatWasUp: once a worker of the slot was
// ready, its later failed starts are crashes under MaxRestarts only.
func TestStartAttemptsDoNotBoundASlotThatWasUp(t *testing.T) {
	p := testPolicy
	p.MaxRestarts = 0
	p.StartAttempts = 2
	tr := newTest(p)
	tr.Next(Exit{Uptime: time.Millisecond, WasReady: true, Reason: "exit status 1"})
	for i := range 10 {
		if d := tr.Next(Exit{Uptime: time.Millisecond, Reason: "exit status 1"}); !d.Restart {
			t.Fatalf("exit %d after the slot was up: %+v", i+2, d)
		}
	}
}
