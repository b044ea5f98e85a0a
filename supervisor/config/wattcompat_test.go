package config

import (
	"errors"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/capabilities"
)

// loadProject writes files into a temporary project and loads it.
func loadWattProject(t *testing.T, files map[string]string, opts Options) (*Config, string, error) {
	t.Helper()
	dir := writeProject(t, files)
	opts.Dir = dir
	c, err := LoadWith(opts)
	return c, dir, err
}

func hasWarning(c *Config, parts ...string) bool {
	return slices.ContainsFunc(c.Warnings, func(w string) bool {
		for _, p := range parts {
			if !strings.Contains(w, p) {
				return false
			}
		}
		return true
	})
}

func TestYAMLAndTOMLReadLikeJSON(t *testing.T) {
	want := func(t *testing.T, c *Config) {
		t.Helper()
		if c.Entrypoint != "web" || c.Server.Port != 4000 || c.Workers != 2 || len(c.Applications) != 1 {
			t.Fatalf("got entrypoint %q port %d workers %d apps %d", c.Entrypoint, c.Server.Port, c.Workers, len(c.Applications))
		}
		if got := c.Applications[0].Env["GREETING"]; got != "hi" {
			t.Errorf("env GREETING=%q", got)
		}
	}
	t.Run("yaml, placeholder unquoted as Watt allows", func(t *testing.T) {
		c, _, err := loadWattProject(t, map[string]string{
			"watt.yaml":    "entrypoint: web\nworkers: 2\nserver:\n  port: {PORT}\napplications:\n  - id: web\n    path: web\n    env:\n      GREETING: hi\n",
			"web/index.js": "",
		}, Options{Environ: []string{"PORT=4000"}})
		if err != nil {
			t.Fatal(err)
		}
		want(t, c)
	})
	t.Run("yaml numbers by YAML 1.2's rules, as Watt reads them", func(t *testing.T) {
		c, _, err := loadWattProject(t, map[string]string{
			"watt.yaml": "applications:\n  - id: web\n    path: web\n    workers: 010\n    env:\n" +
				"      ZIP: 02134\n      MODE: 0755\n      OCT: 0o17\n      HEX: 0x1F\n      SEP: 1_000\n      BIN: 0b101\n" +
				"      PLUS: +12\n      HALF: .5\n      EXP: 1e3\n      TIME: 1:30\n      QUOTED: '010'\n      TAGGED: !!str 010\n",
			"web/index.js": "",
		}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		a := c.Applications[0]
		if a.Workers != 10 {
			t.Errorf("workers: 010 gave %d workers, want 10", a.Workers)
		}
		// What the yaml package (Watt's) gives, as the env's strings.
		for k, v := range map[string]string{"ZIP": "2134", "MODE": "755", "OCT": "15", "HEX": "31", "SEP": "1_000", "BIN": "0b101",
			"PLUS": "12", "HALF": "0.5", "EXP": "1000", "TIME": "1:30", "QUOTED": "010", "TAGGED": "010"} {
			if got := a.Env[k]; got != v {
				t.Errorf("env %s=%q, want %q", k, got, v)
			}
		}
	})
	t.Run("yaml placeholders inside a value stay text", func(t *testing.T) {
		c, _, err := loadWattProject(t, map[string]string{
			"watt.yaml":    "applications:\n  - id: web\n    path: web\n    env:\n      URL: http://{HOST}:{PORT}/x\n",
			"web/index.js": "",
		}, Options{Environ: []string{"HOST=h", "PORT=1"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Applications[0].Env["URL"]; got != "http://h:1/x" {
			t.Errorf("URL=%q", got)
		}
	})
	t.Run("toml", func(t *testing.T) {
		c, _, err := loadWattProject(t, map[string]string{
			"watt.toml":    "entrypoint = \"web\"\nworkers = 2\n[server]\nport = 4000\n[[applications]]\nid = \"web\"\npath = \"web\"\n[applications.env]\nGREETING = \"hi\"\n",
			"web/index.js": "",
		}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		want(t, c)
	})
	t.Run("yaml problems name the line", func(t *testing.T) {
		_, dir, err := loadWattProject(t, map[string]string{
			"watt.yml":     "entrypoint: web\nserver:\n  prot: 1\napplications:\n  - id: web\n    path: web\n",
			"web/index.js": "",
		}, Options{})
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v", err)
		}
		if want := filepath.Join(dir, "watt.yml") + `:3: /server/prot: unknown key "prot" (did you mean "port"?)`; e.Error() != want {
			t.Errorf("got  %s\nwant %s", e, want)
		}
	})
	t.Run("toml syntax error names the line", func(t *testing.T) {
		_, _, err := loadWattProject(t, map[string]string{"watt.toml": "entrypoint = \"web\"\nworkers = = 2\n"}, Options{})
		var e *Error
		if !errors.As(err, &e) || e.Line != 2 {
			t.Fatalf("error %v, want one at line 2", err)
		}
	})
	t.Run("an application's YAML file names the line", func(t *testing.T) {
		_, dir, err := loadWattProject(t, map[string]string{
			"watt.json":     `{"applications": [{"id": "web", "path": "web"}]}`,
			"web/watt.yaml": "module: '@platformatic/node'\nnode:\n  main: index.js\n  hasSrever: false\n",
			"web/index.js":  "",
		}, Options{})
		want := filepath.Join(dir, "web/watt.yaml") + `:4: /node/hasSrever: unknown key "hasSrever" (did you mean "hasServer"?)`
		if err == nil || err.Error() != want {
			t.Errorf("got  %v\nwant %s", err, want)
		}
	})
	t.Run("yaml syntax error", func(t *testing.T) {
		_, _, err := loadWattProject(t, map[string]string{"watt.yaml": "applications:\n  - id: [\n"}, Options{})
		var e *Error
		if !errors.As(err, &e) || e.Line == 0 {
			t.Fatalf("error %v, want one with a line", err)
		}
	})
}

func TestWattKeysHonouredOrWarned(t *testing.T) {
	c, dir, err := loadWattProject(t, map[string]string{
		"watt.json": `{
			"$schema": "https://schemas.platformatic.dev/@platformatic/runtime/2.0.0.json",
			"server": {"port": 3000, "logger": {"level": "debug"}},
			"gracefulShutdown": {"service": 2500},
			"serviceTimeout": 1234,
			"hotReload": true,
			"allowCycles": false,
			"preload": "./pre/runtime.js",
			"sourceMaps": true,
			"services": [{
				"id": "web", "path": "web", "preload": ["./pre/app.js"],
				"execArgv": ["--no-warnings"], "arguments": ["--flag"],
				"logger": {"level": "warn"}, "websocket": true, "useHttp": true, "workerz": 2
			}]
		}`,
		"web/index.js":   "",
		"pre/runtime.js": "",
		"pre/app.js":     "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Logger.Level != "debug" || c.GracefulShutdown.Application != 2500*time.Millisecond || c.ApplicationTimeout != 1234*time.Millisecond {
		t.Errorf("old names not honoured: level %q, shutdown %v, timeout %v", c.Logger.Level, c.GracefulShutdown.Application, c.ApplicationTimeout)
	}
	w := c.Applications[0].Watt
	wantPreload := []string{filepath.Join(dir, "pre/runtime.js"), filepath.Join(dir, "pre/app.js")}
	if !slices.Equal(w.Preload, wantPreload) || !slices.Equal(w.ExecArgv, []string{"--no-warnings"}) || !w.SourceMaps || !slices.Equal(w.Arguments, []string{"--flag"}) {
		t.Errorf("Watt: %+v", w)
	}
	for _, want := range [][]string{
		{"/server/logger", `Watt 2 name of /logger`},
		{"/gracefulShutdown/service", "/gracefulShutdown/application"},
		{"/serviceTimeout", "/applicationTimeout"},
		{"/hotReload", "wattd dev watches"},
		{"/allowCycles", "rejects dependency cycles"},
		{"/services/0/logger", `the runtime's "logger" applies`},
		{"/services/0/websocket", "ignored"},
		{"/services/0/useHttp", "mesh socket"},
		{"/services/0/workerz", `unknown key "workerz" (did you mean "workers"?)`, "Watt accepts any key"},
	} {
		if !hasWarning(c, want...) {
			t.Errorf("no warning with %q in:\n%s", want, strings.Join(c.Warnings, "\n"))
		}
	}
	for _, w := range c.Warnings {
		if strings.Contains(w, "/server/logger") && strings.Count(strings.Join(c.Warnings, "\n"), "/server/logger") != 1 {
			t.Errorf("more than one warning about /server/logger")
		}
	}
}

// TestPermissions: Watt's permissions.fs is read, its relative paths
// joined to the application's directory as Watt joins them, for entries
// and autoloaded applications alike; a wrong type names its place.
func TestPermissions(t *testing.T) {
	c, dir, err := loadWattProject(t, map[string]string{
		"watt.json": `{
			"entrypoint": "web",
			"autoload": {"path": "apps", "mappings": {"b": {"id": "b", "permissions": {"fs": {"write": ["tmp"]}}}}},
			"applications": [{"id": "web", "path": "web", "permissions": {"fs": {"read": ["./", "/srv/data", "assets/*"], "write": ["out"]}}}]
		}`,
		"web/index.js":    "",
		"apps/b/index.js": "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]capabilities.Permissions{}
	for _, a := range c.Applications {
		byID[a.ID] = a.Watt.Permissions
	}
	web := filepath.Join(dir, "web")
	if p := byID["web"]; !slices.Equal(p.Read, []string{web, "/srv/data", filepath.Join(web, "assets/*")}) || !slices.Equal(p.Write, []string{filepath.Join(web, "out")}) || !p.On() {
		t.Errorf("web: %+v", p)
	}
	if p := byID["b"]; len(p.Read) != 0 || !slices.Equal(p.Write, []string{filepath.Join(dir, "apps", "b", "tmp")}) {
		t.Errorf("b: %+v", p)
	}
	if hasWarning(c, "permissions") {
		t.Errorf("a warning about permissions:\n%s", strings.Join(c.Warnings, "\n"))
	}

	_, _, err = loadWattProject(t, map[string]string{
		"watt.json":    `{"applications": [{"id": "web", "path": "web", "permissions": {"fs": {"read": "./"}}}]}`,
		"web/index.js": "",
	}, Options{})
	if err == nil || !strings.Contains(err.Error(), "/applications/0/permissions/fs/read: expected array") {
		t.Errorf("a string for fs.read: %v", err)
	}
}

// TestMissingPreloadIsAProblem: a preload path with no file is reported at
// load, at its JSON path, with the other problems, instead of six failed
// starts of every worker.
func TestMissingPreloadIsAProblem(t *testing.T) {
	_, dir, err := loadWattProject(t, map[string]string{
		"watt.json": `{"preload": "gone.js", "entrypoint": "web", "applications": [
			{"id": "web", "path": "web", "preload": ["here.js", "missing.js"]}, {"id": "x", "path": "x", "workerz": 1}]}`,
		"web/index.js": "",
		"x/index.js":   "",
		"here.js":      "",
	}, Options{})
	for _, want := range []string{
		`watt.json:1: /preload: preload ` + filepath.Join(dir, "gone.js") + `: no such file or directory`,
		`watt.json:2: /applications/0/preload/1: preload ` + filepath.Join(dir, "missing.js") + `: no such file or directory`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant it to say %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "here.js") {
		t.Errorf("a preload that exists is named: %v", err)
	}
}

func TestApplicationOwnConfig(t *testing.T) {
	c, dir, err := loadWattProject(t, map[string]string{
		"watt.json": `{"entrypoint": "api", "preload": "rt.js", "applications": [
			{"id": "api", "path": "api", "preload": "app.js"},
			{"id": "worker", "path": "worker", "config": "custom.yaml"}]}`,
		"api/platformatic.json": `{
			"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json",
			"node": {"main": "server.js", "absoluteUrl": true, "dispatchViaHttp": true},
			"application": {"basePath": "/api", "commands": {"build": "npm run build", "production": "node {PLT_ROOT}/dist/server.js", "install": "npm i"}},
			"logger": {"level": "trace", "transport": {"target": "pino-pretty"}, "someOtherPinoOption": 1},
			"runtime": {"workers": 3}
		}`,
		"api/server.js":      "",
		"rt.js":              "",
		"app.js":             "",
		"worker/custom.yaml": "module: '@platformatic/node'\nnode:\n  hasServer: false\n",
		"worker/index.js":    "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	api, worker := c.Applications[0], c.Applications[1]
	want := capabilities.WattApp{
		Main: "server.js", AbsoluteURL: true, BasePath: "/api",
		Commands: capabilities.Commands{Build: "npm run build", Production: "node " + filepath.Join(dir, "api") + "/dist/server.js"},
		Preload:  []string{filepath.Join(dir, "rt.js"), filepath.Join(dir, "app.js")},
	}
	if !reflect.DeepEqual(api.Watt, want) || api.Module != "@platformatic/node" || api.Capability != "node" {
		t.Errorf("api: Watt %+v module %q capability %q", api.Watt, api.Module, api.Capability)
	}
	if !worker.Watt.NoServer || worker.Module != "@platformatic/node" {
		t.Errorf("worker: Watt %+v module %q", worker.Watt, worker.Module)
	}
	// The application's own level filters its lines; the runtime's stays.
	if api.LogLevel != "trace" || worker.LogLevel != "" || c.Logger.Level != "info" {
		t.Errorf("log levels: api %q worker %q runtime %q", api.LogLevel, worker.LogLevel, c.Logger.Level)
	}
	appFile := filepath.Join(dir, "api/platformatic.json")
	for _, w := range [][]string{
		{appFile, "/node/dispatchViaHttp", "ignored"},
		{appFile, "/application/commands/install", "ignored"},
		{appFile, "/logger/transport", "ignored"},
		{appFile, "/logger/someOtherPinoOption", "ignored"},
		{appFile, "/runtime", "started alone"},
	} {
		if !hasWarning(c, w...) {
			t.Errorf("no warning with %q in:\n%s", w, strings.Join(c.Warnings, "\n"))
		}
	}
}

func TestApplicationOwnConfigProblems(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "a capability wattd does not provide: one error naming it",
			files: map[string]string{
				"watt.json":                `{"applications": [{"id": "gw", "path": "gw"}, {"id": "api", "path": "api"}]}`,
				"gw/platformatic.json":     `{"$schema": "https://schemas.platformatic.dev/@platformatic/gateway/3.0.0.json", "gateway": {}}`,
				"api/index.js":             "",
				"api/watt.json":            `{"module": "@platformatic/node"}`,
				"gw/node_modules/.keep.js": "",
			},
			want: []string{`{DIR}/gw/platformatic.json: /$schema: application "gw" uses the Watt capability @platformatic/gateway, which wattd does not provide; wattd has no gateway yet`},
		},
		{
			name: "Watt 2 composer, by module",
			files: map[string]string{
				"watt.json":           `{"entrypoint": "c", "applications": [{"id": "c", "path": "c"}]}`,
				"c/platformatic.json": `{"module": "@platformatic/composer"}`,
			},
			want: []string{`{DIR}/c/platformatic.json: /module: application "c" uses the Watt capability @platformatic/composer, which wattd does not provide`},
		},
		{
			name: "unknown key in a node config, wrong type",
			files: map[string]string{
				"watt.json":   `{"applications": [{"id": "a", "path": "a"}]}`,
				"a/watt.json": `{"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json", "node": {"mian": "x.js", "hasServer": "no"}}`,
				"a/index.js":  "",
			},
			want: []string{
				`{DIR}/a/watt.json: /node/mian: unknown key "mian" (did you mean "main"?)`,
				`{DIR}/a/watt.json: /node/hasServer: expected a boolean, got "no"`,
			},
		},
		{
			name: "an application's log level that does not exist",
			files: map[string]string{
				"watt.json":   `{"applications": [{"id": "a", "path": "a"}]}`,
				"a/watt.json": `{"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json", "logger": {"level": "loud"}}`,
				"a/index.js":  "",
			},
			want: []string{`{DIR}/a/watt.json: /logger/level: unknown log level "loud" (want trace, debug, info, warn, error, fatal, silent)`},
		},
		{
			name: "config names a missing file",
			files: map[string]string{
				"watt.json":  `{"applications": [{"id": "a", "path": "a", "config": "nope.json"}]}`,
				"a/index.js": "",
			},
			want: []string{`{DIR}/watt.json: /applications/0/config: file {DIR}/a/nope.json does not exist`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, dir, err := loadWattProject(t, tt.files, Options{})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if w = strings.ReplaceAll(w, "{DIR}", dir); !strings.HasPrefix(withoutLine(lines[i], w), w) {
					t.Errorf("problem %d:\n got %s\nwant %s", i, lines[i], w)
				}
			}
		})
	}
}

func TestApplicationInTheRuntimeDirectory(t *testing.T) {
	c, _, err := loadWattProject(t, map[string]string{
		"watt.json": `{"$schema": "https://schemas.platformatic.dev/wattpm/3.0.0.json", "applications": [{"id": "a", "path": "."}]}`,
		"index.js":  "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 || c.Applications[0].Module != "" {
		t.Errorf("the runtime's file was read as the application's: module %q, warnings %v", c.Applications[0].Module, c.Warnings)
	}
}

func TestSingleApplicationFolder(t *testing.T) {
	c, dir, err := loadWattProject(t, map[string]string{
		"watt.json": `{"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json",
			"server": {"hostname": "127.0.0.1", "port": "{PORT}"},
			"node": {"main": "main.js"},
			"logger": {"level": "error"},
			"runtime": {"workers": 2, "logger": {"level": "warn"}}}`,
		"package.json": `{"name": "@acme/shop"}`,
		"main.js":      "",
	}, Options{Environ: []string{"PORT=4321"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Entrypoint != "shop" || len(c.Applications) != 1 || c.Applications[0].Path != dir ||
		c.Server.Port != 4321 || c.Workers != 2 || c.Logger.Level != "warn" || c.Applications[0].Watt.Main != "main.js" {
		t.Errorf("got entrypoint %q apps %+v port %d workers %d level %q", c.Entrypoint, c.Applications, c.Server.Port, c.Workers, c.Logger.Level)
	}
	if hasWarning(c, "/server") || hasWarning(c, "/runtime") {
		t.Errorf("warnings about lifted keys: %v", c.Warnings)
	}

	c, _, err = loadWattProject(t, map[string]string{"watt.json": `{"module": "@platformatic/node", "logger": {"level": "debug"}, "runtime": {"env": {"A": "{UNSET_PORT_X}"}}}`, "index.js": ""}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The application's level is its own, as in Watt: the runtime's stays
	// at its default, so wattd's lines and the app's plain output show.
	if c.Entrypoint != "main" || c.Logger.Level != "info" || c.Applications[0].LogLevel != "debug" {
		t.Errorf("without package.json the id is %q (want main), the levels %q and %q (want info, and the application's own debug)", c.Entrypoint, c.Logger.Level, c.Applications[0].LogLevel)
	}
	if n := strings.Count(strings.Join(c.Warnings, "\n"), "UNSET_PORT_X"); n != 1 {
		t.Errorf("%d warnings name UNSET_PORT_X, want 1: %v", n, c.Warnings)
	}
	if !hasWarning(c, "/runtime/env/A") {
		t.Errorf("the warning does not name the value's place in the file, /runtime/env/A: %v", c.Warnings)
	}
	// The file's own places, not the runtime configuration made of it.
	for ptr, want := range map[string]string{"/server/port": "/server/port", "/gracefulShutdown/runtime": "/runtime/gracefulShutdown/runtime",
		"/telemetry": "/runtime/telemetry", "/entrypoint": "/entrypoint"} {
		if got := c.Pointer(ptr); got != want {
			t.Errorf("Pointer(%s) = %s, want %s", ptr, got, want)
		}
	}

	_, _, err = loadWattProject(t, map[string]string{"watt.json": "{\"module\": \"@platformatic/node\",\n \"runtime\": {\n  \"gracefulShutdown\": {\"runtime\": \"x\"},\n  \"application\": {\"workers\": \"y\"}}}", "index.js": ""}, Options{})
	for _, want := range []string{"watt.json:3: /runtime/gracefulShutdown/runtime: expected number", "watt.json:4: /runtime/application/workers: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant it to name %q", err, want)
		}
	}
}

// An application's "enabled" string turns it off only when it is "false",
// as in Watt; any other word leaves it on with a warning naming it, and a
// per-environment object takes booleans, "false" read as false (Watt's
// schema coerces it) and any other string refused.
func TestEnabledStrings(t *testing.T) {
	files := map[string]string{
		"watt.json": `{"applications": [
  {"id": "a", "path": "a", "enabled": "false"},
  {"id": "b", "path": "b", "enabled": "FALSE"},
  {"id": "c", "path": "c", "enabled": "true"},
  {"id": "d", "path": "d", "enabled": "no"},
  {"id": "e", "path": "e", "enabled": {"production": true, "development": false}},
  {"id": "f", "path": "f", "enabled": {"production": "false"}}], "entrypoint": "c"}`,
		"a/index.js": "", "b/index.js": "", "c/index.js": "", "d/index.js": "", "e/index.js": "", "f/index.js": "",
	}
	c, _, err := loadWattProject(t, files, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range c.Applications {
		ids = append(ids, a.ID)
	}
	if !slices.Equal(ids, []string{"b", "c", "d", "e"}) {
		t.Errorf("applications %v, want [b c d e]", ids)
	}
	if !hasWarning(c, "/applications/1/enabled", `"FALSE" is neither "true" nor "false"`, "so it runs") ||
		!hasWarning(c, "/applications/3/enabled", `"no"`) || len(c.Warnings) != 2 {
		t.Errorf("warnings:\n%s", strings.Join(c.Warnings, "\n"))
	}
	_, _, err = loadWattProject(t, map[string]string{
		"watt.json":  `{"applications": [{"id": "a", "path": "a", "enabled": {"production": "sometimes"}}]}`,
		"a/index.js": "",
	}, Options{})
	if err == nil || !strings.Contains(err.Error(), "/applications/0/enabled/production: expected boolean") {
		t.Errorf("per-environment string: %v", err)
	}
}

func TestEnvironmentAndPlaceholders(t *testing.T) {
	files := map[string]string{
		"watt.json":  `{"server": {"hostname": "{HOST}"}, "applications": [{"id": "a", "path": "a", "enabled": {"development": false}}, {"id": "b", "path": "b"}], "entrypoint": "b"}`,
		".env":       "FROM_DOTENV=file\nSHADOWED=file\n",
		"a/index.js": "", "b/index.js": "",
	}
	t.Run("start", func(t *testing.T) {
		c, _, err := loadWattProject(t, files, Options{Environment: "production", Environ: []string{"HOST=127.0.0.1", "SHADOWED=process"}})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"NODE_ENV": "production", "PLT_ENVIRONMENT": "production", "PLT_DEV": "false", "FROM_DOTENV": "file"}
		if !maps.Equal(c.Env, want) {
			t.Errorf("Env %v, want %v", c.Env, want)
		}
		if len(c.Applications) != 2 {
			t.Errorf("%d applications, want both", len(c.Applications))
		}
	})
	t.Run("dev, NODE_ENV already set", func(t *testing.T) {
		c, _, err := loadWattProject(t, files, Options{Environment: "development", Environ: []string{"HOST=127.0.0.1", "NODE_ENV=test"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Env["NODE_ENV"]; ok || c.Env["PLT_ENVIRONMENT"] != "development" || c.Env["PLT_DEV"] != "true" {
			t.Errorf("Env %v", c.Env)
		}
		if len(c.Applications) != 1 || c.Applications[0].ID != "b" {
			t.Errorf("applications %v: a is disabled in development", c.Applications)
		}
	})
	t.Run("unset placeholder: empty and one warning by default", func(t *testing.T) {
		c, _, err := loadWattProject(t, map[string]string{
			"watt.json":  `{"applications": [{"id": "a", "path": "a", "env": {"X": "<{UNSET_ONE}>", "Y": "{UNSET_ONE}{UNSET_ONE}", "Z": "{UNSET_ONE}"}}]}`,
			"a/index.js": "",
		}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{filepath.Join(c.Dir, "watt.json") + `: /applications/0/env/X: environment variable "UNSET_ONE" is not set; using an empty string; also used at /applications/0/env/Y, /applications/0/env/Z`}
		if c.Applications[0].Env["X"] != "<>" || !slices.Equal(withoutLines(c.Warnings, want), want) {
			t.Errorf("X=%q warnings\n%s\nwant\n%s", c.Applications[0].Env["X"], strings.Join(c.Warnings, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("unset placeholder: strict option", func(t *testing.T) {
		_, _, err := loadWattProject(t, map[string]string{
			"watt.json":  `{"applications": [{"id": "a", "path": "a", "env": {"X": "{UNSET_ONE}"}}]}`,
			"a/index.js": "",
		}, Options{StrictEnv: true})
		if err == nil || !strings.Contains(err.Error(), `/applications/0/env/X: environment variable "UNSET_ONE" is not set`) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("unset placeholder behind a schema problem names it", func(t *testing.T) {
		_, _, err := loadWattProject(t, map[string]string{
			"watt.json":  `{"workers": "{NO_WORKERS}", "applications": [{"id": "a", "path": "a"}]}`,
			"a/index.js": "",
		}, Options{})
		if err == nil || !strings.Contains(err.Error(), `/workers: `) || !strings.Contains(err.Error(), `(NO_WORKERS not set)`) {
			t.Errorf("error %v", err)
		}
	})
	// Watt's generated projects read the server's address from a .env
	// that a fresh clone does not have: Watt starts, on every interface,
	// where the entrypoint listens; so does wattd, on $PORT.
	t.Run("unset server placeholders are the defaults", func(t *testing.T) {
		cfg, _, err := loadWattProject(t, map[string]string{
			"watt.json":  `{"server": {"hostname": "{NO_HOST}", "port": "{NO_PORT}"}, "applications": [{"id": "a", "path": "a"}]}`,
			"a/index.js": "",
		}, Options{Environ: []string{"PORT=4321"}})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Server.Hostname != "" || cfg.Server.Port != 4321 {
			t.Errorf("server %+v, want every interface on $PORT 4321", cfg.Server)
		}
		if !slices.ContainsFunc(cfg.Warnings, func(w string) bool { return strings.Contains(w, "/server/port: empty (NO_PORT not set)") }) {
			t.Errorf("warnings %q lack the port's", cfg.Warnings)
		}
	})
}

// TestEnvFileOption: wattd start --env FILE, as wattpm's: FILE (relative
// to the project directory) is read instead of the project's .env, for
// placeholders and every application; the process environment still wins;
// a FILE that does not exist stops the load, naming it.
func TestEnvFileOption(t *testing.T) {
	files := map[string]string{
		"watt.json":     `{"server": {"hostname": "{HOST}"}, "applications": [{"id": "a", "path": "a"}]}`,
		".env":          "HOST=127.0.0.1\nFROM_DOTENV=default\n",
		"env/.env.prod": "HOST=127.0.0.2\nFROM_PROD=prod\nSHADOWED=file\n",
		"a/index.js":    "",
	}
	c, dir, err := loadWattProject(t, files, Options{EnvFile: "env/.env.prod", Environ: []string{"SHADOWED=process"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Hostname != "127.0.0.2" || c.Env["FROM_PROD"] != "prod" {
		t.Errorf("hostname %q, Env %v: want the values of env/.env.prod", c.Server.Hostname, c.Env)
	}
	if _, ok := c.Env["FROM_DOTENV"]; ok {
		t.Errorf("Env %v: the project's .env was read beside --env", c.Env)
	}
	if _, ok := c.Env["SHADOWED"]; ok {
		t.Errorf("Env %v: the file's SHADOWED should give way to the process environment's", c.Env)
	}
	// Absolute, and from another working directory: the same file.
	c, _, err = loadWattProject(t, files, Options{EnvFile: filepath.Join(dir, "env/.env.prod")})
	if err != nil || c.Server.Hostname != "127.0.0.2" {
		t.Errorf("absolute --env: hostname %v, %v", c, err)
	}
	_, dir, err = loadWattProject(t, files, Options{EnvFile: ".env.missing"})
	want := filepath.Join(dir, ".env.missing") + ": no such env file (given with --env)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("missing --env file: %v, want %q", err, want)
	}
	files[".env.bad"] = "A=\"never closed\n"
	_, dir, err = loadWattProject(t, files, Options{EnvFile: ".env.bad"})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, ".env.bad")+":1") {
		t.Errorf("unreadable --env file: %v, want its path and line", err)
	}
}

func TestLoggerRedact(t *testing.T) {
	c, _, err := loadWattProject(t, map[string]string{
		"watt.json":  `{"logger": {"redact": {"paths": ["req.headers.authorization", "a[*].b"]}}, "applications": [{"id": "a", "path": "a"}]}`,
		"a/index.js": "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := &Redact{Paths: []string{"req.headers.authorization", "a[*].b"}, Censor: "[redacted]"}
	if !reflect.DeepEqual(c.Logger.Redact, want) {
		t.Errorf("redact %+v, want %+v (Watt's default censor)", c.Logger.Redact, want)
	}
	c, _, err = loadWattProject(t, map[string]string{
		"watt.json":  `{"logger": {"redact": {"paths": ["x"], "censor": ""}}, "applications": [{"id": "a", "path": "a"}]}`,
		"a/index.js": "",
	}, Options{})
	if err != nil || c.Logger.Redact == nil || c.Logger.Redact.Censor != "" {
		t.Errorf("an empty censor is kept: %+v, %v", c.Logger.Redact, err)
	}
	for _, w := range c.Warnings {
		if strings.Contains(w, "/logger") {
			t.Errorf("warning about a key wattd reads: %s", w)
		}
	}
}

// TestProblemNamesTheLine: a problem with a runtime setting found after the
// load (a reload refused for a key only a restart changes) names the file,
// the line and the pointer as a load error does, in a runtime file and in
// a single application's file, and no line for a key the file lacks.
func TestProblemNamesTheLine(t *testing.T) {
	c, dir, err := loadWattProject(t, map[string]string{
		"watt.json": "{\n  \"entrypoint\": \"a\",\n  \"server\": {\n    \"hostname\": \"127.0.0.1\",\n    \"port\": 3042\n  },\n" +
			"  \"applications\": [{\"id\": \"a\", \"path\": \"a\"}]\n}\n",
		"a/index.js": "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "watt.json")
	wantProblems(t, c, map[string]string{
		"/server/port":      file + ":5: /server/port: changed",
		"/server/hostname":  file + ":4: /server/hostname: changed",
		"/server/nope":      file + ":3: /server/nope: changed", // the enclosing object's line
		"/metrics":          file + ": /metrics: changed",       // not in the file: no line
		"/applications/0":   file + ":7: /applications/0: changed",
		"/entrypoint":       file + ":2: /entrypoint: changed",
		"/gracefulShutdown": file + ": /gracefulShutdown: changed",
	})

	c, dir, err = loadWattProject(t, map[string]string{
		"watt.json": "{\"module\": \"@platformatic/node\",\n \"runtime\": {\n  \"gracefulShutdown\": {\"runtime\": 1000}}}",
		"index.js":  "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, c, map[string]string{"/gracefulShutdown": filepath.Join(dir, "watt.json") + ":3: /runtime/gracefulShutdown: changed"})
	if got := (&Error{Pointer: "/x", Message: "m"}).Error(); got != "/x: m" {
		t.Errorf("an error without a file reads %q, want %q", got, "/x: m")
	}
}

// wantProblems checks c.Problem(ptr, "changed") for each ptr.
func wantProblems(t *testing.T, c *Config, want map[string]string) {
	t.Helper()
	for ptr, w := range want {
		if got := c.Problem(ptr, "changed").Error(); got != w {
			t.Errorf("Problem(%s) = %q, want %q", ptr, got, w)
		}
	}
}

// TestProblemNamesAWatt2Name: a runtime setting the file writes under its
// Watt 2 name (read as the new one) is named by the key and line the file
// has, in a runtime file and in a single application's runtime block.
func TestProblemNamesAWatt2Name(t *testing.T) {
	c, dir, err := loadWattProject(t, map[string]string{
		"watt.json": "{\n  \"entrypoint\": \"a\",\n  \"serviceTimeout\": 5000,\n  \"server\": {\n    \"logger\": {\"level\": \"info\"}\n  },\n" +
			"  \"services\": [{\"id\": \"a\", \"path\": \"a\"}]\n}\n",
		"a/index.js": "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "watt.json")
	wantProblems(t, c, map[string]string{
		"/applicationTimeout": file + ":3: /serviceTimeout: changed",
		"/logger":             file + ":5: /server/logger: changed",
		"/logger/level":       file + ":5: /server/logger/level: changed",
		"/metrics":            file + ": /metrics: changed",
	})

	c, dir, err = loadWattProject(t, map[string]string{
		"watt.json": "{\"module\": \"@platformatic/node\",\n \"runtime\": {\n  \"serviceTimeout\": 1000}}",
		"index.js":  "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, c, map[string]string{"/applicationTimeout": filepath.Join(dir, "watt.json") + ":3: /runtime/serviceTimeout: changed"})
}

// TestWatchKeys: the runtime's "watch" and an application's own "watch"
// (boolean, string or {enabled, allow, ignore}) are read, not ignored, and
// a wrong value names its place.
func TestWatchKeys(t *testing.T) {
	c, _, err := loadWattProject(t, map[string]string{
		"watt.json":   `{"watch": "false", "entrypoint": "a", "applications": [{"id": "a", "path": "a"}, {"id": "b", "path": "b"}, {"id": "c", "path": "c"}]}`,
		"a/watt.json": `{"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json", "watch": {"ignore": ["data/**", "./*.log"], "allow": ["**/*.js"]}}`,
		"a/index.js":  "",
		"b/watt.json": `{"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json", "watch": false}`,
		"b/index.js":  "",
		"c/watt.json": `{"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json", "watch": {"enabled": "false"}}`,
		"c/index.js":  "",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.NoWatch || hasWarning(c, "/watch") {
		t.Errorf("runtime watch: NoWatch %v, warnings %v", c.NoWatch, c.Warnings)
	}
	want := []Watch{{Allow: []string{"**/*.js"}, Ignore: []string{"data/**", "./*.log"}}, {Off: true}, {Off: true}}
	for i, a := range c.Applications {
		if !reflect.DeepEqual(a.Watch, want[i]) {
			t.Errorf("app %s: watch %+v, want %+v", a.ID, a.Watch, want[i])
		}
	}
	_, _, err = loadWattProject(t, map[string]string{
		"watt.json":   `{"watch": "sometimes", "applications": [{"id": "a", "path": "a"}]}`,
		"a/watt.json": `{"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.0.0.json", "watch": {"ignore": "data/**", "enabled": 1, "every": true}}`,
		"a/index.js":  "",
	}, Options{})
	for _, msg := range []string{`/watch: expected true or false, got "sometimes"`, "/watch/ignore: expected a list of globs", "/watch/enabled: expected true or false", "/watch/every"} {
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("error %v lacks %q", err, msg)
		}
	}
}
