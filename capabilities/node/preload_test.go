package node

// These tests run real Node.js workers under the preload. The test process
// plays wattd: it owns a SO_REUSEPORT TCP listener, a listening Unix socket
// and a control socketpair, passes them as fds 3, 4 and 5 the systemd way,
// and speaks the control protocol with package ipc.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/listeners"
	"github.com/wattd/wattd/supervisor/testtls"
)

// waitLimit bounds every wait for the worker; generous because a loaded CI
// machine may take a while to start node under -race.
const waitLimit = 20 * time.Second

// setListenPID sets LISTEN_PID to the shell's own pid and execs node in
// place, so the pid is the worker's: wattd uses its own exec helper for this.
const setListenPID = `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`

type workerOpts struct {
	app        string            // fixture directory under testdata
	entrypoint bool              // pass "http" and "mesh", else only "mesh"
	env        map[string]string // extra environment
	script     string            // shell script that execs node; setListenPID if empty
	dir        string            // absolute app directory, instead of testdata/<app>
	watt       capabilities.WattApp
	nodeOpts   string // the app's nodeOptions
	metrics    bool   // the runtime's metrics are on (AppInfo.Metrics)
	// delay: the app's health checks judge the event-loop delay
	// (AppInfo.EventLoopDelay).
	delay bool
	// standbySlots > 0 starts a standby worker holding that many slots'
	// sockets, named "http.N" and "mesh.N" (see standby_test.go).
	standbySlots int
}

type worker struct {
	t        *testing.T
	cmd      *exec.Cmd
	pid      int
	ctl      net.Conn
	msgs     chan *ipc.Message // from the worker, closed at EOF
	spans    chan []byte       // bodies of "spans" messages, kept apart from msgs
	lines    chan string       // stdout lines
	stderr   *lockedBuffer
	tcpAddr  string   // "" for a non-entrypoint
	tcpFile  *os.File // the entrypoint's socket, as passed
	meshPath string
	seen     []map[string]any // stdout events not asked for yet
	exited   chan struct{}
	waitErr  error
	ctlMu    sync.Mutex

	// A standby's: each slot's public address, mesh path and sockets.
	slotTCP   []string
	slotMesh  []string
	slotFiles [][]*os.File
	// warms are the standby's second standby messages, with Warm, that
	// expect passed over while it waited for something else.
	warms []*ipc.Warm
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func nodeOrSkip(t *testing.T) {
	t.Helper()
	if _, err := Binary(); err != nil {
		t.Skipf("no Node.js to run the preload with: %v", err)
	}
}

// tcpListener makes a listening 127.0.0.1:0 socket with SO_REUSEPORT, as
// wattd's public listener is.
func tcpListener(t *testing.T) (*os.File, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "http")
	t.Cleanup(func() { f.Close() })
	return f, fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}

// unixListener makes a listening Unix stream socket, as a mesh socket is.
func unixListener(t *testing.T) (*os.File, string) {
	t.Helper()
	// Short path: sun_path holds about 100 bytes and test names are long.
	dir, err := os.MkdirTemp("", "wattd-mesh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "w0.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "mesh")
	t.Cleanup(func() { f.Close() })
	return f, path
}

// controlPair returns wattd's end as a net.Conn and the worker's end as a
// file to pass.
func controlPair(t *testing.T) (net.Conn, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine := os.NewFile(uintptr(fds[0]), "control")
	conn, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, os.NewFile(uintptr(fds[1]), "control-worker")
}

func startWorker(t *testing.T, o workerOpts) *worker {
	t.Helper()
	nodeOrSkip(t)
	dir := o.dir
	if dir == "" {
		var err error
		if dir, err = filepath.Abs(filepath.Join("testdata", o.app)); err != nil {
			t.Fatal(err)
		}
	}
	launch, err := (&Capability{}).Prepare(capabilities.App{
		ID: o.app, Dir: dir, Entrypoint: o.entrypoint, RuntimeDir: t.TempDir(),
		Watt: o.watt, NodeOptions: o.nodeOpts,
	})
	if err != nil {
		t.Fatal(err)
	}

	w := &worker{t: t, msgs: make(chan *ipc.Message, 256), spans: make(chan []byte, 256), lines: make(chan string, 256),
		stderr: &lockedBuffer{}, exited: make(chan struct{})}
	var files []*os.File
	names := []string{}
	workerID := "0"
	var path string
	if o.standbySlots > 0 {
		workerID = strconv.Itoa(ipc.StandbyWorker)
		for i := range o.standbySlots {
			var slot []*os.File
			if o.entrypoint {
				f, addr := tcpListener(t)
				files, names = append(files, f), append(names, ipc.StandbyListener(ipc.ListenerHTTP, i))
				w.slotTCP, slot = append(w.slotTCP, addr), append(slot, f)
			}
			f, p := unixListener(t)
			files, names = append(files, f), append(names, ipc.StandbyListener(ipc.ListenerMesh, i))
			w.slotMesh, slot = append(w.slotMesh, p), append(slot, f)
			w.slotFiles = append(w.slotFiles, slot)
			path = p
		}
		o.env = maps.Clone(o.env)
		if o.env == nil {
			o.env = map[string]string{}
		}
		o.env[ipc.EnvStandby] = "1"
	} else {
		if o.entrypoint {
			f, addr := tcpListener(t)
			files, names, w.tcpAddr, w.tcpFile = append(files, f), append(names, ipc.ListenerHTTP), addr, f
		}
		var f *os.File
		f, path = unixListener(t)
		files, names, w.meshPath = append(files, f), append(names, ipc.ListenerMesh), path
	}
	ctl, ctlWorker := controlPair(t)
	files = append(files, ctlWorker)
	w.ctl = ctl

	script := o.script
	if script == "" {
		script = setListenPID
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", script}, launch.Argv...)...)
	cmd.Dir = launch.Dir
	cmd.Env = append(os.Environ(),
		ipc.EnvListenFDs+"="+strconv.Itoa(len(names)),
		ipc.EnvListenName+"="+strings.Join(names, ":"),
		ipc.EnvControlFD+"="+strconv.Itoa(3+len(names)),
		ipc.EnvApp+"="+o.app,
		ipc.EnvWorker+"="+workerID,
		ipc.EnvEntrypoint+"="+map[bool]string{true: "1", false: "0"}[o.entrypoint],
		ipc.EnvProtocol+"="+strconv.Itoa(ipc.ProtocolVersion),
		ipc.EnvMeshDir+"="+filepath.Dir(path),
		"WATTD_STATS_INTERVAL_MS=100",
	)
	for k, v := range launch.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if _, set := o.env[ipc.EnvAppInfo]; !set && (o.watt.NoServer || len(o.watt.Preload) > 0 || o.watt.BasePath != "" || o.metrics || o.delay) {
		// What wattd's app info file says of the application model.
		cmd.Env = append(cmd.Env, ipc.EnvAppInfo+"="+writeInfo(t, ipc.AppInfo{ApplicationID: o.app,
			NoServer: o.watt.NoServer, Preload: o.watt.Preload, BasePath: capabilities.BasePath(o.watt.BasePath),
			Metrics: o.metrics, EventLoopDelay: o.delay}))
	}
	for k, v := range o.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.ExtraFiles = files
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.cmd, w.pid = cmd, cmd.Process.Pid
	ctlWorker.Close() // only the worker may hold its end, or its exit goes unseen

	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
	}()
	go func() {
		for {
			body, m, err := readFrame(ctl)
			if err != nil {
				close(w.msgs)
				close(w.spans)
				return
			}
			if m.Type == "spans" {
				// Read raw: the tests check the message as the worker wrote it.
				w.spans <- body
				continue
			}
			w.msgs <- m
		}
	}()
	go func() {
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-w.exited
		if t.Failed() {
			t.Logf("worker stderr:\n%s", w.stderr.String())
		}
	})
	return w
}

