package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRestartOnError(t *testing.T) {
	tests := []struct {
		raw  string
		want RestartOnError
	}{
		{"", RestartOnError{Enabled: true, Delay: DefaultRestartDelay}},
		{"true", RestartOnError{Enabled: true, Delay: DefaultRestartDelay}},
		{"false", RestartOnError{}},
		{"0", RestartOnError{}},
		{"5", RestartOnError{Enabled: true}}, // below 10 ms: at once
		{"10", RestartOnError{Enabled: true, Delay: 10 * time.Millisecond}},
		{"1500", RestartOnError{Enabled: true, Delay: 1500 * time.Millisecond}},
		{"2.5e3", RestartOnError{Enabled: true, Delay: 2500 * time.Millisecond}},
	}
	for _, tt := range tests {
		var l loader
		if got := l.restartOnError("/restartOnError", json.RawMessage(tt.raw)); got != tt.want || len(l.durationProblems) > 0 {
			t.Errorf("restartOnError(%s) = %+v, want %+v", tt.raw, got, tt.want)
		}
	}
}

func TestUnitDuration(t *testing.T) {
	n := func(s string) *json.Number { v := json.Number(s); return &v }
	tests := []struct {
		in   *json.Number
		unit time.Duration
		want time.Duration
		err  string
	}{
		{nil, time.Millisecond, time.Minute, ""},
		{n("0"), time.Millisecond, 0, ""},
		{n("1"), time.Millisecond, time.Millisecond, ""},
		{n("0.5"), time.Millisecond, 500 * time.Microsecond, ""},
		{n("2147483647"), time.Millisecond, 2147483647 * time.Millisecond, ""},
		{n("2147483647"), time.Second, 2147483647 * time.Second, ""},
		// Beyond time.Duration: refused, never wrapped to a negative.
		{n("1e20"), time.Millisecond, time.Minute, "expected a duration from 0 to about 292 years, got 1e20"},
		{n("1e10"), time.Second, time.Minute, "expected a duration from 0 to about 292 years, got 1e10"},
		{n("9223372036854775807"), time.Nanosecond, time.Minute, "expected a duration from 0 to about 292 years, got 9223372036854775807"},
		{n("1e300"), time.Second, time.Minute, "expected a duration from 0 to about 292 years, got 1e300"},
		{n("1e400"), time.Second, time.Minute, "expected a duration from 0 to about 292 years, got 1e400"},
		{n("-1"), time.Second, time.Minute, "expected a duration from 0 to about 292 years, got -1"},
	}
	for _, tt := range tests {
		got, err := unitDuration(tt.in, tt.unit, time.Minute)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if got != tt.want || msg != tt.err {
			t.Errorf("unitDuration(%v, %v) = %v, %q; want %v, %q", tt.in, tt.unit, got, msg, tt.want, tt.err)
		}
	}
}

func TestLayered(t *testing.T) {
	tests := []struct {
		name   string
		layers []map[string]string
		want   map[string]string
	}{
		{name: "none", want: map[string]string{}},
		{name: "first wins", layers: []map[string]string{{"A": "1"}, {"A": "2", "B": "2"}, nil, {"C": "3"}},
			want: map[string]string{"A": "1", "B": "2", "C": "3"}},
	}
	for _, tt := range tests {
		if got := layered(tt.layers...); !maps.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRawWorkers(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{`{"workers": 3}`, 3},
		{`{"workers": {"static": 4}}`, 4},
		{`{"workers": {}}`, DefaultWorkers},
	}
	for _, tt := range tests {
		var app rawApp
		if err := json.Unmarshal([]byte(tt.in), &app); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := intOr(app.Workers.count, DefaultWorkers); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.in, got, tt.want)
		}
	}
}

