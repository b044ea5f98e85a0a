package supervisor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/mesh"
)

// The mesh table says, for every application, which worker sockets are
// ready. wattd pushes it to every worker on the control channel whenever it
// changes; workers then call each other directly. wattd itself uses it for
// its mesh proxy and `wattd ctl inject`.

// meshState is the runtime's part of the mesh.
type meshState struct {
	mu    sync.Mutex // guards table, last and procs
	table *ipc.MeshTable
	last  []byte             // JSON of table, to skip pushes that change nothing
	procs map[*proc]struct{} // workers that receive pushes

	// buildMu orders the builds of the table: seq numbers them in the
	// order they read the workers' states, so a worker can tell the newer
	// of two tables that reach it by different paths (its welcome and a
	// push) and never replaces a table with an older one.
	buildMu sync.Mutex
	seq     uint64
	// stale says a worker changed state since the last push: the pacing
	// holds the push back, and Table builds the table afresh meanwhile.
	stale atomic.Bool

	proxy meshProxy // see meshproxy.go
}

// Table implements mesh.Resolver: the table last pushed to the workers,
// or, while a push is held back by the pacing, the table as it is now, so
// that wattd's mesh proxy does not refuse an application that just became
// ready.
func (rt *Runtime) Table() *ipc.MeshTable {
	if rt.mesh.stale.Load() {
		return rt.buildMeshTable()
	}
	rt.mesh.mu.Lock()
	defer rt.mesh.mu.Unlock()
	if rt.mesh.table == nil {
		rt.mesh.table = rt.buildMeshTable()
	}
	return rt.mesh.table
}

var _ mesh.Resolver = (*Runtime)(nil)

// numberedTable builds the table and numbers it (see meshState.seq).
func (rt *Runtime) numberedTable() (*ipc.MeshTable, uint64) {
	rt.mesh.buildMu.Lock()
	defer rt.mesh.buildMu.Unlock()
	rt.mesh.seq++
	return rt.buildMeshTable(), rt.mesh.seq
}

func (rt *Runtime) buildMeshTable() *ipc.MeshTable {
	t := &ipc.MeshTable{
		Apps:        make(map[string]ipc.MeshApp, len(rt.appList())),
		TimeoutMs:   rt.cfg.ApplicationTimeout.Milliseconds(),
		Proxy:       rt.mesh.proxy.url,
		ProxySocket: rt.mesh.proxy.socket,
	}
	if cur := rt.current.Load(); cur != nil {
		t.Disabled = cur.Disabled
	}
	for _, a := range rt.appList() {
		ma := ipc.MeshApp{Endpoints: []string{}, State: a.state()}
		var down []string
		reason := ""
		for _, s := range a.slotList() {
			if s.removing.Load() {
				continue // going away: callers must stop choosing it before it drains
			}
			s.mu.Lock()
			st, what, r := s.state, s.shownStateLocked(), s.reason
			s.mu.Unlock()
			if st == StateReady {
				ma.Endpoints = append(ma.Endpoints, s.meshPath)
				continue
			}
			down = append(down, fmt.Sprintf("worker %d %s", s.index, what))
			if reason == "" {
				reason = r
			}
		}
		if len(ma.Endpoints) == 0 {
			ma.Reason = strings.Join(down, ", ")
			if reason != "" {
				ma.Reason += ": " + reason
			}
		}
		t.Apps[a.id] = ma
	}
	return t
}

// publishMesh rebuilds the table and pushes it to every worker if it
// changed.
func (rt *Runtime) publishMesh() {
	// Cleared before the build: a change during it marks the table stale
	// again.
	rt.mesh.stale.Store(false)
	t, seq := rt.numberedTable()
	b, err := json.Marshal(t)
	if err != nil {
		return
	}
	rt.mesh.mu.Lock()
	if bytes.Equal(b, rt.mesh.last) {
		rt.mesh.mu.Unlock()
		return
	}
	rt.mesh.table, rt.mesh.last = t, b
	procs := make([]*proc, 0, len(rt.mesh.procs))
	for p := range rt.mesh.procs {
		procs = append(procs, p)
	}
	rt.mesh.mu.Unlock()
	// One frame for every worker: the table grows with the workers, and
	// so does the number of workers it goes to.
	frame, err := ipc.EncodeFrame(&ipc.Message{Type: ipc.TypeMesh, Mesh: t})
	if err != nil {
		return
	}
	for _, p := range procs {
		p.pushMesh(seq, frame)
	}
}

// meshPublishGap is the least time between two pushes of the mesh table
// from the runtime's loop. Every push goes to every worker, and every
// worker parses it; while many workers start or stop together their
// states change hundreds of times within seconds, and a push for each
// change would cost workers times changes (quadratic in the workers). A
// change after a quiet gap still goes out at once.
const meshPublishGap = 100 * time.Millisecond

// meshPacer spaces the pushes of the mesh table: a change is published at
// once when the last push is at least gap old, else when the gap has
// passed, together with whatever else changed meanwhile. One goroutine at
// a time uses it: it calls changed on a state change, and fire when due
// delivers.
type meshPacer struct {
	publish func()
	gap     time.Duration
	last    time.Time
	timer   *time.Timer
	pending bool // a push waits for the timer
}

func newMeshPacer(publish func(), gap time.Duration) *meshPacer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &meshPacer{publish: publish, gap: gap, timer: t}
}

func (m *meshPacer) changed() {
	if m.pending {
		return
	}
	wait := m.gap - time.Since(m.last)
	if wait <= 0 {
		m.fire()
		return
	}
	m.pending = true
	m.timer.Reset(wait)
}

// due delivers when a held-back push should go out.
func (m *meshPacer) due() <-chan time.Time { return m.timer.C }

func (m *meshPacer) fire() {
	m.pending = false
	m.last = time.Now()
	m.publish()
}

// stop ends the pacer, publishing a held-back change first.
func (m *meshPacer) stop() {
	m.timer.Stop()
	if m.pending {
		m.fire()
	}
}

// register makes p receive mesh pushes until it exits.
func (rt *Runtime) register(p *proc) {
	rt.mesh.mu.Lock()
	if rt.mesh.procs == nil {
		rt.mesh.procs = map[*proc]struct{}{}
	}
	rt.mesh.procs[p] = struct{}{}
	rt.mesh.mu.Unlock()
	go func() {
		<-p.exited
		rt.mesh.mu.Lock()
		delete(rt.mesh.procs, p)
		rt.mesh.mu.Unlock()
	}()
}
