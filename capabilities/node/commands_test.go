package node

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wattd/wattd/capabilities"
)

func TestStartCommandIsFronted(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "node")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvNode, fake)
	t.Setenv("NODE_OPTIONS", "")
	dir := tree(t, map[string]string{"server.js": ""})
	app := capabilities.App{
		ID: "api", Dir: dir, RuntimeDir: t.TempDir(), NodeOptions: "--max-old-space-size=128",
		Env: map[string]string{"A": "1"},
		Watt: capabilities.WattApp{
			NoServer: true, // nothing for a command: it must not leak into its env
			Commands: capabilities.Commands{
				Production:  "node dist/server.js --port $PORT",
				Development: "npm run dev && echo done",
			},
		},
	}
	for _, c := range []struct {
		mode capabilities.Mode
		want []string
	}{
		// Words, with node replaced by wattd's Node.js; no shell, so no
		// expansion, as Watt runs it.
		{capabilities.Production, []string{fake, "dist/server.js", "--port", "$PORT"}},
		// Chained commands go through the shell, as in Watt.
		{capabilities.Development, []string{"/bin/sh", "-c", "npm run dev && echo done"}},
	} {
		app.Mode = c.mode
		l, err := (&Capability{}).Prepare(app)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(l.Argv, c.want) {
			t.Errorf("%s: Argv = %q, want %q", c.mode, l.Argv, c.want)
		}
		if !l.Fronted || l.Protocol || l.Dir != dir {
			t.Errorf("%s: launch = %+v, want fronted in the app dir", c.mode, l)
		}
		if l.Env["A"] != "1" || l.Env["NODE_OPTIONS"] != "--max-old-space-size=128" {
			t.Errorf("%s: env = %v", c.mode, l.Env)
		}
	}
}

func TestBuildCommand(t *testing.T) {
	c := &Capability{}
	dir := tree(t, map[string]string{"package.json": `{"scripts":{"build":"tsc"}}`, "index.js": ""})
	l, err := c.BuildCommand(capabilities.App{ID: "a", Dir: dir})
	if err != nil || l == nil || !slices.Equal(l.Argv, []string{"npm", "run", "build"}) || l.Dir != dir {
		t.Fatalf("build script: %+v, %v; want npm run build", l, err)
	}
	l, err = c.BuildCommand(capabilities.App{ID: "a", Dir: dir, Watt: capabilities.WattApp{
		Commands: capabilities.Commands{Build: "make all; touch built"}}})
	if err != nil || l == nil || !slices.Equal(l.Argv, []string{"/bin/sh", "-c", "make all; touch built"}) {
		t.Fatalf("commands.build: %+v, %v", l, err)
	}
	for _, files := range []map[string]string{
		{"index.js": ""},
		{"package.json": `{"scripts":{"start":"node ."}}`},
		{"package.json": `not json`},
	} {
		l, err := c.BuildCommand(capabilities.App{ID: "a", Dir: tree(t, files)})
		if err != nil || l != nil {
			t.Errorf("%v: %+v, %v; want nothing to build", files, l, err)
		}
	}
}

func TestWattSettingsReachTheWorker(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "node")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvNode, fake)
	dir := tree(t, map[string]string{"index.js": "", "src/main.mjs": ""})
	rt := t.TempDir()
	app := capabilities.App{ID: "a", Dir: dir, RuntimeDir: rt, Watt: capabilities.WattApp{
		Main:       "src/main.mjs",
		NoServer:   true,
		BasePath:   "jobs",
		Preload:    []string{"/abs/one.js", "/abs/two.mjs"},
		ExecArgv:   []string{"--expose-gc"},
		Arguments:  []string{"a", "b"},
		SourceMaps: true,
	}}
	l, err := (&Capability{}).Prepare(app)
	if err != nil {
		t.Fatal(err)
	}
	pre := filepath.Join(rt, preloadDirName(), "index.cjs")
	want := []string{fake, "--expose-gc", "--enable-source-maps", "--require", pre, filepath.Join(dir, "src", "main.mjs"), "a", "b"}
	if !slices.Equal(l.Argv, want) {
		t.Errorf("Argv = %q\nwant   %q", l.Argv, want)
	}
	for k := range l.Env {
		if strings.HasPrefix(k, "WATTD_") {
			t.Errorf("%s in the launch environment: the preload's settings are in the app info file", k)
		}
	}

	app.Watt.Main = "missing.js"
	if _, err := (&Capability{}).Prepare(app); err == nil || !strings.Contains(err.Error(), "node.main") || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("missing node.main: err = %v", err)
	}
}

func TestNodeOptionsExtendInherited(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "node")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvNode, fake)
	t.Setenv("NODE_OPTIONS", "--from-env")
	app := capabilities.App{ID: "a", Dir: tree(t, map[string]string{"index.js": ""}), RuntimeDir: t.TempDir(), NodeOptions: "--x"}
	l, err := (&Capability{}).Prepare(app)
	if err != nil || l.Env["NODE_OPTIONS"] != "--from-env --x" {
		t.Fatalf("NODE_OPTIONS = %q, %v", l.Env["NODE_OPTIONS"], err)
	}
	// The app's own environment wins over wattd's.
	app.Env = map[string]string{"NODE_OPTIONS": "--from-app"}
	if l, _ = (&Capability{}).Prepare(app); l.Env["NODE_OPTIONS"] != "--from-app --x" {
		t.Errorf("NODE_OPTIONS = %q", l.Env["NODE_OPTIONS"])
	}
	app.NodeOptions = `--title "unterminated`
	if _, err := (&Capability{}).Prepare(app); err == nil || !strings.Contains(err.Error(), "nodeOptions") {
		t.Errorf("bad quoting: err = %v", err)
	}
}
