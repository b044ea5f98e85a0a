package front

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary, run again, act as a worker process
// instead of running tests (see TestHelperProcess).
const helperEnv = "FRONT_TEST_HELPER"

// TestHelperProcess is not a test: it is the body of the processes the
// tests below start. Modes:
//
//	sleep                      do nothing until killed
//	listen <addr>              listen on addr, then sleep
//	spawn <setsid> <mode…>     start another helper in mode (in a session of
//	                           its own when setsid is 1), print its pid, sleep
func TestHelperProcess(t *testing.T) {
	args := strings.Fields(os.Getenv(helperEnv))
	if len(args) == 0 {
		return
	}
	switch args[0] {
	case "sleep":
	case "listen":
		network := "tcp4"
		if strings.HasPrefix(args[1], "[") {
			network = "tcp"
		}
		if _, err := net.Listen(network, args[1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	case "spawn":
		cmd := helperCmd(strings.Join(args[2:], " "))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: args[1] == "1", Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(cmd.Process.Pid)
	}
	time.Sleep(time.Hour)
	os.Exit(0)
}

func helperCmd(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

// startHelper starts a helper as a worker is started: leader of its own
// process group. It returns the helper's pid and, for spawn, its child's.
func startHelper(t *testing.T, mode string) (pid, child int) {
	t.Helper()
	cmd := helperCmd(mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			if child > 0 {
				_ = syscall.Kill(child, syscall.SIGKILL)
			}
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	})
	if strings.HasPrefix(mode, "spawn") {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			t.Fatalf("helper %q: %v", mode, err)
		}
		if child, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
			t.Fatalf("helper %q printed %q", mode, line)
		}
	}
	return cmd.Process.Pid, child
}

// TestReadyIgnoresForeignListener: while another program listens on the
// worker's port, the worker is not ready although the port accepts, and the
// warning names the holder.
func TestReadyIgnoresForeignListener(t *testing.T) {
	foreign, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	port := foreign.Addr().(*net.TCPAddr).Port
	worker, _ := startHelper(t, "sleep")

	var warnings []error
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err = Ready(ctx, port, worker, func(err error) { warnings = append(warnings, err) })
	if !errors.Is(err, ErrForeignListener) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ready with a foreign listener = %v", err)
	}
	if len(warnings) != 1 {
		t.Fatalf("%d warnings, want 1: %v", len(warnings), warnings)
	}
	if want := fmt.Sprintf("pid %d (", os.Getpid()); !strings.Contains(warnings[0].Error(), want) {
		t.Fatalf("warning %q does not name the holder (%s…)", warnings[0], want)
	}
}

// TestCheckOwnerOfAWorkerThatExited: a socket on the port of a worker
// that is gone is no foreign program's: the worker exited between the
// two reads of its socket and of its processes (its socket still listed,
// its descriptors gone), which the warning said of its own socket.
func TestCheckOwnerOfAWorkerThatExited(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	worker, _ := startHelper(t, "sleep")
	if err := checkOwner(port, worker); !errors.Is(err, ErrForeignListener) {
		t.Fatalf("a live worker beside another program's socket: %v", err)
	}
	if err := syscall.Kill(-worker, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := checkOwner(port, worker)
		if errors.Is(err, errNotListening) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a worker that is gone: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReadyOwnTree: a listener held anywhere in the worker's process tree
// counts: the worker itself, a child in its group (npm -> node), a child
// that left the group (setsid), on 127.0.0.1 or dual-stack [::].
func TestReadyOwnTree(t *testing.T) {
	cases := []struct {
		name string
		mode func(port int) string
	}{
		{"worker", func(p int) string { return fmt.Sprintf("listen 127.0.0.1:%d", p) }},
		{"child in the group", func(p int) string { return fmt.Sprintf("spawn 0 listen 127.0.0.1:%d", p) }},
		{"child in a session of its own", func(p int) string { return fmt.Sprintf("spawn 1 listen 127.0.0.1:%d", p) }},
		{"any address", func(p int) string { return fmt.Sprintf("listen 0.0.0.0:%d", p) }},
		{"dual-stack", func(p int) string { return fmt.Sprintf("listen [::]:%d", p) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port, err := FreePort()
			if err != nil {
				t.Fatal(err)
			}
			worker, _ := startHelper(t, c.mode(port))
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := Ready(ctx, port, worker, func(err error) { t.Errorf("warned: %v", err) }); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReadyNotForAnotherWorker: a sibling worker's listener (another
// process group) is as foreign as any other program's.
func TestReadyNotForAnotherWorker(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := startHelper(t, fmt.Sprintf("listen 127.0.0.1:%d", port))
	mine, _ := startHelper(t, "sleep")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Ready(ctx, port, other, nil); err != nil {
		t.Fatalf("the holder is not ready: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if err := Ready(ctx2, port, mine, nil); !errors.Is(err, ErrForeignListener) {
		t.Fatalf("Ready for a worker that does not listen = %v", err)
	}
}
