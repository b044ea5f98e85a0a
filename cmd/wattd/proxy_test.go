package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

// proxyEnv is what a worker is told about the mesh proxy.
type proxyEnv struct {
	Proxy       string `json:"proxy"`
	ProxySocket string `json:"proxySocket"`
}

func workerProxyEnv(t *testing.T, d *daemon) proxyEnv {
	t.Helper()
	code, body, err := get(fresh, d.url("/env"))
	if err != nil || code != 200 {
		t.Fatalf("/env: %d %v %s", code, err, body)
	}
	var e proxyEnv
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(e.Proxy); err != nil || u.User == nil || e.ProxySocket == "" {
		t.Fatalf("worker proxy env %+v", e)
	}
	return e
}

// otherUser returns the uid and gid of an unprivileged local user, created
// for the test. Only root can run a process as another user.
func otherUser(t *testing.T) (uid, gid uint32) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test runs a client as another local user (created with useradd)")
	}
	const name = "wattdproxytest"
	u, err := user.Lookup(name)
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err != nil {
			t.Skipf("useradd %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { exec.Command("userdel", name).Run() })
		if u, err = user.Lookup(name); err != nil {
			t.Fatal(err)
		}
	}
	id, _ := strconv.Atoi(u.Uid)
	g, _ := strconv.Atoi(u.Gid)
	return uint32(id), uint32(g)
}

