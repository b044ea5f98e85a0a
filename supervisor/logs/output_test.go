package logs

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"
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

// A reader that stops reading does not block the goroutines that log:
// past the queue's bound entries are dropped and counted, and once the
// reader reads again the entries logged after that reach it.
func TestOutputDoesNotBlockOnStalledReader(t *testing.T) {
	t.Setenv(FormatEnv, "json")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	defer pr.Close()
	log, _, err := New("info", pw)
	if err != nil {
		t.Fatal(err)
	}
	before := OutputDropped()
	line := strings.Repeat("x", 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Far more than a pipe holds (64 KiB) and than the queue takes.
		for range 3 * maxQueued / 1000 {
			log.Info(line)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("logging blocked on a reader that does not read")
	}
	if OutputDropped() == before {
		t.Fatal("nothing dropped although the reader read nothing")
	}
	// Sync waits for the stalled reader once, at most syncWait, then not
	// again until the queue is written.
	for i, most := range []time.Duration{syncWait + time.Second, 500 * time.Millisecond} {
		start := time.Now()
		_ = log.Sync()
		if took := time.Since(start); took > most {
			t.Fatalf("Sync %d on a stalled reader took %s, want at most %s", i+1, took, most)
		}
	}
	// The reader comes back: what was queued, then the entries logged
	// from then on, arrive.
	seen := make(chan struct{})
	go func() {
		defer close(seen)
		r := bufio.NewReaderSize(pr, 1<<16)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.Contains(l, `"msg":"after the stall"`) {
				return
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		log.Info("after the stall")
		select {
		case <-seen:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no entry reached the reader once it read again")
		}
	}
}
