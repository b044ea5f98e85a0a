package main

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.scenarios, defaultScenarios) {
		t.Errorf("default scenarios %v, want %v", c.scenarios, defaultScenarios)
	}
	for _, want := range []string{"reuseport", "wattd-standby", "tcp-fetch", "tcp-agent"} {
		if !slices.Contains(c.targets, want) {
			t.Errorf("default targets %v lack %s", c.targets, want)
		}
	}
	if c.meshConns != c.conns {
		t.Errorf("-mesh-conns defaults to %d, want -conns (%d)", c.meshConns, c.conns)
	}
	if c.roundsOf(scHello) != 5 || c.roundsOf(scCrash) != 3 {
		t.Errorf("default rounds: hello %d, crash %d; want 5 and 3", c.roundsOf(scHello), c.roundsOf(scCrash))
	}
	c, err = parseFlags([]string{"-conns", "64", "-mesh-conns", "32", "-rounds", "2"}, &bytes.Buffer{})
	if err != nil || c.conns != 64 || c.meshConns != 32 || c.roundsOf(scHello) != 2 {
		t.Errorf("explicit flags: %+v, %v", c, err)
	}
	// Names are put in canonical order; earlier names still work.
	c, err = parseFlags([]string{"-scenarios", "crash, throughput,startup,tracing", "-targets", "tcp,wattd"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.scenarios, []string{scHello, scCrash, scStart, scTracing}) {
		t.Errorf("scenarios %v", c.scenarios)
	}
	if !slices.Equal(c.targets, []string{"wattd", "tcp-fetch"}) {
		t.Errorf("targets %v", c.targets)
	}
	// A selection where nothing runs is a usage error; one where some
	// scenario has no target of its own is not (that scenario is skipped).
	if _, err := parseFlags([]string{"-targets", "tcp-agent", "-scenarios", "hello,start"}, &bytes.Buffer{}); err == nil {
		t.Error("-targets tcp-agent with no mesh scenario: want an error")
	}
	if _, err := parseFlags([]string{"-targets", "cluster"}, &bytes.Buffer{}); err != nil {
		t.Errorf("-targets cluster with the default scenarios: %v", err)
	}
	for _, bad := range [][]string{{"-mesh-conns", "-1"}, {"-scenarios", "hello,nope"}, {"-targets", ""}, {"-rounds", "-1"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func TestTargetsFor(t *testing.T) {
	all := allTargets
	if got := targetsFor(scMesh, all); !slices.Equal(got, []string{"wattd", "tcp-fetch", "tcp-agent"}) {
		t.Errorf("mesh runs %v", got)
	}
	if got := targetsFor(scHello, all); !slices.Equal(got, []string{"wattd", "cluster", "reuseport"}) {
		t.Errorf("hello runs %v", got)
	}
	if got := targetsFor(scCrash, all); !slices.Equal(got, []string{"wattd", "wattd-standby", "cluster"}) {
		t.Errorf("crash runs %v", got)
	}
	if got := targetsFor(scMesh, []string{"cluster"}); len(got) != 0 {
		t.Errorf("mesh with only cluster selected runs %v", got)
	}
	// Every scenario has a spec for its report, listing at least the
	// targets that run it.
	for _, sc := range allScenarios {
		if _, ok := specs[sc]; !ok {
			t.Errorf("no report spec for %s", sc)
		}
		if _, ok := defaultRounds[sc]; !ok {
			t.Errorf("no default rounds for %s", sc)
		}
	}
}

func TestRotate(t *testing.T) {
	names := []string{"a", "b", "c"}
	firsts := map[string]int{}
	for r := range 6 {
		o := rotate(names, r)
		if len(o) != 3 {
			t.Fatalf("rotate(%d) = %v", r, o)
		}
		firsts[o[0]]++
	}
	if firsts["a"] != 2 || firsts["b"] != 2 || firsts["c"] != 2 {
		t.Errorf("each runner should go first equally often: %v", firsts)
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Error("rotate changed its argument")
	}
}

func loadRec(target, scenario string, round int, rps, p99 float64) runRecord {
	return runRecord{Target: target, Scenario: scenario, Round: round, StopExit: "exit 0",
		Load: &loadSummary{RPS: rps, P99Ms: p99}, TargetCores: 1.5}
}

func findSection(t *testing.T, secs []section, name string) section {
	t.Helper()
	for _, s := range secs {
		if s.Scenario == name {
			return s
		}
	}
	t.Fatalf("no section %q", name)
	return section{}
}

func findRow(t *testing.T, s section, metric string) row {
	t.Helper()
	for _, r := range s.Rows {
		if r.Metric == metric {
			return r
		}
	}
	t.Fatalf("section %s has no row %q", s.Scenario, metric)
	return row{}
}

func findVerdict(t *testing.T, s section, prefix string) verdict {
	t.Helper()
	for _, v := range s.Verdicts {
		if strings.HasPrefix(v.Goal, prefix) {
			return v
		}
	}
	t.Fatalf("section %s has no goal %q: %+v", s.Scenario, prefix, s.Verdicts)
	return verdict{}
}

func TestSummarizeMesh(t *testing.T) {
	records := []runRecord{
		loadRec("wattd", scMesh, 1, 1400, 4),
		loadRec("tcp-fetch", scMesh, 1, 1000, 5),
		loadRec("tcp-agent", scMesh, 1, 1200, 5),
	}
	records[2].Orphans = 1
	secs := summarize(records, allScenarios)
	mesh := findSection(t, secs, scMesh)
	if !slices.Equal(mesh.Runners, []string{"wattd", "tcp-fetch", "tcp-agent"}) {
		t.Errorf("runners %v", mesh.Runners)
	}
	rps := findRow(t, mesh, "requests/s")
	if rps.Values["tcp-agent"].Value != 1200 || rps.Values["wattd"].Value != 1400 {
		t.Errorf("requests/s row = %+v", rps)
	}
	if v := findVerdict(t, mesh, "wattd/tcp-fetch requests/s >= 1.30"); v.Result != "PASS" || !strings.Contains(v.Figure, "median 1.400") {
		t.Errorf("1.4x: %+v", v)
	}
	if v := findVerdict(t, mesh, "wattd p99 latency <= tcp-fetch's"); v.Result != "PASS" {
		t.Errorf("p99 4 ms vs 5 ms: %+v", v)
	}
	if perReq := findRow(t, mesh, "target CPU per request"); int(perReq.Values["wattd"].Value+0.5) != 1071 {
		t.Errorf("CPU per request = %v, want 1.5 cores / 1400 req/s = 1071 µs", perReq.Values["wattd"])
	}
	if !slices.ContainsFunc(mesh.Notes, func(n string) bool { return strings.Contains(n, "wattd/tcp-agent requests/s by round: r1 1.167") }) {
		t.Errorf("notes lack the tcp-agent ratio: %q", mesh.Notes)
	}
	// The all-runs goals count every runner: tcp-agent's orphan is a MISS.
	all := findSection(t, secs, "all runs")
	if v := findVerdict(t, all, "processes outliving"); v.Result != "MISS" {
		t.Errorf("orphans: %+v", v)
	}

	// Slower than the goal: 1.2x and a worse p99.
	records[0].Load = &loadSummary{RPS: 1200, P99Ms: 6}
	mesh = findSection(t, summarize(records, allScenarios), scMesh)
	if v := findVerdict(t, mesh, "wattd/tcp-fetch"); v.Result != "MISS" {
		t.Errorf("1.2x: %+v, want MISS", v)
	}
	if v := findVerdict(t, mesh, "wattd p99"); v.Result != "MISS" || v.Figure != "wattd 6 ms vs tcp-fetch 5 ms" {
		t.Errorf("p99 6 ms vs 5 ms: %+v, want MISS", v)
	}
}

func TestPrintSection(t *testing.T) {
	var records []runRecord
	for r := 1; r <= 3; r++ {
		records = append(records, loadRec("wattd", scHello, r, 1000+float64(r), 5), loadRec("cluster", scHello, r, 1000, 6))
	}
	secs := summarize(records, []string{scHello})
	var out bytes.Buffer
	cfg := config{scenarios: []string{scHello}, rounds: 3, conns: 50}
	printReport(&out, cfg, benchEnv{workers: 2}, secs, nil)
	text := out.String()
	for _, want := range []string{
		"== hello, 3 round(s)",
		"metric", "wattd", "cluster",
		"1002 (1001–1003)", // median (min–max)
		"PASS  hello: wattd/cluster requests/s >= 1.00 in every round: rounds 1.001 1.002 1.003 (min 1.001)",
		"n/a  hello: wattd/reuseport requests/s >= 0.98 (median of rounds): reuseport not run",
		"goals: 3 PASS, 0 MISS",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "reuseport  ") {
		t.Errorf("a runner that did not run has a column:\n%s", text)
	}
}

func TestProcessForest(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("cannot start sleep:", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	self := os.Getpid()
	forest := processForest([]int{self, self, 1 << 30})
	if len(forest) < 2 || forest[0].id.pid != self {
		t.Fatalf("forest = %+v, want self first and its child", forest)
	}
	found := false
	for _, p := range forest[1:] {
		if p.id.pid == self {
			t.Error("a root listed twice")
		}
		found = found || p.id.pid == cmd.Process.Pid
	}
	if !found {
		t.Errorf("child %d not in the forest", cmd.Process.Pid)
	}
	// Roots come first, in order, even when one descends from another
	// root's tree.
	forest = processForest([]int{cmd.Process.Pid, self})
	if len(forest) < 2 || forest[0].id.pid != cmd.Process.Pid || forest[1].id.pid != self {
		t.Errorf("roots out of order: %+v", forest[:min(2, len(forest))])
	}
}

// TestMeshBaselines runs the mesh scenario's tcp baselines end to end for a
// moment: the two fixture apps as plain node processes, the entry calling
// the internal app over loopback TCP with fetch, then with http.get.
func TestMeshBaselines(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node in PATH")
	}
	var stdout, stderr bytes.Buffer
	status := run([]string{"-targets", "tcp-fetch,tcp-agent", "-scenarios", "mesh", "-fixtures", "../../testdata/bench",
		"-node", "node", "-rounds", "1", "-duration", "500ms", "-warmup", "0s", "-conns", "4"}, &stdout, &stderr)
	if status != exitOK {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "tcp-fetch") || !strings.Contains(out, "tcp-agent") || strings.Contains(out, "problems:") {
		t.Errorf("report:\n%s", out)
	}
	if n := strings.Count(stderr.String(), "(exit 0)"); n != 2 {
		t.Errorf("%d of 2 baselines stopped with exit 0:\n%s", n, stderr.String())
	}
}
