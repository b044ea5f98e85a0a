package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/admin"
	"github.com/wattd/wattd/supervisor/config"
)

// configLoader reads the project's configuration the way `wattd start`
// (or dev) does; a reload calls it again, so the new configuration is read
// with the same files, environment and mode as the first.
func configLoader(pf projectFiles, mode capabilities.Mode) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		cfg, err := config.LoadWith(config.Options{
			Dir: pf.dir, File: pf.config, EnvFile: pf.env, Environ: os.Environ(), Check: supervisor.CheckApp,
			Environment: mode.String(), StrictEnv: pf.strictEnv,
		})
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

// reloadOnSignal applies a reload asked for with SIGHUP; its outcome is
// only logged (the runtime logs refusals with their reasons itself).
func reloadOnSignal(rt *supervisor.Runtime, log *zap.Logger) {
	if _, err := rt.Reload(context.Background()); err != nil {
		log.Error("SIGHUP: reload failed", zap.Error(err))
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
				return res, func() { admin.RenderReload(os.Stdout, res) }, nil
			}),
	}
}

func ctlScaleCommand(action ctlAction) *cli.Command {
	return &cli.Command{
		Name:      "scale",
		Usage:     "set the number of workers of APP; new workers are ready and removed ones drained when it returns",
		ArgsUsage: "APP N",
		Flags:     changeFlags(),
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
				return st, func() { admin.RenderPS(os.Stdout, []supervisor.AppStatus{*st}) }, nil
			}),
	}
}
