package listeners

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTCPSharesPortAndSurvivesClose(t *testing.T) {
	f1, addr, err := TCP("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	f2, addr2, err := TCP("127.0.0.1", addr.Port)
	if err != nil {
		t.Fatalf("second socket on the same port: %v", err)
	}
	defer f2.Close()
	if addr2.Port != addr.Port {
		t.Fatalf("port %d != %d", addr2.Port, addr.Port)
	}
	// Nobody accepts, yet the kernel completes the handshake into the
	// backlog: this is what keeps connections alive across a restart.
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial while nobody accepts: %v", err)
	}
	c.Close()
}

func TestUnixModeAndStale(t *testing.T) {
	dir, err := os.MkdirTemp("", "wl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "s.sock")
	f, err := Unix(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	if _, err := Unix(p); err == nil {
		t.Fatal("second listener on a live socket succeeded")
	}
	f.Close() // socket file stays behind: stale
	f2, err := Unix(p)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	f2.Close()
}

// TestTCPNamesTheConnectionsOnAPort: a port no program listens on but a
// connection uses as its own end (an outgoing connection given it from the
// ephemeral range) cannot be bound; the error says so instead of a bare
// "address already in use".
func TestTCPNamesTheConnectionsOnAPort(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := c.LocalAddr().(*net.TCPAddr).Port // the client's end
	f, _, err := TCP("127.0.0.1", port)
	if err == nil {
		f.Close()
		t.Skipf("port %d bound beside the connection using it", port)
	}
	// Other connections of the machine may hold the port as their end too
	// (one in TIME_WAIT, say): the counts name ours among them.
	want := regexp.MustCompile(fmt.Sprintf(`connections use port %d as their own end \([^)]*\b\d+ ESTABLISHED\b[^)]*\)`, port))
	if !want.MatchString(err.Error()) || !strings.Contains(err.Error(), "range for outgoing connections") || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("error %q, want it to match %q and name the ephemeral range", err, want)
	}
}

// TestTCPOnIPv4WildcardIsIPv4Only: a socket on 0.0.0.0 answers on IPv4
// only, as Node.js's and Watt's do; Go's "tcp" would make it dual-stack,
// open on every IPv6 address too. "" stays both families.
func TestTCPOnIPv4WildcardIsIPv4Only(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback here")
	} else {
		ln.Close()
	}
	f, addr, err := TCP("0.0.0.0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	port := strconv.Itoa(addr.Port)
	if c, err := net.DialTimeout("tcp4", "127.0.0.1:"+port, time.Second); err != nil {
		t.Fatalf("IPv4: %v", err)
	} else {
		c.Close()
	}
	if c, err := net.DialTimeout("tcp6", "[::1]:"+port, time.Second); err == nil {
		c.Close()
		t.Fatal("a socket on 0.0.0.0 accepted a connection on ::1")
	}
	for host, want := range map[string]string{"0.0.0.0": "tcp4", "127.0.0.1": "tcp4", "::": "tcp6", "::1": "tcp6", "": "tcp", "localhost": "tcp", "::ffff:127.0.0.1": "tcp6"} {
		if got := Network(host); got != want {
			t.Errorf("Network(%q) = %q, want %q", host, got, want)
		}
	}
}
