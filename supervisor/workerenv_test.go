package supervisor

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/supervisor/config"
)

func TestWorkerEnviron(t *testing.T) {
	in := []string{
		"PATH=/bin",
		"HOME=/root",
		"LISTEN_FDS=3", "LISTEN_PID=1", "LISTEN_FDNAMES=http",
		"NOTIFY_SOCKET=/run/systemd/notify",
		"WATTD_RUNTIME_DIR=/run/x", "WATTD_LOG_FORMAT=json", "WATTD_FOO=1",
		"WATTD_APP_ID=outer", "WATTD_CONTROL_FD=9", "WATTD_MESH_PROXY=http://x",
		"WATTD_STATS_INTERVAL_MS=100", "WATTD_NODE=/opt/node", "WATTD_GO=/opt/go",
		"WATTDX=kept", // not a WATTD_ variable
	}
	want := []string{
		"PATH=/bin", "HOME=/root",
		"WATTD_STATS_INTERVAL_MS=100", "WATTD_NODE=/opt/node", "WATTD_GO=/opt/go",
		"WATTDX=kept",
	}
	if got := workerEnviron(in); !slices.Equal(got, want) {
		t.Errorf("workerEnviron:\n got %q\nwant %q", got, want)
	}
}

func TestCheckApp(t *testing.T) {
	plain, empty := "../testdata/apps/plain", t.TempDir()
	tests := []struct {
		name    string
		app     config.Application
		wantKey string // "" with wantErr false: no problem
		wantErr bool
	}{
		{"detected", config.Application{ID: "a", Path: plain}, "", false},
		{"named and known", config.Application{ID: "a", Path: plain, Capability: "node"}, "", false},
		// What the start would fail on: Node.js's capability finds no entry.
		{"named, no entry in the folder", config.Application{ID: "a", Path: empty, Capability: "node"}, "", true},
		{"nothing recognises the folder", config.Application{ID: "a", Path: empty}, "path", true},
		{"unknown capability", config.Application{ID: "a", Path: plain, Capability: "nodejs"}, "capability", true},
		{"command line that does not split", config.Application{ID: "a", Path: plain, Capability: "node", CommandLine: `run "unclosed`}, "command", true},
		{"node.main naming no file", config.Application{ID: "a", Path: plain, Watt: capabilities.WattApp{Main: "missing.js"}}, "node.main", true},
		{"nodeOptions that do not split", config.Application{ID: "a", Path: plain, NodeOptions: "--max-old-space-size=64 '--title=a b"}, "nodeOptions", true},
		{"nodeOptions with quotes", config.Application{ID: "a", Path: plain, NodeOptions: `--max-old-space-size=64 '--title=a b'`}, "", false},
		{"standby of a Node.js app", config.Application{ID: "a", Path: plain, Standby: 1}, "", false},
		{"standby of a command", config.Application{ID: "a", Path: plain, Capability: "command", CommandLine: "node index.js", Standby: 1}, "standby", true},
		// A program that cannot be found is the "command" key's problem.
		{"command found", config.Application{ID: "a", Path: plain, Capability: "command", Command: []string{"node", "index.js"}}, "", false},
		{"command not in PATH", config.Application{ID: "a", Path: plain, Capability: "command", Command: []string{"no-such-program-here", "-x"}}, "command", true},
		{"command line naming no file", config.Application{ID: "a", Path: plain, Capability: "command", CommandLine: "./missing.sh --port 1"}, "command", true},
		// node is in wattd's PATH, not in the one the app sets for itself.
		{"command looked up in the app's own PATH", config.Application{ID: "a", Path: plain, Capability: "command", Command: []string{"node"}, Env: map[string]string{"PATH": "/nowhere"}}, "command", true},
		{"standby of a background app", config.Application{ID: "a", Path: plain, Standby: 1, Watt: capabilities.WattApp{NoServer: true}}, "standby", true},
		{"standby of an app with a start command", config.Application{ID: "a", Path: plain, Standby: 1, Watt: capabilities.WattApp{Commands: capabilities.Commands{Production: "npm start"}}}, "standby", true},
	}
	for _, tt := range tests {
		key, err := CheckApp(tt.app)
		if (err != nil) != tt.wantErr || tt.wantErr && key != tt.wantKey {
			t.Errorf("%s: key %q err %v; want key %q, error %v", tt.name, key, err, tt.wantKey, tt.wantErr)
		}
	}
	// Before a build, an entry the build makes may be missing; a
	// package.json that is not JSON is still a problem.
	built, broken := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(built, "package.json"), []byte(`{"main": "dist/index.js", "scripts": {"build": "tsc"}}`), 0o644)
	os.WriteFile(filepath.Join(broken, "package.json"), []byte(`{"main": `), 0o644)
	for _, c := range []struct {
		dir              string
		start, beforeRun bool // whether CheckApp, CheckAppToBuild fail
	}{{built, true, false}, {broken, true, true}} {
		ac := config.Application{ID: "a", Path: c.dir, Capability: "node"}
		if _, err := CheckApp(ac); (err != nil) != c.start {
			t.Errorf("CheckApp(%s): %v", c.dir, err)
		}
		if _, err := CheckAppToBuild(ac); (err != nil) != c.beforeRun {
			t.Errorf("CheckAppToBuild(%s): %v", c.dir, err)
		}
	}
}
