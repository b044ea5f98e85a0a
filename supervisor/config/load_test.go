package config

import (
	"errors"
	"io/fs"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// testdataDir is the absolute testdata directory; expected messages write
// it as "{TD}".
func testdataDir(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestLoadValid(t *testing.T) {
	td := testdataDir(t)
	// Watt's health defaults (and wattd's probe timeout and
	// maxUnresponsive), written out rather than taken from the constants
	// they check.
	wattHealth := Health{
		Enabled: true, Interval: 30 * time.Second, GracePeriod: 30 * time.Second, MaxUnhealthyChecks: 10,
		MaxELU: 0.99, MaxHeapUsed: 0.99, MaxHeapTotal: 4294967296, Timeout: 5 * time.Second,
		MaxUnresponsive: 30 * time.Second,
	}
	app := func(id, path string, workers int, entry bool, env map[string]string) Application {
		if env == nil {
			env = map[string]string{}
		}
		return Application{ID: id, Path: filepath.Join(td, path), Workers: workers, Entrypoint: entry, Env: env, Health: wattHealth}
	}
	defaults := func(dir string) Config {
		return Config{
			File:             filepath.Join(td, dir, "watt.json"),
			Dir:              filepath.Join(td, dir),
			Workers:          1,
			Server:           Server{Hostname: "", Port: 3042},
			Logger:           Logger{Level: "info"},
			Env:              map[string]string{},
			RestartOnError:   RestartOnError{Enabled: true, Delay: DefaultRestartDelay},
			GracefulShutdown: GracefulShutdown{Runtime: 30 * time.Second, Application: 10 * time.Second},
			StartTimeout:     30 * time.Second,
			Restart:          RestartPolicy{InitialDelay: 100 * time.Millisecond, MaxDelay: 10 * time.Second, ResetAfter: time.Second, MaxRestarts: 10},
			Health:           wattHealth,
		}
	}
	warn := func(dir, ptr, msg string) string {
		return filepath.Join(td, dir) + ": " + ptr + ": " + msg
	}
	// ignored is the warning of an ignored Watt option; the reason comes
	// from the table, whose keys this test checks.
	ignored := func(ptr string) string {
		segs := splitPointer(ptr)
		key := segs[len(segs)-1]
		msg := `Watt option "` + key + `" is not supported by wattd; ignored`
		if o := wattOnlyOptionFor(segs[:len(segs)-1], key); o.instead != "" {
			msg += ": " + o.instead
		}
		return msg
	}

	tests := []struct {
		name    string
		dir     string
		file    string
		environ []string
		want    func() Config
	}{
		{
			name: "minimal: the only application is the entrypoint and defaults apply",
			dir:  "valid/minimal",
			want: func() Config {
				c := defaults("valid/minimal")
				c.Schema = "https://schemas.platformatic.dev/@platformatic/runtime/2.0.0.json"
				c.Entrypoint = "api"
				c.Applications = []Application{app("api", "apps/api", 1, true, nil)}
				return c
			},
		},
		{
			name:    "full: every supported key, env layering, disabled application left out",
			dir:     "valid/full",
			environ: []string{"SHARED=from-process", "UNRELATED=1"},
			want: func() Config {
				c := defaults("valid/full")
				c.Schema = "https://schemas.platformatic.dev/wattpm/3.0.0.json"
				c.Entrypoint = "web"
				c.Workers = 2
				c.StartupConcurrency = 3 // written as a string, as Watt allows
				c.Server = Server{Hostname: "::1", Port: 0}
				c.Logger.Level = "debug"
				c.Env = map[string]string{
					"DOTENV_ONLY":  "dotenv",
					"RUNTIME_FILE": "yes",
					"SHARED":       "from-runtime-env",
					"LEVEL":        "runtime",
				}
				c.RestartOnError = RestartOnError{Enabled: true, Delay: 250 * time.Millisecond}
				c.GracefulShutdown = GracefulShutdown{Runtime: 20 * time.Second, Application: 5 * time.Second}
				c.StartTimeout = 45 * time.Second
				c.Restart = RestartPolicy{InitialDelay: 50 * time.Millisecond, MaxDelay: 2 * time.Second, ResetAfter: 1500 * time.Millisecond, MaxRestarts: 0}
				webEnv := maps.Clone(c.Env)
				webEnv["WEB_FILE"] = "line one\nline two"
				webEnv["LEVEL"] = "app"
				web := app("web", "apps/web", 4, true, webEnv)
				web.NodeOptions = "--max-old-space-size=512"
				c.Applications = []Application{web, app("api", "apps/api", 3, false, maps.Clone(c.Env))}
				return c
			},
		},
		{
			name: "autoload: explicit entries first, excluded, hidden and already listed directories skipped",
			dir:  "valid/autoload",
			want: func() Config {
				c := defaults("valid/autoload")
				c.Schema = "https://schemas.platformatic.dev/wattpm/3.0.0.json"
				c.Entrypoint = "frontend"
				c.Applications = []Application{
					app("scratchpad", "valid/autoload/packages/scratch", 1, false, nil),
					app("api", "valid/autoload/packages/api", 1, false, nil),
					app("frontend", "valid/autoload/packages/web", 2, true, map[string]string{"WEB_DOTENV": "1"}),
				}
				c.Warnings = []string{
					warn("valid/autoload/watt.json", "/autoload/mappings/web/useHttp", ignored("/autoload/mappings/web/useHttp")),
					warn("valid/autoload/watt.json", "/autoload/mappings/gone",
						`no directory "gone" in `+filepath.Join(td, "valid/autoload/packages")+"; mapping ignored"),
				}
				return c
			},
		},
		{
			name: "Watt-only options load with one warning each, even with unset placeholders inside",
			dir:  "valid/watt-options",
			want: func() Config {
				c := defaults("valid/watt-options")
				c.Schema = "https://schemas.platformatic.dev/@platformatic/runtime/3.0.0.json"
				c.Entrypoint = "api"
				c.Workers = 2
				c.Server.Port = 3000
				c.Metrics = Metrics{Enabled: true, Hostname: "0.0.0.0", Port: 9091, Endpoint: "/metrics"}
				c.GracefulShutdown = GracefulShutdown{Runtime: time.Second, Application: time.Second}
				// Watt's dynamic workers: the application's own maximum, the
				// runtime's minimum and thresholds.
				api := app("api", "apps/api", 1, true, nil)
				api.Scale = Scale{Dynamic: true, Minimum: 1, Maximum: 4, ScaleUpELU: DefaultScaleUpELU, ScaleDownELU: DefaultScaleDownELU}
				c.Applications = []Application{api}
				c.NoWatch = true // "watch": false
				f := "valid/watt-options/watt.json"
				c.Warnings = []string{
					warn(f, "/metrics/plugins", ignored("/metrics/plugins")),
					warn(f, "/httpCache", ignored("/httpCache")),
					warn(f, "/server/http2", ignored("/server/http2")),
					warn(f, "/logger/transport", ignored("/logger/transport")),
					warn(f, "/logger/base", ignored("/logger/base")),
					warn(f, "/gracefulShutdown/closeConnections", ignored("/gracefulShutdown/closeConnections")),
					warn(f, "/applications/0/useHttp", ignored("/applications/0/useHttp")),
				}
				return c
			},
		},
		{
			name: "legacy platformatic.json with services and web",
			dir:  "valid/legacy",
			want: func() Config {
				c := defaults("valid/legacy")
				c.File = filepath.Join(td, "valid/legacy/platformatic.json")
				c.Schema = "https://platformatic.dev/schemas/v1.52.0/runtime"
				c.Entrypoint = "api"
				c.Applications = []Application{app("api", "apps/api", 1, true, nil), app("web", "apps/web", 1, false, nil)}
				f := "valid/legacy/platformatic.json"
				c.Warnings = []string{
					warn(f, "/services", `"services" is the former name of "applications"; rename it to "applications"`),
					warn(f, "/web", `"web" is an old alias of "applications"; rename it to "applications"`),
				}
				return c
			},
		},
		{
			name:    "placeholders: process env over .env, PLT_ROOT, mesh URL fallback, coercion",
			dir:     "valid/placeholders",
			environ: []string{"WORKERS=3", "PLT_RESTART=false", "PLT_PORT=9000"},
			want: func() Config {
				c := defaults("valid/placeholders")
				c.Schema = "https://schemas.platformatic.dev/wattpm/3.0.0.json"
				c.Entrypoint = "api"
				c.Workers = 3
				c.Server = Server{Hostname: "0.0.0.0", Port: 9000}
				c.RestartOnError = RestartOnError{}
				// PLT_PORT=8080 of the .env is left out: the process
				// environment sets it, and a dotenv file never overrides
				// the process environment in a worker either.
				c.Env = map[string]string{"PLT_ENTRYPOINT": "api", "PLT_HOST": "0.0.0.0"}
				apiEnv := maps.Clone(c.Env)
				maps.Copy(apiEnv, map[string]string{
					"WEB":    "http://web.plt.local",
					"BOTH":   "0.0.0.0:9000",
					"DOUBLE": "0.0.0.0",
					"COUNT":  "3",
					"FLAG":   "true",
				})
				c.Applications = []Application{
					app("api", "apps/api", 3, true, apiEnv),
					app("web", "apps/web", 3, false, maps.Clone(c.Env)),
				}
				return c
			},
		},
		{
			name: `strictEnv "warn" substitutes an empty string and warns`,
			dir:  "valid/lenient-env",
			want: func() Config {
				c := defaults("valid/lenient-env")
				c.Entrypoint = "api"
				c.Applications = []Application{app("api", "apps/api", 1, true, map[string]string{"TOKEN": ""})}
				c.Warnings = []string{warn("valid/lenient-env/watt.json", "/applications/0/env/TOKEN",
					`environment variable "PLT_TOKEN" is not set; using an empty string`)}
				return c
			},
		},
		{
			name: "the .env lines Node.js skips are skipped, its odd names kept, each with a warning",
			dir:  "valid/odd-dotenv",
			want: func() Config {
				c := defaults("valid/odd-dotenv")
				c.Entrypoint = "api"
				c.Env = map[string]string{"GOOD": "1", "FOO BAR": "2"}
				c.Applications = []Application{app("api", "apps/api", 1, true, maps.Clone(c.Env))}
				f := filepath.Join(td, "valid/odd-dotenv/.env")
				c.Warnings = []string{
					f + `:3: expected KEY=VALUE, got "O:colon"; the line is skipped`,
					f + `:4: expected KEY=VALUE, got "[section]"; the line is skipped`,
					f + `:5: no variable name before the "=" in "=novalue"; the line is skipped`,
					f + `:6: "FOO BAR" is not a name a shell can use; set as written`,
				}
				return c
			},
		},
		{
			name: "an explicit file overrides the project directory lookup",
			dir:  "valid/full",
			file: "testdata/valid/minimal/watt.json",
			want: func() Config {
				c := defaults("valid/minimal")
				c.Schema = "https://schemas.platformatic.dev/@platformatic/runtime/2.0.0.json"
				c.Entrypoint = "api"
				// The project directory's .env is read as well.
				c.Env = map[string]string{"DOTENV_ONLY": "dotenv", "SHARED": "from-dotenv"}
				c.Applications = []Application{app("api", "apps/api", 1, true, maps.Clone(c.Env))}
				return c
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(filepath.Join("testdata", tt.dir), tt.file, tt.environ)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := tt.want()
			if want.Warnings == nil {
				want.Warnings = []string{}
			}
			compareConfig(t, got, &want)
		})
	}
}

func compareConfig(t *testing.T, got, want *Config) {
	t.Helper()
	if !slices.Equal(withoutLines(got.Warnings, want.Warnings), want.Warnings) {
		t.Errorf("Warnings:\n got %q\nwant %q", got.Warnings, want.Warnings)
	}
	if len(got.Applications) != len(want.Applications) {
		t.Errorf("Applications: got %d, want %d: %+v", len(got.Applications), len(want.Applications), got.Applications)
	} else {
		for i := range got.Applications {
			g, w := got.Applications[i], want.Applications[i]
			if !maps.Equal(g.Env, w.Env) {
				t.Errorf("Applications[%d].Env:\n got %q\nwant %q", i, g.Env, w.Env)
			}
			g.Env, w.Env = nil, nil
			if !strings.HasPrefix(g.Pointer, "/") {
				t.Errorf("Applications[%d].Pointer = %q, want a JSON pointer", i, g.Pointer)
			}
			g.Pointer, w.Pointer = "", ""
			if !reflect.DeepEqual(g, w) {
				t.Errorf("Applications[%d]:\n got %+v\nwant %+v", i, g, w)
			}
		}
	}
	if !maps.Equal(got.Env, want.Env) {
		t.Errorf("Env:\n got %q\nwant %q", got.Env, want.Env)
	}
	g, w := *got, *want
	g.Applications, w.Applications = nil, nil
	g.Warnings, w.Warnings = nil, nil
	g.Env, w.Env = nil, nil
	if g.File != w.File || g.Dir != w.Dir || g.Schema != w.Schema || g.Entrypoint != w.Entrypoint ||
		g.Workers != w.Workers || g.Server != w.Server || g.Logger != w.Logger ||
		g.RestartOnError != w.RestartOnError || g.GracefulShutdown != w.GracefulShutdown ||
		g.StartTimeout != w.StartTimeout || g.Restart != w.Restart {
		t.Errorf("Config:\n got %+v\nwant %+v", g, w)
	}
}

func TestLoadInvalid(t *testing.T) {
	td := testdataDir(t)
	tests := []struct {
		file    string
		environ []string
		want    []string // Error() lines; "{TD}" is the absolute testdata directory
	}{
		{file: "syntax.json", want: []string{
			`{TD}/invalid/syntax.json:3:43: invalid character '}' looking for beginning of object key string`,
		}},
		{file: "truncated.json", want: []string{
			`{TD}/invalid/truncated.json:5:1: unexpected end of file; the JSON value is not complete`,
		}},
		{file: "trailing.json", want: []string{
			`{TD}/invalid/trailing.json:2:1: unexpected data after the top-level JSON value`,
		}},
		{file: "not-object.json", want: []string{
			`{TD}/invalid/not-object.json: expected a JSON object at the top level, got an array`,
		}},
		{file: "app-config.json", want: []string{
			`{TD}/invalid/app-config.json: /application/basePathh: unknown key "basePathh" (did you mean "basePath"?)`,
		}},
		{file: "unknown-keys.json", want: []string{
			`{TD}/invalid/unknown-keys.json: /entrypiont: unknown key "entrypiont" (did you mean "entrypoint"?)`,
			`{TD}/invalid/unknown-keys.json: /server/prot: unknown key "prot" (did you mean "port"?)`,
			`{TD}/invalid/unknown-keys.json: /autoload/exlude: unknown key "exlude" (did you mean "exclude"?)`,
			`{TD}/invalid/unknown-keys.json: /zzz: unknown key "zzz"`,
		}},
		{file: "types.json", want: []string{
			`{TD}/invalid/types.json: /server/hostname: expected string, got an array`,
			`{TD}/invalid/types.json: /server/port: expected integer from 0 to 65535, got 70000`,
			`{TD}/invalid/types.json: /logger/level: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "warning" (did you mean "warn"?)`,
			`{TD}/invalid/types.json: /workers: expected integer from 1 to 512, got 0`,
			`{TD}/invalid/types.json: /restartOnError: expected boolean or number from 0 to 2147483647, got "soon"`,
			`{TD}/invalid/types.json: /gracefulShutdown/runtime: expected number from 1 to 2147483647, got 0`,
			`{TD}/invalid/types.json: /startTimeout: expected number from 0 to 2147483647, got -1`,
			`{TD}/invalid/types.json: /startupConcurrency: expected integer from 1 to 4096, got 0`,
			`{TD}/invalid/types.json: /env/NESTED: expected string, got an object`,
			`{TD}/invalid/types.json: /restart/maxRestarts: expected integer from 0 to 1000000, got 1.5`,
			`{TD}/invalid/types.json: /applications/0/workers/static: expected integer from 1 to 512, got "many"`,
		}},
		{file: "standby.json", want: []string{
			`{TD}/invalid/standby.json: /applications/0/standby: expected integer from 0 to 16, got -1`,
			`{TD}/invalid/standby.json: /applications/1/standby: expected integer from 0 to 16, got 1.5`,
			`{TD}/invalid/standby.json: /applications/2/standby: expected integer from 0 to 16, got "one"`,
			`{TD}/invalid/standby.json: /autoload/mappings/other/standby: expected integer from 0 to 16, got 17`,
		}},
		{file: "placeholder-port.json", environ: []string{"PLT_PORT=abc"}, want: []string{
			`{TD}/invalid/placeholder-port.json: /server/port: expected integer from 0 to 65535, got "abc" (the value of PLT_PORT)`,
		}},
		{file: "missing-var.json", want: []string{
			`{TD}/invalid/missing-var.json: /server/port: environment variable "PLT_MISSING_PORT" is not set`,
			`{TD}/invalid/missing-var.json: /applications/0/env/URL: environment variable "PLT_SCHEME" is not set`,
			`{TD}/invalid/missing-var.json: /applications/0/env/URL: environment variable "PLT_HOST" is not set`,
		}},
		{file: "required.json", want: []string{
			`{TD}/invalid/required.json: /autoload: missing required key "path"`,
			`{TD}/invalid/required.json: /applications/0: missing required key "id"`,
		}},
		// A path written but rejected is not also "missing".
		{file: "empty-path.json", want: []string{
			`{TD}/invalid/empty-path.json: /applications/0/path: expected non-empty string, got ""`,
			`{TD}/invalid/empty-path.json: /applications/1/path: expected non-empty string, got null`,
		}},
		{file: "dup-key.json", want: []string{
			`{TD}/invalid/dup-key.json: /entrypoint: key "entrypoint" appears more than once in this object`,
		}},
		{file: "entrypoint.json", want: []string{
			`{TD}/invalid/entrypoint.json: /entrypoint: no application has id "ap" (known: api, web; did you mean "api"?)`,
		}},
		{file: "no-entrypoint.json", want: []string{
			`{TD}/invalid/no-entrypoint.json: "entrypoint" is required when there are several applications; set it to one of: api, web`,
		}},
		{file: "no-apps.json", want: []string{
			`{TD}/invalid/no-apps.json: no applications to run: list them in "applications" or use "autoload"`,
		}},
		{file: "disabled-entrypoint.json", want: []string{
			`{TD}/invalid/disabled-entrypoint.json: /entrypoint: application "web" is disabled ("enabled": false) and cannot be the entrypoint`,
		}},
		{file: "disabled-dependency.json", want: []string{
			`{TD}/invalid/disabled-dependency.json:4: /applications/0/dependencies/0: application "web" is disabled ("enabled": false) and cannot be a dependency; enable it or remove the dependency`,
		}},
		{file: "env-names.json", want: []string{
			`{TD}/invalid/env-names.json: /env/A=B: invalid environment variable name "A=B": expected a non-empty name without "=" or NUL bytes`,
			`{TD}/invalid/env-names.json: /applications/0/env/: invalid environment variable name "": expected a non-empty name without "=" or NUL bytes`,
			`{TD}/invalid/env-names.json: /applications/0/env/NUL: the value of NUL contains a NUL byte, which no process environment can hold`,
		}},
		{file: "ids.json", want: []string{
			`{TD}/invalid/ids.json: /applications/1/id: application id "API" is already used by the application at /applications/0`,
			`{TD}/invalid/ids.json: /applications/2/id: invalid application id "my_app": must be usable as a DNS label: letters, digits and dashes, starting and ending with a letter or digit`,
			`{TD}/invalid/ids.json: /applications/3/path: directory {TD}/apps/missing does not exist`,
			`{TD}/invalid/ids.json: /applications/4/path: {TD}/apps/api/package.json is not a directory`,
			`{TD}/invalid/ids.json: /applications/5: missing required key "path"; wattd runs local applications only, so "url" cannot replace it`,
		}},
		{file: "autoload-missing.json", want: []string{
			`{TD}/invalid/autoload-missing.json: /autoload/path: directory {TD}/invalid/no-such-dir does not exist`,
		}},
		{file: "envfile-missing.json", want: []string{
			`{TD}/invalid/envfile-missing.json: /envfile: env file {TD}/invalid/missing.env does not exist`,
			`{TD}/invalid/envfile-missing.json: /applications/0/envfile: env file {TD}/invalid/missing.env does not exist`,
		}},
		{file: "restart.json", want: []string{
			`{TD}/invalid/restart.json: /server/hostname: write the IPv6 address without brackets: "::1"`,
			`{TD}/invalid/restart.json: /restart/maxDelay: maxDelay (1s) is shorter than initialDelay (5s)`,
		}},
		{file: "baddotenv/watt.json", want: []string{
			`{TD}/invalid/baddotenv/.env:2: the quoted value of BAD is never closed`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load("testdata/invalid", filepath.Join("testdata/invalid", tt.file), tt.environ)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			got := strings.Split(err.Error(), "\n")
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.ReplaceAll(w, "{TD}", td)
			}
			if got := withoutLines(got, want); !slices.Equal(got, want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
			var list ErrorList
			var one *Error
			switch {
			case len(want) > 1 && !errors.As(err, &list):
				t.Errorf("%d problems, but the error is %T, not ErrorList", len(want), err)
			case len(want) == 1 && !errors.As(err, &one):
				t.Errorf("one problem, but the error is %T, not *Error", err)
			}
		})
	}
}

func TestLoadErrorFields(t *testing.T) {
	td := testdataDir(t)
	_, err := Load("testdata/invalid", "testdata/invalid/entrypoint.json", nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not a *Error", err)
	}
	want := Error{File: filepath.Join(td, "invalid/entrypoint.json"), Pointer: "/entrypoint",
		Message: `no application has id "ap" (known: api, web; did you mean "api"?)`}
	if e.File != want.File || e.Pointer != want.Pointer || e.Message != want.Message || e.Line != 2 {
		t.Errorf("got %+v, want %+v", *e, want)
	}

	_, err = Load("testdata/invalid", "testdata/invalid/syntax.json", nil)
	if !errors.As(err, &e) || e.Line != 3 || e.Column != 43 || e.Pointer != "" {
		t.Errorf("syntax error: got %#v", err)
	}

	_, err = Load("testdata/invalid", "testdata/invalid/envfile-missing.json", nil)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrInvalid) {
		t.Errorf("missing envfile: %v should wrap both ErrInvalid and fs.ErrNotExist", err)
	}
}

func TestLoadNotFound(t *testing.T) {
	td := testdataDir(t)
	tests := []struct {
		name, dir, file string
		want            string
	}{
		{
			name: "no config in the project directory",
			dir:  "testdata/apps",
			want: "no configuration file: {TD}/apps/watt.json does not exist (nor does platformatic.json, watt.yaml, watt.toml or any other name Watt reads in that directory); wattd init writes one for the applications it finds there",
		},
		{
			name: "missing explicit file",
			dir:  "testdata",
			file: "testdata/nope.json",
			want: "configuration file {TD}/nope.json does not exist",
		},
		{
			name: "missing project directory",
			dir:  "testdata/nowhere",
			want: "project directory {TD}/nowhere does not exist",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.dir, tt.file, nil)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("error %v does not wrap fs.ErrNotExist", err)
			}
			if errors.Is(err, ErrInvalid) {
				t.Errorf("a missing file is not an invalid configuration: %v", err)
			}
			want := strings.ReplaceAll(tt.want, "{TD}", td)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got %q, want it to start with %q", err, want)
			}
		})
	}
}