// readFrame reads one control frame: its JSON body and the message in it.
func readFrame(r io.Reader) ([]byte, *ipc.Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, err
	}
	n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	if n > ipc.MaxFrame {
		return nil, nil, fmt.Errorf("frame of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, nil, err
	}
	if bytes.HasPrefix(body, []byte(`{"type":"spans",`)) || (len(body) > 0 && body[0] == ipc.SpansBinaryTag) {
		// Decoded by whoever reads them, if anyone.
		return body, &ipc.Message{Type: "spans"}, nil
	}
	var m ipc.Message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, nil, fmt.Errorf("frame %q: %w", body, err)
	}
	return body, &m, nil
}

func (w *worker) send(m *ipc.Message) {
	w.t.Helper()
	w.ctlMu.Lock()
	defer w.ctlMu.Unlock()
	if err := ipc.WriteMessage(w.ctl, m); err != nil {
		w.t.Fatalf("send %s: %v", m.Type, err)
	}
}

// expect returns the next message of type typ, skipping stats; any other
// type first is a failure.
func (w *worker) expect(typ string) *ipc.Message {
	w.t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m, ok := <-w.msgs:
			if !ok {
				w.t.Fatalf("control channel closed while waiting for %s", typ)
			}
			if m.Type == typ {
				return m
			}
			if m.Type == ipc.TypeStandby && m.Warm != nil {
				w.warms = append(w.warms, m.Warm) // whenever the warm-up ends
				continue
			}
			if m.Type != ipc.TypeStats {
				w.t.Fatalf("got %s (%+v) while waiting for %s", m.Type, m, typ)
			}
		case <-deadline:
			w.t.Fatalf("no %s within %v", typ, waitLimit)
		}
	}
}

// statsWithRequests waits for the first stats report that counts at
// least n requests received (the worker counts them with metrics on).
func (w *worker) statsWithRequests(n uint64) *ipc.Stats {
	w.t.Helper()
	var st *ipc.Stats
	deadline := time.Now().Add(waitLimit)
	for st == nil || st.RequestsDone < n {
		if time.Now().After(deadline) {
			w.t.Fatalf("no stats with requestsDone >= %d, last %+v", n, st)
		}
		if st = w.expect(ipc.TypeStats).Stats; st == nil {
			w.t.Fatal("stats message without stats")
		}
	}
	return st
}

// handshake checks hello and answers welcome.
func (w *worker) handshake() {
	w.t.Helper()
	m := w.expect(ipc.TypeHello)
	if m.PID != w.pid || !slices.Contains(m.Versions, ipc.ProtocolVersion) || !strings.HasPrefix(m.Runtime, "node v") {
		w.t.Fatalf("hello = %+v (worker pid %d)", m, w.pid)
	}
	v, err := ipc.Negotiate(m.Versions)
	if err != nil {
		w.t.Fatal(err)
	}
	w.send(&ipc.Message{Type: ipc.TypeWelcome, Version: v, App: "test", Worker: 0})
}

// event returns the first stdout JSON line whose "event" is name, in the
// order the worker printed them; lines read while looking for another event
// are kept for later calls.
func (w *worker) event(name string) map[string]any {
	w.t.Helper()
	for i, m := range w.seen {
		if m["event"] == name {
			w.seen = slices.Delete(w.seen, i, i+1)
			return m
		}
	}
	deadline := time.After(waitLimit)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				w.t.Fatalf("worker stdout closed while waiting for %q", name)
			}
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			if m["event"] == name {
				return m
			}
			w.seen = append(w.seen, m)
		case <-deadline:
			w.t.Fatalf("no %q event within %v", name, waitLimit)
		}
	}
}

// waitExit waits for the worker to end and returns how.
func (w *worker) waitExit() error {
	w.t.Helper()
	select {
	case <-w.exited:
		return w.waitErr
	case <-time.After(waitLimit):
		w.t.Fatalf("worker still running after %v", waitLimit)
		return nil
	}
}

// tcpClient has its own connection pool, so no test reuses another's.
func tcpClient() *http.Client {
	return &http.Client{Timeout: waitLimit, Transport: &http.Transport{}}
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: waitLimit, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// getJSON does a GET and decodes a JSON body.
func getJSON(t *testing.T, c *http.Client, url string) map[string]any {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q %v", url, resp.StatusCode, body, err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: body %q: %v", url, body, err)
	}
	return m
}

