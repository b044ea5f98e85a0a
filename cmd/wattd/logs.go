package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/admin"
	"github.com/wattd/wattd/supervisor/logs"
)

// withLogs is the runtime as the admin API's backend, with the buffer of
// recent log lines that `wattd ctl logs` reads.
type withLogs struct {
	*supervisor.Runtime
	recent *logs.Recent
}

func (b withLogs) RecentLogs() *logs.Recent { return b.recent }

var _ admin.LogSource = withLogs{}

const logsUsage = "wattd ctl logs [APP] [--worker N] [-f] [-n LINES] [--json]"

var logsHelp = fmt.Sprintf(`NAME:
   wattd ctl logs - print recent log lines of the runtime, an app or one worker, then follow

USAGE:
   `+logsUsage+`

   Options may come before or after APP. wattd keeps the last %d lines
   (at most %d KiB) of each app and of itself in memory; older ones are in
   wattd's own output (journald, docker logs, the file it was redirected to).

OPTIONS:
   -n, --lines N        print the last N lines first (default: %d; 0 for none)
   -f, --follow         keep printing new lines until interrupted
   -w, --worker N       only worker N of APP
   --json               print the lines as wattd logs them: pino's JSON, one per line
   --socket PATH        admin socket of the runtime (also accepted before "logs")
   --name NAME          the running runtime called NAME (also accepted before "logs")
   -h, --help           show this help
`, logs.DefaultRecentLines, logs.DefaultRecentBytes>>10, admin.DefaultLogLines)

type logsArgs struct {
	q      admin.LogQuery
	json   bool
	socket string
	name   string
	help   bool
}

// parseLogs reads the command's arguments by hand: the usage puts options
// after APP, which urfave/cli's parser does not allow.
func parseLogs(args []string) (logsArgs, error) {
	a := logsArgs{q: admin.LogQuery{Worker: -1, Lines: admin.DefaultLogLines}}
	workerSet := false
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(arg, "=")
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if a.q.App != "" {
				return a, fmt.Errorf("one APP at most (got %q and %q); usage: %s", a.q.App, arg, logsUsage)
			}
			a.q.App = arg
			continue
		}
		// -n50 and -w1 as well as -n 50 and --lines=50.
		if len(arg) > 2 && arg[1] != '-' && (arg[1] == 'n' || arg[1] == 'w') {
			name, value, hasValue = arg[:2], arg[2:], true
		}
		next := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value; usage: %s", name, logsUsage)
			}
			i++
			return args[i], nil
		}
		switch name {
		case "-f", "--follow":
			a.q.Follow = true
		case "--json":
			a.json = true
		case "-h", "--help":
			a.help = true
		case "-n", "--lines":
			n, err := count(next, name, "a number of lines")
			if err != nil {
				return a, err
			}
			a.q.Lines = n
		case "-w", "--worker":
			n, err := count(next, name, "a worker index")
			if err != nil {
				return a, err
			}
			a.q.Worker, workerSet = n, true
		case "--socket":
			v, err := next()
			if err != nil {
				return a, err
			}
			a.socket = v
		case "--name":
			v, err := next()
			if err != nil {
				return a, err
			}
			a.name = v
		default:
			return a, fmt.Errorf("unknown option %s; usage: %s", arg, logsUsage)
		}
	}
	if workerSet && a.q.App == "" && !a.help {
		return a, fmt.Errorf("--worker needs APP; usage: %s", logsUsage)
	}
	return a, nil
}

// count reads an option's value as a whole number, 0 or more.
func count(value func() (string, error), option, what string) (int, error) {
	v, err := value()
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want %s, 0 or more", option, v, what)
	}
	return n, nil
}

func logsCommand(connect func(socket, name string) (*admin.Client, error), fail func(error) error) *cli.Command {
	return &cli.Command{
		Name:            "logs",
		Usage:           "print recent log lines of the runtime, an app or one worker, then follow with -f",
		ArgsUsage:       "[APP] [--worker N] [-f] [-n LINES] [--json]",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			a, err := parseLogs(c.Args().Slice())
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if a.help {
				fmt.Fprint(stdout, logsHelp)
				return nil
			}
			if a.socket == "" {
				a.socket = ctlString(c, "socket")
			}
			if a.name == "" {
				a.name = ctlString(c, "name")
			}
			if ctlBool(c, "json") {
				a.json = true
			}
			cl, err := connect(a.socket, a.name)
			if err != nil {
				return fail(err)
			}
			defer cl.Close()
			// ^C ends a follow; it is the normal way out, not an error.
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if !a.q.Follow {
				// The recent lines come at once from a runtime that
				// answers at all.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, readTimeout)
				defer cancel()
			}
			err = cl.Logs(ctx, a.q, func(ev admin.LogEvent) error {
				if ev.Missed > 0 {
					fmt.Fprintf(os.Stderr, "wattd ctl logs: %d lines missed: this reader fell behind\n", ev.Missed)
				}
				if len(ev.Line) == 0 {
					return nil
				}
				if a.json {
					_, werr := stdout.Write(append(ev.Line, '\n'))
					return werr
				}
				admin.RenderLogLine(stdout, ev.Line)
				return nil
			})
			if errors.Is(err, context.DeadlineExceeded) {
				return fail(noAnswer(readTimeout, false))
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				return fail(err)
			}
			return nil
		},
	}
}
