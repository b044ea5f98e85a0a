// Package node is the Node.js capability: it finds an app's entry file and
// starts each worker as
//
//	node [NodeOptions...] --require <preload> <entry>
//
// The preload (the modules of preload/, embedded here) runs inside the worker before the
// app. It speaks the control protocol of package ipc, points the app's first
// server.listen() at the socket wattd passed in, and also serves the
// entrypoint on its mesh socket, so an app needs no change to run under
// wattd. See the comment at the top of preload/index.cjs for the details.
package node

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/wattd/wattd/capabilities"
)

// ID is the capability id used in watt.json.
const ID = "node"

// EnvNode names the node binary to use instead of the one found in PATH, so
// a deployment can pin a Node.js version without touching PATH.
const EnvNode = "WATTD_NODE"

// preloadFS holds the preload's modules; preload/index.cjs is the one node
// is told to --require, and it requires the others by relative path.
//
//go:embed preload/*.cjs
var preloadFS embed.FS

// preload is read and hashed when first needed, not when the package is
// initialised: every wattd command (ctl, version) would pay for it.
var preload = sync.OnceValues(func() (map[string][]byte, string) {
	files := mustReadDir(preloadFS, "preload")
	return files, capabilities.HashedDirName("preload", files)
})

// preloadFiles are the preload modules by file name.
func preloadFiles() map[string][]byte {
	files, _ := preload()
	return files
}

// preloadDirName is the preload's directory in the runtime directory. It
// carries a hash of every module's name and content so that a wattd upgrade
// never runs a stale preload left by an older binary, and so that an
// existing directory can be reused as is.
func preloadDirName() string {
	_, name := preload()
	return name
}

// entryFields are the package.json members that may name the entry file, in
// the order @platformatic/node reads them; a path like exports/./import means
// pkg.exports["."].import. Reading the same members keeps apps that already
// run under Platformatic Watt working unchanged.
var entryFields = [][]string{
	{"main"},
	{"exports"},
	{"exports", "node"},
	{"exports", "import"},
	{"exports", "require"},
	{"exports", "default"},
	{"exports", ".", "node"},
	{"exports", ".", "import"},
	{"exports", ".", "require"},
	{"exports", ".", "default"},
	{"exports", "."},
}

// entryBases and entryExts give the files tried when package.json names no
// entry: every base with every extension, bases first. The list and the order
// are @platformatic/node's.
var (
	entryBases = []string{"index", "main", "app", "application", "server", "start", "bundle", "run", "entrypoint"}
	entryExts  = []string{".js", ".mjs", ".cjs"}
)

// Candidates returns the entry file names tried when package.json names none,
// in order.
func Candidates() []string {
	out := make([]string, 0, len(entryBases)*len(entryExts))
	for _, b := range entryBases {
		for _, e := range entryExts {
			out = append(out, b+e)
		}
	}
	return out
}

// Capability is the Node.js capability. The zero value is ready to use.
type Capability struct{}

var (
	_ capabilities.Capability   = (*Capability)(nil)
	_ capabilities.Builder      = (*Capability)(nil)
	_ capabilities.EntryChecker = (*Capability)(nil)
)

func init() { capabilities.Register(&Capability{}) }

// ID returns "node".
func (*Capability) ID() string { return ID }

