package main

// The same-time reading of the side-by-side scenarios. Taking the load in
// turns (pair.go) cancels the machine's drift over a round, but on a
// virtual machine the host takes CPU time away in spells of a second or
// more, so one turn's requests/s varies by about 9% and a goal of a few
// percent needs many rounds. After its turns, a round can also load every
// side at once for -duration, with the targets sharing one half of the
// CPUs and the bench (the load generator) on the other: a spell then
// slows every side alike, and since each side gets an even share of its
// CPUs, the ratio of their requests/s is the inverse ratio of what a
// request costs each. On two CPUs, in one run each, the rounds' ratios
// spread over 3 points this way against 14 in turns (hello, wattd/cluster:
// 0.999–1.030 against 0.942–1.080), 4 against 20 (wattd/reuseport), 3
// against 8 (tracing on/off) and 9 against 13 (metrics on/off), the
// medians within a point of each other. From run to run it still moves by
// 2–3 points (wattd/reuseport 0.986, then 0.954 where the turns gave
// 0.996).
//
// The figure is printed beside the verdicts, which stay on the turns: it
// compares cost per request on shared CPUs, while the goals are about the
// requests/s each side reaches with the machine to itself.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// sameTimeDefault are the scenarios that take the same-time reading
// unless -same-time says otherwise: those whose goals are closer than
// what the turns resolve in one run. The mesh's are not, and its rounds
// would take longer.
var sameTimeDefault = []string{scHello, metricsScenario, scTracing}

// sameTimeScenarios are the scenarios -same-time may name.
var sameTimeScenarios = []string{scHello, scMesh, metricsScenario, scTracing}

// cpuSplit is how the same-time reading shares the CPUs.
type cpuSplit struct {
	all, targets, bench unix.CPUSet
}

// newCPUSplit splits the CPUs the bench may run on: the first half (the
// larger when odd) for targets, the rest for the bench. ok is false with
// fewer than two.
func newCPUSplit() (cpuSplit, bool, error) {
	var s cpuSplit
	if err := unix.SchedGetaffinity(0, &s.all); err != nil {
		return s, false, fmt.Errorf("sched_getaffinity: %w", err)
	}
	n := s.all.Count()
	if n < 2 {
		return s, false, nil
	}
	seen := 0
	for cpu := 0; seen < n; cpu++ {
		if !s.all.IsSet(cpu) {
			continue
		}
		if seen < (n+1)/2 {
			s.targets.Set(cpu)
		} else {
			s.bench.Set(cpu)
		}
		seen++
	}
	return s, true, nil
}

// cpuList writes set as Linux does in Cpus_allowed_list ("0-3,6").
func cpuList(set unix.CPUSet) string {
	var parts []string
	for cpu := 0; cpu < len(set)*64; cpu++ {
		if !set.IsSet(cpu) {
			continue
		}
		end := cpu
		for set.IsSet(end + 1) {
			end++
		}
		if end == cpu {
			parts = append(parts, strconv.Itoa(cpu))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpu, end))
		}
		cpu = end
	}
	return strings.Join(parts, ",")
}

// threads lists the thread ids of pid (0: the bench itself); a process
// that ended meanwhile has none.
func threads(pid int) ([]int, error) {
	dir := "/proc/self/task"
	if pid != 0 {
		dir = fmt.Sprintf("/proc/%d/task", pid)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if pid != 0 && os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// pinThreads sets the CPUs of every thread of each process in pids (0:
// the bench itself). Threads made later inherit the mask of the thread
// that makes them. A process or thread that ended meanwhile is no error.
func pinThreads(pids []int, set *unix.CPUSet) error {
	for _, pid := range pids {
		tids, err := threads(pid)
		if err != nil {
			return err
		}
		for _, tid := range tids {
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("sched_setaffinity %d: %w", tid, err)
			}
		}
	}
	return nil
}

// threadCPUs is the distinct CPU lists the kernel holds for the threads
// of pids, space-separated.
func threadCPUs(pids []int) string {
	var lists []string
	for _, pid := range pids {
		tids, _ := threads(pid)
		for _, tid := range tids {
			var set unix.CPUSet
			if unix.SchedGetaffinity(tid, &set) != nil {
				continue // ended since the listing
			}
			if l := cpuList(set); !slices.Contains(lists, l) {
				lists = append(lists, l)
			}
		}
	}
	return strings.Join(lists, " ")
}

// sameTime loads every side at once for d, the targets' processes (all
// their threads) on the split's targets half and the bench on its other
// half, and sets each side's SameTimeRPS and SameTimeCPUs. load is
// measurePair's, so a side's during runs as in its turns. The masks are
// put back after.
func (b *bench) sameTime(ctx context.Context, sides []*pairSide, d time.Duration, load func(*pairSide, time.Duration) *loadStats) error {
	split := b.split
	var roots []int
	for _, s := range sides {
		for _, p := range s.ps {
			roots = append(roots, p.pid)
		}
	}
	tree := func() []int {
		var pids []int
		for _, st := range processForest(roots) {
			pids = append(pids, st.id.pid)
		}
		return pids
	}
	pids := tree()
	defer func() {
		// Listed again: a process the targets started meanwhile has the
		// targets' mask from its parent.
		_ = pinThreads(tree(), &split.all)
		_ = pinThreads([]int{0}, &split.all)
	}()
	if err := pinThreads(pids, &split.targets); err != nil {
		return err
	}
	if err := pinThreads([]int{0}, &split.bench); err != nil {
		return err
	}
	cpus := threadCPUs(pids)
	stats := make([]*loadStats, len(sides))
	var wg sync.WaitGroup
	for i, s := range sides {
		wg.Go(func() { stats[i] = load(s, d) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, s := range sides {
		s.rec.SameTimeRPS = stats[i].rate()
		s.rec.SameTimeCPUs = cpus
	}
	return nil
}

// sameTimeRPS is a record's same-time requests/s.
func sameTimeRPS(r *runRecord) (float64, bool) {
	return r.SameTimeRPS, r.Error == "" && r.SameTimeRPS > 0
}

// sameTimeNotes are a line per baseline with a's same-time ratio to it
// round by round.
func sameTimeNotes(records []runRecord, scenario, a string, baselines []string) []string {
	out := ratioNotes(records, scenario, a, baselines, "requests/s loaded at the same time", sameTimeRPS)
	for i := range records {
		if r := &records[i]; r.Scenario == scenario && r.SameTimeCPUs != "" {
			out = append(out, fmt.Sprintf("  (all sides loaded at once, their threads on CPU %s, the load generator on the others)", r.SameTimeCPUs))
			break
		}
	}
	return out
}
