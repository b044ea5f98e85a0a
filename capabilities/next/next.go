// Package next is the Next.js capability. It recognises an app whose
// package.json depends on next and runs it with wattd's Node.js preload
// (package node), so the Next.js server's listen() lands on the sockets
// wattd passes, like any Node.js app's:
//
//   - wattd start: the production server of the app's build, in each worker
//
//     node [execArgv] --require <preload> <next>/dist/bin/next start
//
//     or, for a build with output: 'standalone', the server.js Next.js wrote
//     into .next/standalone. Without a build, Prepare fails and names
//     `wattd build`.
//
//   - wattd build: `node <next>/dist/bin/next build` in the app directory.
//
//   - wattd dev: the Next.js development server, run in the worker process
//     itself by a small launcher (dev.cjs, embedded here) rather than by the
//     `next dev` CLI, whose server runs in a child process that the preload
//     and the passed sockets do not reach. See dev.cjs.
//
// Every command gets NEXT_TELEMETRY_DISABLED=1 unless the app sets it.
package next

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/capabilities/node"
)

// ID is the capability id used in watt.json.
const ID = "next"

// DistDir is the build directory of Next.js unless next.config sets distDir.
const DistDir = ".next"

//go:embed dev.cjs
var devLauncher []byte

// devLauncherName carries a hash of the content, as the preload's name does,
// so a wattd upgrade never runs a stale launcher.
var devLauncherName = capabilities.HashedName("next-dev", ".cjs", devLauncher)

// Capability is the Next.js capability. The zero value is ready to use.
type Capability struct{}

var (
	_ capabilities.Capability = (*Capability)(nil)
	_ capabilities.Builder    = (*Capability)(nil)
	_ capabilities.Developer  = (*Capability)(nil)
)

func init() { capabilities.Register(&Capability{}) }

// ID returns "next".
func (*Capability) ID() string { return ID }

// Detect reports whether dir has a package.json that lists next in
// dependencies or devDependencies. A package.json that is not valid JSON is
// not claimed here; the node capability reports it.
func (*Capability) Detect(dir string) (bool, error) {
	if err := capabilities.RequireDir(dir); err != nil {
		return false, err
	}
	deps, ok, err := capabilities.PackageDeps(dir)
	return ok && deps["next"], err
}

// Prepare returns the command line of one production worker of app: the
// standalone server when the build has one, else `next start`.
func (c *Capability) Prepare(app capabilities.App) (*capabilities.Launch, error) {
	if app.Mode == capabilities.Development {
		return c.PrepareDev(app)
	}
	if err := checkDir(app); err != nil {
		return nil, err
	}
	build, err := FindBuild(app.Dir)
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	if build == nil {
		return nil, fmt.Errorf("next: app %q: no Next.js build in %s; run `wattd build`",
			app.ID, filepath.Join(app.Dir, DistDir))
	}
	if build.Output == "export" {
		return nil, fmt.Errorf("next: app %q: the build in %s is a static export (output: 'export'), which has no server to run; serve its output directory as static files instead",
			app.ID, build.Dir)
	}
	script, dir, err := standaloneServer(app.Dir, build)
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	if script != "" {
		l, err := launch(app, nil, []string{script}, dir)
		if err != nil {
			return nil, err
		}
		// The standalone server.js takes its hostname from HOSTNAME
		// (0.0.0.0 when unset; a container's id in Docker) where `next
		// start` takes none. The listen goes to wattd's socket either way,
		// so the name only shows in request.url and in Next's banner:
		// http://0.0.0.0:PORT/ there, http://localhost:PORT/ under `next
		// start` and under Watt. localhost, unless the app's own env sets
		// HOSTNAME, makes request.url (and redirects built from it) read
		// the same as without output: 'standalone'.
		if _, set := app.Env["HOSTNAME"]; !set {
			l.Env["HOSTNAME"] = "localhost"
		}
		return l, nil
	}
	inst, err := FindNext(app.Dir)
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	return launch(app, nil, []string{inst.Bin, "start"}, app.Dir)
}

// CanRestrict says that every launch of a Next.js application applies
// permissions: each runs node with the preload (the build does not: it
// is not a worker).
func (*Capability) CanRestrict(capabilities.App) bool { return true }

var _ capabilities.Restrictor = (*Capability)(nil)

// BuildCommand returns `node <next> build` in the app directory.
func (*Capability) BuildCommand(app capabilities.App) (*capabilities.Launch, error) {
	if err := checkDir(app); err != nil {
		return nil, err
	}
	inst, err := FindNext(app.Dir)
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	bin, err := node.Binary()
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	// No preload and no nodeOptions: the build is not a worker, and runtime
	// flags such as --inspect have no place in it.
	return &capabilities.Launch{
		Argv: []string{bin, inst.Bin, "build"},
		Env:  appEnv(app),
		Dir:  app.Dir,
	}, nil
}

