package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wattd/wattd/capabilities"
)

// Watt's application.commands replace how an app is built and started.
//
// A start command (production for wattd start, development for wattd dev)
// runs instead of the entry file. Watt injects its loader into the command's
// Node.js process through NODE_OPTIONS and learns the URL when the app
// listens. wattd cannot do the same through NODE_OPTIONS: the command is
// often `npm start` or a shell line, so the process that listens is a
// grandchild, and the sockets and control channel wattd passes belong to the
// process it started (LISTEN_PID), which the preload rightly refuses to take
// over in another process. So the command is fronted instead: it gets a
// loopback port in $PORT, is ready once that port accepts, and wattd forwards
// the worker slot's sockets to it. That works whatever the command runs, at
// the cost of wattd on that app's request path.

// shellOperators make Watt run a command through a shell rather than split
// it into words.
var shellOperators = []string{"&&", "||", ";"}

// startCommand returns the application.commands entry that starts app in
// its mode, "" when there is none.
func startCommand(app capabilities.App) string {
	if app.Mode == capabilities.Development {
		return strings.TrimSpace(app.Watt.Commands.Development)
	}
	return strings.TrimSpace(app.Watt.Commands.Production)
}

// commandLaunch runs a start command, fronted (see above).
func commandLaunch(app capabilities.App, line string) (*capabilities.Launch, error) {
	argv, err := commandArgv(app, line)
	if err != nil {
		return nil, fmt.Errorf("node: app %q: application.commands: %w", app.ID, err)
	}
	env, err := Env(app)
	if err != nil {
		return nil, fmt.Errorf("node: app %q: %w", app.ID, err)
	}
	return &capabilities.Launch{Argv: argv, Env: env, Dir: app.Dir, Fronted: true}, nil
}

// commandArgv turns a command line into argv the way Watt runs it: through
// /bin/sh when it chains commands, else split into words; a leading `node`
// is the Node.js wattd uses (Watt uses its own process's).
func commandArgv(app capabilities.App, line string) ([]string, error) {
	for _, op := range shellOperators {
		if strings.Contains(line, op) {
			return []string{"/bin/sh", "-c", line}, nil
		}
	}
	words, err := SplitOptions(line)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", line, err)
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	if words[0] == "node" {
		bin, err := Binary()
		if err != nil {
			return nil, err
		}
		words[0] = bin
	}
	return words, nil
}

// BuildCommand returns the app's build for wattd build, as @platformatic/node
// builds: application.commands.build when set, else `npm run build` when
// package.json has a build script, else nothing (nil).
func (*Capability) BuildCommand(app capabilities.App) (*capabilities.Launch, error) {
	if !filepath.IsAbs(app.Dir) {
		return nil, fmt.Errorf("node: app %q: directory %q is not absolute", app.ID, app.Dir)
	}
	line := strings.TrimSpace(app.Watt.Commands.Build)
	if line == "" {
		ok, err := hasBuildScript(app.Dir)
		if err != nil {
			return nil, fmt.Errorf("node: app %q: %w", app.ID, err)
		}
		if !ok {
			return nil, nil
		}
		line = "npm run build"
	}
	argv, err := commandArgv(app, line)
	if err != nil {
		return nil, fmt.Errorf("node: app %q: build command: %w", app.ID, err)
	}
	env := make(map[string]string, len(app.Env))
	for k, v := range app.Env {
		env[k] = v
	}
	return &capabilities.Launch{Argv: argv, Env: env, Dir: app.Dir}, nil
}

// hasBuildScript reports whether dir's package.json has a non-empty
// scripts.build. A missing or unreadable package.json has none, as for Watt.
func hasBuildScript(dir string) (bool, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var pkg struct {
		Scripts map[string]any `json:"scripts"`
	}
	if json.Unmarshal(raw, &pkg) != nil {
		return false, nil
	}
	s, _ := pkg.Scripts["build"].(string)
	return s != "", nil
}
