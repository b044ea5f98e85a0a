// Package command is the capability for any executable: a Python, Ruby or
// PHP server, a compiled binary, a script. It is never detected, because any
// directory could hold one; an application chooses it in watt.json:
//
//	{ "id": "api", "path": "./api", "capability": "command", "command": ["python3", "-u", "app.py"] }
//
// How the program gets its socket is the one thing wattd cannot find out by
// looking at it. Most programs bind a port they are told, so by default the
// launch is fronted: each worker listens on $PORT and wattd forwards to it.
// A program that takes its sockets by the LISTEN_FDS convention (systemd
// socket activation, or the Go SDK in package ipc) says so with
// WATTD_LISTEN_FDS=1 in the app's environment (EnvListenFDs); it then
// receives the worker slot's sockets directly and wattd stays off the
// request path.
package command

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/capabilities/node"
)

// ID is the capability id used in watt.json.
const ID = "command"

// EnvListenFDs, set to "1" in an application's environment, says that its
// program takes the slot's sockets by the LISTEN_FDS convention instead of
// listening on $PORT. The config's "listenFds": true maps onto it.
const EnvListenFDs = "WATTD_LISTEN_FDS"

// Capability is the command capability. The zero value is ready to use.
type Capability struct{}

var (
	_ capabilities.Capability   = (*Capability)(nil)
	_ capabilities.EntryChecker = (*Capability)(nil)
)

func init() { capabilities.Register(&Capability{}) }

// ID returns "command".
func (*Capability) ID() string { return ID }

// Detect always reports false: the capability is only ever chosen by name.
func (*Capability) Detect(string) (bool, error) { return false, nil }

// Prepare returns app.Command, with its executable resolved, as the
// worker's command line. The same launch serves production and development
// (where wattd restarts it when files change).
func (*Capability) Prepare(app capabilities.App) (*capabilities.Launch, error) {
	if !filepath.IsAbs(app.Dir) {
		return nil, fmt.Errorf("app %q: directory %q is not absolute", app.ID, app.Dir)
	}
	argv, err := Argv(app)
	if err != nil {
		return nil, err
	}
	env := make(map[string]string, len(app.Env))
	for k, v := range app.Env {
		env[k] = v
	}
	return &capabilities.Launch{
		Argv:    argv,
		Env:     env,
		Dir:     app.Dir,
		Fronted: app.Env[EnvListenFDs] != "1",
	}, nil
}

// CheckEntry finds the program as Prepare will, so that a command that
// names none (a typo, a script not made executable) is reported with the
// configuration, at its "command" key, instead of failing every start.
func (*Capability) CheckEntry(app capabilities.App) error {
	if _, err := argv(app); err != nil {
		return &capabilities.KeyError{Key: "command", Err: err}
	}
	return nil
}

// Argv returns app.Command ready to exec: a single element is a command
// line and is split like a shell would (quotes and backslashes, no
// expansions), unless it names an executable as it stands, so that a path
// with a space given as a one-element array still works. The executable is
// then resolved (see Resolve).
func Argv(app capabilities.App) ([]string, error) {
	a, err := argv(app)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app.ID, err)
	}
	return a, nil
}

// argv is Argv, its errors without the application's id.
func argv(app capabilities.App) ([]string, error) {
	argv := app.Command
	if len(argv) == 1 {
		if _, err := Resolve(argv[0], app.Dir, app.Env); err != nil {
			split, serr := node.SplitOptions(argv[0])
			if serr != nil {
				return nil, fmt.Errorf("command %q: %w", argv[0], serr)
			}
			argv = split
		}
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New(`the command capability needs "command" in watt.json`)
	}
	exe, err := Resolve(argv[0], app.Dir, app.Env)
	if err != nil {
		return nil, err
	}
	return append([]string{exe}, argv[1:]...), nil
}

// Resolve returns the absolute path of the executable name, the way a shell
// started in dir would find it: a name with a slash is a path (relative
// ones from dir), a bare name is looked up in PATH — the app's own PATH
// when its environment sets one, since that is what the worker will run
// with. Resolving here rather than at exec time turns a typo into one clear
// error at startup instead of a worker failing over and over.
func Resolve(name, dir string, env map[string]string) (string, error) {
	if strings.ContainsRune(name, '/') {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", fmt.Errorf("command %q: %w", name, err)
		}
		return p, nil
	}
	path, ok := env["PATH"]
	if !ok {
		path = os.Getenv("PATH")
	}
	for _, d := range filepath.SplitList(path) {
		// A relative PATH entry would depend on the worker's directory;
		// like exec.LookPath, refuse to pick programs up that way.
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	err := fmt.Errorf("command %q: not found in PATH", name)
	if executable(filepath.Join(dir, name)) == nil {
		// The shell would not find it either, but the intent is plain.
		err = fmt.Errorf("%w (to run the file in the app's folder, write %q)", err, "./"+name)
	}
	return "", err
}

// executable checks that p is a regular file with an execute bit.
func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}
