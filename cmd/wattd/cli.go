package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/cmd/wattd/internal/earlysig"
	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/admin"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/devwatch"
	"github.com/wattd/wattd/supervisor/listeners"
	"github.com/wattd/wattd/supervisor/logs"
	"github.com/wattd/wattd/supervisor/metrics"
	"github.com/wattd/wattd/supervisor/reaper"
	"github.com/wattd/wattd/supervisor/rundir"
	"github.com/wattd/wattd/supervisor/scheduler"
	"github.com/wattd/wattd/supervisor/sdnotify"
	"github.com/wattd/wattd/supervisor/telemetry"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes; documented in docs/operations.md.
const (
	exitOK      = 0
	exitFailure = 1 // runtime error: every app failed, sockets could not be opened, ...
	exitUsage   = 2 // bad command line or bad watt.json: nothing was started
)

// exitError carries an exit code through urfave/cli.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func run(args []string) int {
	app := &cli.App{
		Name:                 "wattd",
		Usage:                "run Node.js and other HTTP applications as supervised worker processes",
		Version:              version,
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		Action:               unknownCommand("wattd"),
		Commands: []*cli.Command{
			startCommand(),
			devCommand(),
			buildCommand(),
			initCommand(),
			ctlCommand(),
			completionCommand(),
			{
				Name:  "schema",
				Usage: "print the JSON schema of watt.json",
				Action: func(c *cli.Context) error {
					_, err := stdout.Write(config.EditorSchema())
					return err
				},
			},
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintln(stdout, "wattd", version)
					return nil
				},
			},
		},
	}
	args, err := permute(app.Commands, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wattd:", err)
		return exitUsage
	}
	err = app.Run(args)
	if werr := stdout.failed(); werr != nil {
		// Whatever else went wrong, the output is lost: a failure of
		// the command, not of its command line.
		fmt.Fprintln(os.Stderr, "wattd: write standard output:", unwrapPath(werr))
		return exitFailure
	}
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err != errForcedStop {
				fmt.Fprintln(os.Stderr, "wattd:", ee.err)
			}
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "wattd:", err)
		return exitUsage
	}
	return exitOK
}

// readTimeout bounds what ctl waits for an answer that takes the runtime
// no time to give (a status, a listing, a stop asked for without --wait).
const readTimeout = 10 * time.Second

// noAnswer is the error of a ctl command whose runtime did not answer
// within d. change says the command asks for a change (a restart, a
// reload, a scaling, a stop), which the runtime may still carry out.
func noAnswer(d time.Duration, change bool) error {
	if change {
		return fmt.Errorf("no answer within %s (--timeout); the runtime may still be carrying the request out: see wattd ctl ps", d)
	}
	return fmt.Errorf("no answer within %s: the runtime is running but does not answer (suspended, or too busy to?); its pid is in wattd ctl list", d)
}

// stdout is where every command prints: the standard output, with the
// first error of a write kept, so that output lost (a full disk, a closed
// file) fails the command instead of passing for success.
var stdout = &keptError{w: os.Stdout}

// keptError is a writer that keeps its first error and fails every write
// after it.
type keptError struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (k *keptError) Write(b []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		return 0, k.err
	}
	n, err := k.w.Write(b)
	k.err = err
	return n, err
}

func (k *keptError) failed() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// unknownCommand is the action of wattd and of `wattd ctl`, which only
// dispatch to their subcommands: with no argument it shows the help, with
// `help [TOPIC]` the help of TOPIC, and with anything else a usage error
// (urfave/cli's default would answer "No help topic for ...").
func unknownCommand(path string) cli.ActionFunc {
	return func(c *cli.Context) error {
		show := func() error {
			if c.Command != nil && c.Command.Name != "" {
				return cli.ShowSubcommandHelp(c)
			}
			return cli.ShowAppHelp(c)
		}
		first := c.Args().First()
		switch {
		case first == "":
			return show()
		case first == "help" && c.NArg() == 1:
			return show()
		case first == "help":
			topic := c.Args().Get(1)
			if findCommand(c, topic) == nil {
				return usageErrorf("unknown command %s; see %s --help", topic, path)
			}
			return cli.ShowCommandHelp(c, topic)
		}
		return usageErrorf("unknown command %s; see %s --help", first, path)
	}
}

// findCommand looks name up among the subcommands of c's command (or the
// app's commands at the top level).
func findCommand(c *cli.Context, name string) *cli.Command {
	cmds := c.App.Commands
	if c.Command != nil && len(c.Command.Subcommands) > 0 {
		cmds = c.Command.Subcommands
	}
	for _, cmd := range cmds {
		if cmd.HasName(name) {
			return cmd
		}
	}
	return nil
}

func startCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "run the project in DIR (default: the current directory), or the one whose configuration FILE is given",
		ArgsUsage: "[DIR|FILE]",
		Flags:     []cli.Flag{configFlag(), dirFlag(), envFileFlag(), strictEnvFlag(), runtimeNameFlag(), inspectFlag(), inspectAddressFlag()},
		Action: func(c *cli.Context) error {
			dir, file, err := projectOf(c)
			if err != nil {
				return err
			}
			inspect, err := inspectOption(c)
			if err != nil {
				return err
			}
			return start(projectFiles{dir: dir, config: file, env: c.String("env"), strictEnv: c.Bool("strict-env"), inspect: inspect}, c.String("name"), capabilities.Production)
		},
	}
}

