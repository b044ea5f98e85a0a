package node

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
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
