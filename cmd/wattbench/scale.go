package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The scale scenario (wattd alone) checks that supervision stays cheap when
// wattd runs many workers. Its fixture, testdata/bench/scale, has 20
// applications of 10 workers each running one tiny Node app; its health
// checks begin one second after a worker is ready rather than Watt's 30,
// so that the idle windows below see them at their steady rate. One run
// measures:
//
//   - start: exec of wattd to every worker ready, as `wattd ctl status
//     --json` counts them (polled every scalePollEvery);
//   - wattd's own RSS (VmRSS), open descriptors and OS threads once every
//     worker is ready (the RSS of the whole tree goes to the JSON record);
//   - the latency of `wattd ctl ps`, the whole command as an operator runs
//     it (exec, admin request, every worker's status), over scalePsCalls
//     calls: median and max;
//   - wattd's own CPU while idle: the utime+stime of its pid over
//     scaleIdleWindows windows of scaleIdleWindow after ready, in % of one
//     core; the verdict is on the median window, goal <= scaleIdleGoal;
//   - the stop: SIGTERM to exit (status and time), processes of the tree
//     left behind, and the runtime's cgroups, which must all be removed.

const (
	scaleScenario    = "scale"
	scaleIdleGoal    = 1.0 // % of one core
	scaleIdleWindows = 6
	scaleIdleWindow  = 10 * time.Second
	scaleSettle      = 5 * time.Second // after ready, before the idle windows
	scalePsCalls     = 20
	scalePollEvery   = 250 * time.Millisecond
	// 200 Node processes starting at once on a small machine take a while;
	// the bound only keeps a stuck run from hanging the bench.
	scaleStartTimeout = 10 * time.Minute
	// Longer than wattd's own shutdown deadline (gracefulShutdown.runtime,
	// 10 s by default): a stop that needs it has failed the check anyway.
	scaleStopGrace = 30 * time.Second
)

func init() {
	allScenarios = append(allScenarios, scaleScenario)
	scenarioTargets[scaleScenario] = []string{"wattd"}
	defaultRounds[scaleScenario] = 1
	// Its figures and verdict are printed by the run itself (runScale);
	// the section keeps the runs in the report and their common checks.
	specs[scaleScenario] = spec{
		about:   "200 workers over 20 applications: start, wattd's RSS, fds and idle CPU, ctl ps latency, a clean stop",
		runners: []string{"wattd"},
	}
}

// scaleResult is one run's figures beyond those a runRecord holds.
type scaleResult struct {
	workers       int
	readyMs       float64
	firstReadyMs  float64 // wattd's exec to the first worker ready
	startMedianMs float64 // one worker's start, spawn to ready: median over the workers
	startMaxMs    float64 // and the longest
	rss           uint64  // wattd's VmRSS once ready, bytes
	fds, threads  int
	psMedianMs    float64
	psMaxMs       float64
	idlePct       []float64 // per window, % of one core
	cgroupsBefore int       // cgroup directories of the runtime while running
	cgroupsLeft   []string  // those still there after the stop
}

// scaleResults collects the runs of every round for the summary.
var scaleResults []scaleResult

// runScale runs the scale fixture once; on the last round it also prints
// the summary over every round.
func (b *bench) runScale(ctx context.Context, wattd target, round, rounds int, log io.Writer) runRecord {
	rec := runRecord{Target: wattd.name, Scenario: scaleScenario, Round: round}
	res, err := b.scaleOnce(ctx, wattd, round, &rec)
	if err != nil {
		rec.fail(ctx, err)
	} else {
		scaleResults = append(scaleResults, res)
		fmt.Fprintf(log, "  scale r%d: %d workers ready in %.1f s (first at %.2f s; one worker's start median %.0f ms, max %.0f ms); wattd RSS %s, %d fds, %d threads; ctl ps median %.0f ms, max %.0f ms; idle CPU %s%% of one core; cgroups %d, left %d\n",
			round, res.workers, res.readyMs/1000, res.firstReadyMs/1000, res.startMedianMs, res.startMaxMs, mib(res.rss), res.fds, res.threads, res.psMedianMs, res.psMaxMs,
			joinPct(res.idlePct), res.cgroupsBefore, len(res.cgroupsLeft))
	}
	if round == rounds {
		printScale(log, scaleResults)
	}
	return rec
}

