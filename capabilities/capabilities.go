// Package capabilities is the registry of runtimes wattd knows how to start.
//
// A capability turns an application directory into the command line of one
// worker process. Keeping that knowledge behind a three-method interface lets
// the supervisor treat every kind of app the same way: it asks Detect which
// capability an app is (unless watt.json names one), asks Prepare for a
// Launch, and from there only deals with processes, sockets and the control
// protocol of package ipc.
//
// Capabilities live in subpackages and register themselves in init(), so a
// binary gets exactly the capabilities it imports:
//
//	import _ "github.com/wattd/wattd/capabilities/node"
package capabilities

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// App is what a capability is told about the application it prepares.
type App struct {
	ID          string            // application id from watt.json
	Dir         string            // absolute application directory
	Entrypoint  bool              // the app that owns the public listener
	Env         map[string]string // the app's own environment from watt.json
	NodeOptions string            // extra runtime flags, split like a shell would
	// HeapOptions are V8 flags that size the heap, from the app's health
	// keys (config.Health.HeapFlags); a Node.js capability gives them in
	// NODE_OPTIONS unless the app's own options set the same flag.
	HeapOptions []string
	// MemoryLimit is the memory a worker may use before the kernel
	// reclaims or kills (resources.memoryHigh when set, else
	// resources.memory), in bytes; 0 when there is none. The go
	// capability sizes GOMEMLIMIT from it.
	MemoryLimit int64
	RuntimeDir  string   // a 0700 directory the capability may write files to
	Mode        Mode     // production (wattd start) or development (wattd dev)
	Command     []string // the app's own start command from watt.json ("command"), if any
	Watt        WattApp  // Watt's application model settings, from the app's own watt.json

	// InfoFile is the application's info file (ipc.EnvAppInfo), which the
	// supervisor writes and a worker's preload reads; CompileCache is the
	// module compile cache's directory, "" when off. DiagDir is where the
	// supervisor has a worker write the diagnostics it asks for (a heap
	// snapshot). A capability that restricts the file system
	// (Watt.Permissions) lets its workers reach the three.
	InfoFile     string
	CompileCache string
	DiagDir      string
}

// WattApp carries the settings of Watt's application model that the
// runtime's watt.json entry and the application's own watt.json (or
// platformatic.json) give, for capabilities that honour them. The zero value
// is Watt's default everywhere.
type WattApp struct {
	// Main is node.main: the entry file, relative to Dir; "" finds it
	// from package.json and the usual names.
	Main string
	// NoServer is node.hasServer set to false: a background worker that
	// is ready once its module is loaded and serves nothing.
	NoServer bool
	// AbsoluteURL is node.absoluteUrl: the app's routes already include
	// its basePath, so requests reach it unstripped.
	AbsoluteURL bool
	// BasePath is application.basePath (the entry's own basePath wins):
	// the path prefix the app is served under.
	BasePath string
	// Commands are application.commands: shell command lines that replace
	// the capability's own build, development and production starts.
	Commands Commands
	// Preload lists absolute paths of modules loaded before the app, in
	// order: the runtime's preload, then the application's.
	Preload []string
	// ExecArgv are extra runtime flags (Node.js: before the entry file).
	ExecArgv []string
	// Arguments are given to the app after its entry (process.argv[2:]).
	Arguments []string
	// SourceMaps is sourceMaps (the application's, else the runtime's):
	// stack traces follow source maps (Node.js: --enable-source-maps).
	SourceMaps bool
	// Permissions is permissions.fs: the paths, absolute, a worker may
	// read and write under Node.js's permission model. Empty: no model.
	Permissions Permissions
}

// Permissions are Watt's permissions.fs of an application.
type Permissions struct {
	Read  []string
	Write []string
}

// On tells whether the application runs under the permission model:
// Watt turns it on when at least one path is given.
func (p Permissions) On() bool { return len(p.Read)+len(p.Write) > 0 }

// Commands are Watt's application.commands; an empty one means the
// capability's own.
type Commands struct {
	Build       string
	Development string
	Production  string
}

// Mode is how the runtime runs its applications.
type Mode int

const (
	Production  Mode = iota // wattd start: built output, N workers
	Development             // wattd dev: dev servers, restart on change
)

func (m Mode) String() string {
	if m == Development {
		return "development"
	}
	return "production"
}

// Launch says how to start one worker of an application. The supervisor adds
// the sockets and the WATTD_* / LISTEN_* variables itself.
type Launch struct {
	Argv []string          // argv[0] is an absolute path or a name looked up in PATH
	Env  map[string]string // extra environment for the worker
	Dir  string            // working directory

	// Fronted is set for programs that cannot take a passed socket and
	// listen on the port in $PORT instead: wattd gives each worker its own
	// loopback port, accepts on the worker slot's sockets itself and
	// forwards each connection to it (wattd is then on that app's path).
	Fronted bool
	// Watch lists paths (relative to Dir) whose changes restart the app's
	// workers in development mode; empty means the whole app directory.
	// NoWatch turns watching off (the app's dev server reloads itself).
	Watch   []string
	NoWatch bool
	// Protocol says the worker always says hello on the control channel
	// (the Node preload, a program built on the Go SDK). wattd then waits
	// for its ready message up to startTimeout, and never takes it as
	// ready just because it stayed up for a second without a word: a
	// worker that is slow to boot on a loaded machine is not a program
	// that ignores the protocol.
	Protocol bool
	// Standby says a worker started with WATTD_STANDBY=1 loads the app,
	// holds its listen() and serves nothing until wattd promotes it (the
	// Node preload does). Only such applications may have "standby"
	// workers.
	Standby bool
	// Direct says the program wattd starts takes its sockets and control
	// channel without checking LISTEN_PID (the Node preload reads them
	// from the variables and removes them). wattd may then start it
	// without the exec helper, when the worker's cgroup needs no join
	// from inside (v2, which clones it into the group, or no cgroups);
	// a program that follows the LISTEN_PID convention (the Go SDK,
	// sd_listen_fds) needs the helper, which sets it to its own pid.
	Direct bool
}

