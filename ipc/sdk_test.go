package ipc

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain lets the test binary run itself as a Go worker that uses the SDK
// the way a real program would.
func TestMain(m *testing.M) {
	if os.Getenv("IPC_TEST_WORKER") == "1" {
		os.Exit(fakeWorker())
	}
	os.Exit(m.Run())
}

func fakeWorker() int {
	ls, err := Listeners()
	if err != nil {
		fmt.Fprintln(os.Stderr, "listeners:", err)
		return 2
	}
	ctl, err := Dial()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 3
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "go worker %s/%d", ctl.App, ctl.Worker)
	})}
	go srv.Serve(ls[ListenerHTTP])
	if err := ctl.Ready(ListenerHTTP); err != nil {
		return 4
	}
	<-ctl.Drain
	srv.Close()
	ctl.Drained()
	return 0
}

func TestGoWorkerSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := l.(*net.TCPListener).File()
	defer lf.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent, child := os.NewFile(uintptr(pair[0]), "p"), os.NewFile(uintptr(pair[1]), "c")
	self, _ := os.Executable()
	// LISTEN_PID must be the worker's own pid: set it after fork, as
	// wattd's exec helper does.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" -test.run=^$`, self)
	cmd.Env = append(os.Environ(), "IPC_TEST_WORKER=1", EnvListenFDs+"=1", EnvListenName+"=http", EnvControlFD+"=4")
	cmd.ExtraFiles = []*os.File{lf, child}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	conn, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))

	hello, err := ReadMessage(conn)
	if err != nil || hello.Type != TypeHello || hello.PID != cmd.Process.Pid {
		t.Fatalf("hello: %+v %v", hello, err)
	}
	v, _ := Negotiate(hello.Versions)
	WriteMessage(conn, &Message{Type: TypeWelcome, Version: v, App: "api", Worker: 2})
	ready, err := ReadMessage(conn)
	if err != nil || ready.Type != TypeReady || len(ready.Listeners) != 1 || ready.Listeners[0] != ListenerHTTP {
		t.Fatalf("ready: %+v %v", ready, err)
	}
	resp, err := http.Get("http://" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "go worker api/2" {
		t.Fatalf("body %q", body)
	}
	WriteMessage(conn, &Message{Type: TypeDrain, TimeoutMs: 1000})
	drained, err := ReadMessage(conn)
	if err != nil || drained.Type != TypeDrained {
		t.Fatalf("drained: %+v %v", drained, err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("worker exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not exit after drain")
	}
}

func TestNotSupervised(t *testing.T) {
	t.Setenv(EnvListenPID, "1")
	if _, err := Listeners(); err != ErrNotSupervised {
		t.Fatalf("%v", err)
	}
	t.Setenv(EnvControlFD, "")
	if _, err := Dial(); err != ErrNotSupervised {
		t.Fatalf("%v", err)
	}
}

// TestSDKProfileConflict: a profile started twice, or stopped when none
// runs, is refused with conflict set, which wattd answers with 409; a
// failure of another kind is not marked so.
func TestSDKProfileConflict(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "control")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := &Control{conn: conn(pair[0]), Drain: make(chan struct{})}
	wattd := conn(pair[1])
	wattd.SetDeadline(time.Now().Add(10 * time.Second))
	path := t.TempDir() + "/cpu.pprof"
	for i, tc := range []struct {
		kind, path, err string
		conflict        bool
	}{
		{DiagCPUProfileStop, path, "no CPU profile is being taken", true},
		{DiagCPUProfileStart, "", "", false},
		{DiagCPUProfileStart, "", "a CPU profile is already being taken", true},
		{DiagCPUProfileStop, path, "", false},
		{DiagHeapProfileStop, path, "no heap profile is being taken", true},
		{DiagHeapProfileStart, "", "", false},
		{DiagHeapProfileStart, "", "a heap profile is already being taken", true},
		{DiagHeapProfileStop, path, "file exists", false}, // the CPU profile is there
		{DiagHeapSnapshot, path, "cannot take a heapSnapshot", false},
	} {
		go c.diagnose(Diagnose{ID: uint64(i + 1), Kind: tc.kind, Path: tc.path})
		m, err := ReadMessage(wattd)
		if err != nil {
			t.Fatal(err)
		}
		a := m.Diagnose
		if m.Type != TypeDiagnosed || a == nil || a.ID != uint64(i+1) {
			t.Fatalf("%s: answered %+v", tc.kind, m)
		}
		if !strings.Contains(a.Error, tc.err) || (tc.err == "") != (a.Error == "") || a.Conflict != tc.conflict {
			t.Errorf("%s: error %q conflict %v, want %q conflict %v", tc.kind, a.Error, a.Conflict, tc.err, tc.conflict)
		}
	}
}