func TestEntrypointWorker(t *testing.T) {
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true, metrics: true})
	w.handshake()

	// The variables that describe this process's fds are gone before the
	// app runs; the informational ones stay.
	vars, _ := w.event("env")["vars"].([]any)
	seen := map[string]bool{}
	for _, v := range vars {
		seen[fmt.Sprint(v)] = true
	}
	for _, k := range []string{ipc.EnvListenFDs, ipc.EnvListenName, ipc.EnvListenPID, ipc.EnvControlFD,
		ipc.EnvProtocol, "WATTD_STATS_INTERVAL_MS"} {
		if seen[k] {
			t.Errorf("app still sees %s", k)
		}
	}
	for _, k := range []string{ipc.EnvMeshDir, ipc.EnvApp, ipc.EnvWorker, ipc.EnvEntrypoint} {
		if !seen[k] {
			t.Errorf("app lost %s", k)
		}
	}

	ready := w.expect(ipc.TypeReady)
	if !slices.Equal(ready.Listeners, []string{ipc.ListenerHTTP, ipc.ListenerMesh}) {
		t.Fatalf("ready listeners = %v", ready.Listeners)
	}

	// listen(3000, '127.0.0.1') landed on our socket; address() is the real one.
	listening := w.event("listening")
	addr, _ := listening["address"].(map[string]any)
	if addr == nil || fmt.Sprintf("%v:%v", addr["address"], addr["port"]) != w.tcpAddr {
		t.Errorf("app's server.address() = %v, want %s", listening["address"], w.tcpAddr)
	}

	// Both the public port and the mesh socket reach the app's handler.
	if got := getJSON(t, tcpClient(), "http://"+w.tcpAddr+"/via-tcp"); got["app"] != "entry" || got["url"] != "/via-tcp" {
		t.Errorf("TCP GET = %v", got)
	}
	if got := getJSON(t, unixClient(w.meshPath), "http://mesh/via-mesh"); got["app"] != "entry" || got["url"] != "/via-mesh" {
		t.Errorf("mesh GET = %v", got)
	}

	// A second binding of the same handler is refused; an unrelated server
	// is left alone and gets its own port.
	if dup := w.event("dup"); dup["code"] != "EADDRINUSE" {
		t.Errorf("duplicate binding: %v, want EADDRINUSE", dup)
	}
	other := w.event("other")
	oaddr, _ := other["address"].(map[string]any)
	if oaddr == nil {
		t.Fatalf("other server address = %v", other["address"])
	}
	resp, err := tcpClient().Get(fmt.Sprintf("http://127.0.0.1:%v/", oaddr["port"]))
	if err != nil {
		t.Fatalf("second server: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "other" {
		t.Errorf("second server said %q", body)
	}

	// Stats arrive and, with metrics on, count what we did: the two GETs
	// the app answered with 200 (mesh and TCP), the one of the refused
	// duplicate server is not the app's.
	st := w.statsWithRequests(2)
	if st.HeapUsed == 0 || st.HeapTotal == 0 || st.RSS == 0 || st.ELU < 0 || st.ELU > 1 {
		t.Errorf("implausible stats %+v", st)
	}
	checkRequestHistogram(t, st, "GET", 200, 2)
	if st.Lag == nil || st.Lag.Max < st.Lag.Min || st.Lag.P99 < st.Lag.P50 {
		t.Errorf("event-loop lag = %+v", st.Lag)
	}
	if st.GC == nil || len(st.GC.Series) != 4 {
		t.Errorf("gc = %+v, want the four kinds", st.GC)
	}
}

// checkRequestHistogram fails unless st's request histogram has a series
// of method and status holding at least n requests, and its buckets are
// Watt's.
func checkRequestHistogram(t *testing.T, st *ipc.Stats, method string, status int, n uint64) {
	t.Helper()
	h := st.Requests
	if h == nil {
		t.Fatalf("no request histogram in %+v", st)
	}
	if want := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}; !slices.Equal(h.Bounds, want) {
		t.Errorf("request buckets = %v, want %v", h.Bounds, want)
	}
	for _, s := range h.Series {
		if s.Method != method || s.StatusCode != status {
			continue
		}
		var got uint64
		for _, c := range s.Counts {
			got += c
		}
		if got < n || len(s.Counts) != len(h.Bounds)+1 || s.Sum <= 0 {
			t.Errorf("%s %d series = %+v, want %d requests or more", method, status, s, n)
		}
		return
	}
	t.Errorf("no %s %d series in %+v", method, status, h.Series)
}

// TestListenKeepsWattdsBacklog: Node's listen() on the passed socket
// keeps wattd's backlog (4096, or the kernel's cap), not Node's 511: the
// queue that holds connections while a worker is replaced.
func TestListenKeepsWattdsBacklog(t *testing.T) {
	// The app's own backlog: none, a short one, one that would wrap in
	// Node's 32-bit integer.
	for _, asked := range []string{"", "10", "4294967296"} {
		t.Run("backlog="+asked, func(t *testing.T) {
			o := workerOpts{app: "entry", entrypoint: true}
			if asked != "" {
				o.env = map[string]string{"ENTRY_BACKLOG": asked}
			}
			testBacklog(t, startWorker(t, o))
		})
	}
}

func testBacklog(t *testing.T, w *worker) {
	w.handshake()
	w.expect(ipc.TypeReady)
	want := uint32(listeners.Backlog)
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && uint32(n) < want {
			want = uint32(n)
		}
	}
	if want <= 511 {
		t.Skipf("the kernel caps backlogs at %d, not above Node's 511: nothing to tell apart", want)
	}
	rc, err := w.tcpFile.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	rc.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if err != nil {
		t.Fatal(err)
	}
	// For a listener the kernel gives its backlog in tcpi_sacked.
	if info.Sacked != want {
		t.Fatalf("the public socket's backlog is %d after the worker listened, want %d", info.Sacked, want)
	}
}

// TestDrain checks that a drain lets the in-flight request finish, closes
// keep-alive connections (idle ones after the quiet period), reports drained
// only after that, and that the worker then ends on SIGTERM.
func TestDrain(t *testing.T) {
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true})
	w.handshake()
	w.expect(ipc.TypeReady)

	// An idle keep-alive connection on each listener.
	idleTCP := tcpClient()
	idleMesh := unixClient(w.meshPath)
	getJSON(t, idleTCP, "http://"+w.tcpAddr+"/warm")
	getJSON(t, idleMesh, "http://mesh/warm")

	type result struct {
		status int
		body   string
		close  bool
		err    error
		at     time.Time
	}
	get := func(c *http.Client, url string, out chan<- result) {
		resp, err := c.Get(url)
		if err != nil {
			out <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- result{status: resp.StatusCode, body: string(b), close: resp.Close, err: err, at: time.Now()}
	}
	// In flight when the drain starts: one whose headers are not sent yet,
	// and one (over the mesh) whose keep-alive headers already went out.
	slow, stream := make(chan result, 1), make(chan result, 1)
	go get(tcpClient(), "http://"+w.tcpAddr+"/slow", slow)
	go get(unixClient(w.meshPath), "http://mesh/stream", stream)
	w.event("slow-start")
	w.event("stream-start")
	drainAt := time.Now()
	w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 10000})

	w.expect(ipc.TypeDrained)
	drainedAt := time.Now()
	r := <-slow
	if r.err != nil || r.status != http.StatusOK || r.body != "slow done" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if !r.close {
		t.Error("in-flight response during drain did not say Connection: close")
	}
	if r := <-stream; r.err != nil || r.status != http.StatusOK || r.body != "part1 part2" {
		t.Fatalf("in-flight streamed request: %+v", r)
	}
	// The handlers need 300 ms; drained must not come before they are done.
	// drained also means no connection is left: the idle keep-alive ones and
	// the streamed one, which Node would otherwise keep open, were closed,
	// 1 s (the quiet period) after the last response.
	if d := drainedAt.Sub(drainAt); d < 250*time.Millisecond {
		t.Errorf("drained %v after drain, before the 300 ms requests could finish", d)
	} else if d > 4*time.Second {
		// Node's own keep-alive timeout (5 s) would close them eventually;
		// a drain must not wait for it.
		t.Errorf("drained only %v after drain: keep-alive connections were left to time out", d)
	}
	st := w.lastStatsAfterDrain()
	if st != nil && st.ActiveConns != 0 {
		t.Errorf("stats after drained report %d connections", st.ActiveConns)
	}

	// The process stays up (wattd decides when it ends) until SIGTERM; then
	// the app's own handler runs, its server.close(cb) succeeds although
	// the drain closed the server already, and the process ends by itself.
	select {
	case <-w.exited:
		t.Fatal("worker exited by itself after drained")
	default:
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if closed := w.event("closed"); closed["err"] != nil {
		t.Errorf("app's server.close after drain failed with %v", closed["err"])
	}
	if err := w.waitExit(); err != nil {
		t.Errorf("worker ended with %v, want exit status 0", err)
	}
}

