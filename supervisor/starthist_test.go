package supervisor

import (
	"slices"
	"testing"
	"time"
)

func TestStartHistogram(t *testing.T) {
	var h startHistogram
	if h.cumulative() != nil {
		t.Error("no start yet: want nil")
	}
	for _, d := range []time.Duration{
		50 * time.Millisecond, 100 * time.Millisecond, // a bound counts in its own bucket
		300 * time.Millisecond, 4 * time.Second, 3 * time.Minute, // over the last bound: in none
	} {
		h.observe(d)
	}
	want := []uint64{2, 2, 3, 3, 3, 4, 4, 4, 4, 4}
	if got := h.cumulative(); !slices.Equal(got, want) {
		t.Errorf("cumulative = %v, want %v", got, want)
	}
	if !slices.IsSorted(StartBuckets[:]) {
		t.Errorf("StartBuckets %v are not in order", StartBuckets)
	}
}
