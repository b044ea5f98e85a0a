package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/capabilities/node"
	"github.com/wattd/wattd/supervisor/config"
)

// skippedDir is a folder init found and left out, with why.
type skippedDir struct{ dir, why string }

// serverDeps are packages whose presence says a Node.js package serves:
// frameworks and servers.
var serverDeps = []string{
	"next", "vite", "express", "fastify", "koa", "hapi", "@hapi/hapi", "@nestjs/core", "restify", "polka",
	"hono", "h3", "nuxt", "astro", "@remix-run/serve", "@react-router/serve", "@sveltejs/kit", "@adonisjs/core",
	"@platformatic/service", "@platformatic/node", "@platformatic/composer", "@platformatic/gateway",
}

// libraryFields are package.json members that a published library has and
// an application seldom does.
var libraryFields = []string{"types", "typings", "peerDependencies", "module"}

var (
	goMainPackage = regexp.MustCompile(`(?m)^package main\b`)
	serves        = regexp.MustCompile(`\.listen\(|createServer\(`)
)

// classify tells whether dir, which a capability recognised, is an
// application: "" when it is, else why it looks like something else (a
// library, a test suite). A doubt keeps it: wattd start then says what is
// wrong with it, while a folder left out is silently missing. A root
// (DIR itself, strict) is held to more: an entry its build would make
// does not count, as a monorepo's root often has a build script.
func classify(dir string, c capabilities.Capability, strict bool) string {
	if f, _ := config.Find(dir); f != "" {
		return "" // Watt's configuration of its own
	}
	switch c.ID() {
	case "go":
		return goClassify(dir)
	case node.ID:
		return nodeClassify(dir, strict)
	}
	return ""
}

func goClassify(dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if b, err := os.ReadFile(f); err == nil && goMainPackage.Match(b) {
			return ""
		}
	}
	return "no main package at its root (wattd builds the folder itself: a Go library, or a main package elsewhere?)"
}

func nodeClassify(dir string, strict bool) string {
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	var pkg map[string]any
	if err != nil || json.Unmarshal(raw, &pkg) != nil {
		return "" // no package.json (a bare script), or one start reports
	}
	scripts, _ := pkg["scripts"].(map[string]any)
	if s, _ := scripts["start"].(string); s != "" {
		return ""
	}
	for _, key := range []string{"dependencies", "devDependencies"} {
		deps, _ := pkg[key].(map[string]any)
		for _, d := range serverDeps {
			if _, ok := deps[d]; ok {
				return ""
			}
		}
	}
	entry, err := node.Entry(dir)
	if err != nil {
		var missing *capabilities.EntryMissingError
		if b, _ := scripts["build"].(string); errors.As(err, &missing) && (b == "" || strict) {
			return "nothing to start: no start script, and no entry file (\"main\", or index.js, server.js, …)"
		}
		return "" // made by its build, or broken: start says which
	}
	if b, err := os.ReadFile(entry); err == nil && serves.Match(b) {
		return ""
	}
	for _, f := range libraryFields {
		if _, ok := pkg[f]; ok {
			return fmt.Sprintf("looks like a library: package.json has %q, and no start script, server framework or listen()", f)
		}
	}
	return ""
}

// scanApps lists the sub-directories of dir that a capability recognises
// and that look like applications, skipping hidden folders and
// node_modules; those recognised that look like something else come back
// as skipped.
func scanApps(dir string) (apps []foundApp, skipped []skippedDir) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") || name == "node_modules" {
			continue
		}
		if a, why, ok := examine(filepath.Join(dir, name), false); ok && why == "" {
			apps = append(apps, a)
		} else if ok {
			skipped = append(skipped, skippedDir{a.dir, why})
		}
	}
	return apps, skipped
}

// examine looks at one folder: ok when a capability recognises it, with
// why it is not an application when it does not look like one (see
// classify for strict).
func examine(dir string, strict bool) (a foundApp, why string, ok bool) {
	if !hasAny(dir, "package.json", "go.mod") {
		return a, "", false
	}
	c, err := capabilities.Detect(dir)
	if err != nil {
		return a, "", false
	}
	return foundApp{id: appID(filepath.Base(dir)), dir: dir, capability: c.ID()}, classify(dir, c, strict), true
}

// workspaceFolders returns the folders DIR's npm, Yarn or pnpm workspaces
// name (package.json's "workspaces", as a list or as {"packages": […]},
// or pnpm-workspace.yaml's "packages"), in order, and whether DIR declares
// workspaces at all. A glob's "**" counts as "*": workspaces are seldom
// deeper than one level.
func workspaceFolders(dir string) ([]string, bool) {
	var globs []string
	declared := false
	if raw, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil {
		var pkg struct {
			Workspaces json.RawMessage `json:"workspaces"`
		}
		if json.Unmarshal(raw, &pkg) == nil && len(pkg.Workspaces) > 0 && string(pkg.Workspaces) != "null" {
			declared = true
			var list []string
			var obj struct {
				Packages []string `json:"packages"`
			}
			if json.Unmarshal(pkg.Workspaces, &list) == nil {
				globs = append(globs, list...)
			} else if json.Unmarshal(pkg.Workspaces, &obj) == nil {
				globs = append(globs, obj.Packages...)
			}
		}
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "pnpm-workspace.yaml")); err == nil {
		declared = true
		var ws struct {
			Packages []string `yaml:"packages"`
		}
		if yaml.Unmarshal(raw, &ws) == nil {
			globs = append(globs, ws.Packages...)
		}
	}
	var out, excluded []string
	for _, g := range globs {
		neg := strings.HasPrefix(g, "!")
		g = strings.TrimPrefix(strings.TrimPrefix(g, "!"), "./")
		g = strings.ReplaceAll(g, "**", "*")
		matches, _ := filepath.Glob(filepath.Join(dir, filepath.FromSlash(g)))
		for _, m := range matches {
			if fi, err := os.Stat(m); err != nil || !fi.IsDir() || strings.Contains(m, string(filepath.Separator)+"node_modules") {
				continue
			}
			if neg {
				excluded = append(excluded, m)
			} else if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	out = slices.DeleteFunc(out, func(m string) bool { return slices.Contains(excluded, m) })
	slices.Sort(out)
	return out, declared
}
