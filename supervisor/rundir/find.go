package rundir

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ErrNotRunning is matched by Find's error when no live runtime exists.
var ErrNotRunning = errors.New("no wattd runtime is running")

// ErrAmbiguous is matched by Find's error when several runtimes are live
// and none is for the current directory.
var ErrAmbiguous = errors.New("several wattd runtimes are running")

// probeTimeout bounds the liveness check of one admin socket. A connect to
// a listening Unix socket completes in the kernel without the server's
// help, so this only matters for a wedged, full backlog.
const probeTimeout = time.Second

// FindOptions says how `wattd ctl` chooses a runtime.
type FindOptions struct {
	Socket string // --socket: used as is when set
	Cwd    string // directory to match against project directories; "" means os.Getwd
}

// Find returns the admin socket `wattd ctl` should talk to: opts.Socket if
// set; else the live runtime whose project directory is Cwd or the closest
// ancestor of it; else the only live runtime. Otherwise the error matches
// ErrNotRunning or ErrAmbiguous and says what to do.
func Find(opts FindOptions) (string, error) {
	if opts.Socket != "" {
		return opts.Socket, nil
	}
	cwd := opts.Cwd
	if cwd == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("find wattd runtime: current directory: %w", err)
		}
		cwd = wd
	}
	cwd = canonical(cwd)

	live, err := List()
	if err != nil {
		return "", err
	}
	if s, ok := pick(live, cwd); ok {
		return s, nil
	}
	switch len(live) {
	case 0:
		base, _ := basePath()
		return "", fmt.Errorf("%w (no live admin socket under %s); pass --socket if it uses another runtime directory", ErrNotRunning, base)
	case 1:
		return live[0].Socket, nil
	}
	var b strings.Builder
	for _, i := range live {
		proj := i.ProjectDir
		if proj == "" {
			proj = "(unknown project)"
		}
		fmt.Fprintf(&b, "\n  %s (pid %d): %s", proj, i.PID, i.Socket)
	}
	return "", fmt.Errorf("%w and none is for %s; choose one with --socket:%s", ErrAmbiguous, cwd, b.String())
}

// pick returns the socket of the runtime whose project directory contains
// cwd most closely. Project directories cannot repeat: the runtime
// directory name is derived from the path and guarded by its lock.
func pick(live []Info, cwd string) (string, bool) {
	best, bestLen := "", -1
	for _, i := range live {
		if i.ProjectDir == "" || !within(cwd, i.ProjectDir) {
			continue
		}
		if len(i.ProjectDir) > bestLen {
			best, bestLen = i.Socket, len(i.ProjectDir)
		}
	}
	return best, bestLen >= 0
}

// within reports whether path is dir or below it. Both are clean and
// absolute; comparing with a trailing separator keeps /srv/app from
// claiming /srv/app2.
func within(path, dir string) bool {
	if path == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(path, dir)
}

// List returns the live runtimes under the base directory, sorted by
// project directory. A runtime is live when its admin socket accepts a
// connection; directories left by a crash are skipped. It neither creates
// the base directory nor deletes anything.
func List() ([]Info, error) {
	base, err := basePath()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list runtimes in %s: %w", base, err)
	}
	// We are about to trust what the sockets say; a base directory others
	// can write to could hold a planted one.
	if err := checkPrivateDir(base); err != nil {
		return nil, err
	}
	var live []Info
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(base, e.Name())
		sock := filepath.Join(dir, adminSocketName)
		if !alive(sock) {
			continue
		}
		// A live socket without a readable runtime.json is still listed:
		// it can be picked as the only runtime or with --socket.
		info, _ := readInfo(dir)
		info.Dir, info.Socket = dir, sock
		live = append(live, info)
	}
	sort.Slice(live, func(a, b int) bool {
		if live[a].ProjectDir != live[b].ProjectDir {
			return live[a].ProjectDir < live[b].ProjectDir
		}
		return live[a].Dir < live[b].Dir
	})
	return live, nil
}

func alive(sock string) bool {
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket {
		return false
	}
	c, err := net.DialTimeout("unix", sock, probeTimeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
