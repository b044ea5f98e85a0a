package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseEvents(t *testing.T) {
	in := "listen 10 1000.000\nlisten 11 1000.500\n\nexit 10 2000.250\nlisten 12 2120.250\nexit 11 21"
	evs, err := parseEvents(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []workerEvent{{"listen", 10, 1000}, {"listen", 11, 1000.5}, {"exit", 10, 2000.25}, {"listen", 12, 2120.25}}
	if !slices.Equal(evs, want) {
		t.Errorf("events %+v, want %+v (the cut last line skipped)", evs, want)
	}
	for _, bad := range []string{"start 1 2\n", "exit x 2\n", "exit 1 -5\n", "exit 1\n", "listen 1 NaN\n"} {
		if _, err := parseEvents(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestReplacementGaps(t *testing.T) {
	ev := func(kind string, pid int, ms float64) workerEvent { return workerEvent{kind, pid, ms} }
	for name, tc := range map[string]struct {
		evs  []workerEvent
		want []float64
	}{
		"initial listens give nothing": {
			[]workerEvent{ev("listen", 1, 0), ev("listen", 2, 1)}, nil},
		"one death, one replacement": {
			[]workerEvent{ev("listen", 1, 0), ev("listen", 2, 1), ev("exit", 1, 1000), ev("listen", 3, 1120)}, []float64{120}},
		// Out of order in the file (two writers): time decides.
		"two deaths close together, first come first served": {
			[]workerEvent{ev("listen", 4, 1150), ev("exit", 1, 1000), ev("exit", 2, 1010), ev("listen", 3, 1100)}, []float64{100, 140}},
		"a death the run ended before replacing": {
			[]workerEvent{ev("exit", 1, 1000), ev("listen", 3, 1100), ev("exit", 3, 2000)}, []float64{100}},
		"a listen by the dying pid is not its replacement": {
			[]workerEvent{ev("exit", 1, 1000), ev("listen", 1, 1000), ev("listen", 2, 1050)}, []float64{50}},
		"a tie counts as 0, never negative": {
			[]workerEvent{ev("listen", 2, 1000), ev("exit", 1, 1000)}, []float64{0}},
	} {
		if got := replacementGaps(tc.evs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: gaps %v, want %v", name, got, tc.want)
		}
	}
}

func TestQuantileAndReplaceSummary(t *testing.T) {
	vals := []float64{50, 10, 40, 20, 30, 60, 70, 80, 90, 100}
	if q := quantile(vals, 0.5); q != 50 {
		t.Errorf("median %v, want 50 (nearest rank)", q)
	}
	if q := quantile(vals, 0.9); q != 90 {
		t.Errorf("p90 %v, want 90", q)
	}
	if q := quantile(vals, 1); q != 100 {
		t.Errorf("p100 %v", q)
	}
	if q := quantile(nil, 0.5); q != 0 {
		t.Errorf("empty %v", q)
	}
	// Ten deaths, each replaced vals[i] ms later, and one never replaced.
	var evs []workerEvent
	for i, v := range vals {
		at := float64(1000 * (i + 1))
		evs = append(evs, workerEvent{"exit", i + 1, at}, workerEvent{"listen", 100 + i, at + v})
	}
	evs = append(evs, workerEvent{"exit", 100, 20000})
	s := summarizeReplace(evs)
	if s.Exits != 11 || s.N != 10 || s.MedianMs != 50 || s.P90Ms != 90 || s.MaxMs != 100 {
		t.Errorf("summary %+v", s)
	}
	if s := summarizeReplace(nil); s.N != 0 || s.MedianMs != 0 {
		t.Errorf("empty summary %+v", s)
	}
}

func helloRounds(wattd, cluster, reuse []float64) []runRecord {
	var out []runRecord
	for i := range wattd {
		out = append(out, loadRec("wattd", scHello, i+1, wattd[i], 5), loadRec("cluster", scHello, i+1, cluster[i], 5),
			loadRec("reuseport", scHello, i+1, reuse[i], 5))
	}
	return out
}

func TestHelloGoals(t *testing.T) {
	// Above cluster in four rounds of five, so every-round misses while the
	// median would pass; reuseport ratios 0.99, 0.98, 0.97, 1.00, 0.95.
	recs := helloRounds([]float64{99, 98, 97, 100, 95}, []float64{98, 97, 98, 99, 94}, []float64{100, 100, 100, 100, 100})
	hello := findSection(t, summarize(recs, []string{scHello}), scHello)
	v := findVerdict(t, hello, "wattd/cluster")
	if v.Result != "MISS" || !strings.Contains(v.Figure, "rounds 1.010 1.010 0.990 1.010 1.011 (min 0.990)") {
		t.Errorf("every round: %+v", v)
	}
	v = findVerdict(t, hello, "wattd/reuseport")
	if v.Result != "PASS" || v.Figure != "median 0.980 (0.950–1.000 over 5 rounds)" {
		t.Errorf("median: %+v", v)
	}
	// A round whose wattd run failed cannot count as passed.
	recs = helloRounds([]float64{99, 99}, []float64{98, 98}, []float64{99, 99})
	recs[3].Error, recs[3].Load = "exited before serving (exit 1)", nil
	v = findVerdict(t, findSection(t, summarize(recs, []string{scHello}), scHello), "wattd/cluster")
	if v.Result != "MISS" || !strings.Contains(v.Figure, "no measurement in round(s) [2]") {
		t.Errorf("round 2 failed: %+v", v)
	}
}

func TestCrashGoalsWithFailedStandby(t *testing.T) {
	recs := []runRecord{
		loadRec("wattd", scCrash, 1, 900, 200),
		{Target: "wattd-standby", Scenario: scCrash, Round: 1, StopExit: "exit 1",
			Error: "exited before serving (exit 1)\n--- tail of x.log ---\nunknown key \"standby\""},
		loadRec("cluster", scCrash, 1, 1000, 30),
	}
	recs[0].Replace = &replaceSummary{Exits: 4, N: 3, MedianMs: 120, P90Ms: 140, GapsMs: []float64{100, 120, 140}}
	recs[2].Load.Refused = 7
	crash := findSection(t, summarize(recs, []string{scCrash}), scCrash)
	v := findVerdict(t, crash, "wattd-standby p99")
	if v.Result != "MISS" || v.Figure != "no measurement: wattd-standby failed: exited before serving (exit 1)" {
		t.Errorf("standby p99: %+v", v)
	}
	if v := findVerdict(t, crash, "wattd-standby refused"); v.Result != "MISS" {
		t.Errorf("standby refused: %+v", v)
	}
	if v := findVerdict(t, crash, "wattd refused"); v.Result != "PASS" || v.Figure != "0 over 1 runs" {
		t.Errorf("wattd refused: %+v", v)
	}
	if r := findRow(t, crash, "refused connections (sum)"); r.Values["cluster"].Value != 7 {
		t.Errorf("refused row %+v", r)
	}
	if r := findRow(t, crash, "death to replacement listening, median"); r.Values["wattd"].Value != 120 {
		t.Errorf("replacement row %+v", r)
	}
	if _, ok := findRow(t, crash, "p99 latency").Values["wattd-standby"]; ok {
		t.Error("a failed runner has a value")
	}
	joined := strings.Join(crash.Notes, "\n")
	for _, want := range []string{"wattd-standby failed: exited before serving",
		"wattd: worker death to replacement listening, all rounds: median 120.0 ms, p90 140.0 ms"} {
		if !strings.Contains(joined, want) {
			t.Errorf("notes lack %q:\n%s", want, joined)
		}
	}
	var out bytes.Buffer
	printSection(&out, crash, 1)
	if !strings.Contains(out.String(), "MISS  crash: wattd-standby p99 latency <= cluster's (median): no measurement") {
		t.Errorf("section:\n%s", out.String())
	}
}

func TestRollingGoalCountsFailedRuns(t *testing.T) {
	ok := loadRec("wattd", scRolling, 1, 1000, 5)
	ok.OpMs = 1500
	failed := runRecord{Target: "wattd", Scenario: scRolling, Round: 2, Error: "wattd ctl restart hello: exit status 1"}
	rolling := findSection(t, summarize([]runRecord{ok, failed}, []string{scRolling}), scRolling)
	v := findVerdict(t, rolling, "wattd failed or refused requests = 0")
	if v.Result != "MISS" || v.Figure != "0 over 1 runs (1 of 2 runs failed)" {
		t.Errorf("a failed restart round must not pass: %+v", v)
	}
	if r := findRow(t, rolling, "ctl restart took"); r.Values["wattd"].Value != 1500 {
		t.Errorf("restart row %+v", r)
	}
	ok.Load.Failed = 2
	rolling = findSection(t, summarize([]runRecord{ok}, []string{scRolling}), scRolling)
	if v := findVerdict(t, rolling, "wattd failed"); v.Result != "MISS" || v.Figure != "2 over 1 runs" {
		t.Errorf("2 failed requests: %+v", v)
	}
	if v := findVerdict(t, rolling, "wattd-standby failed"); v.Result != "n/a" {
		t.Errorf("standby not run: %+v", v)
	}
}

func TestRSSSection(t *testing.T) {
	rec := func(target string, round int, root, tree uint64) runRecord {
		r := loadRec(target, scRSS, round, 1000, 5)
		r.Idle = &idleRSS{StartRoot: root, StartTree: tree, AfterRoot: root + mibF, AfterTree: tree + 2*mibF, Procs: 3}
		r.MaxRootRSS = root + 2*mibF
		return r
	}
	recs := []runRecord{rec("wattd", 1, 10*mibF, 100*mibF), rec("cluster", 1, 50*mibF, 150*mibF),
		rec("wattd", 2, 12*mibF, 110*mibF), rec("cluster", 2, 52*mibF, 160*mibF)}
	s := findSection(t, summarize(recs, []string{scRSS}), scRSS)
	if c := findRow(t, s, "root, idle after start").Values["wattd"]; c.Value != 11 || c.Min != 10 || c.Max != 12 {
		t.Errorf("root idle %+v", c)
	}
	if c := findRow(t, s, "tree, idle after load").Values["cluster"]; c.Value != 157 {
		t.Errorf("tree after load %+v", c)
	}
	if v := findVerdict(t, s, "wattd root process peak RSS <= 20 MiB"); v.Result != "PASS" || v.Figure != "14 MiB" {
		t.Errorf("root peak: %+v", v)
	}
}

func TestNodeAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"v24.1.0": true, "v22.12.0": true, "v22.11.9": false, "v20.20.2": false, "v23.0.0": true, "junk": false} {
		if got := nodeAtLeast(v, 22, 12); got != want {
			t.Errorf("%s: %v, want %v", v, got, want)
		}
	}
}

func TestProjectCopyAndStandbyCheck(t *testing.T) {
	hello, err := filepath.Abs("../../testdata/bench/hello")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := projectCopy(hello, dir, func(_, app map[string]any) { app["standby"] = 1 }); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "watt.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Applications []struct {
			Path    string `json:"path"`
			Standby int    `json:"standby"`
		} `json:"applications"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Applications) != 1 || cfg.Applications[0].Path != filepath.Join(hello, "app") || cfg.Applications[0].Standby != 1 {
		t.Errorf("copy: %s", raw)
	}
	if n, err := fixtureWorkers(hello); err != nil || n != 2 {
		t.Errorf("fixture workers %d, %v", n, err)
	}

	// wattd's warning for a key it does not know fails a standby run.
	log := filepath.Join(dir, "wattd.log")
	warn := `{"level":40,"msg":"watt.json: /applications/0/standby: unknown key \"standby\"; Watt accepts any key in an application entry, so it is ignored"}` + "\n"
	if err := os.WriteFile(log, []byte(warn), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: target{name: "wattd-standby", standby: 1}, logPath: log}
	err = standbyHonoured(p)
	if want := "wattd does not know the standby key: watt.json: /applications/0/standby: unknown key"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("warning in the log: %v, want %q...", err, want)
	}
	p.t.standby = 0
	if err := standbyHonoured(p); err != nil {
		t.Errorf("no standby asked: %v", err)
	}
	p.t.standby = 1
	if err := os.WriteFile(log, []byte(`{"level":30,"msg":"started"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := standbyHonoured(p); err != nil {
		t.Errorf("clean log: %v", err)
	}
}

// node24 returns the Node >= 22.12 that `make deps` installs, or skips.
func node24OrSkip(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts node processes")
	}
	p, err := filepath.Abs(filepath.Join("../..", node24))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skip("no Node 24 (make deps installs it):", err)
	}
	return p
}

