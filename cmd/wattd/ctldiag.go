package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/admin"
	"github.com/wattd/wattd/supervisor/config"
)

// lowestReadyWorkerFlag is --worker of the ctl commands that take one
// worker of an app, the lowest ready one by default (-1).
func lowestReadyWorkerFlag() cli.Flag {
	return &cli.IntFlag{Name: "worker", Aliases: []string{"w"}, Value: -1, Usage: "worker index `N` of APP (see wattd ctl ps)", DefaultText: "the lowest that is ready"}
}

// checkWorkerFlag refuses a --worker that names no worker index.
func checkWorkerFlag(c *cli.Context) error {
	if c.IsSet("worker") && c.Int("worker") < 0 {
		return usageErrorf("--worker %d: want a worker index, 0 or more", c.Int("worker"))
	}
	return nil
}

// savedResult is what `wattd ctl heap-snapshot --json` and `wattd ctl
// cpu-profile --json` print.
type savedResult struct {
	App   string `json:"app"`
	File  string `json:"file"` // "-" when written to standard output
	Bytes int64  `json:"bytes"`
}

// ctlHeapSnapshotCommand is `wattd ctl heap-snapshot APP`: a worker of APP
// takes a V8 heap snapshot, saved as a .heapsnapshot file (Chrome DevTools'
// Memory tab loads it) in the current directory, --dir, or --output.
func ctlHeapSnapshotCommand(action ctlAction, flags ...cli.Flag) *cli.Command {
	flags = append(flags,
		lowestReadyWorkerFlag(),
		&cli.StringFlag{Name: "dir", Aliases: []string{"d"}, Usage: "save it in `DIR` under the name wattd gives it (default: the current directory)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "save it as `FILE` (- for standard output)"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "give up after this long (a heap of GiBs takes minutes)"},
	)
	return &cli.Command{
		Name:         "heap-snapshot",
		Usage:        "have a worker of APP take a V8 heap snapshot and save it (.heapsnapshot, for Chrome DevTools' Memory tab); its event loop stops while V8 writes it",
		ArgsUsage:    "APP",
		BashComplete: completeApps,
		Flags:        flags,
		Before: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("usage: wattd ctl heap-snapshot [--worker N] [--dir DIR | --output FILE] APP (wattd ctl ps lists the apps)")
			}
			if err := checkWorkerFlag(c); err != nil {
				return err
			}
			if c.IsSet("dir") && c.IsSet("output") {
				return usageErrorf("--dir and --output both say where to save it; give one")
			}
			if c.String("output") == "-" && ctlBool(c, "json") {
				return usageErrorf("--output - writes the snapshot to standard output, where --json would print too; give one")
			}
			return nil
		},
		Action: action(func(c *cli.Context) time.Duration { return c.Duration("timeout") },
			func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
				return save(c, "heap snapshot", func(w io.Writer) (string, int64, error) {
					return cl.HeapSnapshot(ctx, c.Args().First(), c.Int("worker"), w)
				})
			}),
	}
}

// save runs fetch into where --output or --dir say (standard output for
// --output -), and gives what ctl prints.
func save(c *cli.Context, what string, fetch func(io.Writer) (string, int64, error)) (any, func(), error) {
	app := c.Args().First()
	res := savedResult{App: app}
	if c.String("output") == "-" {
		_, n, err := fetch(stdout)
		res.File, res.Bytes = "-", n
		return res, func() {}, err
	}
	out, err := saveDownload(c.String("dir"), c.String("output"), what, fetch)
	if err != nil {
		return nil, nil, err
	}
	res.File, res.Bytes = out.path, out.n
	return res, func() {
		fmt.Fprintf(stdout, "%s of %s saved to %s (%s)\n", what, app, out.path, supervisor.FormatBytes(uint64(out.n)))
	}, nil
}

