package main_test

// Integration tests run the real wattd binary with real node processes.
// The binary is $WATTD_BIN (set by `make test`) or built once here.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/freeport"
)

var (
	wattdBin  string
	repoRoot  string
	testNodes []string // node binaries to run the framework tests on
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	code := func() int {
		flag.Parse()
		if testing.Short() {
			return m.Run()
		}
		wattdBin = os.Getenv("WATTD_BIN")
		if wattdBin == "" {
			dir, err := os.MkdirTemp("", "wattd-bin")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			wattdBin = filepath.Join(dir, "wattd")
			build := exec.Command("go", "build", "-o", wattdBin, "./cmd/wattd")
			build.Dir = repoRoot
			out, err := build.CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build wattd: %v\n%s", err, out)
				return 1
			}
		}
		for _, n := range strings.Fields(os.Getenv("WATTD_TEST_NODES")) {
			if _, err := os.Stat(n); err == nil || n == "node" {
				testNodes = append(testNodes, n)
			}
		}
		if len(testNodes) == 0 {
			testNodes = []string{"node"}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// nodePath resolves a WATTD_TEST_NODES entry to an absolute path.
func nodePath(t *testing.T, n string) string {
	t.Helper()
	p, err := exec.LookPath(n)
	if err != nil {
		t.Fatalf("node binary %q: %v", n, err)
	}
	abs, _ := filepath.Abs(p)
	return abs
}

func nodeVersion(t *testing.T, node string) string {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	return strings.TrimSpace(string(out))
}

func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs wattd and node")
	}
}

// freePort returns a loopback port that was free a moment ago, below the
// kernel's ephemeral range (freeport), where wattd's own bind(0) sockets
// and the tests' client connections cannot take it before wattd binds it.
func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeJSON writes v as indented JSON to path.
func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// project writes a watt.json into a fresh directory. Application paths in
// cfg may be absolute; fixture() gives those.
func project(t *testing.T, cfg map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "watt.json"), cfg)
	return dir
}

func fixture(rel string) string { return filepath.Join(repoRoot, "testdata", rel) }

// copyWattd writes a copy of the wattd binary under test to path, for a
// test that must run wattd from a file of its own (one it replaces or
// removes, or one another user can reach).
func copyWattd(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(wattdBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects a process's output for assertions.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is a running wattd.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	dir    string
	port   int
	out    *syncBuffer
	runDir string
	done   chan struct{}
	err    error
}

type startOpts struct {
	env  []string
	args []string
	dev  bool     // wattd dev instead of wattd start
	wrap []string // a command that runs wattd, e.g. prlimit --nofile=N:N --
	// out, when set, receives wattd's output instead of daemon.out: for a
	// flood nobody should keep, or a writer that blocks, stalling wattd's
	// output as a reader that stopped reading would.
	out io.Writer
	// files are passed to wattd from fd 3 on, as a service manager passes
	// sockets.
	files []*os.File
	bin   string // the wattd binary to run instead of the one built for the tests
	// tty, when set, is wattd's stdin and controlling terminal, in a
	// session of its own (as a login shell's job has one).
	tty *os.File
}

// startWattd runs `wattd start dir` with its runtime dir under a private
// base so parallel tests never see each other.
func startWattd(t *testing.T, dir string, port int, o startOpts) *daemon {
	t.Helper()
	runBase, err := os.MkdirTemp("", "wrt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runBase) })
	verb := "start"
	if o.dev {
		verb = "dev"
	}
	args := append([]string{verb}, o.args...)
	args = append(args, dir)
	bin := wattdBin
	if o.bin != "" {
		bin = o.bin
	}
	cmd := exec.Command(bin, args...)
	if len(o.wrap) > 0 {
		cmd = exec.Command(o.wrap[0], append(append(o.wrap[1:], bin), args...)...)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"WATTD_RUNTIME_DIR="+runBase,
		"PLT_SERVER_PORT="+strconv.Itoa(port),
		"WATTD_LOG_FORMAT=json",
	)
	cmd.Env = append(cmd.Env, o.env...)
	cmd.ExtraFiles = o.files
	if o.tty != nil {
		cmd.Stdin = o.tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	d := &daemon{t: t, cmd: cmd, dir: dir, port: port, out: &syncBuffer{}, runDir: runBase, done: make(chan struct{})}
	cmd.Stdout = d.out
	if o.out != nil {
		cmd.Stdout = o.out
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		stopGracefully(cmd.Process, d.done)
		if t.Failed() {
			t.Logf("wattd output:\n%s", d.out.String())
		}
	})
	return d
}

// addr is the public address, host:port.
func (d *daemon) addr() string { return fmt.Sprintf("127.0.0.1:%d", d.port) }

// stopGracefully stops a wattd that is still running with SIGTERM, so that
// it removes what it made (runtime directory, cgroups), and with SIGKILL
// if it has not exited after 15 s. done is closed when it has exited.
func stopGracefully(p *os.Process, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.Signal(syscall.SIGKILL)
		<-done
	}
}

func (d *daemon) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", d.port, path)
}

