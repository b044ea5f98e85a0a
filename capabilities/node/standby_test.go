package node

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/ipc"
)

// socketInode is the inode the kernel gave a socket, as /proc/PID/fd
// shows it ("socket:[N]").
func socketInode(t *testing.T, f *os.File) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("socket:[%d]", st.Ino)
}

// heldSockets lists the sockets process pid has open.
func heldSockets(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			out = append(out, l)
		}
	}
	return out
}

// TestStandbyHoldsListenUntilPromoted: a standby worker loads the app but
// holds its listen(): it says standby, not ready, and a connection made to
// a slot's socket meanwhile waits in that socket's queue. Promoted to slot
// 1, it listens on slot 1's sockets, runs the app's listen callback, says
// ready, answers the connection that waited, and lets go of slot 0's
// sockets.
func TestStandbyHoldsListenUntilPromoted(t *testing.T) {
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true, standbySlots: 2})
	w.handshake()
	w.expect(ipc.TypeStandby)
	if env := w.event("env"); !slices.Contains(env["vars"].([]any), any("WATTD_WORKER_ID")) {
		t.Errorf("env event: %v", env)
	}

	// A request to slot 1 while the worker is a standby waits: nothing
	// accepts it.
	conn, err := net.Dial("tcp", w.slotTCP[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /queued HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		answered <- b.String()
	}()
	select {
	case got := <-answered:
		t.Fatalf("a standby answered before its promotion: %s", got)
	case <-time.After(500 * time.Millisecond):
	}
	for _, m := range w.seen {
		if m["event"] == "listening" {
			t.Fatal("the app's listen callback ran before the promotion")
		}
	}

	w.send(&ipc.Message{Type: ipc.TypePromote, Worker: 1})
	if m := w.expect(ipc.TypeReady); !slices.Equal(m.Listeners, []string{"http", "mesh"}) {
		t.Errorf("ready listeners %v, want http and mesh", m.Listeners)
	}
	w.event("listening")
	select {
	case got := <-answered:
		if !strings.Contains(got, `"url":"/queued"`) {
			t.Errorf("the queued request got %q", got)
		}
	case <-time.After(waitLimit):
		t.Fatal("the request queued before the promotion was not answered")
	}
	// Slot 1's mesh socket serves the app too.
	if m := getJSON(t, unixClient(w.slotMesh[1]), "http://x/mesh"); m["url"] != "/mesh" {
		t.Errorf("mesh: %v", m)
	}
	// Slot 0's sockets are closed in the worker; slot 1's are held.
	held := heldSockets(t, w.pid)
	for _, f := range w.slotFiles[0] {
		if ino := socketInode(t, f); slices.Contains(held, ino) {
			t.Errorf("the promoted worker still holds slot 0's %s (%s)", f.Name(), ino)
		}
	}
	for _, f := range w.slotFiles[1] {
		if ino := socketInode(t, f); !slices.Contains(held, ino) {
			t.Errorf("the promoted worker does not hold slot 1's %s (%s)", f.Name(), ino)
		}
	}
}

// listeningTCP lists the inodes of the TCP sockets in LISTEN state in
// process pid's network namespace.
func listeningTCP(t *testing.T, pid int) []string {
	t.Helper()
	var out []string
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, name))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" {
				out = append(out, "socket:["+f[9]+"]")
			}
		}
	}
	return out
}

// waitWarm waits for a standby's report of its warm-up.
func (w *worker) waitWarm() *ipc.Warm {
	w.t.Helper()
	deadline := time.After(waitLimit)
	for len(w.warms) == 0 {
		select {
		case m, ok := <-w.msgs:
			if !ok {
				w.t.Fatal("control channel closed while waiting for the warm-up")
			}
			if m.Type == ipc.TypeStandby && m.Warm != nil {
				w.warms = append(w.warms, m.Warm)
			} else if m.Type != ipc.TypeStats {
				w.t.Fatalf("got %s (%+v) while waiting for the warm-up", m.Type, m)
			}
		case <-deadline:
			w.t.Fatalf("no warm-up report within %v", waitLimit)
		}
	}
	return w.warms[0]
}

