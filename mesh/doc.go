// Package mesh owns the routing of http://<app>.plt.local requests between
// the applications of one runtime.
//
// wattd gives every worker slot of every application a Unix socket (see
// docs/worker-protocol.md) and publishes the sockets of the ready workers as
// an ipc.MeshTable. This package turns that table into HTTP:
//
//   - Transport is an http.RoundTripper that sends *.plt.local requests
//     straight to a worker's socket, round-robin over the app's workers,
//     with keep-alive connections, the table's per-request timeout, and
//     retries on another worker when that is known to be safe. wattd is not
//     on the request path.
//   - Proxy is the HTTP forward proxy wattd serves on 127.0.0.1 for
//     runtimes that have no mesh client; it forwards through a Transport.
//
// Membership comes from a Resolver, so the same code serves wattd (its live
// state), a Go worker (ipc.Control.Mesh) and `wattd ctl inject` (a snapshot).
package mesh
