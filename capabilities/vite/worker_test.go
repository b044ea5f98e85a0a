package vite

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/ipc"
)

// TestMain lets the test binary run itself as the static worker, the way
// wattd runs `wattd __wattd-static`.
func TestMain(m *testing.M) {
	if os.Getenv("VITE_TEST_STATIC") == "1" {
		var args []string
		if s := os.Getenv("VITE_TEST_STATIC_ARGS"); s != "" {
			args = strings.Split(s, "\n")
		}
		os.Exit(StaticMain(args))
	}
	os.Exit(m.Run())
}

// staticWorker is a StaticMain process with an http (TCP) and a mesh (Unix)
// socket and the wattd end of its control channel.
type staticWorker struct {
	t      *testing.T
	cmd    *exec.Cmd
	ctrl   net.Conn
	tcp    string // address of the http listener
	unix   string // path of the mesh socket
	exited chan error
}

func startStatic(t *testing.T, args ...string) *staticWorker {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a process")
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	sock := filepath.Join(t.TempDir(), "mesh.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ul.(*net.UnixListener).SetUnlinkOnClose(false)
	defer ul.Close()
	tf, _ := tl.(*net.TCPListener).File()
	uf, _ := ul.(*net.UnixListener).File()
	defer tf.Close()
	defer uf.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent, child := os.NewFile(uintptr(pair[0]), "p"), os.NewFile(uintptr(pair[1]), "c")
	self, _ := os.Executable()
	// LISTEN_PID must be the worker's own pid: set it after fork, as
	// wattd's exec helper does.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" -test.run=^$`, self)
	cmd.Env = append(os.Environ(),
		"VITE_TEST_STATIC=1",
		"VITE_TEST_STATIC_ARGS="+strings.Join(args, "\n"),
		envStatsInterval+"=50",
		ipc.EnvListenFDs+"=2", ipc.EnvListenName+"=http:mesh", ipc.EnvControlFD+"=5")
	cmd.ExtraFiles = []*os.File{tf, uf, child}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	w := &staticWorker{t: t, cmd: cmd, tcp: tl.Addr().String(), unix: sock, exited: make(chan error, 1)}
	go func() { w.exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	conn, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	w.ctrl = conn
	return w
}

// handshake answers hello and returns the ready message.
func (w *staticWorker) handshake() *ipc.Message {
	w.t.Helper()
	hello, err := ipc.ReadMessage(w.ctrl)
	if err != nil || hello.Type != ipc.TypeHello || hello.PID != w.cmd.Process.Pid {
		w.t.Fatalf("hello: %+v %v", hello, err)
	}
	if err := ipc.WriteMessage(w.ctrl, &ipc.Message{Type: ipc.TypeWelcome, Version: 1, App: "web", Worker: 0}); err != nil {
		w.t.Fatal(err)
	}
	return w.next(ipc.TypeReady)
}

// next reads messages until one of type typ, and returns it.
func (w *staticWorker) next(typ string) *ipc.Message {
	w.t.Helper()
	for {
		m, err := ipc.ReadMessage(w.ctrl)
		if err != nil {
			w.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m.Type == typ {
			return m
		}
	}
}

func (w *staticWorker) exitCode(timeout time.Duration) int {
	w.t.Helper()
	select {
	case err := <-w.exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			w.t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		w.t.Fatalf("worker did not exit within %s", timeout)
		return -1
	}
}

func (w *staticWorker) running() bool {
	select {
	case err := <-w.exited:
		w.exited <- err
		return false
	default:
		return true
	}
}

func TestViteStaticMainServesDrainsAndStops(t *testing.T) {
	dir := site(t)
	w := startStatic(t, "--spa", dir)
	ready := w.handshake()
	if strings.Join(ready.Listeners, ",") != "http,mesh" {
		t.Fatalf("ready listeners %q", ready.Listeners)
	}

	tcp := &http.Client{Timeout: 5 * time.Second}
	overUnix := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", w.unix)
		},
	}}
	for name, c := range map[string]*http.Client{"http": tcp, "mesh": overUnix} {
		host := "http://" + w.tcp
		if name == "mesh" {
			host = "http://web.plt.local"
		}
		resp, err := c.Get(host + "/deep/link")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != indexHTML {
			t.Fatalf("%s: %d %q", name, resp.StatusCode, b)
		}
		resp, err = c.Get(host + "/assets/index-Bx3kP9aQ.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Cache-Control") != CacheImmutable {
			t.Fatalf("%s: asset headers %v", name, resp.Header)
		}
	}

	// Stats queue up every 50 ms; read until one counts the requests.
	for {
		st := w.next(ipc.TypeStats).Stats
		if st == nil || st.RSS == 0 || st.HeapUsed == 0 {
			t.Fatalf("stats %+v", st)
		}
		if st.RequestsDone >= 4 {
			break
		}
	}

	// An idle keep-alive connection is closed by the drain.
	idle, err := net.Dial("tcp", w.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := idle.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(buf); err != nil {
		t.Fatal(err)
	}

	// A kept-alive connection that keeps sending across the drain loses no
	// request: each is answered, the first during the drain with
	// Connection: close, after which the worker closes it.
	busy, err := net.Dial("tcp", w.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_ = busy.SetDeadline(time.Now().Add(20 * time.Second))
	busyR := bufio.NewReader(busy)
	roundTrip := func() (*http.Response, error) {
		if _, err := busy.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(busyR, nil)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, err
	}
	if resp, err := roundTrip(); err != nil || resp.Close {
		t.Fatalf("before the drain: %v %+v", err, resp)
	}

	if err := ipc.WriteMessage(w.ctrl, &ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 5000}); err != nil {
		t.Fatal(err)
	}
	for n := 1; ; n++ {
		resp, err := roundTrip()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d on a kept-alive connection while the drain starts: %v %+v", n, err, resp)
		}
		if resp.Close {
			break
		}
		time.Sleep(20 * time.Millisecond) // a client between requests
	}
	if _, err := busyR.ReadByte(); err != io.EOF {
		t.Errorf("after a Connection: close response: %v, want EOF", err)
	}
	w.next(ipc.TypeDrained)
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := idle.Read(buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("idle keep-alive connection still open after drained")
			}
			break
		}
	}
	// After drained the worker waits for wattd's SIGTERM.
	time.Sleep(200 * time.Millisecond)
	if !w.running() {
		t.Fatal("worker exited on its own after drained")
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := w.exitCode(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestViteStaticMainSIGTERMWithoutDrain(t *testing.T) {
	w := startStatic(t, "--spa", site(t))
	w.handshake()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := w.exitCode(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestViteStaticMainBadUsage(t *testing.T) {
	if code := StaticMain(nil); code != 2 {
		t.Errorf("no dir: %d, want 2", code)
	}
	if code := StaticMain([]string{"--nope", "x"}); code != 2 {
		t.Errorf("bad flag: %d, want 2", code)
	}
	// Not started by wattd: no sockets to take.
	t.Setenv(ipc.EnvListenPID, "1")
	if code := StaticMain([]string{t.TempDir()}); code != 1 {
		t.Errorf("unsupervised: %d, want 1", code)
	}
	if code := StaticMain([]string{filepath.Join(t.TempDir(), "missing")}); code != 1 {
		t.Errorf("missing dir: %d, want 1", code)
	}
}

// TestUntilAligned: reports fall on multiples of the interval, and one
// due within a quarter of the interval is skipped.
func TestUntilAligned(t *testing.T) {
	every := 2 * time.Second
	base := time.Unix(1_800_000_000, 0) // a multiple of 2 s
	for _, c := range []struct {
		after, want time.Duration
	}{
		{0, 2 * time.Second},
		{300 * time.Millisecond, 1700 * time.Millisecond},
		{1400 * time.Millisecond, 600 * time.Millisecond},
		{1600 * time.Millisecond, 2400 * time.Millisecond},
		{1999 * time.Millisecond, 2001 * time.Millisecond},
	} {
		now := base.Add(c.after)
		got := untilAligned(now, every)
		if got != c.want || now.Add(got).UnixNano()%int64(every) != 0 {
			t.Errorf("at +%v: %v, want %v", c.after, got, c.want)
		}
	}
}
