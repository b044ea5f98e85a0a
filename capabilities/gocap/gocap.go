// Package gocap is the Go capability (id "go"): an application is a main
// package with a go.mod at the root of its folder.
//
//   - wattd build runs `go build -o .wattd/app .` in the app's folder.
//   - wattd start runs .wattd/app.
//   - wattd dev builds to .wattd/dev/app-<worker> and runs that, restarting
//     when the folder changes. It does not use `go run`: that keeps the go
//     tool as the worker's process, so the app would not be the pid wattd
//     passed its sockets to (LISTEN_PID), nor the process whose memory
//     status reports.
//
// .wattd is hidden, so the development watcher does not see the builds.
//
// How a worker gets its socket follows from go.mod. A program that requires
// github.com/wattd/wattd is taken to use its SDK (ipc.Listeners) and gets
// the worker slot's sockets by the LISTEN_FDS convention; any other program
// is fronted: it listens on $PORT and wattd forwards to it. WATTD_LISTEN_FDS
// in the app's environment overrides the guess: "1" for LISTEN_FDS, "0" for
// $PORT.
package gocap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/wattd/wattd/capabilities"
)

// ID is the capability id used in watt.json.
const ID = "go"

// EnvGo names the go binary to use instead of the one found in PATH.
const EnvGo = "WATTD_GO"

// EnvListenFDs overrides how a worker gets its socket: "1" for LISTEN_FDS,
// "0" for $PORT. It has the same name and meaning as the command
// capability's, so "listenFds" in watt.json means the same for both.
const EnvListenFDs = "WATTD_LISTEN_FDS"

// SDKModule is the module whose presence in go.mod means the program uses
// wattd's worker SDK.
const SDKModule = "github.com/wattd/wattd"

// OutputDir is wattd's folder inside a Go application, for its builds.
const OutputDir = ".wattd"

// Output returns where `wattd build` puts the binary of the app in dir.
func Output(dir string) string { return filepath.Join(dir, OutputDir, "app") }

// devScript builds the app for one worker and replaces the shell with it,
// so the program keeps the pid wattd started (and set LISTEN_PID to). Each
// worker has its own output so that concurrent builds never write a file
// another worker is starting; a failed build exits non-zero with the
// compiler's messages in the worker's log. $1 is the go binary, $2 the
// output folder.
const devScript = `out="$2/app-${WATTD_WORKER_ID:-0}" && "$1" build -o "$out" . && exec "$out"`

// Capability is the Go capability. The zero value is ready to use.
type Capability struct{}

var (
	_ capabilities.Capability = (*Capability)(nil)
	_ capabilities.Builder    = (*Capability)(nil)
	_ capabilities.Developer  = (*Capability)(nil)
)

func init() { capabilities.Register(&Capability{}) }

// ID returns "go".
func (*Capability) ID() string { return ID }

// Detect reports whether dir has a go.mod and no package.json. A folder
// with both is more likely a Node app with Go tooling beside it, and Node
// apps are the common case.
func (*Capability) Detect(dir string) (bool, error) {
	if err := capabilities.RequireDir(dir); err != nil {
		return false, err
	}
	mod, err := isFile(filepath.Join(dir, "go.mod"))
	if err != nil || !mod {
		return false, err
	}
	pkg, err := isFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return false, err
	}
	return !pkg, nil
}

// BuildCommand returns `go build -o <dir>/.wattd/app .`. The environment
// is the app's own on top of wattd's, so CGO_ENABLED, GOFLAGS and the like
// are whatever the deployment sets; nothing is forced.
func (*Capability) BuildCommand(app capabilities.App) (*capabilities.Launch, error) {
	if !filepath.IsAbs(app.Dir) {
		return nil, fmt.Errorf("go: app %q: directory %q is not absolute", app.ID, app.Dir)
	}
	bin, err := Binary()
	if err != nil {
		return nil, fmt.Errorf("go: app %q: %w", app.ID, err)
	}
	return &capabilities.Launch{
		Argv: []string{bin, "build", "-o", Output(app.Dir), "."},
		Env:  copyEnv(app.Env),
		Dir:  app.Dir,
	}, nil
}

// Prepare returns the built binary as the worker's command line. It does
// not build: a production start runs exactly what `wattd build` produced.
func (c *Capability) Prepare(app capabilities.App) (*capabilities.Launch, error) {
	if app.Mode == capabilities.Development {
		return c.PrepareDev(app)
	}
	if !filepath.IsAbs(app.Dir) {
		return nil, fmt.Errorf("go: app %q: directory %q is not absolute", app.ID, app.Dir)
	}
	bin := Output(app.Dir)
	st, err := os.Stat(bin)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("go: app %q: no build at %s; run `wattd build`: %w", app.ID, bin, err)
	case err != nil:
		return nil, fmt.Errorf("go: app %q: %w", app.ID, err)
	case !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0:
		return nil, fmt.Errorf("go: app %q: %s is not an executable file; run `wattd build`", app.ID, bin)
	}
	fronted, err := Fronted(app)
	if err != nil {
		return nil, fmt.Errorf("go: app %q: %w", app.ID, err)
	}
	return &capabilities.Launch{
		Argv:    []string{bin},
		Env:     withMemLimit(copyEnv(app.Env), app.MemoryLimit),
		Dir:     app.Dir,
		Fronted: fronted,
	}, nil
}

