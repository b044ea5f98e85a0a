package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// loader carries one Load through its stages.
type loader struct {
	file       string // absolute path of the configuration file
	dir        string // its directory
	projectDir string
	environ    map[string]string
	schemas    *schemaSet

	check       AppCheck // optional, run on every enabled application
	environment string   // "production", "development" or ""
	strictEnv   bool     // an unset placeholder is an error whatever the file says
	envFile     string   // Options.EnvFile
	mode        envMode  // what an unset placeholder does in this load
	sources     []string // see Config.Sources

	// runtimePreload and sourceMaps are the runtime-level values every
	// application starts from.
	runtimePreload []string
	// vertical is Watt's verticalScaler block, whose per-application
	// entries each application's Scale reads.
	vertical   *rawVertical
	sourceMaps *bool
	// compileCache is the runtime's compileCache key.
	compileCache compileCache
	// single is set when the file is one application's own configuration,
	// run alone.
	single bool
	// lifts maps the top-level keys of the runtime configuration made
	// for a single application's file to where they came from in it
	// (see sourcePointer).
	lifts map[string][]string

	doc      *document
	warnings []issue  // about the configuration file
	foreign  []*Error // problems located in other files (dotenv files, applications' own configs)
	// foreignWarnings are warnings about other files.
	foreignWarnings []*Error
	// rejected holds the pointers of values set aside because the schema
	// or a placeholder rejected them (see setAside).
	rejected []string
	// durationProblems are the durations too long to hold (see duration).
	durationProblems []issue
	// appFiles are the applications' own files read, by application id.
	appFiles map[string]*appFile
}

func (l *loader) load(data []byte) (*Config, error) {
	doc, syntax, problems := decodeFile(l.file, data)
	if syntax != nil {
		return nil, &Error{File: l.file, Line: syntax.line, Column: syntax.col, Message: syntax.msg}
	}
	l.doc = doc
	root, ok := doc.root.(map[string]any)
	if !ok {
		return nil, l.fail([]issue{issuef("", "expected a JSON object at the top level, got %s", describeValue(doc.root))})
	}
	if capability := applicationConfigKind(root); capability != "" {
		root = l.wrapSingleApp(root)
	}

	// Old names and ignored options go first, so that nothing below trips
	// over them.
	l.warnings = append(l.warnings, upgradeOldNames(root)...)
	l.warnings = append(l.warnings, stripWattOnly(root, nil)...)
	l.warnings = append(l.warnings, aliasWarnings(root)...)

	dotenv := l.projectDotenv()
	envfile, envfileProblems := l.runtimeEnvfile(root, dotenv)
	problems = append(problems, envfileProblems...)
	if len(l.foreign) > 0 {
		// With a dotenv file unreadable, every placeholder it should have
		// answered would be reported as unset too; stop at the real cause.
		return nil, l.fail(problems)
	}

	files := layered(envfile, dotenv)
	l.mode = strictEnvMode(root["strictEnv"])
	if l.strictEnv {
		l.mode = envStrict
	}
	res := &resolver{mode: l.mode}
	res.lookup = l.lookup(files, l.discoverIDs(root, files))
	var sub substitution
	res.substitute(root, "", &sub)
	problems = append(problems, sub.errors...)
	l.warnings = append(l.warnings, sub.warnings...)
	l.warnings = append(l.warnings, unsetServerPort(root, sub.unset)...)
	problems = append(problems, unsetCredentials(sub.unset)...)

	l.schemas.coerce(root, l.schemas.node("#"))
	for _, is := range l.lenientUnknownKeys(root, l.schemas.validate(root)) {
		if !sub.explains(is.ptr) {
			problems = append(problems, is)
		}
	}

	// The checks the schema cannot express run even when it found
	// problems, so that one report lists everything: on the tree without
	// the values found wrong, whose echoes are then dropped.
	if !l.setAside(root, problems, sub.failed) {
		return nil, l.fail(maskSecrets(annotate(problems, sub.from, sub.unset), sub.secrets))
	}
	// The tree as it stands now, for those who ask what watt.json said
	// (Watt's management API): placeholders replaced, Watt's ignored
	// keys gone.
	resolved, _ := json.Marshal(root)
	raw, err := decodeRaw(root)
	if err != nil {
		if len(problems) > 0 {
			return nil, l.fail(maskSecrets(annotate(problems, sub.from, sub.unset), sub.secrets))
		}
		return nil, l.fail([]issue{{msg: "cannot read the validated configuration: " + err.Error(), err: err}})
	}
	cfg, more := l.build(raw, l.runtimeEnv(raw.Env, layered(envfile, dotenv)))
	problems = append(problems, l.unechoed(more)...)
	if len(problems) > 0 || len(l.foreign) > 0 {
		return nil, l.fail(maskSecrets(annotate(problems, sub.from, sub.unset), sub.secrets))
	}
	l.warnings = maskSecrets(l.warnings, sub.secrets)
	cfg.Warnings = l.warningStrings()
	cfg.Resolved = resolved
	cfg.Sources = append([]string{l.file}, l.sources...)
	cfg.lifts = l.lifts
	cfg.lines = doc.lines
	return cfg, nil
}

