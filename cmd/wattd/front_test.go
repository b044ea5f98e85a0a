package main_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFrontedPortTakenByAnother: a fronted worker whose $PORT another
// program takes is not counted ready because that port accepts, fails to
// start, and its next start gets a fresh port; the public port then serves
// from the worker and never from the other program.
func TestFrontedPortTakenByAnother(t *testing.T) {
	integration(t)
	state := t.TempDir()
	portLog := filepath.Join(state, "ports")
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"startTimeout": 30000,
		"applications": []any{map[string]any{
			"id":         "web",
			"path":       fixture("faults/port-taken"),
			"capability": "command",
			"command":    []any{nodePath(t, testNodes[0]), "worker.js"},
			"env":        map[string]any{"PORT_LOG": portLog, "FAULT_ONCE": filepath.Join(state, "once")},
		}},
	})
	d := startWattd(t, dir, port, startOpts{})

	ports := func() []int {
		b, _ := os.ReadFile(portLog)
		var ps []int
		for _, f := range strings.Fields(string(b)) {
			p, _ := strconv.Atoi(f)
			ps = append(ps, p)
		}
		return ps
	}
	waitFor(t, 20*time.Second, "the first worker's port", func() bool { return len(ports()) > 0 })
	first := ports()[0]

	// Another program takes the port; it answers HTTP, so a request
	// forwarded to it would show.
	var foreignHits atomic.Int32
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first))
	if err != nil {
		t.Fatalf("take port %d: %v", first, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignHits.Add(1)
		fmt.Fprintln(w, "foreign")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	w := d.waitReady("web", 30*time.Second).Workers[0]
	if w.Restarts < 1 || !strings.Contains(w.LastExit, "EADDRINUSE") {
		t.Fatalf("worker after the taken port: %+v", w)
	}
	ps := ports()
	if len(ps) < 2 || ps[len(ps)-1] == first {
		t.Fatalf("ports given to the workers: %v; the restart kept the taken port %d", ps, first)
	}
	for range 10 {
		code, body, err := get(fresh, d.url("/"))
		if err != nil || code != 200 || !strings.Contains(body, fmt.Sprintf("port-worker %d", w.PID)) {
			t.Fatalf("GET / = %d %q %v", code, body, err)
		}
	}
	if n := foreignHits.Load(); n != 0 {
		t.Fatalf("%d requests reached the program that took the port", n)
	}
	var readyLines int
	for _, e := range logEntries(d.out.String(), "worker ready") {
		if e["name"] == "web" {
			readyLines++
		}
	}
	if readyLines != 1 {
		t.Fatalf("%d \"worker ready\" lines for web, want 1 (the worker that lost its port was never ready)", readyLines)
	}
	warn := logEntries(d.out.String(), "worker's port is taken by another program; the worker is not ready while it is")
	if len(warn) != 1 || !strings.Contains(fmt.Sprint(warn[0]["error"]), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("the warning does not name this test (pid %d) as the holder: %v", os.Getpid(), warn)
	}
}

// socketCount is the number of sockets pid has open.
func socketCount(t *testing.T, pid int) int {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// TestFrontedClientGoneDuringHungRequest: clients that send a request the
// fronted program never answers and then go away leave nothing behind in
// wattd once the program has sent nothing for the fin bound (30 s): their
// end looks like a half-close, which alone held both connections until the
// program answered. A client that half-closes still gets a prompt answer,
// and one that keeps its connection open gets an answer slower than the
// bound.
func TestFrontedClientGoneDuringHungRequest(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app/server.js": `
const net = require('net')
net.createServer({ allowHalfOpen: true }, (s) => {
  let req = ''
  s.on('error', () => {})
  s.on('end', () => {})
  s.on('data', (d) => {
    req += d
    if (!req.includes('\r\n\r\n') || req.startsWith('GET /hang')) return
    const delay = req.startsWith('GET /slow') ? 40000 : 0
    setTimeout(() => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'), delay)
  })
}).listen(Number(process.env.PORT), '127.0.0.1')
`})
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"entrypoint":   "app",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "app", "path": "./app", "capability": "command", "command": []any{nodePath(t, testNodes[0]), "server.js"}}},
	})
	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("app", 30*time.Second)
	pid := d.cmd.Process.Pid
	request := func(path string) net.Conn {
		c, err := net.DialTimeout("tcp", d.addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
			t.Fatal(err)
		}
		return c
	}
	answer := func(c net.Conn, within time.Duration) string {
		c.SetReadDeadline(time.Now().Add(within))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("reading the answer: %v (got %q)", err, b)
		}
		return string(b)
	}
	base := socketCount(t, pid)
	// A client that half-closes once its request is sent still reads the
	// answer.
	c := request("/quick")
	c.(*net.TCPConn).CloseWrite()
	if a := answer(c, 5*time.Second); !strings.HasSuffix(a, "\r\n\r\nok") {
		t.Fatalf("half-closed client's answer: %q", a)
	}
	c.Close()

	slow := request("/slow")
	defer slow.Close()
	const gone = 50
	for range gone {
		request("/hang").Close()
	}
	waitFor(t, 10*time.Second, "the abandoned requests forwarded", func() bool { return socketCount(t, pid) >= base+2*gone })
	start := time.Now()
	// The slow pair (2 sockets) stays: its client never ended its side.
	waitFor(t, 40*time.Second, "wattd's sockets back to their number before the abandoned requests", func() bool {
		return socketCount(t, pid) <= base+2
	})
	t.Logf("abandoned pairs closed %v after their clients left", time.Since(start).Round(time.Second))
	if a := answer(slow, 30*time.Second); !strings.HasSuffix(a, "\r\n\r\nok") {
		t.Fatalf("slow answer: %q", a)
	}
	slow.Close()
	waitFor(t, 10*time.Second, "wattd's sockets back to their number", func() bool { return socketCount(t, pid) <= base })
	t.Logf("wattd descriptors at the end: %d", fdCount(t, pid))
}
