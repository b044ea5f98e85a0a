package main_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

// TestClosedOutputPipe: `wattd start | head -1`. Once the reader of its
// output is gone, wattd keeps serving and supervising, counts the log
// entries it could not write, and `ctl stop` still stops it gracefully.
func TestClosedOutputPipe(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := meshProject(t, nil)
	runBase, err := os.MkdirTemp("", "wrt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runBase) })
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(wattdBin, "start", dir)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+runBase, "PLT_SERVER_PORT="+strconv.Itoa(port), "WATTD_LOG_FORMAT=json")
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	d := &daemon{t: t, cmd: cmd, dir: dir, port: port, out: &syncBuffer{}, runDir: runBase, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { stopGracefully(cmd.Process, d.done) })

	// head -1: one line, then the reader is gone.
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %v", err)
	}
	pr.Close()
	t.Logf("read %q, then closed the pipe", first)

	waitHTTP(t, d.url("/env"), 20*time.Second)
	// Supervision logs as it works (the crash-looping "broken" app, the
	// restart below): every one of those writes hits the closed pipe.
	if out, err := d.ctl("restart", "plain"); err != nil {
		t.Fatalf("ctl restart: %v\n%s", err, out)
	}
	waitHTTP(t, d.url("/env"), 10*time.Second)
	out, err := d.ctl("status", "--json")
	if err != nil {
		t.Fatalf("ctl status: %v\n%s", err, out)
	}
	var st supervisor.RuntimeStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.LogLinesDropped == 0 {
		t.Fatalf("status after writes to a closed pipe: %d log lines dropped, want some", st.LogLinesDropped)
	}
	if out, err := d.ctl("stop"); err != nil {
		t.Fatalf("ctl stop: %v\n%s", err, out)
	}
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("wattd exited %d after ctl stop, want 0 (a graceful stop)", code)
	}
	ents, err := os.ReadDir(runBase)
	if err != nil || len(ents) != 0 {
		t.Fatalf("runtime directory left behind: %v %v", ents, err)
	}
	t.Logf("%d log entries dropped", st.LogLinesDropped)
}