func devCommand() *cli.Command {
	return &cli.Command{
		Name:      "dev",
		Usage:     "run the project in DIR (or of FILE) in development mode: dev servers, one worker per app, restart on change",
		ArgsUsage: "[DIR|FILE]",
		Flags:     []cli.Flag{configFlag(), dirFlag(), envFileFlag(), strictEnvFlag(), runtimeNameFlag(), inspectFlag(), inspectAddressFlag()},
		Action: func(c *cli.Context) error {
			dir, file, err := projectOf(c)
			if err != nil {
				return err
			}
			inspect, err := inspectOption(c)
			if err != nil {
				return err
			}
			return start(projectFiles{dir: dir, config: file, env: c.String("env"), strictEnv: c.Bool("strict-env"), inspect: inspect}, c.String("name"), capabilities.Development)
		},
	}
}

// runtimeNameFlag is start's and dev's --name.
func runtimeNameFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "name", Usage: "call this runtime `NAME`, for wattd ctl --name (default: the project directory's name)",
		Action: func(_ *cli.Context, name string) error {
			// Given, it must be a name: an empty one (a script's unset
			// $NAME) is a mistake, not the default.
			if err := rundir.ValidName(name); err != nil {
				return &exitError{exitUsage, fmt.Errorf("--name: %w", err)}
			}
			return nil
		}}
}

