package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		msg  string // part of the message, "" when valid
	}{
		{`536870912`, 512 << 20, ""},
		{`"536870912"`, 512 << 20, ""},
		{`"512MiB"`, 512 << 20, ""},
		{`"512 MiB"`, 512 << 20, ""},
		{`"512mib"`, 512 << 20, ""},
		{`"512MB"`, 512 << 20, ""},
		{`"512m"`, 512 << 20, ""},
		{`"1.5GiB"`, 3 << 29, ""},
		{`"1GB"`, 1 << 30, ""},
		{`"2KiB"`, 2048, ""},
		{`"2KB"`, 2048, ""},
		{`"100B"`, 100, ""},
		{`"1TiB"`, 1 << 40, ""},
		{`"512Mi"`, 0, `did you mean 512MiB?`},
		{`"512 bananas"`, 0, `unknown unit "bananas"`},
		{`"-5MiB"`, 0, `expected a number and a unit`},
		{`"MiB"`, 0, `expected a number and a unit`},
		{`"9999999TiB"`, 0, `too large`},
		{`1.5`, 0, `not a whole number of bytes`},
		// Whole numbers in exponent form, as Watt reads them.
		{`2e9`, 2e9, ""},
		{`"1e3"`, 1000, ""},
		{`1.5e3`, 1500, ""},
		{`1.5e-1`, 0, `not a whole number of bytes`},
		{`9999999999999999999`, 0, `out of range`},
		{`9223372036854775807`, 0, `out of range`},
		{`1e400`, 0, `out of range`},
	}
	for _, tt := range tests {
		got, msg := parseSize(json.RawMessage(tt.in))
		if tt.msg == "" && (msg != "" || got != tt.want) {
			t.Errorf("parseSize(%s) = %d, %q; want %d", tt.in, got, msg, tt.want)
		}
		if tt.msg != "" && !strings.Contains(msg, tt.msg) {
			t.Errorf("parseSize(%s) = %d, %q; want a message with %q", tt.in, got, msg, tt.msg)
		}
	}
}

// loadResources loads a project with applications "web" and "api" whose
// watt.json has the given runtime-level extra keys and app-level extras.
func loadResources(t *testing.T, runtime, web, api string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"web", "api"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "index.js"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `{` + runtime + `"entrypoint": "web", "applications": [
		{` + web + `"id": "web", "path": "web"},
		{` + api + `"id": "api", "path": "api"}]}`
	if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(dir, "", []string{"MEM=256MiB"})
}

func TestResourcesResolvePerApplication(t *testing.T) {
	tests := []struct {
		name          string
		runtime       string
		web, api      string
		wantWeb, want Resources // want is api's
		wantRuntime   Resources
	}{
		{name: "none: no limits"},
		{
			name:        "runtime default reaches every application",
			runtime:     `"resources": {"memory": "512MiB", "memoryHigh": "400MiB", "cpus": 1.5, "pids": 256}, `,
			wantRuntime: Resources{Memory: 512 << 20, MemoryHigh: 400 << 20, CPUs: 1.5, Pids: 256},
			wantWeb:     Resources{Memory: 512 << 20, MemoryHigh: 400 << 20, CPUs: 1.5, Pids: 256},
			want:        Resources{Memory: 512 << 20, MemoryHigh: 400 << 20, CPUs: 1.5, Pids: 256},
		},
		{
			name:        "an application overrides key by key",
			runtime:     `"resources": {"memory": "512MiB", "cpus": 1.5, "pids": 256}, `,
			api:         `"resources": {"memory": 1073741824, "pids": 32}, `,
			wantRuntime: Resources{Memory: 512 << 20, CPUs: 1.5, Pids: 256},
			wantWeb:     Resources{Memory: 512 << 20, CPUs: 1.5, Pids: 256},
			want:        Resources{Memory: 1 << 30, CPUs: 1.5, Pids: 32},
		},
		{
			// Whole numbers written as JSON allows: they were dropped
			// without a word, leaving no pids limit.
			name:        "pids written 100.0 or 1e3",
			runtime:     `"resources": {"pids": 100.0}, `,
			api:         `"resources": {"pids": 1e3}, `,
			wantRuntime: Resources{Pids: 100},
			wantWeb:     Resources{Pids: 100},
			want:        Resources{Pids: 1000},
		},
		{
			name:    "application only, with a placeholder",
			web:     `"resources": {"memory": "{MEM}", "memoryHigh": "200MiB"}, `,
			wantWeb: Resources{Memory: 256 << 20, MemoryHigh: 200 << 20},
		},
		{
			name:        "an application may raise memory above the runtime's memoryHigh",
			runtime:     `"resources": {"memory": "512MiB", "memoryHigh": "400MiB"}, `,
			api:         `"resources": {"memory": "2GiB", "memoryHigh": "1GiB"}, `,
			wantRuntime: Resources{Memory: 512 << 20, MemoryHigh: 400 << 20},
			wantWeb:     Resources{Memory: 512 << 20, MemoryHigh: 400 << 20},
			want:        Resources{Memory: 2 << 30, MemoryHigh: 1 << 30},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadResources(t, tt.runtime, tt.web, tt.api)
			if err != nil {
				t.Fatal(err)
			}
			if c.Resources != tt.wantRuntime {
				t.Errorf("runtime resources %+v, want %+v", c.Resources, tt.wantRuntime)
			}
			got := map[string]Resources{}
			for _, a := range c.Applications {
				got[a.ID] = a.Resources
			}
			if got["web"] != tt.wantWeb || got["api"] != tt.want {
				t.Errorf("web %+v api %+v; want web %+v api %+v", got["web"], got["api"], tt.wantWeb, tt.want)
			}
			if len(c.Warnings) != 0 {
				t.Errorf("warnings: %v", c.Warnings)
			}
		})
	}
}

