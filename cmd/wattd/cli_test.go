package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

// runCLI runs the wattd binary in dir with env added and returns its
// combined output and exit code.
func runCLI(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(wattdBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("wattd %v: %v", args, err)
	}
	return string(out), 0
}

// TestCLIUsage: unknown commands are usage errors that point at --help,
// every command and subcommand answers --help, and argument mistakes exit 2.
func TestCLIUsage(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	env := []string{"WATTD_RUNTIME_DIR=" + t.TempDir()}
	cfgFile := filepath.Join(dir, "p", "watt.json")
	if err := os.MkdirAll(filepath.Dir(cfgFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"logs"}, 2, []string{"unknown command logs; see wattd --help"}},
		{[]string{"ctl", "tail"}, 2, []string{"unknown command tail; see wattd ctl --help"}},
		{[]string{"help", "logs"}, 2, []string{"unknown command logs; see wattd --help"}},
		{[]string{"ctl", "help", "tail"}, 2, []string{"unknown command tail; see wattd ctl --help"}},
		{[]string{"ctl", "logs", "--help"}, 0, []string{"wattd ctl logs [APP] [--worker N] [-f] [-n LINES] [--json]", "1000 lines"}},
		{[]string{"--help"}, 0, []string{"USAGE", "start", "ctl"}},
		{[]string{}, 0, []string{"USAGE", "start", "ctl"}},
		{[]string{"help"}, 0, []string{"USAGE", "start", "ctl"}},
		{[]string{"help", "start"}, 0, []string{"wattd start", "--dir"}},
		{[]string{"start", "--help"}, 0, []string{"wattd start", "[DIR|FILE]", "--dir", "--config"}},
		{[]string{"dev", "--help"}, 0, []string{"wattd dev", "[DIR|FILE]", "--dir", "--config"}},
		{[]string{"build", "--help"}, 0, []string{"wattd build", "[DIR|FILE]", "--dir", "--app", "--config"}},
		{[]string{"init", "--help"}, 0, []string{"wattd init", "[DIR]", "--dir", "--force"}},
		{[]string{"schema", "--help"}, 0, []string{"wattd schema"}},
		{[]string{"version", "--help"}, 0, []string{"wattd version"}},
		{[]string{"ctl", "--help"}, 0, []string{"wattd ctl", "--socket", "inject", "restart"}},
		{[]string{"ctl"}, 0, []string{"wattd ctl", "--socket"}},
		{[]string{"ctl", "--name", "", "status"}, 2, []string{"--name is empty"}},
		{[]string{"ctl", "ps", "--socket", ""}, 2, []string{"--socket is empty"}},
		{[]string{"ctl", "help", "ps"}, 0, []string{"wattd ctl ps"}},
		{[]string{"help", "ctl", "metrics"}, 0, []string{"wattd ctl metrics", "--json"}},
		{[]string{"ctl", "ps", "--help"}, 0, []string{"wattd ctl ps", "--socket", "--json"}},
		{[]string{"ctl", "status", "--help"}, 0, []string{"wattd ctl status", "--socket"}},
		{[]string{"ctl", "restart", "--help"}, 0, []string{"wattd ctl restart", "APP", "--timeout"}},
		{[]string{"ctl", "stop", "--help"}, 0, []string{"wattd ctl stop", "--socket"}},
		{[]string{"ctl", "inject", "--help"}, 0, []string{"wattd ctl inject", "--no-fail", "-X", "--socket"}},
		{[]string{"ctl", "inject", "web", "-h"}, 0, []string{"wattd ctl inject", "--no-fail"}},
		{[]string{"start", "a", "b"}, 2, []string{"start takes one project directory, got 2"}},
		{[]string{"dev", "a", "b"}, 2, []string{"dev takes one project directory, got 2"}},
		{[]string{"init", "a", "b"}, 2, []string{"init takes one project directory, got 2"}},
		{[]string{"start", "-d", "x", "y"}, 2, []string{"project directory given twice"}},
		// Options after the positional arguments are read as options.
		{[]string{"start", filepath.Join(dir, "missing"), "-c", "f.json"}, 2, []string{"f.json does not exist"}},
		{[]string{"ctl", "restart", "web", "--bogus"}, 2, []string{"flag provided but not defined: -bogus"}},
		{[]string{"ctl", "scale", "web", "-1"}, 2, []string{`N must be a worker count from 1 to 512, got "-1"`}},
		{[]string{"ctl", "scale", "web", "1e9"}, 2, []string{`N must be a worker count from 1 to 512, got "1e9"`}},
		// The configuration file is taken as the argument, as wattpm takes
		// it; not beside another.
		{[]string{"start", cfgFile, "--config", cfgFile}, 2, []string{"is a file: give the project directory with --config"}},
		{[]string{"build", "-c", cfgFile, cfgFile}, 2, []string{"is a file: give it alone, or the project directory with --config"}},
		{[]string{"start", cfgFile}, 2, []string{cfgFile + ":1: no applications to run"}},
		{[]string{"ctl", "metrics", "web", "--json", "--socket", filepath.Join(dir, "no.sock")}, 1, []string{"cannot reach wattd at " + filepath.Join(dir, "no.sock")}},
		{[]string{"ctl", "scale", "web", "2", "--socket=" + filepath.Join(dir, "no.sock")}, 1, []string{"cannot reach wattd at " + filepath.Join(dir, "no.sock")}},
		{[]string{"ctl", "restart", "web", "--", "--json"}, 2, []string{"usage: wattd ctl restart [APP...]"}},
		{[]string{"ctl", "metrics", "web", "--name"}, 2, []string{"--name needs a value"}},
		// A script's unset $NAME: a mistake, not the default name.
		{[]string{"start", "--name", "", filepath.Dir(cfgFile)}, 2, []string{`--name: runtime name "": want 1 to 64 characters`}},
		{[]string{"dev", "--name=", filepath.Dir(cfgFile)}, 2, []string{`--name: runtime name "": want 1 to 64 characters`}},
		{[]string{"ctl", "ps", "extra"}, 2, []string{`wattd ctl ps takes no arguments, got "extra"`}},
		{[]string{"ctl", "list", "extra"}, 2, []string{`wattd ctl list takes no arguments, got "extra"`}},
		{[]string{"ctl", "restart", "web", "--timeout=-5s"}, 2, []string{"--timeout must be more than 0, got -5s"}},
		{[]string{"start", filepath.Join(dir, "missing"), "--help"}, 0, []string{"wattd start", "--config"}},
		{[]string{"ctl", "metrics", "web", "-h"}, 0, []string{"wattd ctl metrics", "--json"}},
		{[]string{"start", "--bogus"}, 2, []string{"bogus"}},
		{[]string{"ctl", "restart", "--socket", filepath.Join(dir, "no.sock")}, 1, []string{"cannot reach wattd at " + filepath.Join(dir, "no.sock")}},
		{[]string{"ctl", "inject", "web", "/a", "/b"}, 2, []string{"usage: wattd ctl inject"}},
		{[]string{"ctl", "inject", "--bogus", "web", "/"}, 2, []string{"unknown option --bogus"}},
		{[]string{"start", filepath.Join(dir, "missing")}, 2, []string{"does not exist"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(append([]string{"wattd"}, c.args...), " "), func(t *testing.T) {
			out, code := runCLI(t, dir, env, c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d\n%s", code, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "No help topic") {
				t.Errorf("urfave/cli's default answer leaked:\n%s", out)
			}
		})
	}
}

