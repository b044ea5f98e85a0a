package node

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wattd/wattd/capabilities"
)

// tree creates files (name -> content) under a new temporary directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestEntry(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string // relative to the dir; "" means an error is expected
	}{
		{"main", map[string]string{"package.json": `{"main":"lib/start.js"}`, "lib/start.js": "", "index.js": ""}, "lib/start.js"},
		{"main without extension", map[string]string{"package.json": `{"main":"lib/start"}`, "lib/start.mjs": ""}, "lib/start.mjs"},
		{"main is a directory", map[string]string{"package.json": `{"main":"lib"}`, "lib/index.cjs": ""}, "lib/index.cjs"},
		{"main missing", map[string]string{"package.json": `{"main":"nope.js"}`, "index.js": ""}, ""},
		{"exports string", map[string]string{"package.json": `{"exports":"./e.mjs"}`, "e.mjs": ""}, "e.mjs"},
		{"exports conditions", map[string]string{"package.json": `{"exports":{".":{"import":"./i.mjs","require":"./r.cjs"}}}`, "i.mjs": "", "r.cjs": ""}, "i.mjs"},
		{"no main", map[string]string{"package.json": `{"name":"x"}`, "server.js": "", "app.js": ""}, "app.js"},
		{"index first", map[string]string{"index.mjs": "", "server.js": "", "index.cjs": ""}, "index.mjs"},
		{"js before mjs", map[string]string{"main.js": "", "main.mjs": ""}, "main.js"},
		{"server only", map[string]string{"server.mjs": ""}, "server.mjs"},
		{"directory named like a candidate", map[string]string{"index.js/x": "", "start.cjs": ""}, "start.cjs"},
		{"nothing", map[string]string{"README.md": ""}, ""},
		{"bad package.json", map[string]string{"package.json": `{`, "index.js": ""}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tree(t, tc.files)
			got, err := Entry(dir)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Entry = %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, filepath.FromSlash(tc.want)); got != want {
				t.Fatalf("Entry = %q, want %q", got, want)
			}
		})
	}
}

func TestEntryErrorIsClear(t *testing.T) {
	dir := tree(t, map[string]string{"README.md": ""})
	_, err := Entry(dir)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{dir, "index.js", "server.js", "main"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestEntryNamesTheLineOfABrokenPackageJSON: a package.json that is not
// JSON is named with the line and column of the mistake.
func TestEntryNamesTheLineOfABrokenPackageJSON(t *testing.T) {
	dir := tree(t, map[string]string{"package.json": "{\n  \"name\": \"web\",\n  \"main\": \"server.js\",\n}\n", "server.js": ""})
	_, err := Entry(dir)
	want := filepath.Join(dir, "package.json") + ":4:1: invalid character '}' looking for beginning of object key string"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
}

func TestDetect(t *testing.T) {
	c := &Capability{}
	for name, files := range map[string]map[string]string{
		"package.json": {"package.json": `{}`},
		"entry file":   {"app.mjs": ""},
	} {
		ok, err := c.Detect(tree(t, files))
		if err != nil || !ok {
			t.Errorf("%s: Detect = %v, %v; want true", name, ok, err)
		}
	}
	ok, err := c.Detect(tree(t, map[string]string{"main.py": ""}))
	if err != nil || ok {
		t.Errorf("python dir: Detect = %v, %v; want false", ok, err)
	}
	if _, err := c.Detect(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing dir: no error")
	}
}

func TestRegistered(t *testing.T) {
	c, err := capabilities.Get(ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*Capability); !ok {
		t.Fatalf("Get(%q) = %T", ID, c)
	}
	got, err := capabilities.Detect(tree(t, map[string]string{"index.js": ""}))
	if err != nil || got.ID() != ID {
		t.Fatalf("capabilities.Detect = %v, %v", got, err)
	}
}

func TestSplitOptions(t *testing.T) {
	cases := map[string][]string{
		"":                                   nil,
		"  ":                                 nil,
		"--max-old-space-size=512":           {"--max-old-space-size=512"},
		" --inspect   --enable-source-maps ": {"--inspect", "--enable-source-maps"},
		`--title "my app" --x='a b'`:         {"--title", "my app", "--x=a b"},
		`a\ b "q\"x\\" ''`:                   {"a b", `q"x\`, ""},
		`"it's"`:                             {"it's"},
	}
	for in, want := range cases {
		got, err := SplitOptions(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitOptions(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`"open`, `'open`, `trailing\`} {
		if _, err := SplitOptions(bad); err == nil {
			t.Errorf("SplitOptions(%q) succeeded", bad)
		}
	}
}

func TestBinary(t *testing.T) {
	t.Setenv(EnvNode, "node")
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative %s: err = %v", EnvNode, err)
	}
	t.Setenv(EnvNode, "/nonexistent/node")
	if _, err := Binary(); err == nil {
		t.Errorf("missing %s: no error", EnvNode)
	}
	t.Setenv(EnvNode, "")
	t.Setenv("PATH", t.TempDir())
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), EnvNode) {
		t.Errorf("no node in PATH: err = %v, want a hint about %s", err, EnvNode)
	}
	fake := filepath.Join(t.TempDir(), "node")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvNode, fake)
	if got, err := Binary(); err != nil || got != fake {
		t.Errorf("Binary = %q, %v; want %q", got, err, fake)
	}
}

