// Command wattbench compares wattd with plain Node.js baselines running the
// same apps, on the same machine, in the same run.
//
// Seven scenarios; the first four run against wattd and its baseline in turn (the order
// flips between rounds and repeats, so background noise falls on both). The
// baseline of the first three is a node:cluster primary ("cluster"), that of
// mesh two plain node processes talking over loopback TCP ("tcp"):
//
//   - startup: time from exec to the first HTTP 200, median of 5 starts,
//     plus how long a graceful SIGTERM stop takes;
//   - throughput: requests/s and p50/p99 latency of a closed-loop keep-alive
//     load, the RSS of the target's whole process tree and of its root
//     process, and the CPU used by the target and by the bench itself;
//   - crash: the same load while every worker exits one second after it
//     starts listening, counting refused connections and failed requests;
//   - mesh: the throughput measurement for an entry app that answers each
//     request by calling an internal app once (testdata/bench/mesh), one
//     worker each: under wattd the call goes over its mesh
//     (http://internal.plt.local), in the baseline over loopback TCP to
//     the internal app's port;
//   - metrics: the throughput measurement of wattd with the runtime's
//     metrics on, against wattd with them off (metricsbench.go);
//   - tracing: the same for tracing on (100% sampled, exported over
//     OTLP/HTTP to a sink in the bench) against off (tracing.go);
//   - reload (wattd alone): failed requests under the same keep-alive load
//     while wattd applies `ctl reload` (the app rolled), `ctl scale` up and
//     `ctl scale` down, each in its own window (see reload.go).
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
// The bench measures, it does not assert: targets that are missed are
// marked MISS in the table, and the exit status is non-zero only when a
// measurement could not be taken (1), the command line or the environment is
// wrong (2), or the run was interrupted (130).
//
// Usage, from the repository root:
//
//	go run ./cmd/wattbench -wattd ./bin/wattd -duration 10s -conns 50
//	go run ./cmd/wattbench -targets cluster -scenarios throughput -json out.json
//	go run ./cmd/wattbench -scenarios mesh -mesh-conns 32
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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

var (
	allTargets   = []string{"wattd", "cluster", "tcp"}
	allScenarios = []string{"throughput", "startup", "crash", "mesh", metricsScenario, "tracing", "reload"}
)

// scenarioTargets lists the targets that run each scenario: wattd and the
// baseline that scenario is compared with. A selected target that does not
// run a scenario is skipped for it.
var scenarioTargets = map[string][]string{
	"throughput": {"wattd", "cluster"},
	"startup":    {"wattd", "cluster"},
	"crash":      {"wattd", "cluster"},
	"mesh":       {"wattd", "tcp"},
	// wattd with metrics on against itself with them off (metricsbench.go).
	metricsScenario: {"wattd"},
	"tracing":       {"wattd"}, // wattd with tracing on against off, see tracing.go
	"reload":        {"wattd"},
}

