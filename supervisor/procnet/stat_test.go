package procnet

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReadStatRSS: the resident size from /proc/<pid>/stat agrees with
// /proc/<pid>/statm's, the file it replaces, and grows when the process
// touches more memory.
func TestReadStatRSS(t *testing.T) {
	statm := func() uint64 {
		b, err := os.ReadFile("/proc/self/statm")
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(strings.Fields(string(b))[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n * uint64(os.Getpagesize())
	}
	st, ok := ReadStat(os.Getpid())
	want := statm()
	if !ok || st.RSS == 0 {
		t.Fatalf("ReadStat(self) = %+v, %v", st, ok)
	}
	// Read a moment apart: within 4 MiB of each other.
	if d := int64(st.RSS) - int64(want); d > 4<<20 || d < -4<<20 {
		t.Errorf("stat RSS %d, statm %d", st.RSS, want)
	}
	// Memory of its own, not the Go heap's: a slice could reuse pages an
	// earlier test (or run, with -count) left resident, and not grow RSS.
	buf, err := unix.Mmap(-1, 0, 64<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	before, _ := ReadStat(os.Getpid())
	for i := range len(buf) / 4096 {
		buf[i*4096] = 1
	}
	after, _ := ReadStat(os.Getpid())
	if after.RSS < before.RSS+48<<20 {
		t.Errorf("RSS %d after touching 64 MiB, %d before", after.RSS, before.RSS)
	}
	if _, ok := ReadStat(-1); ok {
		t.Error("ReadStat(-1) reports ok")
	}
}

// TestReadThreadStat: a thread's times are its own, within its process's
// (which count every thread's), and user + system make the total.
func TestReadThreadStat(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := syscall.Gettid()
	before, ok := ReadThreadStat(os.Getpid(), tid)
	if !ok {
		t.Fatalf("ReadThreadStat(self, %d) not ok", tid)
	}
	// 300 ms of CPU on this thread.
	start := time.Now()
	var rusage syscall.Rusage
	for {
		_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &rusage)
		if time.Duration(rusage.Utime.Nano()+rusage.Stime.Nano()) > 300*time.Millisecond+time.Duration(before.CPU) || time.Since(start) > 10*time.Second {
			break
		}
	}
	after, _ := ReadThreadStat(os.Getpid(), tid)
	proc, _ := ReadStat(os.Getpid())
	if d := after.CPU - before.CPU; d < 250*time.Millisecond {
		t.Errorf("the thread's CPU time grew by %v over a 300 ms busy loop on it", d)
	}
	if after.User+after.System != after.CPU || after.CPU > proc.CPU {
		t.Errorf("thread %+v, process %+v", after, proc)
	}
	if _, ok := ReadThreadStat(os.Getpid(), -1); ok {
		t.Error("ReadThreadStat(self, -1) reports ok")
	}
}

// TestReadHostCPU: the host's counters move forward and idle is part of
// the total.
func TestReadHostCPU(t *testing.T) {
	a, ok := ReadHostCPU()
	if !ok || a.Total == 0 || a.Idle > a.Total {
		t.Fatalf("ReadHostCPU() = %+v, %v", a, ok)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := ReadHostCPU()
		if b.Total > a.Total {
			if b.Idle < a.Idle {
				t.Errorf("idle went back: %+v then %+v", a, b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/proc/stat's total did not move in 5 s: %+v then %+v", a, b)
		}
	}
}

func TestTreeCPUCountsChildren(t *testing.T) {
	// A shell whose child burns CPU: the tree's time grows though the
	// shell's own stays at nothing.
	cmd := exec.Command("sh", "-c", "sh -c 'while :; do :; done' & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, p := range Tree(cmd.Process.Pid) {
			syscall.Kill(p, syscall.SIGKILL)
		}
		cmd.Wait()
	}()
	var tree time.Duration
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var ok bool
		if tree, ok = TreeCPU(cmd.Process.Pid); !ok {
			t.Fatal("TreeCPU: the shell is gone")
		}
		if tree >= 200*time.Millisecond {
			break
		}
	}
	own, _ := ReadStat(cmd.Process.Pid)
	if tree < 200*time.Millisecond || own.CPU > 50*time.Millisecond {
		t.Fatalf("tree CPU %s, the shell's own %s: want the child's time counted", tree, own.CPU)
	}
	if _, ok := TreeCPU(1 << 30); ok {
		t.Fatal("TreeCPU of a pid that does not exist: ok")
	}
}

// TestProcessMemoryAndLimits: the virtual size, VmData and the open files
// limit, which the metrics export as prom-client's process_* figures,
// agree with what the process itself knows.
func TestProcessMemoryAndLimits(t *testing.T) {
	pid := os.Getpid()
	st, ok := ReadStat(pid)
	if !ok || st.VSize < st.RSS || st.VSize == 0 {
		t.Fatalf("ReadStat: vsize %d, rss %d, ok %v", st.VSize, st.RSS, ok)
	}
	data, ok := ReadVmData(pid)
	if !ok || data == 0 || data > st.VSize {
		t.Fatalf("ReadVmData = %d, %v (vsize %d)", data, ok, st.VSize)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if n, ok := MaxOpenFiles(pid); lim.Cur != unix.RLIM_INFINITY && (!ok || n != lim.Cur) {
		t.Errorf("MaxOpenFiles = %d, %v; getrlimit says %d", n, ok, lim.Cur)
	}
	if _, ok := ReadVmData(1 << 30); ok {
		t.Error("ReadVmData of no process says ok")
	}
}
