package main_test

import (
	"fmt"
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
