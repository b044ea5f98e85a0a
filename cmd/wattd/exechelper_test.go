package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/wattd/wattd/supervisor"
)

// TestHelperSkipsWattdInit: the exec helper (wattd re-executed to start a
// worker) execs the worker's program before wattd's own packages and its
// heavy dependencies initialise, which would otherwise delay every start
// and every crashed worker's replacement; and the program gets LISTEN_PID
// equal to its own pid.
func TestHelperSkipsWattdInit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the wattd binary")
	}
	cmd := exec.Command(wattdBin, supervisor.ExecHelperArg, "/bin/sh", "-c", `echo "$LISTEN_PID $$"`)
	// The runtime prints a line per package initialised.
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("exec helper: %v\n%s", err, stderr.String())
	}
	pids := strings.Fields(stdout.String())
	if len(pids) != 2 || pids[0] != pids[1] {
		t.Fatalf("program printed LISTEN_PID and its pid %q, want the same pid twice", stdout.String())
	}
	if _, err := strconv.Atoi(pids[0]); err != nil {
		t.Fatalf("LISTEN_PID %q is not a pid", pids[0])
	}
	var inits []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "init" {
			inits = append(inits, f[1])
		}
	}
	if len(inits) == 0 {
		t.Fatalf("no init trace on stderr; GODEBUG=inittrace=1 not honoured?\n%s", stderr.String())
	}
	// wattd's own packages, and the dependencies whose init functions
	// cost the most (measured with the same trace).
	heavy := map[string]bool{
		"github.com/russross/blackfriday/v2":             true,
		"github.com/prometheus/client_golang/prometheus": true,
		"github.com/prometheus/procfs":                   true,
		"github.com/urfave/cli/v2":                       true,
		"google.golang.org/grpc":                         true,
	}
	var early []string
	for _, p := range inits {
		if heavy[p] || strings.HasPrefix(p, "github.com/wattd/wattd/") {
			early = append(early, p)
		}
	}
	if len(early) > 0 {
		t.Errorf("packages initialised before the exec helper ran: %s\n(all %d inits before it: %s)", strings.Join(early, " "), len(inits), strings.Join(inits, " "))
	}
}
