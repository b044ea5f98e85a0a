package sockowner

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func acceptOne(t *testing.T, network, addr string) (net.Listener, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			ch <- c
		}
	}()
	return ln, ch
}

func TestPeerUIDOwnProcess(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		ln, accepted := acceptOne(t, tc.network, tc.addr)
		c, err := net.Dial(tc.network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc := <-accepted
		uid, err := PeerUID(sc)
		if err != nil {
			t.Fatalf("%s: %v", tc.network, err)
		}
		if uid != uint32(os.Geteuid()) {
			t.Fatalf("%s: peer uid %d, want ours, %d", tc.network, uid, os.Geteuid())
		}
	}
}

// TestPeerUIDOtherUser: the peer is a process of another user (needs root
// to start it as one).
func TestPeerUIDOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: connects as another user")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	ln, accepted := acceptOne(t, "tcp4", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	// bash's /dev/tcp makes the connection and holds it for a moment.
	cmd := exec.Command(bash, "-c", "exec 3<>/dev/tcp/127.0.0.1/"+port+"; sleep 5")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var sc net.Conn
	select {
	case sc = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection from the other user's process")
	}
	got, err := PeerUID(sc)
	if err != nil {
		t.Fatal(err)
	}
	if int(got) != uid {
		t.Fatalf("peer uid %d, want %d (nobody)", got, uid)
	}
}

func TestPeerUIDNotTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := PeerUID(a); err == nil || !strings.Contains(err.Error(), "not a TCP") {
		t.Fatalf("pipe: %v", err)
	}
	if _, err := lookup(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("lookup of a connection that does not exist: %v, want ENOENT", err)
	}
}
