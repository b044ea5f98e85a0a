package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram is a log-bucketed latency histogram in the spirit of HDR
// histograms: values below 2*subBuckets nanoseconds are counted exactly and
// every power of two above that is cut into subBuckets linear buckets, so any
// recorded value is known to within 1/subBuckets (about 1.6 %). Recording is
// an index computation and an increment with no allocation, which matters
// because the load generator shares the CPU with the server it measures.
//
// A histogram is not safe for concurrent use: each load connection owns one
// and they are merged once the run is over, which avoids contention on the
// hot path.
type histogram struct {
	counts [histBuckets]uint64
	total  uint64
	min    uint64
	max    uint64
	sum    float64
}

const (
	subBits    = 6
	subBuckets = 1 << subBits // linear buckets per power of two
	// Values below linearLimit get a bucket each.
	linearLimit = 2 * subBuckets
	// One group of subBuckets per exponent from 1 to 64-subBits-1.
	histBuckets = linearLimit + (64-subBits-1)*subBuckets
)

// bucketOf maps a value to its bucket index.
func bucketOf(v uint64) int {
	if v < linearLimit {
		return int(v)
	}
	// Shift v so that it lands in [subBuckets, 2*subBuckets): the shift is
	// the exponent group, the remainder the linear position inside it.
	shift := bits.Len64(v) - subBits - 1
	return linearLimit + (shift-1)*subBuckets + int(v>>uint(shift)) - subBuckets
}

// bucketRange returns the smallest and largest value that land in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < linearLimit {
		return uint64(i), uint64(i)
	}
	shift := uint((i-linearLimit)/subBuckets + 1)
	pos := uint64((i-linearLimit)%subBuckets + subBuckets)
	lo = pos << shift
	hi = lo + (uint64(1) << shift) - 1
	return lo, hi
}

func (h *histogram) record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

func (h *histogram) merge(o *histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// percentile returns the value at quantile q (0..1): the highest value of the
// bucket holding the ceil(q*total)-th smallest sample, clamped to the
// recorded extremes. Reporting the top of the bucket errs on the slow side,
// as HDR histograms do, so a percentile is never flattering.
func (h *histogram) percentile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	switch {
	case q <= 0:
		return time.Duration(h.min)
	case q >= 1:
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			hi = min(hi, h.max)
			hi = max(hi, h.min)
			return time.Duration(hi)
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}