// Builder is implemented by capabilities whose apps need a build step
// (wattd build). BuildCommand returns nil when there is nothing to build.
type Builder interface {
	BuildCommand(app App) (*Launch, error)
}

// AfterBuilder is implemented by capabilities that finish a build in Go
// once its command succeeded (wattd build calls it right after).
type AfterBuilder interface {
	AfterBuild(app App) error
}

// Developer is implemented by capabilities with a development start that
// differs from Prepare with app.Mode == Development (e.g. a framework's
// dev server). Capabilities without it get Prepare in development mode,
// and wattd restarts their workers when files change.
type Developer interface {
	PrepareDev(app App) (*Launch, error)
}

// StandbyHolder is a capability whose workers can be standbys (see
// Launch.Standby) for some applications. CanStandby answers for app
// without preparing its launch, so that the configuration's check can
// refuse a "standby" key that Prepare's launch would not allow.
type StandbyHolder interface {
	CanStandby(app App) bool
}

// EntryChecker is a capability that can tell, without preparing a
// launch, that an application's entry cannot be found (a package.json that
// is not JSON, a node.main naming no file), so that the configuration's
// check reports it with the other problems, not the start.
type EntryChecker interface {
	CheckEntry(app App) error
}

// EntryMissingError is an EntryChecker's error that the application's
// entry file is not there: a build may be what makes it (a TypeScript
// app's "main": "dist/index.js"), so wattd build does not refuse it.
type EntryMissingError struct{ Err error }

func (e *EntryMissingError) Error() string { return e.Err.Error() }
func (e *EntryMissingError) Unwrap() error { return e.Err }

// KeyError is an EntryChecker's problem with one key of the application's
// configuration ("command", or "node.main" of its own file), reported at
// that key's JSON path.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// Restrictor is a capability that can run some applications under
// Node.js's permission model (Watt.Permissions). CanRestrict answers for
// app without preparing its launch, so that the configuration's check can
// refuse a "permissions" key that the launch would not apply.
type Restrictor interface {
	CanRestrict(app App) bool
}

// Capability is one kind of runtime, such as Node.js.
type Capability interface {
	// ID is the name used in watt.json and in status output, e.g. "node".
	ID() string
	// Detect reports whether dir looks like an application of this kind.
	// It returns an error only when dir cannot be inspected at all.
	Detect(dir string) (bool, error)
	// Prepare returns how to start one worker of app. It is called for
	// every worker start, possibly concurrently, so it must be cheap and
	// safe for concurrent use.
	Prepare(app App) (*Launch, error)
}

// Fallback is the capability Detect tries last: a directory that matches a
// more specific capability must not be claimed by the generic Node.js one.
const Fallback = "node"

var (
	mu       sync.RWMutex
	registry = map[string]Capability{}
)

// Register adds c to the registry. It is meant for init() functions; a
// duplicate or empty id is a programming error and panics, so it shows up the
// first time the binary runs rather than as a silently shadowed runtime.
func Register(c Capability) {
	id := c.ID()
	if id == "" {
		panic("capabilities: Register with an empty id")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[id]; dup {
		panic(fmt.Sprintf("capabilities: %q registered twice", id))
	}
	registry[id] = c
}

// Get returns the capability registered as id.
func Get(id string) (Capability, error) {
	mu.RLock()
	c, ok := registry[id]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("capabilities: unknown capability %q (known: %s)", id, known())
	}
	return c, nil
}

// IDs returns the registered ids, sorted.
func IDs() []string {
	mu.RLock()
	defer mu.RUnlock()
	ids := make([]string, 0, len(registry))
	for id := range registry {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Detect returns the capability that recognises dir. Capabilities are tried
// in a fixed order that does not depend on import or init order: every
// specific one by id, then Fallback. The first match wins.
func Detect(dir string) (Capability, error) {
	for _, id := range detectOrder() {
		c, err := Get(id)
		if err != nil {
			continue // cannot happen: ids come from the registry
		}
		ok, err := c.Detect(dir)
		if err != nil {
			return nil, fmt.Errorf("capabilities: %s: detect %s: %w", id, dir, err)
		}
		if ok {
			return c, nil
		}
	}
	return nil, fmt.Errorf("capabilities: no capability recognises %s (tried: %s)", dir, known())
}

// detectOrder is IDs with Fallback moved to the end.
func detectOrder() []string {
	ids := IDs()
	if i := slices.Index(ids, Fallback); i >= 0 {
		ids = append(slices.Delete(ids, i, i+1), Fallback)
	}
	return ids
}

func known() string {
	ids := IDs()
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// BasePath normalises application.basePath as Watt's node capability does
// for platformatic.basePath: one leading slash, no doubled slashes, a trailing
// slash; "" stays "".
func BasePath(p string) string {
	if strings.TrimSpace(p) == "" {
		return ""
	}
	var b strings.Builder
	prevSlash := false
	for _, r := range "/" + p {
		if r == '/' && prevSlash {
			continue
		}
		prevSlash = r == '/'
		b.WriteRune(r)
	}
	s := b.String()
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}
