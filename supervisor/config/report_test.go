package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOneReport: the schema's complaints and the checks it cannot express
// arrive together, in document order, without echoes of a value already
// found wrong; a value that came from a placeholder names its variable.
func TestOneReport(t *testing.T) {
	tests := []struct {
		name    string
		cfg     string
		environ []string
		check   AppCheck
		want    []string // "{D}" is the project directory
	}{
		{
			name: "unknown key, bad port from a variable, unknown entrypoint, missing directory",
			cfg: `{"workerz": 1, "entrypoint": "nope", "server": {"port": "{MYPORT}"},
				"applications": [{"id": "web", "path": "./missing"}]}`,
			environ: []string{"MYPORT=99999"},
			want: []string{
				`{D}/watt.json: /workerz: unknown key "workerz" (did you mean "workers"?)`,
				`{D}/watt.json: /entrypoint: no application has id "nope" (known: web)`,
				`{D}/watt.json: /server/port: expected integer from 0 to 65535, got 99999 (the value of MYPORT)`,
				`{D}/watt.json: /applications/0/path: directory {D}/missing does not exist`,
			},
		},
		{
			name: "a type error beside a semantic one",
			cfg: `{"logger": {"level": "warning"}, "restart": {"initialDelay": 5000, "maxDelay": 1000},
				"applications": [{"id": "web", "path": "./a"}]}`,
			want: []string{
				`{D}/watt.json: /logger/level: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "warning" (did you mean "warn"?)`,
				`{D}/watt.json: /restart/maxDelay: maxDelay (1s) is shorter than initialDelay (5s)`,
			},
		},
		{
			name: "rejected values have no echoes",
			cfg: `{"entrypoint": "web", "applications": [
				{"id": "web", "path": "./a", "workers": "many"},
				{"path": "./b"},
				{"id": 7, "path": "./b"},
				{"id": "bad_id", "path": "./nowhere"}]}`,
			want: []string{
				`{D}/watt.json: /applications/0/workers: expected integer from 1 to 512 or object, got "many"`,
				`{D}/watt.json: /applications/1: missing required key "id"`,
				`{D}/watt.json: /applications/3/id: invalid application id "bad_id": must be usable as a DNS label: letters, digits and dashes, starting and ending with a letter or digit`,
				`{D}/watt.json: /applications/3/path: directory {D}/nowhere does not exist`,
			},
		},
		{
			name:    "an unset variable beside a schema problem",
			cfg:     `{"strictEnv": true, "server": {"port": "{NOPE}", "hostname": ["x"]}, "applications": [{"id": "web", "path": "./a"}]}`,
			environ: nil,
			want: []string{
				`{D}/watt.json: /server/port: environment variable "NOPE" is not set`,
				`{D}/watt.json: /server/hostname: expected string, got an array`,
			},
		},
		{
			name: "redact paths pino would not take",
			cfg: `{"logger": {"redact": {"paths": ["ok.path", "a[", "b..c"]}},
				"applications": [{"id": "web", "path": "./a"}]}`,
			want: []string{
				`{D}/watt.json: /logger/redact/paths/1: "a[" is not a redact path: unclosed [ at offset 1`,
				`{D}/watt.json: /logger/redact/paths/2: "b..c" is not a redact path: empty member at offset 2`,
			},
		},
		{
			name:    "a host name from a variable",
			cfg:     `{"server": {"hostname": "{HOST}"}, "applications": [{"id": "web", "path": "./a"}]}`,
			environ: []string{"HOST=[::1]"},
			want: []string{
				`{D}/watt.json: /server/hostname: write the IPv6 address without brackets: "::1" (the value of HOST)`,
			},
		},
		{
			// A secret quoted back would land in a terminal, a CI log, a
			// journal: it is masked, wherever the message quotes it.
			name: "values of secret variables",
			cfg: `{"server": {"port": "{DB_PASSWORD}"}, "entrypoint": "{API_TOKEN}",
				"applications": [{"id": "web", "path": "./a", "envfile": "x-{DB_PASSWORD}"}]}`,
			environ: []string{"DB_PASSWORD=hunter2pw", "API_TOKEN=tok\"en"},
			want: []string{
				`{D}/watt.json: /server/port: expected integer from 0 to 65535, got "[redacted]" (the value of DB_PASSWORD)`,
				`{D}/watt.json: /entrypoint: no application has id "[redacted]" (known: web) (the value of API_TOKEN)`,
				`{D}/watt.json: /applications/0/envfile: env file {D}/x-[redacted] does not exist (the value of DB_PASSWORD)`,
			},
		},
		{
			// Left empty, the password would let anyone in.
			name:    "metrics credentials from an unset variable",
			cfg:     `{"metrics": {"auth": {"username": "scraper", "password": "{METRICS_PW}"}}, "applications": [{"id": "web", "path": "./a"}]}`,
			environ: nil,
			want: []string{
				`{D}/watt.json: /metrics/auth/password: empty: a credential cannot be left empty by a variable that is not set (METRICS_PW not set)`,
			},
		},
		{
			name:    "a value made from two variables",
			cfg:     `{"server": {"port": "{P1}{P2}"}, "applications": [{"id": "web", "path": "./a"}]}`,
			environ: []string{"P1=9", "P2=99999"},
			want: []string{
				`{D}/watt.json: /server/port: expected integer from 0 to 65535, got 999999 (made from P1, P2)`,
			},
		},
		{
			name: "the application check joins the report, at the key it names",
			cfg: `{"workerz": 1, "entrypoint": "web", "applications": [
				{"id": "web", "path": "./a"},
				{"id": "api", "path": "./b", "capability": "nodejs"},
				{"id": "broken", "path": "./a", "capability": "Not A Name!"}]}`,
			check: func(app Application) (string, error) {
				switch {
				case app.ID == "broken":
					return "", errors.New("checked an application with a rejected key")
				case app.Capability != "":
					return "capability", errors.New(`unknown capability "nodejs"`)
				case app.ID == "web":
					return "path", errors.New("no capability recognises " + filepath.Base(app.Path))
				}
				return "", nil
			},
			want: []string{
				`{D}/watt.json: /workerz: unknown key "workerz" (did you mean "workers"?)`,
				`{D}/watt.json: /applications/0/path: no capability recognises a`,
				`{D}/watt.json: /applications/1/capability: unknown capability "nodejs"`,
				`{D}/watt.json: /applications/2/capability: expected string matching ^[a-z][a-z0-9-]*$, got "Not A Name!"`,
			},
		},
		{
			// An autoloaded application's keys are its mapping's.
			name: "the application check at a key of an autoload mapping",
			cfg:  `{"entrypoint": "web", "autoload": {"path": ".", "mappings": {"a": {"id": "web", "nodeOptions": "'x"}}}}`,
			check: func(app Application) (string, error) {
				if app.NodeOptions != "" {
					return "nodeOptions", errors.New("unterminated single quote")
				}
				return "", nil
			},
			want: []string{
				`{D}/watt.json: /autoload/mappings/a/nodeOptions: unterminated single quote`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"a", "b"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(tt.cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadChecked(dir, "", tt.environ, tt.check)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("want an invalid configuration, got %v", err)
			}
			got := strings.Split(err.Error(), "\n")
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.ReplaceAll(w, "{D}", dir)
			}
			if got := withoutLines(got, want); !slices.Equal(got, want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
		})
	}
}