// unsetServerPort drops /server/port when it is only unset placeholders
// ("{PLT_SERVER_PORT}" in a project whose .env is not there, as in a fresh
// clone of a generated one): Watt then starts and the entrypoint listens
// where it asks, so the port is taken as not written ($PORT, else 3042)
// instead of failing the start as "". An empty hostname needs nothing: ""
// is every interface, as in Watt.
func unsetServerPort(root map[string]any, unset map[string][]string) []issue {
	server, _ := root["server"].(map[string]any)
	names := unset["/server/port"]
	if server == nil || len(names) == 0 {
		return nil
	}
	if v, ok := server["port"].(string); !ok || strings.TrimSpace(v) != "" {
		return nil
	}
	delete(server, "port")
	return []issue{issuef("/server/port", "empty (%s not set); the port is taken as not written: $PORT, else %d", strings.Join(names, ", "), DefaultPort)}
}

// unsetCredentials refuses credentials made from a variable that is not
// set: an empty metrics password would let anyone read the metrics with
// any user name, where the file asked for a password.
func unsetCredentials(unset map[string][]string) []issue {
	var out []issue
	for _, ptr := range []string{"/metrics/auth/username", "/metrics/auth/password"} {
		if len(unset[ptr]) > 0 { // annotate names the variables
			is := issuef(ptr, "empty: a credential cannot be left empty by a variable that is not set")
			is.rejects = ptr
			out = append(out, is)
		}
	}
	return out
}

// setAside removes from the tree every value a problem rejects (an array
// element becomes null, keeping its siblings' indexes) and remembers
// where. It reports false when the whole tree is rejected, leaving
// nothing to check further.
func (l *loader) setAside(root map[string]any, problems []issue, failed map[string]bool) bool {
	ptrs := slices.Sorted(maps.Keys(failed))
	for _, p := range problems {
		if p.rejects != "" {
			ptrs = append(ptrs, p.rejects)
		}
	}
	if slices.Contains(ptrs, "") {
		return false
	}
	// Deepest first, so removing a parent cannot strand a child pointer.
	slices.SortFunc(ptrs, func(a, b string) int { return len(splitPointer(b)) - len(splitPointer(a)) })
	for _, ptr := range ptrs {
		segs := splitPointer(ptr)
		parent, ok := valueAt(root, pointerOf(segs[:len(segs)-1]))
		if !ok {
			continue
		}
		last := segs[len(segs)-1]
		switch c := parent.(type) {
		case map[string]any:
			delete(c, last)
		case []any:
			if i, err := strconv.Atoi(last); err == nil && i >= 0 && i < len(c) {
				c[i] = nil
			}
		}
	}
	l.rejected = append(l.rejected, ptrs...)
	return true
}

// unechoed drops the problems that only repeat a rejected value: one at
// or below it, and, when an application list, an application's id, the
// autoload block or the entrypoint was rejected, the problems about the
// entrypoint and the set of applications, which could not be judged.
func (l *loader) unechoed(problems []issue) []issue {
	var out []issue
	for _, p := range problems {
		if !l.echoes(p.ptr) {
			out = append(out, p)
		}
	}
	return out
}

// appSetPointer matches what determines the set of application ids.
var appSetPointer = regexp.MustCompile(`^/(entrypoint|autoload)(/|$)|^/(applications|services|web)(/[0-9]+(/id)?)?$`)