// PrepareDev returns the command line of the app's development server: the
// embedded dev launcher, which starts Next's dev server in the worker process
// (see dev.cjs). The dev server reloads itself, so wattd does not watch.
func (*Capability) PrepareDev(app capabilities.App) (*capabilities.Launch, error) {
	if err := checkDir(app); err != nil {
		return nil, err
	}
	inst, err := FindNext(app.Dir)
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	if ok, err := isFile(filepath.Join(inst.Dir, "dist", "server", "lib", "start-server.js")); err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	} else if !ok {
		return nil, fmt.Errorf("next: app %q: Next.js %s in %s is too old for wattd dev (13.4 or later is needed)",
			app.ID, inst.Version, inst.Dir)
	}
	launcher, err := capabilities.WriteRuntimeFile(app.RuntimeDir, devLauncherName, devLauncher)
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	prog := []string{launcher, inst.Dir, app.Dir}
	if b := devBundler(app.Dir); b != "" {
		prog = append(prog, b)
	}
	// `next dev` runs its server with source maps on, unless nodeOptions
	// (or execArgv) turn them off: node reads NODE_OPTIONS before its
	// command line, so the flag is left out then.
	var pre []string
	if !strings.Contains(app.NodeOptions, "--no-enable-source-maps") && !slices.Contains(app.Watt.ExecArgv, "--no-enable-source-maps") {
		pre = []string{"--enable-source-maps"}
	}
	l, err := launch(app, pre, prog, app.Dir)
	if err != nil {
		return nil, err
	}
	l.NoWatch = true
	return l, nil
}

// launch builds `node [pre...] [execArgv...] --require <preload> prog...`,
// with nodeOptions in NODE_OPTIONS and Watt's preload modules for the
// preload to load, as for any Node.js app (see node.Env).
func launch(app capabilities.App, pre, prog []string, dir string) (*capabilities.Launch, error) {
	bin, err := node.Binary()
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	// node.hasServer is the node capability's; a Next.js server always
	// listens.
	withServer := app
	withServer.Watt.NoServer = false
	env, err := node.Env(withServer)
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	if _, set := env["NEXT_TELEMETRY_DISABLED"]; !set {
		env["NEXT_TELEMETRY_DISABLED"] = "1"
	}
	preload, err := node.WritePreload(app.RuntimeDir)
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	execArgv := node.ExecArgv(app)
	perm, err := node.PermissionArgs(app, bin, preload)
	if err != nil {
		return nil, fmt.Errorf("next: app %q: %w", app.ID, err)
	}
	argv := make([]string, 0, 1+len(pre)+len(execArgv)+len(perm)+2+len(prog))
	argv = append(argv, bin)
	argv = append(argv, pre...)
	argv = append(argv, execArgv...)
	argv = append(argv, perm...)
	argv = append(argv, "--require", preload)
	argv = append(argv, prog...)
	return &capabilities.Launch{Argv: argv, Env: env, Dir: dir, Protocol: true, Direct: true}, nil
}

// appEnv is the app's own environment (repeated, as the node capability
// does, so Launch.Env alone is complete) plus NEXT_TELEMETRY_DISABLED=1
// unless the app sets that itself.
func appEnv(app capabilities.App) map[string]string {
	env := make(map[string]string, len(app.Env)+1)
	for k, v := range app.Env {
		env[k] = v
	}
	if _, set := env["NEXT_TELEMETRY_DISABLED"]; !set {
		env["NEXT_TELEMETRY_DISABLED"] = "1"
	}
	return env
}

func checkDir(app capabilities.App) error {
	if !filepath.IsAbs(app.Dir) {
		return fmt.Errorf("next: app %q: directory %q is not absolute", app.ID, app.Dir)
	}
	return nil
}

// Install is the next package an app resolves.
type Install struct {
	Dir     string // the package directory, .../node_modules/next
	Bin     string // its CLI, normally Dir/dist/bin/next
	Version string // from its package.json, for messages
}

// FindNext finds the next package the way require.resolve would from dir:
// node_modules/next in dir, then in each parent directory (so a package
// hoisted to a workspace root is found too).
func FindNext(dir string) (*Install, error) {
	for _, d := range capabilities.Ancestors(dir) {
		pkgDir := filepath.Join(d, "node_modules", "next")
		raw, err := os.ReadFile(filepath.Join(pkgDir, "package.json"))
		switch {
		case err == nil:
			return install(pkgDir, raw)
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return nil, err
		}
	}
	return nil, fmt.Errorf("next is not installed for %s (no node_modules/next there or above): run npm install in %s", dir, dir)
}

