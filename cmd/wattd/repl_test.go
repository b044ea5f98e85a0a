package main_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/websocket"
	"golang.org/x/sys/unix"
)

// TestREPL opens REPLs inside workers: `wattd ctl repl` with piped input
// and on a terminal, Watt's WebSocket route as `wattpm repl` uses it (and
// wattpm itself when a Node.js it supports is there), and the refusals.
func TestREPL(t *testing.T) {
	integration(t)
	tmp := privateTmp(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 2},
			map[string]any{"id": "locked", "path": fixture("apps/plain"),
				"permissions": map[string]any{"fs": map[string]any{"read": []string{"/etc/hostname"}}}},
			map[string]any{"id": "py", "path": fixture("apps/pyapp"), "capability": "command", "command": "python3 -u app.py"},
		},
	})
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"TMPDIR=" + tmp}})
	web := d.waitReady("web", 30*time.Second)
	d.waitReady("locked", 30*time.Second)
	d.waitReady("py", 30*time.Second)
	pid := map[int]int{}
	for _, w := range web.Workers {
		pid[w.Index] = w.PID
	}

	// ctlIn runs `wattd ctl repl args…` with input on its stdin, which
	// ends after it: the REPL answers what it read, then ends.
	ctlIn := func(input string, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, wattdBin, append([]string{"ctl", "repl"}, args...)...)
		cmd.Dir = d.dir
		cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+d.runDir)
		cmd.Stdin = strings.NewReader(input)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("ctl repl %v did not end after its input did:\n%s", args, out)
		}
		return string(out), err
	}

	// session starts `wattd ctl repl args…` with its input open: the
	// caller writes to it and closes it; exited gives ctl's end.
	session := func(t *testing.T, args ...string) (in io.WriteCloser, out *syncBuffer, exited chan error) {
		t.Helper()
		cmd := exec.Command(wattdBin, append([]string{"ctl", "repl"}, args...)...)
		cmd.Dir = d.dir
		cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+d.runDir)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out = &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited = make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
		return in, out, exited
	}

	t.Run("piped", func(t *testing.T) {
		out, err := ctlIn("1+2\nprocess.pid\nserver.listening\nconfig === platformatic.config && typeof config\nthrow new Error('boom from the repl')\n'naïve ✓'\n", "--worker", "1", "web")
		if err != nil {
			t.Fatalf("ctl repl: %v\n%s", err, out)
		}
		for _, want := range []string{"web:1> 3\n", "web:1> " + strconv.Itoa(pid[1]) + "\n", "web:1> true\n", "web:1> 'object'\n",
			"Uncaught Error: boom from the repl", "web:1> 'naïve ✓'\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("REPL output lacks %q:\n%s", want, out)
			}
		}
		// An error typed at the REPL is the REPL's: the worker serves on.
		for _, w := range d.app("web").Workers {
			if w.PID != pid[w.Index] {
				t.Errorf("web worker %d: pid %d, was %d", w.Index, w.PID, pid[w.Index])
			}
		}
		// Without --worker, the lowest ready one.
		out, err = ctlIn("process.pid\n", "web")
		if err != nil || !strings.Contains(out, "web:0> "+strconv.Itoa(pid[0])+"\n") {
			t.Errorf("ctl repl web: %v\n%s", err, out)
		}
		// Under Node.js's permission model too.
		out, err = ctlIn("6*7\n", "locked")
		if err != nil || !strings.Contains(out, "locked:0> 42\n") {
			t.Errorf("ctl repl locked: %v\n%s", err, out)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"nope"}, 1, `unknown app "nope"`},
			{[]string{"--worker", "7", "web"}, 1, "worker 7"},
			{[]string{"py"}, 1, "cannot open a REPL"},
			{nil, 2, "name one: wattd ctl repl APP (one of web, locked, py)"},
			{[]string{"web", "extra"}, 2, "usage: wattd ctl repl"},
		} {
			out, err := ctlIn("1+2\n", c.args...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code || !strings.Contains(out, c.want) {
				t.Errorf("ctl repl %v: %v, want exit %d and %q:\n%s", c.args, err, c.code, c.want, out)
			}
		}
		// The admin route is an upgrade, or nothing.
		sock := d.adminSocket()
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
		resp, err := hc.Get("http://wattd/v1/apps/web/repl")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "upgraded") {
			t.Errorf("GET /v1/apps/web/repl without an upgrade: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("terminal", func(t *testing.T) {
		master, slave := openPTY(t)
		before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(wattdBin, "ctl", "repl", "web")
		cmd.Dir = d.dir
		cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+d.runDir)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer cmd.Process.Kill()
		var seen bytes.Buffer
		readUntil := func(want string) {
			t.Helper()
			_ = master.SetReadDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 4096)
			for !strings.Contains(seen.String(), want) {
				n, err := master.Read(buf)
				seen.Write(buf[:n])
				if err != nil {
					t.Fatalf("waiting for %q on the terminal: %v; it shows %q", want, err, seen.String())
				}
			}
		}
		readUntil("web:0> ")
		// In raw mode the keys go to the REPL as they are: a line ends
		// with a carriage return, and the REPL echoes and answers.
		if _, err := master.Write([]byte("6*7\r")); err != nil {
			t.Fatal(err)
		}
		readUntil("42")
		// Ctrl+C is the REPL's, not a signal to ctl.
		if _, err := master.Write([]byte{3}); err != nil {
			t.Fatal(err)
		}
		readUntil("press Ctrl+C again")
		// Ctrl+D ends the session, and ctl.
		if _, err := master.Write([]byte{4}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("ctl repl on a terminal: %v; it showed %q", err, seen.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("ctl repl did not end after Ctrl+D; it showed %q", seen.String())
		}
		after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if *after != *before {
			t.Errorf("ctl left the terminal changed: lflag %#x -> %#x, iflag %#x -> %#x", before.Lflag, after.Lflag, before.Iflag, after.Iflag)
		}
	})

	t.Run("watt route", func(t *testing.T) {
		ws := dialWattWS(t, tmp, d.cmd.Process.Pid, "/api/v1/applications/web:1/repl")
		defer ws.Close()
		// An answer longer than a read (six strings of 9,000 bytes), of
		// characters of two, three and four bytes: some read ends in
		// the middle of one.
		if _, err := ws.Write([]byte("process.pid\nArray(6).fill('é€😀'.repeat(1000)).length\nArray(6).fill('é€😀'.repeat(1000))\n")); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		var got strings.Builder
		want := strings.Repeat("'"+strings.Repeat("é€😀", 1000)+"'", 6)
		for !strings.Contains(strings.NewReplacer(" ", "", "\n", "", ",", "", "[", "", "]", "").Replace(got.String()), want) {
			var msg []byte
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				t.Fatalf("REPL over Watt's route: %v; got %q", err, textTail(got.String()))
			}
			if !utf8.Valid(msg) {
				t.Fatalf("a text message that is not UTF-8: %q", textTail(string(msg)))
			}
			got.Write(msg)
		}
		if !strings.Contains(got.String(), "web:1> "+strconv.Itoa(pid[1])+"\n") || !strings.Contains(got.String(), "web:1> 6\n") {
			t.Errorf("REPL over Watt's route: %q", textTail(got.String()))
		}
	})

	t.Run("wattpm", func(t *testing.T) {
		wattpm := wattpmCommand(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := wattpm(ctx, tmp, "repl", strconv.Itoa(d.cmd.Process.Pid), "web")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// wattpm leaves when its input ends, with what is still on its
		// way lost: the input stays open until the answer is in.
		if _, err := io.WriteString(in, "'wattpm ' + (40 + 2)\n"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "wattpm repl to print the answer", func() bool {
			return strings.Contains(out.String(), "'wattpm 42'")
		})
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("wattpm repl: %v\n%s", err, out.String())
		}
	})

	t.Run("late errors", func(t *testing.T) {
		// A timer's throw and a rejection nobody awaits, started at the
		// prompt, are the session's: printed there, the worker goes on.
		in, out, exited := session(t, "--worker", "1", "web")
		if _, err := io.WriteString(in, "setTimeout(() => { throw new Error('late boom') }, 20); Promise.reject(new Error('rejected boom')); 1\n"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "both errors printed in the session", func() bool {
			return strings.Contains(out.String(), "Uncaught Error: late boom") && strings.Contains(out.String(), "Uncaught Error: rejected boom")
		})
		in.Close()
		if err := <-exited; err != nil {
			t.Errorf("ctl repl: %v\n%s", err, out.String())
		}
		if w := d.app("web").Workers[1]; w.PID != pid[1] || w.State != "ready" {
			t.Errorf("web worker 1 after errors at its REPL: pid %d (was %d), %s", w.PID, pid[1], w.State)
		}
	})

	t.Run("restart ends it", func(t *testing.T) {
		in, out, exited := session(t, "--worker", "0", "web")
		defer in.Close()
		waitFor(t, 20*time.Second, "the REPL's prompt", func() bool { return strings.Contains(out.String(), "web:0> ") })
		// An open session holds nothing up: the worker drains and goes,
		// and the session with it.
		if res, err := d.ctl("restart", "web"); err != nil {
			t.Fatalf("ctl restart web: %v\n%s", err, res)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("ctl repl after its worker went: %v\n%s", err, out.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("ctl repl still runs after its worker was replaced:\n%s", out.String())
		}
	})

	if left, _ := filepath.Glob(filepath.Join(d.runDir, "*", "diag", "*")); len(left) > 0 {
		t.Errorf("left in the diagnostics directory: %v", left)
	}

	// Last: a stop of the runtime ends a session with an error, not as
	// an .exit would (a script piping into ctl repl must see it).
	in, out, exited := session(t, "--worker", "0", "web")
	defer in.Close()
	waitFor(t, 20*time.Second, "the REPL's prompt", func() bool { return strings.Contains(out.String(), "web:0> ") })
	d.signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out.String(), "the REPL ended because the runtime stopped") {
			t.Errorf("ctl repl when the runtime stopped: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("ctl repl still runs after the runtime stopped:\n%s", out.String())
	}
}

// textTail is the end of s, for messages.
func textTail(s string) string {
	if len(s) > 300 {
		return "…" + strings.ToValidUTF8(s[len(s)-300:], "")
	}
	return s
}
