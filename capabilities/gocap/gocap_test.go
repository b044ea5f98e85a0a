package gocap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/capabilities/command"
	"github.com/wattd/wattd/supervisor/front"
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

const plainMod = "module example.com/x\n\ngo 1.22\n"

func TestRegistered(t *testing.T) {
	if _, err := capabilities.Get(ID); err != nil {
		t.Fatal(err)
	}
	if EnvListenFDs != command.EnvListenFDs {
		t.Fatalf("EnvListenFDs %q differs from the command capability's %q", EnvListenFDs, command.EnvListenFDs)
	}
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"go.mod", map[string]string{"go.mod": plainMod, "main.go": ""}, true},
		{"go.mod and package.json", map[string]string{"go.mod": plainMod, "package.json": "{}"}, false},
		{"package.json", map[string]string{"package.json": "{}"}, false},
		{"go files without go.mod", map[string]string{"main.go": ""}, false},
		{"go.mod is a directory", map[string]string{"go.mod/x": ""}, false},
		{"empty", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := (&Capability{}).Detect(tree(t, tc.files))
			if err != nil || ok != tc.want {
				t.Fatalf("Detect = %v, %v; want %v", ok, err, tc.want)
			}
		})
	}
	if _, err := (&Capability{}).Detect(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("Detect on a missing directory: no error")
	}
}

// fakeGo points WATTD_GO at an executable for the test.
func fakeGo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "go")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvGo, p)
	return p
}

