package main

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCPUList(t *testing.T) {
	for _, tc := range []struct {
		cpus []int
		want string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{0, 1}, "0-1"},
		{[]int{0, 2, 3, 4, 7}, "0,2-4,7"},
		{[]int{63, 64, 65, 127}, "63-65,127"},
	} {
		var set unix.CPUSet
		for _, c := range tc.cpus {
			set.Set(c)
		}
		if got := cpuList(set); got != tc.want {
			t.Errorf("cpuList(%v) = %q, want %q", tc.cpus, got, tc.want)
		}
	}
}

// TestSameTime runs the hello scenario under wattd and node:cluster with
// the same-time reading: both took load at once, every thread of their
// processes (wattd's workers too) on the targets' half of the CPUs, and
// the bench may use every CPU again afterwards.
func TestSameTime(t *testing.T) {
	split, ok, err := newCPUSplit()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skip("a single CPU")
	}
	b := runBench(t, "-targets", "wattd,cluster", "-scenarios", "hello", "-same-time", "hello", "-duration", "1s")
	if b.status != exitOK || len(b.runs) != 2 {
		t.Fatalf("status %d, runs %s\nstderr:\n%s", b.status, b.raw, b.stderr.String())
	}
	want := cpuList(split.targets)
	for _, r := range b.runs {
		if r.SameTimeRPS <= 0 || r.SameTimeCPUs != want {
			t.Errorf("%s: same-time %.0f req/s, threads on CPU %q; want some, on %q", r.Target, r.SameTimeRPS, r.SameTimeCPUs, want)
		}
	}
	for _, line := range []string{"wattd/cluster requests/s loaded at the same time by round: r1 ",
		"their threads on CPU " + want + ", the load generator on the others"} {
		if !strings.Contains(b.stdout.String(), line) {
			t.Errorf("report lacks %q:\n%s", line, b.stdout.String())
		}
	}
	var now unix.CPUSet
	if err := unix.SchedGetaffinity(0, &now); err != nil || now != split.all {
		t.Errorf("after the round the bench may run on %s (%v), want %s", cpuList(now), err, cpuList(split.all))
	}
}