// TestEnvScalarsBecomeStrings: numbers and booleans in env blocks are
// accepted and turned into strings, as Watt does.
func TestEnvScalarsBecomeStrings(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgText := `{"env": {"N": 1, "B": true, "F": 1.50, "E": 1e3, "S": "s"},
		"applications": [{"id": "web", "path": "./a", "env": {"PORTISH": 8080, "OFF": false}}]}`
	if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// As JavaScript writes the numbers (Watt: String(n)).
	want := map[string]string{"N": "1", "B": "true", "F": "1.5", "E": "1000", "S": "s", "PORTISH": "8080", "OFF": "false"}
	for k, v := range want {
		if got := cfg.Applications[0].Env[k]; got != v {
			t.Errorf("env %s = %q, want %q", k, got, v)
		}
	}
}

// lineRef is the line a problem in a JSON file names after the file.
var lineRef = regexp.MustCompile(`(\.(?:json|json5|yaml|yml|toml|tml)):\d+: `)

// withoutLine is got without the line it names after a file, when want
// names none: most tests here are about the messages, and
// TestProblemsNameTheirLine about the lines.
func withoutLine(got, want string) string {
	if lineRef.MatchString(want) {
		return got
	}
	return lineRef.ReplaceAllString(got, "$1: ")
}