func start(pf projectFiles, name string, mode capabilities.Mode) (err error) {
	// First, while nothing can have reused their descriptors: the sockets
	// a service manager passed (socket activation).
	passed, passErr := listeners.Activated(activation.Files(true))
	// Taken since package initialisation (earlysig), before anything is
	// made that an exit would leave behind (the runtime directory,
	// cgroups): a signal that comes while wattd sets up waits there for
	// the runtime, instead of ending wattd by the signal's default action.
	// A stop signal then stops it as soon as it runs.
	sigs, before := earlysig.Take()
	hangups := newHangupWatch(before)
	defer earlysig.Release()
	logs.KeepRunningOnBrokenPipe() // a closed output pipe must not end the daemon
	// A problem found before the runtime's notifier exists still reaches
	// the service manager, as the status of the failed start.
	usage := func(err error) error {
		sdnotify.FromEnv(zap.NewNop()).Failed(err)
		return &exitError{exitUsage, err}
	}
	cfg, err := configLoader(pf, mode, false)()
	if err != nil {
		return usage(err)
	}
	if pf.config == "" && cfg.File != "" {
		// A reload reads the file the start found, not whichever of Watt's
		// names is first in the directory by then: a watt.json gone
		// mid-deploy is refused rather than replaced by a stale
		// platformatic.json.
		pf.config = cfg.File
	}
	load := configLoader(pf, mode, true)
	var redact *logs.Redactor
	if r := cfg.Logger.Redact; r != nil {
		if redact, err = logs.NewRedactor(r.Paths, r.Censor); err != nil {
			return usage(fmt.Errorf("%s: %s: %w", cfg.File, cfg.Pointer("/logger/redact"), err))
		}
	}
	recent := logs.NewRecent(logs.RecentOptions{})
	setup := logs.Setup{Level: cfg.Logger.Level, Redact: redact, Recent: recent}
	var logExport *telemetry.LogExporter
	if e := cfg.Logger.Export; e != nil {
		if logExport, err = telemetry.NewLogExporter(*e); err != nil {
			return usage(fmt.Errorf("%s: %s: %w", cfg.File, cfg.Pointer("/logger/openTelemetryExporter"), err))
		}
		setup.Export = logExport.Line
	}
	if _, err := logs.ParseLevel(cfg.Logger.Level); err != nil {
		return usage(fmt.Errorf("%s: %s: %w", cfg.File, cfg.Pointer("/logger/level"), err))
	}
	log, _, err := logs.NewWith(os.Stderr, setup)
	if err != nil { // WATTD_LOG_FORMAT, which the message names
		return usage(err)
	}
	defer log.Sync() //nolint:errcheck // stderr
	if logExport != nil {
		logExport.SetLogger(log.Named("telemetry"))
		// Last, after every other deferred step has logged: what is still
		// queued goes out within logExportFlush.
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), logExportFlush)
			defer cancel()
			if err := logExport.Shutdown(ctx); err != nil {
				log.Warn("log export: entries still queued at exit were lost", zap.Error(err))
			}
		}()
	}
	notifier := sdnotify.FromEnv(log.Named("sdnotify"))
	defer func() {
		if err != nil {
			notifier.Failed(err)
		}
	}()
	if passErr != nil {
		return &exitError{exitFailure, passErr}
	}
	raiseFDLimit(log)
	reserveThreads(log)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if name == "" {
		name = rundir.NameFor(cfg.Dir)
	}
	if err := rundir.ValidName(name); err != nil {
		return &exitError{exitUsage, fmt.Errorf("%w; choose one with --name", err)}
	}
	rd, err := rundir.Create(cfg.Dir)
	if err != nil {
		return &exitError{exitFailure, err}
	}
	defer rd.Remove()
	for _, w := range rd.Warnings {
		log.Warn(w)
	}
	if err := rundir.NameTaken(name, rd.Path); err != nil {
		return &exitError{exitFailure, err}
	}
	rd.SetName(name)
	opts := supervisor.Options{
		Config: cfg, Logger: log, RunDir: rd, Version: version, Mode: mode,
		Notify: notifier, PublicSocket: passed, Load: load, Inspect: pf.inspect,
	}
	if logExport != nil {
		opts.LogExport = logExport
	}
	opts.AppRemoved = recent.Forget
	rt, err := supervisor.New(opts)
	if err != nil {
		return &exitError{exitFailure, err}
	}
	if err := rd.WriteInfo(cfg.File, version); err != nil {
		log.Warn("could not write runtime.json", zap.Error(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if err := reaper.Run(ctx, log.Named("reaper")); err != nil {
			log.Warn("orphaned processes will not be reaped", zap.Error(err))
		}
	}()
	adm, err := admin.Serve(ctx, rd.AdminSocket(), withLogs{rt, recent}, log.Named("admin"))
	if err != nil {
		rt.Close()
		return &exitError{exitFailure, err}
	}
	defer adm.Close()
	var metricsHandler http.Handler
	if cfg.Metrics.Enabled {
		ms, err := metrics.Serve(cfg.Metrics, rt, log.Named("metrics"))
		if err != nil {
			rt.Close()
			return &exitError{exitFailure, err}
		}
		defer ms.Close()
		metricsHandler = ms.Handler()
		// The workers' figures of the last interval go with a push as the
		// shutdown begins; the one at Close has only wattd's own.
		go func() {
			select {
			case <-rt.Stopping():
				ms.PushNow()
			case <-ctx.Done():
			}
		}()
	}
	if m := cfg.ManagementAPI; m.Enabled && metricsHandler == nil && !cfg.Metrics.Off {
		// wattpm metrics answers without a metrics server too, as under
		// Watt; "metrics": false turns that off as well.
		if metricsHandler, err = metrics.NewHandler(cfg.Metrics, rt, log.Named("metrics")); err != nil {
			rt.Close()
			return &exitError{exitFailure, err}
		}
	}
	if m := cfg.ManagementAPI; m.Enabled {
		wa, err := admin.ServeWatt(ctx, withLogs{rt, recent}, admin.WattOptions{
			Socket: m.Socket, Name: name, Version: version, Production: mode == capabilities.Production, Metrics: metricsHandler,
		}, log.Named("management"))
		switch {
		case err == nil:
			defer wa.Close()
		case m.Socket != "":
			// Asked for by name: not serving it is an error.
			rt.Close()
			return &exitError{exitFailure, err}
		default:
			log.Warn(`wattpm cannot see this runtime: its management API did not start (wattd ctl can; "managementApi": false turns this off)`, zap.Error(err))
		}
	}
	if cfg.Probes != nil {
		ps, err := metrics.ServeProbes(*cfg.Probes, cfg.Metrics.Auth, rt, log.Named("probes"))
		if err != nil {
			rt.Close()
			return &exitError{exitFailure, err}
		}
		defer ps.Close()
	}
	if opts.Inspect != nil {
		is, err := supervisor.ServeInspector(rt, log.Named("inspector"))
		if err != nil {
			rt.Close()
			return &exitError{exitFailure, err}
		}
		defer is.Close()
	}

	// cleanup is what every exit must do, whichever path it takes.
	var cleanOnce sync.Once
	cleanup := func() {
		cleanOnce.Do(func() {
			adm.Close()
			if err := rd.Remove(); err != nil {
				log.Warn("could not remove the runtime directory", zap.Error(err))
			}
		})
	}
	defer cleanup()

	var forced atomic.Bool
	sh := &signalHandler{rt: rt, log: log, hup: newHupReloader(rt, log), hangups: hangups}
	go sh.hup.run(ctx)
	sh.forced = func() {
		forced.Store(true)
		// Run returns as soon as the killed workers are reaped; should
		// anything hang instead, exit anyway, still without leaving the
		// runtime directory behind.
		time.AfterFunc(forcedExitAfter, func() {
			log.Error("workers not reaped after a second stop signal; exiting", zap.Duration("waited", forcedExitAfter))
			cleanup()
			_ = log.Sync()
			os.Exit(exitFailure)
		})
	}
	go sh.run(ctx, sigs)
	if mode == capabilities.Development {
		watchForDev(ctx, rt, log.Named("dev"))
	}

	err = rt.Run(ctx)
	switch {
	case err != nil:
		return &exitError{exitFailure, err}
	case forced.Load():
		// Said in the log already; systemd's STATUS gets it too.
		return &exitError{exitFailure, errForcedStop}
	}
	return nil
}

// errForcedStop is the end of a stop that a second stop signal made
// forced.
var errForcedStop = errors.New("stopped by a second stop signal: the workers were killed without draining")

// stopEcho is how long after a stop signal another one counts as the same
// request, not as a second one that kills every worker: one Ctrl-C
// reaches wattd twice when a wrapper that forwards signals (npm start,
// yarn, pnpm) is in the terminal's foreground process group too, and GNU
// timeout signals its child and then its own group. A person pressing
// Ctrl-C again does so later than this.
const stopEcho = 300 * time.Millisecond

// forcedExitAfter bounds how long wattd waits for killed workers to be
// reaped after a second stop signal.
const forcedExitAfter = 5 * time.Second

// logExportFlush bounds how long wattd, exiting, sends the log entries
// still queued for logger.openTelemetryExporter.
const logExportFlush = 5 * time.Second

// signalHandler is the one place where wattd acts on signals: TERM, INT
// and QUIT (some images' STOPSIGNAL, nginx's graceful stop; Go's default
// would dump the goroutines and exit 2, leaving every cgroup behind) stop
// gracefully (a second one kills the workers at once and calls
// forced), USR2 restarts every app rolling, HUP reloads the configuration,
// unless it is the hang-up of wattd's controlling terminal (hangups),
// which stops it gracefully unless it was started under nohup.
type signalHandler struct {
	rt      *supervisor.Runtime
	log     *zap.Logger
	forced  func()
	hup     *hupReloader
	hangups *hangupWatch
}

func (h *signalHandler) run(ctx context.Context, sigs <-chan os.Signal) {
	stopping := false
	var stopAt time.Time // when the stop began
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				switch h.hangups.classify() {
				case hupHangup:
					if h.hangups.outlive {
						h.log.Warn("SIGHUP: the controlling terminal hung up; not reloading. SIGHUP was ignored when wattd started (nohup), so it keeps running without a terminal: stop it with wattd ctl stop, reload with wattd ctl reload or kill -HUP")
						continue
					}
					if stopping {
						continue
					}
					stopping, stopAt = true, time.Now()
					h.log.Warn("SIGHUP: the controlling terminal hung up; stopping gracefully. To keep wattd running without a terminal, start it under nohup, with setsid or under a service manager")
					h.rt.Stop()
				case hupEchoing:
					h.log.Debug("SIGHUP: part of the terminal's hang-up; ignored")
				default:
					h.hup.request()
				}
			case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
				if stopping && time.Since(stopAt) < stopEcho {
					h.log.Info("stop signal repeated at once; taken as the same request, the graceful stop goes on (send it again to stop at once)",
						zap.String("signal", sig.String()), zap.Duration("after", time.Since(stopAt)))
					continue
				}
				if stopping {
					h.log.Warn("second stop signal; killing every worker and exiting", zap.String("signal", sig.String()))
					h.forced()
					h.rt.Kill()
					continue
				}
				stopping, stopAt = true, time.Now()
				h.log.Info("stop signal received", zap.String("signal", sig.String()))
				h.rt.Stop()
			case syscall.SIGUSR2:
				h.log.Info("SIGUSR2: rolling restart of every application")
				go func() {
					if err := h.rt.RestartAll(context.Background()); err != nil {
						// Each application is tried in turn: the error names those
						// that were not restarted; the others were.
						h.log.Error("SIGUSR2: the rolling restart failed for some applications; the others were restarted", zap.Error(err))
					}
				}()
			}
		}
	}
}

