package supervisor

import (
	"testing"
	"time"
)

// TestStatusWhileRunStarts reads the status, as the admin API does from
// the moment it serves, while Run starts; run with -race.
func TestStatusWhileRunStarts(t *testing.T) {
	tr := newLiveRuntime(t, nil, testApp{id: "web", behaviour: "ready"})
	before := time.Now()
	done := make(chan struct{})
	polled := make(chan RuntimeStatus, 1)
	go func() {
		defer close(polled)
		var st RuntimeStatus
		for {
			select {
			case <-done:
				polled <- st
				return
			default:
				st = tr.Status()
			}
		}
	}()
	tr.start()
	tr.waitReady("web", 0)
	close(done)
	st := <-polled
	if st.StartedAt.IsZero() || st.StartedAt.After(time.Now()) || st.Uptime < 0 {
		t.Fatalf("status %+v: want a start time in the past", st)
	}
	if final := tr.Status(); final.StartedAt.Before(before.Add(-time.Minute)) || final.State != "running" || final.Ready != 1 {
		t.Fatalf("status %+v: want running with its start time", final)
	}
}

func TestInspectorOption(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, ""},
		{[]string{"NODE_OPTIONS=--max-old-space-size=64"}, ""},
		{[]string{"NODE_OPTIONS=--inspect-port=9230"}, ""},
		{[]string{"NODE_OPTIONS=--max-old-space-size=64 --inspect=127.0.0.1:9230"}, "--inspect=127.0.0.1:9230"},
		{[]string{"NODE_OPTIONS=--inspect"}, "--inspect"},
		{[]string{"NODE_OPTIONS=--inspect-brk"}, "--inspect-brk"},
		{[]string{"NODE_OPTIONS=--inspect-wait=0.0.0.0:9229"}, "--inspect-wait=0.0.0.0:9229"},
		{[]string{"XNODE_OPTIONS=--inspect"}, ""},
	} {
		if got := inspectorOption(c.env); got != c.want {
			t.Errorf("inspectorOption(%q) = %q, want %q", c.env, got, c.want)
		}
	}
}
