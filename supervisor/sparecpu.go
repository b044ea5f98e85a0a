package supervisor

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/procnet"
)

// A promoted standby's successor is a Node.js start, 50 to 130 ms of a
// CPU, right after a crash: the moment the promoted worker serves the
// dead one's clients as they reconnect, and every CPU may be busy with
// them. So it waits for a CPU to spare (spareCPUs of the CPUs wattd may run
// on idle since the last look, from /proc/stat), looking every
// spareLookEvery, and starts after spareWaitMax whatever the machine does.
// On a machine with a CPU to spare that is one look; in a closed-loop
// crash storm on 2 CPUs it is the bound, and a death meanwhile finds no
// standby and its slot is steered around until its start (slot.run).
// Measured: see docs/operations.md, "Standby workers".
const (
	spareCPUs      = 0.75
	spareLookEvery = 50 * time.Millisecond
	spareWaitMax   = 300 * time.Millisecond
)

// waitSpareCPU returns once the CPUs wattd may run on had spareCPUs idle
// over one look, after spareWaitMax at the latest, or when stop is closed.
func waitSpareCPU(stop <-chan struct{}) {
	mine := ownCPUs()
	last, ok := procnet.ReadCPUTimes(mine)
	deadline := time.Now().Add(spareWaitMax)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		t := time.NewTimer(min(spareLookEvery, left))
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		if !ok {
			continue // no /proc/stat: the bound
		}
		now, ok2 := procnet.ReadCPUTimes(mine)
		if !ok2 {
			return
		}
		if idleCPUs(last, now) >= spareCPUs {
			return
		}
		last = now
	}
}

// idleCPUs is how many CPUs were idle, on average, between two readings.
func idleCPUs(a, b procnet.CPUTimes) float64 {
	if b.Total <= a.Total || b.Idle < a.Idle {
		return 0
	}
	return float64(b.Idle-a.Idle) / float64(b.Total-a.Total) * float64(b.CPUs)
}

// ownCPUs tells which CPUs wattd may run on (its cpuset), nil for all or
// when that cannot be read.
func ownCPUs() func(int) bool {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return nil
	}
	return func(cpu int) bool { return set.IsSet(cpu) }
}
