package config

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// loader carries one Load through its stages.
type loader struct {
	file       string // absolute path of the configuration file
	dir        string // its directory
	projectDir string
	environ    map[string]string
	schemas    *schemaSet

	doc      *document
	warnings []issue  // about the configuration file
	foreign  []*Error // problems located in other files (dotenv files)
}

func (l *loader) load(data []byte) (*Config, error) {
	doc, syntax, problems := decodeJSON(data)
	if syntax != nil {
		return nil, &Error{File: l.file, Line: syntax.line, Column: syntax.col, Message: syntax.msg}
	}
	l.doc = doc
	root, ok := doc.root.(map[string]any)
	if !ok {
		return nil, l.fail([]issue{issuef("", "expected a JSON object at the top level, got %s", describeValue(doc.root))})
	}
	if capability := applicationConfigKind(root); capability != "" {
		return nil, l.fail([]issue{issuef("",
			`this is the configuration of a single %s application, not of a Watt runtime; wattd needs a runtime configuration listing "applications" or "autoload"`,
			capability)})
	}

	// Ignored options go first, so that nothing below trips over them.
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
	res := &resolver{mode: strictEnvMode(root["strictEnv"])}
	res.lookup = l.lookup(files, l.discoverIDs(root, files))
	var sub substitution
	res.substitute(root, "", &sub)
	problems = append(problems, sub.errors...)
	l.warnings = append(l.warnings, sub.warnings...)

	l.schemas.coerce(root, l.schemas.node("#"))
	for _, is := range l.schemas.validate(root) {
		if !sub.explains(is.ptr) {
			problems = append(problems, is)
		}
	}
	if len(problems) > 0 || len(l.foreign) > 0 {
		return nil, l.fail(problems)
	}

	raw, err := decodeRaw(root)
	if err != nil {
		return nil, l.fail([]issue{{msg: "cannot read the validated configuration: " + err.Error(), err: err}})
	}
	cfg, problems := l.build(raw, layered(raw.Env, envfile, dotenv))
	if len(problems) > 0 || len(l.foreign) > 0 {
		return nil, l.fail(problems)
	}
	cfg.Warnings = l.warningStrings()
	return cfg, nil
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
// looks next to the configuration first.
func (l *loader) projectDotenv() map[string]string {
	paths := []string{filepath.Join(l.dir, ".env")}
	if p := filepath.Join(l.projectDir, ".env"); p != paths[0] {
		paths = append(paths, p)
	}
	var layers []map[string]string
	for _, p := range paths {
		vars, err := readDotenv(p, false, "")
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
	vars, err := readDotenv(l.resolve(l.dir, expanded), true, "/envfile")
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
	if l.doc != nil {
		problems = l.doc.sortIssues(problems)
	}
	var list ErrorList
	for _, p := range problems {
		list = append(list, &Error{File: l.file, Pointer: p.ptr, Message: p.msg, Err: p.err})
	}
	list = append(list, l.foreign...)
	return list.asError()
}

func (l *loader) warningStrings() []string {
	warnings := l.doc.sortIssues(l.warnings)
	out := make([]string, 0, len(warnings))
	for _, w := range warnings {
		out = append(out, (&Error{File: l.file, Pointer: w.ptr, Message: w.msg}).Error())
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