func (l *loader) echoes(ptr string) bool {
	for _, r := range l.rejected {
		if ptr == r || strings.HasPrefix(ptr, r+"/") {
			return true
		}
		if (ptr == "" || ptr == "/entrypoint") && appSetPointer.MatchString(r) {
			return true
		}
	}
	return false
}

// annotate names the variables a value came from in the problems about
// it: "got 99999" alone would not tell where 99999 was written.
func annotate(problems []issue, from, unset map[string][]string) []issue {
	for i, p := range problems {
		if names := unset[p.ptr]; len(names) > 0 {
			problems[i].msg += fmt.Sprintf(" (%s not set)", strings.Join(names, ", "))
			continue
		}
		names := from[p.ptr]
		if len(names) == 0 || strings.HasPrefix(p.msg, "environment variable ") {
			continue
		}
		if len(names) == 1 {
			problems[i].msg += fmt.Sprintf(" (the value of %s)", names[0])
		} else {
			problems[i].msg += fmt.Sprintf(" (made from %s)", strings.Join(names, ", "))
		}
	}
	return problems
}

// explains tells whether a schema complaint about ptr is just the echo of
// a placeholder that could not be resolved there.
func (s *substitution) explains(ptr string) bool {
	for p := range s.failed {
		if ptr == p || strings.HasPrefix(ptr, p+"/") {
			return true
		}
	}
	return false
}

// projectDotenv reads the .env next to the configuration file and the one
// in the project directory when that differs, the former winning, as Watt
// looks next to the configuration first; or, when the command line names
// one (Options.EnvFile), that file alone.
func (l *loader) projectDotenv() map[string]string {
	if l.envFile != "" {
		// Given on the command line, it stands in for both.
		p := l.resolve(l.projectDir, l.envFile)
		l.sources = append(l.sources, p)
		vars, warns, err := readDotenv(p, true, "")
		l.foreignWarnings = append(l.foreignWarnings, warns...)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				err = &Error{File: p, Message: "no such env file (given with --env)", Err: fs.ErrNotExist}
			}
			l.foreign = append(l.foreign, err)
		}
		return vars
	}
	paths := []string{filepath.Join(l.dir, ".env")}
	if p := filepath.Join(l.projectDir, ".env"); p != paths[0] {
		paths = append(paths, p)
	}
	l.sources = append(l.sources, paths...)
	var layers []map[string]string
	for _, p := range paths {
		vars, warns, err := readDotenv(p, false, "")
		l.foreignWarnings = append(l.foreignWarnings, warns...)
		if err != nil {
			l.foreign = append(l.foreign, err)
			continue
		}
		layers = append(layers, vars)
	}
	return layered(layers...)
}

// runtimeEnvfile reads the top-level envfile. Its own value may use
// placeholders, resolved from the process environment and the .env files
// only, since the envfile cannot define the variables naming itself.
func (l *loader) runtimeEnvfile(root map[string]any, dotenv map[string]string) (map[string]string, []issue) {
	name, ok := root["envfile"].(string)
	if !ok || name == "" {
		return nil, nil
	}
	res := &resolver{lookup: l.lookup(dotenv, nil), mode: envStrict}
	expanded, missing := res.expand(name)
	if len(missing) > 0 {
		// Reported by the main substitution pass, which sees this value too.
		return nil, nil
	}
	l.sources = append(l.sources, l.resolve(l.dir, expanded))
	vars, warns, err := readDotenv(l.resolve(l.dir, expanded), true, "/envfile")
	l.foreignWarnings = append(l.foreignWarnings, warns...)
	if err != nil {
		return nil, l.absorb(err)
	}
	return vars, nil
}

// absorb files an error from a dotenv read: one that points into the
// configuration becomes an issue, one in the dotenv file stays foreign.
func (l *loader) absorb(err *Error) []issue {
	if err.File == "" {
		return []issue{{ptr: err.Pointer, msg: err.Message, err: err.Err}}
	}
	l.foreign = append(l.foreign, err)
	return nil
}

// lookup resolves a placeholder name: PLT_ROOT is always the configuration
// directory (Watt sets it over any inherited value), then the process
// environment wins over the dotenv files as with dotenv itself, and last
// PLT_<ID>_URL falls back to the mesh URL of application <id>, as in Watt.
func (l *loader) lookup(files map[string]string, ids []string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if name == "PLT_ROOT" {
			return l.dir, true
		}
		if v, ok := l.environ[name]; ok {
			return v, true
		}
		if v, ok := files[name]; ok {
			return v, true
		}
		for _, id := range ids {
			if topologyVariable(id) == name {
				return meshURL(id), true
			}
		}
		return "", false
	}
}

