package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// An application may have its own configuration file in its directory
// (Watt's application model: a @platformatic/node watt.json with "node",
// "application", "logger", …). wattd reads the parts that shape how the
// application runs into Application.Watt and Application.Module, rejects
// a capability it does not provide with one error naming it, and warns
// once about each key it does not honour.

// moduleCapabilities maps the Watt capability packages wattd runs to the
// wattd capability that runs them.
var moduleCapabilities = map[string]string{
	"@platformatic/node": "node",
	"@platformatic/next": "next",
	"@platformatic/vite": "vite",
}

// unsupportedModules says, for Watt capabilities wattd does not provide,
// what to do instead; any other module not in moduleCapabilities gets the
// generic advice.
var unsupportedModules = map[string]string{
	"@platformatic/gateway":  `wattd has no gateway yet: give the public port to one application with "entrypoint" and reach the others on the mesh (http://<id>.plt.local)`,
	"@platformatic/composer": `wattd has no gateway (Watt 2's composer) yet: give the public port to one application with "entrypoint" and reach the others on the mesh (http://<id>.plt.local)`,
	"@platformatic/service":  `wattd does not build Platformatic services from their configuration; an application that starts its own server can run with "capability": "node" on its entry`,
	"@platformatic/db":       `wattd does not build Platformatic DB applications from their configuration`,
}

const genericUnsupported = `wattd runs node, next, vite, go and command applications; to run it as a plain program, set "capability": "command" and "command" on its entry`

// genericModules name no capability of their own: Watt then detects one.
var genericModules = []string{"", "@platformatic/basic", "@platformatic/runtime", "@platformatic/wattpm"}

// moduleOf returns the capability package a configuration names in
// "module" or "$schema", as Watt reads them, or "".
func moduleOf(root map[string]any) string {
	if m, ok := root["module"].(string); ok && m != "" {
		// A version may follow: "@platformatic/node@3.0.0".
		if i := strings.LastIndexByte(m, '@'); i > 0 {
			m = m[:i]
		}
		return m
	}
	s, _ := root["$schema"].(string)
	if m := platformaticSchema.FindStringSubmatch(s); m != nil {
		name := m[1] + m[2]
		if name == "wattpm" {
			return "@platformatic/runtime"
		}
		return "@platformatic/" + name
	}
	return ""
}

// packageName is the id Watt gives an application run alone: its
// package.json name without the scope, else "main".
func packageName(dir string) string {
	data, err := readRegular(filepath.Join(dir, "package.json"))
	if err != nil {
		return "main"
	}
	var pkg struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(data, &pkg) != nil || pkg.Name == "" {
		return "main"
	}
	if strings.HasPrefix(pkg.Name, "@") {
		if _, rest, ok := strings.Cut(pkg.Name, "/"); ok {
			return rest
		}
	}
	return pkg.Name
}

// runtimeOnlyKeys are the keys of an application's "runtime" block that do
// not carry over into the runtime Watt makes around it.
var runtimeOnlyKeys = []string{"$schema", "entrypoint", "applications", "application", "autoload", "services", "web", "resolvedApplicationsBasePath"}

// wrapSingleApp turns the configuration of one application into the
// runtime configuration Watt makes for it when it is started alone: that
// application as the entrypoint, with id its package name, the
// application's server settings, its logger (unless its "runtime" block
// has one) and its "runtime" block at the top.
func (l *loader) wrapSingleApp(app map[string]any) map[string]any {
	l.single = true
	l.lifts = map[string][]string{}
	id := packageName(l.dir)
	rt := map[string]any{}
	entry := map[string]any{}
	if r, ok := app["runtime"].(map[string]any); ok {
		for k, v := range r {
			if !slices.Contains(runtimeOnlyKeys, k) {
				rt[k] = v
				l.lifts[k] = []string{"runtime", k}
			}
		}
		if a, ok := r["application"].(map[string]any); ok {
			for k, v := range a {
				entry[k] = v
			}
			l.lifts["applications/0"] = []string{"runtime", "application"}
		}
	}
	if s, ok := app["server"].(map[string]any); ok {
		server := map[string]any{}
		for _, k := range []string{"hostname", "port", "http2", "https"} {
			if v, ok := s[k]; ok {
				server[k] = v
			}
		}
		if len(server) > 0 {
			rt["server"] = server
			l.lifts["server"] = []string{"server"}
		}
	}
	// The application's logger stays its own, as in Watt: its level
	// filters its structured lines, not the runtime's (wattd's own lines,
	// its plain output).
	entry["id"], entry["path"], entry["config"] = id, l.dir, l.file
	rt["entrypoint"] = id
	rt["applications"] = []any{entry}
	return rt
}