// baselineOf is the target a scenario's wattd numbers are divided by.
func baselineOf(scenario string) string {
	if scenario == "mesh" {
		return "tcp"
	}
	return "cluster"
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

type config struct {
	wattd, node, fixtures string
	targets, scenarios    []string
	duration, warmup      time.Duration
	conns, rounds         int
	meshConns             int
	startRepeats          int
	crashJitter           int
	jsonOut               string
	keepLogs              bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("wattbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.wattd, "wattd", "./bin/wattd", "path of the wattd binary")
	fs.StringVar(&c.node, "node", "node", "node binary (looked up in PATH if it has no slash); wattd gets its directory first on PATH too")
	fs.StringVar(&c.fixtures, "fixtures", "testdata/bench", "directory holding the hello/, cluster/ and mesh/ fixtures")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured load duration per throughput/crash/mesh run")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each throughput/crash/mesh run")
	fs.IntVar(&c.conns, "conns", 50, "concurrent keep-alive connections")
	fs.IntVar(&c.meshConns, "mesh-conns", 0, "concurrent keep-alive connections in the mesh scenario (0: the value of -conns)")
	fs.IntVar(&c.rounds, "rounds", 1, "times to repeat every scenario; the summary takes medians (sums for error counts)")
	fs.IntVar(&c.startRepeats, "starts", 5, "starts per target per round in the startup scenario")
	fs.IntVar(&c.crashJitter, "crash-jitter", 0, "crash scenario: spread worker lifetimes over 1s +/- this percentage (0-90); at 0 workers started together die together")
	targets := fs.String("targets", strings.Join(allTargets, ","), "targets to run: wattd, cluster (baseline of throughput, startup, crash), tcp (baseline of mesh)")
	scenarios := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run: throughput, startup, crash, mesh, metrics, tracing, reload")
	fs.StringVar(&c.jsonOut, "json", "", "also write machine-readable results to this file")
	fs.BoolVar(&c.keepLogs, "keep-logs", false, "keep target logs even when every run went well")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if c.targets, err = parseList(*targets, allTargets); err != nil {
		return c, fmt.Errorf("-targets: %w", err)
	}
	if c.scenarios, err = parseList(*scenarios, allScenarios); err != nil {
		return c, fmt.Errorf("-scenarios: %w", err)
	}
	switch {
	case c.duration < 100*time.Millisecond || c.duration > time.Hour:
		return c, errors.New("-duration must be between 100ms and 1h")
	case c.warmup < 0 || c.warmup > 10*time.Minute:
		return c, errors.New("-warmup must be between 0 and 10m")
	case c.conns < 1 || c.conns > 10000:
		return c, errors.New("-conns must be between 1 and 10000")
	case c.meshConns < 0 || c.meshConns > 10000:
		return c, errors.New("-mesh-conns must be between 0 and 10000")
	case c.rounds < 1 || c.rounds > 100:
		return c, errors.New("-rounds must be between 1 and 100")
	case c.startRepeats < 1 || c.startRepeats > 100:
		return c, errors.New("-starts must be between 1 and 100")
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
		return c, fmt.Errorf("none of the targets %s runs any of the scenarios %s (mesh is run by wattd and tcp, the others by wattd and cluster)",
			strings.Join(c.targets, ","), strings.Join(c.scenarios, ","))
	}
	return c, nil
}

// parseList splits a comma list, checks every entry is known and returns
// them in canonical order (the order the bench runs them in).
func parseList(s string, known []string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
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
		startTimeout: 30 * time.Second,
		crashAfter:   time.Second,
		crashJitter:  cfg.crashJitter,
		reqTimeout:   2 * time.Second,
		sampleEvery:  500 * time.Millisecond,
		meshConns:    cfg.meshConns,
		mesh:         env.mesh,
	}

	fmt.Fprintf(stderr, "wattbench: %d CPUs, node %s, targets %s, scenarios %s, logs in %s\n",
		runtime.NumCPU(), env.nodeVersion, strings.Join(cfg.targets, ","),
		strings.Join(cfg.scenarios, ","), logDir)

	records := runAll(ctx, b, cfg, env.targets, stderr)
	interrupted := ctx.Err() != nil

	rows := summarize(records, cfg.targets)
	problems := collectProblems(records)
	printReport(stdout, cfg, env, records, rows, problems)
	printMetricsOverhead(stdout, records)

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
		if err := writeJSON(cfg, env, records, rows, problems); err != nil {
			fmt.Fprintln(stderr, "wattbench:", err)
			status = max(status, exitBenchFailed)
		}
	}
	return status
}