// probeRuntime starts wattd on a project of one probe app, "web", and
// returns it once the app is ready, with its project directory and admin
// socket.
func probeRuntime(t *testing.T) (*daemon, string, string) {
	t.Helper()
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/probe")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 20*time.Second)
	return d, dir, d.adminSocket()
}

// adminSocket returns the admin socket of the one runtime under d.runDir.
func (d *daemon) adminSocket() string {
	d.t.Helper()
	var sock string
	waitFor(d.t, 10*time.Second, "admin socket", func() bool {
		m, _ := filepath.Glob(filepath.Join(d.runDir, "*", "admin.sock"))
		if len(m) == 1 {
			sock = m[0]
		}
		return sock != ""
	})
	return sock
}

// TestCtlFlagsAtEitherLevel: --socket and --json work before and after
// the subcommand, for every subcommand, from a directory where the
// runtime cannot be found otherwise.
func TestCtlFlagsAtEitherLevel(t *testing.T) {
	integration(t)
	d, dir, sock := probeRuntime(t)
	elsewhere := t.TempDir()
	// No runtime under this base: only --socket can find the one running.
	env := []string{"WATTD_RUNTIME_DIR=" + t.TempDir()}
	if out, code := runCLI(t, elsewhere, env, "ctl", "ps"); code == 0 {
		t.Fatalf("ctl ps found a runtime without --socket; the test proves nothing:\n%s", out)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ctl", "--socket", sock, "ps"}, "ready"},
		{[]string{"ctl", "ps", "--socket", sock}, "ready"},
		{[]string{"ctl", "--socket", sock, "--json", "ps"}, `"state": "ready"`},
		{[]string{"ctl", "--json", "ps", "--socket", sock}, `"state": "ready"`},
		{[]string{"ctl", "ps", "--json", "--socket", sock}, `"state": "ready"`},
		{[]string{"ctl", "--socket", sock, "status"}, dir},
		{[]string{"ctl", "status", "--socket", sock}, dir},
		{[]string{"ctl", "--socket", sock, "inject", "web", "/status/200"}, "status 200 from web"},
		{[]string{"ctl", "inject", "--socket", sock, "web", "/status/200"}, "status 200 from web"},
		{[]string{"ctl", "inject", "web", "/status/200", "--socket", sock}, "status 200 from web"},
		// Without APP, the entrypoint, as wattpm inject.
		{[]string{"ctl", "inject", "--socket", sock, "/status/200"}, "status 200 from web"},
		{[]string{"ctl", "--socket", sock, "restart", "web"}, "ready"},
		{[]string{"ctl", "restart", "--socket", sock, "web"}, "ready"},
		// The subcommand's own value wins over the ctl-level one.
		{[]string{"ctl", "--socket", "/nonexistent/admin.sock", "ps", "--socket", sock}, "ready"},
	}
	for _, c := range cases {
		out, code := runCLI(t, elsewhere, env, c.args...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("wattd %s: exit %d, want 0 and %q in:\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
	for _, args := range [][]string{
		{"ctl", "--socket", "/nonexistent/admin.sock", "ps"},
		{"ctl", "ps", "--socket", "/nonexistent/admin.sock"},
	} {
		if out, code := runCLI(t, elsewhere, env, args...); code != 1 || !strings.Contains(out, "/nonexistent/admin.sock") {
			t.Errorf("wattd %s: exit %d, want 1 naming the socket:\n%s", strings.Join(args, " "), code, out)
		}
	}
	// Output that cannot be written (a full disk) fails the command,
	// with exit 1, whatever the format: it is no success, and no mistake
	// of the command line either.
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	for _, args := range [][]string{{"ctl", "ps", "--socket", sock}, {"ctl", "ps", "--json", "--socket", sock},
		{"ctl", "status", "--socket", sock}, {"ctl", "logs", "--socket", sock}, {"version"}} {
		cmd := exec.Command(wattdBin, args...)
		cmd.Dir, cmd.Env, cmd.Stdout = elsewhere, append(os.Environ(), env...), full
		var errOut strings.Builder
		cmd.Stderr = &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errOut.String(), "write standard output: no space left on device") {
			t.Errorf("wattd %s > /dev/full: %v, want exit 1 saying why:\n%s", strings.Join(args, " "), err, errOut.String())
		}
	}
	out, code := runCLI(t, elsewhere, env, "ctl", "--socket", sock, "--json", "stop")
	if code != 0 || !strings.Contains(out, `"stopping": true`) {
		t.Fatalf("ctl --json stop: exit %d\n%s", code, out)
	}
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("wattd exit code %d after ctl stop", code)
	}
}

// TestCtlGivesUpOnASuspendedRuntime: against a wattd that takes no
// request (suspended with SIGSTOP), the commands that wait for no change
// give up after 10 s with exit 1 and say so, a stop asked for without
// --wait too (it hung for ever), and a read does not point at a --timeout
// flag it does not have.
func TestCtlGivesUpOnASuspendedRuntime(t *testing.T) {
	integration(t)
	d, _, sock := probeRuntime(t)
	d.signal(syscall.SIGSTOP)
	defer d.signal(syscall.SIGCONT)
	cases := [][]string{{"ctl", "status"}, {"ctl", "logs", "-n", "1"}, {"ctl", "stop"}}
	type result struct {
		out  string
		code int
		took time.Duration
	}
	results := make([]result, len(cases))
	var wg sync.WaitGroup
	for i, args := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			cmd := exec.Command(wattdBin, append(args, "--socket", sock)...)
			out, _ := cmd.CombinedOutput() // the exit code says it
			results[i] = result{string(out), cmd.ProcessState.ExitCode(), time.Since(start)}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 1 || !strings.Contains(r.out, "no answer within 10s") || r.took > 20*time.Second {
			t.Errorf("wattd %s against a suspended wattd: exit %d after %s, want 1 within 20 s:\n%s", strings.Join(cases[i], " "), r.code, r.took, r.out)
		}
	}
	if strings.Contains(results[0].out, "--timeout") {
		t.Errorf("ctl status points at a --timeout it does not take: %s", results[0].out)
	}
}

