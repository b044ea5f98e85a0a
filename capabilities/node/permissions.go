package node

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wattd/wattd/capabilities"
)

// Watt's permissions.fs, as Watt gives it: an application with at least one
// path runs under Node.js's permission model, which refuses every file
// system access outside the paths allowed (and child processes, worker
// threads, native addons, WASI and the inspector). The flags go on node's
// command line before the preload, so the model holds from the first line
// of JavaScript.
//
// Besides the application's own paths, a worker is allowed what it needs
// to start and to run under wattd, and nothing else: reading the
// application's directory (its code; a Watt worker thread under the model
// reads its application's directory too, whatever "read" lists), the
// directories of Watt's preload modules (the runtime's and the
// application's "preload"), wattd's preload (its directory holds nothing else), the application's info file,
// the /proc files the preload reads (procFiles), every node_modules
// directory from the application's directory up to / (Watt allows its
// project's and its application's, and those above its own package), and
// the compile cache's directory (read and write: without it Node.js would
// quietly compile every module again at each start). Node.js 25 also
// guards the network with the model; its workers get --allow-net, as
// Watt's do, since every worker listens and calls the mesh.

// procFiles are the /proc files the preload reads: its sockets' addresses
// (/proc/self/fd, /proc/net/*), and the CPUs that are idle, which a standby
// waits for before it warms up (/proc/stat, /proc/self/status).
var procFiles = []string{"/proc/self/fd", "/proc/self/status", "/proc/stat", "/proc/net/tcp", "/proc/net/tcp6", "/proc/net/unix"}

// PermissionArgs returns the flags that run a worker of app, started with
// bin and the preload at preload, under the permission model; none when
// app has no permissions.
func PermissionArgs(app capabilities.App, bin, preload string) ([]string, error) {
	p := app.Watt.Permissions
	if !p.On() {
		return nil, nil
	}
	v, err := binaryVersion(bin)
	if err != nil {
		return nil, fmt.Errorf("permissions: %w", err)
	}
	flag := v.permissionFlag()
	if flag == "" {
		return nil, fmt.Errorf("permissions: Node.js's permission model needs Node.js 20 or later, and %s is %s", bin, v)
	}
	allowed := map[string][]string{} // "read", "write": the paths, in order
	allow := func(what, path string) {
		// A path through a symbolic link is allowed where it leads too:
		// Node.js loads modules by their real path (an application
		// directory that is a link would not start otherwise), while the
		// app's own calls are checked on the path they give.
		allowed[what] = append(allowed[what], path)
		if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
			allowed[what] = append(allowed[what], real)
		}
	}
	for _, r := range p.Read {
		allow("read", r)
	}
	for _, w := range p.Write {
		allow("write", w)
	}
	allow("read", app.Dir)
	allow("read", filepath.Dir(preload))
	for _, m := range app.Watt.Preload {
		// Watt's preload modules, and what they require beside them.
		allow("read", filepath.Dir(m))
	}
	if app.InfoFile != "" {
		allow("read", app.InfoFile)
	}
	if app.DiagDir != "" {
		allow("write", app.DiagDir)
	}
	// As they are: /proc/self leads to wattd's own process here.
	allowed["read"] = append(allowed["read"], procFiles...)
	for _, d := range nodeModulesDirs(app.Dir) {
		allow("read", d)
	}
	// The application's own NODE_COMPILE_CACHE wins over compileCache,
	// as it does for the cache itself.
	if cache := cmp.Or(app.Env["NODE_COMPILE_CACHE"], app.CompileCache); cache != "" && filepath.IsAbs(cache) {
		allow("read", cache)
		allow("write", cache)
	}
	out := []string{flag}
	for _, what := range []string{"read", "write"} {
		for _, p := range outermost(allowed[what]) {
			out = append(out, "--allow-fs-"+what+"="+p)
		}
	}
	if v.major >= 25 {
		out = append(out, "--allow-net")
	}
	return out, nil
}

// outermost returns paths without repeats and without those inside
// another of them (a directory covers what is under it), in order. Fewer
// flags, and Node.js 20 needs it: there a path allowed inside another one
// that is a symbolic link undoes the link's own allowance (found with the
// compile cache in the application's directory, reached through a link).
func outermost(paths []string) []string {
	var out []string
	for i, p := range paths {
		covered := false
		for j, q := range paths {
			if strings.Contains(q, "*") || i == j {
				continue
			}
			if q == p && j < i || q != p && strings.HasPrefix(p, strings.TrimSuffix(q, "/")+"/") {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}

// nodeModulesDirs returns the node_modules directories in dir and above it.
func nodeModulesDirs(dir string) []string {
	var out []string
	for _, d := range capabilities.Ancestors(dir) {
		nm := filepath.Join(d, "node_modules")
		if st, err := os.Stat(nm); err == nil && st.IsDir() {
			out = append(out, nm)
		}
	}
	return out
}

// version is a Node.js release.
type version struct{ major, minor, patch int }

func (v version) String() string { return fmt.Sprintf("v%d.%d.%d", v.major, v.minor, v.patch) }

// permissionFlag is the flag that turns the model on: --permission since
// 22.13 and 23.5 (24 knows no other), --experimental-permission from 20
// until then; "" before 20.
func (v version) permissionFlag() string {
	switch {
	case v.major >= 24, v.major == 23 && v.minor >= 5, v.major == 22 && v.minor >= 13:
		return "--permission"
	case v.major >= 20:
		return "--experimental-permission"
	}
	return ""
}

var versionLine = regexp.MustCompile(`^v(\d+)\.(\d+)\.(\d+)`)

// versions caches binaryVersion's answers by path, size and time of the
// binary, so that a node upgraded in place is asked again.
var versions = struct {
	sync.Mutex
	m map[string]versionEntry
}{m: map[string]versionEntry{}}

type versionEntry struct {
	size int64
	mod  time.Time
	v    version
}

// binaryVersion asks bin for its version (node --version, about 20 ms).
func binaryVersion(bin string) (version, error) {
	st, err := os.Stat(bin)
	if err != nil {
		return version{}, err
	}
	versions.Lock()
	e, ok := versions.m[bin]
	versions.Unlock()
	if ok && e.size == st.Size() && e.mod.Equal(st.ModTime()) {
		return e.v, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Env = []string{} // no NODE_OPTIONS of wattd's to refuse or act on
	raw, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return version{}, fmt.Errorf("%s --version: %w", bin, err)
	}
	m := versionLine.FindSubmatch(bytes.TrimSpace(raw))
	if m == nil {
		return version{}, fmt.Errorf("%s --version printed %q, not a Node.js version", bin, bytes.TrimSpace(raw))
	}
	var v version
	v.major, _ = strconv.Atoi(string(m[1]))
	v.minor, _ = strconv.Atoi(string(m[2]))
	v.patch, _ = strconv.Atoi(string(m[3]))
	versions.Lock()
	versions.m[bin] = versionEntry{size: st.Size(), mod: st.ModTime(), v: v}
	versions.Unlock()
	return v, nil
}
