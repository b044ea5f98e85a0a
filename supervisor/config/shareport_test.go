package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReuseTCPPorts: the entrypoint's port is shared with other programs
// only when watt.json says true (runtime level or on the entrypoint), and
// any false forbids it.
func TestReuseTCPPorts(t *testing.T) {
	tests := []struct {
		name         string
		runtime, app string // "" leaves the key out
		other        string // on the application that is not the entrypoint
		want         bool
	}{
		{name: "absent: not shared (Watt's default is true; wattd asks for it)", want: false},
		{name: "runtime true", runtime: "true", want: true},
		{name: "entrypoint true", app: "true", want: true},
		{name: "runtime true, entrypoint false", runtime: "true", app: "false", want: false},
		{name: "runtime false, entrypoint true", runtime: "false", app: "true", want: false},
		{name: "only another application says true", other: "true", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"web", "api"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, d, "index.js"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			key := func(v string) string {
				if v == "" {
					return ""
				}
				return `"reuseTcpPorts": ` + v + `, `
			}
			cfg := `{` + key(tt.runtime) + `"entrypoint": "web", "applications": [
				{` + key(tt.app) + `"id": "web", "path": "web"},
				{` + key(tt.other) + `"id": "api", "path": "api"}]}`
			if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(dir, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.SharePort != tt.want {
				t.Fatalf("SharePort = %v, want %v", c.SharePort, tt.want)
			}
			if len(c.Warnings) != 0 {
				t.Fatalf("reuseTcpPorts is a wattd key now, not an ignored Watt option: %v", c.Warnings)
			}
		})
	}
}