// watchForDev restarts an application's workers when its files change.
// A restart is rolling: if the edited code does not start, the old worker
// keeps serving and the error is logged. What is watched follows reloads:
// an application a reload adds is watched, one it removes no longer is,
// and changed "watch" keys or folders apply.
func watchForDev(ctx context.Context, rt *supervisor.Runtime, log *zap.Logger) {
	d := &devWatcher{ctx: ctx, rt: rt, log: log, running: map[string]devWatch{}}
	// Before the first sync: a reload that ends while it walks the folders
	// syncs again after it (d.mu), instead of leaving it out of date.
	rt.OnReload(d.sync)
	d.sync()
}

// devWatcher holds wattd dev's watches, one per application.
type devWatcher struct {
	ctx context.Context
	rt  *supervisor.Runtime
	log *zap.Logger

	mu      sync.Mutex
	running map[string]devWatch // by application id
	// project watches the project's own configuration files that are in
	// no application's folder (projectFiles), for a reload.
	project      context.CancelFunc
	projectFiles []string

	reloadMu sync.Mutex // one reload for changed configuration files at a time
}

type devWatch struct {
	target supervisor.WatchTarget
	stop   context.CancelFunc
}

// sync makes the watches match rt.WatchTargets: it stops those of the
// applications no longer there or whose target changed, and starts the
// missing ones (an application whose folder could not be watched is tried
// again at the next reload).
func (d *devWatcher) sync() {
	d.mu.Lock()
	defer d.mu.Unlock()
	targets := d.rt.WatchTargets()
	for id, w := range d.running {
		if t, ok := targets[id]; !ok || !reflect.DeepEqual(t, w.target) {
			w.stop()
			delete(d.running, id)
			if !ok {
				d.log.Info("no longer watching the application's files", zap.String("app", id))
			}
		}
	}
	for id, t := range targets {
		if _, ok := d.running[id]; ok {
			continue
		}
		ctx, stop := context.WithCancel(d.ctx)
		if err := d.watch(ctx, id, t); err != nil {
			stop()
			d.log.Warn("cannot watch files; changes will not restart the app", zap.String("app", id), zap.Error(err))
			continue
		}
		d.running[id] = devWatch{target: t, stop: stop}
		d.log.Debug("watching the application's files", zap.String("app", id), zap.String("dir", t.Dir))
	}
	d.syncProject(targets)
}