// sourcePointer is where a value of the runtime configuration made by
// wrapSingleApp is in the application's file: /gracefulShutdown/runtime
// is /runtime/gracefulShutdown/runtime there. Other pointers are returned
// as they are.
func sourcePointer(lifts map[string][]string, ptr string) string {
	segs := splitPointer(ptr)
	if lifts == nil || len(segs) == 0 {
		return ptr
	}
	if len(segs) > 1 && segs[0] == "applications" && segs[1] == "0" {
		if len(segs) > 2 && (segs[2] == "id" || segs[2] == "path" || segs[2] == "config") {
			return ptr // made by wrapSingleApp, not in the file
		}
		if to, ok := lifts["applications/0"]; ok {
			return pointerOf(append(slices.Clone(to), segs[2:]...))
		}
		return ptr
	}
	to, ok := lifts[segs[0]]
	switch {
	case ok:
	case segs[0] == "server", segs[0] == "entrypoint", segs[0] == "applications":
		return ptr
	default:
		// A setting the file does not have (a reload that removed it):
		// the runtime block is where it goes.
		to = []string{"runtime", segs[0]}
	}
	return pointerOf(append(slices.Clone(to), segs[1:]...))
}

// lifted tells whether ptr, in a single application's file, is one of the
// values made into runtime settings, whose problems the runtime pass has
// already reported.
func (l *loader) lifted(ptr string) bool {
	if !l.single {
		return false
	}
	segs := splitPointer(ptr)
	return len(segs) > 0 && (segs[0] == "server" || segs[0] == "runtime" || segs[0] == "logger")
}

// appFile is an application's own configuration file being read.
type appFile struct {
	l    *loader
	path string
	doc  *document
	app  string // the application id, for messages
	errs []*Error
	// keys maps the keys an AppCheck may name (capabilities.KeyError)
	// to their pointers in this file, for those the file set.
	keys map[string]string
}

func (f *appFile) fail(ptr, format string, args ...any) {
	f.errs = append(f.errs, &Error{File: f.path, Pointer: ptr, Line: f.doc.lineOf(ptr), Message: fmt.Sprintf(format, args...)})
}

func (f *appFile) warn(ptr, format string, args ...any) {
	f.l.foreignWarnings = append(f.l.foreignWarnings, &Error{File: f.path, Pointer: ptr, Line: f.doc.lineOf(ptr), Message: fmt.Sprintf(format, args...)})
}

