package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/procnet"
)

// The test binary re-executes itself as the worker: with CGTEST_CHILD set
// it joins its group the way the exec helper does and then plays the
// part named by the variable.
const envChild = "CGTEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		if err := JoinFromEnv(); err != nil {
			fmt.Fprintln(os.Stderr, "join:", err)
			os.Exit(127)
		}
		child(mode)
		os.Exit(0)
	}
	code := m.Run()
	// The test roots stay empty once every test closed its manager.
	for _, ctrl := range append(requiredV1, optionalV1...) {
		_ = syscall.Rmdir("/sys/fs/cgroup/" + ctrl + "/wattd-test")
	}
	_ = syscall.Rmdir(v2Root)
	os.Exit(code)
}

func child(mode string) {
	switch mode {
	case "open": // what an unprivileged wattd gets
		m, err := Open(Options{Name: "unprivileged"})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("%s: %s\n", m.Version(), m.Warning())
		os.Exit(0)
	case "open-root": // Open under the root and name the environment gives
		m, err := Open(Options{Root: os.Getenv("TEST_ROOT"), Name: os.Getenv("TEST_NAME")})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("%s: %s\n", m.Version(), m.Warning())
		os.Exit(0)
	case "exec": // the exec helper's part: joined above, now become the worker
		err := syscall.Exec("/usr/bin/sleep", []string{"sleep", "1000"}, os.Environ())
		fmt.Println("exec:", err)
		os.Exit(127)
	case "sleep":
		fmt.Printf("ready join=%q\n", os.Getenv(EnvJoin))
	case "alloc": // allocate and touch memory without bound
		var keep [][]byte
		fmt.Println("ready")
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 { // one write per page makes it resident
				b[i] = 1
			}
			keep = append(keep, b)
		}
	case "fork": // start single-threaded sleepers until the kernel refuses
		n := 0
		for {
			cmd := exec.Command("/usr/bin/sleep", "1000")
			if err := cmd.Start(); err != nil {
				fmt.Printf("fork failed after %d: %v\n", n, err)
				break
			}
			n++
			if n >= 1000 {
				fmt.Println("no limit after 1000")
				break
			}
		}
	case "spin": // burn every CPU it may use
		fmt.Println("ready")
		for i := 0; i < runtime.NumCPU()-1; i++ {
			go func() {
				for {
				}
			}()
		}
		for {
		}
	case "tree": // leave a setsid child, an orphaned setsid grandchild and an unmarked child
		a := exec.Command(os.Args[0], "-test.run=^$")
		a.Env = append(os.Environ(), envChild+"=sleep")
		a.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := a.Start(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		out, err := exec.Command("/usr/bin/sh", "-c", "setsid /usr/bin/sleep 1000 >/dev/null 2>&1 & echo $!").Output()
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		// One that dropped its environment, mark included, but stayed in
		// the worker's process group.
		c := exec.Command("/usr/bin/env", "-i", "/usr/bin/sleep", "1000")
		if err := c.Start(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("pids %d %s %d\n", a.Process.Pid, strings.TrimSpace(string(out)), c.Process.Pid)
	}
	select {}
}

// worker is a child started as wattd's spawner would start it.
type worker struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func startWorker(t *testing.T, g *Group, mode string, attr *syscall.SysProcAttr) *worker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envChild+"="+mode), g.JoinEnv()...)
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Setpgid = true
	cmd.SysProcAttr = attr
	cmd.Stderr = &testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.Bind(cmd.Process.Pid)
	w := &worker{cmd: cmd, lines: make(chan string, 100), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
		w.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
		}
	})
	return w
}

// line waits for the worker's next output line starting with prefix.
func (w *worker) line(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-w.lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
			t.Logf("worker: %s", l)
		case err := <-w.done:
			w.done <- err
			t.Fatalf("worker exited (%v) before printing %q", err, prefix)
		case <-deadline:
			t.Fatalf("no %q from the worker in 20s", prefix)
		}
	}
}

// treePids reads the "pids A B" line of a tree worker.
func (w *worker) treePids(t *testing.T) []int {
	t.Helper()
	f := strings.Fields(w.line(t, "pids "))
	var out []int
	for _, s := range f[1:] {
		pid, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("bad pid %q", s)
		}
		out = append(out, pid)
	}
	return out
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	st, ok := procnet.ReadStat(pid)
	return ok && st.State != 'Z'
}

func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still alive", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Logf("worker stderr: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
