package supervisor

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/capabilities/node"
	"github.com/wattd/wattd/supervisor/config"
)

// EnvListenFDsMode tells the command capability that the program takes its
// sockets by LISTEN_FDS (watt.json "listenFds": true) rather than $PORT.
const EnvListenFDsMode = "WATTD_LISTEN_FDS"

// memoryLimit is the lower of the memory limits a worker has, 0 for none.
func memoryLimit(r config.Resources) int64 {
	switch {
	case r.MemoryHigh > 0 && (r.Memory == 0 || r.MemoryHigh < r.Memory):
		return r.MemoryHigh
	default:
		return r.Memory
	}
}

// Resolve finds an application's capability — the one named in watt.json,
// else the first that recognises its files — and the description the
// capability works from. Errors name the config file and the JSON path.
func Resolve(cfg *config.Config, ac config.Application, mode capabilities.Mode, runtimeDir string) (capabilities.Capability, capabilities.App, error) {
	app := capabilities.App{
		ID:          ac.ID,
		Dir:         ac.Path,
		Entrypoint:  ac.ID == cfg.Entrypoint,
		Env:         maps.Clone(ac.Env),
		NodeOptions: ac.NodeOptions,
		HeapOptions: ac.Health.HeapFlags(),
		MemoryLimit: memoryLimit(ac.Resources),
		RuntimeDir:  runtimeDir,
		Mode:        mode,
		Command:     ac.Command,
		Watt:        ac.Watt,

		CompileCache: ac.CompileCache,
	}
	if app.Env == nil {
		app.Env = map[string]string{}
	}
	if ac.ListenFDs {
		app.Env[EnvListenFDsMode] = "1"
	}
	if ac.CommandLine != "" {
		argv, err := node.SplitOptions(ac.CommandLine)
		if err != nil {
			return nil, app, fmt.Errorf("%s: %s/command: %w", cfg.File, ac.Pointer, err)
		}
		app.Command = argv
	}
	if ac.Capability != "" {
		c, err := capabilities.Get(ac.Capability)
		if err != nil {
			return nil, app, fmt.Errorf("%s: %s/capability: %w", cfg.File, ac.Pointer, err)
		}
		return c, app, nil
	}
	c, err := capabilities.Detect(ac.Path)
	if err != nil {
		return nil, app, fmt.Errorf("app %q: %w (set \"capability\" at %s in %s)", ac.ID, err, ac.Pointer, cfg.File)
	}
	return c, app, nil
}

// CheckApp is a config.AppCheck for wattd start: it finds, while the
// configuration is loaded, what Resolve and the start would fail on later
// (a command line that does not split, an unknown capability, files no
// capability recognises, standby workers of an app that cannot have
// them), so those problems are part of the configuration's report and
// exit like it.
func CheckApp(ac config.Application) (string, error) {
	return checkApp(ac, capabilities.Production, true)
}

// CheckAppToBuild is CheckApp for wattd build: an application's entry
// is not looked for, since the build may be what makes it (a TypeScript
// app's "main": "dist/index.js").
func CheckAppToBuild(ac config.Application) (string, error) {
	return checkApp(ac, capabilities.Production, false)
}

// CheckAppIn is CheckApp for the mode the runtime runs in (wattd dev:
// Development), which picks an application's start command.
func CheckAppIn(mode capabilities.Mode) config.AppCheck {
	return func(ac config.Application) (string, error) { return checkApp(ac, mode, true) }
}

// checkApp checks ac as the start in mode will run it; entry tells whether
// its entry file must already be there (not before a build).
func checkApp(ac config.Application, mode capabilities.Mode, entry bool) (string, error) {
	if ac.CommandLine != "" {
		if _, err := node.SplitOptions(ac.CommandLine); err != nil {
			return "command", err
		}
	}
	// Node.js splits NODE_OPTIONS itself, at each worker's start; a
	// quoting mistake is the file's, found here rather than by the start.
	if opts := strings.TrimSpace(ac.NodeOptions); opts != "" {
		if _, err := node.SplitOptions(opts); err != nil {
			return "nodeOptions", err
		}
	}
	var c capabilities.Capability
	var err error
	if ac.Capability != "" {
		if c, err = capabilities.Get(ac.Capability); err != nil {
			return "capability", err
		}
	} else if c, err = capabilities.Detect(ac.Path); err != nil {
		return "path", fmt.Errorf(`%w; set "capability" to choose one`, err)
	}
	if ac.Watt.Permissions.On() {
		r, ok := c.(capabilities.Restrictor)
		if !ok || !r.CanRestrict(capabilities.App{ID: ac.ID, Dir: ac.Path, Mode: mode, Watt: ac.Watt}) {
			return "permissions", errors.New(noPermissions(ac.ID, c.ID()))
		}
	}
	if ec, ok := c.(capabilities.EntryChecker); ok {
		app := capabilities.App{ID: ac.ID, Dir: ac.Path, Mode: mode, Watt: ac.Watt, Command: ac.Command, Env: ac.Env}
		if ac.CommandLine != "" {
			app.Command, _ = node.SplitOptions(ac.CommandLine) // split above
		}
		err := ec.CheckEntry(app)
		if _, missing := errors.AsType[*capabilities.EntryMissingError](err); missing && !entry {
			err = nil // the build makes it
		}
		if err != nil {
			if ke, ok := errors.AsType[*capabilities.KeyError](err); ok {
				return ke.Key, ke.Err
			}
			return "", err
		}
	}
	if ac.Standby > 0 {
		h, ok := c.(capabilities.StandbyHolder)
		if !ok || !h.CanStandby(capabilities.App{ID: ac.ID, Dir: ac.Path, Mode: mode, Watt: ac.Watt}) {
			return "standby", errors.New(noStandby(ac.ID, c.ID()))
		}
	}
	return "", nil
}

// noStandby is the problem of an application that has standby workers
// its capability cannot start.
func noStandby(id, capability string) string {
	return fmt.Sprintf("app %q (%s): expected no standby workers: only Node.js applications that wattd starts with its preload can hold a standby (not a start command of their own, nor node.hasServer false); remove the key", id, capability)
}

// noPermissions is the problem of an application that has permissions
// its capability cannot apply.
func noPermissions(id, capability string) string {
	return fmt.Sprintf("app %q (%s): expected no permissions: wattd applies them with Node.js's permission model to the Node.js applications it starts with its preload (not a start command of their own, nor a Go program or static files); remove the key", id, capability)
}

var _ config.AppCheck = CheckApp

// launchFor asks the capability how to start a worker in mode.
func launchFor(c capabilities.Capability, app capabilities.App) (*capabilities.Launch, error) {
	if d, ok := c.(capabilities.Developer); ok && app.Mode == capabilities.Development {
		return d.PrepareDev(app)
	}
	return c.Prepare(app)
}