// readAppConfig reads the application's own configuration file, if it
// has one, into app. It returns problems about the entry (a "config" that
// names no file) and whether the application cannot run, in which case
// the capability check is not run: its complaint would only repeat it.
func (l *loader) readAppConfig(e appEntry, app *Application) (problems []issue, blocked bool) {
	var path string
	if e.raw.Config != "" {
		path = l.resolve(e.path, e.raw.Config)
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return []issue{issuef(e.ptr+"/config", "file %s does not exist", path)}, true
			}
			return []issue{issuef(e.ptr+"/config", "cannot use %s: %v", path, unwrapPathError(err))}, true
		}
	} else {
		found, err := findConfigFile(e.path)
		if err != nil {
			return []issue{issuef(e.pathPtr, "%v", err)}, true
		}
		path = found
	}
	if path == "" || (path == l.file && !l.single) {
		// An application in the runtime's own directory would otherwise
		// read the runtime's file as its own.
		return nil, false
	}
	data, err := readRegular(path)
	if err != nil {
		l.foreign = append(l.foreign, &Error{File: path, Message: fmt.Sprintf("cannot read: %v", unwrapPathError(err)), Err: err})
		return nil, true
	}
	doc, syntax, dups := decodeFile(path, data)
	if syntax != nil {
		l.foreign = append(l.foreign, &Error{File: path, Line: syntax.line, Column: syntax.col, Message: syntax.msg})
		return nil, true
	}
	f := &appFile{l: l, path: path, doc: doc, app: app.ID, keys: map[string]string{}}
	if l.appFiles == nil {
		l.appFiles = map[string]*appFile{}
	}
	l.appFiles[app.ID] = f
	for _, d := range dups {
		f.fail(d.ptr, "%s", d.msg)
	}
	root, ok := doc.root.(map[string]any)
	if !ok {
		f.fail("", "expected an object at the top level, got %s", describeValue(doc.root))
		l.foreign = append(l.foreign, f.errs...)
		return nil, true
	}

	// Placeholders resolve as in the runtime file, the application's own
	// environment included.
	// {PLT_ROOT} is the directory of the file being read, as in Watt.
	lookup := l.lookup(app.Env, nil)
	res := &resolver{mode: l.mode, lookup: func(name string) (string, bool) {
		if name == "PLT_ROOT" {
			return filepath.Dir(path), true
		}
		return lookup(name)
	}}
	var sub substitution
	res.substitute(root, "", &sub)
	for _, is := range sub.errors {
		if !l.lifted(is.ptr) {
			f.fail(is.ptr, "%s", is.msg)
		}
	}
	for _, is := range sub.warnings {
		if !l.lifted(is.ptr) {
			f.warn(is.ptr, "%s", is.msg)
		}
	}

	app.Module = moduleOf(root)
	blocked = f.module(e, app, root)
	if !blocked {
		f.read(root, app)
	}
	l.foreign = append(l.foreign, f.errs...)
	// The file's own problems do not block the application's check: one
	// at a key the file set soundly (node.main naming no file) is listed
	// beside them (see loader.checkApp).
	return nil, blocked
}

// module checks the capability the file names and sets the application's
// capability from it when its entry names none.
func (f *appFile) module(e appEntry, app *Application, root map[string]any) bool {
	if slices.Contains(genericModules, app.Module) {
		return false
	}
	if c, ok := moduleCapabilities[app.Module]; ok {
		if app.Capability == "" {
			app.Capability = c
		}
		return false
	}
	if e.raw.Capability != "" {
		// The entry says how to run it; the module only documents it.
		return false
	}
	ptr := "/$schema"
	if _, ok := root["module"]; ok {
		ptr = "/module"
	}
	advice, ok := unsupportedModules[app.Module]
	if !ok {
		advice = genericUnsupported
	}
	f.fail(ptr, "application %q uses the Watt capability %s, which wattd does not provide; %s", app.ID, app.Module, advice)
	return true
}

// appKey is one key of an application's own file: honoured by read, or
// ignored with the reason.
type appKey struct {
	ignored string // why wattd ignores it; "" when read
}

