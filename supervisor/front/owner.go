package front

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/wattd/wattd/supervisor/procnet"
)

// ErrForeignListener is wrapped by the errors of a readiness probe that
// found a socket listening on the worker's port that no process of the
// worker holds: another program took the port, and a connect that succeeds
// proves nothing about the worker.
var ErrForeignListener = errors.New("front: port held by a program outside the worker")

// errNotListening: nothing listens on the port yet.
var errNotListening = errors.New("front: nothing listens on the port")

// checkOwner says whether the sockets listening where a connection to
// 127.0.0.1:port lands all belong to the process tree of pid root: its
// process group (npm -> sh -> node keep the group wattd gave the worker) or
// its descendants (a child that made a group of its own). It returns nil
// when they do, errNotListening when there is none, and an error wrapping
// ErrForeignListener naming the holder when one is someone else's.
func checkOwner(port, root int) error {
	socks, err := procnet.Listening(port)
	if err != nil {
		return fmt.Errorf("front: %w", err)
	}
	var inodes []uint64
	for _, s := range socks {
		// Where a connection to 127.0.0.1 lands: 127.0.0.1 itself or a
		// wildcard (:: is dual-stack unless IPV6_V6ONLY, which /proc does
		// not show; counted, to be safe).
		if a := s.Addr.Addr(); a.IsUnspecified() || a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
			inodes = append(inodes, s.Inode)
		}
	}
	if len(inodes) == 0 {
		return errNotListening
	}
	held := procnet.SocketsOf(procnet.Tree(root))
	var foreign []uint64
	for _, ino := range inodes {
		if !held[ino] {
			foreign = append(foreign, ino)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	// The two reads are not one snapshot: a worker that exited between
	// them left its socket in the first and no process in the second.
	// What is foreign must still listen after the second read, from a
	// worker that is still alive.
	if st, ok := procnet.ReadStat(root); !ok || st.State == 'Z' {
		return errNotListening
	}
	again, err := procnet.Listening(port)
	if err != nil {
		return fmt.Errorf("front: %w", err)
	}
	foreign = slices.DeleteFunc(foreign, func(ino uint64) bool {
		return !slices.ContainsFunc(again, func(s procnet.Socket) bool { return s.Inode == ino })
	})
	if len(foreign) == 0 {
		return errNotListening
	}
	return &foreignError{port: port, inodes: foreign}
}

// foreignError names the holders only when it is printed: finding them
// means reading every process's fds, too much for every probe.
type foreignError struct {
	port   int
	inodes []uint64
}

func (e *foreignError) Error() string {
	procs := procnet.Holders(e.inodes)
	names := make([]string, 0, len(e.inodes))
	for _, ino := range e.inodes {
		if h, ok := procs[ino]; ok {
			names = append(names, h.String())
		} else {
			names = append(names, fmt.Sprintf("a process wattd cannot see (socket inode %d)", ino))
		}
	}
	slices.Sort(names)
	return fmt.Sprintf("%v: 127.0.0.1:%d is held by %s", ErrForeignListener, e.port, strings.Join(names, ", "))
}

func (e *foreignError) Unwrap() error { return ErrForeignListener }
