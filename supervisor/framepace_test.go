package supervisor

import (
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/config"
)

// TestFramePaceBurstThenRate: a worker may send paceBurst frames at once;
// beyond them its reader waits, and it gets paceFrames a second back.
func TestFramePaceBurstThenRate(t *testing.T) {
	var f framePace
	now := time.Unix(1000, 0)
	for i := range paceBurst {
		if d := f.wait(now, 1); d != 0 {
			t.Fatalf("frame %d of a burst waits %s", i+1, d)
		}
	}
	if d := f.wait(now, 1); d != paceNap {
		t.Fatalf("the frame after the burst waits %s, want %s", d, paceNap)
	}
	// A nap's worth of time gives a nap's worth of frames.
	now = now.Add(paceNap)
	n := 0
	for f.wait(now, 1) == 0 {
		n++
	}
	if want := int(paceNap.Seconds() * paceFrames); n < want-1 || n > want {
		t.Fatalf("after a nap, %d frames passed; want about %d", n, want)
	}
	// Quiet for long enough, the whole burst is back, and no more.
	now = now.Add(time.Hour)
	n = 0
	for f.wait(now, 1) == 0 {
		n++
	}
	if n != paceBurst {
		t.Fatalf("after an hour, %d frames passed at once; want %d", n, paceBurst)
	}
}

// TestControlFloodIsPaced: a worker that writes stats frames as fast as it
// can is read at the pace, with one warning, and stays ready; the frames
// are all read, in order. Without the pace the 3,500 frames were read in
// a few milliseconds.
func TestControlFloodIsPaced(t *testing.T) {
	const frames = paceBurst + 1500 // 1.5 s beyond the burst
	// It answers no drain: the stop waits the application's grace.
	tr := startRuntime(t, func(c *config.Config) { c.GracefulShutdown.Application = time.Second },
		testApp{id: "web", entry: true, behaviour: "flood:3500"})
	tr.waitReady("web", 0)
	start := time.Now()
	s := tr.slot("web", 0)
	var last uint64
	eventually(t, "the last stats frame read", func() bool {
		last = s.status().HeapUsed
		return last == frames
	})
	took := time.Since(start)
	t.Logf("%d frames read in %s", frames, took)
	// 1,500 frames beyond the burst at paceFrames a second: 1.5 s, less
	// what went by between the worker's ready and this test seeing it.
	if took < time.Second {
		t.Fatalf("%d frames read in %s: not paced", frames, took)
	}
	if n := tr.logs.FilterMessage(paceWarning).Len(); n != 1 {
		t.Fatalf("%d pace warnings, want 1", n)
	}
	if st := s.status(); st.State != "ready" {
		t.Fatalf("flooding worker is %s", st.State)
	}
	if body, err := tr.get("/"); err != nil {
		t.Fatalf("the flooding worker no longer serves: %q, %v", body, err)
	}
}

// TestFloodingWorkerStopsPromptly: once wattd asks a worker to drain, its
// frames are read at once, so its drained is not left behind the backlog
// of a flood (20,000 frames, 18 s at the pace) until the grace runs out.
func TestFloodingWorkerStopsPromptly(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.GracefulShutdown.Application = 8 * time.Second },
		testApp{id: "web", entry: true, behaviour: "flood:20000"})
	tr.waitReady("web", 0)
	eventually(t, "the pace warning", func() bool { return tr.logs.FilterMessage(paceWarning).Len() > 0 })
	start := time.Now()
	if err := tr.stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("stopped in %s", took)
	if n := tr.logs.FilterMessage("worker did not finish in-flight work in time").Len(); n != 0 || took > 4*time.Second {
		t.Fatalf("the stop took %s (%d drain timeouts): the drained frame waited behind the flood", took, n)
	}
}

// TestFramePaceWeighsSize: a frame counts by its size too, so a worker
// that writes 1 MiB frames (each milliseconds of wattd's CPU to decode)
// is held to a few of them a second, while a small stats frame still
// costs about one.
func TestFramePaceWeighsSize(t *testing.T) {
	var f framePace
	now := time.Unix(1000, 0)
	const big = 1 << 20
	cost := 1 + float64(big)/paceBytes
	n := 0
	for f.wait(now, cost) == 0 {
		n++
	}
	if want := int(paceBurst / cost); n < want-1 || n > want+1 {
		t.Fatalf("%d frames of 1 MiB passed at once; want about %d", n, want)
	}
	// A second later, a second's worth of bytes: about 16 MiB.
	now = now.Add(time.Second)
	n = 0
	for f.wait(now, cost) == 0 {
		n++
	}
	if want := int(paceFrames / cost); n < want-1 || n > want+1 {
		t.Fatalf("%d frames of 1 MiB passed in a second; want about %d", n, want)
	}
	// Small frames are barely weighed: 300 bytes cost 1.02 frames.
	var g framePace
	n = 0
	for g.wait(now, 1+300.0/paceBytes) == 0 {
		n++
	}
	if n < paceBurst*98/100 {
		t.Fatalf("%d stats frames passed at once; want about %d", n, paceBurst)
	}
}
