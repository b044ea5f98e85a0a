package logs

import (
	"sync"
	"time"
)

// Limiter lets one warning of a kind through per period and counts the
// ones it holds back, so that the next one let through can say how many
// were left out: what keeps a misbehaving worker, or a failing exporter,
// from flooding wattd's own log. The zero value is ready; it is safe for
// concurrent use.
type Limiter struct {
	mu   sync.Mutex
	last time.Time // when the last one was let through
	held uint64    // held back since
}

// Allow reports whether a warning may be logged at now, no other having
// been within every before it, and how many were held back since the last
// one let through; held back, it is counted.
func (l *Limiter) Allow(now time.Time, every time.Duration) (held uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.held++
		return 0, false
	}
	held = l.held
	l.last, l.held = now, 0
	return held, true
}