// withoutLines is withoutLine over lists compared line by line.
func withoutLines(got, want []string) []string {
	out := make([]string, len(got))
	for i, g := range got {
		w := ""
		if i < len(want) {
			w = want[i]
		}
		out[i] = withoutLine(g, w)
	}
	return out
}

// TestProblemsNameTheirLine: every problem in a JSON file names the line of
// the value it is about, not only syntax errors.
func TestProblemsNameTheirLine(t *testing.T) {
	const text = `{
  "entrypoint": "a",
  "workers": "two",
  "applications": [
    {
      "id": "a",
      "path": "a",
      "env": {"N": {"x": 1}}
    }
  ],
  "server": {"port": 70000}
}
`
	// Lines end as an editor on any system may end them.
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a", "index.js"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(strings.ReplaceAll(text, "\n", eol)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadWith(Options{Dir: dir})
		if err == nil {
			t.Fatal("Load succeeded")
		}
		f := filepath.Join(dir, "watt.json")
		for _, want := range []string{
			f + `:3: /workers: expected`,
			f + `:8: /applications/0/env/N: expected string`,
			f + `:11: /server/port: expected integer from 0 to 65535, got 70000`,
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q line ends: the report lacks %q:\n%v", eol, want, err)
			}
		}
	}
}

// TestAppFileKeyInTheReport: a problem the application check finds with a
// key of the application's own file (node.main naming no file) is
// reported in that file, at that key, and beside the file's other
// problems; it was reported at the runtime file's entry, and not at all
// when the application's file had a problem of its own.
func TestAppFileKeyInTheReport(t *testing.T) {
	check := func(app Application) (string, error) {
		switch {
		case app.Watt.Main != "":
			return "node.main", errors.New("node.main names a missing file")
		case app.ID == "b":
			return "", errors.New("a consequence of the file's own problem")
		}
		return "", nil
	}
	tests := []struct {
		name    string
		appFile string
		want    []string // "{A}" is the application's file
	}{
		{"alone", `{"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.65.0.json",
  "node": {"main": "missing.js"}}`,
			[]string{`{A}:2: /node/main: node.main names a missing file`}},
		{"beside a problem of the file", `{"$schema": "https://schemas.platformatic.dev/@platformatic/node/3.65.0.json",
  "node": {"main": "missing.js",
    "hasServer": "maybe"}}`,
			[]string{
				`{A}:3: /node/hasServer: expected a boolean, got "maybe"`,
				`{A}:2: /node/main: node.main names a missing file`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"a", "b"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			appFile := filepath.Join(dir, "a", "watt.json")
			for file, text := range map[string]string{
				filepath.Join(dir, "watt.json"): `{"entrypoint": "a", "autoload": {"path": "."}}`,
				appFile:                         tt.appFile,
				// b's file has a problem, and no key the check could name.
				filepath.Join(dir, "b", "watt.json"): `{"node": {"hasServer": 1}}`,
			} {
				if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadChecked(dir, "", nil, check)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("want an invalid configuration, got %v", err)
			}
			want := []string{filepath.Join(dir, "b", "watt.json") + `:1: /node/hasServer: expected a boolean, got 1`}
			for _, w := range tt.want {
				want = append(want, strings.ReplaceAll(w, "{A}", appFile))
			}
			got := strings.Split(err.Error(), "\n")
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
		})
	}
}
