package v8profile

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/pprof/profile"
)

// Heap is V8's sampling heap profile (HeapProfiler.stopSampling): a call
// tree whose nodes carry the bytes of the sampled allocations made there
// and still alive, and the samples, each an allocation at a node.
//
// In pprof each node with allocations is a sample whose stack is the
// node's path from the root: its objects (the samples at it) and space
// (its bytes).
type Heap struct {
	Head    HeapNode     `json:"head"`
	Samples []HeapSample `json:"samples"`

	// Maps, when set, maps the call frames to their sources.
	Maps *SourceMaps `json:"-"`
}

// HeapNode is a node of the heap profile's call tree.
type HeapNode struct {
	ID        int64      `json:"id"`
	CallFrame CallFrame  `json:"callFrame"`
	SelfSize  int64      `json:"selfSize"`
	Children  []HeapNode `json:"children"`
}

// HeapSample is one sampled allocation still alive.
type HeapSample struct {
	Size   int64 `json:"size"`
	NodeID int64 `json:"nodeId"`
}

// ReadHeap decodes a sampling heap profile.
func ReadHeap(r io.Reader) (*Heap, error) {
	var p Heap
	if err := json.NewDecoder(r).Decode(&p); err != nil {
		return nil, fmt.Errorf("heap profile: %w", err)
	}
	return &p, nil
}

// maxHeapDepth bounds the call tree's depth: V8's stacks are far shorter,
// and a deeper tree is not one V8 made.
const maxHeapDepth = 10000

// HeapToPprof makes the pprof profile of p; interval is the mean bytes
// between samples it was taken with.
func HeapToPprof(p *Heap, interval int64) (*profile.Profile, error) {
	out := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "objects", Unit: "count"}, {Type: "space", Unit: "bytes"}},
		PeriodType: &profile.ValueType{Type: "space", Unit: "bytes"},
		Period:     interval,
	}
	objects := map[int64]int64{}
	for _, s := range p.Samples {
		objects[s.NodeID]++
	}
	locs := newLocations(out, p.Maps)
	seen := map[int64]bool{}
	var walk func(n *HeapNode, stack []*profile.Location, depth int) error
	walk = func(n *HeapNode, stack []*profile.Location, depth int) error {
		if depth > maxHeapDepth {
			return fmt.Errorf("heap profile: the call tree is deeper than %d", maxHeapDepth)
		}
		if seen[n.ID] {
			return fmt.Errorf("heap profile: node %d twice", n.ID)
		}
		seen[n.ID] = true
		if depth > 0 { // the root, "(root)", is no frame
			stack = append([]*profile.Location{locs.of(n.CallFrame)}, stack...)
		}
		if n.SelfSize > 0 || objects[n.ID] > 0 {
			if len(stack) == 0 {
				return fmt.Errorf("heap profile: allocations at the root")
			}
			out.Sample = append(out.Sample, &profile.Sample{Location: stack, Value: []int64{objects[n.ID], n.SelfSize}})
		}
		for i := range n.Children {
			if err := walk(&n.Children[i], stack, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(&p.Head, nil, 0); err != nil {
		return nil, err
	}
	// V8 now and then lists a sample whose node the tree it gives with it
	// lacks (seen once in many profiles of a busy app): that sample is
	// left out and counted in a comment, rather than the whole profile
	// refused.
	var unknown int64
	for id, n := range objects {
		if !seen[id] {
			unknown += n
		}
	}
	if unknown > 0 {
		out.Comments = append(out.Comments, fmt.Sprintf("%d sample(s) at nodes missing from V8's call tree were left out", unknown))
	}
	if err := out.CheckValid(); err != nil {
		return nil, fmt.Errorf("heap profile: %w", err)
	}
	return out, nil
}