// asUser runs curl as uid and returns its output (-w prints the status).
func curlAs(t *testing.T, uid, gid uint32, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestMeshProxyOnlyForTheRuntime: another local user cannot use the mesh
// proxy, neither its TCP port (connections from other users are closed;
// wattd's own user still needs the token) nor its Unix socket (no access);
// the workers can: a Python program with $WATTD_MESH_PROXY as its HTTP
// proxy, the Node preload (on the socket, for an app with no worker), a Go
// client with the proxy URL, and wattd's own user on the socket.
func TestMeshProxyOnlyForTheRuntime(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	uid, gid := otherUser(t)
	port := freePort(t)
	d := startWattd(t, meshProject(t, map[string]any{"applications": []any{
		map[string]any{"id": "caller", "path": fixture("apps/caller")},
		map[string]any{"id": "plain", "path": fixture("apps/plain"), "workers": 2},
		map[string]any{"id": "broken", "path": fixture("faults/crash-start")},
		map[string]any{"id": "py", "path": fixture("apps/pyapp"), "capability": "command", "command": "python3 -u app.py"},
	}}), port, startOpts{})
	waitHTTP(t, d.url("/env"), 20*time.Second)
	d.waitReady("plain", 10*time.Second)
	d.waitReady("py", 10*time.Second)
	waitFor(t, 20*time.Second, "broken to fail", func() bool { return d.app("broken").State == "failed" })
	env := workerProxyEnv(t, d)
	pu, _ := url.Parse(env.Proxy)

	// Another user: the TCP port closes its connections at once, the
	// socket is out of reach.
	bare := "http://" + pu.Host
	for _, args := range [][]string{
		{"-x", bare, "http://plain.plt.local/"},
		{"-x", bare, "-X", "POST", "-d", "x", "http://plain.plt.local/"},
		{"-x", "http://wattd:guess@" + pu.Host, "http://plain.plt.local/"},
		{"-H", "Host: plain.plt.local", bare + "/"},
	} {
		if out, err := curlAs(t, uid, gid, args...); err == nil || !strings.HasSuffix(out, "000") {
			t.Errorf("another user, curl %v: %q %v, want no answer", args, out, err)
		}
	}
	// wattd's own user still needs the token on TCP.
	for _, proxy := range []string{bare, "http://wattd:guess@" + pu.Host} {
		pc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(mustParse(t, proxy))}}
		if code, _, err := get(pc, "http://plain.plt.local/"); code != http.StatusProxyAuthRequired {
			t.Errorf("proxy %s without the token: %d %v, want 407", proxy, code, err)
		}
	}
	out, err := curlAs(t, uid, gid, "--unix-socket", env.ProxySocket, "http://plain.plt.local/")
	if err == nil || !strings.HasSuffix(out, "000") {
		t.Errorf("another user reached the proxy socket: %q %v", out, err)
	}

	// The workers' own clients.
	if out, err := d.ctl("inject", "py", "/mesh?app=plain&path=/from-python"); err != nil || !strings.HasPrefix(out, "200 ") || !strings.Contains(out, "/from-python") {
		t.Fatalf("Python with $WATTD_MESH_PROXY: %v\n%s", err, out)
	}
	if r := call(t, d, "/fetch", "broken", "/"); r.Status != 503 || !strings.Contains(r.Body, "crash loop") {
		t.Fatalf("the preload's fallback to the proxy socket: %+v", r)
	}
	pc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	if code, body, err := get(pc, "http://plain.plt.local/go"); err != nil || code != 200 || !strings.Contains(body, "/go") {
		t.Fatalf("Go client with the proxy URL: %d %v %s", code, err, body)
	}
	uc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", env.ProxySocket)
		},
	}}
	if code, body, err := get(uc, "http://plain.plt.local/own-user"); err != nil || code != 200 || !strings.Contains(body, "/own-user") {
		t.Fatalf("wattd's own user on the socket: %d %v %s", code, err, body)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// fdCount is the number of descriptors pid has open.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestMeshProxyLoadCannotStopSupervision: with wattd's descriptor limit
// lowered to 512, a flood of idle connections to the mesh proxy (more than
// the limit) is capped; wattd keeps its reserve, so a rolling restart and
// the respawn of a killed worker still work under that load, and the
// connections that send nothing are closed by the header timeout.
func TestMeshProxyLoadCannotStopSupervision(t *testing.T) {
	integration(t)
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit not installed")
	}
	const limit, flood = 512, 700
	port := freePort(t)
	d := startWattd(t, meshProject(t, nil), port, startOpts{wrap: []string{"prlimit", "--nofile=" + strconv.Itoa(limit) + ":" + strconv.Itoa(limit), "--"}})
	waitHTTP(t, d.url("/env"), 20*time.Second)
	d.waitReady("plain", 10*time.Second)
	env := workerProxyEnv(t, d)
	pu, _ := url.Parse(env.Proxy)
	pid := d.cmd.Process.Pid
	before := fdCount(t, pid)

	// The flood: connections that send nothing, redialled as the proxy
	// closes them, until the test ends.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	held, maxHeld, closedByServer, timedOut := 0, 0, 0, 0
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", pu.Host, 5*time.Second)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				mu.Lock()
				held++
				maxHeld = max(maxHeld, held)
				mu.Unlock()
				done := make(chan struct{})
				go func() {
					select {
					case <-stop:
						c.Close()
					case <-done:
					}
				}()
				opened := time.Now()
				_, err = c.Read(make([]byte, 1))
				close(done)
				c.Close()
				mu.Lock()
				held--
				if err == io.EOF || errors.Is(err, syscall.ECONNRESET) {
					closedByServer++
					if time.Since(opened) >= 4*time.Second {
						timedOut++ // held, then closed by the 5 s header timeout
					}
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond) // a flood, not a busy loop on two cores
			}
		}()
	}
	stopFlood := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopFlood()

	status := func() supervisor.RuntimeStatus {
		out, err := d.ctl("status", "--json")
		if err != nil {
			t.Fatalf("ctl status: %v\n%s", err, out)
		}
		var st supervisor.RuntimeStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("ctl status: %v\n%s", err, out)
		}
		return st
	}
	waitFor(t, 20*time.Second, "the proxy to refuse connections over its cap", func() bool {
		st := status()
		return st.MeshProxy != nil && st.MeshProxy.Refused > 0
	})
	peak := 0
	sample := func() {
		n := fdCount(t, pid)
		peak = max(peak, n)
		if n >= limit-64 {
			t.Fatalf("wattd holds %d descriptors of %d under the flood: the reserve is gone", n, limit)
		}
	}
	sample()

	// Supervision under the flood: a rolling restart, then a killed worker.
	old := d.app("plain")
	if out, err := d.ctl("restart", "plain"); err != nil {
		t.Fatalf("ctl restart under the flood: %v\n%s", err, out)
	}
	sample()
	now := d.waitReady("plain", 20*time.Second)
	for i, w := range now.Workers {
		if w.PID == old.Workers[i].PID {
			t.Fatalf("worker %d kept pid %d through the restart", i, w.PID)
		}
	}
	victim := now.Workers[0].PID
	syscall.Kill(victim, syscall.SIGKILL)
	waitFor(t, 20*time.Second, "the killed worker to be replaced", func() bool {
		a := d.app("plain")
		return a.Workers[0].PID != victim && a.Workers[0].PID != 0 && a.Workers[0].State == "ready"
	})
	sample()
	if r := call(t, d, "/fetch", "plain", "/after"); r.Status != 200 {
		t.Fatalf("mesh call after the restarts: %+v", r)
	}
	// Connections that send nothing are closed by the header timeout (5 s).
	waitFor(t, 20*time.Second, "the proxy to close silent connections it had accepted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return timedOut > 0
	})
	st := status()
	stopFlood()
	waitFor(t, 20*time.Second, "wattd's descriptors to return to where they were", func() bool { return fdCount(t, pid) <= before+8 })
	mu.Lock()
	t.Logf("limit %d, flood %d: wattd fds before %d, peak %d, after %d; at most %d client connections open at once (accepted or queued); proxy open %d, cap %d per listener, refused %d; closed by the server %d, of them %d by the header timeout",
		limit, flood, before, peak, fdCount(t, pid), maxHeld, st.MeshProxy.Open, st.MeshProxy.MaxConns, st.MeshProxy.Refused, closedByServer, timedOut)
	mu.Unlock()
}