// TestDrainLeavesIdleKeepAliveForTheNextRequest: an idle keep-alive
// connection is not closed the moment a drain starts. A client that sends
// its next request on it soon after gets an answer with "Connection:
// close" instead of a reset, and one that sends nothing has its connection
// closed only after the quiet period, before drained.
func TestDrainLeavesIdleKeepAliveForTheNextRequest(t *testing.T) {
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true})
	w.handshake()
	w.expect(ipc.TypeReady)

	next := dialRaw(t, "tcp", w.tcpAddr) // will send again soon after the drain
	idle := dialRaw(t, "tcp", w.tcpAddr) // will send nothing more
	slow := dialRaw(t, "tcp", w.tcpAddr) // has a request in flight when the drain starts
	for _, c := range []rawConn{next, idle} {
		if resp, _, err := c.roundTrip("/warm"); err != nil || resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("warm-up: %v %+v", err, resp)
		}
	}
	slowDone := make(chan error, 1)
	go func() {
		resp, _, err := slow.roundTrip("/slow")
		if err == nil && !resp.Close {
			err = errors.New("the in-flight response did not say Connection: close")
		}
		slowDone <- err
	}()
	w.event("slow-start")
	w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 10000})
	// The slow response says Connection: close, so the drain has begun.
	if err := <-slowDone; err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	quietFrom := time.Now()

	resp, _, err := next.roundTrip("/after-drain")
	if err != nil {
		t.Fatalf("request on a kept-alive connection during the drain: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("request on a kept-alive connection during the drain: status %d, Connection: close %v", resp.StatusCode, resp.Close)
	}
	if _, err := next.br.ReadByte(); err != io.EOF {
		t.Errorf("connection after a Connection: close response: %v, want EOF", err)
	}

	// The idle one ends after the quiet period (1 s for a 10 s timeout).
	if _, err := idle.br.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("idle connection: %v, want it closed by the worker", err)
	}
	if d := time.Since(quietFrom); d < 700*time.Millisecond {
		t.Errorf("idle keep-alive connection closed %v after the last response; the quiet period is 1 s", d)
	}
	w.expect(ipc.TypeDrained)
}

// lastStatsAfterDrain waits for the next stats report, if the worker sends
// one before it is stopped.
func (w *worker) lastStatsAfterDrain() *ipc.Stats {
	select {
	case m, ok := <-w.msgs:
		if ok && m.Type == ipc.TypeStats {
			return m.Stats
		}
	case <-time.After(waitLimit):
	}
	return nil
}

func TestDrainIdle(t *testing.T) {
	// With nothing in flight, drained follows drain at once.
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true})
	w.handshake()
	w.expect(ipc.TypeReady)
	w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 1000})
	w.expect(ipc.TypeDrained)
}

func TestESMEntrypoint(t *testing.T) {
	w := startWorker(t, workerOpts{app: "esm", entrypoint: true})
	w.handshake()
	w.expect(ipc.TypeReady)
	if got := getJSON(t, tcpClient(), "http://"+w.tcpAddr+"/a"); got["app"] != "esm" {
		t.Errorf("TCP GET = %v", got)
	}
	if got := getJSON(t, unixClient(w.meshPath), "http://mesh/b"); got["app"] != "esm" {
		t.Errorf("mesh GET = %v", got)
	}
}

func TestServiceListensOnMesh(t *testing.T) {
	w := startWorker(t, workerOpts{app: "service"})
	w.handshake()
	ready := w.expect(ipc.TypeReady)
	if !slices.Equal(ready.Listeners, []string{ipc.ListenerMesh}) {
		t.Fatalf("ready listeners = %v", ready.Listeners)
	}
	// listen(0) went to the mesh socket; address() says what was asked
	// for, as a TCP listen would (port 0 here), so code reading .port works.
	listening := w.event("listening")
	if a, ok := listening["address"].(map[string]any); !ok || a["port"] != 0.0 || a["family"] != "IPv6" || a["address"] != "::" {
		t.Errorf("app's server.address() = %v, want {address: '::', family: 'IPv6', port: 0}", listening["address"])
	}
	if got := getJSON(t, unixClient(w.meshPath), "http://mesh/x"); got["app"] != "service" {
		t.Errorf("mesh GET = %v", got)
	}
	// Fastify's extra binding with an undefined port must not open a port.
	if dup := w.event("dup"); dup["code"] != "EADDRINUSE" {
		t.Errorf("duplicate binding: %v, want EADDRINUSE", dup)
	}
	if ports := tcpListenPorts(t, w.pid); len(ports) > 0 {
		t.Errorf("non-entrypoint worker listens on TCP ports %v", ports)
	}
}

// tcpListenPorts lists the TCP ports pid has listening sockets on, by
// matching its socket fds against /proc/<pid>/net/tcp{,6}.
func tcpListenPorts(t *testing.T, pid int) []int {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue // no IPv6
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// sl local rem st tx:rx tr:when retr uid timeout inode
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			if i := strings.LastIndexByte(f[1], ':'); i >= 0 {
				p, _ := strconv.ParseInt(f[1][i+1:], 16, 32)
				ports = append(ports, int(p))
			}
		}
	}
	return ports
}