// TestStandbyWarmsUpUnseen: a standby serves requests to itself while it
// waits, on a private loopback server of its own that is gone once it
// reports the warm-up; none of those requests reaches the app or its
// request metrics, and the promoted worker counts exactly the requests it
// was sent.
func TestStandbyWarmsUpUnseen(t *testing.T) {
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true, standbySlots: 1, metrics: true})
	w.handshake()
	w.expect(ipc.TypeStandby)
	warm := w.waitWarm()
	if warm.Requests < 100 || warm.Ms <= 0 {
		t.Errorf("warm-up report %+v: expected at least 100 requests and a duration", warm)
	}
	// The process listens on no TCP socket but the slot's.
	slot := socketInode(t, w.slotFiles[0][0])
	held := heldSockets(t, w.pid)
	for _, ino := range listeningTCP(t, w.pid) {
		if ino != slot && slices.Contains(held, ino) {
			t.Errorf("after its warm-up the standby still listens on TCP socket %s", ino)
		}
	}

	w.send(&ipc.Message{Type: ipc.TypePromote, Worker: 0})
	w.expect(ipc.TypeReady)
	for i := range 3 {
		if got := getJSON(t, tcpClient(), fmt.Sprintf("http://%s/n%d", w.slotTCP[0], i)); got["app"] != "entry" {
			t.Fatalf("GET: %v", got)
		}
	}
	st := w.statsWithRequests(3)
	if st.RequestsDone != 3 {
		t.Errorf("requestsDone = %d, want the 3 requests sent (warm-up requests counted?)", st.RequestsDone)
	}
	var n uint64
	if st.Requests != nil {
		for _, s := range st.Requests.Series {
			for _, c := range s.Counts {
				n += c
			}
		}
	}
	if n != 3 {
		t.Errorf("request durations recorded: %d, want 3", n)
	}
}

