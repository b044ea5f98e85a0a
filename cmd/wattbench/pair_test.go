package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
		if !equalInts(got, c.want) {
			t.Errorf("%d sides, first %d: order %v, want %v", c.n, c.first, got, c.want)
		}
	}
	for d, want := range map[time.Duration]int{100 * time.Millisecond: 1, time.Second: 1, 1600 * time.Millisecond: 2, 5 * time.Second: 5} {
		if n := pairSlices(d, time.Second); n != want {
			t.Errorf("pairSlices(%s) = %d, want %d", d, n, want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMetricsRoundIsPaired runs one real round of the metrics scenario:
// both variants must have served load, in the same number of slices'
// worth of time, and the "on" one must have been scraped.
func TestMetricsRoundIsPaired(t *testing.T) {
	node := node24OrSkip(t)
	wattd := os.Getenv("WATTD_BIN")
	if wattd == "" {
		t.Skip("WATTD_BIN not set")
	}
	jsonOut := filepath.Join(t.TempDir(), "out.json")
	var stdout, stderr bytes.Buffer
	status := run([]string{"-scenarios", "metrics", "-fixtures", "../../testdata/bench",
		"-wattd", wattd, "-node", node, "-rounds", "1", "-duration", "2s", "-warmup", "0s", "-conns", "4", "-json", jsonOut}, &stdout, &stderr)
	raw, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatalf("status %d, no JSON: %v\nstderr:\n%s", status, err, stderr.String())
	}
	var doc struct {
		Runs []runRecord `json:"runs"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Runs) != 2 {
		t.Fatalf("runs %s (%v)", raw, err)
	}
	for _, r := range doc.Runs {
		if r.Error != "" || r.Load == nil || r.Load.Requests == 0 {
			t.Fatalf("%s: error %q, load %+v\nstderr:\n%s", r.Target, r.Error, r.Load, stderr.String())
		}
		// Two slices of about 1s each.
		if r.Load.Seconds < 1.8 || r.Load.Seconds > 3 {
			t.Errorf("%s was loaded for %.2fs, want about 2s", r.Target, r.Load.Seconds)
		}
		if r.Port == 0 {
			t.Errorf("%s has no port", r.Target)
		}
	}
	if doc.Runs[0].Port == doc.Runs[1].Port {
		t.Errorf("both sides on port %d", doc.Runs[0].Port)
	}
	if !strings.Contains(stderr.String()+stdout.String(), "scraped /metrics") {
		t.Errorf("no scrape line:\n%s\n%s", stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "on/off median") {
		t.Errorf("no verdict:\n%s", stdout.String())
	}
}