// waitOutput polls wattd's output for s.
func (d *daemon) waitOutput(s string, timeout time.Duration) {
	d.t.Helper()
	waitFor(d.t, timeout, "wattd output to contain "+strconv.Quote(s), func() bool {
		return strings.Contains(d.out.String(), s)
	})
}

// wait waits for wattd to exit and returns its exit code.
func (d *daemon) wait(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		d.t.Fatalf("wattd did not exit within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode()
	}
	if d.err != nil {
		d.t.Fatalf("wattd: %v", d.err)
	}
	return 0
}

func (d *daemon) signal(sig syscall.Signal) {
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal wattd: %v", err)
	}
}

// ctl runs `wattd ctl args…` from the project directory.
func (d *daemon) ctl(args ...string) (string, error) {
	cmd := exec.Command(wattdBin, append([]string{"ctl"}, args...)...)
	cmd.Dir = d.dir
	cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+d.runDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) ps() []supervisor.AppStatus {
	d.t.Helper()
	out, err := d.ctl("ps", "--json")
	if err != nil {
		d.t.Fatalf("ctl ps: %v\n%s", err, out)
	}
	var apps []supervisor.AppStatus
	if err := json.Unmarshal([]byte(out), &apps); err != nil {
		d.t.Fatalf("ctl ps --json: %v\n%s", err, out)
	}
	return apps
}

func (d *daemon) app(id string) supervisor.AppStatus {
	d.t.Helper()
	for _, a := range d.ps() {
		if a.ID == id {
			return a
		}
	}
	d.t.Fatalf("ctl ps has no app %q", id)
	return supervisor.AppStatus{}
}

// waitReady polls ctl ps until every worker of app is ready.
func (d *daemon) waitReady(app string, timeout time.Duration) supervisor.AppStatus {
	d.t.Helper()
	var last supervisor.AppStatus
	waitFor(d.t, timeout, "app "+app+" ready", func() bool {
		out, err := d.ctl("ps", "--json")
		if err != nil {
			return false
		}
		var apps []supervisor.AppStatus
		if json.Unmarshal([]byte(out), &apps) != nil {
			return false
		}
		for _, a := range apps {
			if a.ID != app {
				continue
			}
			last = a
			for _, w := range a.Workers {
				if w.State != "ready" || w.PID == 0 {
					return false
				}
			}
			return len(a.Workers) > 0
		}
		return false
	})
	return last
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fresh is an HTTP client that opens a new connection per request, so the
// kernel's SO_REUSEPORT hashing spreads requests over the worker sockets.
var fresh = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// get does one GET and returns status and body.
func get(c *http.Client, url string) (int, string, error) {
	code, _, body, err := getWith(c, url, nil)
	return code, body, err
}

// getWith is get with request headers; it also returns the response's.
func getWith(c *http.Client, url string, headers map[string]string) (int, http.Header, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, url string, timeout time.Duration) string {
	t.Helper()
	var body string
	waitFor(t, timeout, url+" to answer 200", func() bool {
		code, b, err := get(fresh, url)
		body = b
		return err == nil && code == 200
	})
	return body
}

// alive reports whether pid is a live (non-zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i <= 0 || len(s) <= i+2 {
		return false
	}
	if s[i+2] != 'Z' {
		return true
	}
	// A zombie leader may still have threads exiting (a killed Node
	// process has several), and they hold the process's descriptors, its
	// sockets included, until the last one is gone.
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err == nil && len(tasks) > 1
}

// load runs GETs in a closed loop from n goroutines until ctx ends and
// counts outcomes. Each request uses a new connection.
type loadResult struct {
	ok, refused, failed int
	// failedKeptAlive counts, of failed, the requests that were not the
	// first on their connection (keepAliveLoad only).
	failedKeptAlive int
	errs            []string
}

