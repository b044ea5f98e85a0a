package supervisor

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

// testRuntime builds a runtime with slots in the given states and no
// processes: the mesh table is a function of slot states alone.
func testRuntime(apps map[string][]State) *Runtime {
	rt := &Runtime{
		cfg:     &config.Config{ApplicationTimeout: 5 * time.Second},
		log:     zap.NewNop(),
		byID:    map[string]*app{},
		changed: make(chan struct{}, 1),
	}
	rt.mesh.proxy.url = "http://wattd:t@127.0.0.1:9"
	rt.mesh.proxy.socket = "/run/proxy.sock"
	for id, states := range apps {
		a := &app{rt: rt, id: id, log: zap.NewNop()}
		for i, st := range states {
			s := newSlot(a, i)
			s.meshPath = "/m/" + id + "-" + string(rune('0'+i)) + ".sock"
			s.state = st
			a.slots = append(a.slots, s)
		}
		rt.apps = append(rt.apps, a)
		rt.byID[id] = a
	}
	return rt
}

func TestMeshTableFollowsSlotStates(t *testing.T) {
	rt := testRuntime(map[string][]State{
		"api": {StateReady, StateBackoff, StateReady},
		"db":  {StateFailed},
	})
	rt.byID["db"].slots[0].reason = "crash loop: 11 exits"
	tb := rt.buildMeshTable()
	if tb.TimeoutMs != 5000 || tb.Proxy != "http://wattd:t@127.0.0.1:9" || tb.ProxySocket != "/run/proxy.sock" {
		t.Fatalf("table %+v", tb)
	}
	api := tb.Apps["api"]
	if len(api.Endpoints) != 2 || api.Endpoints[0] != "/m/api-0.sock" || api.Endpoints[1] != "/m/api-2.sock" || api.Reason != "" {
		t.Fatalf("api %+v: want the two ready sockets", api)
	}
	db := tb.Apps["db"]
	if len(db.Endpoints) != 0 || db.Endpoints == nil || db.State != "failed" ||
		!strings.Contains(db.Reason, "worker 0 failed") || !strings.Contains(db.Reason, "crash loop") {
		t.Fatalf("db %+v: want no endpoints and the reason", db)
	}
}

func TestPublishMeshPushesOnlyChanges(t *testing.T) {
	rt := testRuntime(map[string][]State{"api": {StateStarting}})
	p := &proc{meshSignal: make(chan struct{}, 1), exited: make(chan struct{})}
	rt.mesh.procs = map[*proc]struct{}{p: {}}
	rt.publishMesh()
	if m := pendingTable(t, p); m == nil || len(m.Apps["api"].Endpoints) != 0 {
		t.Fatalf("first publish: %+v", m)
	}
	p.meshPending = nil
	rt.publishMesh()
	if p.meshPending != nil {
		t.Fatal("an unchanged table was pushed again")
	}
	rt.apps[0].slots[0].state = StateReady
	rt.publishMesh()
	if m := pendingTable(t, p); m == nil || len(m.Apps["api"].Endpoints) != 1 {
		t.Fatalf("after ready: %+v", m)
	}
	if got := rt.Table(); len(got.Apps["api"].Endpoints) != 1 {
		t.Fatalf("Table() = %+v", got)
	}
}

// pendingTable decodes the mesh frame queued for p, nil when none is.
func pendingTable(t *testing.T, p *proc) *ipc.MeshTable {
	t.Helper()
	if p.meshPending == nil {
		return nil
	}
	m, err := ipc.ReadMessage(bytes.NewReader(p.meshPending))
	if err != nil || m.Type != ipc.TypeMesh || m.Mesh == nil {
		t.Fatalf("queued frame: %v %+v", err, m)
	}
	return m.Mesh
}

// TestMeshPacerSpacesPushes: a burst of changes is one push at once and
// one after the gap, carrying the rest; a change after a quiet gap goes
// out at once; stop publishes a held-back change.
func TestMeshPacerSpacesPushes(t *testing.T) {
	var pushes []time.Time
	const gap = 200 * time.Millisecond
	m := newMeshPacer(func() { pushes = append(pushes, time.Now()) }, gap)
	start := time.Now()
	for range 50 {
		m.changed()
	}
	if len(pushes) != 1 {
		t.Fatalf("%d pushes for a burst, want 1 at once and the rest held back", len(pushes))
	}
	select {
	case <-m.due():
		m.fire()
	case <-time.After(20 * time.Second):
		t.Fatal("the held-back push never came due")
	}
	if len(pushes) != 2 || pushes[1].Sub(start) < gap {
		t.Fatalf("pushes at %v, want the second one %s after the first", pushes, gap)
	}
	// Quiet for a gap: the next change goes at once.
	for time.Since(pushes[1]) < gap {
		time.Sleep(10 * time.Millisecond)
	}
	m.changed()
	if len(pushes) != 3 {
		t.Fatalf("%d pushes, want a change after a quiet gap pushed at once", len(pushes))
	}
	m.changed() // held back
	m.stop()
	if len(pushes) != 4 {
		t.Fatalf("%d pushes, want stop to publish the held-back change", len(pushes))
	}
}

// TestWelcomeTableIsCurrent: a worker's welcome carries the table as the
// slots are now, even while the pacing holds the push of a change back;
// a push of an older table after it is not queued, a newer one is.
func TestWelcomeTableIsCurrent(t *testing.T) {
	rt := testRuntime(map[string][]State{"back": {StateStarting}})
	old := &proc{meshSignal: make(chan struct{}, 1), exited: make(chan struct{})}
	rt.mesh.procs = map[*proc]struct{}{old: {}}
	rt.publishMesh() // "back" starting, pushed
	rt.apps[0].slots[0].setState(StateReady)
	// The push of "ready" is held back; a worker starting now is welcomed.
	tb, seq := rt.numberedTable()
	if eps := tb.Apps["back"].Endpoints; len(eps) != 1 {
		t.Fatalf("welcome table: back has %v, want its ready socket", eps)
	}
	if got := rt.Table(); len(got.Apps["back"].Endpoints) != 1 {
		t.Fatalf("Table() while the push is held back: %+v, want back ready", got.Apps["back"])
	}
	p := &proc{meshSignal: make(chan struct{}, 1), exited: make(chan struct{}), meshSeq: seq}
	stale, _ := ipc.EncodeFrame(&ipc.Message{Type: ipc.TypeMesh, Mesh: &ipc.MeshTable{}})
	p.pushMesh(seq-1, stale)
	if p.meshPending != nil {
		t.Fatal("a table older than the welcome's was queued after it")
	}
	rt.mesh.procs[p] = struct{}{}
	rt.publishMesh()
	if m := pendingTable(t, p); m == nil || len(m.Apps["back"].Endpoints) != 1 {
		t.Fatalf("a newer push was not queued: %+v", m)
	}
	if rt.mesh.stale.Load() {
		t.Error("still stale after the push")
	}
}