// Detect reports whether dir has a package.json or one of the entry
// candidates.
func (*Capability) Detect(dir string) (bool, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	if !st.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dir)
	}
	for _, name := range append([]string{"package.json"}, Candidates()...) {
		ok, err := isFile(filepath.Join(dir, name))
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// CheckEntry finds app's entry as Prepare would, unless the app runs a
// start command of its own.
func (*Capability) CheckEntry(app capabilities.App) error {
	if startCommand(app) != "" {
		return nil
	}
	_, err := appEntry(app)
	return err
}

// Prepare returns the command line of one worker of app:
//
//	node [execArgv...] [--enable-source-maps] --require <preload> <entry> [arguments...]
//
// with nodeOptions in NODE_OPTIONS, as Watt gives them. An app whose
// application.commands names a start command for the mode runs that
// command instead (see commandLaunch).
func (*Capability) Prepare(app capabilities.App) (*capabilities.Launch, error) {
	if !filepath.IsAbs(app.Dir) {
		return nil, fmt.Errorf("node: app %q: directory %q is not absolute", app.ID, app.Dir)
	}
	if cmd := startCommand(app); cmd != "" {
		return commandLaunch(app, cmd)
	}
	entry, err := appEntry(app)
	if err != nil {
		return nil, fmt.Errorf("node: app %q: %w", app.ID, err)
	}
	bin, err := Binary()
	if err != nil {
		return nil, fmt.Errorf("node: app %q: %w", app.ID, err)
	}
	env, err := Env(app)
	if err != nil {
		return nil, fmt.Errorf("node: app %q: %w", app.ID, err)
	}
	pre, err := WritePreload(app.RuntimeDir)
	if err != nil {
		return nil, fmt.Errorf("node: app %q: %w", app.ID, err)
	}

	perm, err := PermissionArgs(app, bin, pre)
	if err != nil {
		return nil, fmt.Errorf("node: app %q: %w", app.ID, err)
	}
	w := app.Watt
	argv := make([]string, 0, len(w.ExecArgv)+len(perm)+len(w.Arguments)+5)
	argv = append(argv, bin)
	argv = append(argv, ExecArgv(app)...)
	argv = append(argv, perm...)
	argv = append(argv, "--require", pre, entry)
	argv = append(argv, w.Arguments...)
	// The preload can hold the app's listen() until promotion; a background
	// app (node.hasServer false) does its work as it loads, so a standby of
	// it would already be working.
	return &capabilities.Launch{Argv: argv, Env: env, Dir: app.Dir, Protocol: true, Standby: !w.NoServer, Direct: true}, nil
}

// CanStandby tells whether Prepare's launch of app can hold a standby: it
// runs the app with the preload (no start command of its own for the
// mode) and the app has a server to hold (node.hasServer is not false).
func (*Capability) CanStandby(app capabilities.App) bool {
	return startCommand(app) == "" && !app.Watt.NoServer
}

var _ capabilities.StandbyHolder = (*Capability)(nil)

// CanRestrict tells whether Prepare's launch of app applies
// permissions: it runs node with the preload, not a start command of the
// app's own.
func (*Capability) CanRestrict(app capabilities.App) bool {
	return startCommand(app) == ""
}

var _ capabilities.Restrictor = (*Capability)(nil)

// ExecArgv returns the runtime flags of a worker of app that go on node's
// command line: Watt's execArgv, and --enable-source-maps for sourceMaps.
func ExecArgv(app capabilities.App) []string {
	out := slices.Clone(app.Watt.ExecArgv)
	if app.Watt.SourceMaps && !slices.Contains(out, "--enable-source-maps") {
		out = append(out, "--enable-source-maps")
	}
	return out
}

// Env returns the environment of a worker of app: the app's own, then
// NODE_OPTIONS extended with nodeOptions the way Watt does it (the
// inherited value, a space, the app's), with the heap flags of the app's
// health keys between them. The preload's own settings (node.hasServer,
// preload modules, basePath) are not here: they are in the app info file
// wattd writes (ipc.AppInfo).
func Env(app capabilities.App) (map[string]string, error) {
	// The app's own environment is repeated here so that a supervisor may
	// use Launch.Env alone; setting it twice to the same values is harmless.
	env := make(map[string]string, len(app.Env)+2)
	for k, v := range app.Env {
		env[k] = v
	}
	opts := strings.TrimSpace(app.NodeOptions)
	if opts != "" {
		// Node reads NODE_OPTIONS itself; checking the quoting here turns
		// a typo into one clear error instead of workers that cannot start.
		if _, err := SplitOptions(opts); err != nil {
			return nil, fmt.Errorf("nodeOptions: %w", err)
		}
	}
	base, ok := app.Env["NODE_OPTIONS"]
	if !ok {
		base = os.Getenv("NODE_OPTIONS")
	}
	heap := heapOptions(app, base, opts)
	if opts == "" && heap == "" {
		return env, nil
	}
	var parts []string
	for _, p := range []string{strings.TrimSpace(base), heap, opts} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	env["NODE_OPTIONS"] = strings.Join(parts, " ")
	return env, nil
}

// heapOptions are the heap flags of app (HeapOptions) that neither the
// inherited NODE_OPTIONS, nor nodeOptions, nor execArgv sets already:
// flags an operator wrote win over those derived from the health keys.
// V8 takes its flags with dashes or underscores alike.
func heapOptions(app capabilities.App, base, opts string) string {
	set := strings.ReplaceAll(base+" "+opts+" "+strings.Join(app.Watt.ExecArgv, " "), "_", "-")
	var out []string
	for _, f := range app.HeapOptions {
		name, _, _ := strings.Cut(f, "=")
		if !strings.Contains(set, name+"=") && !strings.Contains(set, name+" ") {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// appEntry returns the entry file of app: node.main when set (relative to
// the app directory, as Watt resolves it), else Entry.
func appEntry(app capabilities.App) (string, error) {
	if m := app.Watt.Main; m != "" {
		p := m
		if !filepath.IsAbs(p) {
			p = filepath.Join(app.Dir, filepath.FromSlash(m))
		}
		ok, err := isFile(p)
		if err != nil {
			return "", err
		}
		if !ok {
			// node.main is a key of the application's own file: the
			// configuration's report names it there.
			return "", &capabilities.KeyError{Key: "node.main", Err: &capabilities.EntryMissingError{Err: fmt.Errorf("node.main names %q, and %s is not a file", m, p)}}
		}
		return p, nil
	}
	return Entry(app.Dir)
}

// Binary returns the node executable: $WATTD_NODE when set, else node from
// PATH. Resolving it here, not at exec time, turns a missing Node.js into one
// clear error instead of a worker that fails to start over and over.
func Binary() (string, error) {
	return capabilities.FindTool(EnvNode, "node", "Node.js")
}

// Entry returns the absolute path of the app's entry file: the first
// package.json entry member that is set (see entryFields), else the first
// existing Candidates file.
func Entry(dir string) (string, error) {
	pkgPath := filepath.Join(dir, "package.json")
	raw, err := os.ReadFile(pkgPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// No package.json: a bare script directory, look for a candidate.
	case err != nil:
		return "", err
	default:
		var pkg map[string]any
		if err := json.Unmarshal(raw, &pkg); err != nil {
			// Node itself refuses to run code under an invalid package.json,
			// so say so now rather than guess an entry.
			return "", jsonErrorAt(pkgPath, raw, err)
		}
		if field, rel, ok := entryField(pkg); ok {
			p, err := resolveFile(dir, rel)
			if err != nil {
				hint := ""
				if scripts, _ := pkg["scripts"].(map[string]any); scripts != nil {
					if b, _ := scripts["build"].(string); b != "" {
						hint = " (the package has a build script, which may make it: run wattd build)"
					}
				}
				err = fmt.Errorf("%s: %q names %q: %w%s", pkgPath, field, rel, err, hint)
				if errors.Is(err, errNoSuchFile) {
					err = &capabilities.EntryMissingError{Err: err}
				}
				return "", err
			}
			return p, nil
		}
	}
	for _, name := range Candidates() {
		p := filepath.Join(dir, name)
		ok, err := isFile(p)
		if err != nil {
			return "", err
		}
		if ok {
			return p, nil
		}
	}
	return "", &capabilities.EntryMissingError{Err: fmt.Errorf("no entry file in %s: package.json has no \"main\" (or \"exports\") and none of %s exists",
		dir, strings.Join(Candidates(), ", "))}
}

// entryField returns the first entryFields member of pkg that is a string,
// with its dotted name for messages.
func entryField(pkg map[string]any) (name, value string, ok bool) {
	for _, path := range entryFields {
		var cur any = pkg
		for _, key := range path {
			m, isMap := cur.(map[string]any)
			if !isMap {
				cur = nil
				break
			}
			cur = m[key]
		}
		if s, isStr := cur.(string); isStr && s != "" {
			return strings.Join(path, "."), s, true
		}
	}
	return "", "", false
}

// resolveFile finds the file a package.json member means, the way Node's
// CommonJS resolver treats "main": the path itself, the path with a script
// extension, or an index file inside it.
func resolveFile(dir, rel string) (string, error) {
	base := filepath.Join(dir, filepath.FromSlash(rel))
	tries := []string{base}
	for _, e := range entryExts {
		tries = append(tries, base+e)
	}
	for _, e := range entryExts {
		tries = append(tries, filepath.Join(base, "index"+e))
	}
	for _, p := range tries {
		ok, err := isFile(p)
		if err != nil {
			return "", err
		}
		if ok {
			return p, nil
		}
	}
	return "", errNoSuchFile
}

// errNoSuchFile is resolveFile's answer when none of the files is there.
var errNoSuchFile = errors.New("no such file")

// errNotDir is what stat returns for a path through a regular file.
var errNotDir error = syscall.ENOTDIR

// isFile reports whether p exists and is a regular file (after symlinks). A
// missing file, or a path through something that is not a directory, is
// simply "no"; other errors (permissions) are reported.
func isFile(p string) (bool, error) {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
			return false, nil
		}
		return false, err
	}
	return st.Mode().IsRegular(), nil
}

// WritePreload makes sure the preload is present in runtimeDir and returns
// the path of its entry module. The directory is written once, atomically
// (see capabilities.WriteRuntimeDir), so concurrent worker starts never see
// a half-written preload; later calls find it and reuse it.
func WritePreload(runtimeDir string) (string, error) {
	dir, err := capabilities.WriteRuntimeDir(runtimeDir, preloadDirName(), preloadFiles())
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "index.cjs"), nil
}

// mustReadDir returns the files of an embedded directory by name; the
// embed pattern guarantees they exist, so a failure is a build defect.
func mustReadDir(fsys embed.FS, dir string) map[string][]byte {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		panic(err)
	}
	out := make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := fsys.ReadFile(dir + "/" + e.Name())
		if err != nil {
			panic(err)
		}
		out[e.Name()] = b
	}
	return out
}

// jsonErrorAt is a JSON file's decoding error, named by its file and, for
// a syntax error, the line and column as an editor counts them.
func jsonErrorAt(path string, raw []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: %w", path, err)
	}
	// Offset counts the bytes read, the wrong one included.
	before := raw[:min(max(int(se.Offset)-1, 0), len(raw))]
	line := 1 + bytes.Count(before, []byte("\n"))
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("%s:%d:%d: %w", path, line, col, err)
}
