package main

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Process-tree accounting straight from /proc. A target is a root process
// plus whatever it forks (workers, and under node:cluster nothing else), and
// both memory and CPU are compared over the whole tree, because a supervisor
// that looks lean while its workers are fat is not lean.
//
// Children are found by scanning every /proc/<pid>/stat for its parent pid:
// /proc/<pid>/task/<tid>/children would be cheaper but needs
// CONFIG_PROC_CHILDREN, which not every kernel has.

// procID names one process across time: a pid alone can be reused once the
// process is gone, the pair with its start time cannot.
type procID struct {
	pid   int
	start uint64 // clock ticks after boot, field 22 of /proc/<pid>/stat
}

type procStat struct {
	id    procID
	ppid  int
	state byte   // R, S, D, Z, ...
	ticks uint64 // utime+stime, in clock ticks
}

// clockTicks is USER_HZ. It is 100 on every Linux ABI Go supports, and the
// standard library offers no sysconf to ask.
const clockTicks = 100

var pageSize = uint64(os.Getpagesize())

var errNoProc = errors.New("no such process")

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, errNoProc
	}
	return parseProcStat(pid, b)
}

// parseProcStat reads the fields of /proc/<pid>/stat after the command name,
// which is in parentheses and may itself contain spaces and parentheses.
func parseProcStat(pid int, b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return procStat{}, errNoProc
	}
	f := bytes.Fields(b[i+2:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return procStat{}, errNoProc
	}
	num := func(n int) uint64 {
		v, _ := strconv.ParseUint(string(f[n-3]), 10, 64)
		return v
	}
	return procStat{
		id:    procID{pid: pid, start: num(22)},
		ppid:  int(num(4)),
		state: f[0][0],
		ticks: num(14) + num(15),
	}, nil
}

// readRSS returns the resident set size of pid in bytes (second field of
// /proc/<pid>/statm, in pages). Pages shared between processes, such as the
// node binary's text, count once per process, as in ps and top.
func readRSS(pid int) (uint64, error) {
	res, _, err := readStatm(pid)
	return res, err
}

// readPrivateRSS returns the resident memory of pid that no file backs, in
// bytes: statm's resident pages less its shared ones (file-backed pages
// mapped, resident in the page cache).
func readPrivateRSS(pid int) (uint64, error) {
	res, shared, err := readStatm(pid)
	if err != nil || shared > res {
		return 0, errNoProc
	}
	return res - shared, nil
}

// readStatm returns the resident and the shared (file-backed) memory of
// pid in bytes, from /proc/<pid>/statm.
func readStatm(pid int) (res, shared uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, 0, errNoProc
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return 0, 0, errNoProc
	}
	res, err1 := strconv.ParseUint(string(f[1]), 10, 64)
	shared, err2 := strconv.ParseUint(string(f[2]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errNoProc
	}
	return res * pageSize, shared * pageSize, nil
}

// processTree returns the root and all its live descendants, root first.
// A process that exits during the scan is simply left out.
func processTree(root int) []procStat {
	return processForest([]int{root})
}

// processForest is processTree for several roots at once, from one scan of
// /proc: every live root, each followed (breadth-first, after all the roots)
// by its descendants. Roots come first, in the order given, so that callers
// can tell them apart from the rest.
func processForest(roots []int) []procStat {
	var tree []procStat
	isRoot := make(map[int]bool, len(roots))
	for _, r := range roots {
		if isRoot[r] {
			continue
		}
		isRoot[r] = true
		if st, err := readProcStat(r); err == nil {
			tree = append(tree, st)
		}
	}
	if len(tree) == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return tree
	}
	children := make(map[int][]procStat)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || isRoot[pid] {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], st)
	}
	// Breadth-first; the length of tree bounds the walk, and a pid can only
	// be appended once because each has a single parent.
	for i := 0; i < len(tree) && i < 4096; i++ {
		tree = append(tree, children[tree[i].id.pid]...)
	}
	return tree
}

// alive reports whether the process id still names the same, running
// process. A zombie counts as gone: it has exited and only waits for a parent
// to reap it, which in a container without an init may never happen.
func alive(id procID) bool {
	st, err := readProcStat(id.pid)
	return err == nil && st.id.start == id.start && st.state != 'Z'
}

// treeSampler polls a target's process tree at a fixed interval while a
// scenario runs and keeps the peaks. A target made of several independent
// processes (the TCP baseline of the mesh scenario) is sampled as one forest:
// memory and CPU are summed over all of them, and there is no root process
// to report apart, so maxRoot stays 0.
type treeSampler struct {
	roots    []int
	interval time.Duration

	mu        sync.Mutex
	samples   int
	maxTotal  uint64 // bytes, sum over the tree
	maxRoot   uint64 // bytes, root alone
	maxProcs  int
	seen      map[procID]bool
	lastTree  []procStat
	stop      chan struct{}
	done      chan struct{}
	startCPU  map[procID]uint64
	cpuTicks  uint64
	cpuMarked bool
}

func newTreeSampler(interval time.Duration, roots ...int) *treeSampler {
	return &treeSampler{
		roots:    roots,
		interval: interval,
		seen:     make(map[procID]bool),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

func (s *treeSampler) start() {
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
}

// finish stops the sampling goroutine and takes one last sample.
func (s *treeSampler) finish() {
	close(s.stop)
	<-s.done
	s.sample()
}

func (s *treeSampler) sample() {
	tree := processForest(s.roots)
	if len(tree) == 0 {
		return
	}
	var total, rootRSS uint64
	n := 0
	for i, p := range tree {
		if p.state == 'Z' {
			continue
		}
		rss, err := readRSS(p.id.pid)
		if err != nil {
			continue
		}
		n++
		total += rss
		if i == 0 && len(s.roots) == 1 {
			rootRSS = rss
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	s.maxTotal = max(s.maxTotal, total)
	s.maxRoot = max(s.maxRoot, rootRSS)
	s.maxProcs = max(s.maxProcs, n)
	for _, p := range tree {
		s.seen[p.id] = true
	}
	s.lastTree = tree
}

// markCPU records the CPU time consumed so far by every process in the tree;
// cpuSince then reports what the tree used after the mark, and of that what
// the root processes used themselves. Processes that
// exit in between take their CPU time with them, so this is exact only for
// a tree that stays put, as in the hello scenario.
func (s *treeSampler) markCPU() {
	m := make(map[procID]uint64)
	for _, p := range processForest(s.roots) {
		m[p.id] = p.ticks
	}
	s.mu.Lock()
	s.startCPU = m
	s.cpuMarked = true
	s.mu.Unlock()
}

func (s *treeSampler) cpuSince() (tree, roots time.Duration) {
	procs := processForest(s.roots)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cpuMarked {
		return 0, 0
	}
	var ticks, rootTicks uint64
	for _, p := range procs {
		base := s.startCPU[p.id] // zero for a process born after the mark
		if p.ticks > base {
			ticks += p.ticks - base
			if slices.Contains(s.roots, p.id.pid) {
				rootTicks += p.ticks - base
			}
		}
	}
	toDur := func(t uint64) time.Duration { return time.Duration(t) * time.Second / clockTicks }
	return toDur(ticks), toDur(rootTicks)
}
