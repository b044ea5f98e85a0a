// Package vite is the Vite capability: single-page and static sites built
// with Vite.
//
// In production (wattd start) no Node.js process runs at all. `wattd build`
// runs `vite build`, and every worker is wattd itself, re-executed as a small
// static file server over the build output:
//
//	wattd __wattd-static --spa <app>/dist
//
// The server (StaticMain, static.go) takes its sockets and speaks the control
// protocol through the Go worker SDK of package ipc, like any other worker.
//
// In development (wattd dev) each worker is Vite's own dev server on the port
// wattd gives it in $PORT; wattd fronts it, and Vite reloads itself, so wattd
// does not watch the files.
package vite

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/capabilities/node"
)

// ID is the capability id used in watt.json.
const ID = "vite"

// DefaultOutDir is Vite's build.outDir when the config does not set one.
const DefaultOutDir = "dist"

// viteBin is the Vite CLI inside a package directory.
var viteBin = filepath.Join("node_modules", "vite", "bin", "vite.js")

// otherFrameworks are dependencies that mark an app that uses Vite but is
// not a Vite site: it belongs to that framework's own capability.
var otherFrameworks = []string{"next"}

// configFiles are the names Vite looks for its config under, in its order.
var configFiles = []string{
	"vite.config.js", "vite.config.mjs", "vite.config.ts",
	"vite.config.cjs", "vite.config.mts", "vite.config.cts",
}

// Capability is the Vite capability. The zero value is ready to use.
type Capability struct{}

var (
	_ capabilities.Capability = (*Capability)(nil)
	_ capabilities.Builder    = (*Capability)(nil)
	_ capabilities.Developer  = (*Capability)(nil)
)

func init() { capabilities.Register(&Capability{}) }

// ID returns "vite".
func (*Capability) ID() string { return ID }

// Detect reports whether dir's package.json depends on vite (in
// dependencies or devDependencies) and not on a framework that has its own
// capability, such as Next.js. A directory without a package.json, or with
// one that is not valid JSON, is not a Vite app; the Node.js capability
// reports the invalid file.
func (*Capability) Detect(dir string) (bool, error) {
	if err := capabilities.RequireDir(dir); err != nil {
		return false, err
	}
	deps, ok, err := capabilities.PackageDeps(dir)
	if !ok || !deps["vite"] {
		return false, err
	}
	for _, fw := range otherFrameworks {
		if deps[fw] {
			return false, nil
		}
	}
	return true, nil
}

// Prepare returns the command line of one production worker: wattd itself
// as a static file server over the app's build output. In development mode
// it is PrepareDev.
func (c *Capability) Prepare(app capabilities.App) (*capabilities.Launch, error) {
	if app.Mode == capabilities.Development {
		return c.PrepareDev(app)
	}
	if err := checkDir(app); err != nil {
		return nil, err
	}
	out, err := BuildDir(app.Dir)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app.ID, err)
	}
	self, err := capabilities.WattdBinary()
	if err != nil {
		return nil, fmt.Errorf("app %q: locate the wattd binary: %w", app.ID, err)
	}
	return &capabilities.Launch{
		Argv:     []string{self, StaticArg, "--spa", out},
		Env:      copyEnv(app.Env),
		Dir:      app.Dir,
		Protocol: true, // the static server speaks it through the Go SDK
	}, nil
}

// PrepareDev returns the command line of one development worker: Vite's dev
// server on 127.0.0.1:$PORT. Vite takes its port only from its command line
// or its config, so a POSIX shell puts $PORT into the arguments and then
// execs node (the worker keeps the shell's pid).
func (*Capability) PrepareDev(app capabilities.App) (*capabilities.Launch, error) {
	argv, err := nodeViteArgv(app)
	if err != nil {
		return nil, err
	}
	script := `: "${PORT:?wattd did not set PORT}"; exec "$@" --host 127.0.0.1 --port "$PORT" --strictPort --clearScreen false`
	return &capabilities.Launch{
		Argv:    append([]string{"/bin/sh", "-c", script, "vite-dev"}, argv...),
		Env:     copyEnv(app.Env),
		Dir:     app.Dir,
		Fronted: true,
		NoWatch: true,
	}, nil
}