func TestControlCloseEndsWorker(t *testing.T) {
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true})
	w.handshake()
	w.expect(ipc.TypeReady)
	w.ctl.Close() // wattd is gone
	err := w.waitExit()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("worker ended with %v, want exit status 1", err)
	}
}

// TestExitingIsSaid: a worker that ends by itself says so, with its exit
// code, before its process is gone, whether it called process.exit or died
// of an exception nothing caught.
func TestExitingIsSaid(t *testing.T) {
	for _, c := range []struct {
		path string
		code int
	}{{"/exit/7", 7}, {"/exit/throw", 1}} {
		t.Run(c.path, func(t *testing.T) {
			w := startWorker(t, workerOpts{app: "entry", entrypoint: true})
			w.handshake()
			w.expect(ipc.TypeReady)
			go func() {
				if resp, err := tcpClient().Get("http://" + w.tcpAddr + c.path); err == nil {
					resp.Body.Close()
				}
			}()
			if m := w.expect(ipc.TypeExiting); m.ExitCode != c.code {
				t.Fatalf("exiting says exit code %d, want %d", m.ExitCode, c.code)
			}
			var ee *exec.ExitError
			if err := w.waitExit(); !errors.As(err, &ee) || ee.ExitCode() != c.code {
				t.Fatalf("worker ended with %v, want exit status %d", err, c.code)
			}
		})
	}
}

// TestStartedWithoutTheHelper: a worker wattd starts as itself, not
// through its exec helper, has no LISTEN_PID but WATTD_PARENT_PID, wattd's
// pid, which is its parent's (here the test's: the shell that sets it
// execs node in place). The sockets and the control channel are then its
// own, as with LISTEN_PID.
func TestStartedWithoutTheHelper(t *testing.T) {
	w := startWorker(t, workerOpts{app: "service", script: `WATTD_PARENT_PID=$PPID; export WATTD_PARENT_PID; exec "$0" "$@"`})
	w.handshake()
	ready := w.expect(ipc.TypeReady)
	if !slices.Equal(ready.Listeners, []string{ipc.ListenerMesh}) {
		t.Fatalf("ready listeners = %v", ready.Listeners)
	}
	if got := getJSON(t, unixClient(w.meshPath), "http://mesh/x"); got["app"] != "service" {
		t.Errorf("mesh GET = %v", got)
	}
	if ports := tcpListenPorts(t, w.pid); len(ports) > 0 {
		t.Errorf("the worker listens on TCP ports %v of its own", ports)
	}
}

func TestNotOurPIDChangesNothing(t *testing.T) {
	// LISTEN_PID names another process, or WATTD_PARENT_PID another
	// parent (pid 1 is never the worker, nor the test that starts it): the
	// variables were inherited, the fds are not ours, so the app binds its
	// own port and sees its environment untouched, and no control traffic
	// happens.
	for _, v := range []string{"LISTEN_PID", "WATTD_PARENT_PID"} {
		t.Run(v, func(t *testing.T) {
			w := startWorker(t, workerOpts{app: "service", script: v + `=1; export ` + v + `; exec "$0" "$@"`})
			listening := w.event("listening")
			addr, _ := listening["address"].(map[string]any)
			if addr == nil || addr["port"] == nil {
				t.Fatalf("app's server.address() = %v, want its own TCP port", listening["address"])
			}
			if got := getJSON(t, tcpClient(), fmt.Sprintf("http://127.0.0.1:%v/own", addr["port"])); got["app"] != "service" {
				t.Errorf("GET own port = %v", got)
			}
			// Had the preload acted, hello would have been written before the app
			// ran, so it would be waiting on our end by now: a short read deadline
			// is enough to see that nothing is there.
			w.ctl.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if m, ok := <-w.msgs; ok {
				t.Errorf("got %s from a worker that is not ours", m.Type)
			}
		})
	}
}

// TestWorkerThreadLeftAlone: the preload also runs in the app's worker
// threads, and must do nothing there even when a thread is given the
// variables that name the sockets and the control channel (the fixture
// reads them back from /proc/self/environ; LISTEN_PID is the thread's own
// pid). A thread that took the preload for the main thread would install
// globalThis.platformatic, delete the variables, and read and write the
// control channel.
func TestWorkerThreadLeftAlone(t *testing.T) {
	w := startWorker(t, workerOpts{app: "threads", entrypoint: true})
	w.handshake()
	w.expectReady(ipc.ListenerHTTP, ipc.ListenerMesh)
	m := w.event("thread")
	if m["error"] != nil {
		t.Fatalf("worker thread: %v", m["error"])
	}
	if m["platformatic"] != "undefined" || m["mainPlatformatic"] != "object" {
		t.Fatalf("globalThis.platformatic: thread %v, main thread %v; want undefined, object (the preload ran in the thread?)", m["platformatic"], m["mainPlatformatic"])
	}
	if m["listenPid"] != m["pid"] || m["controlFd"] == nil {
		t.Fatalf("the thread saw LISTEN_PID %v (pid %v), WATTD_CONTROL_FD %v: it was not given the variables, so the test proves nothing", m["listenPid"], m["pid"], m["controlFd"])
	}
	if resp, err := tcpClient().Get("http://" + w.tcpAddr + "/"); err != nil {
		t.Errorf("GET after the thread ran: %v", err)
	} else {
		resp.Body.Close()
	}
	// A second hello (the thread's) would be on the channel by now.
	w.ctl.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	for m := range w.msgs {
		if m.Type != ipc.TypeStats {
			t.Errorf("got %s after ready", m.Type)
		}
	}
}

func TestRawTCPServer(t *testing.T) {
	w := startWorker(t, workerOpts{app: "echo", entrypoint: true})
	w.handshake()
	ready := w.expect(ipc.TypeReady)
	if !slices.Equal(ready.Listeners, []string{ipc.ListenerHTTP, ipc.ListenerMesh}) {
		t.Fatalf("ready listeners = %v", ready.Listeners)
	}
	for _, target := range [][2]string{{"tcp", w.tcpAddr}, {"unix", w.meshPath}} {
		c, err := net.DialTimeout(target[0], target[1], waitLimit)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(waitLimit))
		if _, err := c.Write([]byte("ping " + target[0])); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(c, buf, len("ping "+target[0]))
		c.Close()
		if err != nil || string(buf[:n]) != "ping "+target[0] {
			t.Errorf("%s echo = %q, %v", target[0], buf[:n], err)
		}
	}
}

