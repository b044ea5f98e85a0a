// Package admin owns the local control plane of a running wattd: the admin
// API served as HTTP/1.1 over a Unix socket (admin.sock), the client that
// `wattd ctl` uses to call it, and the text rendering of its answers.
//
// Who may call it is decided twice. The socket file is 0600 and created so
// that no other user can ever reach it, even for an instant; that limits
// every caller to our uid and root. On top of that each route is marked
// read or write, and write routes check the caller's credentials from
// SO_PEERCRED, so loosening the file mode (say, for a monitoring group)
// never hands out restart and stop.
//
// API (all bodies JSON; errors are always {"error": "..."}):
//
//	GET  /v1/status             supervisor.RuntimeStatus
//	GET  /v1/apps               []supervisor.AppStatus
//	GET  /v1/apps/{id}          supervisor.AppStatus, 404 if unknown
//	POST /v1/apps/{id}/restart  rolling restart; 200 with the AppStatus when every
//	                            worker is back, 409 while the runtime stops
//	POST /v1/apps/{id}/scale    body {"workers": N}; 200 with the AppStatus once the new
//	                            workers are ready or the removed ones stopped; 422 for
//	                            a count out of range, 409 while a reload or scaling runs
//	POST /v1/reload             read the configuration again and apply the difference;
//	                            200 with supervisor.ReloadResult, 422 with every reason
//	                            when it is refused (the running applications are untouched),
//	                            409 while another reload or scaling runs
//	POST /v1/stop               202; graceful shutdown begins
//	GET  /v1/logs               recent log lines, then new ones (NDJSON; see logs.go)
//	GET  /v1/config             the running configuration, secrets masked (package secrets);
//	                            the one the last reload applied
//	GET  /v1/apps/{id}/env      ?worker=N (default 0): supervisor.WorkerEnv, the environment
//	                            wattd gave that worker's process, secrets masked
//	GET  /v1/env                supervisor.RuntimeEnv, the environment every worker
//	                            starts from, secrets masked
//
// The config and env routes are served to the same callers as write routes.
package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor"
)

// Backend is what the admin API administers: the supervisor.
type Backend interface {
	Status() supervisor.RuntimeStatus
	Apps() []supervisor.AppStatus
	// RestartApp restarts every worker of the app, one after another, and
	// returns when the last is ready, or with an error saying why a worker
	// did not come up. An unknown id gives an error wrapping ErrNotFound
	// that names the known apps; a request the runtime cannot take now
	// (it is shutting down) one wrapping ErrConflict. A restart asked for
	// while another of the same app runs is not refused: each worker slot
	// takes the requests in turn.
	RestartApp(ctx context.Context, id string) error
	// Stop begins a graceful shutdown and returns at once.
	Stop()
	// Table is the mesh membership: the ready worker sockets of every app.
	Table() *ipc.MeshTable
}

// Reloader is a Backend that can reload its configuration (POST
// /v1/reload); without it the route answers 501.
type Reloader interface {
	Reload(ctx context.Context) (supervisor.ReloadResult, error)
}

// AppScaler is a Backend that can change an application's worker count
// (POST /v1/apps/{id}/scale).
type AppScaler interface {
	ScaleApp(ctx context.Context, id string, workers int) error
}

var (
	_ Reloader  = (*supervisor.Runtime)(nil)
	_ AppScaler = (*supervisor.Runtime)(nil)
)

// ErrInvalid marks a request the runtime refuses as it stands (HTTP 422):
// a configuration that does not load, a worker count out of range.
var ErrInvalid = supervisor.ErrInvalidConfig

// ErrNotFound marks errors about an unknown application (HTTP 404). Its
// text reads as the start of a message: fmt.Errorf("%w %q", ErrNotFound, id).
var ErrNotFound = supervisor.ErrNotFound

// ErrConflict marks errors about a request that conflicts with what the
// runtime is doing, such as a restart during shutdown (HTTP 409). It is
// the supervisor's own, so that the runtime's errors match it.
var ErrConflict = supervisor.ErrConflict

// ErrAlreadyRunning is matched (errors.Is) by the error Serve returns when
// the socket path is held by a live server.
var ErrAlreadyRunning = errors.New("another wattd is already running for this project")

type runningError struct {
	pid    int // 0 if the peer's pid could not be learnt
	socket string
}

func (e *runningError) Error() string {
	if e.pid > 0 {
		return fmt.Sprintf("another wattd (pid %d) is already running for this project (admin socket %s)", e.pid, e.socket)
	}
	return fmt.Sprintf("another wattd is already running for this project (admin socket %s)", e.socket)
}

func (e *runningError) Is(target error) bool { return target == ErrAlreadyRunning }
