package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/admin"
)

// heapSnapshotResult is what `wattd ctl heap-snapshot --json` prints.
type heapSnapshotResult struct {
	App   string `json:"app"`
	File  string `json:"file"` // "-" when written to standard output
	Bytes int64  `json:"bytes"`
}

// ctlHeapSnapshotCommand is `wattd ctl heap-snapshot APP`: a worker of APP
// takes a V8 heap snapshot, saved as a .heapsnapshot file (Chrome DevTools'
// Memory tab loads it) in the current directory, --dir, or --output.
func ctlHeapSnapshotCommand(action ctlAction, flags ...cli.Flag) *cli.Command {
	flags = append(flags,
		&cli.IntFlag{Name: "worker", Aliases: []string{"w"}, Value: -1, Usage: "worker index `N` of APP (default: the lowest that is ready; see wattd ctl ps)"},
		&cli.StringFlag{Name: "dir", Aliases: []string{"d"}, Usage: "save it in `DIR` under the name wattd gives it (default: the current directory)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "save it as `FILE` (- for standard output)"},
		&cli.DurationFlag{Name: "timeout", Value: 6 * time.Minute, Usage: "give up after this long (a large heap takes a while)"},
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
			if c.IsSet("worker") && c.Int("worker") < 0 {
				return usageErrorf("--worker %d: want a worker index, 0 or more", c.Int("worker"))
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
				app := c.Args().First()
				res := heapSnapshotResult{App: app}
				if c.String("output") == "-" {
					_, n, err := cl.HeapSnapshot(ctx, app, c.Int("worker"), os.Stdout)
					res.File, res.Bytes = "-", n
					return res, func() {}, err
				}
				out, err := saveHeapSnapshot(ctx, cl, app, c.Int("worker"), c.String("dir"), c.String("output"))
				if err != nil {
					return nil, nil, err
				}
				res.File, res.Bytes = out.path, out.n
				return res, func() {
					fmt.Printf("heap snapshot of %s saved to %s (%s)\n", app, out.path, supervisor.FormatBytes(uint64(out.n)))
				}, nil
			}),
	}
}

type savedFile struct {
	path string
	n    int64
}

// saveHeapSnapshot writes the snapshot to a temporary file beside where it
// goes and renames it there once whole, so that a failure leaves nothing.
func saveHeapSnapshot(ctx context.Context, cl *admin.Client, app string, worker int, dir, output string) (savedFile, error) {
	if output != "" {
		dir = filepath.Dir(output)
	} else if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, ".heap-*.part")
	if err != nil {
		return savedFile{}, fmt.Errorf("cannot save the heap snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // once renamed, there is nothing to remove
	name, n, err := cl.HeapSnapshot(ctx, app, worker, tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot save the heap snapshot: %w", cerr)
	}
	if err != nil {
		return savedFile{}, err
	}
	if output == "" {
		if name == "" {
			name = fmt.Sprintf("heap-%s-%s.heapsnapshot", app, time.Now().UTC().Format("2006-01-02T15-04-05Z"))
		}
		output = filepath.Join(dir, name)
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return savedFile{}, fmt.Errorf("cannot save the heap snapshot: %w", err)
	}
	// It stays private (CreateTemp's 0600): a heap snapshot holds the
	// strings of the process, its secrets among them.
	if abs, err := filepath.Abs(output); err == nil {
		output = abs
	}
	return savedFile{path: output, n: n}, nil
}
