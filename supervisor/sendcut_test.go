package supervisor

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
)

// A worker that does not read its control channel until the socket buffer
// is full gets a frame cut by the write deadline. Another frame written
// after it would be read as its rest, so the channel must be given up: no
// further frame may go out, and the worker is failed for it.
func TestSendCutFrameBreaksChannel(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "ctrl")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ours, theirs := conn(fds[0]), conn(fds[1])
	defer theirs.Close() // never read: the worker is not listening
	exited := make(chan struct{})
	close(exited) // no process to kill
	p := &proc{ctrl: ours.(*net.UnixConn), exited: exited}
	p.logp.Store(zap.NewNop())

	// A frame far larger than any unix socket buffer.
	big, _ := json.Marshal(strings.Repeat("x", ipc.MaxFrame-1024))
	err = p.send(&ipc.Message{Type: "message", Data: big})
	if err == nil {
		t.Fatal("send of a frame larger than the socket buffer to a worker that never reads succeeded")
	}
	f := p.fault.Load()
	if f == nil || !strings.Contains(*f, "cut after") {
		t.Fatalf("fault = %v, want the cut frame named", f)
	}
	if err := p.send(&ipc.Message{Type: "drain"}); !errors.Is(err, errFrameCut) {
		t.Fatalf("send after a cut frame: %v, want %v", err, errFrameCut)
	}
}