// TestStandbyWarmUpStepsAsideForAnAgent: when something watches every
// HTTP server of the process, an APM agent wrapping http.Server's emit or
// a subscriber of Node.js's http.server channels, a standby does not warm
// up, since the agent would see those requests as the app's; nor does it
// when the app's environment says WATTD_STANDBY_WARMUP=0.
func TestStandbyWarmUpStepsAsideForAnAgent(t *testing.T) {
	agent := filepath.Join(t.TempDir(), "agent.cjs")
	if err := os.WriteFile(agent, []byte(`'use strict'
// Counts the requests it sees, the way an agent would, and answers
// /agent-count itself.
const http = require('node:http')
let seen = 0
function count (req, res) {
  seen++
  if (req.url === '/agent-count') {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ app: 'agent', seen }))
    return true
  }
  return false
}
if (process.env.AGENT_MODE === 'channel') {
  require('node:diagnostics_channel').subscribe('http.server.request.start', () => { seen++ })
} else {
  const emit = http.Server.prototype.emit
  http.Server.prototype.emit = function (event, req, res) {
    if (event === 'request' && count(req, res)) return true
    return emit.apply(this, arguments)
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	// "off": no agent, but the warm-up turned off by the app's environment.
	for _, mode := range []string{"emit", "channel", "off"} {
		t.Run(mode, func(t *testing.T) {
			// With metrics on, whose own subscription to the same
			// channel must not hide the agent's, nor be lost.
			o := workerOpts{app: "entry", entrypoint: true, standbySlots: 1, metrics: true,
				nodeOpts: "--require " + agent, env: map[string]string{"AGENT_MODE": mode}}
			if mode == "off" {
				o.nodeOpts, o.env = "", map[string]string{"WATTD_STANDBY_WARMUP": "0"}
			}
			w := startWorker(t, o)
			w.handshake()
			w.expect(ipc.TypeStandby)
			// A warm-up begins at most 1 s after the standby message,
			// ends within its 500 ms budget and reports at once; give it
			// twice that.
			quiet := time.After(3 * time.Second)
		wait:
			for {
				select {
				case m, ok := <-w.msgs:
					if !ok {
						t.Fatal("control channel closed")
					}
					if m.Type == ipc.TypeStandby && m.Warm != nil {
						t.Fatalf("the standby warmed up (%+v) with %s", m.Warm, mode)
					}
				case <-quiet:
					break wait
				}
			}
			w.send(&ipc.Message{Type: ipc.TypePromote, Worker: 0})
			w.expect(ipc.TypeReady)
			if mode == "emit" {
				if got := getJSON(t, tcpClient(), "http://"+w.slotTCP[0]+"/agent-count"); got["seen"] != float64(1) {
					t.Errorf("the agent saw %v requests, want only this one", got["seen"])
				}
			} else if got := getJSON(t, tcpClient(), "http://"+w.slotTCP[0]+"/x"); got["app"] != "entry" {
				t.Fatalf("GET: %v", got)
			}
			// The preload's metrics count the request sent.
			if st := w.statsWithRequests(1); st.RequestsDone != 1 {
				t.Fatalf("requestsDone = %d, want 1", st.RequestsDone)
			}
		})
	}
}

// TestStandbyWarmUpWithoutLoopback: in a network namespace whose loopback
// is down, the warm-up's private server cannot be reached; the standby
// says so once on stderr, reports no request warmed, does not retry in a
// loop, and still serves once promoted (its slot's sockets came from
// outside the namespace).
func TestStandbyWarmUpWithoutLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	w := startWorker(t, workerOpts{app: "entry", entrypoint: true, standbySlots: 1,
		script: `LISTEN_PID=$$; export LISTEN_PID; exec unshare -n "$0" "$@"`})
	w.handshake()
	w.expect(ipc.TypeStandby)
	if warm := w.waitWarm(); warm.Requests != 0 {
		t.Errorf("warm-up report %+v without loopback, want 0 requests", warm)
	}
	w.waitStderr("standby warm-up") // the pipe may lag the report
	w.send(&ipc.Message{Type: ipc.TypePromote, Worker: 0})
	w.expect(ipc.TypeReady)
	if got := getJSON(t, tcpClient(), "http://"+w.slotTCP[0]+"/after"); got["app"] != "entry" {
		t.Fatalf("GET: %v", got)
	}
	// By now a warm-up that retried would have written more.
	if got := strings.Count(w.stderr.String(), "standby warm-up"); got != 1 {
		t.Errorf("%d warm-up warnings, want 1; stderr:\n%s", got, w.stderr.String())
	}
}

// TestStandbyWarmsUpOnASpareCPU: a standby warms up as soon as the
// machine has a CPU to spare, and waits a second while it has none. The
// CPU times come from a /proc/stat the test makes up (cpu.cjs, required
// ahead of the app, answers the preload's reads of it): idle, every look
// finds all CPUs idle; busy, none.
func TestStandbyWarmsUpOnASpareCPU(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "cpu.cjs")
	if err := os.WriteFile(fake, []byte(`'use strict'
const fs = require('node:fs')
const { openSync, readSync } = fs
let statFd = -1
let looks = 0
fs.openSync = function (path, ...rest) {
  const fd = openSync.call(this, path, ...rest)
  if (path === '/proc/stat') statFd = fd
  return fd
}
fs.readSync = function (fd, buf, off, len, pos) {
  if (fd !== statFd) return readSync.apply(this, arguments)
  looks++
  const busy = process.env.FAKE_CPU === 'busy' ? looks * 1000 : 0
  const idle = process.env.FAKE_CPU === 'idle' ? looks * 1000 : 0
  return buf.write('cpu  ' + busy + ' 0 0 ' + idle + ' 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n', off, 'latin1')
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"idle", "busy"} {
		t.Run(mode, func(t *testing.T) {
			w := startWorker(t, workerOpts{app: "entry", entrypoint: true, standbySlots: 1,
				nodeOpts: "--require " + fake, env: map[string]string{"FAKE_CPU": mode}})
			w.handshake()
			w.expect(ipc.TypeStandby)
			warm := w.waitWarm()
			if warm.Requests < 100 {
				t.Errorf("warm-up report %+v: expected at least 100 requests", warm)
			}
			// The first look is 100 ms after the standby is loaded; the
			// latest start, 1 s.
			switch {
			case mode == "idle" && (warm.After < 100 || warm.After >= 900):
				t.Errorf("with every CPU idle the warm-up began after %d ms, want from 100 ms, well before 1 s", warm.After)
			case mode == "busy" && warm.After < 1000:
				t.Errorf("with no CPU idle the warm-up began after %d ms, want 1 s", warm.After)
			}
		})
	}
}
