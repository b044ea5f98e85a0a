package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/wattd/wattd/ipc"
)

var (
	// ErrUnknownApp is matched (errors.Is) by the error for a *.plt.local
	// host whose app is not in the mesh table. The error names the app and
	// the apps that are known.
	ErrUnknownApp = errors.New("mesh: unknown app")

	// ErrNoWorker is matched by the error returned when an app is in the
	// table but none of its workers could be reached. (An app without any
	// endpoint gets a 503 response instead; its body is this error's text.)
	ErrNoWorker = errors.New("mesh: no worker available")
)

// unknownAppError is a lookup miss. The list of known apps is in the message
// because a typo in a PLT_*_URL is the usual cause.
type unknownAppError struct {
	app      string
	known    []string
	noTable  bool
	disabled bool // the configuration turns it off
}

func (e *unknownAppError) Error() string {
	if e.disabled {
		return fmt.Sprintf(`app %q is disabled ("enabled": false in watt.json)`, e.app)
	}
	if e.noTable {
		return fmt.Sprintf("unknown app %q on the mesh (no mesh table received yet)", e.app)
	}
	known := "none"
	if len(e.known) > 0 {
		known = strings.Join(e.known, ", ")
	}
	return fmt.Sprintf("unknown app %q on the mesh (known: %s)", e.app, known)
}

func (e *unknownAppError) Is(target error) bool { return target == ErrUnknownApp }

// noWorkerError says why an app cannot take a request: its state and
// reason from the table, or the last dial failure when every socket refused.
type noWorkerError struct {
	app, state, reason string
	err                error
}

func (e *noWorkerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no worker of app %q is available", e.app)
	for _, s := range []string{e.state, e.reason} {
		if s != "" {
			b.WriteString(": ")
			b.WriteString(s)
		}
	}
	if e.err != nil {
		b.WriteString(": ")
		b.WriteString(e.err.Error())
	}
	return b.String()
}

func (e *noWorkerError) Is(target error) bool { return target == ErrNoWorker }
func (e *noWorkerError) Unwrap() error        { return e.err }

// timeoutError is the cause given to a request's context when the table's
// timeoutMs passes. It matches context.DeadlineExceeded and reports
// Timeout() so callers (and url.Error) treat it like any other deadline.
type timeoutError struct {
	app   string
	after time.Duration
	body  bool // the response body went silent, after the head
}

func (e *timeoutError) Error() string {
	if e.body {
		return fmt.Sprintf("mesh: app %q sent nothing of its response body for %v (applicationTimeout)", e.app, e.after)
	}
	return fmt.Sprintf("mesh: app %q did not answer within %v (applicationTimeout)", e.app, e.after)
}

func (e *timeoutError) Timeout() bool        { return true }
func (e *timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// dialError marks a failure of our own DialContext. Nothing of the request
// can have reached a worker then, so any request may go to another endpoint.
// http.Transport returns the dialer's error unchanged, which is what lets us
// tell this case from failures on an established connection.
type dialError struct {
	path string
	err  error
}

func (e *dialError) Error() string {
	return fmt.Sprintf("mesh: connect to worker socket %s: %v", e.path, e.err)
}

func (e *dialError) Unwrap() error { return e.err }

func isDialError(err error) bool {
	var de *dialError
	return errors.As(err, &de)
}

// errServerClosedIdleText is net/http's (unexported) error for a connection
// the server closed just as a request was about to use it.
const errServerClosedIdleText = "http: server closed idle connection"

// isConnLost reports whether err is a connection that broke after it was
// established: reset, broken pipe, or closed before the response headers.
// The request may or may not have been processed by the worker.
func isConnLost(err error) bool {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED):
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == errServerClosedIdleText {
			return true
		}
	}
	return false
}

// lookup finds app in the table. Keys are matched ignoring case, as app ids
// are unique ignoring case and AppOf lower-cases them.
func lookup(t *ipc.MeshTable, app string) (string, ipc.MeshApp, error) {
	if t == nil {
		return "", ipc.MeshApp{}, &unknownAppError{app: app, noTable: true}
	}
	if a, ok := t.Apps[app]; ok {
		return app, a, nil
	}
	for name, a := range t.Apps {
		if strings.EqualFold(name, app) {
			return name, a, nil
		}
	}
	for _, name := range t.Disabled {
		if strings.EqualFold(name, app) {
			return "", ipc.MeshApp{}, &unknownAppError{app: name, disabled: true}
		}
	}
	known := make([]string, 0, len(t.Apps))
	for name := range t.Apps {
		known = append(known, name)
	}
	slices.Sort(known)
	return "", ipc.MeshApp{}, &unknownAppError{app: app, known: known}
}