// install reads the CLI path from next's package.json "bin".
func install(pkgDir string, raw []byte) (*Install, error) {
	var pkg struct {
		Version string          `json:"version"`
		Bin     json.RawMessage `json:"bin"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(pkgDir, "package.json"), err)
	}
	rel := "dist/bin/next"
	var one string
	var many map[string]string
	if json.Unmarshal(pkg.Bin, &one) == nil && one != "" {
		rel = one
	} else if json.Unmarshal(pkg.Bin, &many) == nil && many["next"] != "" {
		rel = many["next"]
	}
	bin := filepath.Join(pkgDir, filepath.FromSlash(rel))
	ok, err := isFile(bin)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("next in %s has no CLI at %s: run npm install in the app directory", pkgDir, bin)
	}
	return &Install{Dir: pkgDir, Bin: bin, Version: pkg.Version}, nil
}

// Build is a production build of a Next.js app.
type Build struct {
	Dir string // the build directory, normally <app>/.next
	// From required-server-files.json, when the build wrote one:
	Output         string // next.config output: "", "standalone" or "export"
	RelativeAppDir string // the app directory relative to the file tracing root

	serverFiles bool   // required-server-files.json was there
	distDir     string // the distDir it names, cleaned
}

// FindBuild returns the app's production build, or nil when there is none.
// A build is a directory with a BUILD_ID file (a dev server's output has
// none): .next, else a direct subdirectory of dir whose
// required-server-files.json names it as the distDir (for a next.config
// that sets distDir to, say, "build").
func FindBuild(dir string) (*Build, error) {
	b, err := readBuild(filepath.Join(dir, DistDir))
	if b != nil || err != nil {
		return b, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == DistDir || name == "node_modules" || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := readBuild(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if b != nil && b.distDir == name {
			return b, nil
		}
	}
	return nil, nil
}

// readBuild reads the build in distDir, nil when there is no BUILD_ID.
func readBuild(distDir string) (*Build, error) {
	ok, err := isFile(filepath.Join(distDir, "BUILD_ID"))
	if err != nil || !ok {
		return nil, err
	}
	b := &Build{Dir: distDir}
	raw, err := os.ReadFile(filepath.Join(distDir, "required-server-files.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return b, nil
	case err != nil:
		return nil, err
	}
	var rsf struct {
		RelativeAppDir string `json:"relativeAppDir"`
		Config         struct {
			Output  string `json:"output"`
			DistDir string `json:"distDir"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &rsf); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(distDir, "required-server-files.json"), err)
	}
	b.serverFiles = true
	b.Output = rsf.Config.Output
	b.RelativeAppDir = filepath.FromSlash(rsf.RelativeAppDir)
	b.distDir = filepath.Clean(filepath.FromSlash(rsf.Config.DistDir))
	return b, nil
}

// standaloneServer returns the server.js to run and its directory when the
// build is a standalone one, or "" to run `next start`.
//
// `next build` with output: 'standalone' writes
// <distDir>/standalone/<relativeAppDir>/server.js, a server that needs no
// node_modules of the app but does not serve <distDir>/static and public
// unless they are copied next to it (Next.js leaves them out, expecting a
// CDN). server.js changes to its own directory, so no working directory
// makes it find the originals: when they are missing, this is an error that
// says what to copy, rather than a server whose pages load without their
// scripts and styles.
//
// A directory that is itself a deployed standalone output (server.js at the
// top, the build beside it) runs that server.js.
func standaloneServer(appDir string, b *Build) (script, dir string, err error) {
	if b.serverFiles && b.Output != "standalone" {
		return "", "", nil
	}
	server := filepath.Join(b.Dir, "standalone", b.RelativeAppDir, "server.js")
	ok, err := isFile(server)
	if err != nil {
		return "", "", err
	}
	if ok {
		dir := filepath.Dir(server)
		var missing []string
		dist, err := filepath.Rel(appDir, b.Dir)
		if err != nil {
			return "", "", err
		}
		for _, p := range [][2]string{
			{filepath.Join(b.Dir, "static"), filepath.Join(dir, dist, "static")},
			{filepath.Join(appDir, "public"), filepath.Join(dir, "public")},
		} {
			have, err := exists(p[0])
			if err != nil {
				return "", "", err
			}
			copied, err := exists(p[1])
			if err != nil {
				return "", "", err
			}
			if have && !copied {
				missing = append(missing, fmt.Sprintf("cp -r %s %s", p[0], p[1]))
			}
		}
		if len(missing) > 0 {
			return "", "", fmt.Errorf("the standalone build in %s does not have the static files Next.js leaves out of it; after each build run: %s (or drop output: 'standalone' to run `next start`)",
				filepath.Dir(server), strings.Join(missing, " && "))
		}
		return server, dir, nil
	}
	if b.Output == "standalone" {
		server = filepath.Join(appDir, "server.js")
		if ok, err := isFile(server); err != nil || ok {
			return server, appDir, err
		}
	}
	return "", "", nil
}

// devBundler returns "webpack" or "turbopack" when the app's own dev script
// picks a bundler with a `next dev` flag, else "" (Next's default).
func devBundler(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return ""
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if json.Unmarshal(raw, &pkg) != nil {
		return ""
	}
	script := pkg.Scripts["dev"]
	if !strings.Contains(script, "next dev") {
		return ""
	}
	for _, w := range strings.Fields(script) {
		switch w {
		case "--webpack":
			return "webpack"
		case "--turbopack", "--turbo":
			return "turbopack"
		}
	}
	return ""
}

// isFile reports whether p is a regular file (after symlinks); a missing
// path is "no", other errors are reported.
func isFile(p string) (bool, error) {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return false, nil
		}
		return false, err
	}
	return st.Mode().IsRegular(), nil
}

// exists reports whether p exists (after symlinks).
func exists(p string) (bool, error) {
	_, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
