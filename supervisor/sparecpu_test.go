package supervisor

import (
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/procnet"
)

func TestIdleCPUs(t *testing.T) {
	a := procnet.CPUTimes{Idle: 100, Total: 200, CPUs: 2}
	for _, c := range []struct {
		b    procnet.CPUTimes
		want float64
	}{
		{procnet.CPUTimes{Idle: 200, Total: 300, CPUs: 2}, 2},   // all idle
		{procnet.CPUTimes{Idle: 150, Total: 300, CPUs: 2}, 1},   // half
		{procnet.CPUTimes{Idle: 100, Total: 300, CPUs: 2}, 0},   // busy
		{procnet.CPUTimes{Idle: 100, Total: 200, CPUs: 2}, 0},   // no time passed
		{procnet.CPUTimes{Idle: 50, Total: 300, CPUs: 2}, 0},    // counters went back
		{procnet.CPUTimes{Idle: 175, Total: 300, CPUs: 2}, 1.5}, // three quarters
	} {
		if got := idleCPUs(a, c.b); got != c.want {
			t.Errorf("idleCPUs(%+v, %+v) = %v, want %v", a, c.b, got, c.want)
		}
	}
}

// TestWaitSpareCPUIsBounded: however busy the machine, the wait ends by
// spareWaitMax (with room for a loaded test machine), and at once when
// told to stop.
func TestWaitSpareCPUIsBounded(t *testing.T) {
	start := time.Now()
	waitSpareCPU(nil)
	if took := time.Since(start); took > spareWaitMax+time.Second {
		t.Fatalf("waited %s, bound %s", took, spareWaitMax)
	}
	stop := make(chan struct{})
	close(stop)
	start = time.Now()
	waitSpareCPU(stop)
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("told to stop, it still waited %s", took)
	}
}
