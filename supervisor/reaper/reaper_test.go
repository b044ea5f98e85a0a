package reaper

import (
	"bufio"
	"errors"
	"os"
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

// TestPassSkipsOwnChildrenState: a reaping pass does not read the /proc
// state of the children Start started, so its cost does not grow with the
// number of workers.
func TestPassSkipsOwnChildrenState(t *testing.T) {
	var cmds []*exec.Cmd
	own := map[int]bool{}
	for range 5 {
		c := exec.Command("sleep", "30")
		if err := Start(c); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
		own[c.Process.Pid] = true
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
			Forget(c.Process.Pid)
		}
	})
	read := readStat
	var hits []int
	readStat = func(pid int) ([]byte, error) {
		if own[pid] {
			hits = append(hits, pid)
		}
		return read(pid)
	}
	t.Cleanup(func() { readStat = read })
	Reap()
	if len(hits) > 0 {
		t.Fatalf("a reaping pass read the state of own children %v", hits)
	}
}

// TestPassWithoutOrphansLeavesStartAlone: a pass that finds no orphan
// does not take the lock that Start holds while it forks, so a worker's
// replacement is not held up by the pass its predecessor's SIGCHLD set
// off.
func TestPassWithoutOrphansLeavesStartAlone(t *testing.T) {
	forking.RLock() // a Start in progress
	done := make(chan []Reaped, 1)
	go func() { done <- Reap() }()
	select {
	case r := <-done:
		forking.RUnlock()
		if len(r) != 0 {
			t.Fatalf("reaped %v with no orphan around", r)
		}
	case <-time.After(5 * time.Second):
		forking.RUnlock()
		<-done
		t.Fatal("a pass with nothing to reap waited for a Start in progress")
	}
}

// threads counts this process's OS threads.
func threads(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(tasks)
}

// TestAwaitExitHoldsNoThread: children waited for with AwaitExit then Wait
// do not each keep an OS thread blocked, and Wait still gets every exit
// status.
func TestAwaitExitHoldsNoThread(t *testing.T) {
	probe := exec.Command("true")
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	pfd, err := unix.PidfdOpen(probe.Process.Pid, unix.PIDFD_NONBLOCK)
	_ = probe.Wait()
	if err != nil {
		t.Skipf("no pollable pidfd here: %v", err)
	}
	unix.Close(pfd)

	const n = 40
	base := threads(t)
	cmds := make([]*exec.Cmd, n)
	errs := make(chan error, n)
	for i := range cmds {
		c := exec.Command("sleep", "60")
		if err := Start(c); err != nil {
			t.Fatal(err)
		}
		cmds[i] = c
		go func() {
			AwaitExit(c.Process.Pid)
			errs <- c.Wait()
		}()
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
		}
	})
	// A goroutine in a blocking wait takes its thread at once; give the
	// runtime a while to show any, sampling all along.
	most := 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		most = max(most, threads(t))
	}
	if most-base >= n/2 {
		t.Fatalf("%d threads while waiting for %d children (%d before)", most, n, base)
	}
	for _, c := range cmds {
		_ = c.Process.Signal(unix.SIGTERM)
	}
	deadline := time.After(20 * time.Second)
	for range n {
		select {
		case err := <-errs:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.String() != "signal: terminated" {
				t.Fatalf("wait after AwaitExit: %v, want signal: terminated", err)
			}
		case <-deadline:
			t.Fatal("AwaitExit or Wait did not return after the children exited")
		}
	}
	for _, c := range cmds {
		Forget(c.Process.Pid)
	}
}

// TestAwaitExitAfterExit: a child that exited already is not waited for.
func TestAwaitExitAfterExit(t *testing.T) {
	c := exec.Command("sh", "-c", "exit 4")
	if err := Start(c); err != nil {
		t.Fatal(err)
	}
	defer Forget(c.Process.Pid)
	deadline := time.Now().Add(20 * time.Second)
	for !isZombie(c.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatal("child never exited")
		}
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { AwaitExit(c.Process.Pid); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("AwaitExit did not return for an exited child")
	}
	var ee *exec.ExitError
	if err := c.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("wait: %v, want exit status 4", err)
	}
}