// writeProject lays out a throwaway project for the cases that need a
// filesystem shape testdata cannot hold, such as an unreadable file.
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadAutoloadAndEnvfiles(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		environ []string
		check   func(t *testing.T, c *Config)
		wantErr []string // substrings, one per reported problem; "{DIR}" is the project directory
	}{
		{
			name: "explicit entry with the same id takes over the autoloaded directory",
			files: map[string]string{
				"watt.json":          `{"entrypoint":"api","autoload":{"path":"apps"},"applications":[{"id":"api","path":"elsewhere","workers":2}]}`,
				"apps/api/index.js":  "",
				"apps/web/index.js":  "",
				"elsewhere/index.js": "",
				"apps/.git/HEAD":     "",
				"apps/not-a-dir.txt": "",
			},
			check: func(t *testing.T, c *Config) {
				if len(c.Applications) != 2 || c.Applications[0].ID != "api" || c.Applications[0].Workers != 2 ||
					!strings.HasSuffix(c.Applications[0].Path, "elsewhere") || c.Applications[1].ID != "web" {
					t.Errorf("applications: %+v", c.Applications)
				}
			},
		},
		{
			name: "autoloaded directory name that is not a valid id",
			files: map[string]string{
				"watt.json":           `{"autoload":{"path":"apps"}}`,
				"apps/My_App/main.js": "",
			},
			wantErr: []string{`{DIR}/watt.json: /autoload/path: directory "My_App" would become application id "My_App", which is invalid`},
		},
		{
			name: "mapping id clashes with another directory",
			files: map[string]string{
				"watt.json":       `{"entrypoint":"b","autoload":{"path":"apps","mappings":{"a":{"id":"b"}}}}`,
				"apps/a/index.js": "",
				"apps/b/index.js": "",
			},
			wantErr: []string{`{DIR}/watt.json: /autoload/path: application id "b" is already used by the application autoloaded from {DIR}/apps/a`},
		},
		{
			name: "envfile names come from placeholders; application envfile is relative to the file naming it",
			files: map[string]string{
				"watt.json":        `{"envfile":"{PLT_ENVFILE}","applications":[{"id":"api","path":"api","envfile":"api/conf/app.env","env":{"FROM_RUNTIME_FILE":"{RUNTIME_VALUE}"}}]}`,
				".env":             "PLT_ENVFILE=runtime.env\n",
				"runtime.env":      "RUNTIME_VALUE=rt\n",
				"api/conf/app.env": "APP_VALUE=app\n",
				"api/.env":         "IGNORED_WHEN_ENVFILE_SET=1\n",
			},
			check: func(t *testing.T, c *Config) {
				want := map[string]string{"PLT_ENVFILE": "runtime.env", "RUNTIME_VALUE": "rt", "APP_VALUE": "app", "FROM_RUNTIME_FILE": "rt"}
				if got := c.Applications[0].Env; !maps.Equal(got, want) {
					t.Errorf("env: got %v, want %v", got, want)
				}
			},
		},
		{
			name: "application envfile missing and application .env broken",
			files: map[string]string{
				"watt.json":  `{"entrypoint":"a","applications":[{"id":"a","path":"a","envfile":"none.env"},{"id":"b","path":"b"}]}`,
				"a/index.js": "",
				"b/.env":     "A=\"oops\n",
			},
			wantErr: []string{
				`{DIR}/watt.json: /applications/0/envfile: env file {DIR}/none.env does not exist`,
				`{DIR}/b/.env:1: the quoted value of A is never closed`,
			},
		},
		{
			name: "PLT_ROOT wins over the process environment",
			files: map[string]string{
				"watt.json":  `{"applications":[{"id":"a","path":"{PLT_ROOT}/a"}]}`,
				"a/index.js": "",
			},
			environ: []string{"PLT_ROOT=/somewhere/else"},
			check: func(t *testing.T, c *Config) {
				if want := filepath.Join(c.Dir, "a"); c.Applications[0].Path != want {
					t.Errorf("path %s, want %s", c.Applications[0].Path, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, tt.files)
			c, err := Load(dir, "", tt.environ)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("Load succeeded")
				}
				lines := strings.Split(err.Error(), "\n")
				if len(lines) != len(tt.wantErr) {
					t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tt.wantErr), err)
				}
				for i, w := range tt.wantErr {
					if w = strings.ReplaceAll(w, "{DIR}", dir); !strings.Contains(withoutLine(lines[i], w), w) {
						t.Errorf("problem %d:\n got %s\nwant %s", i, lines[i], w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadUnreadableConfig(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can read anything")
	}
	dir := writeProject(t, map[string]string{"watt.json": "{}"})
	if err := os.Chmod(filepath.Join(dir, "watt.json"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir, "", nil)
	if !errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want a permission error that is not ErrInvalid", err)
	}
}

// TestScalerBoundsWarn: dynamic-worker bounds the scaler takes but cannot
// honour are warned about (minimum above maximum is swapped, as Watt does,
// without a word).
func TestScalerBoundsWarn(t *testing.T) {
	tests := []struct {
		name, cfg string
		want      []string
	}{
		{"consistent", `{"entrypoint": "a", "workers": {"dynamic": true, "minimum": 1, "maximum": 4, "total": 4},
			"applications": [{"id": "a", "path": "a"}, {"id": "b", "path": "b"}]}`, nil},
		{"total equal to the minimums", `{"entrypoint": "a", "workers": {"dynamic": true, "total": 2},
			"applications": [{"id": "a", "path": "a"}, {"id": "b", "path": "b"}]}`, []string{
			`watt.json:1: /workers/total: total 2 leaves no room above the 2 workers the applications' minimums (and fixed counts) add up to: the scaler never adds a worker`,
		}},
		{"the attack's", `{"entrypoint": "a", "workers": {"dynamic": true, "minimum": 4, "maximum": 2, "total": 1, "scaleUpELU": 0.1, "scaleDownELU": 0.5},
			"applications": [{"id": "a", "path": "a"}]}`, []string{
			`watt.json:1: /workers/total: total 1 leaves no room above the 2 workers the applications' minimums (and fixed counts) add up to: the scaler never adds a worker`,
			`watt.json:1: /workers/scaleUpELU: scaleUpELU 0.1 is not above scaleDownELU 0.5: the scaler would add a worker and take it away again`,
		}},
		{"fixed counts and an application's own thresholds", `{"entrypoint": "a", "verticalScaler": {"maxTotalWorkers": 3},
			"applications": [{"id": "a", "path": "a", "workers": {"minimum": 2, "scaleUpELU": 0.3, "scaleDownELU": 0.3}}, {"id": "b", "path": "b", "workers": 2}]}`, []string{
			`watt.json:1: /verticalScaler/maxTotalWorkers: total 3 leaves no room above the 4 workers the applications' minimums (and fixed counts) add up to: the scaler never adds a worker`,
			`watt.json:2: /applications/0/workers: application "a": scaleUpELU 0.3 is not above scaleDownELU 0.3: the scaler would add a worker and take it away again`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadProject(t, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range cfg.Warnings {
				got = append(got, w[strings.LastIndex(w, "/watt.json:")+1:])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("warnings:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
