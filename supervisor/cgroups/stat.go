package cgroups

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Throttling is what the CFS bandwidth controller did to a group with a
// CPU limit: periods elapsed, periods in which the group used up its
// quota and was held back, and how long it was held back in all.
type Throttling struct {
	Periods   uint64
	Throttled uint64
	Time      time.Duration
}

// Stall is one resource's pressure stall information (PSI): the total
// time in which some of the group's tasks waited for the resource, and
// in which all of its non-idle tasks did at once. HasFull is false when
// the kernel gives no "full" line (cpu.pressure before Linux 5.13).
type Stall struct {
	Some    time.Duration
	Full    time.Duration
	HasFull bool
}

// Pressure is a group's PSI by resource; a resource whose file is
// missing or unreadable (PSI off, or turned off for the group through
// cgroup.pressure) is nil. cgroup v1 has no PSI.
type Pressure struct {
	CPU, Memory, IO *Stall
}

// flatKeyed parses a flat-keyed cgroup file ("key value" a line:
// cpu.stat, memory.events, memory.oom_control). Lines that do not hold a
// number are left out.
func flatKeyed(text string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// throttlingV2 reads v2 cpu.stat's bandwidth keys, which the kernel
// writes only when the cpu controller is enabled for the group.
func throttlingV2(stat map[string]uint64) *Throttling {
	throttled, ok := stat["nr_throttled"]
	if !ok {
		return nil
	}
	return &Throttling{Periods: stat["nr_periods"], Throttled: throttled, Time: time.Duration(stat["throttled_usec"]) * time.Microsecond}
}

// throttlingV1 reads v1 cpu.stat, whose throttled_time is in nanoseconds.
func throttlingV1(stat map[string]uint64) *Throttling {
	throttled, ok := stat["nr_throttled"]
	if !ok {
		return nil
	}
	return &Throttling{Periods: stat["nr_periods"], Throttled: throttled, Time: time.Duration(stat["throttled_time"])}
}

// parseStall parses a PSI file (Documentation/accounting/psi.rst):
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//
// total is in microseconds. Only the totals are kept: they are counters,
// from which a scraper computes any average it wants.
func parseStall(text string) (Stall, error) {
	var s Stall
	var hasSome bool
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		var total string
		for _, f := range fields[1:] {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				total = v
			}
		}
		if total == "" {
			return Stall{}, fmt.Errorf("PSI line %q has no total", line)
		}
		us, err := strconv.ParseUint(total, 10, 64)
		if err != nil {
			return Stall{}, fmt.Errorf("PSI line %q: %w", line, err)
		}
		switch fields[0] {
		case "some":
			s.Some, hasSome = time.Duration(us)*time.Microsecond, true
		case "full":
			s.Full, s.HasFull = time.Duration(us)*time.Microsecond, true
		}
	}
	if !hasSome {
		return Stall{}, fmt.Errorf("no \"some\" line in %q", text)
	}
	return s, nil
}

// pressureV2 reads a v2 group's PSI files. It never fails: a file that
// cannot be read leaves its resource nil, so a kernel without PSI costs
// the caller nothing but the missing figures.
func pressureV2(dir string) *Pressure {
	read := func(name string) *Stall {
		text, err := readFile(dir, name)
		if err != nil {
			return nil
		}
		s, err := parseStall(text)
		if err != nil {
			return nil
		}
		return &s
	}
	p := Pressure{CPU: read("cpu.pressure"), Memory: read("memory.pressure"), IO: read("io.pressure")}
	if p.CPU == nil && p.Memory == nil && p.IO == nil {
		return nil
	}
	return &p
}

// oomKillsIn reads the kernel's OOM kill counter of a memory cgroup: v2
// memory.events oom_kill, v1 memory.oom_control oom_kill (Linux 4.13+).
// known is false when the kernel does not keep the counter.
func oomKillsIn(v Version, dir string) (n uint64, known bool, err error) {
	name := "memory.oom_control"
	if v == V2 {
		name = "memory.events"
	}
	text, err := readFile(dir, name)
	if err != nil {
		return 0, false, err
	}
	n, known = flatKeyed(text)["oom_kill"]
	return n, known, nil
}

// slotKey names a worker slot: the groups of its successive processes
// share it.
type slotKey struct {
	app   string
	index int
}

// OOMKills is how many processes the kernel's OOM killer has killed in
// every group made for the worker slot (app, index) since the Manager
// opened: the groups removed since, and the live ones. It only grows,
// so it can be exported as a counter although each group, and its own
// count, goes when its worker does. ok is false in fallback mode and
// where the kernel keeps no count (v1 before Linux 4.13).
func (m *Manager) OOMKills(app string, index int) (n uint64, ok bool) {
	if m.version == Fallback {
		return 0, false
	}
	// Under the lock, so a group being removed is counted either among
	// the live ones or in the retired total, never in both or neither.
	m.mu.Lock()
	defer m.mu.Unlock()
	key := slotKey{app, index}
	n, ok = m.retiredOOM[key]
	for g := range m.groups {
		if g.app != app || g.index != index || g.dirs == nil {
			continue
		}
		c, known, err := oomKillsIn(m.version, g.memoryDir())
		if err == nil && known {
			n, ok = n+c, true
		}
	}
	return n, ok
}

// retire moves a group's final OOM count into the slot's total and
// forgets the group; called by Remove once the group is empty.
func (m *Manager) retire(g *Group) {
	var c uint64
	var known bool
	if g.dirs != nil {
		c, known, _ = oomKillsIn(m.version, g.memoryDir())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[g]; !ok {
		return // removed before: counted then
	}
	delete(m.groups, g)
	if known {
		if m.retiredOOM == nil {
			m.retiredOOM = map[slotKey]uint64{}
		}
		m.retiredOOM[slotKey{g.app, g.index}] += c
	}
}

// memoryDir is the group's directory that holds the memory files.
func (g *Group) memoryDir() string {
	if g.m.version == V2 {
		return g.dirs[""]
	}
	return g.dirs["memory"]
}