// appKeys are the keys of Watt's application configuration
// (@platformatic/node's schema, the parts common to its capabilities)
// by location.
var appKeys = map[string]map[string]appKey{
	"": {
		"$schema": {}, "module": {}, "node": {}, "application": {}, "runtime": {},
		"logger": {},
		"server": {ignored: "the runtime's server settings apply; an application run alone takes its hostname and port"},
		"watch":  {},
	},
	"/watch": {"enabled": {}, "allow": {}, "ignore": {}},
	"/node": {
		"main": {}, "hasServer": {}, "absoluteUrl": {},
		"dispatchViaHttp":            {ignored: "requests between applications always go over the mesh sockets"},
		"disablePlatformaticInBuild": {ignored: "wattd build runs the build command without wattd's preload"},
		"disableBuildInDevelopment":  {ignored: "wattd dev never builds"},
	},
	"/application": {
		"basePath": {}, "commands": {},
		"outputDirectory":                {ignored: "wattd runs the application from its directory"},
		"include":                        {ignored: "wattd does not copy build output"},
		"changeDirectoryBeforeExecution": {ignored: "commands always run in the application directory"},
		"preferLocalCommands":            {ignored: "commands run through the shell with node_modules/.bin on PATH as npm scripts do"},
		"processSpawner":                 {ignored: "wattd starts commands itself"},
		"entrypointPort":                 {ignored: "wattd gives the entrypoint its socket"},
	},
	"/logger": {
		"level":     {},
		"redact":    {ignored: `the runtime's "logger.redact" applies to every application`},
		"transport": {ignored: appLoggerOutput}, "pipeline": {ignored: appLoggerOutput},
		"formatters": {ignored: appLoggerOutput}, "timestamp": {ignored: appLoggerOutput},
		"base": {ignored: appLoggerOutput}, "messageKey": {ignored: appLoggerOutput},
		"customLevels": {ignored: appLoggerOutput}, "openTelemetryExporter": {ignored: appLoggerOutput},
		"captureStdio": {ignored: "wattd always relays the worker's stdout and stderr"},
		"pino":         {ignored: appLoggerOutput},
	},
	"/application/commands": {
		"build": {}, "development": {}, "production": {},
		"install": {ignored: "wattd does not install dependencies"},
	},
}

const appLoggerOutput = "an application's log lines are pino's JSON lines, written by wattd with the runtime's settings"

// logLevels are the values of logger.level.
var logLevels = []string{"trace", "debug", "info", "warn", "error", "fatal", "silent"}

// strictModules are the capabilities whose whole schema is known: a key
// not in appKeys is an error there, as in Watt. Other capabilities' own
// keys (next, vite, …) are read by the capability itself or ignored.
var strictModules = []string{"@platformatic/node"}

func (f *appFile) read(root map[string]any, app *Application) {
	strict := slices.Contains(strictModules, app.Module)
	f.walkKeys(root, "", strict)

	if node, ok := f.object(root, "/node"); ok {
		if s, ok := f.str(node, "/node/main"); ok {
			app.Watt.Main = s
			f.keys["node.main"] = "/node/main"
		}
		if b, ok := f.boolean(node, "/node/hasServer"); ok {
			app.Watt.NoServer = !b
		}
		if b, ok := f.boolean(node, "/node/absoluteUrl"); ok {
			app.Watt.AbsoluteURL = b
		}
	}
	if a, ok := f.object(root, "/application"); ok {
		if s, ok := f.str(a, "/application/basePath"); ok {
			app.Watt.BasePath = s
		}
		if c, ok := f.object(a, "/application/commands"); ok {
			for key, dst := range map[string]*string{"build": &app.Watt.Commands.Build, "development": &app.Watt.Commands.Development, "production": &app.Watt.Commands.Production} {
				if s, ok := f.str(c, "/application/commands/"+key); ok {
					*dst = s
				}
			}
		}
	}
	if lg, ok := f.object(root, "/logger"); ok {
		if s, ok := f.str(lg, "/logger/level"); ok {
			if slices.Contains(logLevels, s) {
				app.LogLevel = s
			} else {
				f.fail("/logger/level", "unknown log level %q (want %s)", s, strings.Join(logLevels, ", "))
			}
		}
	}
	f.readWatch(root, app)
	if _, ok := root["runtime"]; ok && !f.l.single {
		f.warn("/runtime", "ignored: an application's \"runtime\" block applies only when the application is started alone; set these keys in the runtime's configuration %s", f.l.file)
	}
}

