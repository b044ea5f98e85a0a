package ipc

import (
	"math"
	"testing"
)

// TestRecentQuantile: the quantile of every series' window together, and
// no figure from a window that breaks the protocol or holds nothing.
func TestRecentQuantile(t *testing.T) {
	sc := &WindowScale{Sub: 16, MinExp: -17, Buckets: 384}
	mid := func(b int) float64 { return math.Exp2(-17 + (float64(b)+0.5)/16) }
	h := &Histogram{Window: sc, Series: []HistogramSeries{
		{Method: "GET", StatusCode: 200, Window: []uint64{100, 90, 200, 1}},
		{Method: "GET", StatusCode: 500, Window: []uint64{150, 9}},
	}}
	// 100 requests: 90 in bucket 100, 9 in 150, 1 in 200.
	for q, want := range map[float64]float64{0.5: mid(100), 0.9: mid(100), 0.95: mid(150), 0.99: mid(150), 0.999: mid(200)} {
		if got, ok := h.RecentQuantile(q); !ok || got != want {
			t.Errorf("quantile %v = %v %v, want %v", q, got, ok, want)
		}
	}
	for name, bad := range map[string]*Histogram{
		"nil":          nil,
		"no window":    {Series: h.Series},
		"empty":        {Window: sc, Series: []HistogramSeries{{Window: []uint64{}}}},
		"odd":          {Window: sc, Series: []HistogramSeries{{Window: []uint64{1}}}},
		"past scale":   {Window: sc, Series: []HistogramSeries{{Window: []uint64{384, 1}}}},
		"huge scale":   {Window: &WindowScale{Sub: 16, MinExp: -17, Buckets: 1 << 30}, Series: h.Series},
		"zero per oct": {Window: &WindowScale{Sub: 0, MinExp: -17, Buckets: 384}, Series: h.Series},
		// Within every single bound, but its last buckets past 2^64 s and
		// the top one past what a float64 holds.
		"ends past 2^64": {Window: &WindowScale{Sub: 1, MinExp: 64, Buckets: 4096}, Series: []HistogramSeries{{Window: []uint64{4095, 1}}}},
	} {
		if got, ok := bad.RecentQuantile(0.99); ok {
			t.Errorf("%s: quantile %v from a window that gives none", name, got)
		}
	}
}
