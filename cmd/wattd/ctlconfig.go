package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wattd/wattd/supervisor/admin"
	"github.com/wattd/wattd/supervisor/rundir"
)

// ctlConfigCommand is `wattd ctl config`: the configuration the runtime
// runs, resolved (placeholders, defaults, app configs) and with secrets
// masked. JSON either way; --json is accepted so every data command takes
// it.
func ctlConfigCommand(action ctlAction, flags ...cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "print the resolved configuration the runtime runs, as JSON, secrets masked",
		Flags: flags,
		Before: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("wattd ctl config takes no argument (got %q); usage: wattd ctl config [--json]", c.Args().First())
			}
			return nil
		},
		Action: action(func(*cli.Context) time.Duration { return 10 * time.Second },
			func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
				cfg, err := cl.Config(ctx)
				return cfg, func() { _ = printIndented(cfg) }, err
			}),
	}
}

// ctlEnvCommand is `wattd ctl env [APP]`: the environment a worker was
// started with, or without APP the runtime's, which every worker starts
// from (as wattpm env without an application); secrets masked.
func ctlEnvCommand(action ctlAction, flags ...cli.Flag) *cli.Command {
	flags = append(flags, &cli.IntFlag{Name: "worker", Aliases: []string{"w"}, Usage: "worker index `N` of APP (see wattd ctl ps)"})
	return &cli.Command{
		Name:         "env",
		Usage:        "print the environment a worker of APP runs with (without APP, the runtime's, which every worker starts from), secret values masked",
		ArgsUsage:    "[APP]",
		BashComplete: completeApps,
		Flags:        flags,
		Before: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageErrorf("usage: wattd ctl env [--worker N] [--json] [APP] (wattd ctl ps lists the apps)")
			}
			if c.NArg() == 0 && c.IsSet("worker") {
				return usageErrorf("--worker picks a worker of APP: usage: wattd ctl env [--worker N] [--json] APP")
			}
			return checkWorkerFlag(c)
		},
		Action: action(func(*cli.Context) time.Duration { return 10 * time.Second },
			func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
				if c.NArg() == 0 {
					env, err := cl.RuntimeEnv(ctx)
					if err != nil {
						return nil, nil, err
					}
					return env, func() { printLines(env.Env) }, nil
				}
				env, err := cl.Env(ctx, c.Args().First(), c.Int("worker"))
				if err != nil {
					return nil, nil, err
				}
				return env, func() { printLines(env.Env) }, nil
			}),
	}
}

// printLines prints each of lines (NAME=value) on a line of its own.
func printLines(lines []string) {
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
}

// runtimeEntry is a line of `wattd ctl list --json`.
type runtimeEntry struct {
	Name       string `json:"name"`
	PID        int    `json:"pid"`
	ProjectDir string `json:"projectDir"`
	// ProjectPath is the project directory as given at start, when that
	// went through a symlink (a deploy's current/); the list shows it.
	ProjectPath string    `json:"projectPath,omitempty"`
	ConfigFile  string    `json:"configFile,omitempty"`
	StartedAt   time.Time `json:"startedAt"`
	Version     string    `json:"version,omitempty"`
	Socket      string    `json:"socket"`
}

// ctlListCommand is `wattd ctl list`: the runtimes running for this user,
// by name, read from their runtime directories (no runtime need be picked).
func ctlListCommand(jsonFlag cli.Flag, printJSON func(any) error) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the running runtimes by name (pick one with wattd ctl --name NAME)",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("wattd ctl list takes no arguments, got %q", c.Args().First())
			}
			live, err := rundir.List()
			if err != nil {
				return &exitError{exitFailure, err}
			}
			out := make([]runtimeEntry, 0, len(live))
			for _, i := range live {
				out = append(out, runtimeEntry{Name: i.Name, PID: i.PID, ProjectDir: i.ProjectDir, ProjectPath: i.ProjectPath, ConfigFile: i.ConfigFile,
					StartedAt: i.StartedAt, Version: i.Version, Socket: i.Socket})
			}
			if ctlBool(c, "json") {
				return printJSON(out)
			}
			if len(out) == 0 {
				fmt.Fprintln(stdout, "no wattd runtime is running; start one with wattd start [--name NAME] [DIR]")
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPID\tPROJECT\tSOCKET")
			for _, e := range out {
				name := e.Name
				if name == "" {
					name = "-"
				}
				pid := "-" // not visible from this pid namespace
				if e.PID > 0 {
					pid = strconv.Itoa(e.PID)
				}
				proj := e.ProjectDir
				if e.ProjectPath != "" {
					proj = e.ProjectPath
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, pid, proj, e.Socket)
			}
			return tw.Flush()
		},
	}
}

// printIndented writes v as indented JSON, as --json does.
func printIndented(v any) error { return writeIndented(stdout, v) }

// writeIndented is printIndented to w.
func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
