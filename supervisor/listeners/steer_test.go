package listeners

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// accepted counts the connections waiting in each socket's queue.
func accepted(t *testing.T, files []*os.File) []int {
	t.Helper()
	counts := make([]int, len(files))
	for i, f := range files {
		fd := int(f.Fd())
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
		for {
			nfd, _, err := unix.Accept(fd)
			if err != nil {
				break
			}
			unix.Close(nfd)
			counts[i]++
		}
	}
	return counts
}

func TestSteerKeepsConnectionsOffLeavingSockets(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testSteer(t, "127.0.0.1", false) })
	t.Run("IPv6", func(t *testing.T) {
		if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		} else {
			l.Close()
		}
		testSteer(t, "::1", true)
	})
}

func testSteer(t *testing.T, host string, ipv6 bool) {
	var g PortGroup
	var files []*os.File
	port := 0
	for range 3 {
		f, addr, err := TCP(host, port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		port = addr.Port
		ino, err := Inode(f)
		if err != nil {
			t.Fatal(err)
		}
		g.Joined(ino)
		files = append(files, f)
	}
	ino0, _ := Inode(files[0])
	ino2, _ := Inode(files[2])
	allowed := g.Positions(map[uint64]bool{ino0: true, ino2: true})
	if len(allowed) != 2 || allowed[0] != 0 || allowed[1] != 2 {
		t.Fatalf("positions = %v, want [0 2]", allowed)
	}
	if err := Steer(files[1], ipv6, allowed); err != nil {
		t.Fatal(err)
	}
	dial := func(n int) {
		for range n {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(host, itoa(port)), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
	}
	dial(60)
	got := accepted(t, files)
	if got[1] != 0 || got[0] == 0 || got[2] == 0 || got[0]+got[2] != 60 {
		t.Fatalf("connections per socket while steered = %v, want none on socket 1 and the rest on 0 and 2", got)
	}
	if err := Unsteer(files[0]); err != nil {
		t.Fatal(err)
	}
	dial(60)
	if got := accepted(t, files); got[1] == 0 {
		t.Fatalf("connections per socket after Unsteer = %v, want socket 1 to get some again", got)
	}
}

func TestPortGroupLeftMovesLastIntoPlace(t *testing.T) {
	var g PortGroup
	for _, ino := range []uint64{10, 11, 12, 13} {
		g.Joined(ino)
	}
	g.Left(11)
	if got := g.Positions(map[uint64]bool{13: true}); len(got) != 1 || got[0] != 1 {
		t.Fatalf("position of the last socket after the second left = %v, want [1]", got)
	}
	if g.Len() != 3 {
		t.Fatalf("len = %d, want 3", g.Len())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