// runAll runs every scenario for every target, round after round. Within a
// round the target order alternates from one scenario (and one startup
// repeat) to the next, so that neither target always runs first after a
// quiet machine or right after the other's load.
func runAll(ctx context.Context, b *bench, cfg config, targets map[string]target, log io.Writer) []runRecord {
	var records []runRecord
	flip := 0
	ordered := func(names []string) []string {
		flip++
		out := slices.Clone(names)
		if flip%2 == 0 {
			slices.Reverse(out)
		}
		return out
	}
	note := func(r runRecord) {
		records = append(records, r)
		fmt.Fprintln(log, "  "+progressLine(r))
	}
	// Pause between runs so that the previous target's exit, its sockets in
	// TIME_WAIT and the CPU frequency do not spill into the next run.
	const settle = 500 * time.Millisecond
	for round := 1; round <= cfg.rounds && ctx.Err() == nil; round++ {
		for _, sc := range cfg.scenarios {
			if ctx.Err() != nil {
				break
			}
			names := targetsFor(sc, cfg.targets)
			if len(names) == 0 {
				if round == 1 {
					fmt.Fprintf(log, "wattbench: %s skipped: it is run by %s, none of them selected\n",
						sc, strings.Join(scenarioTargets[sc], " and "))
				}
				continue
			}
			fmt.Fprintf(log, "wattbench: round %d/%d, %s\n", round, cfg.rounds, sc)
			switch sc {
			case scaleScenario:
				note(b.runScale(ctx, targets["wattd"], round, cfg.rounds, log))
			case "startup":
				for rep := 1; rep <= cfg.startRepeats && ctx.Err() == nil; rep++ {
					for _, t := range ordered(names) {
						if ctx.Err() != nil {
							break
						}
						note(b.runStartup(ctx, targets[t], round, rep))
						sleepCtx(ctx, settle/5)
					}
				}
			case "throughput", "crash":
				for _, t := range ordered(names) {
					if ctx.Err() != nil {
						break
					}
					note(b.runLoadScenario(ctx, targets[t], round, sc == "crash"))
					sleepCtx(ctx, settle)
				}
			case "reload":
				for _, rec := range b.runReload(ctx, targets["wattd"], round) {
					note(rec)
				}
				sleepCtx(ctx, settle)
			case "mesh":
				for _, t := range ordered(names) {
					if ctx.Err() != nil {
						break
					}
					note(b.runMesh(ctx, t, round))
					sleepCtx(ctx, settle)
				}
			case metricsScenario:
				for _, on := range ordered([]string{"off", "on"}) {
					if ctx.Err() != nil {
						break
					}
					note(b.runMetrics(ctx, targets["wattd"], on == "on", round, log))
					sleepCtx(ctx, settle)
				}
			case "tracing":
				for _, v := range ordered(tracingVariants) {
					if ctx.Err() != nil {
						break
					}
					note(b.runTracing(ctx, targets["wattd"], v, round))
					sleepCtx(ctx, settle)
				}
			}
		}
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
	head := fmt.Sprintf("%-8s %-10s r%d", r.Target, r.Scenario, r.Round)
	if r.Repeat > 0 {
		head += fmt.Sprintf(" #%d", r.Repeat)
	}
	if r.Error != "" {
		return head + "  ERROR: " + r.Error
	}
	s := head + fmt.Sprintf("  first 200 %.1f ms, stop %.0f ms (%s)", r.FirstOKMs, r.StopMs, r.StopExit)
	if r.Load != nil {
		l := r.Load
		s += fmt.Sprintf("; %.0f req/s, p50 %.2f ms, p99 %.2f ms, failed %d, refused %d; tree %s",
			l.RPS, l.P50Ms, l.P99Ms, l.Failed, l.Refused, mib(r.MaxTreeRSS))
		if r.MaxRootRSS > 0 { // 0 for a target of several processes
			s += ", root " + mib(r.MaxRootRSS)
		}
		s += fmt.Sprintf("; cpu bench %.2f", r.BenchCores)
		if r.TargetCores > 0 {
			s += fmt.Sprintf(" target %.2f", r.TargetCores)
		}
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
	targets     map[string]target // wattd and cluster, on the hello fixture
	mesh        meshTargets
	nodePath    string
	nodeVersion string
	kernel      string
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
		if sc == "mesh" {
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
	// The tcp baseline runs the two apps of the mesh fixture as plain node
	// processes, on loopback like wattd (the fixture's watt.json says
	// 127.0.0.1).
	tcpApp := func(app string) target {
		dir := filepath.Join(meshDir, app)
		return target{
			name:    "tcp",
			dir:     dir,
			argv:    []string{nodePath, filepath.Join(dir, "index.js")},
			portEnv: "PORT",
			env:     []string{"BENCH_HOST=127.0.0.1"},
		}
	}
	e.mesh.entry = tcpApp("entry")
	e.mesh.internal = tcpApp("internal")

	e.targets = map[string]target{
		"cluster": {
			name:    "cluster",
			dir:     filepath.Dir(primary),
			argv:    []string{nodePath, primary},
			portEnv: "PORT",
			env:     []string{"WORKERS=2"}, // the same count as watt.json
		},
	}
	if slices.Contains(cfg.targets, "wattd") {
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
			argv:    []string{wattd, "start", hello},
			portEnv: "PLT_SERVER_PORT",
		}
		e.mesh.wattd = target{
			name:    "wattd",
			dir:     meshDir,
			argv:    []string{wattd, "start", meshDir},
			portEnv: "PLT_SERVER_PORT",
		}
	}
	e.base = baseEnv(nodePath)
	return e, nil
}

func writeJSON(cfg config, env benchEnv, records []runRecord, rows []row, problems []string) error {
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
			"rounds":           cfg.rounds,
			"starts":           cfg.startRepeats,
			"crash_jitter_pct": cfg.crashJitter,
		},
		"runs":     records,
		"summary":  rows,
		"tracing":  summarizeTracing(records),
		"problems": problems,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644)
}