// TestHTTPSEntrypoint covers servers that cannot take mesh connections
// directly: the public side is TLS, the mesh side plain HTTP whose requests
// are handed to the app's handler.
func TestHTTPSEntrypoint(t *testing.T) {
	cert := newFixtureCert(t)
	w := startWorker(t, workerOpts{app: "https", entrypoint: true, metrics: true, env: cert.env})
	w.handshake()
	ready := w.expect(ipc.TypeReady)
	if !slices.Equal(ready.Listeners, []string{ipc.ListenerHTTP, ipc.ListenerMesh}) {
		t.Fatalf("ready listeners = %v", ready.Listeners)
	}

	tlsClient := &http.Client{Timeout: waitLimit, Transport: &http.Transport{TLSClientConfig: cert.client}}
	if got := getJSON(t, tlsClient, "https://"+w.tcpAddr+"/tls"); got["app"] != "https" || got["encrypted"] != true {
		t.Errorf("TLS GET = %v", got)
	}
	if got := getJSON(t, unixClient(w.meshPath), "http://mesh/plain"); got["app"] != "https" || got["url"] != "/plain" || got["encrypted"] != false {
		t.Errorf("mesh GET = %v", got)
	}

	// Mesh requests are counted although they never pass the app's server.
	w.statsWithRequests(2)
	w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 1000})
	w.expect(ipc.TypeDrained)
}

// fixtureCert is a throwaway certificate for the https fixture: env passes
// its files to the app, client trusts it.
type fixtureCert struct {
	env    map[string]string
	client *tls.Config
}

func newFixtureCert(t *testing.T) fixtureCert {
	t.Helper()
	certPEM, keyPEM := testtls.SelfSigned(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return fixtureCert{
		env:    map[string]string{"FIXTURE_CERT": certFile, "FIXTURE_KEY": keyFile},
		client: &tls.Config{RootCAs: pool},
	}
}

// TestStatsBeforeReady: the preload reports stats before it says ready,
// whether the app listens after the handshake or before it, so that wattd
// can judge the health of a worker whose event loop sticks right after
// ready. The periodic reports are pushed out of the way (one a minute).
func TestStatsBeforeReady(t *testing.T) {
	slow := map[string]string{"WATTD_STATS_INTERVAL_MS": "60000"}
	for _, welcomeLate := range []bool{false, true} {
		t.Run(map[bool]string{false: "listen after welcome", true: "listen before welcome"}[welcomeLate], func(t *testing.T) {
			w := startWorker(t, workerOpts{app: "entry", entrypoint: true, env: slow})
			hello := w.expect(ipc.TypeHello)
			if welcomeLate {
				// The app listens before the handshake ends: ready is held
				// back until welcome.
				w.event("listening")
			}
			v, err := ipc.Negotiate(hello.Versions)
			if err != nil {
				t.Fatal(err)
			}
			w.send(&ipc.Message{Type: ipc.TypeWelcome, Version: v, App: "test", Worker: 0})
			var stats bool
			deadline := time.After(waitLimit)
			for {
				select {
				case m, ok := <-w.msgs:
					if !ok {
						t.Fatal("control channel closed")
					}
					switch m.Type {
					case ipc.TypeStats:
						// The first report is sent in the event loop's
						// first turns, the app's start: its utilisation
						// is not measured (0), rather than near 1.
						if !stats && m.Stats != nil && m.Stats.ELU != 0 {
							t.Errorf("first report's elu = %v, want 0", m.Stats.ELU)
						}
						stats = stats || m.Stats != nil && m.Stats.HeapUsed > 0
						continue
					case ipc.TypeReady:
						if !stats {
							t.Fatal("ready came before any stats report")
						}
						return
					}
					t.Fatalf("unexpected %s before ready", m.Type)
				case <-deadline:
					t.Fatalf("no ready within %s", waitLimit)
				}
			}
		})
	}
}

// getOn sends GET path on the kept-alive connection c (read through br)
// and returns the response and its whole body.
func getOn(c net.Conn, br *bufio.Reader, path string) (*http.Response, string, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// TestDrainInFlightOnKeepAlive: a keep-alive connection that already
// served a request has its next one in flight when the drain starts. The
// preload watches no request before the drain, so it must find that
// response on the connection: it says "Connection: close" and the
// connection ends after it, over TCP, the mesh socket and TLS.
func TestDrainInFlightOnKeepAlive(t *testing.T) {
	cert := newFixtureCert(t)
	for _, tc := range []struct {
		name string
		app  string
		dial func(w *worker) (net.Conn, error)
	}{
		{"tcp", "entry", func(w *worker) (net.Conn, error) { return net.Dial("tcp", w.tcpAddr) }},
		{"mesh", "entry", func(w *worker) (net.Conn, error) { return net.Dial("unix", w.meshPath) }},
		{"tls", "https", func(w *worker) (net.Conn, error) {
			return tls.Dial("tcp", w.tcpAddr, cert.client)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := startWorker(t, workerOpts{app: tc.app, entrypoint: true, env: cert.env})
			w.handshake()
			w.expect(ipc.TypeReady)
			c, err := tc.dial(w)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(waitLimit))
			br := bufio.NewReader(c)
			roundTrip := func(path string) (*http.Response, string, error) { return getOn(c, br, path) }
			if resp, _, err := roundTrip("/warm"); err != nil || resp.StatusCode != http.StatusOK || resp.Close {
				t.Fatalf("first request: %v %+v", err, resp)
			}
			type result struct {
				resp *http.Response
				body string
				err  error
			}
			slow := make(chan result, 1)
			go func() {
				resp, body, err := roundTrip("/slow")
				slow <- result{resp, body, err}
			}()
			w.event("slow-start")
			w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 10000})
			r := <-slow
			if r.err != nil || r.resp.StatusCode != http.StatusOK || r.body != "slow done" {
				t.Fatalf("in-flight request: %v %+v %q", r.err, r.resp, r.body)
			}
			if !r.resp.Close {
				t.Error("the response in flight when the drain began did not say Connection: close")
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("connection after the in-flight response: %v, want EOF", err)
			}
			w.expect(ipc.TypeDrained)
		})
	}
}

