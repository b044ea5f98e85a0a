package listeners

import (
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func tcpFile(t *testing.T, name string) (*os.File, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Named as LISTEN_FDNAMES names it; a descriptor of its own, so
	// closing f does not close it.
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	// As systemd passes a socket with NonBlocking=yes: os.NewFile then
	// puts it in Go's poller, which wattd's copy must leave.
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), name), l.Addr().String()
}

func TestActivatedPicksThePublicSocket(t *testing.T) {
	if f, err := Activated(nil); f != nil || err != nil {
		t.Fatalf("no socket passed: %v, %v", f, err)
	}
	one, addr := tcpFile(t, "LISTEN_FD_3")
	f, err := Activated([]*os.File{one})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Addr(f); got.String() != addr {
		t.Fatalf("Addr = %v, want %s", got, addr)
	}
	f.Close()

	metrics, _ := tcpFile(t, "metrics")
	public, addr := tcpFile(t, "http")
	f, err = Activated([]*os.File{metrics, public})
	if err != nil || f.Name() != "http" {
		t.Fatalf("Activated = %v, %v; want the one named http", f, err)
	}
	if got, _ := Addr(f); got.String() != addr {
		t.Fatalf("Addr = %v, want %s", got, addr)
	}
	// wattd keeps its own copy (Hold), and the passed descriptor is closed.
	if polled(t, int(f.Fd())) {
		t.Error("the picked socket is in Go's poller")
	}
	if _, err := Addr(metrics); err == nil {
		t.Error("the socket not picked is still open")
	}
	// Every slot's copy is the same socket.
	dup, dupAddr, err := Share(f)
	if err != nil || dupAddr.String() != addr || dup.Fd() == f.Fd() {
		t.Fatalf("Share = %v, %v, %v", dup, dupAddr, err)
	}
	dup.Close()
	f.Close()

	a, _ := tcpFile(t, "a")
	b, _ := tcpFile(t, "b")
	if _, err := Activated([]*os.File{a, b}); err == nil || !strings.Contains(err.Error(), "FileDescriptorName=http") {
		t.Fatalf("two unnamed sockets: %v", err)
	}
}

func TestActivatedRefusesOtherSockets(t *testing.T) {
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	uf, err := u.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Activated([]*os.File{uf}); err == nil {
		t.Fatal("a UDP socket taken as the public socket")
	}
	path := t.TempDir() + "/s"
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	unf, err := ul.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Activated([]*os.File{unf}); err == nil {
		t.Fatal("a Unix socket taken as the public socket")
	}
}