func TestResourcesInvalid(t *testing.T) {
	tests := []struct {
		name          string
		runtime, web  string
		want          []string // each a line of the report
		wantNotInside string
	}{
		{
			name:    "memoryHigh above memory at the runtime level, reported once",
			runtime: `"resources": {"memory": "256MiB", "memoryHigh": "400MiB"}, `,
			want:    []string{"/resources/memoryHigh: memoryHigh (400MiB) is above memory (256MiB)"},
		},
		{
			name:    "an application lowering memory below the runtime's memoryHigh",
			runtime: `"resources": {"memoryHigh": "400MiB"}, `,
			web:     `"resources": {"memory": "256MiB"}, `,
			want:    []string{"/applications/0/resources/memory: memoryHigh (400MiB) is above memory (256MiB)"},
		},
		{
			name: "unknown unit",
			web:  `"resources": {"memory": "512MX"}, `,
			want: []string{`/applications/0/resources/memory: invalid size "512MX": unknown unit "MX"`},
		},
		{
			name:    "too small",
			runtime: `"resources": {"memory": 4096}, `,
			want:    []string{"/resources/memory: memory is 4096 bytes; at least 1MiB"},
		},
		{
			name:    "cpus must be above zero",
			runtime: `"resources": {"cpus": 0}, `,
			want:    []string{"/resources/cpus: expected number from 0.01 to 4096, got 0"},
		},
		{
			// The kernel refuses a quota under 1 ms per 100 ms period: a
			// smaller figure would be raised to it without a word.
			name: "cpus under the kernel's least quota",
			web:  `"resources": {"cpus": 0.001}, `,
			want: []string{"/applications/0/resources/cpus: expected number from 0.01 to 4096, got 0.001"},
		},
		{
			name: "pids at least one",
			web:  `"resources": {"pids": 0}, `,
			want: []string{"/applications/0/resources/pids: expected integer from 1 to 4194304, got 0"},
		},
		{
			name: "misspelt key, with a suggestion",
			web:  `"resources": {"memroy": "1GiB"}, `,
			want: []string{`/applications/0/resources/memroy:`, `memory`},
		},
		{
			name:    "relative cgroup root",
			runtime: `"cgroups": {"root": "wattd"}, `,
			want:    []string{`/cgroups/root: "wattd" is not an absolute path`},
		},
		{
			name:    "unknown cgroups key",
			runtime: `"cgroups": {"rot": "/sys/fs/cgroup/x"}, `,
			want:    []string{`/cgroups/rot:`, `root`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadResources(t, tt.runtime, tt.web, "")
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("report lacks %q:\n%v", w, err)
				}
			}
			t.Log(err)
			if n := strings.Count(err.Error(), "memoryHigh ("); n > 1 {
				t.Errorf("conflict reported %d times:\n%v", n, err)
			}
		})
	}
}

func TestCgroupsRoot(t *testing.T) {
	c, err := loadResources(t, `"cgroups": {"root": "/sys/fs/cgroup/wattd-custom"}, `, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Cgroups.Root != "/sys/fs/cgroup/wattd-custom" {
		t.Fatalf("root %q", c.Cgroups.Root)
	}
}

func TestCheckResources(t *testing.T) {
	for _, tt := range []struct {
		r    Resources
		want string
	}{
		{Resources{}, ""},
		{Resources{Memory: 1 << 30, MemoryHigh: 1 << 30}, ""},
		{Resources{MemoryHigh: 1 << 30}, ""},
		{Resources{Memory: 1 << 20, MemoryHigh: 2 << 20}, "memoryHigh (2MiB) is above memory (1MiB): the hard limit would be reached first and memoryHigh never"},
		{Resources{Pids: -1}, "limits cannot be negative"},
	} {
		if got := checkResources(tt.r); got != tt.want {
			t.Errorf("checkResources(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestResourcesOnAutoloadMapping(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"packages/web", "packages/api"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "index.js"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `{"entrypoint": "web", "resources": {"pids": 100},
		"autoload": {"path": "packages", "mappings": {"api": {"id": "api", "resources": {"memory": "64MiB"}}}}}`
	if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Resources{}
	for _, a := range c.Applications {
		got[a.ID] = a.Resources
	}
	if got["api"] != (Resources{Memory: 64 << 20, Pids: 100}) || got["web"] != (Resources{Pids: 100}) {
		t.Fatalf("got %+v", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(strings.Replace(cfg, "64MiB", "64Mi", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir, "", nil)
	if err == nil || !strings.Contains(err.Error(), `/autoload/mappings/api/resources/memory: invalid size "64Mi": did you mean 64MiB?`) {
		t.Fatalf("got %v", err)
	}
}
