package mesh

import "github.com/wattd/wattd/ipc"

// Resolver gives the current membership of the mesh. wattd implements it from
// its live state, a Go worker from its control channel (ipc.Control.Mesh via
// ResolverFunc), `wattd ctl inject` from a snapshot.
//
// Table may return nil when no table is known yet; every app is then unknown.
// The Transport reads the returned table and never modifies it, and it
// notices membership changes by the pointer changing, so an implementation
// should return the same pointer until the table changes.
type Resolver interface {
	Table() *ipc.MeshTable
}

// StaticResolver always returns the same table.
type StaticResolver struct {
	T *ipc.MeshTable
}

// Table returns s.T.
func (s StaticResolver) Table() *ipc.MeshTable { return s.T }

// ResolverFunc adapts a function, such as (*ipc.Control).Mesh, to a Resolver.
type ResolverFunc func() *ipc.MeshTable

// Table returns f().
func (f ResolverFunc) Table() *ipc.MeshTable { return f() }