// TestMeshProxyExpectContinueFromTheApp: through the mesh proxy, a request
// with "Expect: 100-continue" gets its 100 only when the app sends one. An
// app that refuses the request from its checkContinue handler is answered
// 417 with no 100 before it (the proxy's server sent one as soon as its
// transport read the body, before the app had answered); an app that
// accepts still gets the body, after a 100.
func TestMeshProxyExpectContinueFromTheApp(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"b/package.json": `{"name":"b","private":true,"main":"index.js"}`,
		"b/index.js": `
const http = require('http')
const server = http.createServer((req, res) => {
  let n = 0
  req.on('data', (d) => { n += d.length })
  req.on('end', () => res.end('got ' + n))
})
server.on('checkContinue', (req, res) => {
  if (req.headers['x-reject']) {
    res.writeHead(417, { connection: 'close' })
    res.end('rejected')
    return
  }
  res.writeContinue()
  server.emit('request', req, res)
})
server.listen(process.env.PORT || 3000)
`,
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"entrypoint":   "b",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "b", "path": "./b"}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("b", 30*time.Second)
	sock := filepath.Join(filepath.Dir(d.adminSocket()), "proxy.sock")
	const size = 3 << 20

	send := func(reject bool) (*bufio.Reader, net.Conn) {
		c, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		head := "POST http://b.plt.local/upload HTTP/1.1\r\nHost: b.plt.local\r\nExpect: 100-continue\r\nContent-Length: " + strconv.Itoa(size) + "\r\n"
		if reject {
			head += "x-reject: 1\r\n"
		}
		if _, err := io.WriteString(c, head+"\r\n"); err != nil {
			t.Fatal(err)
		}
		return bufio.NewReader(c), c
	}
	status := func(r *bufio.Reader) *http.Response {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("reading an answer: %v", err)
		}
		return resp
	}

	r, c := send(true)
	resp := status(r)
	body, _ := io.ReadAll(resp.Body)
	c.Close()
	if resp.StatusCode != http.StatusExpectationFailed || string(body) != "rejected" {
		t.Fatalf("refused upload: first answer %d %q, want the app's 417 (and no 100 before it)", resp.StatusCode, body)
	}

	r, c = send(false)
	defer c.Close()
	if resp := status(r); resp.StatusCode != http.StatusContinue {
		t.Fatalf("accepted upload: first answer %d, want 100", resp.StatusCode)
	}
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	resp = status(r)
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "got "+strconv.Itoa(size) {
		t.Fatalf("accepted upload: %d %q", resp.StatusCode, body)
	}
}
