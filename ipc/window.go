package ipc

import "math"

// Bounds on a worker's WindowScale: a scale past them is not the
// protocol's, and wattd reads no quantiles from it. The scale's last
// bucket ends at 2^maxWindowExp seconds at most.
const (
	MaxWindowBuckets = 4096
	maxWindowSub     = 256
	maxWindowExp     = 64
)

// Valid tells whether the scale is within the protocol's bounds.
func (sc WindowScale) Valid() bool {
	return sc.Sub >= 1 && sc.Sub <= maxWindowSub && sc.Buckets >= 1 && sc.Buckets <= MaxWindowBuckets &&
		sc.MinExp >= -maxWindowExp && sc.MinExp+(sc.Buckets+sc.Sub-1)/sc.Sub <= maxWindowExp
}

// Quantiles reads the quantiles qs (ascending) from a window's pairs of
// bucket and count (HistogramSeries.Window): the quantile q is the middle,
// on the log scale, of the bucket that holds the ceil(q×n)-th smallest
// value, within half a bucket of the true one (2.2% at 16 buckets a
// doubling). With no count in the window every quantile is NaN. ok is
// false for a scale or pairs that break the protocol (odd length, buckets
// out of order or past the scale).
func (sc WindowScale) Quantiles(pairs []uint64, qs []float64) (_ map[float64]float64, ok bool) {
	if !sc.Valid() || len(pairs)%2 != 0 || len(pairs) > 2*sc.Buckets {
		return nil, false
	}
	var n uint64
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i] >= uint64(sc.Buckets) || i > 0 && pairs[i] <= pairs[i-2] {
			return nil, false
		}
		n += pairs[i+1]
	}
	out := make(map[float64]float64, len(qs))
	for _, q := range qs {
		out[q] = math.NaN()
	}
	if n == 0 {
		return out, true
	}
	var seen uint64
	k := 0
	for i := 0; i < len(pairs) && k < len(qs); i += 2 {
		seen += pairs[i+1]
		for k < len(qs) && float64(seen) >= math.Max(1, math.Ceil(qs[k]*float64(n))) {
			out[qs[k]] = math.Exp2(float64(sc.MinExp) + (float64(pairs[i])+0.5)/float64(sc.Sub))
			k++
		}
	}
	return out, true
}

// RecentQuantile is the quantile q of every series' window together: for
// the requests a worker served in its window, whatever their method and
// status. ok is false when h has no window, a series' window breaks the
// protocol, or no request is in it.
func (h *Histogram) RecentQuantile(q float64) (float64, bool) {
	if h == nil || h.Window == nil || !h.Window.Valid() {
		return 0, false
	}
	merged := make([]uint64, h.Window.Buckets)
	for _, s := range h.Series {
		if len(s.Window)%2 != 0 {
			return 0, false
		}
		for i := 0; i < len(s.Window); i += 2 {
			if s.Window[i] >= uint64(len(merged)) {
				return 0, false
			}
			merged[s.Window[i]] += s.Window[i+1]
		}
	}
	var pairs []uint64
	for b, n := range merged {
		if n != 0 {
			pairs = append(pairs, uint64(b), n)
		}
	}
	qv, ok := h.Window.Quantiles(pairs, []float64{q})
	if !ok || math.IsNaN(qv[q]) {
		return 0, false
	}
	return qv[q], true
}
