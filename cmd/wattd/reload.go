package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/admin"
	"github.com/wattd/wattd/supervisor/config"
)

// configLoader reads the project's configuration the way `wattd start`
// (or dev) does; a reload calls one made with reload set, so the new
// configuration is read with the same files, environment and mode as the
// first.
func configLoader(pf projectFiles, mode capabilities.Mode, reload bool) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		cfg, err := config.LoadWith(config.Options{
			Dir: pf.dir, File: pf.config, EnvFile: pf.env, Environ: os.Environ(), Check: supervisor.CheckAppIn(mode),
			Environment: mode.String(), StrictEnv: pf.strictEnv,
		})
		if de, ok := errors.AsType[*config.DirError](err); ok && reload {
			// The start's advice (pass the directory) is no help to a
			// running wattd, which reads the file it started with.
			return nil, fmt.Errorf("configuration file %s is now a directory; put the file back to reload (wattd reads the file it started with)", de.Path)
		}
		if err != nil {
			return nil, err
		}
		if mode == capabilities.Development {
			// One worker each: a dev server per app, and edits show at once.
			for i := range cfg.Applications {
				cfg.Applications[i].Workers = 1
				cfg.Applications[i].Scale = config.Scale{}
			}
			cfg.Scaler.Dynamic = false
		}
		return cfg, nil
	}
}

// hupReloader applies the reloads SIGHUP asks for, one after the other. A
// SIGHUP that comes while a reload (or a scaling) runs is not refused as a
// `ctl reload` would be: one more reload follows once it is done, so that
// the file as it is by then is applied. Any number of SIGHUPs meanwhile
// make that one reload. Outcomes are only logged (the runtime logs
// refusals with their reasons itself).
type hupReloader struct {
	rt   *supervisor.Runtime
	log  *zap.Logger
	want chan struct{} // one pending reload at most
	// due is set from a SIGHUP until the reload it asks for begins: the
	// SIGHUPs meanwhile (while another change runs) are that reload's.
	due atomic.Bool
}

func newHupReloader(rt *supervisor.Runtime, log *zap.Logger) *hupReloader {
	return &hupReloader{rt: rt, log: log, want: make(chan struct{}, 1)}
}

// request asks for a reload; it never blocks.
func (h *hupReloader) request() {
	if h.due.Swap(true) {
		h.log.Info("SIGHUP: a reload is already due; it will read the file as it is then")
		return
	}
	h.log.Info("SIGHUP: reloading the configuration")
	select {
	case h.want <- struct{}{}:
	default:
	}
}

// busyRetry is how often a due reload tries again while another change runs.
const busyRetry = 100 * time.Millisecond

func (h *hupReloader) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.want:
		}
		for {
			// A SIGHUP from here on asks for one more reload: this one may
			// have read the file before its change.
			h.due.Store(false)
			_, err := h.rt.Reload(ctx)
			if errors.Is(err, supervisor.ErrChangeInProgress) && h.due.Swap(true) {
				// Refused before it began: a SIGHUP that came meanwhile
				// is this reload's, still due.
				select {
				case <-h.want:
				default:
				}
			}
			if !errors.Is(err, supervisor.ErrChangeInProgress) {
				switch {
				case err == nil, errors.Is(err, supervisor.ErrStopping):
				case errors.Is(err, supervisor.ErrConflict):
					// Refused before it began: nothing said it yet.
					h.log.Error("SIGHUP: no reload", zap.Error(err))
				default:
					// The reload's own error line said what went wrong.
					h.log.Debug("SIGHUP: reload failed", zap.Error(err))
				}
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(busyRetry):
			}
		}
	}
}

// changeFlags are the flags of the ctl commands that change the runtime
// and wait for the change.
func changeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.StringFlag{Name: "socket", Usage: "admin socket `PATH` of the runtime"},
		&cli.StringFlag{Name: "name", Usage: "the running runtime called `NAME`"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up waiting after this long"},
	}
}

// changeTimeout is the --timeout of a change command.
func changeTimeout(c *cli.Context) time.Duration { return c.Duration("timeout") }

func ctlReloadCommand(action ctlAction) *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "read the configuration again and apply the difference: apps added, removed, changed (rolled) or scaled; the others untouched",
		Flags: changeFlags(),
		Before: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usageErrorf("usage: wattd ctl reload [--json] [--timeout D]")
			}
			return nil
		},
		Action: action(changeTimeout,
			func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
				res, err := cl.Reload(ctx)
				if err != nil {
					return nil, nil, err
				}
				return res, func() { admin.RenderReload(stdout, res) }, nil
			}),
	}
}

func ctlScaleCommand(action ctlAction) *cli.Command {
	return &cli.Command{
		Name:      "scale",
		Usage:     "set the number of workers of APP; new workers are ready and removed ones drained when it returns",
		ArgsUsage: "APP N",
		Flags:     changeFlags(),
		// A negative N reads as an option ("-1"); say what is wrong with
		// it rather than that no such option exists.
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			if bad, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
				if _, nerr := strconv.ParseFloat(bad, 64); nerr == nil {
					return usageErrorf("N must be a worker count from 1 to %d, got \"-%s\"", config.MaxWorkers, bad)
				}
			}
			return &exitError{exitUsage, err}
		},
		Before: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return &exitError{exitUsage, errors.New("usage: wattd ctl scale APP N")}
			}
			if n, err := strconv.Atoi(c.Args().Get(1)); err != nil || n < 1 || n > config.MaxWorkers {
				return usageErrorf("N must be a worker count from 1 to %d, got %q", config.MaxWorkers, c.Args().Get(1))
			}
			return nil
		},
		Action: action(changeTimeout,
			func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
				n, _ := strconv.Atoi(c.Args().Get(1))
				st, err := cl.Scale(ctx, c.Args().First(), n)
				if err != nil {
					return nil, nil, err
				}
				return st, func() { admin.RenderPS(stdout, []supervisor.AppStatus{*st}) }, nil
			}),
	}
}
