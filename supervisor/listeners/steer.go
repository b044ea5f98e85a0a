package listeners

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Steering the entrypoint's SO_REUSEPORT group while its size changes.
//
// The kernel spreads new connections over every socket of the group. A
// socket that is about to go (scale down) would take connections that its
// draining worker no longer accepts, and the kernel resets them when the
// last copy closes; a socket just opened (scale up) would queue connections
// until its worker is ready. While the group changes, wattd attaches a
// classic BPF program to the group that picks only among the sockets whose
// workers serve, and detaches it once the group is settled.
//
// The program names sockets by their position in the kernel's array of the
// group, which is the order in which they started listening, except that
// closing one moves the last into its place. PortGroup mirrors that order.
// Should the mirror be wrong (a copy of a closed socket kept open by some
// grandchild), the program still returns a position of the group: a
// position past its end makes the kernel fall back to its own hash.

// PortGroup mirrors the kernel's order of the sockets wattd owns in one
// SO_REUSEPORT group. It is safe for concurrent use.
type PortGroup struct {
	mu    sync.Mutex
	socks []uint64 // inodes, in the kernel's order
}

// Joined records a socket that just started listening.
func (g *PortGroup) Joined(inode uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.socks = append(g.socks, inode)
}

// Left records a socket whose last copy was closed: the kernel moves the
// last socket of the group into its place.
func (g *PortGroup) Left(inode uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(g.socks, inode)
	if i < 0 {
		return
	}
	last := len(g.socks) - 1
	g.socks[i] = g.socks[last]
	g.socks = g.socks[:last]
}

// Positions returns the positions of the given sockets in the group, in
// the group's order; sockets not in it are left out.
func (g *PortGroup) Positions(inodes map[uint64]bool) []uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []uint32
	for i, ino := range g.socks {
		if inodes[ino] {
			out = append(out, uint32(i))
		}
	}
	return out
}

// Len is the number of sockets in the group.
func (g *PortGroup) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.socks)
}

// Offsets of the TCP source port from the network header, for a header
// without options: SYN packets carry none on Linux.
const (
	skfNetOff   = -0x100000 // SKF_NET_OFF
	sportIPv4   = 20
	sportIPv6   = 40
	maxSteerSet = 1000 // two instructions each, within cBPF's 4096
)

// ErrNoServingSocket is returned by Steer when allowed is empty.
var ErrNoServingSocket = errors.New("no socket left to steer connections to")

// steerProgram picks allowed[hash(sport) % len(allowed)]. The client's
// source port is what varies between connections; it is mixed first
// because Linux gives connect() even ports, so the port itself would fall
// on every second socket only.
func steerProgram(ipv6 bool, allowed []uint32) []unix.SockFilter {
	off := int32(skfNetOff + sportIPv4)
	if ipv6 {
		off = skfNetOff + sportIPv6
	}
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: uint32(off)},
		{Code: unix.BPF_ALU | unix.BPF_MUL | unix.BPF_K, K: 2654435761}, // Knuth's multiplicative hash
		{Code: unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K, K: 16},
		{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(len(allowed))},
	}
	for i, pos := range allowed {
		prog = append(prog,
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(i), Jt: 0, Jf: 1},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: pos},
		)
	}
	return append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: allowed[0]})
}

// Steer makes the SO_REUSEPORT group of f hand new connections only to
// the sockets at the allowed positions (see PortGroup), until Unsteer.
func Steer(f *os.File, ipv6 bool, allowed []uint32) error {
	if len(allowed) == 0 {
		return ErrNoServingSocket
	}
	if len(allowed) > maxSteerSet {
		return fmt.Errorf("steer connections: %d sockets is more than %d", len(allowed), maxSteerSet)
	}
	prog := steerProgram(ipv6, allowed)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("steer connections: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog)
	}); err != nil {
		return fmt.Errorf("steer connections: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("steer connections: attach reuseport program: %w", serr)
	}
	return nil
}

// Unsteer gives the choice of socket back to the kernel's hash.
func Unsteer(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("unsteer connections: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
	}); err != nil {
		return fmt.Errorf("unsteer connections: %w", err)
	}
	if serr != nil && !errors.Is(serr, unix.ENOENT) {
		return fmt.Errorf("unsteer connections: detach reuseport program: %w", serr)
	}
	return nil
}
