package cgroups

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestParseStall(t *testing.T) {
	tests := []struct {
		name, text string
		want       Stall
		err        bool
	}{
		{name: "some and full",
			text: "some avg10=1.50 avg60=0.80 avg300=0.20 total=2500000\nfull avg10=0.00 avg60=0.10 avg300=0.00 total=1200\n",
			want: Stall{Some: 2500 * time.Millisecond, Full: 1200 * time.Microsecond, HasFull: true}},
		{name: "cpu before 5.13: some only",
			text: "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n",
			want: Stall{Some: 42 * time.Microsecond}},
		{name: "no total", text: "some avg10=0.00 avg60=0.00 avg300=0.00\n", err: true},
		{name: "total not a number", text: "some total=x\n", err: true},
		{name: "full without some", text: "full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n", err: true},
		{name: "empty", text: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStall(tt.text)
			if (err != nil) != tt.err {
				t.Fatalf("parseStall error = %v, want error %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("parseStall = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestThrottling(t *testing.T) {
	v1 := flatKeyed("nr_periods 340\nnr_throttled 12\nthrottled_time 1500000000\nnr_bursts 0\nburst_time 0\n")
	if got, want := throttlingV1(v1), (Throttling{Periods: 340, Throttled: 12, Time: 1500 * time.Millisecond}); got == nil || *got != want {
		t.Errorf("v1 = %+v, want %+v", got, want)
	}
	v2 := flatKeyed("usage_usec 900\nuser_usec 600\nsystem_usec 300\nnr_periods 20\nnr_throttled 3\nthrottled_usec 45000\n")
	if got, want := throttlingV2(v2), (Throttling{Periods: 20, Throttled: 3, Time: 45 * time.Millisecond}); got == nil || *got != want {
		t.Errorf("v2 = %+v, want %+v", got, want)
	}
	// v2 without the cpu controller: usage only, no bandwidth figures.
	if got := throttlingV2(flatKeyed("usage_usec 900\nuser_usec 600\nsystem_usec 300\n")); got != nil {
		t.Errorf("v2 without the cpu controller = %+v, want nil", got)
	}
	if got := throttlingV1(flatKeyed("")); got != nil {
		t.Errorf("v1 empty = %+v, want nil", got)
	}
}

// writeFiles writes cgroup files as the kernel would show them.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// openFakeV2 opens a Manager on a directory laid out like the top of a
// v2 hierarchy that delegates memory, cpu and pids.
func openFakeV2(t *testing.T) *Manager {
	t.Helper()
	mt, top := fakeV2(t, "cpu memory pids")
	m := &Manager{name: "rt", log: zaptest.NewLogger(t), groups: map[*Group]struct{}{}}
	if err := m.openV2(mt, top); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestV2ThrottlingAndPressure reads a worker group laid out like cgroup
// v2: CPU bandwidth figures from cpu.stat, the PSI totals of cpu, memory
// and io.
func TestV2ThrottlingAndPressure(t *testing.T) {
	m := openFakeV2(t)
	g, err := m.Worker("api", 1, Limits{CPUs: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	dir := g.Dirs()[""]
	writeFiles(t, dir, map[string]string{
		"memory.current":  "1048576",
		"pids.current":    "3",
		"memory.events":   "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
		"cpu.stat":        "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\nnr_periods 100\nnr_throttled 40\nthrottled_usec 3000000\nnr_bursts 0\nburst_usec 0\n",
		"cpu.pressure":    "some avg10=0.00 avg60=0.00 avg300=0.00 total=700000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=300000\n",
		"memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4\n",
		// io.pressure missing: that resource alone is absent.
	})
	u, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if u.CPU != 2*time.Second {
		t.Errorf("CPU = %s, want 2s", u.CPU)
	}
	if want := (Throttling{Periods: 100, Throttled: 40, Time: 3 * time.Second}); u.Throttling == nil || *u.Throttling != want {
		t.Errorf("Throttling = %+v, want %+v", u.Throttling, want)
	}
	p := u.Pressure
	if p == nil || p.CPU == nil || p.Memory == nil || p.IO != nil {
		t.Fatalf("Pressure = %+v, want cpu and memory, no io", p)
	}
	if want := (Stall{Some: 700 * time.Millisecond, Full: 300 * time.Millisecond, HasFull: true}); *p.CPU != want {
		t.Errorf("cpu pressure = %+v, want %+v", *p.CPU, want)
	}
	if want := (Stall{Some: 10 * time.Microsecond, Full: 4 * time.Microsecond, HasFull: true}); *p.Memory != want {
		t.Errorf("memory pressure = %+v, want %+v", *p.Memory, want)
	}

	// PSI turned off for the group (cgroup.pressure 0): reading fails,
	// and the figures go without taking the others with them.
	for _, f := range []string{"cpu.pressure", "memory.pressure"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, f), 0o755); err != nil { // read fails with EISDIR
			t.Fatal(err)
		}
	}
	u, err = g.Stats()
	if err != nil || u.Pressure != nil || u.Memory != 1<<20 {
		t.Errorf("without readable PSI: %+v, %v; want no Pressure and the memory still read", u, err)
	}
}

// TestV2OOMKillsOutliveTheirGroup: the count of a worker slot adds up
// the OOM kills of every group made for it, those removed included, and
// never goes down when a group goes.
func TestV2OOMKillsOutliveTheirGroup(t *testing.T) {
	m := openFakeV2(t)
	if _, ok := m.OOMKills("hog", 0); ok {
		t.Error("a slot with no group yet has a count")
	}
	events := func(g *Group, oomKill int) {
		t.Helper()
		writeFiles(t, g.Dirs()[""], map[string]string{
			"memory.events": "low 0\nhigh 0\nmax 9\noom 2\noom_kill " + strconv.Itoa(oomKill) + "\noom_group_kill 1\n",
		})
	}
	g1, err := m.Worker("hog", 0, Limits{Memory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	other, err := m.Worker("web", 0, Limits{Memory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	events(g1, 2)
	events(other, 5)
	if n, ok := m.OOMKills("hog", 0); n != 2 || !ok {
		t.Errorf("live group: %d, %v; want 2", n, ok)
	}
	// A plain directory with files cannot be removed as cgroupfs would;
	// the count is kept before the directory goes either way.
	_ = g1.Remove()
	if n, ok := m.OOMKills("hog", 0); n != 2 || !ok {
		t.Errorf("after its group was removed: %d, %v; want 2", n, ok)
	}
	_ = g1.Remove() // twice: counted once
	g2, err := m.Worker("hog", 0, Limits{Memory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	events(g2, 1)
	if n, _ := m.OOMKills("hog", 0); n != 3 {
		t.Errorf("with the replacement's group: %d, want 3", n)
	}
	if n, _ := m.OOMKills("hog", 1); n != 0 {
		t.Errorf("another slot of the app: %d, want 0", n)
	}
	if n, _ := m.OOMKills("web", 0); n != 5 {
		t.Errorf("another app: %d, want 5", n)
	}
}

// TestV1OOMControlWithoutCounter: kernels before 4.13 have no oom_kill
// line in memory.oom_control; the count is unknown, not 0.
func TestV1OOMControlWithoutCounter(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"})
	if n, known, err := oomKillsIn(V1, dir); err != nil || known || n != 0 {
		t.Errorf("oomKillsIn = %d, %v, %v; want unknown", n, known, err)
	}
	writeFiles(t, dir, map[string]string{"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"})
	if n, known, err := oomKillsIn(V1, dir); err != nil || !known || n != 4 {
		t.Errorf("oomKillsIn = %d, %v, %v; want 4", n, known, err)
	}
}