func TestBuildCommand(t *testing.T) {
	gobin := fakeGo(t)
	dir := tree(t, map[string]string{"go.mod": plainMod})
	l, err := (&Capability{}).BuildCommand(capabilities.App{ID: "api", Dir: dir, Env: map[string]string{"CGO_ENABLED": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{gobin, "build", "-o", filepath.Join(dir, ".wattd", "app"), "."}
	if !slices.Equal(l.Argv, want) {
		t.Fatalf("Argv = %q, want %q", l.Argv, want)
	}
	if l.Dir != dir || l.Env["CGO_ENABLED"] != "0" || len(l.Env) != 1 {
		t.Fatalf("launch = %+v", l)
	}

	t.Setenv(EnvGo, "relative/go")
	if _, err := (&Capability{}).BuildCommand(capabilities.App{ID: "api", Dir: dir}); err == nil || !strings.Contains(err.Error(), EnvGo) {
		t.Fatalf("relative %s: %v", EnvGo, err)
	}
	t.Setenv(EnvGo, "")
	t.Setenv("PATH", t.TempDir())
	if _, err := (&Capability{}).BuildCommand(capabilities.App{ID: "api", Dir: dir}); err == nil || !strings.Contains(err.Error(), "go not found") {
		t.Fatalf("no go in PATH: %v", err)
	}
}

func TestPrepareNeedsBuild(t *testing.T) {
	dir := tree(t, map[string]string{"go.mod": plainMod})
	_, err := (&Capability{}).Prepare(capabilities.App{ID: "api", Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "run `wattd build`") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Prepare without a build = %v", err)
	}
	os.MkdirAll(filepath.Join(dir, ".wattd"), 0o755)
	os.WriteFile(Output(dir), nil, 0o644)
	if _, err := (&Capability{}).Prepare(capabilities.App{ID: "api", Dir: dir}); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Fatalf("Prepare with a non-executable build = %v", err)
	}
}

func TestPrepare(t *testing.T) {
	sdk := "module example.com/x\n\ngo 1.22\n\nrequire github.com/wattd/wattd v0.1.0\n"
	for _, tc := range []struct {
		name    string
		mod     string
		env     map[string]string
		fronted bool
	}{
		{"plain program", plainMod, nil, true},
		{"uses the SDK", sdk, nil, false},
		{"plain, forced to LISTEN_FDS", plainMod, map[string]string{EnvListenFDs: "1"}, false},
		{"SDK, forced to PORT", sdk, map[string]string{EnvListenFDs: "0"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tree(t, map[string]string{"go.mod": tc.mod, ".wattd/app": ""})
			os.Chmod(Output(dir), 0o755)
			l, err := (&Capability{}).Prepare(capabilities.App{ID: "api", Dir: dir, Env: tc.env})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l.Argv, []string{Output(dir)}) || l.Dir != dir || l.Fronted != tc.fronted {
				t.Fatalf("launch = %+v, want fronted %v", l, tc.fronted)
			}
		})
	}
	dir := tree(t, map[string]string{"go.mod": plainMod, ".wattd/app": ""})
	os.Chmod(Output(dir), 0o755)
	if _, err := (&Capability{}).Prepare(capabilities.App{ID: "api", Dir: dir, Env: map[string]string{EnvListenFDs: "yes"}}); err == nil {
		t.Fatalf("%s=yes accepted", EnvListenFDs)
	}
}

func TestRequiresSDK(t *testing.T) {
	cases := []struct {
		name, mod string
		want      bool
	}{
		{"none", plainMod, false},
		{"one line", "module m\nrequire github.com/wattd/wattd v0.1.0\n", true},
		{"one line, indirect", "module m\nrequire github.com/wattd/wattd v0.1.0 // indirect\n", true},
		{"block", "module m\n\nrequire (\n\tgolang.org/x/sys v0.1.0\n\tgithub.com/wattd/wattd v0.0.0-20250101000000-abcdef123456\n)\n", true},
		{"quoted", "module m\nrequire \"github.com/wattd/wattd\" v0.1.0\n", true},
		{"the module itself", "module github.com/wattd/wattd\n", true},
		{"a longer path", "module m\nrequire github.com/wattd/wattd-extras v0.1.0\n", false},
		{"a sub-module", "module m\nrequire github.com/wattd/wattd/contrib v0.1.0\n", false},
		{"commented out", "module m\n// require github.com/wattd/wattd v0.1.0\n", false},
		{"replace only", "module m\nreplace github.com/wattd/wattd => ../wattd\n", false},
		{"replace block after require block", "module m\nrequire (\n\tx.org/y v1.0.0\n)\nreplace (\n\tgithub.com/wattd/wattd => ../wattd\n)\n", false},
	}
	for _, tc := range cases {
		if got := RequiresSDK([]byte(tc.mod)); got != tc.want {
			t.Errorf("%s: RequiresSDK = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFrontedWithoutGoMod(t *testing.T) {
	fronted, err := Fronted(capabilities.App{Dir: t.TempDir()})
	if err != nil || !fronted {
		t.Fatalf("Fronted = %v, %v; want true", fronted, err)
	}
}

func TestPrepareDev(t *testing.T) {
	gobin := fakeGo(t)
	dir := tree(t, map[string]string{"go.mod": plainMod})
	for _, mode := range []string{"PrepareDev", "Prepare in development mode"} {
		app := capabilities.App{ID: "api", Dir: dir, Env: map[string]string{"A": "1"}}
		var l *capabilities.Launch
		var err error
		if mode == "PrepareDev" {
			l, err = (&Capability{}).PrepareDev(app)
		} else {
			app.Mode = capabilities.Development
			l, err = (&Capability{}).Prepare(app)
		}
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if len(l.Argv) != 6 || l.Argv[0] != "/bin/sh" || l.Argv[4] != gobin || l.Argv[5] != filepath.Join(dir, ".wattd", "dev") {
			t.Fatalf("%s: Argv = %q", mode, l.Argv)
		}
		if !slices.Equal(l.Watch, []string{"."}) || l.NoWatch || !l.Fronted || l.Env["A"] != "1" || l.Dir != dir {
			t.Fatalf("%s: launch = %+v", mode, l)
		}
	}
}

// fixture copies the goapp fixture to a temporary directory, so that its
// builds do not land in the source tree.
func fixture(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not in PATH")
	}
	src := "../../testdata/apps/goapp"
	dst := t.TempDir()
	for _, name := range []string{"go.mod", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// run starts l with PORT set (as the supervisor does for a fronted worker),
// waits until the port accepts and returns the body of GET /. The process
// is stopped with SIGTERM at the end of the test and must exit cleanly.
func run(t *testing.T, l *capabilities.Launch, extraEnv ...string) (body string, pid int) {
	t.Helper()
	port, err := front.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
	cmd.Dir = l.Dir
	cmd.Env = append(append(os.Environ(), fmt.Sprintf("PORT=%d", port)), extraEnv...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("app did not exit cleanly on SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("app ignored SIGTERM")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a cold build is slow
	defer cancel()
	if err := front.Ready(ctx, port, cmd.Process.Pid, nil); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), cmd.Process.Pid
}

func TestBuildAndStartFixture(t *testing.T) {
	dir := fixture(t)
	c := &Capability{}
	if ok, err := c.Detect(dir); !ok || err != nil {
		t.Fatalf("Detect = %v, %v", ok, err)
	}
	b, err := c.BuildCommand(capabilities.App{ID: "goapp", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command(b.Argv[0], b.Argv[1:]...)
	build.Dir = b.Dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%q: %v\n%s", b.Argv, err, out)
	}
	l, err := c.Prepare(capabilities.App{ID: "goapp", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Fronted {
		t.Fatal("the fixture does not use the SDK, so it must be fronted")
	}
	body, pid := run(t, l)
	if want := fmt.Sprintf("go app %d\n", pid); body != want {
		t.Fatalf("body %q, want %q", body, want)
	}
}

func TestDevStartFixture(t *testing.T) {
	dir := fixture(t)
	l, err := (&Capability{}).PrepareDev(capabilities.App{ID: "goapp", Dir: dir, Mode: capabilities.Development})
	if err != nil {
		t.Fatal(err)
	}
	body, pid := run(t, l, "WATTD_WORKER_ID=3")
	// The app answers with the pid that was started: the shell exec'd it,
	// so LISTEN_PID (set to that pid by wattd) would be the app's own.
	if want := fmt.Sprintf("go app %d\n", pid); body != want {
		t.Fatalf("body %q, want %q", body, want)
	}
	if _, err := os.Stat(filepath.Join(dir, ".wattd", "dev", "app-3")); err != nil {
		t.Fatalf("per-worker dev build: %v", err)
	}
}

func TestDevStartBrokenBuild(t *testing.T) {
	dir := fixture(t)
	os.WriteFile(filepath.Join(dir, "broken.go"), []byte("package main\nfunc broken() { undefined() }\n"), 0o644)
	l, err := (&Capability{}).PrepareDev(capabilities.App{ID: "goapp", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
	cmd.Dir = l.Dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "undefined") {
		t.Fatalf("broken build: err %v, output %q; want a non-zero exit with the compiler's message", err, out)
	}
}

func TestWithMemLimit(t *testing.T) {
	t.Setenv(EnvMemLimit, "")
	os.Unsetenv(EnvMemLimit)
	if got := withMemLimit(map[string]string{}, 64<<20)[EnvMemLimit]; got != "60397974" {
		t.Errorf("64MiB: GOMEMLIMIT=%q, want 90%% of it, 60397974", got)
	}
	if _, ok := withMemLimit(map[string]string{}, 0)[EnvMemLimit]; ok {
		t.Error("no limit: GOMEMLIMIT set")
	}
	if got := withMemLimit(map[string]string{EnvMemLimit: "100MiB"}, 64<<20)[EnvMemLimit]; got != "100MiB" {
		t.Errorf("the app's own GOMEMLIMIT replaced: %q", got)
	}
	t.Setenv(EnvMemLimit, "off")
	if _, ok := withMemLimit(map[string]string{}, 64<<20)[EnvMemLimit]; ok {
		t.Error("wattd's own GOMEMLIMIT not left to be inherited")
	}
}
