// Package sdnotifytest plays the service manager's side of the
// notification protocol in tests: a datagram socket that records what it
// is sent.
package sdnotifytest

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Listener records the notifications sent to Path.
type Listener struct {
	Path string

	mu  sync.Mutex
	got []string // one entry per datagram
}

// Listen opens the socket in a temporary directory; it closes when the
// test ends.
func Listen(t testing.TB) *Listener {
	t.Helper()
	l := &Listener{Path: filepath.Join(t.TempDir(), "notify.sock")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: l.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.got = append(l.got, string(buf[:n]))
			l.mu.Unlock()
		}
	}()
	return l
}

// All is every datagram received so far, in order.
func (l *Listener) All() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

// Index is the position of the first datagram at or after from that has
// the line want, or -1.
func (l *Listener) Index(from int, want string) int {
	all := l.All()
	for i := from; i < len(all); i++ {
		if hasLine(all[i], want) {
			return i
		}
	}
	return -1
}

// Count is how many datagrams have the line want.
func (l *Listener) Count(want string) int {
	n := 0
	for _, d := range l.All() {
		if hasLine(d, want) {
			n++
		}
	}
	return n
}

func hasLine(datagram, want string) bool {
	for _, line := range strings.Split(datagram, "\n") {
		if line == want {
			return true
		}
	}
	return false
}
