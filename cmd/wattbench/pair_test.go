package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPairOrder(t *testing.T) {
	for _, c := range []struct {
		n, first int
		want     []int
	}{
		{2, 0, []int{0, 1, 1, 0, 0, 1, 1, 0, 0, 1}},
		{2, 1, []int{1, 0, 0, 1, 1, 0, 0, 1, 1, 0}},
		{3, 0, []int{0, 1, 2, 2, 1, 0, 0, 1, 2}},
		{3, 1, []int{1, 2, 0, 0, 2, 1, 1, 2, 0}},
	} {
		var got []int
		for i := range c.want {
			got = append(got, sideOrder(i, c.n, c.first))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%d sides, first %d: order %v, want %v", c.n, c.first, got, c.want)
		}
	}
	for d, want := range map[time.Duration]int{100 * time.Millisecond: 1, time.Second: 1, 1600 * time.Millisecond: 2, 5 * time.Second: 5} {
		if n := pairSlices(d, time.Second); n != want {
			t.Errorf("pairSlices(%s) = %d, want %d", d, n, want)
		}
	}
}

// TestMetricsRoundIsPaired runs one real round of the metrics scenario:
// both variants must have served load, in the same number of slices'
// worth of time, and the "on" one must have been scraped.
func TestMetricsRoundIsPaired(t *testing.T) {
	b := runBench(t, "-scenarios", "metrics", "-duration", "2s")
	if len(b.runs) != 2 {
		t.Fatalf("runs %s", b.raw)
	}
	for _, r := range b.runs {
		if r.Error != "" || r.Load == nil || r.Load.Requests == 0 {
			t.Fatalf("%s: error %q, load %+v\nstderr:\n%s", r.Target, r.Error, r.Load, b.stderr.String())
		}
		// Two slices of about 1s each.
		if r.Load.Seconds < 1.8 || r.Load.Seconds > 3 {
			t.Errorf("%s was loaded for %.2fs, want about 2s", r.Target, r.Load.Seconds)
		}
		if r.Port == 0 {
			t.Errorf("%s has no port", r.Target)
		}
	}
	if b.runs[0].Port == b.runs[1].Port {
		t.Errorf("both sides on port %d", b.runs[0].Port)
	}
	if !strings.Contains(b.stderr.String()+b.stdout.String(), "scraped /metrics") {
		t.Errorf("no scrape line:\n%s\n%s", b.stdout.String(), b.stderr.String())
	}
	if !strings.Contains(b.stdout.String(), "on/off median") {
		t.Errorf("no verdict:\n%s", b.stdout.String())
	}
}

// TestMeshRoundIsPaired: the mesh scenario's three runners are up at
// once, each on its own port, and take the load in turns, with
// -mesh-conns connections.
func TestMeshRoundIsPaired(t *testing.T) {
	b := runBench(t, "-scenarios", "mesh", "-duration", "2s", "-mesh-conns", "3")
	if len(b.runs) != 3 {
		t.Fatalf("runs %s", b.raw)
	}
	ports := map[int]string{}
	for _, r := range b.runs {
		if r.Error != "" || r.Load == nil || r.Load.Requests == 0 {
			t.Fatalf("%s: error %q, load %+v\nstderr:\n%s", r.Target, r.Error, r.Load, b.stderr.String())
		}
		// Each turn opens its connections.
		if len(r.SliceRPS) != 2 || r.Load.Dials != 6 {
			t.Errorf("%s: turns %v, %d connections dialled; want 2 turns of 3", r.Target, r.SliceRPS, r.Load.Dials)
		}
		if other, dup := ports[r.Port]; dup || r.Port == 0 {
			t.Errorf("%s on port %d, as %q", r.Target, r.Port, other)
		}
		ports[r.Port] = r.Target
	}
}