// TestDrainCloseAgainstAppsConnectionHeader: an app that sets its own
// "Connection: keep-alive" (by setHeader, or writeHead with an object or
// with raw pairs; a proxy copying its upstream's headers does) still says
// Connection: close during a drain, and the connection ends after the
// response: for a request that came after the drain began and for one in
// flight when it began. Without it the connection stayed open until the
// drain closed it, under the client's next request.
func TestDrainCloseAgainstAppsConnectionHeader(t *testing.T) {
	for _, how := range []string{"set", "head", "raw", "slow-set", "slow-head", "slow-raw"} {
		t.Run(how, func(t *testing.T) {
			w := startWorker(t, workerOpts{app: "entry", entrypoint: true})
			w.handshake()
			w.expect(ipc.TypeReady)
			c, err := net.Dial("tcp", w.tcpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(waitLimit))
			br := bufio.NewReader(c)
			roundTrip := func(path string) (*http.Response, string, error) { return getOn(c, br, path) }
			// Before the drain the app's header stands.
			if resp, _, err := roundTrip("/keepalive/" + strings.TrimPrefix(how, "slow-")); err != nil || resp.Close {
				t.Fatalf("before the drain: %v %+v", err, resp)
			}
			var resp *http.Response
			var body string
			if strings.HasPrefix(how, "slow") {
				done := make(chan error, 1)
				go func() {
					var err error
					resp, body, err = roundTrip("/keepalive/" + how)
					done <- err
				}()
				w.event("slow-start")
				w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 10000})
				err = <-done
			} else {
				w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 10000})
				// Requests on the connection until the worker has the
				// drain in hand: the first answer after that must close.
				deadline := time.Now().Add(5 * time.Second)
				for {
					resp, body, err = roundTrip("/keepalive/" + how)
					if err != nil || resp.Close || time.Now().After(deadline) {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			if err != nil || resp.StatusCode != http.StatusOK || body != "kept "+how {
				t.Fatalf("during the drain: %v %+v %q", err, resp, body)
			}
			if !resp.Close { // net/http takes "Connection: close" out of the header into Close
				t.Errorf("during the drain: Connection %q, want close", resp.Header.Values("Connection"))
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("connection after the response: %v, want EOF", err)
			}
		})
	}
}

// TestNoPerRequestWork: the preload adds no listener to the app's server
// or its responses, with metrics off or on (they are timed through Node's
// diagnostics channels).
func TestNoPerRequestWork(t *testing.T) {
	for _, tc := range []struct {
		metrics                bool
		request, close, finish float64
	}{
		// Node's own: the app's handler; the response's 'finish' (the
		// server's) and none on 'close'.
		{false, 1, 0, 1},
		{true, 1, 0, 1},
	} {
		t.Run(fmt.Sprintf("metrics=%v", tc.metrics), func(t *testing.T) {
			w := startWorker(t, workerOpts{app: "entry", entrypoint: true, metrics: tc.metrics})
			w.handshake()
			w.expect(ipc.TypeReady)
			for _, c := range []struct {
				client *http.Client
				url    string
			}{{tcpClient(), "http://" + w.tcpAddr + "/listeners"}, {unixClient(w.meshPath), "http://mesh/listeners"}} {
				got := getJSON(t, c.client, c.url)
				if got["request"] != tc.request || got["close"] != tc.close || got["finish"] != tc.finish {
					t.Errorf("%s: listeners %v, want request %v, close %v, finish %v", c.url, got, tc.request, tc.close, tc.finish)
				}
			}
			st := w.expect(ipc.TypeStats).Stats
			if !tc.metrics && (st.RequestsDone != 0 || st.Requests != nil || st.GC != nil || st.Lag != nil || st.Process != nil) {
				t.Errorf("stats with metrics off carry metrics: %+v", st)
			}
		})
	}
}

// TestEventLoopDelayForHealthChecks: when the health checks judge the
// event-loop delay, the worker samples it and its stats carry it (and,
// with metrics off, none of the metrics); a 150 ms block of the loop right
// after the worker is ready shows as a delay of at least that, and a free
// loop as about the 20 ms between samples.
func TestEventLoopDelayForHealthChecks(t *testing.T) {
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true, delay: true})
	w.handshake()
	w.expect(ipc.TypeReady)
	resp, err := tcpClient().Get("http://" + w.tcpAddr + "/block/150")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "blocked" {
		t.Fatalf("GET /block/150: %q", body)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		st := w.expect(ipc.TypeStats).Stats
		if st.Requests != nil || st.GC != nil || st.RequestsDone != 0 || st.Process != nil {
			t.Fatalf("stats with metrics off carry metrics: %+v", st)
		}
		if st.Lag != nil {
			t.Fatalf("stats with metrics off carry the metrics' lag: %+v", st.Lag)
		}
		if st.Delay == nil {
			// A period in which the sampler never ran (the loop was held
			// across the report's time) has no delay to report; the long
			// sample lands in the next period, which the check below
			// waits for.
			if time.Now().After(deadline) {
				t.Fatalf("stats without the event-loop delay until the deadline: %+v", st)
			}
			continue
		}
		if st.Delay.Max >= 0.15 {
			if st.Delay.P99 <= 0 || st.Delay.P99 > st.Delay.Max {
				t.Fatalf("delay p99 %v with max %v", st.Delay.P99, st.Delay.Max)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report showed the 150 ms block; last %+v", *st.Delay)
		}
	}
	// Once the loop is free again, about the 20 ms between samples.
	for {
		st := w.expect(ipc.TypeStats).Stats
		if st.Delay != nil && st.Delay.Max < 0.1 {
			if st.Delay.Max < 0.019 {
				t.Fatalf("a free loop's delay max %v, under the 20 ms between samples", st.Delay.Max)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the delay stayed high after the block")
		}
	}
}

// TestSizesFromHealthKeys: the app info's bufferPoolSize and
// defaultHighWaterMark are in force when the app runs (Buffer.poolSize,
// stream.getDefaultHighWaterMark), and Node.js's own without them.
func TestSizesFromHealthKeys(t *testing.T) {
	for _, tc := range []struct {
		name      string
		info      ipc.AppInfo
		pool, hwm float64
		nodeOwn   bool
	}{
		{"set", ipc.AppInfo{ApplicationID: "entry", BufferPoolSize: 256 << 10, DefaultHighWaterMark: 128 << 10}, 256 << 10, 128 << 10, false},
		{"unset", ipc.AppInfo{ApplicationID: "entry"}, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := startWorker(t, workerOpts{app: "entry", entrypoint: true,
				env: map[string]string{ipc.EnvAppInfo: writeInfo(t, tc.info)}})
			w.handshake()
			w.expect(ipc.TypeReady)
			got := getJSON(t, tcpClient(), "http://"+w.tcpAddr+"/sizes")
			// Node.js's own defaults differ between versions (Node 20:
			// 8 KiB and 16 KiB, Node 24: 64 KiB for both); unset, they are
			// one of those.
			own := func(v any) bool { return v == float64(8<<10) || v == float64(16<<10) || v == float64(64<<10) }
			if pool := got["bufferPoolSize"]; tc.nodeOwn && !own(pool) || !tc.nodeOwn && pool != tc.pool {
				t.Errorf("Buffer.poolSize %v, want %v (Node.js's own: %v)", pool, tc.pool, tc.nodeOwn)
			}
			if hwm := got["highWaterMark"]; tc.nodeOwn && !own(hwm) || !tc.nodeOwn && hwm != tc.hwm {
				t.Errorf("default highWaterMark %v, want %v (Node.js's own: %v)", hwm, tc.hwm, tc.nodeOwn)
			}
		})
	}
}

