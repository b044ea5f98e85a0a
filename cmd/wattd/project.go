package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/wattd/wattd/supervisor"
)

// Every command that works on a project (start, dev, build, init) takes
// the project directory the same way: as its one argument, or with
// -d/--dir, defaulting to the current directory.

func dirFlag() cli.Flag {
	return &cli.StringFlag{Name: "dir", Aliases: []string{"d"}, Usage: "project `DIR` (the same as giving DIR as the argument; default: the current directory)"}
}

// strictEnvFlag makes an unset {PLACEHOLDER} an error, as watt.json's
// "strictEnv": true does; by default it is replaced by "" with a warning.
func strictEnvFlag() cli.Flag {
	return &cli.BoolFlag{
		Name:    "strict-env",
		EnvVars: []string{"WATTD_STRICT_ENV"},
		Usage:   "fail when watt.json uses an unset {PLACEHOLDER} (default: replace it by \"\" with a warning, as Watt does)",
	}
}

// projectFiles is how start and dev read a project: its directory, the
// configuration file (-c), the env file that stands in for the project's
// .env (-e), and --strict-env.
type projectFiles struct {
	dir, config, env string
	strictEnv        bool
	inspect          *supervisor.Inspect // --inspect; not a file, but read with them
}

// inspectFlag turns on the Node.js inspector of every Node.js worker, as
// wattpm start --inspect does.
func inspectFlag() cli.Flag {
	return &cli.BoolFlag{
		Name:    "inspect",
		Aliases: []string{"i"},
		Usage:   "open the Node.js inspector of every Node.js worker, each on its own port above --inspect-address, which lists them all for chrome://inspect",
	}
}

func inspectAddressFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "inspect-address",
		Value: "127.0.0.1:9229",
		Usage: "`HOST:PORT` of --inspect's list of the workers' inspectors; the workers take the ports above it",
	}
}

// inspectOption reads --inspect and --inspect-address.
func inspectOption(c *cli.Context) (*supervisor.Inspect, error) {
	if !c.Bool("inspect") {
		if c.IsSet("inspect-address") {
			return nil, usageErrorf("--inspect-address needs --inspect")
		}
		return nil, nil
	}
	host, p, err := net.SplitHostPort(c.String("inspect-address"))
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil || host == "" || port < 1024 || port > 65535-supervisor.InspectSpan {
		return nil, usageErrorf("--inspect-address %q: want HOST:PORT, PORT from 1024 to %d", c.String("inspect-address"), 65535-supervisor.InspectSpan)
	}
	return &supervisor.Inspect{Host: host, Port: port}, nil
}

// envFileFlag names a dotenv file read instead of the project's .env, as
// wattpm start and dev take it.
func envFileFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "env",
		Aliases: []string{"e"},
		Usage:   "read the env `FILE` (relative to the project directory) instead of the project's .env, as wattpm's --env",
	}
}

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "config `FILE`", DefaultText: "the first of watt.json, platformatic.json, watt.json5, … found in DIR (docs/config.md)"}
}

// projectDir returns the project directory of a command whose arguments
// are [DIR].
func projectDir(c *cli.Context) (string, error) {
	if c.NArg() > 1 {
		return "", usageErrorf("%s takes one project directory, got %d arguments; see wattd %s --help", c.Command.Name, c.NArg(), c.Command.Name)
	}
	return pickDir(c, c.Args().First())
}

// projectOf returns the project directory and configuration file of start
// and dev. The argument may be the configuration file itself (`wattd
// start path/prod.json`): its directory is then the project directory, as
// with `wattd start path --config path/prod.json`. (wattpm takes its
// argument as a directory only, and finds its default file names from it.)
func projectOf(c *cli.Context) (dir, file string, err error) {
	dir, err = projectDir(c)
	if err != nil {
		return "", "", err
	}
	file = c.String("config")
	arg := c.Args().First()
	if arg == "" || !isRegular(arg) {
		return dir, file, nil
	}
	if file != "" {
		return "", "", usageErrorf("%s is a file: give the project directory with --config %s, or the file alone", arg, file)
	}
	if c.String("dir") != "" {
		return "", "", usageErrorf("%s is a file, and --dir %s names the project directory: give the file with --config", arg, c.String("dir"))
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return "", "", err
	}
	return filepath.Dir(abs), abs, nil
}

// pickDir reconciles a DIR argument with --dir: either may be given, both
// only when they agree.
func pickDir(c *cli.Context, arg string) (string, error) {
	flag := c.String("dir")
	switch {
	case arg != "" && flag != "" && !sameDir(arg, flag):
		return "", usageErrorf("project directory given twice: %s and --dir %s", arg, flag)
	case arg != "":
		return arg, nil
	case flag != "":
		return flag, nil
	}
	return ".", nil
}

func sameDir(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return os.SameFile(sa, sb)
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func usageErrorf(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}
