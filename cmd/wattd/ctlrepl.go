package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/wattd/wattd/supervisor/admin"
)

// replOpenTimeout bounds the opening of a REPL, not the session.
const replOpenTimeout = 15 * time.Second

// ctlREPLCommand is `wattd ctl repl [APP]`: Node.js's REPL inside a
// worker of APP, on this terminal.
func ctlREPLCommand(connect func(socket, name string) (*admin.Client, error), fail func(error) error, flags ...cli.Flag) *cli.Command {
	flags = append(flags, lowestReadyWorkerFlag())
	return &cli.Command{
		Name:         "repl",
		Usage:        "open a REPL inside a worker of APP (the only app when there is one): what you type runs in that process; .exit or Ctrl+D leaves",
		ArgsUsage:    "[APP]",
		BashComplete: completeApps,
		Flags:        flags,
		Before: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageErrorf("usage: wattd ctl repl [--worker N] [APP] (wattd ctl ps lists the apps)")
			}
			return checkWorkerFlag(c)
		},
		Action: func(c *cli.Context) error {
			cl, err := connect(ctlString(c, "socket"), ctlString(c, "name"))
			if err != nil {
				return fail(err)
			}
			defer cl.Close()
			in, out := int(os.Stdin.Fd()), int(os.Stdout.Fd())
			tty := term.IsTerminal(in) && term.IsTerminal(out)
			columns := 0
			if tty {
				if w, _, err := term.GetSize(out); err == nil {
					columns = w
				}
			}
			ctx, cancel := context.WithTimeout(c.Context, replOpenTimeout)
			defer cancel()
			app := c.Args().First()
			if app == "" {
				apps, err := cl.Apps(ctx)
				if err != nil {
					return fail(err)
				}
				if len(apps) != 1 {
					ids := make([]string, 0, len(apps))
					for _, a := range apps {
						ids = append(ids, a.ID)
					}
					return usageErrorf("the runtime has %d apps; name one: wattd ctl repl APP (one of %s)", len(apps), strings.Join(ids, ", "))
				}
				app = apps[0].ID
			}
			conn, err := cl.REPL(ctx, app, c.Int("worker"), tty, columns)
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					err = fmt.Errorf("the REPL did not open within %s", replOpenTimeout)
				}
				return fail(err)
			}
			defer conn.Close()
			if tty {
				restore, err := rawInput(in)
				if err != nil {
					return fail(fmt.Errorf("cannot put the terminal in raw mode: %w", err))
				}
				defer restore()
				// A signal that ends ctl leaves the terminal as it found it.
				sigs := make(chan os.Signal, 1)
				signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
				defer signal.Stop(sigs)
				go func() {
					if _, ok := <-sigs; ok {
						conn.Close()
					}
				}()
			}
			go func() {
				// Piped input ends with its EOF: the REPL answers what it
				// got, then ends.
				_, _ = io.Copy(conn, os.Stdin)
				_ = conn.CloseWrite()
			}()
			_, err = io.Copy(stdout, conn)
			if err != nil && !errors.Is(err, net.ErrClosed) {
				return fail(fmt.Errorf("REPL: %w", err))
			}
			// The session also ends when the runtime stops under it: that
			// is no .exit, and a script piping into the REPL must see it.
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			if st, serr := cl.Status(sctx); serr != nil || st.State == "stopping" {
				return fail(errors.New("the REPL ended because the runtime stopped"))
			}
			return nil
		},
	}
}

// rawInput turns the terminal's line discipline off for input, as
// Node.js's own REPL does: every key (Ctrl+C and Ctrl+D too) goes to the
// REPL, which echoes and edits lines itself. Output processing stays on,
// so that the REPL's "\n" still starts a line.
func rawInput(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Iflag &^= unix.BRKINT | unix.ICRNL | unix.INPCK | unix.ISTRIP | unix.IXON
	t.Oflag |= unix.OPOST | unix.ONLCR
	t.Cflag |= unix.CS8
	t.Lflag &^= unix.ECHO | unix.ICANON | unix.IEXTEN | unix.ISIG
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
