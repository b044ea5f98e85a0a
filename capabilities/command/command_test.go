package command

import (
	"bufio"
	"context"
	"fmt"
	"io"
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
	"github.com/wattd/wattd/supervisor/front"
)

// script writes an executable file under dir.
func script(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRegisteredAndNeverDetected(t *testing.T) {
	c, err := capabilities.Get(ID)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script(t, dir, "server")
	os.WriteFile(filepath.Join(dir, "app.py"), nil, 0o644)
	if ok, err := c.Detect(dir); ok || err != nil {
		t.Fatalf("Detect = %v, %v; want false, nil", ok, err)
	}
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	local := script(t, dir, "bin/server")
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh in PATH")
	}
	cases := []struct {
		name    string
		command []string
		want    []string
	}{
		{"array with PATH lookup", []string{"sh", "-c", "echo hi"}, []string{sh, "-c", "echo hi"}},
		{"relative path from the app folder", []string{"./bin/server", "--flag"}, []string{local, "--flag"}},
		{"relative path without ./", []string{"bin/server"}, []string{local}},
		{"absolute path", []string{local, "x"}, []string{local, "x"}},
		{"one string split like a shell", []string{`sh -c 'echo "a b"' --title "my app"`}, []string{sh, "-c", `echo "a b"`, "--title", "my app"}},
		{"one string with a backslash", []string{`./bin/server a\ b`}, []string{local, "a b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := (&Capability{}).Prepare(capabilities.App{ID: "x", Dir: dir, Command: tc.command, Env: map[string]string{"A": "1"}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l.Argv, tc.want) {
				t.Fatalf("Argv = %q, want %q", l.Argv, tc.want)
			}
			if l.Dir != dir || l.Env["A"] != "1" || !l.Fronted {
				t.Fatalf("launch = %+v", l)
			}
		})
	}
}

func TestOneElementPathWithSpace(t *testing.T) {
	// A one-element array naming an executable as it stands is not split.
	dir := t.TempDir()
	p := script(t, dir, "my server")
	l, err := (&Capability{}).Prepare(capabilities.App{ID: "x", Dir: dir, Command: []string{"./my server"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Argv, []string{p}) {
		t.Fatalf("Argv = %q", l.Argv)
	}
}

func TestListenFDs(t *testing.T) {
	dir := t.TempDir()
	script(t, dir, "server")
	for _, tc := range []struct {
		env     map[string]string
		fronted bool
	}{
		{nil, true},
		{map[string]string{EnvListenFDs: "0"}, true},
		{map[string]string{EnvListenFDs: "1"}, false},
	} {
		l, err := (&Capability{}).Prepare(capabilities.App{ID: "x", Dir: dir, Command: []string{"./server"}, Env: tc.env})
		if err != nil {
			t.Fatal(err)
		}
		if l.Fronted != tc.fronted {
			t.Errorf("env %v: Fronted = %v, want %v", tc.env, l.Fronted, tc.fronted)
		}
	}
}

func TestAppPATH(t *testing.T) {
	// The app's own PATH decides, since the worker runs with it.
	dir := t.TempDir()
	bin := filepath.Join(t.TempDir(), "tools")
	tool := script(t, bin, "mytool")
	l, err := (&Capability{}).Prepare(capabilities.App{ID: "x", Dir: dir, Command: []string{"mytool"},
		Env: map[string]string{"PATH": "relative/dir:" + bin}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Argv[0] != tool {
		t.Fatalf("Argv[0] = %q, want %q", l.Argv[0], tool)
	}
}

func TestPrepareErrors(t *testing.T) {
	dir := t.TempDir()
	script(t, dir, "server")
	os.WriteFile(filepath.Join(dir, "data.txt"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	cases := []struct {
		name    string
		command []string
		want    []string
	}{
		{"no command", nil, []string{`app "x": the command capability needs "command" in watt.json`}},
		{"empty string", []string{""}, []string{`needs "command"`}},
		{"blank string", []string{"   "}, []string{`needs "command"`}},
		{"not in PATH", []string{"no-such-program-xyz", "a"}, []string{`"no-such-program-xyz"`, "not found in PATH"}},
		{"bare name of a local file", []string{"server"}, []string{"not found in PATH", `"./server"`}},
		{"missing file", []string{"./nope"}, []string{`"./nope"`, filepath.Join(dir, "nope")}},
		{"not executable", []string{"./data.txt"}, []string{"not executable"}},
		{"a directory", []string{"./sub"}, []string{"not a regular file"}},
		{"bad quoting", []string{`sh -c 'oops`}, []string{"unterminated single quote"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&Capability{}).Prepare(capabilities.App{ID: "x", Dir: dir, Command: tc.command})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := (&Capability{}).Prepare(capabilities.App{ID: "x", Dir: "rel", Command: []string{"sh"}}); err == nil {
		t.Fatal("relative app directory accepted")
	}
}

// TestPythonFixture starts the Python fixture app the way a fronted worker
// is started (PORT in its environment) and asks it for a page.
func TestPythonFixture(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	dir, err := filepath.Abs("../../testdata/apps/pyapp")
	if err != nil {
		t.Fatal(err)
	}
	l, err := (&Capability{}).Prepare(capabilities.App{ID: "py", Dir: dir, Command: []string{"python3 -u app.py"}})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Fronted {
		t.Fatal("python app not fronted")
	}
	port, err := front.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
	cmd.Dir = l.Dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("python app did not exit cleanly on SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("python app ignored SIGTERM")
		}
	}()
	go io.Copy(io.Discard, bufio.NewReader(out))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := front.Ready(ctx, port, cmd.Process.Pid, nil); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := fmt.Sprintf("python app %d\n", cmd.Process.Pid); string(body) != want {
		t.Fatalf("body %q, want %q", body, want)
	}
}