// writeInto writes what fetch downloads into output, which exists and is
// not a regular file.
func writeInto(output, what string, fetch func(io.Writer) (string, int64, error)) (savedFile, error) {
	f, err := os.OpenFile(output, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return savedFile{}, fmt.Errorf("cannot save the %s: %w", what, err)
	}
	_, n, err := fetch(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot save the %s: %w", what, cerr)
	}
	return savedFile{path: output, n: n}, err
}

type savedFile struct {
	path string
	n    int64
}

// saveDownload writes what fetch downloads (a heap snapshot, a profile)
// to a temporary file beside where it goes and renames it there once
// whole, so that a failure leaves nothing. Without output, it is saved in
// dir under the name fetch gives. An output that exists and is not a
// regular file (a device such as /dev/null, a pipe, a symbolic link) is
// written into, as a shell's > does, and never replaced.
func saveDownload(dir, output, what string, fetch func(io.Writer) (string, int64, error)) (savedFile, error) {
	if output != "" {
		fi, err := os.Lstat(output)
		switch {
		case err == nil && fi.IsDir():
			// Refused before the worker spends the time: --dir is for
			// a directory.
			return savedFile{}, fmt.Errorf("cannot save the %s as %s: it is a directory; give --dir %s to save it there under its own name", what, output, output)
		case err == nil && !fi.Mode().IsRegular():
			return writeInto(output, what, fetch)
		}
		dir = filepath.Dir(output)
	} else if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, ".wattd-*.part")
	if err != nil {
		return savedFile{}, fmt.Errorf("cannot save the %s: %w", what, err)
	}
	defer os.Remove(tmp.Name()) // once renamed, there is nothing to remove
	name, n, err := fetch(tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot save the %s: %w", what, cerr)
	}
	if err != nil {
		return savedFile{}, err
	}
	if output == "" {
		// The name comes from the other end of the socket, which may not
		// be a wattd (a socket another user planted, given with --socket
		// to a root shell): only a name wattd gives is taken, and an
		// existing file is never replaced under it.
		if !admin.DiagFileName.MatchString(name) {
			return savedFile{}, fmt.Errorf("the runtime named the %s %q, which is not a name wattd gives; give --output", what, name)
		}
		output = filepath.Join(dir, name)
		if err := os.Link(tmp.Name(), output); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return savedFile{}, fmt.Errorf("cannot save the %s: %s exists; give --output to replace it", what, output)
			}
			return savedFile{}, fmt.Errorf("cannot save the %s: %w", what, err)
		}
	} else if err := os.Rename(tmp.Name(), output); err != nil {
		return savedFile{}, fmt.Errorf("cannot save the %s: %w", what, err)
	}
	// It stays private (CreateTemp's 0600): a heap snapshot holds the
	// strings of the process, its secrets among them, and a profile the
	// paths and names of its code.
	if abs, err := filepath.Abs(output); err == nil {
		output = abs
	}
	return savedFile{path: output, n: n}, nil
}