// syncProject watches the project's configuration files (its watt.json,
// its .env files, the runtime envfile) that no application's watch sees,
// and reloads when one changes: editing the project's watt.json or .env
// applies as an application's own do. A file inside an application's
// folder is left to that application's watch, which reloads too. Nothing
// is watched when Watt's "watch" is false.
func (d *devWatcher) syncProject(targets map[string]supervisor.WatchTarget) {
	var files []string
	if cfg := d.rt.Config(); cfg != nil && !cfg.NoWatch {
		files = slices.DeleteFunc(slices.Clone(cfg.Sources), func(f string) bool {
			for _, t := range targets {
				if rel, err := filepath.Rel(t.Dir, f); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					return true
				}
			}
			return false
		})
	}
	if slices.Equal(files, d.projectFiles) {
		return
	}
	if d.project != nil {
		d.project()
		d.project = nil
	}
	d.projectFiles = files
	if len(files) == 0 {
		return
	}
	ctx, stop := context.WithCancel(d.ctx)
	err := devwatch.WatchFiles(ctx, files, 300*time.Millisecond, func(paths []string) {
		if ctx.Err() != nil {
			return
		}
		d.log.Info("the project's configuration changed; reloading", zap.Strings("paths", paths))
		d.reload()
	})
	if err != nil {
		stop()
		d.projectFiles = nil // tried again at the next reload
		d.log.Warn("cannot watch the project's configuration files; run wattd ctl reload after editing them", zap.Error(err))
		return
	}
	d.project = stop
}

func (d *devWatcher) watch(ctx context.Context, id string, target supervisor.WatchTarget) error {
	dir, filter := target.Dir, devwatch.NewFilter(target.Allow, target.Ignore)
	base := dir // the changed paths are under the folder the watch resolved
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		base = real
	}
	return devwatch.Watch(ctx, dir, 300*time.Millisecond, func(paths []string) {
		// The application's "watch" globs say which changes count; the
		// folder itself stands for changes that were lost, which may.
		// A file the configuration is read from counts whatever the globs
		// say (an edit that removes "allow" must be seen); one wattd writes
		// itself (the file span exporter's) never does.
		own := d.ownFiles()
		paths = slices.DeleteFunc(paths, func(p string) bool {
			if own[p] {
				return true
			}
			rel, err := filepath.Rel(base, p)
			return err == nil && rel != "." && !filter.Counts(filepath.ToSlash(rel)) && !config.ReadsConfigFrom(filepath.Base(p))
		})
		if len(paths) == 0 || ctx.Err() != nil {
			return
		}
		shown := paths
		if len(shown) > maxPathsLogged {
			// A checkout or a removed folder changes thousands of files:
			// the line stays readable, and within log pipelines' limits.
			shown = append(slices.Clone(shown[:maxPathsLogged]), fmt.Sprintf("… and %d more", len(paths)-maxPathsLogged))
		}
		d.log.Info("files changed; restarting", zap.String("app", id), zap.Strings("paths", shown))
		if d.configChanged(base, paths) && d.reloaded(id) {
			return
		}
		// Not cut short when a reload moves the watch: the restart ends as
		// any rolling restart does.
		err := d.rt.RestartApp(d.ctx, id)
		switch {
		case err == nil:
		case errors.Is(err, supervisor.ErrNotFound), errors.Is(err, supervisor.ErrStopping), d.ctx.Err() != nil:
			// A reload removed the application while the change waited
			// out its debounce or was being applied (its watch stops at
			// the reload's end), or wattd is stopping: there is no
			// previous worker left to keep serving, and nothing failed.
			d.log.Info("files changed, but the application is being removed or wattd is stopping; not restarted", zap.String("app", id), zap.Error(err))
		default:
			d.log.Error("restart after change failed; the previous worker keeps serving", zap.String("app", id), zap.Error(err))
		}
	}, func(err error) {
		d.log.Warn("some folders of the app are not watched", zap.String("app", id), zap.Error(err))
	})
}

// maxPathsLogged is how many changed paths the log line names.
const maxPathsLogged = 20

// ownFiles are the files wattd itself writes while it runs, which may be
// inside an application's folder (the file span exporter's spans.log beside
// watt.json, with the application at the project's root): their changes
// are no developer's edits.
func (d *devWatcher) ownFiles() map[string]bool {
	own := map[string]bool{}
	if cfg := d.rt.Config(); cfg != nil {
		for _, e := range cfg.Telemetry.Exporters {
			if e.Type == config.ExporterFile && e.Path != "" {
				own[e.Path] = true
				if real, err := filepath.EvalSymlinks(filepath.Dir(e.Path)); err == nil {
					own[filepath.Join(real, filepath.Base(e.Path))] = true
				}
			}
		}
	}
	return own
}

