package reaper

import (
	"bufio"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReapsOrphansNotOwnChildren: an orphan reparented to this process
// (a subreaper) is reaped; a child started with Start that has exited is
// left for its own Wait, which still reads its exit status.
func TestReapsOrphansNotOwnChildren(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a subreaper: %v", err)
	}
	// The shell starts a sleep in the background and exits: the sleep is
	// orphaned and becomes this process's child.
	parent := exec.Command("sh", "-c", "sleep 0.3 & echo $!")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := Start(parent); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Wait(); err != nil {
		t.Fatal(err)
	}
	Forget(parent.Process.Pid)

	own := exec.Command("sh", "-c", "exit 3")
	if err := Start(own); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !isZombie(own.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatal("own child never exited")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var reaped *Reaped
	for reaped == nil {
		for _, r := range Reap() {
			if r.PID == own.Process.Pid {
				t.Fatalf("reaped own child %d", r.PID)
			}
			if r.PID == orphan {
				reaped = &r
			}
		}
		if reaped == nil && time.Now().After(deadline) {
			t.Fatalf("orphan %d not reaped", orphan)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if reaped.Status != "exit status 0" {
		t.Fatalf("orphan status %q", reaped.Status)
	}
	if isZombie(orphan) {
		t.Fatalf("orphan %d still a zombie", orphan)
	}

	err = own.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("own child's wait: %v, want exit status 3", err)
	}
	Forget(own.Process.Pid)
}

func TestStateAfterAnyCommandName(t *testing.T) {
	for stat, want := range map[string]byte{
		"42 (node) Z 1 42":       'Z',
		"42 (a) b (c)) S 1 42":   'S',
		"42 (no closing paren Z": 0,
		"42 (x)":                 0,
	} {
		if got := state(stat); got != want {
			t.Errorf("state(%q) = %q, want %q", stat, got, want)
		}
	}
	if isZombie(1 << 30) {
		t.Fatal("a pid that does not exist is no zombie")
	}
}