// readWatch reads the application's "watch": a boolean (or "true",
// "false"), or {enabled, allow, ignore} with lists of globs.
func (f *appFile) readWatch(root map[string]any, app *Application) {
	v, ok := root["watch"]
	if !ok {
		return
	}
	w, isObject := v.(map[string]any)
	if !isObject {
		w = map[string]any{"enabled": v}
	}
	if e, ok := w["enabled"]; ok {
		ptr := "/watch/enabled"
		if !isObject {
			ptr = "/watch"
		}
		on, ok := boolValue(e)
		if !ok {
			f.fail(ptr, "expected true or false, got %s", describeValue(e))
		}
		app.Watch.Off = !on
	}
	for key, dst := range map[string]*[]string{"allow": &app.Watch.Allow, "ignore": &app.Watch.Ignore} {
		ptr := "/watch/" + key
		v, ok := w[key]
		if !ok || v == nil {
			continue
		}
		list, isList := v.([]any)
		if !isList {
			f.fail(ptr, "expected a list of globs, got %s", describeValue(v))
			continue
		}
		for i, g := range list {
			s, isStr := g.(string)
			if !isStr || s == "" {
				f.fail(fmt.Sprintf("%s/%d", ptr, i), "expected a glob, got %s", describeValue(g))
				continue
			}
			*dst = append(*dst, s)
		}
	}
}

// walkKeys warns about each key wattd ignores and, where the schema is
// known, rejects unknown ones with a did-you-mean.
func (f *appFile) walkKeys(obj map[string]any, ptr string, strict bool) {
	known, ok := appKeys[ptr]
	if !ok {
		return
	}
	for _, k := range sortedKeys(obj) {
		kp := childPointer(ptr, k)
		spec, isKnown := known[k]
		if f.l.single && ptr == "" && (k == "server" || k == "runtime" || k == "logger") {
			continue // lifted into the runtime configuration
		}
		switch {
		case !isKnown && ptr == "/logger":
			// Watt hands any other key to pino.
			f.warn(kp, "key %q of the application's logger is not read by wattd; ignored", k)
		case !isKnown && (strict || ptr != ""):
			f.fail(kp, "%s", unknownKeyMessage(k, sortedKeys(known)))
		case !isKnown:
			f.warn(kp, "key %q of the application's configuration is not read by wattd; ignored", k)
		case spec.ignored != "":
			f.warn(kp, "Watt option %q is not supported by wattd; ignored: %s", k, spec.ignored)
		default:
			if child, ok := obj[k].(map[string]any); ok {
				f.walkKeys(child, kp, strict)
			}
		}
	}
}

func (f *appFile) object(parent map[string]any, ptr string) (map[string]any, bool) {
	segs := splitPointer(ptr)
	v, ok := parent[segs[len(segs)-1]]
	if !ok {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		f.fail(ptr, "expected an object, got %s", describeValue(v))
	}
	return m, ok
}

func (f *appFile) str(parent map[string]any, ptr string) (string, bool) {
	segs := splitPointer(ptr)
	v, ok := parent[segs[len(segs)-1]]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		f.fail(ptr, "expected a string, got %s", describeValue(v))
	}
	return s, ok
}

// boolean accepts "true" and "false" too: placeholders make strings, and
// Watt validates with type coercion.
func (f *appFile) boolean(parent map[string]any, ptr string) (bool, bool) {
	segs := splitPointer(ptr)
	v, ok := parent[segs[len(segs)-1]]
	if !ok {
		return false, false
	}
	if b, ok := boolValue(v); ok {
		return b, true
	}
	f.fail(ptr, "expected a boolean, got %s", describeValue(v))
	return false, false
}

// boolValue reads a boolean, or the strings "true" and "false" that
// placeholders make (Watt validates with type coercion).
func boolValue(v any) (b, ok bool) {
	switch c := v.(type) {
	case bool:
		return c, true
	case string:
		if t := strings.TrimSpace(c); t == "true" || t == "false" {
			return t == "true", true
		}
	}
	return false, false
}