func load(ctx context.Context, url string, n int) *loadResult {
	var mu sync.Mutex
	res := &loadResult{}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, _, err := get(fresh, url)
				mu.Lock()
				switch {
				case err == nil && code == 200:
					res.ok++
				case err != nil && errors.Is(err, syscall.ECONNREFUSED):
					res.refused++
				default:
					res.failed++
					if len(res.errs) < 10 {
						res.errs = append(res.errs, fmt.Sprintf("code %d err %v", code, err))
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return res
}

// keepAliveLoad runs GETs in a closed loop on n connections that are kept
// alive between requests, as wrk and browsers do, until ctx ends. A
// connection is dialled again only after a response that said
// "Connection: close", or after a failure. Unlike net/http's client it never
// retries a request, so one lost to a connection closed under it counts as
// failed, as it does for wrk. Dial failures count too: refused or not, a
// client that cannot connect lost its request.
func keepAliveLoad(ctx context.Context, addr string, n int) *loadResult {
	var mu sync.Mutex
	res := &loadResult{}
	fail := func(what string, keptAlive bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			res.refused++
		case keptAlive:
			res.failed++
			res.failedKeptAlive++
		default:
			res.failed++
		}
		if len(res.errs) < 10 {
			res.errs = append(res.errs, fmt.Sprintf("%s: %v", what, err))
		}
	}
	req := []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			sent := 0 // requests on the current connection
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for ctx.Err() == nil {
				if conn == nil {
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						fail("dial", false, err)
						time.Sleep(time.Millisecond)
						continue
					}
					conn, br, sent = c, bufio.NewReader(c), 0
				}
				sent++
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				resp, err := func() (*http.Response, error) {
					if _, err := conn.Write(req); err != nil {
						return nil, err
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						return nil, err
					}
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					return resp, err
				}()
				switch {
				case err != nil:
					fail(fmt.Sprintf("request %d on a connection", sent), sent > 1, err)
				case resp.StatusCode/100 != 2:
					fail(fmt.Sprintf("request %d on a connection", sent), sent > 1, fmt.Errorf("status %d", resp.StatusCode))
				default:
					mu.Lock()
					res.ok++
					mu.Unlock()
					if !resp.Close {
						continue
					}
				}
				conn.Close()
				conn = nil
			}
		}()
	}
	wg.Wait()
	return res
}

var _ = context.Background

// rollingRestartUnderLoad runs `wattd ctl restart app` while GETs run
// against the public port, on new connections and on kept-alive ones, and
// requires every worker to be replaced by a ready one, the old ones gone,
// and no request failed or refused. It returns the number of requests that
// succeeded meanwhile.
//
// keptAliveLost says the app is one whose old workers may lose requests on
// kept-alive connections: a fronted program ends them as its own SIGTERM
// handling does (Go's http.Server.Shutdown closes idle ones at once), and
// the forwarders, which copy bytes without parsing HTTP, can neither add
// "Connection: close" nor tell an idle connection from a busy one. For such
// an app the kept-alive losses are only logged.
func (d *daemon) rollingRestartUnderLoad(app string, keptAliveLost bool) int {
	d.t.Helper()
	before := d.waitReady(app, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	var res, kept *loadResult
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); res = load(ctx, d.url("/"), 4) }()
	go func() { defer wg.Done(); kept = keepAliveLoad(ctx, d.addr(), 8) }()
	out, err := d.ctl("restart", app)
	cancel()
	wg.Wait()
	if err != nil {
		d.t.Fatalf("ctl restart %s: %v\n%s", app, err, out)
	}
	if keptAliveLost {
		d.t.Logf("during the rolling restart of %s, on kept-alive connections: ok %d failed %d refused %d", app, kept.ok, kept.failed, kept.refused)
	} else if kept.failed != 0 || kept.refused != 0 || kept.ok == 0 {
		d.t.Fatalf("during the rolling restart of %s, on kept-alive connections: ok %d failed %d refused %d: %v", app, kept.ok, kept.failed, kept.refused, kept.errs)
	}
	after := d.app(app)
	for i, w := range after.Workers {
		if w.PID == before.Workers[i].PID || w.State != "ready" {
			d.t.Fatalf("%s worker %d not replaced: before %+v after %+v", app, i, before.Workers[i], w)
		}
		if alive(before.Workers[i].PID) {
			d.t.Fatalf("old %s worker %d still running", app, before.Workers[i].PID)
		}
	}
	if res.failed != 0 || res.refused != 0 || res.ok == 0 {
		d.t.Fatalf("during the rolling restart of %s: ok %d failed %d refused %d: %v", app, res.ok, res.failed, res.refused, res.errs)
	}
	return res.ok + kept.ok
}

// oneConn is one keep-alive connection to a port, for tests whose requests
// must share it, pipelined ones included. It gives up after 20 s.
type oneConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialOne(t *testing.T, port int) *oneConn {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &oneConn{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes raw request text, several requests in one write if given so.
func (o *oneConn) send(text string) {
	o.t.Helper()
	if _, err := io.WriteString(o.c, text); err != nil {
		o.t.Fatal(err)
	}
}

// read reads n responses in full; each must be a 200.
func (o *oneConn) read(n int) {
	o.t.Helper()
	for range n {
		resp, err := http.ReadResponse(o.br, nil)
		if err != nil {
			o.t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			o.t.Fatalf("status %d", resp.StatusCode)
		}
	}
}
