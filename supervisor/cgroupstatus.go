package supervisor

import "github.com/wattd/wattd/supervisor/cgroups"

// CPUThrottling is what a worker's CPU limit did to it: CFS periods
// elapsed, those in which it used up its quota and was held back, and
// for how long in all.
type CPUThrottling struct {
	Periods          uint64  `json:"periods"`
	ThrottledPeriods uint64  `json:"throttledPeriods"`
	ThrottledSeconds float64 `json:"throttledSeconds"`
}

// Pressure is a worker cgroup's pressure stall information by resource;
// a resource the kernel does not report is nil.
type Pressure struct {
	CPU    *Stall `json:"cpu,omitempty"`
	Memory *Stall `json:"memory,omitempty"`
	IO     *Stall `json:"io,omitempty"`
}

// Stall is the time some of a worker's tasks waited for a resource and,
// when the kernel reports it, the time all of them did at once.
type Stall struct {
	SomeSeconds float64  `json:"someSeconds"`
	FullSeconds *float64 `json:"fullSeconds,omitempty"`
}

func throttlingStatus(t *cgroups.Throttling) *CPUThrottling {
	if t == nil {
		return nil
	}
	return &CPUThrottling{Periods: t.Periods, ThrottledPeriods: t.Throttled, ThrottledSeconds: t.Time.Seconds()}
}

func pressureStatus(p *cgroups.Pressure) *Pressure {
	if p == nil {
		return nil
	}
	stall := func(s *cgroups.Stall) *Stall {
		if s == nil {
			return nil
		}
		out := &Stall{SomeSeconds: s.Some.Seconds()}
		if s.HasFull {
			full := s.Full.Seconds()
			out.FullSeconds = &full
		}
		return out
	}
	return &Pressure{CPU: stall(p.CPU), Memory: stall(p.Memory), IO: stall(p.IO)}
}
