package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/procnet"
)

// buildTailLines is how much of a failed build's output is shown.
const buildTailLines = 40

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:      "build",
		Usage:     "build the applications of the project in DIR, or of its configuration FILE (all, or those named with --app)",
		ArgsUsage: "[DIR|FILE]",
		Flags: []cli.Flag{
			configFlag(),
			dirFlag(),
			strictEnvFlag(),
			&cli.StringSliceFlag{Name: "app", Aliases: []string{"a"}, Usage: "build only `APP` (repeatable)"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show every line of the build output"},
		},
		Action: func(c *cli.Context) error {
			cfg, only, err := buildTarget(c)
			if err != nil {
				return err
			}
			return build(cfg, only, c.Bool("verbose"), stdout)
		},
	}
}

// buildTarget loads the project of `wattd build` and the applications to
// build. The project is given like that of every other command, as [DIR]
// or --dir; earlier versions took application ids as the arguments
// (`wattd build [-d DIR] APP...`), which still works when the arguments
// cannot be read as a project directory, with a note pointing at --app.
func buildTarget(c *cli.Context) (*config.Config, []string, error) {
	only := c.StringSlice("app")
	args := c.Args().Slice()
	loadFile := func(dir, file string) (*config.Config, error) {
		cfg, err := config.LoadWith(config.Options{
			Dir: dir, File: file, Environ: os.Environ(), Check: supervisor.CheckAppToBuild,
			StrictEnv: c.Bool("strict-env"),
		})
		if err != nil {
			return nil, &exitError{exitUsage, err}
		}
		return cfg, nil
	}
	load := func(dir string) (*config.Config, error) { return loadFile(dir, c.String("config")) }
	legacy := func() (*config.Config, []string, error) {
		dir, err := pickDir(c, "")
		if err != nil {
			return nil, nil, err
		}
		cfg, err := load(dir)
		if err != nil && len(args) == 1 && c.String("dir") == "" {
			return nil, nil, usageErrorf("%s is not a project directory, nor an application of a project here: %w", args[0], err)
		}
		if err != nil {
			return nil, nil, err
		}
		for _, id := range args {
			if !hasApp(cfg, id) && isDir(id) {
				return nil, nil, usageErrorf("project directory given twice: %s and --dir %s", id, c.String("dir"))
			}
		}
		fmt.Fprintf(os.Stderr, "wattd: note: application ids as arguments are deprecated; use --app %s\n", strings.Join(args, " --app "))
		return cfg, append(only, args...), nil
	}
	switch {
	case len(args) == 0:
		dir, err := pickDir(c, "")
		if err != nil {
			return nil, nil, err
		}
		cfg, err := load(dir)
		return cfg, only, err
	case len(args) == 1 && isRegular(args[0]):
		// The configuration file itself, as start takes it (projectOf).
		if c.String("config") != "" || c.String("dir") != "" {
			return nil, nil, usageErrorf("%s is a file: give it alone, or the project directory with --config", args[0])
		}
		abs, err := filepath.Abs(args[0])
		if err != nil {
			return nil, nil, err
		}
		cfg, err := loadFile(filepath.Dir(abs), abs)
		return cfg, only, err
	case c.String("dir") != "" && len(args) == 1 && isDir(args[0]) && sameDir(args[0], c.String("dir")):
		cfg, err := load(args[0])
		return cfg, only, err
	case len(args) > 1 || c.String("dir") != "" || !isDir(args[0]):
		return legacy()
	}
	cfg, err := load(args[0])
	if err == nil {
		return cfg, only, nil
	}
	// A folder named like one of the project's applications (web/) is
	// most likely the old form; take it if the project does have it.
	if lcfg, lonly, lerr := quietLegacy(c, args[0], load); lerr == nil {
		fmt.Fprintf(os.Stderr, "wattd: note: building application %q of %s; to build the project in %s, give it a watt.json; use --app %s to name an application\n",
			args[0], lcfg.Dir, args[0], args[0])
		return lcfg, append(only, lonly...), nil
	}
	return nil, nil, err
}