// configChanged tells whether one of paths, changed under dir, is a file
// the configuration is read from (the application's own configuration,
// its .env, its package.json), or dir itself, which stands for changes
// that were lost.
func (d *devWatcher) configChanged(dir string, paths []string) bool {
	return slices.ContainsFunc(paths, func(p string) bool {
		return p == dir || config.ReadsConfigFrom(filepath.Base(p))
	})
}

// reloaded applies a change of the configuration's files by a reload, as
// wattd ctl reload does, so that the restarted workers run with what was
// edited. It tells whether the reload restarted (or removed) application
// id; when it did not, because its configuration came out the same or the
// new one cannot be applied, the caller restarts it as for any other edit.
// Reloads are one at a time: a reload asked for while another runs (the
// same .env seen by two applications' watches, or wattd ctl reload) waits
// for it, bounded.
func (d *devWatcher) reloaded(id string) bool {
	res, err := d.reload()
	switch {
	case errors.Is(err, supervisor.ErrStopping) || d.ctx.Err() != nil:
		return true
	case errors.Is(err, supervisor.ErrInvalidConfig):
		d.log.Error("files changed, but the configuration cannot be applied; trying a restart of the application with the configuration in use", zap.String("app", id), zap.Error(err))
		return false
	case err != nil && res.Changed == nil:
		// Not carried out at all (refused, or no reload in this
		// runtime): a restart is what is left.
		return false
	}
	// Carried out, in whole or in part (the reload logged what failed).
	return slices.Contains(res.Changed, id) || slices.Contains(res.Removed, id)
}

