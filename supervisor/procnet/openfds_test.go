package procnet

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func TestOpenFDs(t *testing.T) {
	before, ok := OpenFDs(os.Getpid())
	if !ok || before < 3 {
		t.Fatalf("OpenFDs(self) = %d, %v; want at least stdin, stdout, stderr", before, ok)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Other tests may open descriptors meanwhile: at least one more.
	if after, _ := OpenFDs(os.Getpid()); after < before+1 {
		t.Errorf("after opening one file: %d descriptors, want at least %d", after, before+1)
	}
	if _, ok := OpenFDs(-1); ok {
		t.Error("OpenFDs(-1) reports ok")
	}
}

// TestOpenFDsOfChildren: two processes that differ by five descriptors,
// counted by the directory's size where the kernel gives it (Linux 6.2
// and later) and by its entries, which must agree.
func TestOpenFDsOfChildren(t *testing.T) {
	count := func(extra int) (n, entries int) {
		t.Helper()
		cmd := exec.Command("sleep", "30")
		for range extra {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		// Start returns when the exec began closing the fork's
		// close-on-exec copies, not when it ended: the pipe Start waits
		// on may be closed before the others. sleep asleep has long
		// finished its exec, so its descriptors are those it was given
		// and inherited.
		waitSleeping(t, cmd.Process.Pid)
		n, ok := OpenFDs(cmd.Process.Pid)
		entries, err := countEntries("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/fd")
		if !ok || err != nil {
			t.Fatalf("OpenFDs: %v; entries: %v", ok, err)
		}
		return n, entries
	}
	n0, e0 := count(0)
	n5, e5 := count(5)
	if n0 != e0 || n5 != e5 || n5-n0 != 5 || n0 < 3 {
		t.Errorf("OpenFDs %d and %d, entries %d and %d; want equal pairs 5 apart, at least 3", n0, n5, e0, e5)
	}
}

// waitSleeping waits until the process pid is asleep (state S).
func waitSleeping(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the command's name, which ends at the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'S' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not asleep after 10 s: %s", pid, b)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestUserThreads(t *testing.T) {
	mine, ok := UserThreads(os.Getuid())
	if !ok {
		t.Fatal("UserThreads: /proc not listed")
	}
	// This test process alone runs several threads (Go's runtime).
	if mine < 2 {
		t.Errorf("UserThreads(own uid) = %d, fewer than this process's threads", mine)
	}
	if n, _ := UserThreads(2147480000); n != 0 {
		t.Errorf("UserThreads of a uid with no process = %d", n)
	}
}