// quietLegacy loads the project in the current directory (or --dir) and
// returns id as the app to build, if the project has it.
func quietLegacy(c *cli.Context, id string, load func(string) (*config.Config, error)) (*config.Config, []string, error) {
	dir, err := pickDir(c, "")
	if err != nil {
		return nil, nil, err
	}
	cfg, err := load(dir)
	if err != nil {
		return nil, nil, err
	}
	if hasApp(cfg, id) {
		return cfg, []string{id}, nil
	}
	return nil, nil, fmt.Errorf("no application %q", id)
}

func hasApp(cfg *config.Config, id string) bool {
	return slices.ContainsFunc(cfg.Applications, func(a config.Application) bool { return a.ID == id })
}

// build runs each application's build in dependency order, stopping at
// the first failure.
func build(cfg *config.Config, only []string, verbose bool, out io.Writer) error {
	known := make([]string, 0, len(cfg.Applications))
	for _, a := range cfg.Applications {
		known = append(known, a.ID)
	}
	for _, id := range only {
		if !slices.Contains(known, id) {
			return &exitError{exitUsage, fmt.Errorf("unknown app %q (known: %s)", id, strings.Join(known, ", "))}
		}
	}
	apps := buildOrder(cfg)
	built := 0
	for _, ac := range apps {
		if len(only) > 0 && !slices.Contains(only, ac.ID) {
			continue
		}
		c, app, err := supervisor.Resolve(cfg, ac, capabilities.Production, os.TempDir())
		if err != nil {
			return &exitError{exitUsage, err}
		}
		b, ok := c.(capabilities.Builder)
		if !ok {
			fmt.Fprintf(out, "%-12s %-8s nothing to build\n", ac.ID, c.ID())
			continue
		}
		l, err := b.BuildCommand(app)
		if err != nil {
			return &exitError{exitFailure, fmt.Errorf("app %q (%s): %w", ac.ID, c.ID(), err)}
		}
		if l == nil {
			fmt.Fprintf(out, "%-12s %-8s nothing to build\n", ac.ID, c.ID())
			continue
		}
		fmt.Fprintf(out, "%-12s %-8s building: %s\n", ac.ID, c.ID(), strings.Join(l.Argv, " "))
		start := time.Now()
		if err := runBuild(ac.ID, l, ac.Env, verbose, out); err != nil {
			// Stopped by a signal, wattd build exits as a shell reports a
			// command the signal ended (130 for Ctrl-C, 143 for SIGTERM),
			// so that a CI job or script tells it from a failed build.
			var stopped *buildStopped
			if errors.As(err, &stopped) {
				return &exitError{128 + int(stopped.sig), err}
			}
			return &exitError{exitFailure, err}
		}
		if ab, ok := c.(capabilities.AfterBuilder); ok {
			if err := ab.AfterBuild(app); err != nil {
				return &exitError{exitFailure, fmt.Errorf("build of app %q: %w", ac.ID, err)}
			}
		}
		fmt.Fprintf(out, "%-12s %-8s built in %s\n", ac.ID, c.ID(), time.Since(start).Round(100*time.Millisecond))
		built++
	}
	fmt.Fprintf(out, "%d app(s) built\n", built)
	return nil
}

// runBuild runs one build command, streaming its output with -v and
// keeping the tail for the error otherwise.
func runBuild(id string, l *capabilities.Launch, appEnv map[string]string, verbose bool, out io.Writer) error {
	cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
	cmd.Dir = l.Dir
	cmd.Env = os.Environ()
	for _, m := range []map[string]string{appEnv, l.Env} {
		for k, v := range m {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	tail := &tailWriter{max: buildTailLines}
	var w io.Writer = tail
	if verbose {
		w = io.MultiWriter(tail, &prefixWriter{prefix: id + " | ", w: out})
	}
	cmd.Stdout, cmd.Stderr = w, w
	// The build runs in a process group of its own, which wattd build
	// stops when it is itself asked to stop (SIGINT, SIGTERM, SIGHUP):
	// otherwise a build stopped by a timeout or docker stop leaves its
	// command (npm, next build and their children) running on its own.
	// Run from a terminal, it stays in the terminal's foreground job
	// instead: a process group of its own would be stopped there by the
	// first prompt it makes (git's or ssh's asking for a password reads
	// the terminal), and Ctrl-C reaches all of it from the terminal.
	group := !foregroundTerminal()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: group}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	err := cmd.Start()
	if err == nil {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case sig := <-sigs:
			stopBuild(cmd.Process.Pid, group, sig.(syscall.Signal), sigs, done)
			return &buildStopped{sig.(syscall.Signal), fmt.Sprintf("build of app %q stopped (wattd build received %s; the build was sent it too): %s", id, sig, strings.Join(l.Argv, " "))}
		}
	}
	if err != nil {
		var ee *exec.ExitError
		reason := err.Error()
		if errors.As(err, &ee) {
			reason = ee.String()
		}
		return fmt.Errorf("build of app %q failed (%s): %s\nlast lines of its output:\n%s",
			id, reason, strings.Join(l.Argv, " "), tail.String())
	}
	return nil
}

