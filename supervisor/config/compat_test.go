package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Watt's published JSON schemas are not copied into the repository: `make
// deps` fetches the packages from npm into .cache/watt-schema (see the
// Makefile), and these tests read them there. They skip when the files
// are absent, unless WATTD_REQUIRE_SCHEMA is set, as `make test` does.

// wattSchemaDir is where `make deps` puts the schemas.
const wattSchemaDir = "../../.cache/watt-schema"

// Runtime schemas are whole watt.json files; application schemas are an
// application's own watt.json (@platformatic/node, @platformatic/next).
var (
	runtimeSchemas     = []string{"runtime-3.67.0.json", "runtime-2.75.2.json"}
	applicationSchemas = []string{"node-3.65.0.json", "node-2.75.2.json", "next-3.54.0.json"}
)

// schemaKey is one key of a schema: where a reader finds it (with * for
// any array element or map key) and a concrete instance location.
type schemaKey struct {
	path     string // /applications/*/health/maxELU
	instance []string
}

func readWattSchema(t *testing.T, name string) any {
	t.Helper()
	path := filepath.Join(wattSchemaDir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("WATTD_REQUIRE_SCHEMA") != "" {
			t.Fatalf("Watt's schema %s is required (WATTD_REQUIRE_SCHEMA is set): %v; run make deps", path, err)
		}
		t.Skipf("Watt's schema %s is absent (run make deps to fetch it from npm): %v", path, err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// schemaKeys lists every property a JSON schema defines, at every
// nesting level: through $ref, anyOf/oneOf/allOf, if/then/else, array
// items and maps (additionalProperties, patternProperties).
func schemaKeys(root any) []schemaKey {
	seen := map[string]schemaKey{}
	var walk func(n any, path string, inst []string, depth int)
	walk = func(n any, path string, inst []string, depth int) {
		m, ok := n.(map[string]any)
		if !ok || depth > 40 {
			return
		}
		if ref, ok := m["$ref"].(string); ok && strings.HasPrefix(ref, "#") && depth < 20 {
			var target any = root
			for _, seg := range splitPointer(strings.TrimPrefix(ref, "#")) {
				if tm, ok := target.(map[string]any); ok {
					target = tm[seg]
				}
			}
			walk(target, path, inst, depth+1)
		}
		for _, k := range []string{"anyOf", "oneOf", "allOf"} {
			list, _ := m[k].([]any)
			for _, b := range list {
				walk(b, path, inst, depth+1)
			}
		}
		for _, k := range []string{"then", "else"} {
			walk(m[k], path, inst, depth+1)
		}
		props, _ := m["properties"].(map[string]any)
		for _, k := range sortedKeys(props) {
			p := path + "/" + k
			i := append(slices.Clone(inst), k)
			if _, ok := seen[p]; !ok {
				seen[p] = schemaKey{path: p, instance: i}
			}
			walk(props[k], p, i, depth+1)
		}
		if pp, ok := m["patternProperties"].(map[string]any); ok {
			for _, k := range sortedKeys(pp) {
				walk(pp[k], path+"/*", append(slices.Clone(inst), "x"), depth+1)
			}
		}
		if ap, ok := m["additionalProperties"].(map[string]any); ok {
			walk(ap, path+"/*", append(slices.Clone(inst), "x"), depth+1)
		}
		switch it := m["items"].(type) {
		case map[string]any:
			walk(it, path+"/*", append(slices.Clone(inst), "0"), depth+1)
		case []any:
			for _, x := range it {
				walk(x, path+"/*", append(slices.Clone(inst), "0"), depth+1)
			}
		}
	}
	walk(root, "", nil, 0)
	keys := make([]schemaKey, 0, len(seen))
	for _, p := range sortedKeys(seen) {
		keys = append(keys, seen[p])
	}
	return keys
}

// docPath is the row a schema key has in docs/watt-compat.md. Entries of
// "services" and "web" have the keys of "applications"; an application's
// own "runtime" block has the runtime's keys, its "application" those of
// an entry; the application's other keys are written app:/key.
func docPath(path string, application bool) string {
	if application {
		switch {
		case path == "/runtime/application" || strings.HasPrefix(path, "/runtime/application/"):
			path = "/applications/*" + strings.TrimPrefix(path, "/runtime/application")
		case strings.HasPrefix(path, "/runtime/"):
			path = strings.TrimPrefix(path, "/runtime")
		default:
			return "app:" + path
		}
	}
	for _, alias := range []string{"/services/*", "/web/*"} {
		if rest, ok := strings.CutPrefix(path, alias); ok {
			return "/applications/*" + rest
		}
	}
	return path
}

var docRow = regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")

// TestWattCompatDocListsEveryKey: every key of Watt's published schemas,
// 2.x and 3.x, runtime and application, has a row in docs/watt-compat.md.
func TestWattCompatDocListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/watt-compat.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range docRow.FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = true
	}
	check := func(names []string, application bool) {
		for _, name := range names {
			var missing []string
			for _, k := range schemaKeys(readWattSchema(t, name)) {
				if p := docPath(k.path, application); !rows[p] && !slices.Contains(missing, p) {
					missing = append(missing, p)
				}
			}
			if len(missing) > 0 {
				t.Errorf("%s: %d keys have no row in docs/watt-compat.md:\n%s", name, len(missing), strings.Join(missing, "\n"))
			}
		}
	}
	check(runtimeSchemas, false)
	check(applicationSchemas, true)
}

// TestEveryWattRuntimeKeyLoads: each key of Watt's runtime schemas, set
// alone in a watt.json, is never an "unknown key": wattd honours it or
// warns about it. Values are placeholders of the wrong type on purpose;
// only unknown keys are looked for.
func TestEveryWattRuntimeKeyLoads(t *testing.T) {
	for _, name := range runtimeSchemas {
		keys := schemaKeys(readWattSchema(t, name))
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			tree := map[string]any{}
			setInstance(tree, k.instance, "x")
			for _, list := range []string{"applications", "services", "web"} {
				if entries, ok := tree[list].([]any); ok {
					if e, ok := entries[0].(map[string]any); ok {
						e["id"], e["path"] = "a", "a"
					}
				}
			}
			if _, ok := tree["applications"]; !ok {
				tree["applications"] = []any{map[string]any{"id": "a", "path": "a"}}
			}
			data, _ := json.Marshal(tree)
			if err := os.WriteFile(filepath.Join(dir, "watt.json"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, m := range unknownKeyProblems(dir) {
				t.Errorf("%s: %s: %s", name, k.path, m)
			}
		}
	}
}

// setInstance creates the value at inst, "0" segments being arrays.
func setInstance(tree map[string]any, inst []string, leaf any) {
	var cur any = tree
	for i, seg := range inst {
		last := i == len(inst)-1
		var next any = leaf
		if !last {
			if inst[i+1] == "0" {
				next = []any{nil}
			} else {
				next = map[string]any{}
			}
		}
		switch c := cur.(type) {
		case map[string]any:
			if existing, ok := c[seg]; ok && !last {
				next = existing
			} else {
				c[seg] = next
			}
		case []any:
			if c[0] != nil && !last {
				next = c[0]
			} else {
				c[0] = next
			}
		}
		cur = next
	}
}

// TestEveryWattApplicationKeyLoads: each key of Watt's application
// schemas, set alone in an application's own watt.json, is never an
// "unknown key", in a runtime or when the application runs alone.
func TestEveryWattApplicationKeyLoads(t *testing.T) {
	for _, name := range applicationSchemas {
		schema := readWattSchema(t, name)
		module := "@platformatic/" + strings.SplitN(name, "-", 2)[0]
		for _, single := range []bool{false, true} {
			dir := t.TempDir()
			appDir := filepath.Join(dir, "a")
			if single {
				appDir = dir
			} else if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(`{"applications": [{"id": "a", "path": "a"}]}`), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(appDir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, k := range schemaKeys(schema) {
				tree := map[string]any{}
				setInstance(tree, k.instance, "x")
				tree["module"] = module
				data, _ := json.Marshal(tree)
				if err := os.WriteFile(filepath.Join(appDir, "watt.json"), data, 0o600); err != nil {
					t.Fatal(err)
				}
				for _, m := range unknownKeyProblems(dir) {
					t.Errorf("%s (alone: %v): %s: %s", name, single, k.path, m)
				}
			}
		}
	}
}

// globalsPackage is @platformatic/globals as npm installs it for the
// runtime API fixture (make deps).
const globalsPackage = "../../testdata/apps/globals/node_modules/@platformatic/globals/lib/index.js"

// TestWattCompatDocListsEveryRuntimeAPI: every field of
// globalThis.platformatic that the published @platformatic/globals reads
// has a row in the runtime API table.
func TestWattCompatDocListsEveryRuntimeAPI(t *testing.T) {
	src, err := os.ReadFile(globalsPackage)
	if err != nil {
		if os.Getenv("WATTD_REQUIRE_SCHEMA") != "" {
			t.Fatalf("%s is required (WATTD_REQUIRE_SCHEMA is set): %v; run make deps", globalsPackage, err)
		}
		t.Skipf("%s is absent (run make deps): %v", globalsPackage, err)
	}
	doc, err := os.ReadFile("../../docs/watt-compat.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	start := strings.Index(section, "## Runtime APIs")
	if start < 0 {
		t.Fatal("docs/watt-compat.md has no Runtime APIs section")
	}
	section = section[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	fields := regexp.MustCompile(`getField\('([A-Za-z]+)'`).FindAllStringSubmatch(string(src), -1)
	if len(fields) < 30 {
		t.Fatalf("found %d fields in %s; has the package changed shape?", len(fields), globalsPackage)
	}
	// The first cell of each row names the APIs it is about, each in
	// backquotes: `name`, `name(args)` or `name.method(...)`.
	named := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(line, "|") {
			continue
		}
		for _, m := range regexp.MustCompile("`([A-Za-z]+)[`(.]").FindAllStringSubmatch(cells[1], -1) {
			named[m[1]] = true
		}
	}
	for _, f := range fields {
		if !named[f[1]] {
			t.Errorf("docs/watt-compat.md: the Runtime APIs table has no row for %s", f[1])
		}
	}
}

// unknownKeyProblems loads the project in dir and returns its errors and
// warnings that call a key unknown.
func unknownKeyProblems(dir string) []string {
	cfg, err := Load(dir, "", nil)
	msgs := []string{}
	if err != nil {
		msgs = strings.Split(err.Error(), "\n")
	} else {
		msgs = cfg.Warnings
	}
	var out []string
	for _, m := range msgs {
		if strings.Contains(m, "unknown key") {
			out = append(out, m)
		}
	}
	return out
}
