package main

// Paired runs: the hello, mesh, metrics and tracing scenarios compare
// targets (node:cluster, plain reusePort processes, wattd; the mesh
// against two processes over loopback TCP) or two variants of the same
// wattd on the same app, and the differences they look for (a few
// percent) are smaller than how far this kind of machine drifts between two
// runs a few seconds apart (the same target's requests/s moved 45k..68k
// from one round to the next). So a round starts every side, one after the
// other and each on its own port, keeps them all running, and moves the
// load between them in short slices (for two sides ABBA, for three
// ABCCBA), the run's duration each: drift then weighs on all alike, and a
// round's ratio is that of the sums. The idle
// sides serve nothing meanwhile; what a side does beside the load (the
// metrics scrape) runs during its own slices only, so that it costs the
// others nothing.

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"time"
)

// pairWarmup is the least warm-up load of each side, unless -warmup is 0.
const pairWarmup = 2 * time.Second

// pairSide is one side of a side-by-side round: a target, or a variant of
// wattd.
type pairSide struct {
	rec  runRecord
	t    target
	port int
	ps   []*proc
	// during, when set, runs beside each slice of load on this side
	// (and its warm-up) until ctx ends.
	during func(ctx context.Context)
	// start, when set, starts the side on port instead of its target
	// (the mesh baselines are two processes wired together).
	start func(ctx context.Context, port int) ([]*proc, error)
	// conns is the side's load connections; 0: -conns.
	conns int
	// closeConn: a new connection for every request.
	closeConn bool

	sampler  *treeSampler
	stats    loadStats
	cpu      time.Duration // the target's, during its slices
	rootCPU  time.Duration // of that, its root process's (wattd's own)
	benchCPU time.Duration // the bench's, idem
}

// loadConns is how many connections load the side.
func (s *pairSide) loadConns(b *bench) int {
	if s.conns > 0 {
		return s.conns
	}
	return b.conns
}

// sideRecords are the sides' records, in their order.
func sideRecords(sides []*pairSide) []runRecord {
	out := make([]runRecord, len(sides))
	for i, s := range sides {
		out[i] = s.rec
	}
	return out
}

// failSides marks every side failed with err, when a round could not be
// set up, and returns their records.
func failSides(ctx context.Context, sides []*pairSide, err error) []runRecord {
	for _, s := range sides {
		s.rec.fail(ctx, err)
	}
	return sideRecords(sides)
}

// pairSlices is how many slices each side gets for a measured duration d
// cut into slices of about slice (-slice).
func pairSlices(d, slice time.Duration) int {
	if slice <= 0 {
		return 1
	}
	return max(1, int(math.Round(float64(d)/float64(slice))))
}

// sideOrder is the side that gets slice i of n sides, side first taking
// the first: the sides in turn, then in reverse order, and so on (for two,
// ABBAABBA...), so that each side is as often before as after each other.
func sideOrder(i, n, first int) int {
	pos := i % n
	if (i/n)%2 == 1 {
		pos = n - 1 - pos
	}
	return (pos + first) % n
}