// TestCtlAsAnotherUser: another user's wattd ctl is told that the
// runtime is not theirs and who may administer it, rather than "is it
// running?", and cannot change it.
func TestCtlAsAnotherUser(t *testing.T) {
	integration(t)
	uid, gid := otherUser(t)
	d, project, sock := probeRuntime(t)
	// A copy of wattd the other user can run, whatever the checkout's modes.
	binDir, err := os.MkdirTemp("", "wattd-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	bin := filepath.Join(binDir, "wattd")
	copyWattd(t, bin)
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	asOtherIn := func(dir string, env []string, args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/"}, env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run wattd as uid %d: %v", uid, err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	asOther := func(env []string, args ...string) (string, int) { return asOtherIn(binDir, env, args...) }
	for _, args := range [][]string{{"ctl", "--socket", sock, "ps"}, {"ctl", "--socket", sock, "restart", "web"}} {
		out, code := asOther(nil, args...)
		if code != 1 || !strings.Contains(out, "is not yours to administer") || !strings.Contains(out, "permission denied") ||
			!strings.Contains(out, "only its owner, root (uid 0), may use it: run sudo wattd ctl") {
			t.Errorf("another user, wattd %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	// Without --socket, that user looks under their own runtime directory;
	// when root's exists, it is named.
	if _, err := os.Stat("/run/wattd"); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir("/run/wattd", 0o700); err == nil {
			t.Cleanup(func() { os.Remove("/run/wattd") })
		}
	}
	out, code := asOther(nil, "ctl", "ps")
	if code != 1 || !strings.Contains(out, "no wattd runtime is running") || !strings.Contains(out, "those root started are under /run/wattd") {
		t.Errorf("another user, wattd ctl ps: exit %d\n%s", code, out)
	}
	// In root's project (which that user may enter), the project's wattd
	// is named as root's, not as one whose runtime directory was removed.
	for _, dir := range []string{project, filepath.Dir(project)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, code = asOtherIn(project, nil, "ctl", "ps")
	if code != 1 || !strings.Contains(out, "runs as root, and its runtime directory is root's") || strings.Contains(out, "cleaner") {
		t.Errorf("another user, wattd ctl ps in root's project: exit %d\n%s", code, out)
	}
	// With root's runtime base named (a WATTD_RUNTIME_DIR exported for
	// everyone), the runtime is named as root's, not as a directory this
	// user should change or a bare permission denied.
	env := []string{"WATTD_RUNTIME_DIR=" + d.runDir}
	out, code = asOtherIn(project, env, "ctl", "ps")
	if code != 1 || !strings.Contains(out, "runtime directory "+d.runDir+" is root's, so the wattd that uses it runs as root: run wattd ctl as root") {
		t.Errorf("another user, wattd ctl ps with root's WATTD_RUNTIME_DIR: exit %d\n%s", code, out)
	}
	inner := filepath.Join(d.runDir, "nested")
	if err := os.Mkdir(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	out, code = asOtherIn(project, []string{"WATTD_RUNTIME_DIR=" + inner}, "ctl", "ps")
	if code != 1 || !strings.Contains(out, "is in a directory uid "+strconv.Itoa(int(uid))+" may not enter, so the wattd that uses it is another user's") {
		t.Errorf("another user, wattd ctl ps with a WATTD_RUNTIME_DIR it cannot reach: exit %d\n%s", code, out)
	}
	if st := d.app("web"); st.Workers[0].Restarts != 0 {
		t.Errorf("the worker restarted %d times", st.Workers[0].Restarts)
	}
}

// TestCtlInjectStatus: a response outside 2xx prints its body and exits 1
// (like curl --fail-with-body) unless --no-fail is given.
func TestCtlInjectStatus(t *testing.T) {
	integration(t)
	d, dir, _ := probeRuntime(t)
	env := []string{"WATTD_RUNTIME_DIR=" + d.runDir}
	cases := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"web", "/status/200"}, 0, []string{"status 200 from web"}},
		{[]string{"web", "/status/204"}, 0, nil},
		{[]string{"web", "/status/503"}, 1, []string{"status 503 from web", "503 Service Unavailable", "--no-fail"}},
		{[]string{"web", "/status/404"}, 1, []string{"status 404 from web", "404 Not Found"}},
		{[]string{"web", "/status/302"}, 1, []string{"302 Found"}},
		{[]string{"web", "/status/503", "--no-fail"}, 0, []string{"status 503 from web"}},
		{[]string{"--no-fail", "-i", "web", "/status/503"}, 0, []string{"HTTP/1.1 503 Service Unavailable", "status 503 from web"}},
		{[]string{"-i", "web", "/status/500"}, 1, []string{"HTTP/1.1 500 Internal Server Error", "status 500 from web"}},
		{[]string{"nope", "/"}, 1, []string{"nope", "web"}},
	}
	for _, c := range cases {
		checkInject(t, dir, env, c.args, c.code, c.want)
	}
}

// TestCtlTakesWattpmOptions: the options of wattpm inject (-m, -p, -D, -f,
// -o) and the name wattpm applications work with wattd ctl as they do with
// wattpm, so a command line carried over from Watt runs unchanged.
func TestCtlTakesWattpmOptions(t *testing.T) {
	integration(t)
	d, dir, _ := probeRuntime(t)
	env := []string{"WATTD_RUNTIME_DIR=" + d.runDir}
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(bodyFile, []byte(`{"n":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(t.TempDir(), "out.txt")
	cases := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"web", "-m", "PUT", "-p", "/echo", "-H", "x-a: 1", "-D", bodyFile}, 0, []string{`"method":"PUT"`, `"x-a":"1"`, `"body":"{\"n\":1}"`}},
		{[]string{"--method", "delete", "--path", "/echo", "web"}, 0, []string{`"method":"DELETE"`}},
		// -H 'Host: …' reaches the app, as with curl.
		{[]string{"web", "-p", "/echo", "-H", "Host: shop.example.com"}, 0, []string{`"host":"shop.example.com"`}},
		{[]string{"-p", "/status/200", "-f"}, 0, []string{"HTTP/1.1 200 OK", "status 200 from web"}},
		{[]string{"web", "--full-output", "-p", "/status/503"}, 1, []string{"HTTP/1.1 503 Service Unavailable", "status 503 from web"}},
		{[]string{"web"}, 0, []string{`"start":`}},
		{[]string{"web", "/a", "-p", "/b"}, 2, []string{`a PATH argument ("/a") and -p "/b"`}},
		{[]string{"-p", "/a", "/b"}, 2, []string{`a PATH argument ("/b") and -p "/a"`}},
		{[]string{"web", "-D", "/nonexistent/body"}, 2, []string{"-D /nonexistent/body"}},
	}
	for _, c := range cases {
		checkInject(t, dir, env, c.args, c.code, c.want)
	}
	// -o writes the response to the file and nothing to stdout.
	out, code := runCLI(t, dir, env, "ctl", "inject", "web", "-p", "/status/200", "-o", outFile)
	if code != 0 || strings.Contains(out, "status 200") {
		t.Errorf("ctl inject -o: exit %d, want 0 and nothing printed:\n%s", code, out)
	}
	if b, err := os.ReadFile(outFile); err != nil || string(b) != "status 200 from web\n" {
		t.Errorf("ctl inject -o wrote %q (%v), want the body", b, err)
	}
	out, code = runCLI(t, dir, env, "ctl", "applications")
	if code != 0 || !strings.Contains(out, "web") || !strings.Contains(out, "ready") {
		t.Errorf("ctl applications: exit %d, want the apps as ctl ps lists them:\n%s", code, out)
	}
}

// TestCtlRestartDuringShutdownFails: a restart the runtime refuses exits
// non-zero and prints the runtime's reason.
func TestCtlRestartDuringShutdownFails(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"gracefulShutdown": map[string]any{"runtime": 20000, "application": 15000},
		"applications":     []any{map[string]any{"id": "web", "path": fixture("faults/ignore-sigterm")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second) // the app's SIGTERM handler is in place
	d.waitReady("web", 20*time.Second)
	d.signal(syscall.SIGTERM)
	d.waitOutput("SIGTERM received and ignored", 15*time.Second)
	out, code := runCLI(t, dir, []string{"WATTD_RUNTIME_DIR=" + d.runDir}, "ctl", "restart", "web")
	if code == 0 || !strings.Contains(out, `restart "web"`) || !strings.Contains(out, "stopping") {
		t.Fatalf("ctl restart during shutdown: exit %d, want non-zero with the reason:\n%s", code, out)
	}
	// Refused before a restart is said to be on its way.
	if strings.Contains(d.out.String(), "rolling restart requested") {
		t.Errorf("the log announces the restart it refuses:\n%s", d.out.String())
	}
}

// TestCtlRestartOfFailingAppSaysWhy: restarting an app whose workers cannot
// start waits for the outcome and exits non-zero with the reason, instead
// of exiting 0 while the app crash-loops back to failed; a healthy app in
// the same runtime restarts with exit 0.
func TestCtlRestartOfFailingAppSaysWhy(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":    map[string]any{"initialDelay": 20, "maxDelay": 100, "maxRestarts": 2},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain")},
			map[string]any{"id": "db", "path": fixture("faults/crash-start")},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	// The entrypoint starts once db has settled (here: given up), and
	// waitReady polls until the admin socket answers.
	d.waitReady("web", 60*time.Second)
	waitFor(t, 60*time.Second, "db to be failed", func() bool { return d.app("db").State == "failed" })
	env := []string{"WATTD_RUNTIME_DIR=" + d.runDir}
	out, code := runCLI(t, dir, env, "ctl", "restart", "db")
	if code == 0 || !strings.Contains(out, "exit status 3") || !strings.Contains(out, "ECONNREFUSED") {
		t.Fatalf("ctl restart of a crash-looping app: exit %d, want non-zero with the reason:\n%s", code, out)
	}
	if out, code := runCLI(t, dir, env, "ctl", "restart", "web"); code != 0 {
		t.Fatalf("ctl restart of a healthy app: exit %d:\n%s", code, out)
	}
}

// TestProjectArgument: start, dev, build and init take the project as
// [DIR] or -d/--dir alike; `wattd build` still understands the older
// `build [-d DIR] APP...` form, with a note pointing at --app.
func TestProjectArgument(t *testing.T) {
	integration(t)
	root := t.TempDir()
	proj := filepath.Join(root, "proj")
	copyDir(t, fixture("apps/plain"), filepath.Join(proj, "web"))
	copyDir(t, fixture("apps/plain"), filepath.Join(proj, "api"))
	writeJSON(t, filepath.Join(proj, "watt.json"), map[string]any{
		"entrypoint": "web",
		"applications": []any{
			map[string]any{"id": "web", "path": "./web"},
			map[string]any{"id": "api", "path": "./api"},
		},
	})
	env := []string{"WATTD_RUNTIME_DIR=" + t.TempDir()}
	// plain node apps have nothing to build; each line names the app.
	web, api := "web          node     nothing to build", "api          node     nothing to build"
	both := []string{web, api}
	cases := []struct {
		name    string
		cwd     string
		args    []string
		code    int
		want    []string
		notWant []string
	}{
		{"build DIR", root, []string{"build", proj}, 0, both, []string{"note"}},
		{"build -d DIR", root, []string{"build", "-d", proj}, 0, both, nil},
		{"build --dir DIR", root, []string{"build", "--dir", proj}, 0, both, nil},
		{"build DIR and the same --dir", root, []string{"build", "--dir", proj, proj}, 0, both, nil},
		{"build in the project", proj, []string{"build"}, 0, both, nil},
		{"build --app", root, []string{"build", "--app", "api", proj}, 0, []string{api}, []string{web}},
		{"build -a twice", root, []string{"build", "-a", "api", "-a", "web", proj}, 0, both, nil},
		{"build --app unknown", root, []string{"build", "--app", "nope", proj}, 2, []string{`unknown app "nope"`, "web, api"}, nil},
		{"legacy build -d DIR APP", root, []string{"build", "-d", proj, "api"}, 0, []string{api, "use --app api"}, []string{web}},
		{"legacy build APP in the project", proj, []string{"build", "api"}, 0, []string{api, "building application \"api\""}, []string{web}},
		{"legacy build APP APP", proj, []string{"build", "api", "web"}, 0, append(both, "use --app api --app web"), nil},
		{"build neither dir nor app", root, []string{"build", "nope"}, 2, []string{"nope is not a project directory"}, nil},
		{"build two dirs", root, []string{"build", "-d", proj, filepath.Join(proj, "web")}, 2, []string{"given twice"}, nil},
		{"start -d missing", root, []string{"start", "-d", filepath.Join(root, "missing")}, 2, []string{"does not exist"}, nil},
		{"dev --dir missing", root, []string{"dev", "--dir", filepath.Join(root, "missing")}, 2, []string{"does not exist"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := runCLI(t, c.cwd, env, c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d\n%s", code, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestStartWithDirFlag: `wattd start -d DIR` runs the project in DIR, and
// `wattd start DIR/prod.json` (a configuration file as the argument, as
// wattpm takes it) runs that file with DIR as the project directory: DIR's
// .env gives the port.
func TestStartWithDirFlag(t *testing.T) {
	integration(t)
	for _, form := range []string{"-d DIR", "FILE"} {
		t.Run(form, func(t *testing.T) {
			port := freePort(t)
			cfg := map[string]any{
				"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
			}
			dir := project(t, cfg)
			args := []string{"start", "-d", dir}
			env := []string{"PLT_SERVER_PORT=" + strconv.Itoa(port)}
			if form == "FILE" {
				// Not a name the directory lookup finds, and the port in the
				// project's .env only.
				if err := os.Remove(filepath.Join(dir, "watt.json")); err != nil {
					t.Fatal(err)
				}
				writeJSON(t, filepath.Join(dir, "prod.json"), cfg)
				if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("PLT_SERVER_PORT="+strconv.Itoa(port)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				args, env = []string{"start", filepath.Join(dir, "prod.json")}, nil
			}
			cmd := exec.Command(wattdBin, args...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), append(env, "WATTD_RUNTIME_DIR="+t.TempDir())...)
			out := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				stopGracefully(cmd.Process, done)
				if t.Failed() {
					t.Logf("wattd output:\n%s", out.String())
				}
			})
			waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/", port), 20*time.Second)
		})
	}
}

// TestInitAppAtRoot: `wattd init` in a folder that is itself an
// application writes a one-app watt.json with "path": "." that runs.
func TestInitAppAtRoot(t *testing.T) {
	integration(t)
	dir := filepath.Join(t.TempDir(), "My_Site")
	copyDir(t, fixture("apps/plain"), dir)
	// The project's own .env is kept, and the variable the server block
	// names that it does not set is added to it (unset, the server would
	// listen on every interface).
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("MY_SECRET=keep\nexport PLT_SERVER_PORT=3042"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, t.TempDir(), nil, "init", "--dir", dir)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s", code, out)
	}
	if env, _ := os.ReadFile(filepath.Join(dir, ".env")); string(env) != "MY_SECRET=keep\nexport PLT_SERVER_PORT=3042\nPLT_SERVER_HOSTNAME=127.0.0.1\n" {
		t.Errorf(".env after init: %q", env)
	}
	if !strings.Contains(out, "added PLT_SERVER_HOSTNAME to "+filepath.Join(dir, ".env")) {
		t.Errorf("init does not say what it added to .env:\n%s", out)
	}
	var cfg struct {
		Entrypoint   string
		Applications []struct{ ID, Path string }
		Autoload     any
	}
	b, err := os.ReadFile(filepath.Join(dir, "watt.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("watt.json: %v\n%s", err, b)
	}
	if len(cfg.Applications) != 1 || cfg.Applications[0].Path != "." || cfg.Applications[0].ID != "my-site" ||
		cfg.Entrypoint != "my-site" || cfg.Autoload != nil {
		t.Fatalf("watt.json for an app at the root:\n%s", b)
	}
	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{})
	if body := waitHTTP(t, d.url("/"), 20*time.Second); !strings.Contains(body, `"app":"my-site"`) {
		t.Fatalf("answer: %s", body)
	}
	// A folder with neither an app at its root nor below is still refused.
	empty := t.TempDir()
	if out, code := runCLI(t, empty, nil, "init"); code != 2 || !strings.Contains(out, "no application found") {
		t.Fatalf("init in an empty folder: exit %d\n%s", code, out)
	}
}

// TestInitMixedLayouts: wattd init reads a project's workspaces, leaves
// out the folders that look like libraries or test suites (and says so),
// prefers a root that is itself a server to the folders beside it (and
// names them), and excludes from an autoload the folders it left out; each
// file it writes starts.
func TestInitMixedLayouts(t *testing.T) {
	integration(t)
	library := map[string]string{"package.json": `{"name": "util", "main": "index.js", "types": "index.d.ts"}`, "index.js": "exports.x = 1\n"}
	suite := map[string]string{"package.json": `{"name": "e2e", "private": true, "scripts": {"test": "node --test"}}`}
	type config struct {
		Entrypoint   string
		Applications []struct{ ID, Path string }
		Autoload     struct {
			Path    string
			Exclude []string
		}
	}
	initAndStart := func(t *testing.T, dir string, ready ...string) (string, config) {
		t.Helper()
		out, code := runCLI(t, dir, nil, "init")
		if code != 0 {
			t.Fatalf("init: exit %d\n%s", code, out)
		}
		var cfg config
		b, _ := os.ReadFile(filepath.Join(dir, "watt.json"))
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		d := startWattd(t, dir, freePort(t), startOpts{})
		for _, id := range ready {
			d.waitReady(id, 20*time.Second)
		}
		return out, cfg
	}

	t.Run("workspaces", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"package.json": `{"name": "mono", "private": true, "workspaces": ["apps/*", "packages/*"]}`})
		copyDir(t, fixture("apps/plain"), filepath.Join(dir, "apps", "web"))
		writeFiles(t, filepath.Join(dir, "packages", "util"), library)
		writeFiles(t, filepath.Join(dir, "packages", "e2e"), suite)
		out, cfg := initAndStart(t, dir, "web")
		if len(cfg.Applications) != 1 || cfg.Applications[0].Path != "./apps/web" || cfg.Entrypoint != "web" {
			t.Errorf("applications %+v", cfg.Applications)
		}
		for _, want := range []string{"packages/util: looks like a library", "packages/e2e: nothing to start"} {
			if !strings.Contains(out, want) {
				t.Errorf("init does not say %q:\n%s", want, out)
			}
		}
	})
	t.Run("root server beside other folders", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "site")
		copyDir(t, fixture("apps/plain"), dir)
		copyDir(t, fixture("apps/plain"), filepath.Join(dir, "admin"))
		writeFiles(t, filepath.Join(dir, "e2e"), suite)
		out, cfg := initAndStart(t, dir, "site")
		if len(cfg.Applications) != 1 || cfg.Applications[0].Path != "." {
			t.Errorf("applications %+v", cfg.Applications)
		}
		if !strings.Contains(out, "also found admin (node)") {
			t.Errorf("init does not name the folder beside the root:\n%s", out)
		}
	})
	t.Run("autoload excludes", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, fixture("apps/plain"), filepath.Join(dir, "services", "users"))
		writeFiles(t, filepath.Join(dir, "services", "shared"), library)
		_, cfg := initAndStart(t, dir, "users")
		if cfg.Autoload.Path != "services" || !slices.Equal(cfg.Autoload.Exclude, []string{"shared"}) {
			t.Errorf("autoload %+v", cfg.Autoload)
		}
	})
}

// TestInitAutoloadOfFoldersThatAreNotIds: wattd init over services/ whose
// folder names are not application ids (My_App, app.v2, two that make the
// same id) writes mappings with the ids it prints, and the file it writes
// starts; a folder that does not exist is named as such.
func TestInitAutoloadOfFoldersThatAreNotIds(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	for _, name := range []string{"My_App", "app.v2", "my-app"} {
		copyDir(t, fixture("apps/plain"), filepath.Join(dir, "services", name))
	}
	out, code := runCLI(t, dir, nil, "init")
	if code != 0 {
		t.Fatalf("init: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "watt.json"))
	var cfg struct {
		Autoload struct {
			Path     string
			Mappings map[string]struct{ ID string }
		}
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Autoload.Path != "services" ||
		cfg.Autoload.Mappings["My_App"].ID != "my-app" || cfg.Autoload.Mappings["app.v2"].ID != "app-v2" || cfg.Autoload.Mappings["my-app"].ID != "my-app-2" {
		t.Fatalf("watt.json (%v):\n%s", err, b)
	}
	d := startWattd(t, dir, freePort(t), startOpts{})
	for _, id := range []string{"my-app", "app-v2", "my-app-2"} {
		d.waitReady(id, 20*time.Second)
	}
	if out, code := runCLI(t, dir, nil, "init", filepath.Join(dir, "nowhere")); code != 2 || !strings.Contains(out, "nowhere is not a directory") {
		t.Errorf("init of a folder that does not exist: exit %d\n%s", code, out)
	}
}

// TestConfigReportExitsUsage: every configuration problem, including an
// application folder no capability recognises (inside the project or
// outside it), comes in one report, and wattd start and wattd build exit
// 2 before starting or building anything.
func TestConfigReportExitsUsage(t *testing.T) {
	integration(t)
	outside := t.TempDir() // exists, but holds no application
	// An application whose package.json is not JSON: found with the rest,
	// at load, not by the start.
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "package.json"), []byte("{\"name\": \"b\",\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := project(t, map[string]any{
		"workerz":    1,
		"entrypoint": "nope",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{MYPORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain"), "env": map[string]any{"N": 1, "B": true}},
			map[string]any{"id": "empty", "path": outside},
			map[string]any{"id": "typo", "path": fixture("apps/plain"), "capability": "nodejs"},
			map[string]any{"id": "broken", "path": broken},
		},
	})
	want := []string{
		`/applications/3: ` + filepath.Join(broken, "package.json") + `:2:1: invalid character '}'`,
		`/workerz: unknown key "workerz" (did you mean "workers"?)`,
		`/entrypoint: no application has id "nope"`,
		`/server/port: expected integer from 0 to 65535, got 99999 (the value of MYPORT)`,
		`/applications/1/path: capabilities: no capability recognises ` + outside,
		`/applications/2/capability: capabilities: unknown capability "nodejs"`,
	}
	env := []string{"WATTD_RUNTIME_DIR=" + t.TempDir(), "MYPORT=99999"}
	for _, args := range [][]string{{"start", dir}, {"build", dir}, {"dev", dir}} {
		out, code := runCLI(t, t.TempDir(), env, args...)
		if code != 2 {
			t.Errorf("wattd %s: exit %d, want 2\n%s", args[0], code, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("wattd %s: report lacks %q:\n%s", args[0], w, out)
			}
		}
		if strings.Contains(out, "starting") || strings.Contains(out, "building") {
			t.Errorf("wattd %s went ahead:\n%s", args[0], out)
		}
	}
	// Alone, the folder outside the project is still a configuration
	// error (it used to exit 1 from the runtime).
	dir2 := project(t, map[string]any{"applications": []any{map[string]any{"id": "empty", "path": outside}}})
	if out, code := runCLI(t, t.TempDir(), env, "start", dir2); code != 2 || !strings.Contains(out, "/applications/0/path") {
		t.Errorf("start with an unrecognised folder: exit %d, want 2 naming /applications/0/path\n%s", code, out)
	}
}

// TestNodeOptionsInTheReport: nodeOptions that do not split as Node.js
// would split them are a mistake of the file, at their key and in the
// same report as the file's other mistakes; the start exited 1 without a
// file or a path, and the other mistake hid it.
func TestNodeOptionsInTheReport(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"workerz":    1,
		"server":     map[string]any{"port": freePort(t)},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain"), "nodeOptions": "--max-old-space-size=64 '--title=a b"},
		},
	})
	out, code := runCLI(t, t.TempDir(), []string{"WATTD_RUNTIME_DIR=" + t.TempDir()}, "start", dir)
	if code != 2 {
		t.Errorf("exit %d, want 2\n%s", code, out)
	}
	file := filepath.Join(dir, "watt.json")
	for _, w := range []string{
		file + `:13: /workerz: unknown key "workerz"`,
		file + `:5: /applications/0/nodeOptions: unterminated single quote`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
}

// TestAppFileMainInTheReport: node.main of an application's own file
// that names no file is reported in that file at /node/main, beside the
// file's other mistakes (it was put on the runtime file's /autoload/path,
// and left out when the application's file had a mistake too).
func TestAppFileMainInTheReport(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"watt.json":          fmt.Sprintf(`{"entrypoint": "a", "server": {"port": %d}, "autoload": {"path": "web"}}`, freePort(t)),
		"web/a/package.json": `{"name": "a"}`,
		"web/a/watt.json": `{
  "$schema": "https://schemas.platformatic.dev/@platformatic/node/3.65.0.json",
  "node": {"main": "missing.js",
    "hasServer": "maybe"}
}`,
	})
	out, code := runCLI(t, t.TempDir(), []string{"WATTD_RUNTIME_DIR=" + t.TempDir()}, "start", dir)
	if code != 2 {
		t.Errorf("exit %d, want 2\n%s", code, out)
	}
	file := filepath.Join(dir, "web", "a", "watt.json")
	for _, w := range []string{
		file + `:4: /node/hasServer: expected a boolean, got "maybe"`,
		file + `:3: /node/main: node.main names "missing.js", and ` + filepath.Join(dir, "web", "a", "missing.js") + ` is not a file`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
}

// TestConcurrentRestartsCoalesce: ten `wattd ctl restart` at once roll the
// app twice (one roll, and one for the requests made while it ran), not
// ten times, and the commands return once a roll that began after they
// were asked has ended.
func TestConcurrentRestartsCoalesce(t *testing.T) {
	integration(t)
	// A worker that takes 1.5 s to start: the ten commands all arrive
	// while the first roll runs, whatever the machine's load.
	port := freePort(t)
	dir := project(t, map[string]any{
		"server": map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("faults/slow-start"),
			"env": map[string]any{"SLOW_START_MS": "1500"}}},
	})
	d := startWattd(t, dir, port, startOpts{})
	before := d.waitReady("web", 20*time.Second).Workers[0].PID
	sock := d.adminSocket()
	asked := time.Now()
	var wg sync.WaitGroup
	codes := make([]int, 10)
	outs := make([]string, 10)
	for i := range codes {
		wg.Go(func() { outs[i], codes[i] = runCLI(t, dir, nil, "ctl", "--socket", sock, "restart", "web") })
	}
	wg.Wait()
	took := time.Since(asked)
	for i, c := range codes {
		if c != 0 {
			t.Errorf("restart %d: exit %d\n%s", i, c, outs[i])
		}
	}
	w := d.app("web").Workers[0]
	if w.PID == before || w.State != "ready" {
		t.Fatalf("after the restarts: %+v (pid before %d)", w, before)
	}
	if w.Restarts < 1 || w.Restarts > 2 {
		t.Errorf("10 concurrent restarts rolled the worker %d times, want 1 or 2", w.Restarts)
	}
	// The worker serving now started after the last command was asked.
	if started := time.Now().Add(-time.Duration(w.Uptime * float64(time.Second))); started.Before(asked) {
		t.Errorf("the worker serving started %s before the restarts were asked", asked.Sub(started))
	}
	joined := len(logEntries(d.out.String(), "rolling restart requested; it joins the one waiting to start"))
	t.Logf("10 restarts in %s: %d rolls, %d requests joined a waiting roll", took.Round(time.Millisecond), w.Restarts, joined)
	if joined < 8 {
		t.Errorf("%d requests joined a waiting roll, want at least 8", joined)
	}
}

// TestCtlRestartSeveral: `ctl restart A B` restarts each application
// named, in turn, as wattpm restart does; a name the runtime does not
// know stops it before anything restarts.
func TestCtlRestartSeveral(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"entrypoint": "web",
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 1},
			map[string]any{"id": "api", "path": fixture("apps/plain"), "workers": 1},
			map[string]any{"id": "jobs", "path": fixture("apps/plain"), "workers": 1},
		},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	before := map[string]int{}
	for _, id := range []string{"web", "api", "jobs"} {
		before[id] = d.waitReady(id, 20*time.Second).Workers[0].PID
	}
	if out, err := d.ctl("restart", "web", "nope"); err == nil || !strings.Contains(out, `"nope"`) || !strings.Contains(out, "nothing was restarted") {
		t.Fatalf("ctl restart web nope: %v\n%s", err, out)
	}
	if pid := d.app("web").Workers[0].PID; pid != before["web"] {
		t.Fatalf("web restarted (pid %d, was %d) although the command was refused", pid, before["web"])
	}
	out, err := d.ctl("restart", "web", "api", "--json")
	var st []supervisor.AppStatus
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st) != 2 || st[0].ID != "web" || st[1].ID != "api" {
		t.Fatalf("ctl restart web api --json: %v\n%s", err, out)
	}
	for _, a := range st {
		if a.Workers[0].PID == before[a.ID] || a.Workers[0].State != "ready" {
			t.Errorf("%s after the restart: %+v", a.ID, a.Workers[0])
		}
	}
	if pid := d.app("jobs").Workers[0].PID; pid != before["jobs"] {
		t.Errorf("jobs, not named, restarted")
	}
}

// checkInject runs `wattd ctl inject ARGS…` and checks its exit code and
// that its output has each of want.
func checkInject(t *testing.T, dir string, env, args []string, code int, want []string) {
	t.Helper()
	args = append([]string{"ctl", "inject"}, args...)
	out, got := runCLI(t, dir, env, args...)
	if got != code {
		t.Errorf("wattd %s: exit %d, want %d\n%s", strings.Join(args, " "), got, code, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("wattd %s: output lacks %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
}

// TestCtlSavesOnlyNamesWattdGives: a heap snapshot or profile saved under
// the name the runtime gives (no --output) must be a name wattd gives, and
// never replaces a file. The other end of --socket may be a program that
// another user planted; a root shell in its home directory would otherwise
// save its answer as .bashrc.
func TestCtlSavesOnlyNamesWattdGives(t *testing.T) {
	integration(t)
	sockDir, err := os.MkdirTemp("", "wsock") // a socket path must be short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var name atomic.Value
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename="`+name.Load().(string)+`"`)
		io.WriteString(w, "payload\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{".bashrc": "original\n"})
	name.Store(".bashrc")
	out, code := runCLI(t, dir, nil, "ctl", "--socket", sock, "heap-snapshot", "api")
	if code != 1 || !strings.Contains(out, `named the heap snapshot ".bashrc", which is not a name wattd gives`) {
		t.Errorf("a name wattd does not give: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".bashrc")); string(b) != "original\n" {
		t.Errorf(".bashrc is now %q", b)
	}
	good := "heap-api-0-2026-12-07T04-10-00Z.heapsnapshot"
	name.Store(good)
	if out, code := runCLI(t, dir, nil, "ctl", "--socket", sock, "heap-snapshot", "api"); code != 0 || !strings.Contains(out, "saved to "+filepath.Join(dir, good)) {
		t.Errorf("a name wattd gives: exit %d\n%s", code, out)
	}
	// The same name again (a second snapshot within the second): kept.
	if err := os.WriteFile(filepath.Join(dir, good), []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, dir, nil, "ctl", "--socket", sock, "heap-snapshot", "api"); code != 1 || !strings.Contains(out, "exists; give --output to replace it") {
		t.Errorf("an existing file under the name: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, good)); string(b) != "first\n" {
		t.Errorf("the existing file is now %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files left: %v", entries)
	}
}