// TestReusePortBaseline runs the hello scenario's reuseport baseline end to
// end: two plain node processes on one SO_REUSEPORT port, both serving.
func TestReusePortBaseline(t *testing.T) {
	node := node24OrSkip(t)
	jsonOut := filepath.Join(t.TempDir(), "out.json")
	var stdout, stderr bytes.Buffer
	status := run([]string{"-targets", "reuseport", "-scenarios", "hello", "-fixtures", "../../testdata/bench",
		"-node", node, "-rounds", "1", "-duration", "1s", "-warmup", "0s", "-conns", "8", "-json", jsonOut}, &stdout, &stderr)
	if status != exitOK {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout.String(), stderr.String())
	}
	var doc struct {
		Runs []runRecord `json:"runs"`
	}
	raw, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Runs) != 1 || doc.Runs[0].Load == nil || doc.Runs[0].Load.Requests == 0 || doc.Runs[0].StopExit != "exit 0" {
		t.Fatalf("runs %s", raw)
	}
	// Two processes listened on the same port: the tree sampler saw both.
	if r := doc.Runs[0]; r.MaxProcs != 2 || r.Load.Failed+r.Load.Refused != 0 {
		t.Errorf("reuseport run: %d processes, %d failed, %d refused", r.MaxProcs, r.Load.Failed, r.Load.Refused)
	}
}

