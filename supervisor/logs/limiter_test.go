package logs

import (
	"testing"
	"time"
)

func TestLimiterOnePerPeriod(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1000, 0)
	if held, ok := l.Allow(t0, time.Minute); !ok || held != 0 {
		t.Fatalf("first: %d, %v", held, ok)
	}
	for i := range 5 {
		if _, ok := l.Allow(t0.Add(time.Duration(i+1)*time.Second), time.Minute); ok {
			t.Fatalf("let through %d s after the last", i+1)
		}
	}
	if held, ok := l.Allow(t0.Add(time.Minute), time.Minute); !ok || held != 5 {
		t.Fatalf("after the period: %d held, %v; want 5, true", held, ok)
	}
	if held, ok := l.Allow(t0.Add(2*time.Minute), time.Minute); !ok || held != 0 {
		t.Fatalf("the count starts afresh: %d, %v", held, ok)
	}
}