// PrepareDev returns the development start: build, then exec the result
// (see devScript), with the whole app folder watched.
func (*Capability) PrepareDev(app capabilities.App) (*capabilities.Launch, error) {
	if !filepath.IsAbs(app.Dir) {
		return nil, fmt.Errorf("go: app %q: directory %q is not absolute", app.ID, app.Dir)
	}
	bin, err := Binary()
	if err != nil {
		return nil, fmt.Errorf("go: app %q: %w", app.ID, err)
	}
	fronted, err := Fronted(app)
	if err != nil {
		return nil, fmt.Errorf("go: app %q: %w", app.ID, err)
	}
	out := filepath.Join(app.Dir, OutputDir, "dev")
	return &capabilities.Launch{
		// $0 names the shell in ps and in its own error messages.
		Argv:    []string{"/bin/sh", "-c", devScript, "wattd-go-dev", bin, out},
		Env:     withMemLimit(copyEnv(app.Env), app.MemoryLimit),
		Dir:     app.Dir,
		Fronted: fronted,
		// Sources, go.mod, go.sum and embedded files all change the
		// program, so the whole folder; .wattd, being hidden, is skipped.
		Watch: []string{"."},
	}, nil
}

// Fronted reports whether the app's workers listen on $PORT (true) or take
// their sockets by LISTEN_FDS (false): EnvListenFDs when set, else whether
// go.mod requires SDKModule. A folder without go.mod (a prebuilt binary
// chosen with "capability": "go") is fronted.
func Fronted(app capabilities.App) (bool, error) {
	switch v := app.Env[EnvListenFDs]; v {
	case "1":
		return false, nil
	case "0":
		return true, nil
	case "":
	default:
		return false, fmt.Errorf(`%s=%q: want "1" (LISTEN_FDS) or "0" ($PORT)`, EnvListenFDs, v)
	}
	raw, err := os.ReadFile(filepath.Join(app.Dir, "go.mod"))
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return !RequiresSDK(raw), nil
}

// RequiresSDK reports whether the go.mod content gomod requires SDKModule
// (or is that module itself). It reads only what matters here — module and
// require directives, one-line or in blocks — so it needs no go.mod parser;
// replace and exclude lines never count.
func RequiresSDK(gomod []byte) bool {
	inRequire := false
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if inRequire {
			if f[0] == ")" {
				inRequire = false
			} else if modPath(f[0]) == SDKModule {
				return true
			}
			continue
		}
		switch {
		case f[0] == "require(" || (f[0] == "require" && len(f) > 1 && f[1] == "("):
			inRequire = true
		case f[0] == "require" && len(f) > 1:
			if modPath(f[1]) == SDKModule {
				return true
			}
		case f[0] == "module" && len(f) > 1:
			if modPath(f[1]) == SDKModule {
				return true
			}
		}
	}
	return false
}

// modPath undoes the quoting go.mod allows around a module path.
func modPath(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// Binary returns the go executable: $WATTD_GO when set, else go from PATH.
// Only builds need it; a production start runs the built binary.
func Binary() (string, error) {
	return capabilities.FindTool(EnvGo, "go", "Go")
}

// EnvMemLimit is the Go runtime's soft memory limit.
const EnvMemLimit = "GOMEMLIMIT"

// withMemLimit sets GOMEMLIMIT in env to 90% of limit (bytes), unless
// limit is 0 or the app's env or wattd's own environment sets it. The Go
// garbage collector does not see a cgroup's limit: without GOMEMLIMIT a
// program grows its heap to twice the live data (GOGC=100) and is killed
// at the limit, where with it the collector works harder as the heap
// nears the limit. The tenth left is for what the collector does not
// count (stacks of threads in cgo, the binary, page cache charged to the
// cgroup).
func withMemLimit(env map[string]string, limit int64) map[string]string {
	if limit <= 0 {
		return env
	}
	if _, ok := env[EnvMemLimit]; ok {
		return env
	}
	if _, ok := os.LookupEnv(EnvMemLimit); ok {
		return env
	}
	env[EnvMemLimit] = strconv.FormatInt(limit/10*9, 10)
	return env
}

func copyEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}

// isFile reports whether p is a regular file; a missing one, or a path
// through a non-directory, is simply "no".
func isFile(p string) (bool, error) {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return false, nil
		}
		return false, err
	}
	return st.Mode().IsRegular(), nil
}
