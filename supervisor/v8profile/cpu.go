// Package v8profile turns V8's profiles into pprof profiles, the format
// `go tool pprof`, Watt's `wattpm pprof` files and the flame graph tools
// that read them share: the CPU profile (the .cpuprofile JSON that the
// inspector's Profiler.stop gives, and Chrome DevTools loads) and the
// sampling heap profile (HeapProfiler.stopSampling's).
//
// V8's CPU profile is a call tree (nodes, each a call frame with its
// children) and, in time order, the node each sample hit and the time
// since the sample before it. A pprof sample is a stack of locations, leaf
// first, with values: here the number of samples and the wall time they
// stand for, each sample standing for the time until the next one (the
// last for the time until the profile's end). Samples with the same stack
// are one.
package v8profile

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/pprof/profile"
)

// CPU is the part of a .cpuprofile this package reads.
type CPU struct {
	Nodes      []Node  `json:"nodes"`
	StartTime  int64   `json:"startTime"` // microseconds
	EndTime    int64   `json:"endTime"`
	Samples    []int64 `json:"samples"`    // node ids
	TimeDeltas []int64 `json:"timeDeltas"` // microseconds since the sample before

	// Maps, when set, maps the call frames to their sources.
	Maps *SourceMaps `json:"-"`
}

// Node is a node of V8's call tree.
type Node struct {
	ID        int64     `json:"id"`
	CallFrame CallFrame `json:"callFrame"`
	Children  []int64   `json:"children"`
}

// ReadCPU decodes a .cpuprofile.
func ReadCPU(r io.Reader) (*CPU, error) {
	var p CPU
	if err := json.NewDecoder(r).Decode(&p); err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if len(p.Nodes) == 0 {
		return nil, fmt.Errorf("cpu profile: no call tree")
	}
	if len(p.TimeDeltas) != len(p.Samples) {
		return nil, fmt.Errorf("cpu profile: %d samples but %d time deltas", len(p.Samples), len(p.TimeDeltas))
	}
	return &p, nil
}

// CPUToPprof makes the pprof profile of p; interval is the sampling
// interval it was taken with.
func CPUToPprof(p *CPU, interval time.Duration) (*profile.Profile, error) {
	nodes := make(map[int64]*Node, len(p.Nodes))
	parent := make(map[int64]int64, len(p.Nodes))
	for i := range p.Nodes {
		n := &p.Nodes[i]
		if _, dup := nodes[n.ID]; dup {
			return nil, fmt.Errorf("cpu profile: node %d twice", n.ID)
		}
		nodes[n.ID] = n
	}
	for _, n := range nodes {
		for _, c := range n.Children {
			if _, ok := nodes[c]; !ok {
				return nil, fmt.Errorf("cpu profile: node %d has an unknown child %d", n.ID, c)
			}
			if _, twice := parent[c]; twice {
				return nil, fmt.Errorf("cpu profile: node %d has two parents", c)
			}
			parent[c] = n.ID
		}
	}
	out := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "wall", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "wall", Unit: "nanoseconds"},
		Period:     interval.Nanoseconds(),
		// TimeNanos is left to the caller: V8's times are of a
		// monotonic clock, not the wall clock's.
	}
	if p.EndTime > p.StartTime {
		out.DurationNanos = (p.EndTime - p.StartTime) * 1000
	}
	locs := newLocations(out, p.Maps)
	location := locs.of
	// stacks holds each node's stack, leaf first, without the root.
	stacks := map[int64][]*profile.Location{}
	var stackOf func(id int64, depth int) ([]*profile.Location, error)
	stackOf = func(id int64, depth int) ([]*profile.Location, error) {
		if s, ok := stacks[id]; ok {
			return s, nil
		}
		if depth > len(nodes) {
			return nil, fmt.Errorf("cpu profile: the call tree has a cycle")
		}
		n := nodes[id]
		up, hasParent := parent[id]
		if !hasParent {
			stacks[id] = nil // the root, "(root)"
			return nil, nil
		}
		rest, err := stackOf(up, depth+1)
		if err != nil {
			return nil, err
		}
		s := append([]*profile.Location{location(n.CallFrame)}, rest...)
		stacks[id] = s
		return s, nil
	}
	byStack := map[string]*profile.Sample{}
	at := p.StartTime
	for i, id := range p.Samples {
		if _, ok := nodes[id]; !ok {
			return nil, fmt.Errorf("cpu profile: sample %d hits unknown node %d", i, id)
		}
		at += p.TimeDeltas[i]
		// The time until the next sample, or until the profile's end.
		var wall int64
		if i+1 < len(p.Samples) {
			wall = p.TimeDeltas[i+1]
		} else if p.EndTime > at {
			wall = p.EndTime - at
		}
		wall = max(wall, 0) * 1000
		stack, err := stackOf(id, 0)
		if err != nil {
			return nil, err
		}
		if len(stack) == 0 {
			continue // the root itself: nothing ran
		}
		s := byStack[stackKey(stack)]
		if s == nil {
			s = &profile.Sample{Location: stack, Value: []int64{0, 0}}
			byStack[stackKey(stack)] = s
			out.Sample = append(out.Sample, s)
		}
		s.Value[0]++
		s.Value[1] += wall
	}
	if err := out.CheckValid(); err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return out, nil
}