func (b *bench) scaleOnce(ctx context.Context, wattd target, round int, rec *runRecord) (scaleResult, error) {
	var res scaleResult
	t := wattd
	t.name = "wattd"
	t.dir = filepath.Join(filepath.Dir(wattd.dir), "scale")
	t.argv = []string{wattd.argv[0], "start", t.dir}
	if _, err := os.Stat(filepath.Join(t.dir, "watt.json")); err != nil {
		return res, fmt.Errorf("scale fixture: %w", err)
	}
	// A runtime directory of the run's own, short enough for the Unix
	// socket paths under it, tells `ctl` which wattd to ask.
	rtDir, err := os.MkdirTemp("", "wbs")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(rtDir)
	rtEnv := "WATTD_RUNTIME_DIR=" + rtDir
	port, err := freePort()
	if err != nil {
		return res, err
	}
	rec.Port = port
	p, err := b.start(ctx, t, port, []string{rtEnv}, fmt.Sprintf("wattd-scale-r%d.log", round))
	if err != nil {
		return res, err
	}
	rec.Log = p.logPath
	defer p.stop() // a no-op once the stop below has run

	ctl := func(ctx context.Context, args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, wattd.argv[0], append([]string{"ctl"}, args...)...)
		c.Dir = t.dir
		c.Env = append(append([]string(nil), b.env...), rtEnv)
		return c
	}

	// Start: poll until every worker is ready.
	deadline := time.Now().Add(scaleStartTimeout)
	for {
		var st struct {
			Workers int `json:"workers"`
			Ready   int `json:"readyWorkers"`
		}
		out, err := ctl(ctx, "status", "--json").Output()
		if err == nil && json.Unmarshal(out, &st) == nil && st.Workers > 0 && st.Ready == st.Workers {
			res.workers = st.Workers
			res.readyMs = ms(time.Since(p.started))
			break
		}
		select {
		case <-p.exited:
			return res, fmt.Errorf("wattd exited before every worker was ready (%s)\n%s", exitString(p), p.logTail(20))
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(scalePollEvery):
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("%d of %d workers ready after %s", st.Ready, st.Workers, scaleStartTimeout)
		}
	}
	if !probe(ctx, loopback(port), probeDialTimeout, probeRespTimeout) {
		return res, errors.New("every worker ready, but the entrypoint does not answer 200")
	}
	rec.FirstOKMs = ms(time.Since(p.started))
	if err := res.readStarts(ctl(ctx, "ps", "--json"), p.started); err != nil {
		return res, err
	}

	rss, err := readRSS(p.pid)
	if err != nil {
		return res, fmt.Errorf("wattd's RSS: %w", err)
	}
	res.rss = rss
	res.fds = countDir(fmt.Sprintf("/proc/%d/fd", p.pid))
	res.threads = countDir(fmt.Sprintf("/proc/%d/task", p.pid))
	tree := processTree(p.pid)
	rec.MaxRootRSS, rec.MaxProcs = rss, len(tree)
	for _, st := range tree {
		if r, err := readRSS(st.id.pid); err == nil {
			rec.MaxTreeRSS += r
		}
	}
	groups := runtimeCgroups(tree)
	res.cgroupsBefore = len(groups)

	// ctl ps latency, the whole command.
	var lat []float64
	for range scalePsCalls {
		t0 := time.Now()
		c := ctl(ctx, "ps")
		c.Stdout = io.Discard
		if err := c.Run(); err != nil {
			return res, fmt.Errorf("wattd ctl ps: %w", err)
		}
		lat = append(lat, ms(time.Since(t0)))
	}
	res.psMedianMs, res.psMaxMs = median(lat), slices.Max(lat)

	// Idle CPU: nothing asks wattd anything from here on.
	sleepCtx(ctx, scaleSettle)
	var idleCores []float64
	for range scaleIdleWindows {
		before, err := readProcStat(p.pid)
		if err != nil {
			return res, fmt.Errorf("wattd's CPU time: %w", err)
		}
		t0 := time.Now()
		sleepCtx(ctx, scaleIdleWindow)
		after, err := readProcStat(p.pid)
		if err != nil {
			return res, fmt.Errorf("wattd's CPU time: %w", err)
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		cores := float64(after.ticks-before.ticks) / clockTicks / time.Since(t0).Seconds()
		idleCores = append(idleCores, cores)
		res.idlePct = append(res.idlePct, 100*cores)
	}
	rec.TargetCores = median(idleCores)

	// The stop: SIGTERM, then everything of the tree and of its cgroups
	// must go.
	var kids []procID
	for _, st := range processTree(p.pid) {
		if st.id.pid != p.pid {
			kids = append(kids, st.id)
		}
	}
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		rec.StopMs = ms(time.Since(t0))
		rec.StopExit = exitString(p)
	case <-time.After(scaleStopGrace):
		rec.fillStop(p.stop())
		rec.ForcedKill = true
	}
	orphanDeadline := time.Now().Add(orphanGrace)
	for _, id := range kids {
		for alive(id) && time.Now().Before(orphanDeadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, id := range kids {
		if alive(id) {
			rec.Orphans++
			_ = syscall.Kill(id.pid, syscall.SIGKILL)
		}
	}
	for _, g := range groups {
		if _, err := os.Stat(g); err == nil {
			res.cgroupsLeft = append(res.cgroupsLeft, g)
		}
	}
	if len(res.cgroupsLeft) > 0 {
		return res, fmt.Errorf("cgroups left after the stop: %s", strings.Join(res.cgroupsLeft, ", "))
	}
	return res, nil
}

func countDir(dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	return len(entries)
}

// runtimeCgroups returns the directories of the cgroup subtree that holds
// the workers of tree (tree[0] is wattd): the parent of each worker's own
// group in every hierarchy, as /proc/<pid>/cgroup names them. wattd keeps
// its workers' groups under one subtree per runtime and removes it on
// stop. Where a worker shares wattd's cgroup (cgroups not in use), there
// is nothing to check.
func runtimeCgroups(tree []procStat) []string {
	if len(tree) < 2 {
		return nil
	}
	own := cgroupPaths(tree[0].id.pid)
	seen := map[string]bool{}
	var out []string
	for _, st := range tree[1:] {
		for ctrl, rel := range cgroupPaths(st.id.pid) {
			if rel == own[ctrl] || rel == "/" {
				continue
			}
			dir := cgroupMount(ctrl)
			if dir == "" {
				continue
			}
			sub := filepath.Join(dir, filepath.Dir(rel))
			if !seen[sub] {
				seen[sub] = true
				out = append(out, sub)
			}
		}
	}
	slices.Sort(out)
	return out
}

// cgroupPaths reads /proc/<pid>/cgroup: controller list (empty for v2)
// to path.
func cgroupPaths(pid int) map[string]string {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 {
			out[parts[1]] = parts[2]
		}
	}
	return out
}