// ctlProfileCommand is `wattd ctl cpu-profile APP` and `wattd ctl
// heap-profile APP`: V8's CPU profiler, or its sampling heap profiler, runs
// in a worker of APP for --duration, and the profile is saved as pprof (go
// tool pprof, flame graph tools) or, with --format v8, as V8's own JSON
// (.cpuprofile, .heapprofile: Chrome DevTools).
func ctlProfileCommand(typ string, action ctlAction, flags ...cli.Flag) *cli.Command {
	interval := &cli.GenericFlag{Name: "interval", Value: &durationOrBytes{}, Usage: "sample every `INTERVAL` (10µs to 1s; default 1ms)"}
	what, devtools := "CPU profile", "Performance"
	if typ == supervisor.ProfileHeap {
		interval.Usage = "sample every `BYTES` allocated, on average (1KiB to 64MiB; default 512KiB)"
		what, devtools = "heap profile", "Memory"
	}
	flags = append(flags, interval,
		lowestReadyWorkerFlag(),
		&cli.DurationFlag{Name: "duration", Aliases: []string{"t"}, Value: 10 * time.Second, Usage: "profile for this long: a duration with its unit (10s, 1m), whole seconds, 1s to 1h"},
		&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "pprof", Usage: "pprof (go tool pprof, flame graphs) or v8 (Chrome DevTools' " + devtools + " tab)"},
		&cli.StringFlag{Name: "dir", Aliases: []string{"d"}, Usage: "save it in `DIR` under the name wattd gives it (default: the current directory)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "save it as `FILE` (- for standard output)"},
		&cli.BoolFlag{Name: "source-maps", Aliases: []string{"s"}, Usage: "show compiled code (TypeScript, bundles) where its source maps put it (pprof only; not under node_modules)"},
	)
	name := typ + "-profile"
	return &cli.Command{
		Name:         name,
		Usage:        "profile a worker of APP with V8's " + map[string]string{supervisor.ProfileCPU: "CPU profiler", supervisor.ProfileHeap: "sampling heap profiler"}[typ] + " for --duration and save the profile (pprof, or V8's JSON for Chrome DevTools)",
		ArgsUsage:    "APP",
		BashComplete: completeApps,
		Flags:        flags,
		Before: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("usage: wattd ctl %s [--worker N] [--duration D] [--interval I] [--format pprof|v8] [--source-maps] [--dir DIR | --output FILE] APP (wattd ctl ps lists the apps)", name)
			}
			if err := checkWorkerFlag(c); err != nil {
				return err
			}
			if d := c.Duration("duration"); d < time.Second || d > time.Hour || d%time.Second != 0 {
				return usageErrorf("--duration %s: want whole seconds from 1s to 1h", d)
			}
			if err := c.Generic("interval").(*durationOrBytes).check(typ); err != nil {
				return usageErrorf("--interval: %v", err)
			}
			if f := c.String("format"); f != "pprof" && f != "v8" {
				return usageErrorf("--format %q: want pprof or v8", f)
			}
			if c.Bool("source-maps") && c.String("format") == "v8" {
				return usageErrorf("--source-maps applies to pprof: V8's JSON keeps V8's locations")
			}
			if c.IsSet("dir") && c.IsSet("output") {
				return usageErrorf("--dir and --output both say where to save it; give one")
			}
			if c.String("output") == "-" && ctlBool(c, "json") {
				return usageErrorf("--output - writes the profile to standard output, where --json would print too; give one")
			}
			return nil
		},
		Action: action(func(c *cli.Context) time.Duration { return c.Duration("duration") + 2*time.Minute },
			func(c *cli.Context, ctx context.Context, cl *admin.Client) (any, func(), error) {
				every := c.Generic("interval").(*durationOrBytes).n
				return save(c, what, func(w io.Writer) (string, int64, error) {
					return cl.Profile(ctx, c.Args().First(), c.Int("worker"), typ, c.Duration("duration"), every, c.String("format"), c.Bool("source-maps"), w)
				})
			}),
	}
}

// durationOrBytes is --interval: a duration for a CPU profile (its n in
// microseconds), a size for a heap profile (n in bytes); n is 0 unset.
type durationOrBytes struct {
	text string
	n    int
}

func (v *durationOrBytes) String() string { return v.text }

func (v *durationOrBytes) Set(s string) error {
	v.text = s
	return nil
}

// check reads the value for a profile of typ.
func (v *durationOrBytes) check(typ string) error {
	if v.text == "" {
		return nil
	}
	if typ == supervisor.ProfileCPU {
		d, err := time.ParseDuration(v.text)
		if err != nil || d < 10*time.Microsecond || d > time.Second {
			return fmt.Errorf("%q: want a duration from 10µs to 1s", v.text)
		}
		v.n = int(d / time.Microsecond)
		return nil
	}
	n, err := config.ParseSize(v.text)
	if err != nil || n < 1024 || n > 64<<20 {
		return fmt.Errorf("%q: want a size from 1KiB to 64MiB", v.text)
	}
	v.n = int(n)
	return nil
}
