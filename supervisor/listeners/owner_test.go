package listeners

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestOverlaps(t *testing.T) {
	lo, any4, any6, other := netip.MustParseAddr("127.0.0.1"), netip.IPv4Unspecified(), netip.IPv6Unspecified(), netip.MustParseAddr("10.1.2.3")
	if !overlapsAny(lo, []netip.Addr{lo}) || !overlapsAny(any4, []netip.Addr{lo}) || !overlapsAny(lo, []netip.Addr{any6}) {
		t.Fatal("same address or a wildcard must overlap")
	}
	if overlapsAny(other, []netip.Addr{lo}) {
		t.Fatal("two specific addresses do not overlap")
	}
}

func TestCheckFreeNamesTheHolder(t *testing.T) {
	// A foreign program that shares its port opens what TCP opens.
	foreign, addr, err := TCP("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	port := addr.Port

	// The kernel lets wattd's socket join the foreign one's group.
	f, _, err := TCP("127.0.0.1", port)
	if err != nil {
		t.Fatalf("join the group: %v", err)
	}
	defer f.Close()
	ino, err := Inode(f)
	if err != nil {
		t.Fatal(err)
	}

	for _, host := range []string{"127.0.0.1", "0.0.0.0", "localhost"} {
		err = CheckFree(host, port, map[uint64]bool{ino: true})
		var held *PortHeldError
		if !errors.As(err, &held) || !errors.Is(err, ErrPortHeld) {
			t.Fatalf("%s: foreign listener not found: %v", host, err)
		}
		if len(held.Holders) != 1 || held.Holders[0].Proc == nil || held.Holders[0].Proc.PID != os.Getpid() {
			t.Fatalf("%s: holders %+v, want this test process (%d)", host, held.Holders, os.Getpid())
		}
		if !strings.Contains(err.Error(), "reuseTcpPorts") || !strings.Contains(err.Error(), "pid ") {
			t.Fatalf("%s: message does not say what to do: %v", host, err)
		}
		// The holder here is the test process itself, which the message
		// says, with the socket's inode.
		if want := fmt.Sprintf("(socket inode %d, held by this very process)", held.Holders[0].Inode); !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: message %q lacks %q", host, err, want)
		}
	}

	// Only wattd's own sockets: free.
	foreign.Close()
	if err := CheckFree("127.0.0.1", port, map[uint64]bool{ino: true}); err != nil {
		t.Fatalf("own socket reported as foreign: %v", err)
	}
	// A different address on the same port does not overlap.
	if err := CheckFree("127.0.0.2", port, nil); err != nil {
		t.Fatalf("127.0.0.2 overlaps 127.0.0.1: %v", err)
	}
}

// TestCheckFreeTellsAnUnsharedHolder: the check before the bind already
// knows whether the holder could share the port, and offers
// reuseTcpPorts only then.
func TestCheckFreeTellsAnUnsharedHolder(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	var held *PortHeldError
	if err := CheckFree("127.0.0.1", port, nil); !errors.As(err, &held) || !held.Unshared || strings.Contains(err.Error(), `set "reuseTcpPorts"`) {
		t.Fatalf("an exclusive holder: %v", err)
	}
	// A program that shares its port opens what TCP opens.
	shared, addr, err := TCP("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	if err := CheckFree("127.0.0.1", addr.Port, nil); !errors.As(err, &held) || held.Unshared || !strings.Contains(err.Error(), `set "reuseTcpPorts"`) {
		t.Fatalf("a holder with SO_REUSEPORT: %v", err)
	}
}

// TestTCPNamesExclusiveHolder: a listener without SO_REUSEPORT makes the
// bind fail; the error names who holds the port.
func TestTCPNamesExclusiveHolder(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, _, err = TCP("127.0.0.1", port)
	if !errors.Is(err, ErrPortHeld) || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("bind on a held port: %v", err)
	}
	// reuseTcpPorts could not share it: the message does not offer it.
	if strings.Contains(err.Error(), `set "reuseTcpPorts"`) || !strings.Contains(err.Error(), "cannot share it") {
		t.Fatalf("the message offers reuseTcpPorts for a socket that does not allow sharing: %v", err)
	}
}