// reload reloads the configuration, waiting (bounded) for a reload or
// another change under way to end first. The reload logs what it did and
// what failed.
func (d *devWatcher) reload() (supervisor.ReloadResult, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := d.rt.Reload(d.ctx)
		if !errors.Is(err, supervisor.ErrChangeInProgress) || !time.Now().Before(deadline) {
			return res, err
		}
		select {
		case <-d.ctx.Done():
			return res, d.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ctlAction wraps a ctl subcommand's call (see ctlCommand).
type ctlAction func(timeout func(*cli.Context) time.Duration, do func(*cli.Context, context.Context, *admin.Client) (any, func(), error)) cli.ActionFunc

// ctlString reads a flag that `wattd ctl` and its subcommands both
// define, so that `ctl --socket P ps` and `ctl ps --socket P` mean the
// same; given at both levels, the subcommand's wins. urfave/cli alone
// would read the subcommand's unset copy and ignore the other.
func ctlString(c *cli.Context, name string) string {
	for _, x := range c.Lineage() {
		if slices.Contains(x.LocalFlagNames(), name) {
			return x.String(name)
		}
	}
	return ""
}

// ctlBool is ctlString for a boolean flag.
func ctlBool(c *cli.Context, name string) bool {
	for _, x := range c.Lineage() {
		if slices.Contains(x.LocalFlagNames(), name) {
			return x.Bool(name)
		}
	}
	return false
}

func ctlCommand() *cli.Command {
	// An empty value given on purpose (a variable that was not set) is no
	// reason to pick another runtime than the one named.
	notEmpty := func(flag string) func(*cli.Context, string) error {
		return func(_ *cli.Context, v string) error {
			if v == "" {
				return usageErrorf("--%s is empty; give a value (wattd ctl list shows the running runtimes) or leave the flag out", flag)
			}
			return nil
		}
	}
	socketFlag := &cli.StringFlag{Name: "socket", Usage: "admin socket `PATH` of the runtime (default: the runtime started from this directory, or the only one running)", Action: notEmpty("socket")}
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	nameFlag := &cli.StringFlag{Name: "name", Usage: "the running runtime called `NAME` (see wattd ctl list)", Action: notEmpty("name")}
	connect := func(socket, name string) (*admin.Client, error) {
		cwd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if abs, err := filepath.Abs(cwd); err == nil {
			cwd = abs
		}
		sock, err := rundir.Find(rundir.FindOptions{Socket: socket, Name: name, Cwd: cwd})
		if err != nil {
			return nil, &exitError{exitFailure, err}
		}
		return admin.NewClient(sock), nil
	}
	fail := func(err error) error {
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return &exitError{exitFailure, err}
	}
	printJSON := func(v any) error {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	// action wraps a subcommand: find the runtime, bound the call, turn
	// errors into exit codes, print JSON or the rendered form.
	action := func(timeout func(*cli.Context) time.Duration, do func(*cli.Context, context.Context, *admin.Client) (any, func(), error)) cli.ActionFunc {
		return func(c *cli.Context) error {
			if c.Command.ArgsUsage == "" && c.NArg() > 0 {
				return usageErrorf("wattd ctl %s takes no arguments, got %q; see wattd ctl %s --help", c.Command.Name, c.Args().First(), c.Command.Name)
			}
			if d := timeout(c); d <= 0 {
				return usageErrorf("--timeout must be more than 0, got %s", d)
			}
			cl, err := connect(ctlString(c, "socket"), ctlString(c, "name"))
			if err != nil {
				return fail(err)
			}
			ctx, cancel := context.WithTimeout(c.Context, timeout(c))
			defer cancel()
			v, render, err := do(c, ctx, cl)
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					// The commands that ask for a change (restart, reload,
					// scale, stop) are those with a --timeout.
					err = noAnswer(timeout(c), slices.ContainsFunc(c.Command.Flags, func(f cli.Flag) bool {
						return slices.Contains(f.Names(), "timeout")
					}))
				}
				return fail(err)
			}
			if ctlBool(c, "json") {
				return printJSON(v)
			}
			render()
			return nil
		}
	}
	tenSeconds := func(*cli.Context) time.Duration { return readTimeout }
	schedulerPauseCommand := func(verb, usage string) *cli.Command {
		return &cli.Command{
			Name:      verb,
			Usage:     usage,
			ArgsUsage: "NAME",
			Flags:     []cli.Flag{jsonFlag, socketFlag, nameFlag},
			Action: action(tenSeconds, func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
				if c.NArg() != 1 {
					return nil, nil, &exitError{exitUsage, fmt.Errorf("usage: wattd ctl scheduler %s NAME", verb)}
				}
				set := cl.ResumeSchedulerJob
				if verb == "pause" {
					set = cl.PauseSchedulerJob
				}
				st, err := set(ctx, c.Args().First())
				if err != nil {
					return nil, nil, err
				}
				return st, func() { admin.RenderScheduler(stdout, []scheduler.Status{*st}) }, nil
			}),
		}
	}
	return &cli.Command{
		Name:            "ctl",
		Usage:           "administer a running wattd",
		HideHelpCommand: true,
		Flags:           []cli.Flag{socketFlag, nameFlag, jsonFlag},
		Action:          unknownCommand("wattd ctl"),
		Subcommands: []*cli.Command{
			{
				Name:    "ps",
				Aliases: []string{"applications"},
				Usage:   "list applications and their workers",
				Flags:   []cli.Flag{jsonFlag, socketFlag, nameFlag},
				Action: action(tenSeconds, func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
					apps, err := cl.Apps(ctx)
					return apps, func() { admin.RenderPS(stdout, apps) }, err
				}),
			},
			{
				Name:  "scheduler",
				Usage: "list the scheduler's jobs (\"scheduler\" in watt.json): cron, callback, next and last run",
				Flags: []cli.Flag{jsonFlag, socketFlag, nameFlag},
				Action: action(tenSeconds, func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
					if c.NArg() > 0 {
						return nil, nil, &exitError{exitUsage, fmt.Errorf("unknown scheduler command %q; usage: wattd ctl scheduler [run|pause|resume NAME]", c.Args().First())}
					}
					jobs, err := cl.SchedulerJobs(ctx)
					return jobs, func() { admin.RenderScheduler(stdout, jobs) }, err
				}),
				Subcommands: []*cli.Command{{
					Name:      "run",
					Usage:     "run a job now, whatever its schedule, with its retries; exit 1 if it failed",
					ArgsUsage: "NAME",
					Flags:     []cli.Flag{jsonFlag, socketFlag, nameFlag},
					Action: action(func(*cli.Context) time.Duration { return 30 * time.Minute }, func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
						if c.NArg() != 1 {
							return nil, nil, &exitError{exitUsage, errors.New("usage: wattd ctl scheduler run NAME")}
						}
						res, err := cl.RunSchedulerJob(ctx, c.Args().First())
						if err == nil && !res.Success {
							err = &exitError{exitFailure, fmt.Errorf("scheduler job %q failed (its attempts are in the log)", res.Name)}
						}
						return res, func() { fmt.Fprintf(stdout, "scheduler job %q succeeded\n", res.Name) }, err
					}),
				}, schedulerPauseCommand("pause", "stop a job's schedule from running it until resumed (ctl scheduler run still runs it)"),
					schedulerPauseCommand("resume", "let a paused job run on its schedule again")},
			},
			{
				Name:  "status",
				Usage: "show the runtime's status",
				Flags: []cli.Flag{jsonFlag, socketFlag, nameFlag},
				Action: action(tenSeconds, func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
					st, err := cl.Status(ctx)
					return st, func() { admin.RenderStatus(stdout, st) }, err
				}),
			},
			{
				Name:         "metrics",
				Usage:        "show each worker's current figures: CPU, memory, descriptors, event loop, heap, restarts, OOM kills, CPU throttling, pressure, lost log lines",
				ArgsUsage:    "[APP]",
				BashComplete: completeApps,
				Flags:        []cli.Flag{jsonFlag, socketFlag, nameFlag},
				Before: func(c *cli.Context) error {
					if c.NArg() > 1 {
						return &exitError{exitUsage, errors.New("usage: wattd ctl metrics [APP]")}
					}
					return nil
				},
				Action: action(tenSeconds, func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
					var apps []supervisor.AppStatus
					if id := c.Args().First(); id != "" {
						app, err := cl.App(ctx, id)
						if err != nil {
							return nil, nil, err
						}
						apps = []supervisor.AppStatus{*app}
					} else {
						var err error
						if apps, err = cl.Apps(ctx); err != nil {
							return nil, nil, err
						}
					}
					rows := admin.Figures(apps)
					return rows, func() { admin.RenderFigures(stdout, rows) }, nil
				}),
			},
			{
				Name:         "restart",
				Usage:        "restart every worker of APP (of each APP given, in turn; without APP, of every application in turn, as SIGUSR2), one at a time, with no downtime",
				ArgsUsage:    "[APP...]",
				BashComplete: completeApps,
				Flags:        []cli.Flag{jsonFlag, socketFlag, nameFlag, &cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up waiting after this long"}},
				Before: func(c *cli.Context) error {
					for _, a := range c.Args().Slice() {
						if strings.HasPrefix(a, "-") {
							return &exitError{exitUsage, errors.New("usage: wattd ctl restart [APP...]")}
						}
					}
					return nil
				},
				Action: action(func(c *cli.Context) time.Duration { return c.Duration("timeout") },
					func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
						if c.NArg() == 1 {
							st, err := cl.Restart(ctx, c.Args().First())
							if err != nil {
								return nil, nil, err
							}
							return st, func() { admin.RenderPS(stdout, []supervisor.AppStatus{*st}) }, nil
						}
						// Several, or every application, one after the
						// other, as SIGUSR2 and wattpm restart do; the names
						// are checked before anything restarts.
						apps, err := cl.Apps(ctx)
						if err != nil {
							return nil, nil, err
						}
						ids := c.Args().Slice()
						var known []string
						for _, a := range apps {
							known = append(known, a.ID)
						}
						for _, id := range ids {
							if !slices.Contains(known, id) {
								return nil, nil, fmt.Errorf("restart %q: %w %q (known: %s); nothing was restarted", id, admin.ErrNotFound, id, strings.Join(known, ", "))
							}
						}
						if len(ids) == 0 {
							ids = known
						}
						out := []supervisor.AppStatus{}
						for _, id := range ids {
							st, err := cl.Restart(ctx, id)
							if err != nil {
								return nil, nil, err
							}
							out = append(out, *st)
						}
						return out, func() { admin.RenderPS(stdout, out) }, nil
					}),
			},
			ctlListCommand(jsonFlag, printJSON),
			ctlConfigCommand(action, jsonFlag, socketFlag, nameFlag),
			ctlEnvCommand(action, jsonFlag, socketFlag, nameFlag),
			ctlHeapSnapshotCommand(action, jsonFlag, socketFlag, nameFlag),
			ctlProfileCommand(supervisor.ProfileCPU, action, jsonFlag, socketFlag, nameFlag),
			ctlProfileCommand(supervisor.ProfileHeap, action, jsonFlag, socketFlag, nameFlag),
			injectCommand(connect, fail),
			logsCommand(connect, fail),
			ctlREPLCommand(connect, fail, socketFlag, nameFlag),
			ctlReloadCommand(action),
			ctlScaleCommand(action),
			{
				Name:  "stop",
				Usage: "stop the runtime gracefully",
				Flags: []cli.Flag{jsonFlag, socketFlag, nameFlag,
					&cli.BoolFlag{Name: "wait", Usage: "return once wattd has exited (for systemd's ExecStop=)"},
					&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up after this long", DefaultText: "5m0s with --wait, 10s without"},
				},
				Action: action(func(c *cli.Context) time.Duration {
					// Asking takes no time: a runtime that does not take
					// the request within readTimeout is not answering.
					if !c.Bool("wait") && !c.IsSet("timeout") {
						return readTimeout
					}
					return c.Duration("timeout")
				},
					func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
						if !c.Bool("wait") {
							return map[string]bool{"stopping": true}, func() { fmt.Fprintln(stdout, "stopping") }, cl.Stop(ctx)
						}
						st, err := cl.Status(ctx)
						if err != nil {
							return nil, nil, err
						}
						if err := cl.Stop(ctx); err != nil {
							return nil, nil, err
						}
						// st.PID is the pid as this process sees it, also
						// when wattd runs in a pid namespace of its own;
						// where the kernel could not tell it (wattd not
						// visible from here), the admin socket's end is
						// what is waited for.
						if st.PIDSeen {
							if err := waitExited(ctx, st.PID); err != nil {
								return nil, nil, err
							}
						} else if err := waitSocketGone(ctx, cl.Socket()); err != nil {
							return nil, nil, err
						}
						return map[string]bool{"stopped": true}, func() { fmt.Fprintln(stdout, "stopped") }, nil
					}),
			},
		},
	}
}

// waitSocketGone polls until nothing answers on the admin socket any more:
// wattd removes it as it exits.
func waitSocketGone(ctx context.Context, socket string) error {
	return pollUntil(ctx, fmt.Sprintf("wattd (admin socket %s)", socket), func() bool {
		c, err := net.DialTimeout("unix", socket, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
}

// waitExited polls until the process pid has exited (a zombie that its
// parent has not reaped yet counts as exited).
func waitExited(ctx context.Context, pid int) error {
	return pollUntil(ctx, fmt.Sprintf("wattd (pid %d)", pid), func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		i := bytes.LastIndexByte(b, ')')
		return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
	})
}

// pollUntil checks gone every 50 ms until it is true, or ctx ends: then it
// says that who still runs.
func pollUntil(ctx context.Context, who string, gone func() bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !gone() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still runs: %w; see its log, or raise --timeout", who, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// unwrapPath drops the path of an error that names one ("write
// /dev/stdout: no space left on device" is "no space left on device").
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
