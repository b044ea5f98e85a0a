package v8profile

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// A call tree root -> main (app.js:1) -> {work (app.js:5), (garbage
// collector)}, and (idle) under the root; samples hit work twice, main
// once, the GC once and idle once.
const small = `{"nodes":[
 {"id":1,"callFrame":{"functionName":"(root)","scriptId":"0","url":"","lineNumber":-1,"columnNumber":-1},"hitCount":0,"children":[2,5]},
 {"id":2,"callFrame":{"functionName":"main","scriptId":"1","url":"file:///app.js","lineNumber":0,"columnNumber":0},"hitCount":1,"children":[3,4]},
 {"id":3,"callFrame":{"functionName":"work","scriptId":"1","url":"file:///app.js","lineNumber":4,"columnNumber":2},"hitCount":2},
 {"id":4,"callFrame":{"functionName":"(garbage collector)","scriptId":"0","url":"","lineNumber":-1,"columnNumber":-1},"hitCount":1},
 {"id":5,"callFrame":{"functionName":"(idle)","scriptId":"0","url":"","lineNumber":-1,"columnNumber":-1},"hitCount":1}],
 "startTime":1000,"endTime":6000,"samples":[3,3,2,4,5],"timeDeltas":[500,1000,1000,1000,1000]}`

func TestCPUToPprof(t *testing.T) {
	v8, err := ReadCPU(strings.NewReader(small))
	if err != nil {
		t.Fatal(err)
	}
	p, err := CPUToPprof(v8, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	p, got := roundTrip(t, p)
	// Each sample stands for the time until the next; the last for the
	// time until the end (6000 - 5500 µs).
	want := map[string][2]int64{
		"work<main":                {2, 2_000_000},
		"main":                     {1, 1_000_000},
		"(garbage collector)<main": {1, 1_000_000},
		"(idle)":                   {1, 500_000},
	}
	if len(got) != len(want) {
		t.Fatalf("samples %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	if p.Period != 1_000_000 || p.DurationNanos != 5_000_000 || p.SampleType[1].Type != "wall" {
		t.Errorf("period %d, duration %d, types %v", p.Period, p.DurationNanos, p.SampleType)
	}
	for _, l := range p.Location {
		if f := l.Line[0].Function; f.Name == "work" && (f.Filename != "file:///app.js" || l.Line[0].Line != 5 || l.Line[0].Column != 3) {
			t.Errorf("work at %s:%d:%d, want line 5 column 3 (V8 counts from 0)", f.Filename, l.Line[0].Line, l.Line[0].Column)
		}
	}
}

func TestBadCPUProfiles(t *testing.T) {
	for name, text := range map[string]string{
		"not JSON":        `{"nodes":`,
		"no tree":         `{"nodes":[],"samples":[],"timeDeltas":[]}`,
		"deltas":          `{"nodes":[{"id":1,"callFrame":{}}],"samples":[1],"timeDeltas":[]}`,
		"unknown child":   `{"nodes":[{"id":1,"callFrame":{},"children":[9]}],"samples":[],"timeDeltas":[]}`,
		"unknown sample":  `{"nodes":[{"id":1,"callFrame":{}}],"samples":[9],"timeDeltas":[1]}`,
		"cycle":           `{"nodes":[{"id":1,"callFrame":{},"children":[2]},{"id":2,"callFrame":{},"children":[1]}],"samples":[2],"timeDeltas":[1]}`,
		"two parents":     `{"nodes":[{"id":1,"callFrame":{},"children":[3]},{"id":2,"callFrame":{},"children":[3]},{"id":3,"callFrame":{}}],"samples":[3],"timeDeltas":[1]}`,
		"duplicate nodes": `{"nodes":[{"id":1,"callFrame":{}},{"id":1,"callFrame":{}}],"samples":[],"timeDeltas":[]}`,
	} {
		v8, err := ReadCPU(strings.NewReader(text))
		if err == nil {
			_, err = CPUToPprof(v8, time.Millisecond)
		}
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// roundTrip writes p and reads it back, as go tool pprof would, and gives
// its samples' values by stack ("leaf<caller<...").
func roundTrip(t *testing.T, p *profile.Profile) (*profile.Profile, map[string][2]int64) {
	t.Helper()
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]int64{}
	for _, s := range p.Sample {
		var names []string
		for _, l := range s.Location {
			names = append(names, l.Line[0].Function.Name)
		}
		got[strings.Join(names, "<")] = [2]int64{s.Value[0], s.Value[1]}
	}
	return p, got
}
