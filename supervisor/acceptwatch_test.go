package supervisor

import (
	"testing"
	"time"
)

func TestQueueWatchObserve(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, c := range []struct {
		name    string
		samples []int // one every 100 ms
		want    time.Duration
	}{
		{"empty", []int{0, 0, 0, 0}, 0},
		{"drained between samples", []int{3, 0, 2, 0, 5}, 0},
		{"growing", []int{1, 2, 2, 5}, 300 * time.Millisecond},
		{"full and flat", []int{7, 4096, 4096, 4096, 4096}, 400 * time.Millisecond},
		{"shrank once", []int{4, 6, 5, 5, 9}, 200 * time.Millisecond},
		{"emptied then waiting", []int{4, 6, 0, 1, 1}, 100 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := queueWatch{every: 100 * time.Millisecond}
			var got time.Duration
			for i, n := range c.samples {
				got = q.observe("http", n, at(100*i))
			}
			if got != c.want {
				t.Fatalf("waited %s, want %s", got, c.want)
			}
		})
	}
	t.Run("a gap starts afresh", func(t *testing.T) {
		q := queueWatch{every: 100 * time.Millisecond}
		q.observe("http", 2, at(0))
		q.observe("http", 2, at(100))
		if got := q.observe("http", 2, at(1000)); got != 0 {
			t.Fatalf("after a gap of 900 ms: waited %s, want 0", got)
		}
		if got := q.observe("http", 2, at(1100)); got != 100*time.Millisecond {
			t.Fatalf("waited %s, want 100ms", got)
		}
	})
	t.Run("sockets apart", func(t *testing.T) {
		q := queueWatch{every: 100 * time.Millisecond}
		q.observe("http", 1, at(0))
		q.observe("mesh", 0, at(0))
		q.observe("mesh", 0, at(100))
		if got := q.observe("http", 1, at(100)); got != 100*time.Millisecond {
			t.Fatalf("http waited %s, want 100ms", got)
		}
		q.reset()
		if got := q.observe("http", 1, at(200)); got != 0 {
			t.Fatalf("after reset: waited %s, want 0", got)
		}
	})
}

func TestQueueWatchBusy(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	q := queueWatch{every: 100 * time.Millisecond}
	// A worker that uses 60% of a core while one connection waits at every
	// sample (a handler holding its loop): busy, so the run starts again.
	q.observe("http", 1, at(0))
	if q.busy("http", ms(0), true, at(0)) {
		t.Fatal("busy at the run's first sample")
	}
	q.observe("http", 1, at(100))
	if !q.busy("http", ms(60), true, at(100)) {
		t.Fatal("60 ms of CPU in 100 ms: not busy")
	}
	if got := q.observe("http", 1, at(200)); got != 100*time.Millisecond {
		t.Fatalf("after a busy stretch the run restarts: waited %s, want 100ms", got)
	}
	// Idle from then on: 5 ms of CPU in 900 ms is under a tenth.
	for i := 3; i <= 11; i++ {
		q.observe("http", 1, at(100*i))
	}
	if q.busy("http", ms(65), true, at(1100)) {
		t.Fatal("5 ms of CPU in 1 s: busy")
	}
	// Unknown CPU time is no evidence of idleness.
	if !q.busy("http", 0, false, at(1200)) {
		t.Fatal("unknown CPU time counted as idle")
	}
}