// measurePair starts every side, waits for each to answer, warms each up
// and runs the slices, sides[first] taking the first one. It fills the
// records and stops the targets.
func (b *bench) measurePair(ctx context.Context, sides []*pairSide, first int) {
	stopAll := func() {
		for _, s := range sides {
			if s.ps != nil {
				s.rec.fillStop(stopAllOf(s.ps))
			}
		}
	}
	failAll := func(err error, ps ...*proc) {
		stopAll()
		for _, s := range sides {
			if s.rec.Error == "" {
				s.rec.fail(ctx, err, ps...)
			}
		}
	}
	// One after the other, so that each start is timed on its own.
	for _, s := range sides {
		port, err := freePort()
		if err != nil {
			failAll(err)
			return
		}
		s.port, s.rec.Port = port, port
		var ps []*proc
		if s.start != nil {
			ps, err = s.start(ctx, port)
		} else {
			ps, err = b.startAll(ctx, s.t, port, nil, fmt.Sprintf("%s-%s-r%d", s.t.name, s.rec.Scenario, s.rec.Round))
		}
		if err != nil {
			failAll(err)
			return
		}
		s.ps = ps
		s.rec.Log = ps[0].logPath
		d, err := waitFirst200(ctx, s.ps, loopback(s.port), b.startTimeout)
		if err != nil {
			failAll(fmt.Errorf("%s: %w", s.t.name, err), s.ps...)
			return
		}
		s.rec.FirstOKMs = ms(d)
	}
	for _, s := range sides {
		pids := make([]int, len(s.ps))
		for i, p := range s.ps {
			pids[i] = p.pid
		}
		s.sampler = newTreeSampler(b.sampleEvery, pids...)
		s.sampler.start()
	}
	load := func(s *pairSide, d time.Duration) *loadStats {
		opts := loadOpts{addr: loopback(s.port), conns: s.loadConns(b), duration: d, reqTimeout: b.reqTimeout, dialTimeout: b.reqTimeout, closeConn: s.closeConn}
		if s.during == nil {
			return runLoad(ctx, opts)
		}
		dctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.during(dctx)
		}()
		st := runLoad(ctx, opts)
		cancel()
		<-done
		return st
	}
	if b.warmup > 0 {
		// V8 keeps optimising the hot path for a few seconds of load:
		// after the usual 0.5 s, the first slice of each side ran 10-25%
		// slower than its next ones.
		w := max(b.warmup, pairWarmup)
		for i := range sides {
			load(sides[sideOrder(i, len(sides), first)], w)
		}
	}
	n := pairSlices(b.duration, b.slice)
	slice := b.duration / time.Duration(n)
	for i := range len(sides) * n {
		if ctx.Err() != nil {
			break
		}
		s := sides[sideOrder(i, len(sides), first)]
		s.sampler.markCPU()
		cpu0 := selfCPU()
		st := load(s, slice)
		s.benchCPU += selfCPU() - cpu0
		tree, root := s.sampler.cpuSince()
		s.cpu += tree
		s.rootCPU += root
		s.stats.add(st)
		s.stats.Elapsed += st.Elapsed
		s.rec.SliceRPS = append(s.rec.SliceRPS, st.rate())
	}
	if sc := sides[0].rec.Scenario; len(sides) > 1 && b.split != nil && slices.Contains(b.sameTimeIn, sc) && ctx.Err() == nil {
		// Without it the round still has its turns: a target whose
		// threads the bench may not move (another user's) loses only this.
		if err := b.sameTime(ctx, sides, b.duration, load); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "wattbench: %s round %d: no same-time reading: %v\n", sc, sides[0].rec.Round, err)
		}
	}
	for _, s := range sides {
		s.sampler.finish()
	}
	for _, s := range sides {
		for _, p := range s.ps {
			select {
			case <-p.exited:
				failAll(fmt.Errorf("%s exited during the load (%s)", s.t.name, exitString(p)), p)
				return
			default:
			}
		}
	}
	if ctx.Err() != nil {
		failAll(ctx.Err())
		return
	}
	for _, s := range sides {
		s.rec.Load = summarizeLoad(&s.stats, s.loadConns(b))
		if secs := s.stats.Elapsed.Seconds(); secs > 0 {
			s.rec.BenchCores = s.benchCPU.Seconds() / secs
			s.rec.TargetCores = s.cpu.Seconds() / secs
			s.rec.RootCores = s.rootCPU.Seconds() / secs
		}
		s.sampler.mu.Lock()
		s.rec.MaxTreeRSS = s.sampler.maxTotal
		s.rec.MaxRootRSS = s.sampler.maxRoot
		s.rec.MaxProcs = s.sampler.maxProcs
		s.rec.PidsSeen = len(s.sampler.seen)
		s.rec.RSSSamples = s.sampler.samples
		s.sampler.mu.Unlock()
	}
	stopAll()
}