// TestCrashReplacementTimes runs the crash scenario on the node:cluster
// baseline: workers die every half second and the bench reads, from the
// events they note, how long each took to be replaced.
func TestCrashReplacementTimes(t *testing.T) {
	node := node24OrSkip(t)
	jsonOut := filepath.Join(t.TempDir(), "out.json")
	var stdout, stderr bytes.Buffer
	status := run([]string{"-targets", "cluster", "-scenarios", "crash", "-fixtures", "../../testdata/bench",
		"-node", node, "-rounds", "1", "-duration", "4s", "-warmup", "0s", "-conns", "8", "-json", jsonOut}, &stdout, &stderr)
	if status != exitOK {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout.String(), stderr.String())
	}
	raw, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Runs []runRecord `json:"runs"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Runs) != 1 || doc.Runs[0].Replace == nil {
		t.Fatalf("runs %s", raw)
	}
	r := doc.Runs[0].Replace
	// 4 s with a death every half second, but a loaded machine takes
	// seconds to replace a worker: ask for one replacement, not for eight.
	if r.N < 1 || r.Exits < r.N || r.MedianMs <= 0 || r.P90Ms < r.MedianMs || r.MedianMs > 10000 {
		t.Errorf("replacements %+v", r)
	}
	if !strings.Contains(stdout.String(), "cluster: worker death to replacement listening, all rounds: median") {
		t.Errorf("report:\n%s", stdout.String())
	}
}

// TestStandbyRunnerNeverCrashesTheBench runs the crash scenario's standby
// runner against the real wattd (WATTD_BIN): whether this wattd knows the
// standby key or not, the bench reports, and a wattd that ignores or
// rejects the key shows as a failed runner with wattd's own message.
func TestStandbyRunnerNeverCrashesTheBench(t *testing.T) {
	b := runBench(t, "-targets", "wattd-standby", "-scenarios", "crash", "-duration", "1s")
	if len(b.runs) != 1 {
		t.Fatalf("runs %s", b.raw)
	}
	r, status, stdout, raw := b.runs[0], b.status, &b.stdout, b.raw
	switch {
	case r.Error == "" && status == exitOK:
		if r.Load == nil || r.Replace == nil {
			t.Errorf("a clean standby run without figures: %s", raw)
		}
	case r.Error != "" && status == exitBenchFailed:
		if !strings.Contains(r.Error, "standby") {
			t.Errorf("the failure does not carry wattd's word on standby: %s", r.Error)
		}
		if !strings.Contains(stdout.String(), "MISS  crash: wattd-standby refused connections = 0: no measurement: wattd-standby failed") {
			t.Errorf("report:\n%s", stdout.String())
		}
	default:
		t.Errorf("status %d with run error %q", status, r.Error)
	}
}

// benchRun is what one run of the bench in a test gave.
type benchRun struct {
	status         int
	stdout, stderr bytes.Buffer
	raw            []byte // the -json document
	runs           []runRecord
}

// runBench runs the bench in this process on the fixtures with the real
// wattd (WATTD_BIN) and Node 24, one round of 4 connections without
// warm-up, plus args; it skips the test when either is missing.
func runBench(t *testing.T, args ...string) *benchRun {
	t.Helper()
	node := node24OrSkip(t)
	wattd := os.Getenv("WATTD_BIN")
	if wattd == "" {
		t.Skip("WATTD_BIN not set")
	}
	jsonOut := filepath.Join(t.TempDir(), "out.json")
	b := &benchRun{}
	argv := append([]string{"-fixtures", "../../testdata/bench", "-wattd", wattd, "-node", node,
		"-rounds", "1", "-warmup", "0s", "-conns", "4", "-json", jsonOut}, args...)
	b.status = run(argv, &b.stdout, &b.stderr)
	var err error
	if b.raw, err = os.ReadFile(jsonOut); err != nil {
		t.Fatalf("status %d, no JSON: %v\nstderr:\n%s", b.status, err, b.stderr.String())
	}
	var doc struct {
		Runs []runRecord `json:"runs"`
	}
	if err := json.Unmarshal(b.raw, &doc); err != nil {
		t.Fatalf("runs %s (%v)", b.raw, err)
	}
	b.runs = doc.Runs
	return b
}

func TestWattdStartNamesTheRuntime(t *testing.T) {
	argv := wattdStart("/bin/wattd", "/x/hello")
	want := []string{"/bin/wattd", "start", "--name", "wattbench-" + strconv.Itoa(os.Getpid()) + "-hello", "/x/hello"}
	if !slices.Equal(argv, want) {
		t.Errorf("argv %q, want %q", argv, want)
	}
}

// TestCrashClockOneExitPerTick: with -crash-clock the fixture's processes
// share the clock's ticks, one death per tick: three processes started
// together die on three ticks, each having created its tick's file, and no
// tick takes two (there would be fewer files than deaths).
func TestCrashClockOneExitPerTick(t *testing.T) {
	node := node24OrSkip(t)
	dir := t.TempDir()
	ticks := filepath.Join(dir, "ticks")
	if err := os.Mkdir(ticks, 0o755); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(dir, "events")
	var waits []chan error
	for range 3 {
		cmd := exec.Command(node, "../../testdata/bench/hello/app/index.js")
		cmd.Env = append(os.Environ(), "PORT=0", "BENCH_HOST=127.0.0.1", "EXIT_EVERY_MS=300",
			"EXIT_TICKS_DIR="+ticks, "BENCH_EVENTS="+events)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		waits = append(waits, done)
	}
	deadline := time.After(20 * time.Second)
	for i, done := range waits {
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("process %d ended with %v, want exit status 1 on its tick", i, err)
			}
		case <-deadline:
			t.Fatalf("process %d still running after 20 s", i)
		}
	}
	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := parseEvents(f)
	if err != nil {
		t.Fatal(err)
	}
	exits := 0
	for _, e := range evs {
		if e.kind == "exit" {
			exits++
		}
	}
	files, err := os.ReadDir(ticks)
	if err != nil {
		t.Fatal(err)
	}
	if exits != 3 || len(files) != 3 {
		t.Errorf("%d exits noted, %d ticks taken; want 3 and 3 (events %+v)", exits, len(files), evs)
	}
}

// TestPromoteScenario runs the promote scenario once: the warm and the
// cold variant each kill the worker three times and time what follows,
// and each checks in wattd's log that its standbys warmed up, or did not.
func TestPromoteScenario(t *testing.T) {
	b := runBench(t, "-targets", "wattd", "-scenarios", "promote")
	if b.status != exitOK || len(b.runs) != 2 {
		t.Fatalf("status %d, runs %s\nstderr:\n%s", b.status, b.raw, b.stderr.String())
	}
	for _, r := range b.runs {
		p := r.Promote
		if r.Error != "" || p == nil {
			t.Fatalf("%s: error %q, figures %+v", r.Target, r.Error, p)
		}
		if p.Kills != promoteKills || p.Failed != 0 || p.FirstP50Ms <= 0 || p.FirstP90Ms < p.FirstP50Ms || p.LaterP99Ms <= 0 {
			t.Errorf("%s: %+v", r.Target, *p)
		}
	}
	if !strings.Contains(b.stdout.String(), "promote: warm first request p90 <= cold's") {
		t.Errorf("report without the promote goal:\n%s", b.stdout.String())
	}
}

func TestWarmUpsChecksTheLog(t *testing.T) {
	dir := t.TempDir()
	line := `{"level":20,"name":"hello","msg":"standby warmed up","requests":2000,"ms":300}` + "\n"
	for _, c := range []struct {
		variant string
		lines   int
		ok      bool
	}{{"warm", promoteKills, true}, {"warm", promoteKills - 1, false}, {"cold", 0, true}, {"cold", 1, false}} {
		path := filepath.Join(dir, "log")
		if err := os.WriteFile(path, []byte(strings.Repeat(line, c.lines)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := warmUps(path, c.variant); (err == nil) != c.ok {
			t.Errorf("%s with %d warm-ups: %v", c.variant, c.lines, err)
		}
	}
}
