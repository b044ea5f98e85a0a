package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runRecord is one measurement: one target, one scenario, one repeat. The
// JSON output is a list of these, so field names are part of its format.
type runRecord struct {
	Target   string `json:"target"`
	Scenario string `json:"scenario"`
	Round    int    `json:"round"`
	Repeat   int    `json:"repeat,omitempty"`
	Port     int    `json:"port,omitempty"`
	Log      string `json:"log,omitempty"`
	// Error is set when the run produced no measurement; such records are
	// left out of the summary.
	Error       string `json:"error,omitempty"`
	Interrupted bool   `json:"interrupted,omitempty"`

	FirstOKMs float64 `json:"first_200_ms,omitempty"`
	// SliceRPS are the requests/s of each slice of a side-by-side run
	// (pair.go), in the order they ran.
	SliceRPS []float64 `json:"slice_rps,omitempty"`

	StopMs     float64 `json:"stop_ms,omitempty"`
	StopExit   string  `json:"stop_exit,omitempty"`
	ForcedKill bool    `json:"forced_kill,omitempty"`
	Orphans    int     `json:"orphans,omitempty"`

	Load *loadSummary `json:"load,omitempty"`
	// OpMs is how long the operation a scenario applies under load took
	// (rolling: the ctl restart, from exec to its exit).
	OpMs float64 `json:"op_ms,omitempty"`
	// Replace is the crash scenario's time from a worker's death to its
	// replacement listening (events.go).
	Replace *replaceSummary `json:"replace,omitempty"`
	// Idle is the rss scenario's resident memory at rest (rss.go).
	Idle *idleRSS `json:"idle_rss,omitempty"`
	// Promote is the promote scenario's latencies (promote.go).
	Promote *promoteSummary `json:"promote,omitempty"`

	MaxTreeRSS uint64 `json:"max_tree_rss_bytes,omitempty"`
	MaxRootRSS uint64 `json:"max_root_rss_bytes,omitempty"`
	MaxProcs   int    `json:"max_procs,omitempty"`
	PidsSeen   int    `json:"pids_seen,omitempty"`
	RSSSamples int    `json:"rss_samples,omitempty"`
	// SameTimeRPS is the side's requests/s while every side of its round
	// took load at once (sametime.go); SameTimeCPUs the Cpus_allowed_list
	// of the sides' threads meanwhile, every distinct one.
	SameTimeRPS  float64 `json:"same_time_rps,omitempty"`
	SameTimeCPUs string  `json:"same_time_cpus,omitempty"`
	// CPU use during the measured load phase, in cores (CPU seconds per
	// wall second): the bench process itself and the target's tree.
	BenchCores  float64 `json:"bench_cpu_cores,omitempty"`
	TargetCores float64 `json:"target_cpu_cores,omitempty"`
	// RootCores is the part of TargetCores that the root process used
	// (wattd, the cluster primary), in the side-by-side scenarios.
	RootCores float64 `json:"root_cpu_cores,omitempty"`
}

type loadSummary struct {
	Requests          uint64  `json:"requests"`
	Seconds           float64 `json:"seconds"`
	RPS               float64 `json:"requests_per_s"`
	P50Ms             float64 `json:"p50_ms"`
	P99Ms             float64 `json:"p99_ms"`
	MeanMs            float64 `json:"mean_ms"`
	MaxMs             float64 `json:"max_ms"`
	Dials             uint64  `json:"dials"`
	Refused           uint64  `json:"refused"`
	RefusedStreaks    uint64  `json:"refused_streaks"`
	RefusedMsPerConn  float64 `json:"refused_ms_per_conn"`
	DialErr           uint64  `json:"dial_errors"`
	Failed            uint64  `json:"failed"`
	Reset             uint64  `json:"reset"`
	Timeout           uint64  `json:"timeout"`
	BadStatus         uint64  `json:"bad_status"`
	Protocol          uint64  `json:"protocol"`
	Other             uint64  `json:"other"`
	FailedFresh       uint64  `json:"failed_on_fresh_conn"`
	EOFBeforeResponse uint64  `json:"eof_before_response"`
	// Paced load (crash-paced): the rate asked for, and the requests sent
	// more than an interval after they were due.
	PacedRPS float64 `json:"paced_rps,omitempty"`
	Late     uint64  `json:"late,omitempty"`
}

