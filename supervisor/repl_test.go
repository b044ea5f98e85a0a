package supervisor

import (
	"os"
	"os/exec"
	"testing"
)

// TestInTree: a REPL connection is taken from the worker or a process
// below it, and from no other.
func TestInTree(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	me, parent := os.Getpid(), os.Getppid()
	for _, c := range []struct {
		pid, root int
		want      bool
	}{
		{me, me, true},
		{child.Process.Pid, me, true},
		{child.Process.Pid, parent, true},
		{me, child.Process.Pid, false},
		{parent, me, false},
		{1, me, false},
		{0, me, false},
	} {
		if got := inTree(c.pid, c.root); got != c.want {
			t.Errorf("inTree(%d, %d) = %v, want %v", c.pid, c.root, got, c.want)
		}
	}
}
