package node

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wattd/wattd/capabilities"
)

func TestOutermost(t *testing.T) {
	got := outermost([]string{"/a/b", "/a", "/a/b/c", "/ab", "/a", "/x/*", "/x/*/y", "/x/y"})
	want := []string{"/a", "/ab", "/x/*", "/x/*/y", "/x/y"}
	if !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
	got = outermost([]string{"/a", "/", "/x/*"})
	want = []string{"/"}
	if !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
	got = outermost([]string{"/srv/app", "/srv/app/", "/srv/apple", "/data/", "/data/x"})
	want = []string{"/srv/app", "/srv/apple", "/data/"}
	if !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestPermissionFlagByVersion(t *testing.T) {
	for _, tt := range []struct {
		v    version
		want string
	}{
		{version{18, 20, 0}, ""},
		{version{20, 0, 0}, "--experimental-permission"},
		{version{20, 20, 2}, "--experimental-permission"},
		{version{22, 12, 0}, "--experimental-permission"},
		{version{22, 13, 0}, "--permission"},
		{version{23, 4, 0}, "--experimental-permission"},
		{version{23, 5, 0}, "--permission"},
		{version{24, 0, 0}, "--permission"},
		{version{26, 1, 0}, "--permission"},
	} {
		if got := tt.v.permissionFlag(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.v, got, tt.want)
		}
	}
}

// TestPermissionArgs: the flags name the application's paths and what a
// worker needs under wattd, and the flag each real Node.js takes: every
// node here runs a script with them, reads what they allow and is refused
// what they do not.
func TestPermissionArgs(t *testing.T) {
	root := t.TempDir()
	appDir := filepath.Join(root, "web", "api")
	for _, d := range []string{filepath.Join(root, "node_modules"), filepath.Join(appDir, "node_modules"), filepath.Join(root, "rt", "preload-x"), filepath.Join(root, "cache")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(root, "rt", "preload-x", "index.cjs"): "",
		filepath.Join(root, "rt", "app.json"):               "{}",
		filepath.Join(root, "data.txt"):                     "data",
		filepath.Join(root, "secret.txt"):                   "secret",
		filepath.Join(appDir, "node_modules", "m.js"):       "module.exports = 1",
		filepath.Join(root, "node_modules", "m.js"):         "module.exports = 2",
	}
	for p, body := range files {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "web"), filepath.Join(root, "linked")); err != nil {
		t.Fatal(err)
	}
	preload := filepath.Join(root, "rt", "preload-x", "index.cjs")
	app := capabilities.App{
		ID: "api", Dir: appDir, InfoFile: filepath.Join(root, "rt", "app.json"), CompileCache: filepath.Join(root, "cache"),
		Watt: capabilities.WattApp{Permissions: capabilities.Permissions{Read: []string{filepath.Join(root, "data.txt")}, Write: []string{filepath.Join(root, "out")}}},
	}
	none, err := PermissionArgs(capabilities.App{ID: "api", Dir: appDir}, "/nonexistent/node", preload)
	if err != nil || none != nil {
		t.Fatalf("without permissions: %q, %v; want nothing (and no node asked)", none, err)
	}
	if _, err := PermissionArgs(app, "/bin/true", preload); err == nil || !strings.Contains(err.Error(), "not a Node.js version") {
		t.Errorf("a binary that is not node: %v", err)
	}
	for name, bin := range nodeBinaries(t) {
		t.Run(name, func(t *testing.T) {
			own := app
			own.Env = map[string]string{"NODE_COMPILE_CACHE": filepath.Join(root, "own-cache")}
			args, err := PermissionArgs(own, bin, preload)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(args, "--allow-fs-write="+filepath.Join(root, "own-cache")) || slices.Contains(args, "--allow-fs-write="+filepath.Join(root, "cache")) {
				t.Errorf("the app's NODE_COMPILE_CACHE does not win over compileCache: %q", args)
			}
			linked := app
			linked.Dir = filepath.Join(root, "linked", "api")
			args, err = PermissionArgs(linked, bin, preload)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(args, "--allow-fs-read="+linked.Dir) || !slices.Contains(args, "--allow-fs-read="+appDir) {
				t.Errorf("an application directory through a link is not allowed where it leads: %q", args)
			}
			args, err = PermissionArgs(app, bin, preload)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"--allow-fs-read=" + filepath.Join(root, "data.txt"),
				"--allow-fs-write=" + filepath.Join(root, "out"),
				"--allow-fs-read=" + appDir,
				"--allow-fs-read=" + filepath.Join(root, "rt", "preload-x"),
				"--allow-fs-read=" + filepath.Join(root, "rt", "app.json"),
				"--allow-fs-read=" + filepath.Join(root, "node_modules"),
				"--allow-fs-read=/proc/stat",
				"--allow-fs-read=" + filepath.Join(root, "cache"),
				"--allow-fs-write=" + filepath.Join(root, "cache"),
			} {
				if !slices.Contains(args, want) {
					t.Errorf("no %s in %q", want, args)
				}
			}
			for _, a := range args {
				if strings.HasPrefix(a, "--allow-fs-read=/proc/") && !strings.HasPrefix(a, "--allow-fs-read=/proc/self/") && !strings.HasPrefix(a, "--allow-fs-read=/proc/stat") && !strings.HasPrefix(a, "--allow-fs-read=/proc/net/") {
					t.Errorf("a /proc path resolved in wattd's process: %s", a)
				}
			}
			if slices.Contains(args, "--allow-fs-read="+filepath.Join(appDir, "node_modules")) {
				t.Errorf("the application's node_modules is listed beside its directory, which covers it: %q", args)
			}
			script := `const fs = require('node:fs')
const r = (f) => { try { fs.readFileSync(f); return 'read' } catch (e) { return e.code } }
console.log([process.argv[1], process.argv[2], process.argv[3], process.argv[4]].map(r).join(' '))`
			cmd := exec.Command(bin, append(args, "-e", script, filepath.Join(root, "data.txt"), filepath.Join(root, "secret.txt"),
				filepath.Join(root, "node_modules", "m.js"), filepath.Join(root, "rt", "preload-x", "index.cjs"))...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(string(out), "read ERR_ACCESS_DENIED read read") {
				t.Errorf("node with %q printed %q, want the data, node_modules and preload read and the secret refused", args, out)
			}
		})
	}
}
