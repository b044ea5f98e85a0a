package supervisor

import "time"

// StartBuckets are the upper bounds, in seconds, of the buckets the
// metrics endpoint sorts worker start durations into: from a plain Node.js
// server's tenth of a second to a framework that builds on start.
var StartBuckets = [...]float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120}

// startHistogram counts a slot's starts by bucket of StartBuckets, each
// start in the first bucket it fits; longer ones are in none.
type startHistogram [len(StartBuckets)]uint64

func (h *startHistogram) observe(d time.Duration) {
	s := d.Seconds()
	for i, le := range StartBuckets {
		if s <= le {
			h[i]++
			return
		}
	}
}

// cumulative returns, for each bound of StartBuckets, the starts that
// took no longer; nil before the first.
func (h *startHistogram) cumulative() []uint64 {
	out := make([]uint64, len(h))
	var n uint64
	for i, c := range h {
		n += c
		out[i] = n
	}
	if n == 0 {
		return nil
	}
	return out
}
