package main

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestParseFlagsMesh(t *testing.T) {
	c, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.scenarios, "mesh") || !slices.Contains(c.targets, "tcp") {
		t.Errorf("defaults: scenarios %v targets %v, want mesh and tcp included", c.scenarios, c.targets)
	}
	if c.meshConns != c.conns {
		t.Errorf("-mesh-conns defaults to %d, want -conns (%d)", c.meshConns, c.conns)
	}
	c, err = parseFlags([]string{"-conns", "64", "-mesh-conns", "32"}, &bytes.Buffer{})
	if err != nil || c.conns != 64 || c.meshConns != 32 {
		t.Errorf("explicit -mesh-conns: %+v, %v", c, err)
	}
	// A selection where nothing runs is a usage error; one where some
	// scenario has no target of its own is not (that scenario is skipped).
	if _, err := parseFlags([]string{"-targets", "tcp", "-scenarios", "throughput,startup"}, &bytes.Buffer{}); err == nil {
		t.Error("-targets tcp with no mesh scenario: want an error")
	}
	if _, err := parseFlags([]string{"-targets", "cluster"}, &bytes.Buffer{}); err != nil {
		t.Errorf("-targets cluster with every scenario: %v", err)
	}
	if _, err := parseFlags([]string{"-mesh-conns", "-1"}, &bytes.Buffer{}); err == nil {
		t.Error("-mesh-conns -1: want an error")
	}
}

func TestTargetsFor(t *testing.T) {
	all := allTargets
	if got := targetsFor("mesh", all); !slices.Equal(got, []string{"wattd", "tcp"}) {
		t.Errorf("mesh runs %v", got)
	}
	if got := targetsFor("throughput", all); !slices.Equal(got, []string{"wattd", "cluster"}) {
		t.Errorf("throughput runs %v", got)
	}
	if got := targetsFor("mesh", []string{"cluster"}); len(got) != 0 {
		t.Errorf("mesh with only cluster selected runs %v", got)
	}
}

func loadRec(target, scenario string, rps, p99 float64) runRecord {
	return runRecord{Target: target, Scenario: scenario, Round: 1, StopExit: "exit 0",
		Load: &loadSummary{RPS: rps, P99Ms: p99}, TargetCores: 1.5}
}

func findRow(t *testing.T, rows []row, metric string) row {
	t.Helper()
	for _, r := range rows {
		if r.Metric == metric {
			return r
		}
	}
	t.Fatalf("no row %q", metric)
	return row{}
}

func TestSummarizeMesh(t *testing.T) {
	records := []runRecord{
		loadRec("wattd", "throughput", 1000, 5),
		loadRec("cluster", "throughput", 800, 6),
		loadRec("wattd", "mesh", 1400, 4),
		loadRec("tcp", "mesh", 1000, 5),
	}
	records[3].Orphans = 1
	rows := summarize(records, allTargets)

	rps := findRow(t, rows, "mesh: requests/s")
	if rps.Baseline != "tcp" || rps.TCP == nil || *rps.TCP != 1000 || rps.Cluster != nil {
		t.Fatalf("mesh requests/s row = %+v", rps)
	}
	if rps.Ratio == nil || *rps.Ratio != 1.4 || rps.Result != "PASS" {
		t.Errorf("mesh requests/s ratio %v result %s, want 1.4 PASS", rps.Ratio, rps.Result)
	}
	if p99 := findRow(t, rows, "mesh: p99 latency"); p99.Result != "PASS" {
		t.Errorf("mesh p99 4 ms vs 5 ms: %s, want PASS", p99.Result)
	}
	if perReq := findRow(t, rows, "mesh: target CPU per request"); perReq.Wattd == nil || int(*perReq.Wattd+0.5) != 1071 {
		t.Errorf("CPU per request = %v, want 1.5 cores / 1400 req/s = 1071 µs", perReq.Wattd)
	}
	tp := findRow(t, rows, "throughput: requests/s")
	if tp.Baseline != "cluster" || tp.Ratio == nil || *tp.Ratio != 1.25 || tp.TCP != nil {
		t.Errorf("throughput row = %+v", tp)
	}
	// The all-runs rows count every baseline: tcp's orphan is a MISS.
	orph := findRow(t, rows, "all runs: orphaned processes")
	if orph.Cluster == nil || orph.TCP == nil || *orph.TCP != 1 || orph.Result != "MISS" {
		t.Errorf("orphans row = %+v", orph)
	}

	// Slower than the goal: 1.2x and a worse p99.
	records[2].Load = &loadSummary{RPS: 1200, P99Ms: 6}
	rows = summarize(records, allTargets)
	if r := findRow(t, rows, "mesh: requests/s"); r.Result != "MISS" {
		t.Errorf("1.2x: %s, want MISS", r.Result)
	}
	if r := findRow(t, rows, "mesh: p99 latency"); r.Result != "MISS" {
		t.Errorf("p99 6 ms vs 5 ms: %s, want MISS", r.Result)
	}

	var out bytes.Buffer
	printTable(&out, rows)
	text := out.String()
	for _, want := range []string{"wattd/cluster", "wattd/tcp", "cluster  tcp"} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	// Each header comes before its section's rows.
	if i, j := strings.Index(text, "wattd/tcp"), strings.Index(text, "mesh: requests/s"); i < 0 || i > j {
		t.Errorf("tcp header not before the mesh rows:\n%s", text)
	}
}

func TestPrintTableOneBaseline(t *testing.T) {
	// Without mesh, the table reads as it always did: one header.
	rows := summarize([]runRecord{loadRec("wattd", "throughput", 1000, 5), loadRec("cluster", "throughput", 800, 6)},
		[]string{"wattd", "cluster"})
	var out bytes.Buffer
	printTable(&out, rows)
	if n := strings.Count(out.String(), "metric"); n != 1 {
		t.Errorf("%d headers, want 1:\n%s", n, out.String())
	}
	// Only mesh: the all-runs rows stay under the tcp header.
	rows = summarize([]runRecord{loadRec("wattd", "mesh", 1000, 5), loadRec("tcp", "mesh", 800, 6)}, allTargets)
	out.Reset()
	printTable(&out, rows)
	if n := strings.Count(out.String(), "metric"); n != 1 || !strings.Contains(out.String(), "wattd/tcp") {
		t.Errorf("mesh only:\n%s", out.String())
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

// TestMeshBaseline runs the mesh scenario's tcp baseline end to end for a
// moment: the two fixture apps as plain node processes, the entry calling
// the internal app over loopback TCP.
func TestMeshBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node in PATH")
	}
	var stdout, stderr bytes.Buffer
	status := run([]string{"-targets", "tcp", "-scenarios", "mesh", "-fixtures", "../../testdata/bench",
		"-duration", "500ms", "-warmup", "0s", "-conns", "4"}, &stdout, &stderr)
	if status != exitOK {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "mesh: requests/s") || strings.Contains(out, "problems:") {
		t.Errorf("report:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "(exit 0)") {
		t.Errorf("the baseline did not stop with exit 0:\n%s", stderr.String())
	}
}
