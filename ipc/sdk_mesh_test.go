package ipc

import (
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dialInProcess plays wattd on one end of a socketpair and hands the other
// to Dial through WATTD_CONTROL_FD, as a supervised Go worker would get it.
func dialInProcess(t *testing.T) (*Control, net.Conn) {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pf := os.NewFile(uintptr(pair[0]), "wattd-end")
	wattd, err := net.FileConn(pf)
	pf.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wattd.Close() })
	wattd.SetDeadline(time.Now().Add(10 * time.Second))
	// The welcome waits in the socket buffer, so Dial's handshake needs no
	// second goroutine here.
	if err := WriteMessage(wattd, &Message{Type: TypeWelcome, Version: ProtocolVersion, App: "api", Worker: 1}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvControlFD, strconv.Itoa(pair[1])) // Dial takes ownership of this fd
	ctl, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	if hello, err := ReadMessage(wattd); err != nil || hello.Type != TypeHello {
		t.Fatalf("hello: %+v %v", hello, err)
	}
	return ctl, wattd
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestControlMesh(t *testing.T) {
	ctl, wattd := dialInProcess(t)
	if ctl.Mesh() != nil {
		t.Fatal("a table before any mesh message")
	}

	send := func(m *Message) {
		t.Helper()
		if err := WriteMessage(wattd, m); err != nil {
			t.Fatal(err)
		}
	}
	send(&Message{Type: TypeMesh, Mesh: &MeshTable{
		Apps:      map[string]MeshApp{"api": {Endpoints: []string{"/run/a-0.sock"}, State: "running"}},
		TimeoutMs: 250,
		Proxy:     "http://127.0.0.1:9",
	}})
	waitFor(t, "the first table", func() bool { return ctl.Mesh() != nil })
	first := ctl.Mesh()
	if first.TimeoutMs != 250 || first.Proxy != "http://127.0.0.1:9" ||
		len(first.Apps["api"].Endpoints) != 1 || first.Apps["api"].Endpoints[0] != "/run/a-0.sock" {
		t.Fatalf("table %+v", first)
	}
	if ctl.Mesh() != first {
		t.Fatal("the snapshot changed without a new mesh message")
	}

	// Readers run while tables keep arriving (go test -race checks the
	// sharing); a message without a table and unrelated messages change
	// nothing.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if tb := ctl.Mesh(); tb == nil || tb.Apps == nil {
					t.Error("lost the table")
					return
				}
			}
		}()
	}
	for n := 1; n <= 20; n++ {
		eps := make([]string, n)
		for i := range eps {
			eps[i] = "/run/a-" + strconv.Itoa(i) + ".sock"
		}
		send(&Message{Type: TypeMesh, Mesh: &MeshTable{Apps: map[string]MeshApp{"api": {Endpoints: eps, State: "running"}}}})
		send(&Message{Type: TypeMesh})
		send(&Message{Type: TypeStats})
	}
	waitFor(t, "the last table", func() bool { return len(ctl.Mesh().Apps["api"].Endpoints) == 20 })
	close(stop)
	wg.Wait()

	// Drain still works alongside.
	send(&Message{Type: TypeDrain, TimeoutMs: 1000})
	select {
	case <-ctl.Drain:
	case <-time.After(10 * time.Second):
		t.Fatal("drain not seen")
	}
	if len(ctl.Mesh().Apps["api"].Endpoints) != 20 {
		t.Fatal("drain changed the table")
	}
}
