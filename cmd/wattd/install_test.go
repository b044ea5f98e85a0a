package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeInstall: make install puts an executable wattd and its
// completions under DESTDIR/PREFIX, and that wattd runs.
func TestMakeInstall(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	dest := t.TempDir()
	// BIN keeps the build out of the worktree's bin/, which other tests run.
	cmd := exec.Command("make", "install", "DESTDIR="+dest, "PREFIX=/opt/wattd", "BIN="+filepath.Join(t.TempDir(), "wattd"))
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	bin := filepath.Join(dest, "opt", "wattd", "bin", "wattd")
	fi, err := os.Stat(bin)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed wattd: %v %v", fi, err)
	}
	for _, f := range []string{
		"share/bash-completion/completions/wattd",
		"share/zsh/site-functions/_wattd",
		"share/fish/vendor_completions.d/wattd.fish",
	} {
		b, err := os.ReadFile(filepath.Join(dest, "opt", "wattd", f))
		if err != nil || !strings.Contains(string(b), "--generate-bash-completion") {
			t.Errorf("%s: %v", f, err)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "wattd ") {
		t.Fatalf("installed wattd version: %v\n%s", err, out)
	}
}

// TestGoInstall: `go install …/cmd/wattd` gives a binary that runs a
// Node project on its own, far from the source tree: the preload and
// everything else it needs are inside it.
func TestGoInstall(t *testing.T) {
	integration(t)
	gobin := t.TempDir()
	cmd := exec.Command("go", "install", "./cmd/wattd")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOBIN="+gobin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	// The bundled example, copied out of the repository.
	app := t.TempDir()
	if err := os.CopyFS(app, os.DirFS(filepath.Join(repoRoot, "testdata", "examples", "hello"))); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	d := startWattd(t, app, port, startOpts{
		bin: filepath.Join(gobin, "wattd"),
		env: []string{"PLT_SERVER_HOSTNAME=127.0.0.1"},
	})
	body := waitHTTP(t, d.url("/"), 30*time.Second)
	if !strings.Contains(body, `"hello":"world"`) {
		t.Fatalf("GET / = %s", body)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