// cgroupMount is where a hierarchy is mounted in the usual layout:
// /sys/fs/cgroup/<controllers> for v1, /sys/fs/cgroup (or its "unified"
// directory on a hybrid system) for v2.
func cgroupMount(ctrl string) string {
	ctrl = strings.TrimPrefix(ctrl, "name=")
	var cands []string
	if ctrl == "" {
		cands = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}
	} else {
		cands = []string{"/sys/fs/cgroup/" + ctrl}
	}
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			if ctrl == "" && c == "/sys/fs/cgroup" {
				if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
					continue // v1 layout: no v2 hierarchy at the top
				}
			}
			return c
		}
	}
	return ""
}

func joinPct(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

// printScale prints the medians over the runs and the verdict on wattd's
// idle CPU.
func printScale(w io.Writer, runs []scaleResult) {
	if len(runs) == 0 {
		return
	}
	med := func(f func(r scaleResult) float64) (m, lo, hi float64) {
		var v []float64
		for _, r := range runs {
			v = append(v, f(r))
		}
		return median(v), slices.Min(v), slices.Max(v)
	}
	line := func(name, unit string, prec int, f func(r scaleResult) float64) {
		m, lo, hi := med(f)
		fmt.Fprintf(w, "  %-28s %.*f %s (min %.*f, max %.*f)\n", name, prec, m, unit, prec, lo, prec, hi)
	}
	fmt.Fprintf(w, "\nscale: %d workers (testdata/bench/scale), %d run(s), medians\n", runs[0].workers, len(runs))
	line("start to every worker ready", "s", 1, func(r scaleResult) float64 { return r.readyMs / 1000 })
	line("start to the first ready", "s", 2, func(r scaleResult) float64 { return r.firstReadyMs / 1000 })
	line("one worker's start, median", "ms", 0, func(r scaleResult) float64 { return r.startMedianMs })
	line("one worker's start, max", "ms", 0, func(r scaleResult) float64 { return r.startMaxMs })
	line("wattd RSS", "MiB", 1, func(r scaleResult) float64 { return float64(r.rss) / (1 << 20) })
	line("wattd open fds", "", 0, func(r scaleResult) float64 { return float64(r.fds) })
	line("wattd threads", "", 0, func(r scaleResult) float64 { return float64(r.threads) })
	line("ctl ps median", "ms", 0, func(r scaleResult) float64 { return r.psMedianMs })
	line("ctl ps max", "ms", 0, func(r scaleResult) float64 { return r.psMaxMs })
	var windows []float64
	for _, r := range runs {
		windows = append(windows, r.idlePct...)
	}
	m := median(windows)
	verdict := "PASS"
	if m > scaleIdleGoal {
		verdict = "MISS"
	}
	fmt.Fprintf(w, "  wattd idle CPU: median %.2f%% of one core over %d windows of %s (min %.2f%%, max %.2f%%), goal <= %.0f%%: %s\n",
		m, len(windows), scaleIdleWindow, slices.Min(windows), slices.Max(windows), scaleIdleGoal, verdict)
}

// readStarts fills the start figures from `wattd ctl ps --json` (ps):
// each worker's start time (spawn to ready, which the slot sums over its
// starts) and the first "ready" event of any worker, against started,
// when wattd was exec'd.
func (res *scaleResult) readStarts(ps *exec.Cmd, started time.Time) error {
	out, err := ps.Output()
	if err != nil {
		return fmt.Errorf("wattd ctl ps --json: %w", err)
	}
	var apps []struct {
		Workers []struct {
			Starts    int     `json:"starts"`
			StartTime float64 `json:"startSecondsTotal"`
			History   []struct {
				At    time.Time `json:"at"`
				State string    `json:"state"`
			} `json:"history"`
		} `json:"workers"`
	}
	if err := json.Unmarshal(out, &apps); err != nil {
		return fmt.Errorf("wattd ctl ps --json: %w", err)
	}
	var starts []float64
	var first time.Time
	for _, a := range apps {
		for _, w := range a.Workers {
			if w.Starts > 0 {
				starts = append(starts, w.StartTime*1000/float64(w.Starts))
			}
			for _, e := range w.History {
				if e.State == "ready" && (first.IsZero() || e.At.Before(first)) {
					first = e.At
				}
			}
		}
	}
	if len(starts) == 0 || first.IsZero() {
		return errors.New("wattd ctl ps --json shows no worker start")
	}
	res.startMedianMs, res.startMaxMs = median(starts), slices.Max(starts)
	res.firstReadyMs = ms(first.Sub(started))
	return nil
}
