package supervisor

import (
	"math"
	"testing"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/cgroups"
)

func TestFormatBytes(t *testing.T) {
	for in, want := range map[uint64]string{
		0:                  "0 B",
		1023:               "1023 B",
		1024:               "1.0 KiB",
		1536:               "1.5 KiB",
		45193625:           "43.1 MiB",
		1<<20 - 1:          "1.0 MiB",
		5 << 30:            "5.0 GiB",
		3 << 40:            "3.0 TiB",
		math.MaxUint64:     "16.0 EiB",
		1024*1024*1024 - 1: "1.0 GiB",
	} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestStatusOfAReadySlotWhoseWorkerIsGone: between a worker's exit and
// the slot's move to its next state, the status shows the exit rather
// than a ready slot without a pid.
func TestStatusOfAReadySlotWhoseWorkerIsGone(t *testing.T) {
	rt := testRuntime(map[string][]State{"web": {StateReady}})
	// Cgroups that cannot be used: the status reads none.
	cg, err := cgroups.Open(cgroups.Options{Root: "/proc/wattd-not-writable", Name: "status-test", Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	rt.cgroups = cg
	s := rt.byID["web"].slots[0]
	w := newFakeWorker()
	s.cur = w
	if ws := s.status(); ws.State != "ready" || ws.PID != 1 {
		t.Fatalf("status with the worker running: %q pid %d", ws.State, ws.PID)
	}
	w.exit()
	if ws := s.status(); ws.State != "exited" || ws.PID != 0 {
		t.Fatalf("status once the worker is gone: %q pid %d, want exited without a pid", ws.State, ws.PID)
	}
}
