package main

import (
	"os"
	"strings"
	"testing"
)

// TestScaleVerdict: the verdict is on the median idle window over every
// run, against the 1% goal.
func TestScaleVerdict(t *testing.T) {
	for _, tc := range []struct {
		windows [][]float64
		want    string
	}{
		{[][]float64{{0.4, 0.5, 3.0}}, "PASS"},
		{[][]float64{{0.4, 1.2}, {1.5, 2.0}}, "MISS"},
	} {
		var runs []scaleResult
		for _, w := range tc.windows {
			runs = append(runs, scaleResult{workers: 200, readyMs: 1000, idlePct: w})
		}
		var out strings.Builder
		printScale(&out, runs)
		if !strings.Contains(out.String(), "goal <= 1%: "+tc.want) {
			t.Errorf("windows %v: want %s in\n%s", tc.windows, tc.want, out.String())
		}
	}
}

// TestCgroupPathsOfSelf: /proc/self/cgroup reads as controllers to paths,
// and a process alone (no workers) has no runtime cgroups to check.
func TestCgroupPathsOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/cgroup"); err != nil {
		t.Skip("no /proc/self/cgroup")
	}
	paths := cgroupPaths(os.Getpid())
	if len(paths) == 0 {
		t.Fatal("no cgroup read for this process")
	}
	for ctrl, p := range paths {
		if !strings.HasPrefix(p, "/") {
			t.Errorf("controller %q: path %q is not absolute", ctrl, p)
		}
	}
	if got := runtimeCgroups(processTree(os.Getpid())[:1]); got != nil {
		t.Errorf("runtime cgroups of a lone process: %v", got)
	}
}