// buildStopped is the error of a build that wattd build stopped when it
// received sig.
type buildStopped struct {
	sig syscall.Signal
	msg string
}

func (e *buildStopped) Error() string { return e.msg }

// buildStopGrace is how long a stopped build has to exit after the
// signal before its process group is killed.
const buildStopGrace = 5 * time.Second

// stopBuild passes sig to the build's process group (to its command and
// the processes it started when it has no group of its own) and waits for
// the build to exit; after buildStopGrace, or at a second signal, it kills
// them. The wait is bounded: a process that left the group may hold the
// output pipe. A build in the terminal's foreground job had SIGINT (Ctrl-C)
// and SIGHUP (the terminal closed) from the terminal already: it is not
// sent them twice, which many programs take for "stop now".
func stopBuild(pid int, group bool, sig syscall.Signal, sigs <-chan os.Signal, done <-chan error) {
	send := func(sig syscall.Signal) {
		if group {
			_ = syscall.Kill(-pid, sig)
			return
		}
		for _, p := range procnet.Tree(pid) {
			_ = syscall.Kill(p, sig)
		}
	}
	if group || sig == syscall.SIGTERM {
		send(sig)
	}
	killed := false
	select {
	case <-done:
	case <-sigs:
		killed = true
	case <-time.After(buildStopGrace):
		killed = true
	}
	if killed {
		send(syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(buildStopGrace):
		}
	}
	if group {
		// What the build started and left in its group goes with it.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// foregroundTerminal tells whether wattd build runs in the foreground job
// of the terminal on its standard input.
func foregroundTerminal() bool {
	fg, err := unix.IoctlGetInt(int(os.Stdin.Fd()), unix.TIOCGPGRP)
	return err == nil && fg == syscall.Getpgrp()
}

// tailWriter keeps the last max lines written to it.
type tailWriter struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.part + string(p)
	parts := strings.Split(s, "\n")
	t.part = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		t.lines = append(t.lines, "  "+l)
		if len(t.lines) > t.max {
			t.lines = t.lines[1:]
		}
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if t.part != "" {
		lines = append(slices.Clone(lines), "  "+t.part)
	}
	return strings.Join(lines, "\n")
}

// prefixWriter prefixes every line with the app's name.
type prefixWriter struct {
	mu      sync.Mutex
	prefix  string
	w       io.Writer
	midLine bool // the last byte written was not a newline
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sb strings.Builder
	for _, c := range string(b) {
		if !p.midLine {
			sb.WriteString(p.prefix)
			p.midLine = true
		}
		sb.WriteRune(c)
		if c == '\n' {
			p.midLine = false
		}
	}
	_, err := io.WriteString(p.w, sb.String())
	return len(b), err
}

// buildOrder puts every application after its dependencies (the config
// has no cycles: it was validated). Among applications free to go, config
// order holds, except that the entrypoint goes last: it usually calls the
// others, whether or not it declares them.
func buildOrder(cfg *config.Config) []config.Application {
	done := map[string]bool{}
	var out []config.Application
	for len(out) < len(cfg.Applications) {
		var next *config.Application
		for i := range cfg.Applications {
			a := &cfg.Applications[i]
			if done[a.ID] || !allDone(a.Dependencies, done) {
				continue
			}
			if next == nil || next.ID == cfg.Entrypoint {
				next = a
			}
			if a.ID != cfg.Entrypoint {
				break
			}
		}
		done[next.ID] = true
		out = append(out, *next)
	}
	return out
}

func allDone(ids []string, done map[string]bool) bool {
	for _, id := range ids {
		if !done[id] {
			return false
		}
	}
	return true
}
