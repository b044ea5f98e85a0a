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
