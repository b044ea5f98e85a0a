package logs

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// A logger whose output pipe lost its reader drops and counts entries
// instead of failing (or, on fd 1 and 2, dying of SIGPIPE).
func TestOutputDropsWhenPipeIsClosed(t *testing.T) {
	KeepRunningOnBrokenPipe()
	t.Setenv(FormatEnv, "json")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	log, _, err := New("info", pw)
	if err != nil {
		t.Fatal(err)
	}
	before := OutputDropped()
	log.Info("first")
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.Contains(line, `"msg":"first"`) {
		t.Fatalf("first entry: %q %v", line, err)
	}
	if OutputDropped() != before {
		t.Fatalf("dropped %d entries while the reader was there", OutputDropped()-before)
	}
	pr.Close()
	for range 5 {
		log.Info("into a closed pipe")
	}
	if err := log.Sync(); err != nil {
		t.Fatalf("Sync after the pipe closed: %v", err)
	}
	if got := OutputDropped() - before; got != 5 {
		t.Fatalf("dropped %d entries, want 5", got)
	}
}