func summarizeLoad(s *loadStats, conns int) *loadSummary {
	return &loadSummary{
		RefusedStreaks:    s.RefusedStreaks,
		RefusedMsPerConn:  ms(s.RefusedTime) / float64(max(conns, 1)),
		Requests:          s.OK,
		Seconds:           s.Elapsed.Seconds(),
		RPS:               s.rate(),
		P50Ms:             ms(s.Hist.percentile(0.50)),
		P99Ms:             ms(s.Hist.percentile(0.99)),
		MeanMs:            ms(s.Hist.mean()),
		MaxMs:             ms(time.Duration(s.Hist.max)),
		Dials:             s.Dials,
		Refused:           s.Refused,
		DialErr:           s.DialErr,
		Failed:            s.failed(),
		Reset:             s.Reset,
		Timeout:           s.Timeout,
		BadStatus:         s.BadStatus,
		Protocol:          s.Protocol,
		Other:             s.Other,
		FailedFresh:       s.FailedFresh,
		EOFBeforeResponse: s.EOFBeforeResponse,
		Late:              s.Late,
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// bench holds what every scenario run needs.
type bench struct {
	env          []string // base environment of targets
	logDir       string
	conns        int
	duration     time.Duration
	warmup       time.Duration
	slice        time.Duration // see pair.go
	startTimeout time.Duration
	crashAfter   time.Duration
	crashJitter  int     // percent, see EXIT_JITTER_PCT in the fixture app
	crashClock   bool    // see EXIT_EVERY_MS in the fixture app
	crashRate    float64 // crash-paced: requests a second
	reqTimeout   time.Duration
	sampleEvery  time.Duration
	meshConns    int // connections of the mesh scenario's load
	mesh         meshTargets
	workers      int    // the hello fixture's worker count
	nodeVersion  string // of the -node binary, as `node --version` prints it
	// sameTimeIn are the scenarios that take the same-time reading, with
	// split (sametime.go); split is nil on a single CPU.
	sameTimeIn []string
	split      *cpuSplit
}

// crashEvery is how often a worker dies in the crash scenario.
const crashEvery = 500 * time.Millisecond

const (
	probeEvery       = 5 * time.Millisecond
	probeDialTimeout = 100 * time.Millisecond
	// A probe that connected waits this long for its response: a server
	// that accepts before its app is ready (wattd's sockets outlive the
	// workers) queues the request rather than refusing it.
	probeRespTimeout = 2 * time.Second
	// Probes that connected but still wait are not abandoned; new ones keep
	// starting every probeEvery up to this many in flight, so a queued
	// probe neither delays detection nor multiplies without bound.
	maxProbes = 4
)

func (b *bench) start(ctx context.Context, t target, port int, extra []string, logName string) (*proc, error) {
	env := append([]string(nil), b.env...)
	env = append(env, t.env...)
	env = append(env, fmt.Sprintf("%s=%d", t.portEnv, port))
	env = append(env, extra...)
	return startProc(ctx, t, env, filepath.Join(b.logDir, logName))
}

// waitFirst200 returns the time from the exec of ps[0] to the first 200
// response on addr. A target made of several processes is started in one go,
// ps[0] first, and is not serving if any of them has exited.
func waitFirst200(ctx context.Context, ps []*proc, addr string, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	var wg sync.WaitGroup
	defer func() {
		cancel() // first, so that in-flight probes and watchers give up
		wg.Wait()
	}()
	got := make(chan time.Time, 1)
	exited := make(chan *proc, len(ps))
	for _, p := range ps {
		wg.Go(func() {
			select {
			case <-p.exited:
				exited <- p
			case <-ctx.Done():
			}
		})
	}
	var inflight atomic.Int32
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		if inflight.Load() < maxProbes {
			inflight.Add(1)
			wg.Go(func() {
				defer inflight.Add(-1)
				if probe(ctx, addr, probeDialTimeout, probeRespTimeout) {
					select {
					case got <- time.Now():
					default:
					}
				}
			})
		}
		select {
		case t := <-got:
			return t.Sub(ps[0].started), nil
		case p := <-exited:
			who := ""
			if len(ps) > 1 {
				who = filepath.Base(p.logPath) + " "
			}
			return 0, fmt.Errorf("%sexited before serving (%s)", who, exitString(p))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return 0, fmt.Errorf("no 200 within %s", limit)
			}
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
}

func (r *runRecord) fillStop(s stopResult) {
	r.StopMs = ms(s.took)
	r.StopExit = s.exit
	r.ForcedKill = s.forced
	r.Orphans = s.orphans
}

// stopAllOf stops the processes of one target in parallel and merges the
// results: the longest stop, any forced kill, every orphan, and the exit
// status if they all agree (else each process's, named by its log).
func stopAllOf(ps []*proc) stopResult {
	if len(ps) == 1 {
		return ps[0].stop()
	}
	res := make([]stopResult, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { res[i] = p.stop() })
	}
	wg.Wait()
	var out stopResult
	same := true
	for _, r := range res {
		out.took = max(out.took, r.took)
		out.forced = out.forced || r.forced
		out.orphans += r.orphans
		same = same && r.exit == res[0].exit
	}
	if same {
		out.exit = res[0].exit
	} else {
		parts := make([]string, len(ps))
		for i, p := range ps {
			parts[i] = strings.TrimSuffix(filepath.Base(p.logPath), ".log") + ": " + res[i].exit
		}
		out.exit = strings.Join(parts, ", ")
	}
	return out
}

// fail records why a run produced nothing, with the log tail of each of the
// target's processes.
func (r *runRecord) fail(ctx context.Context, err error, ps ...*proc) {
	if ctx.Err() != nil {
		r.Interrupted = true
		r.Error = "interrupted"
		return
	}
	r.Error = err.Error()
	for _, p := range ps {
		if p == nil {
			continue
		}
		if tail := p.logTail(30); tail != "" {
			r.Error += "\n--- tail of " + p.logPath + " ---\n" + tail
		}
	}
}

// runStartup measures exec to first 200, then the graceful stop.
func (b *bench) runStartup(ctx context.Context, t target, round, rep int) runRecord {
	rec := runRecord{Target: t.name, Scenario: scStart, Round: round, Repeat: rep}
	port, err := freePort()
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	rec.Port = port
	logName := fmt.Sprintf("%s-start-r%d-%d.log", t.name, round, rep)
	p, err := b.start(ctx, t, port, nil, logName)
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	rec.Log = p.logPath
	d, err := waitFirst200(ctx, []*proc{p}, loopback(port), b.startTimeout)
	if err != nil {
		rec.fillStop(p.stop())
		rec.fail(ctx, err, p)
		return rec
	}
	rec.FirstOKMs = ms(d)
	rec.fillStop(p.stop())
	return rec
}

// runHello is one round of the hello scenario (sc), or of connect: the
// closed loop on the hello app under every target, side by side (pair.go),
// ts[first] taking the first slice.
func (b *bench) runHello(ctx context.Context, sc string, ts []target, round, first int) []runRecord {
	sides := make([]*pairSide, len(ts))
	// A target that cannot run here (the reusePort baseline on an old
	// node) fails alone; the others are measured.
	var run []*pairSide
	for i, t := range ts {
		s := &pairSide{rec: runRecord{Target: t.name, Scenario: sc, Round: round}, closeConn: sc == scConnect}
		sides[i] = s
		var err error
		if s.t, err = b.prepare(t); err != nil {
			s.rec.fail(ctx, err)
			continue
		}
		run = append(run, s)
	}
	if len(run) > 0 {
		b.measurePair(ctx, run, first%len(run))
	}
	return sideRecords(sides)
}

// runCrash is one run of the crash scenario: the same loop while every
// worker exits b.crashAfter (+/- the jitter) after it starts listening, so
// that with N workers one dies about every crashEvery (less often the
// slower the replacements), or, with -crash-clock, while one worker of the
// app exits at each crashEvery tick of the clock. Workers note their listen
// and their exit in an events file, from which the time each death took to
// be replaced is read.
//
// The crash-paced scenario (sc) is the same with the load paced at
// b.crashRate requests a second instead of a closed loop.
func (b *bench) runCrash(ctx context.Context, sc string, t target, round int) runRecord {
	events := filepath.Join(b.logDir, fmt.Sprintf("%s-%s-r%d.events", t.name, sc, round))
	extra := []string{
		fmt.Sprintf("EXIT_AFTER_MS=%d", b.crashAfter.Milliseconds()),
		fmt.Sprintf("EXIT_JITTER_PCT=%d", b.crashJitter),
		"BENCH_EVENTS=" + events,
	}
	if b.crashClock {
		ticks := filepath.Join(b.logDir, fmt.Sprintf("%s-%s-r%d.ticks", t.name, sc, round))
		if err := os.MkdirAll(ticks, 0o755); err != nil {
			rec := runRecord{Target: t.name, Scenario: sc, Round: round}
			rec.fail(ctx, err)
			return rec
		}
		extra = []string{
			fmt.Sprintf("EXIT_EVERY_MS=%d", crashEvery.Milliseconds()),
			"EXIT_TICKS_DIR=" + ticks,
			"BENCH_EVENTS=" + events,
		}
	}
	rec := b.runLoadScenario(ctx, sc, t, round, extra)
	if rec.Error != "" {
		return rec
	}
	f, err := os.Open(events)
	if err != nil {
		rec.fail(ctx, fmt.Errorf("no worker noted an event: %w", err))
		return rec
	}
	defer f.Close()
	evs, err := parseEvents(f)
	if err != nil {
		rec.fail(ctx, fmt.Errorf("%s: %w", events, err))
		return rec
	}
	rec.Replace = summarizeReplace(evs)
	return rec
}

// runLoadScenario starts t, runs the measured closed loop on it and stops
// it; extra is added to the target's environment.
func (b *bench) runLoadScenario(ctx context.Context, scenario string, t target, round int, extra []string) runRecord {
	rec := runRecord{Target: t.name, Scenario: scenario, Round: round}
	t, err := b.prepare(t)
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	port, err := freePort()
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	rec.Port = port
	ps, err := b.startAll(ctx, t, port, extra, fmt.Sprintf("%s-%s-r%d", t.name, scenario, round))
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	rec.Log = ps[0].logPath
	b.measure(ctx, &rec, ps, port, scenario == scCrash || scenario == scCrashPaced)
	return rec
}

// prepare checks that t can run and returns it ready to start: a wattd
// target with standby workers gets its own copy of the fixture's project,
// written once per bench next to the logs.
func (b *bench) prepare(t target) (target, error) {
	if t.name == "reuseport" && !nodeAtLeast(b.nodeVersion, 22, 12) {
		return t, fmt.Errorf("the reuseport baseline needs node >= 22.12 for listen({reusePort: true}); node is %s (set -node)", b.nodeVersion)
	}
	if t.standby == 0 {
		return t, nil
	}
	dir := filepath.Join(b.logDir, t.name)
	if _, err := os.Stat(filepath.Join(dir, "watt.json")); err != nil {
		n := t.standby
		if err := projectCopy(t.dir, dir, func(_, app map[string]any) { app["standby"] = n }); err != nil {
			return t, err
		}
	}
	t.dir = dir
	t.argv = wattdStart(t.argv[0], dir)
	return t, nil
}

// standbyHonoured fails a wattd target with standby workers whose wattd
// warned, as it does for a key it does not know, that it ignores the
// standby key: its numbers would be those of wattd without standby under
// another name.
func standbyHonoured(p *proc) error {
	if p.t.standby == 0 {
		return nil
	}
	f, err := os.Open(p.logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "standby") && strings.Contains(line, "unknown key") {
			return fmt.Errorf("wattd does not know the standby key: %s", logMessage(line))
		}
	}
	return sc.Err()
}

