package supervisor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

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

	proxy meshProxy // see meshproxy.go
}

// Table implements mesh.Resolver.
func (rt *Runtime) Table() *ipc.MeshTable {
	rt.mesh.mu.Lock()
	defer rt.mesh.mu.Unlock()
	if rt.mesh.table == nil {
		rt.mesh.table = rt.buildMeshTable()
	}
	return rt.mesh.table
}

var _ mesh.Resolver = (*Runtime)(nil)

func (rt *Runtime) buildMeshTable() *ipc.MeshTable {
	t := &ipc.MeshTable{
		Apps:        make(map[string]ipc.MeshApp, len(rt.appList())),
		TimeoutMs:   rt.cfg.ApplicationTimeout.Milliseconds(),
		Proxy:       rt.mesh.proxy.url,
		ProxySocket: rt.mesh.proxy.socket,
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
			st, r := s.state, s.reason
			s.mu.Unlock()
			if st == StateReady {
				ma.Endpoints = append(ma.Endpoints, s.meshPath)
				continue
			}
			down = append(down, fmt.Sprintf("worker %d %s", s.index, st))
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

// meshMessage is the current table as a control message.
func (rt *Runtime) meshMessage() *ipc.Message {
	return &ipc.Message{Type: ipc.TypeMesh, Mesh: rt.Table()}
}

// publishMesh rebuilds the table and pushes it to every worker if it
// changed.
func (rt *Runtime) publishMesh() {
	t := rt.buildMeshTable()
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
	m := &ipc.Message{Type: ipc.TypeMesh, Mesh: t}
	for _, p := range procs {
		p.pushMesh(m)
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
