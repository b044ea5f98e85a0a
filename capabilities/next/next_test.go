package next

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/capabilities/node"
)

// tree creates files (name -> content) under a new temporary directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, files)
	return dir
}

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeNode points node.Binary at an executable stub, so the tests do not
// depend on a Node.js installation.
func fakeNode(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "node")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(node.EnvNode, p)
	return p
}

// installed is a fake next package: its package.json and the files wattd
// looks at.
var installed = map[string]string{
	"node_modules/next/package.json":                    `{"name":"next","version":"16.4.6","bin":{"next":"./dist/bin/next"}}`,
	"node_modules/next/dist/bin/next":                   "",
	"node_modules/next/dist/server/lib/start-server.js": "",
}

const pkgNext = `{"name":"web","dependencies":{"next":"16.4.6","react":"19.3.1"}}`

// built is a `next build` output for a config without output.
var built = map[string]string{
	".next/BUILD_ID":                   "abc",
	".next/static/chunks/x.js":         "",
	".next/required-server-files.json": `{"version":1,"appDir":"/src/web","relativeAppDir":"","config":{"distDir":".next","output":null}}`,
}

func with(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func appIn(t *testing.T, dir string) capabilities.App {
	return capabilities.App{ID: "web", Dir: dir, RuntimeDir: t.TempDir(), Env: map[string]string{"A": "1"}}
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"dependency", map[string]string{"package.json": pkgNext}, true},
		{"dev dependency", map[string]string{"package.json": `{"devDependencies":{"next":"^16"}}`}, true},
		{"other deps", map[string]string{"package.json": `{"dependencies":{"express":"^5","next-auth":"^4"}}`}, false},
		{"peer only", map[string]string{"package.json": `{"peerDependencies":{"next":"*"}}`}, false},
		{"no package.json", map[string]string{"index.js": ""}, false},
		{"invalid package.json", map[string]string{"package.json": `{"dependencies":`}, false},
		{"package.json is a directory", map[string]string{"package.json/x": ""}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := (&Capability{}).Detect(tree(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Detect = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := (&Capability{}).Detect(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("Detect of a missing directory: no error")
	}
	f := filepath.Join(tree(t, map[string]string{"f": ""}), "f")
	if _, err := (&Capability{}).Detect(f); err == nil {
		t.Fatal("Detect of a file: no error")
	}
}

// TestDetectBeforeNode: the registry tries next before the node fallback,
// so a Next.js app is next and an Express app stays node.
func TestDetectBeforeNode(t *testing.T) {
	c, err := capabilities.Detect(tree(t, map[string]string{"package.json": pkgNext, "server.js": ""}))
	if err != nil || c.ID() != ID {
		t.Fatalf("Next.js app detected as %v (%v), want next", c, err)
	}
	c, err = capabilities.Detect(tree(t, map[string]string{"package.json": `{"dependencies":{"express":"5"}}`}))
	if err != nil || c.ID() != node.ID {
		t.Fatalf("Express app detected as %v (%v), want node", c, err)
	}
}

func TestPrepareNextStart(t *testing.T) {
	bin := fakeNode(t)
	dir := tree(t, with(map[string]string{"package.json": pkgNext}, installed, built))
	app := appIn(t, dir)
	app.NodeOptions = `--max-old-space-size=512 --title "my app"`
	l, err := (&Capability{}).Prepare(app)
	if err != nil {
		t.Fatal(err)
	}
	pre := l.Argv[len(l.Argv)-3]
	want := []string{bin, "--require", pre,
		filepath.Join(dir, "node_modules/next/dist/bin/next"), "start"}
	if !slices.Equal(l.Argv, want) {
		t.Fatalf("argv\n got %q\nwant %q", l.Argv, want)
	}
	if got := l.Env["NODE_OPTIONS"]; !strings.HasSuffix(got, app.NodeOptions) {
		t.Fatalf("NODE_OPTIONS = %q, want it to end with nodeOptions", got)
	}
	if pd := filepath.Dir(pre); filepath.Dir(pd) != app.RuntimeDir || !strings.HasPrefix(filepath.Base(pd), "preload-") || filepath.Base(pre) != "index.cjs" {
		t.Fatalf("preload %q not in the runtime dir %q", pre, app.RuntimeDir)
	}
	if l.Dir != dir {
		t.Fatalf("Dir = %q, want %q", l.Dir, dir)
	}
	if l.Env["NEXT_TELEMETRY_DISABLED"] != "1" || l.Env["A"] != "1" {
		t.Fatalf("Env = %v", l.Env)
	}
	if l.Fronted || l.NoWatch {
		t.Fatalf("production launch is Fronted=%v NoWatch=%v", l.Fronted, l.NoWatch)
	}
}

func TestPrepareKeepsAppTelemetrySetting(t *testing.T) {
	fakeNode(t)
	dir := tree(t, with(map[string]string{"package.json": pkgNext}, installed, built))
	app := appIn(t, dir)
	app.Env["NEXT_TELEMETRY_DISABLED"] = "0"
	l, err := (&Capability{}).Prepare(app)
	if err != nil {
		t.Fatal(err)
	}
	if l.Env["NEXT_TELEMETRY_DISABLED"] != "0" {
		t.Fatalf("Env = %v", l.Env)
	}
}

func TestPrepareWithoutBuild(t *testing.T) {
	fakeNode(t)
	for name, files := range map[string]map[string]string{
		"no .next":         {"package.json": pkgNext},
		"dev output only":  {"package.json": pkgNext, ".next/dev/routes-manifest.json": "{}"},
		"not even install": {"package.json": pkgNext, ".next/cache/x": ""},
	} {
		t.Run(name, func(t *testing.T) {
			dir := tree(t, files)
			_, err := (&Capability{}).Prepare(appIn(t, dir))
			want := `app "web": no Next.js build in ` + filepath.Join(dir, ".next") + "; run `wattd build`"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want %q", err, want)
			}
		})
	}
}

func TestPrepareNotInstalled(t *testing.T) {
	fakeNode(t)
	dir := tree(t, with(map[string]string{"package.json": pkgNext}, built))
	_, err := (&Capability{}).Prepare(appIn(t, dir))
	if err == nil || !strings.Contains(err.Error(), "run npm install in "+dir) {
		t.Fatalf("err = %v", err)
	}
	// A package.json without the CLI it names is a broken install.
	write(t, dir, map[string]string{"node_modules/next/package.json": `{"version":"16.0.0","bin":{"next":"./dist/bin/next"}}`})
	if _, err := (&Capability{}).Prepare(appIn(t, dir)); err == nil || !strings.Contains(err.Error(), "run npm install") {
		t.Fatalf("err = %v", err)
	}
}

// TestPrepareHoistedNext: in a workspace, next is installed at the root and
// found from the app directory as require.resolve would.
func TestPrepareHoistedNext(t *testing.T) {
	fakeNode(t)
	root := tree(t, installed)
	dir := filepath.Join(root, "apps", "web")
	write(t, dir, with(map[string]string{"package.json": pkgNext}, built))
	l, err := (&Capability{}).Prepare(appIn(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Argv[len(l.Argv)-2]; got != filepath.Join(root, "node_modules/next/dist/bin/next") {
		t.Fatalf("next CLI %q", got)
	}
	if l.Dir != dir {
		t.Fatalf("Dir = %q", l.Dir)
	}
}

func standaloneBuild(rel string) map[string]string {
	sa := ".next/standalone/"
	if rel != "" {
		sa += rel + "/"
	}
	return map[string]string{
		".next/BUILD_ID":                   "abc",
		".next/static/chunks/x.js":         "",
		".next/required-server-files.json": `{"version":1,"relativeAppDir":"` + rel + `","config":{"distDir":".next","output":"standalone"}}`,
		sa + "server.js":                   "",
		sa + ".next/BUILD_ID":              "abc",
		sa + "package.json":                pkgNext,
	}
}

func TestPrepareStandalone(t *testing.T) {
	bin := fakeNode(t)
	for _, rel := range []string{"", "apps/web"} {
		t.Run("relativeAppDir="+rel, func(t *testing.T) {
			dir := tree(t, with(map[string]string{"package.json": pkgNext, "public/favicon.ico": ""}, standaloneBuild(rel)))
			sa := filepath.Join(dir, ".next", "standalone", filepath.FromSlash(rel))

			// Next.js leaves .next/static and public out of the standalone
			// output: starting it like that is an error naming the copies.
			_, err := (&Capability{}).Prepare(appIn(t, dir))
			if err == nil {
				t.Fatal("standalone build without its static files: no error")
			}
			for _, want := range []string{
				"cp -r " + filepath.Join(dir, ".next", "static") + " " + filepath.Join(sa, ".next", "static"),
				"cp -r " + filepath.Join(dir, "public") + " " + filepath.Join(sa, "public"),
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}

			write(t, sa, map[string]string{".next/static/chunks/x.js": "", "public/favicon.ico": ""})
			app := appIn(t, dir)
			l, err := (&Capability{}).Prepare(app)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{bin, "--require", l.Argv[2], filepath.Join(sa, "server.js")}
			if !slices.Equal(l.Argv, want) {
				t.Fatalf("argv\n got %q\nwant %q", l.Argv, want)
			}
			if l.Dir != sa {
				t.Fatalf("Dir = %q, want %q", l.Dir, sa)
			}
			if l.Env["NEXT_TELEMETRY_DISABLED"] != "1" {
				t.Fatalf("Env = %v", l.Env)
			}
			// server.js names its URLs after HOSTNAME (0.0.0.0 when
			// unset); localhost, as under `next start`, unless the app's
			// env sets it.
			if l.Env["HOSTNAME"] != "localhost" {
				t.Fatalf("HOSTNAME = %q, want localhost", l.Env["HOSTNAME"])
			}
			app.Env = map[string]string{"HOSTNAME": "web.example"}
			if l, err = (&Capability{}).Prepare(app); err != nil || l.Env["HOSTNAME"] != "web.example" {
				t.Fatalf("the app's own HOSTNAME: %v, %v", l, err)
			}
		})
	}
}

// TestPrepareDeployedStandalone: the directory is a copied standalone
// output, with server.js at the top and no next CLI installed.
func TestPrepareDeployedStandalone(t *testing.T) {
	fakeNode(t)
	dir := tree(t, map[string]string{
		"package.json":                     pkgNext,
		"server.js":                        "",
		"node_modules/next/package.json":   `{"version":"16.4.6"}`,
		".next/BUILD_ID":                   "abc",
		".next/static/chunks/x.js":         "",
		".next/required-server-files.json": `{"relativeAppDir":"","config":{"distDir":".next","output":"standalone"}}`,
	})
	l, err := (&Capability{}).Prepare(appIn(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Argv[len(l.Argv)-1]; got != filepath.Join(dir, "server.js") || l.Dir != dir {
		t.Fatalf("argv %q dir %q", l.Argv, l.Dir)
	}
}

// TestPrepareNotStandaloneIgnoresServerJS: an app's own server.js is not a
// standalone server when the build says so.
func TestPrepareNotStandaloneIgnoresServerJS(t *testing.T) {
	fakeNode(t)
	dir := tree(t, with(map[string]string{"package.json": pkgNext, "server.js": ""}, installed, built))
	l, err := (&Capability{}).Prepare(appIn(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Argv[len(l.Argv)-1]; got != "start" {
		t.Fatalf("argv %q", l.Argv)
	}
}

func TestPrepareStaticExport(t *testing.T) {
	fakeNode(t)
	dir := tree(t, with(map[string]string{"package.json": pkgNext}, installed, map[string]string{
		".next/BUILD_ID":                   "abc",
		".next/required-server-files.json": `{"config":{"distDir":".next","output":"export"}}`,
	}))
	if _, err := (&Capability{}).Prepare(appIn(t, dir)); err == nil || !strings.Contains(err.Error(), "static export") {
		t.Fatalf("err = %v", err)
	}
}

// TestFindBuildCustomDistDir: a next.config distDir of "build" is found by
// its required-server-files.json; another directory with a BUILD_ID is not
// taken for the build.
func TestFindBuildCustomDistDir(t *testing.T) {
	dir := tree(t, map[string]string{
		"package.json":                     pkgNext,
		"build/BUILD_ID":                   "abc",
		"build/required-server-files.json": `{"config":{"distDir":"build"}}`,
	})
	b, err := FindBuild(dir)
	if err != nil || b == nil || b.Dir != filepath.Join(dir, "build") {
		t.Fatalf("FindBuild = %+v, %v", b, err)
	}
	other := tree(t, map[string]string{
		"package.json":                      pkgNext,
		"vendor/BUILD_ID":                   "abc",
		"vendor/required-server-files.json": `{"config":{"distDir":".next"}}`,
	})
	if b, err := FindBuild(other); err != nil || b != nil {
		t.Fatalf("FindBuild = %+v, %v; want no build", b, err)
	}
	bad := tree(t, map[string]string{".next/BUILD_ID": "x", ".next/required-server-files.json": "{"})
	if _, err := FindBuild(bad); err == nil {
		t.Fatal("a broken required-server-files.json: no error")
	}
}

func TestPrepareRelativeDir(t *testing.T) {
	fakeNode(t)
	for _, f := range []func(capabilities.App) (*capabilities.Launch, error){
		(&Capability{}).Prepare, (&Capability{}).PrepareDev, (&Capability{}).BuildCommand,
	} {
		if _, err := f(capabilities.App{ID: "web", Dir: "web", RuntimeDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not absolute") {
			t.Fatalf("err = %v", err)
		}
	}
}

func TestBuildCommand(t *testing.T) {
	bin := fakeNode(t)
	dir := tree(t, with(map[string]string{"package.json": pkgNext}, installed))
	app := appIn(t, dir)
	app.NodeOptions = "--inspect"
	l, err := (&Capability{}).BuildCommand(app)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{bin, filepath.Join(dir, "node_modules/next/dist/bin/next"), "build"}
	if !slices.Equal(l.Argv, want) || l.Dir != dir {
		t.Fatalf("argv %q dir %q, want %q in %q", l.Argv, l.Dir, want, dir)
	}
	if l.Env["NEXT_TELEMETRY_DISABLED"] != "1" || l.Env["A"] != "1" {
		t.Fatalf("Env = %v", l.Env)
	}
	if _, err := (&Capability{}).BuildCommand(appIn(t, tree(t, map[string]string{"package.json": pkgNext}))); err == nil ||
		!strings.Contains(err.Error(), "run npm install in") {
		t.Fatalf("without next installed: %v", err)
	}
}

func TestPrepareDev(t *testing.T) {
	bin := fakeNode(t)
	dir := tree(t, with(map[string]string{"package.json": pkgNext}, installed))
	app := appIn(t, dir)
	app.NodeOptions = "--no-enable-source-maps"
	app.Mode = capabilities.Development
	l, err := (&Capability{}).PrepareDev(app)
	if err != nil {
		t.Fatal(err)
	}
	launcher := filepath.Join(app.RuntimeDir, devLauncherName)
	// nodeOptions turn the dev server's source maps off, so the flag that
	// would override NODE_OPTIONS is left out.
	want := []string{bin, "--require", l.Argv[2],
		launcher, filepath.Join(dir, "node_modules", "next"), dir}
	if !slices.Equal(l.Argv, want) {
		t.Fatalf("argv\n got %q\nwant %q", l.Argv, want)
	}
	if b, err := os.ReadFile(launcher); err != nil || !bytes.Equal(b, devLauncher) {
		t.Fatalf("launcher not written: %v", err)
	}
	if !l.NoWatch || l.Fronted || l.Dir != dir || l.Env["NEXT_TELEMETRY_DISABLED"] != "1" {
		t.Fatalf("launch %+v", l)
	}
	// Prepare in development mode is the same start (for a supervisor that
	// does not look for Developer).
	l2, err := (&Capability{}).Prepare(app)
	if err != nil || !slices.Equal(l2.Argv, l.Argv) || !l2.NoWatch {
		t.Fatalf("Prepare in dev mode: %+v, %v", l2, err)
	}
	// No build is needed for dev.
	if _, err := os.Stat(filepath.Join(dir, ".next")); err == nil {
		t.Fatal("dev launch created .next")
	}
}

func TestPrepareDevBundlerFromScript(t *testing.T) {
	fakeNode(t)
	for script, want := range map[string]string{
		"next dev --webpack":   "webpack",
		"next dev --turbopack": "turbopack",
		"next dev -p 4000":     "",
		"vite --webpack":       "",
	} {
		dir := tree(t, with(installed, map[string]string{
			"package.json": `{"dependencies":{"next":"16"},"scripts":{"dev":"` + script + `"}}`,
		}))
		l, err := (&Capability{}).PrepareDev(appIn(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if last := l.Argv[len(l.Argv)-1]; last != dir {
			got = last
		}
		if got != want {
			t.Errorf("dev script %q: bundler %q, want %q", script, got, want)
		}
	}
}

func TestPrepareDevTooOld(t *testing.T) {
	fakeNode(t)
	dir := tree(t, map[string]string{
		"package.json":                    pkgNext,
		"node_modules/next/package.json":  `{"version":"12.3.4","bin":{"next":"./dist/bin/next"}}`,
		"node_modules/next/dist/bin/next": "",
	})
	_, err := (&Capability{}).PrepareDev(appIn(t, dir))
	if err == nil || !strings.Contains(err.Error(), "12.3.4") || !strings.Contains(err.Error(), "13.4") {
		t.Fatalf("err = %v", err)
	}
}

// TestWriteRuntimeFileConcurrent: concurrent worker starts all get the
// complete launcher.
func TestWriteRuntimeFileConcurrent(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := capabilities.WriteRuntimeFile(dir, devLauncherName, devLauncher)
			if err != nil {
				errs <- err
				return
			}
			if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, devLauncher) {
				errs <- os.ErrInvalid
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("runtime dir holds %d files, want 1", len(entries))
	}
	if _, err := capabilities.WriteRuntimeFile("", "x", nil); err == nil {
		t.Fatal("no runtime dir: no error")
	}
}