// logMessage is the message of a JSON log line, or the line itself.
func logMessage(line string) string {
	var l struct {
		Msg string `json:"msg"`
	}
	if json.Unmarshal([]byte(line), &l) == nil && l.Msg != "" {
		return l.Msg
	}
	return line
}

// nodeAtLeast reports whether a `node --version` string is major.minor or
// later.
func nodeAtLeast(version string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(strings.TrimPrefix(version, "v"), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// startAll starts the t.count processes of t, all on port; logBase names
// their logs. If one fails to start, those already started are stopped.
func (b *bench) startAll(ctx context.Context, t target, port int, extra []string, logBase string) ([]*proc, error) {
	if t.count <= 1 {
		p, err := b.start(ctx, t, port, extra, logBase+".log")
		if err != nil {
			return nil, err
		}
		return []*proc{p}, nil
	}
	var ps []*proc
	for i := range t.count {
		p, err := b.start(ctx, t, port, extra, fmt.Sprintf("%s-%d.log", logBase, i+1))
		if err != nil {
			stopAllOf(ps)
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// meshTargets says how each target runs the mesh fixture (an entry app
// that calls an internal app once per request).
type meshTargets struct {
	// wattd runs the fixture's watt.json: entry and internal, one worker
	// each, the hop going over wattd's mesh (internal.plt.local).
	wattd target
	// entry (one per tcp baseline, by name) and internal are the two apps
	// run as plain node processes, the hop going over loopback TCP.
	entry    map[string]target
	internal target
}

// runMesh is one round of the mesh scenario: every target of names
// started on its own port and loaded side by side (pair.go), with
// -mesh-conns connections, side first taking the first slice.
func (b *bench) runMesh(ctx context.Context, names []string, round, first int) []runRecord {
	sides := make([]*pairSide, len(names))
	var run []*pairSide
	for i, name := range names {
		s := &pairSide{rec: runRecord{Target: name, Scenario: scMesh, Round: round}, conns: b.meshConns}
		s.t.name = name
		sides[i] = s
		switch name {
		case "wattd":
			// Started as any side: one process, log wattd-mesh-rN.log.
			s.t = b.mesh.wattd
			s.t.name = name
		case "tcp-fetch", "tcp-agent":
			s.start = func(ctx context.Context, port int) ([]*proc, error) {
				return b.startMeshBaseline(ctx, name, port, round)
			}
		default:
			s.rec.fail(ctx, fmt.Errorf("target %q does not run the mesh scenario", name))
			continue
		}
		run = append(run, s)
	}
	if len(run) > 0 {
		b.measurePair(ctx, run, first%len(run))
	}
	return sideRecords(sides)
}

// startMeshBaseline starts a loopback TCP baseline of the mesh scenario:
// the entry app on port and the internal app on a port of its own. Both
// are started at once, as wattd starts both apps; the entry answers 502
// until the internal app listens, and the first 200 has gone through the
// hop.
func (b *bench) startMeshBaseline(ctx context.Context, name string, port, round int) ([]*proc, error) {
	iport, err := freePort()
	if err == nil && iport == port {
		iport, err = freePort()
	}
	if err != nil {
		return nil, err
	}
	entry, err := b.start(ctx, b.mesh.entry[name], port,
		[]string{fmt.Sprintf("INTERNAL_URL=http://127.0.0.1:%d", iport)},
		fmt.Sprintf("%s-mesh-r%d-entry.log", name, round))
	if err != nil {
		return nil, err
	}
	internal, err := b.start(ctx, b.mesh.internal, iport, nil, fmt.Sprintf("%s-mesh-r%d-internal.log", name, round))
	if err != nil {
		stopAllOf([]*proc{entry})
		return nil, err
	}
	return []*proc{entry, internal}, nil
}

// measure waits for the target (its processes ps, serving on port) to answer
// 200, runs the warm-up and then the measured closed loop with -conns
// connections while sampling the target's process trees, and stops the
// target. crash says the target's workers are meant to die during the load.
func (b *bench) measure(ctx context.Context, rec *runRecord, ps []*proc, port int, crash bool) {
	d, err := waitFirst200(ctx, ps, loopback(port), b.startTimeout)
	if err == nil {
		err = standbyHonoured(ps[0])
	}
	if err != nil {
		rec.fillStop(stopAllOf(ps))
		rec.fail(ctx, err, ps...)
		return
	}
	rec.FirstOKMs = ms(d)

	pids := make([]int, len(ps))
	for i, p := range ps {
		pids[i] = p.pid
	}
	sampler := newTreeSampler(b.sampleEvery, pids...)
	sampler.start()
	opts := loadOpts{
		addr:        loopback(port),
		conns:       b.conns,
		reqTimeout:  b.reqTimeout,
		dialTimeout: b.reqTimeout,
	}
	if b.warmup > 0 {
		// Warm-up traffic lets V8 compile the hot path and the kernel
		// settle its socket buffers; its numbers are thrown away.
		opts.duration = b.warmup
		runLoad(ctx, opts)
	}
	opts.duration = b.duration
	if rec.Scenario == scCrashPaced {
		opts.rate = b.crashRate
	}
	sampler.markCPU()
	cpu0 := selfCPU()
	stats := runLoad(ctx, opts)
	benchCPU := selfCPU() - cpu0
	targetCPU, _ := sampler.cpuSince()
	sampler.finish()

	for _, p := range ps {
		select {
		case <-p.exited:
			// The root itself must survive, crash scenario included:
			// only workers are meant to die.
			rec.fillStop(stopAllOf(ps))
			rec.fail(ctx, fmt.Errorf("target exited during the load (%s)", exitString(p)), ps...)
			return
		default:
		}
	}
	if ctx.Err() != nil {
		rec.fillStop(stopAllOf(ps))
		rec.fail(ctx, ctx.Err(), ps...)
		return
	}

	rec.Load = summarizeLoad(stats, b.conns)
	rec.Load.PacedRPS = opts.rate
	if secs := stats.Elapsed.Seconds(); secs > 0 {
		rec.BenchCores = benchCPU.Seconds() / secs
		// Workers that exit take their CPU time with them, so the tree's
		// CPU is only meaningful when the tree stays put.
		if !crash {
			rec.TargetCores = targetCPU.Seconds() / secs
		}
	}
	sampler.mu.Lock()
	rec.MaxTreeRSS = sampler.maxTotal
	rec.MaxRootRSS = sampler.maxRoot
	rec.MaxProcs = sampler.maxProcs
	rec.PidsSeen = len(sampler.seen)
	rec.RSSSamples = sampler.samples
	sampler.mu.Unlock()

	rec.fillStop(stopAllOf(ps))
}

// selfCPU is the user+system CPU time of the bench process so far: the load
// generator, the samplers and everything else the runner does.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