func TestPrepare(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "node")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvNode, fake)
	dir := tree(t, map[string]string{"server.js": ""})
	rt := t.TempDir()
	app := capabilities.App{
		ID: "api", Dir: dir, RuntimeDir: rt,
		NodeOptions: `--max-old-space-size=256 --title "api worker"`,
		Env:         map[string]string{"NODE_ENV": "production"},
	}
	l, err := (&Capability{}).Prepare(app)
	if err != nil {
		t.Fatal(err)
	}
	pre := filepath.Join(rt, preloadDirName(), "index.cjs")
	want := []string{fake, "--require", pre, filepath.Join(dir, "server.js")}
	if !slices.Equal(l.Argv, want) {
		t.Errorf("Argv = %q\nwant   %q", l.Argv, want)
	}
	// nodeOptions reach node as NODE_OPTIONS, after the inherited value,
	// as Watt sets them.
	if got, want := l.Env["NODE_OPTIONS"], `--max-old-space-size=256 --title "api worker"`; got != want {
		t.Errorf("NODE_OPTIONS = %q, want %q", got, want)
	}
	if l.Dir != dir || l.Env["NODE_ENV"] != "production" || !l.Protocol {
		t.Errorf("Launch = %+v", l)
	}
	st, err := os.Stat(pre)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("preload mode = %v, want 0600", st.Mode().Perm())
	}
	for name, content := range preloadFiles() {
		if got, _ := os.ReadFile(filepath.Join(rt, preloadDirName(), name)); !bytes.Equal(got, content) {
			t.Errorf("preload module %s differs from the embedded one", name)
		}
	}

	app.Dir = "relative"
	if _, err := (&Capability{}).Prepare(app); err == nil {
		t.Error("relative dir: no error")
	}
	app.Dir = tree(t, map[string]string{"README.md": ""})
	if _, err := (&Capability{}).Prepare(app); err == nil || !strings.Contains(err.Error(), `"api"`) {
		t.Errorf("no entry: err = %v, want it to name the app", err)
	}
}

func TestWritePreloadConcurrentAndReused(t *testing.T) {
	rt := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := WritePreload(rt); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(rt)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != preloadDirName() {
		t.Fatalf("runtime dir holds %v, want only %s", entries, preloadDirName())
	}

	// An existing file is reused, not rewritten.
	p := filepath.Join(rt, preloadDirName(), "index.cjs")
	before, _ := os.Stat(p)
	if _, err := WritePreload(rt); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(p)
	if !os.SameFile(before, after) {
		t.Error("preload was rewritten")
	}

	// A damaged one (wrong size) is replaced.
	if err := os.WriteFile(p, []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := WritePreload(rt); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, preloadFiles()["index.cjs"]) {
		t.Error("damaged preload was not replaced")
	}
	// And so is one with a module missing.
	if err := os.Remove(filepath.Join(rt, preloadDirName(), "base.cjs")); err != nil {
		t.Fatal(err)
	}
	if _, err := WritePreload(rt); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(rt, preloadDirName(), "base.cjs")); !bytes.Equal(got, preloadFiles()["base.cjs"]) {
		t.Error("preload with a missing module was not repaired")
	}
	if entries, _ := os.ReadDir(rt); len(entries) != 1 {
		t.Errorf("runtime dir holds %v after repairs, want only %s", entries, preloadDirName())
	}
	if !strings.HasPrefix(preloadDirName(), "preload-") || len(preloadFiles()) < 4 {
		t.Errorf("preloadDirName() = %q with %d modules", preloadDirName(), len(preloadFiles()))
	}
}

// TestEnvHeapOptions: the heap flags of the app's health keys go into
// NODE_OPTIONS between the inherited value and nodeOptions, unless one of
// those (or execArgv) sets the same flag, in either spelling; and a real
// node takes them (its heap limit follows --max-old-space-size).
func TestEnvHeapOptions(t *testing.T) {
	heap := []string{"--max-old-space-size=96", "--max-semi-space-size=2"}
	tests := []struct {
		name      string
		inherited string
		opts      string
		execArgv  []string
		want      string
	}{
		{"alone", "", "", nil, "--max-old-space-size=96 --max-semi-space-size=2"},
		{"between inherited and nodeOptions", "--trace-warnings", `--title "a  b"`, nil,
			`--trace-warnings --max-old-space-size=96 --max-semi-space-size=2 --title "a  b"`},
		{"nodeOptions sets one", "", "--max-old-space-size=512", nil, "--max-semi-space-size=2 --max-old-space-size=512"},
		{"inherited sets one, with underscores", "--max_semi_space_size=8", "", nil, "--max_semi_space_size=8 --max-old-space-size=96"},
		{"execArgv sets both", "", "", []string{"--max-old-space-size=64", "--max-semi-space-size=1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NODE_OPTIONS", tt.inherited)
			app := capabilities.App{ID: "api", NodeOptions: tt.opts, HeapOptions: heap, Env: map[string]string{}}
			app.Watt.ExecArgv = tt.execArgv
			env, err := Env(app)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := env["NODE_OPTIONS"]; got != tt.want || ok != (tt.want != "") {
				t.Errorf("NODE_OPTIONS = %q (set %v), want %q", got, ok, tt.want)
			}
		})
	}
	t.Setenv("NODE_OPTIONS", "")
	env, err := Env(capabilities.App{ID: "api", HeapOptions: heap, Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	for name, bin := range nodeBinaries(t) {
		t.Run(name, func(t *testing.T) {
			limit := func(nodeOptions string) int64 {
				cmd := exec.Command(bin, "-p", "require('v8').getHeapStatistics().heap_size_limit")
				cmd.Env = append(os.Environ(), "NODE_OPTIONS="+nodeOptions)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			sized, plain := limit(env["NODE_OPTIONS"]), limit("")
			// The old generation's 96 MiB plus the young generation's.
			if sized < 96<<20 || sized > 128<<20 || plain <= sized {
				t.Errorf("heap limit %d MiB with %q (without: %d MiB); want 96 to 128 MiB", sized>>20, env["NODE_OPTIONS"], plain>>20)
			}
		})
	}
}