// BuildCommand returns `node <vite.js> build`, run in the app directory.
func (*Capability) BuildCommand(app capabilities.App) (*capabilities.Launch, error) {
	argv, err := nodeViteArgv(app)
	if err != nil {
		return nil, err
	}
	return &capabilities.Launch{
		Argv: append(argv, "build"),
		Env:  copyEnv(app.Env),
		Dir:  app.Dir,
	}, nil
}

// nodeViteArgv is `node [NodeOptions...] <vite.js>` for app.
func nodeViteArgv(app capabilities.App) ([]string, error) {
	if err := checkDir(app); err != nil {
		return nil, err
	}
	cli, err := ViteCLI(app.Dir)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app.ID, err)
	}
	bin, err := node.Binary()
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app.ID, err)
	}
	opts, err := node.SplitOptions(app.NodeOptions)
	if err != nil {
		return nil, fmt.Errorf("app %q: nodeOptions: %w", app.ID, err)
	}
	argv := make([]string, 0, len(opts)+3)
	argv = append(argv, bin)
	argv = append(argv, opts...)
	return append(argv, cli), nil
}

func checkDir(app capabilities.App) error {
	if !filepath.IsAbs(app.Dir) {
		return fmt.Errorf("app %q: directory %q is not absolute", app.ID, app.Dir)
	}
	return nil
}

// ViteCLI returns the path of node_modules/vite/bin/vite.js as Node would
// resolve the vite package from dir: in dir, else in a parent directory (a
// workspace that hoists its dependencies).
func ViteCLI(dir string) (string, error) {
	for _, d := range capabilities.Ancestors(dir) {
		p := filepath.Join(d, viteBin)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("vite is not installed: no %s in %s or a parent directory (run npm install)", viteBin, dir)
}

// outDirRe and rootRe find build.outDir and root when the Vite config sets
// them to string literals. Reading the config this way is a cheap
// approximation of Vite's own resolution: computed values are not seen, and
// a match may belong to a plugin's options. Every literal found is therefore
// only a candidate, tried before the default, and a candidate counts only if
// it holds a build (an index.html).
var (
	outDirRe = regexp.MustCompile("\\boutDir\\s*:\\s*(['\"`])([^'\"`$\\n]+)['\"`]")
	rootRe   = regexp.MustCompile("\\broot\\s*:\\s*(['\"`])([^'\"`$\\n]+)['\"`]")
)

// OutDirs returns the directories, absolute and in order of preference, that
// may hold dir's build output: each string-literal build.outDir of the Vite
// config (relative to a string-literal root, then to dir), then dir/dist.
func OutDirs(dir string) []string {
	var cands []string
	add := func(p string) {
		for _, c := range cands {
			if c == p {
				return
			}
		}
		cands = append(cands, p)
	}
	for _, name := range configFiles {
		src, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		var roots []string
		for _, m := range rootRe.FindAllSubmatch(src, -1) {
			roots = append(roots, resolve(dir, string(m[2])))
		}
		for _, m := range outDirRe.FindAllSubmatch(src, -1) {
			out := string(m[2])
			for _, r := range roots {
				add(resolve(r, out))
			}
			add(resolve(dir, out))
		}
		break // Vite reads the first config file it finds
	}
	add(filepath.Join(dir, DefaultOutDir))
	return cands
}

func resolve(base, p string) string {
	p = filepath.FromSlash(p)
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// BuildDir returns the first of OutDirs(dir) that holds a build, that is an
// index.html. With none, the error names the first candidate (the configured
// outDir, else dist) and says how to make one.
func BuildDir(dir string) (string, error) {
	cands := OutDirs(dir)
	for _, c := range cands {
		if st, err := os.Stat(filepath.Join(c, "index.html")); err == nil && st.Mode().IsRegular() {
			return c, nil
		}
	}
	return "", fmt.Errorf("no Vite build in %s; run `wattd build`", cands[0])
}

func copyEnv(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
