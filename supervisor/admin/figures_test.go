package admin

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor"
)

func TestFiguresCgroupColumns(t *testing.T) {
	oom, full := uint64(2), 0.3
	apps := []supervisor.AppStatus{{ID: "api", Workers: []supervisor.WorkerStatus{
		{Index: 0, PID: 10, State: "ready", CgroupOOMKills: &oom, LogLinesDropped: 7, LogLinesTruncated: 1,
			CPUThrottling: &supervisor.CPUThrottling{Periods: 100, ThrottledPeriods: 40, ThrottledSeconds: 3},
			Pressure:      &supervisor.Pressure{CPU: &supervisor.Stall{SomeSeconds: 0.7, FullSeconds: &full}, IO: &supervisor.Stall{SomeSeconds: 0.02}}},
		{Index: 1, PID: 11, State: "ready"},
	}}}
	rows := Figures(apps)
	var b strings.Builder
	RenderFigures(&b, rows)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows:\n%s", b.String())
	}
	if !strings.HasSuffix(strings.Join(strings.Fields(lines[0]), " "), "START CG-OOM THROTTLED PRESSURE LOG-DROP") {
		t.Errorf("header %q", lines[0])
	}
	if got := strings.Join(strings.Fields(lines[1]), " "); !strings.HasSuffix(got, " 2 40/100 3.00s 0.70s/-/0.02s 7 (1 cut)") {
		t.Errorf("row with cgroup figures: %q", got)
	}
	if got := strings.Join(strings.Fields(lines[2]), " "); !strings.HasSuffix(got, " - - - 0") {
		t.Errorf("row without: %q", got)
	}
	data, err := json.Marshal(rows[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"cgroupOomKills":2`, `"cpuThrottling":{"periods":100,"throttledPeriods":40,"throttledSeconds":3}`,
		`"pressure":{"cpu":{"someSeconds":0.7,"fullSeconds":0.3},"io":{"someSeconds":0.02}}`, `"logLinesDropped":7`, `"logLinesTruncated":1`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("JSON lacks %s: %s", want, data)
		}
	}
}

// TestFiguresRequestsZeroWithMetricsOn: a worker that served nothing with
// metrics on shows 0 requests; "-" is for metrics off.
func TestFiguresRequestsZeroWithMetricsOn(t *testing.T) {
	apps := []supervisor.AppStatus{{ID: "api", Workers: []supervisor.WorkerStatus{
		{Index: 0, PID: 10, State: "ready", Requests: &ipc.Histogram{}},
		{Index: 1, PID: 11, State: "ready"},
	}}}
	rows := Figures(apps)
	if rows[0].Requests == nil || *rows[0].Requests != 0 || rows[1].Requests != nil {
		t.Fatalf("requests %v and %v, want 0 and absent", rows[0].Requests, rows[1].Requests)
	}
	var b strings.Builder
	RenderFigures(&b, rows)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	col := slices.Index(strings.Fields(lines[0]), "REQUESTS") - 1 // "LAG P99" is two words in the header
	for i, want := range []string{"0", "-"} {
		if got := strings.Fields(lines[i+1]); len(got) <= col || got[col] != want {
			t.Errorf("row %d: REQUESTS %q, want %q: %q", i, got, want, lines[i+1])
		}
	}
	data, _ := json.Marshal(rows)
	if !strings.Contains(string(data), `"requests":0`) || strings.Count(string(data), `"requests"`) != 1 {
		t.Errorf("JSON: %s", data)
	}
}