// TestShed: wattd's shed ends each client connection open at that moment
// after one of its responses within a quarter of a second (spread, so
// that the clients do not all reconnect at once), and leaves alone the connections
// opened after it and the mesh's (Unix) connections; once every connection
// it ends has had its response, the request hook is off again.
func TestShed(t *testing.T) {
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true})
	w.handshake()
	w.expect(ipc.TypeReady)

	dial := func(network, addr string) rawConn { return dialRaw(t, network, addr) }
	var open []rawConn
	for range 4 {
		open = append(open, dial("tcp", w.tcpAddr))
	}
	mesh := dial("unix", w.meshPath)
	for _, c := range append(open, mesh) {
		if resp, _ := c.get(t, "/warm"); resp.Close {
			t.Fatal("Connection: close before any shed")
		}
	}
	w.send(&ipc.Message{Type: ipc.TypeShed})
	shedAt := time.Now()
	late := dial("tcp", w.tcpAddr)

	// Requests every 20 ms on each connection open during the shed, the
	// last one idle until the others have ended: each ends within the
	// spread, after its Connection: close response.
	for i, c := range open[:3] {
		for {
			if time.Since(shedAt) > 3*time.Second {
				t.Fatalf("connection %d open during the shed still kept alive after %v", i, time.Since(shedAt))
			}
			resp, _ := c.get(t, "/after")
			if resp.Close {
				if _, err := c.br.ReadByte(); err != io.EOF {
					t.Errorf("connection %d after its Connection: close response: %v, want EOF", i, err)
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for name, c := range map[string]rawConn{"opened after the shed": late, "mesh": mesh} {
		if resp, _ := c.get(t, "/after"); resp.Close {
			t.Errorf("%s connection: Connection: close", name)
		}
	}
	// The idle one is still to be ended, so the hook stays on; its next
	// request, past the spread, ends it and, being the last, takes the
	// hook off.
	if _, body := late.get(t, "/listeners"); !strings.Contains(body, `"request":2`) {
		t.Errorf("listeners during the shed: %s, want the app's and the shed's", body)
	}
	time.Sleep(time.Until(shedAt.Add(400 * time.Millisecond)))
	if resp, _ := open[3].get(t, "/after"); !resp.Close {
		t.Error("the idle connection's first response after the spread kept it")
	}
	if _, body := late.get(t, "/listeners"); !strings.Contains(body, `"request":1`) {
		t.Errorf("listeners after the shed: %s, want the app's alone", body)
	}
}

// TestShedTLS: on an https server the shed ends the TLS connections, which
// carry the requests, and its request hook comes off once the last of
// them is gone, whether it ended after a response or was closed idle by
// its client. On an HTTP/2 server, HTTP/2 connections are left alone and
// do not hold the hook on.
func TestShedTLS(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "https", true: "http2"}[h2], func(t *testing.T) { testShedTLS(t, h2) })
	}
}

func testShedTLS(t *testing.T, h2 bool) {
	cert := newFixtureCert(t)
	env := maps.Clone(cert.env)
	var h2Client *http.Client
	if h2 {
		env["FIXTURE_H2"] = "1"
		h2Client = &http.Client{Timeout: waitLimit, Transport: &http.Transport{TLSClientConfig: cert.client.Clone(), ForceAttemptHTTP2: true}}
		t.Cleanup(h2Client.CloseIdleConnections)
	}
	w := startWorker(t, workerOpts{app: "https", entrypoint: true, env: env})
	w.handshake()
	w.expect(ipc.TypeReady)
	dial := func() rawConn {
		t.Helper()
		c, err := tls.Dial("tcp", w.tcpAddr, cert.client)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(waitLimit))
		return rawConn{c, bufio.NewReader(c)}
	}
	if h2 {
		// An HTTP/2 connection, kept open through the shed.
		if got := getJSON(t, h2Client, "https://"+w.tcpAddr+"/h2"); got["httpVersion"] != "2.0" {
			t.Fatalf("HTTP/2 client GET = %v", got)
		}
	}
	busy, idle := dial(), dial()
	for _, c := range []rawConn{busy, idle} {
		c.get(t, "/warm")
	}
	w.send(&ipc.Message{Type: ipc.TypeShed})
	shedAt := time.Now()
	late := dial()
	if _, body := late.get(t, "/listeners"); !strings.Contains(body, `"request":2`) {
		t.Errorf("listeners during the shed: %s, want the app's and the shed's", body)
	}
	idle.Close()
	for {
		if time.Since(shedAt) > 3*time.Second {
			t.Fatal("the TLS connection open during the shed still kept alive after 3s")
		}
		if resp, _ := busy.get(t, "/after"); resp.Close {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The shed has nothing left to end: the hook is off well before the
	// shed's 10 s limit.
	for {
		_, body := late.get(t, "/listeners")
		if strings.Contains(body, `"request":1`) {
			break
		}
		if time.Since(shedAt) > 3*time.Second {
			t.Fatalf("listeners %v after the shed: %s, want the app's alone", time.Since(shedAt), body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, _ := late.get(t, "/after"); resp.Close {
		t.Error("the connection opened after the shed was ended")
	}
	if h2 {
		if got := getJSON(t, h2Client, "https://"+w.tcpAddr+"/h2"); got["httpVersion"] != "2.0" {
			t.Errorf("HTTP/2 client GET after the shed = %v", got)
		}
	}
}

// rawConn is a client connection driven by hand: net/http's client would
// retry a request lost to a closed keep-alive connection and hide the loss.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// dialRaw connects to addr for the rest of the test.
func dialRaw(t *testing.T, network, addr string) rawConn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	return rawConn{c, bufio.NewReader(c)}
}

// get is roundTrip for a request that must succeed with 200.
func (c rawConn) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, body, err := c.roundTrip(path)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %+v %v", path, resp, err)
	}
	return resp, body
}

// roundTrip sends GET path and reads the whole response.
func (c rawConn) roundTrip(path string) (*http.Response, string, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}
