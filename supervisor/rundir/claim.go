package rundir

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrProjectRunning is returned by Create when another live wattd already
// runs the project, from another runtime base.
var ErrProjectRunning = errors.New("the project is already running")

// The runtime directory's lock turns away a second wattd for the same
// project only within one base ($WATTD_RUNTIME_DIR, $XDG_RUNTIME_DIR/wattd,
// /run/wattd...), and a root login shell and a system service have
// different ones. What a runtime owns outside its directory is named after
// the project alone, though: its cgroup subtree, and the marks that find its
// workers' leftovers. A start that took those for a dead instance's
// leftovers would kill the live instance's workers and delete its cgroups.
//
// So a runtime also claims its project machine-wide: it listens on an
// abstract Unix socket named after the directory's name (the project). The
// kernel frees the name when the process ends, however it ends, so a held
// name means a live owner, and the owner's pid is on the socket
// (SO_PEERCRED). Abstract names belong to the network namespace, which a
// container's cgroups and processes do not outlive.
const claimPrefix = "@wattd/project/"

// claim takes the project name for this process. It fails with
// ErrProjectRunning, naming the holder's pid when the kernel can tell it,
// when another process holds it.
func claim(name string) (*net.UnixListener, error) {
	addr := &net.UnixAddr{Name: claimPrefix + name, Net: "unix"}
	l, err := net.ListenUnix("unix", addr)
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		return nil, fmt.Errorf("claim the project name %q: %w", name, err)
	}
	who := "another wattd"
	if pid := claimHolder(addr); pid > 0 {
		who = fmt.Sprintf("another wattd (pid %d%s)", pid, cmdline(pid))
	}
	return nil, fmt.Errorf("%w: %s runs it, from another runtime directory; stop that one first (`wattd ctl stop`, with its %s or --socket)",
		ErrProjectRunning, who, EnvRuntimeDir)
}

// claimHolder is the pid of the process listening on addr, 0 if unknown.
func claimHolder(addr *net.UnixAddr) int {
	c, err := net.DialUnix("unix", nil, addr)
	if err != nil {
		return 0
	}
	defer c.Close()
	return PeerPID(c)
}

// PeerPID is the pid of the process at the other end of a Unix socket
// connection, as this process sees it: the kernel translates it into this
// process's pid namespace, where the pid a wattd in a container reports of
// itself is its own namespace's (1 as the container's init). 0 when the
// kernel cannot tell or the peer is not visible from here.
func PeerPID(c *net.UnixConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	_ = rc.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

// cmdline is ": <command line>" of pid, or "" when it cannot be read.
func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return ""
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return ": " + s
}
