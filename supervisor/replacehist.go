package supervisor

import "time"

// ReplacementBuckets are the upper bounds, in seconds, of the buckets the
// metrics endpoint sorts worker replacement times into: from a standby's
// socket hand-over (milliseconds) through a plain Node.js start (a tenth
// of a second) to a framework's, or a replacement held back by the
// restart policy's backoff.
var ReplacementBuckets = [...]float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// replaceHistogram counts a slot's replacements by bucket of
// ReplacementBuckets, each in the first bucket it fits; longer ones are in
// none.
type replaceHistogram struct {
	counts [len(ReplacementBuckets)]uint64
	n      int
	sum    time.Duration
}

func (h *replaceHistogram) observe(d time.Duration) {
	h.n++
	h.sum += d
	s := d.Seconds()
	for i, le := range ReplacementBuckets {
		if s <= le {
			h.counts[i]++
			return
		}
	}
}

// cumulative returns, for each bound of ReplacementBuckets, the
// replacements that took no longer; nil before the first.
func (h *replaceHistogram) cumulative() []uint64 {
	if h.n == 0 {
		return nil
	}
	out := make([]uint64, len(h.counts))
	var n uint64
	for i, c := range h.counts {
		n += c
		out[i] = n
	}
	return out
}