// discoverIDs makes a best-effort list of the application ids before
// placeholders are resolved for real, so that {PLT_<ID>_URL} can fall back
// to the mesh URL. It works on a copy, resolved leniently, and ignores
// every error: the real passes report them.
func (l *loader) discoverIDs(root map[string]any, files map[string]string) []string {
	tree := deepCopy(root).(map[string]any)
	res := &resolver{lookup: l.lookup(files, nil), mode: envLenient}
	res.substitute(tree, "", &substitution{})
	var ids []string
	for _, key := range []string{"applications", "services", "web"} {
		list, _ := tree[key].([]any)
		for _, entry := range list {
			if m, ok := entry.(map[string]any); ok {
				if id, ok := m["id"].(string); ok {
					ids = append(ids, id)
				}
			}
		}
	}
	auto, _ := tree["autoload"].(map[string]any)
	path, _ := auto["path"].(string)
	if path == "" {
		return ids
	}
	var exclude []string
	list, _ := auto["exclude"].([]any)
	for _, x := range list {
		if s, ok := x.(string); ok {
			exclude = append(exclude, s)
		}
	}
	mappings, _ := auto["mappings"].(map[string]any)
	names, _ := autoloadDirs(l.resolve(l.dir, path), exclude)
	for _, name := range names {
		id := name
		if m, ok := mappings[name].(map[string]any); ok {
			if s, ok := m["id"].(string); ok {
				id = s
			}
		}
		ids = append(ids, id)
	}
	return ids
}

// resolve makes p absolute against base.
func (l *loader) resolve(base, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// fail turns the issues into the error Load returns, in document order,
// followed by problems found in other files.
func (l *loader) fail(problems []issue) error {
	for i := range problems {
		problems[i].ptr = sourcePointer(l.lifts, problems[i].ptr)
	}
	if l.doc != nil {
		problems = l.doc.sortIssues(problems)
	}
	var list ErrorList
	for _, p := range problems {
		list = append(list, &Error{File: l.file, Pointer: p.ptr, Line: l.doc.lineOf(p.ptr), Message: p.msg, Err: p.err})
	}
	list = append(list, l.foreign...)
	return list.asError()
}

func (l *loader) warningStrings() []string {
	warnings := slices.Clone(l.warnings)
	for i := range warnings {
		warnings[i].ptr = sourcePointer(l.lifts, warnings[i].ptr)
	}
	warnings = l.doc.sortIssues(warnings)
	out := make([]string, 0, len(warnings))
	for _, w := range warnings {
		out = append(out, (&Error{File: l.file, Pointer: w.ptr, Line: l.doc.lineOf(w.ptr), Message: w.msg}).Error())
	}
	for _, w := range l.foreignWarnings {
		// A single application's file is read both as the runtime's and
		// as the application's: say each thing once.
		if msg := w.Error(); !slices.Contains(out, msg) {
			out = append(out, msg)
		}
	}
	return out
}

// layered merges variable sets, the first one winning.
func layered(layers ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, layer := range slices.Backward(layers) {
		maps.Copy(out, layer)
	}
	return out
}

// runtimeEnv is the environment every application gets from the runtime:
// the env block over the dotenv files' values. As in Watt, a dotenv file
// only gives defaults: a variable of the process environment is never
// overridden by one (the env blocks do override it). In production and
// development it also carries NODE_ENV, unless set anywhere, and Watt's
// PLT_ENVIRONMENT and PLT_DEV.
func (l *loader) runtimeEnv(block, files map[string]string) map[string]string {
	env := layered(block, l.withoutProcessEnv(files))
	nodeEnv, plt := environmentVariables(l.environment)
	if nodeEnv != "" {
		if _, set := l.environ["NODE_ENV"]; !set {
			if _, set := env["NODE_ENV"]; !set {
				env["NODE_ENV"] = nodeEnv
			}
		}
	}
	for k, v := range plt {
		env[k] = v
	}
	return env
}

// withoutProcessEnv drops the variables the process environment sets.
func (l *loader) withoutProcessEnv(vars map[string]string) map[string]string {
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		if _, set := l.environ[k]; !set {
			out[k] = v
		}
	}
	return out
}
