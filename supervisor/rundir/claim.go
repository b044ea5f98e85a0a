package rundir

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/procnet"
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
// abstract Unix socket named after the directory's name (the project) and
// the mount and cgroup namespaces it runs in (two containers with a project
// at the same path share neither files nor cgroups). The kernel frees the
// name when the process ends, however it ends, so a held name means a live
// owner, and the owner's pid and uid are on the socket (SO_PEERCRED).
// Abstract names belong to the network namespace.
//
// Any local user can bind an abstract name, so a holder that is neither
// this user nor root, or that does not answer on it as a wattd does,
// cannot be a wattd whose cgroups or workers this one could touch: it is
// ignored, with a warning, and this runtime goes on without a claim.
//
// The claim is the early, friendly check, and the one of a runtime without
// cgroups. It does not reach across network namespaces (a service with
// PrivateNetwork=yes): what guards the cgroups themselves is the lock on
// the runtime's cgroup directory (cgroups.ErrInUse), which every namespace
// that shares the cgroup filesystem sees.
const claimPrefix = "@wattd/project/"

// claimAddr is the abstract address of the claim on the project name.
func claimAddr(name string) *net.UnixAddr {
	return &net.UnixAddr{Name: claimPrefix + name + "/" + nsID("mnt") + "-" + nsID("cgroup"), Net: "unix"}
}

// nsID is the inode of this process's namespace of kind, "" if unknown.
func nsID(kind string) string {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/"+kind, &st); err != nil {
		return ""
	}
	return fmt.Sprint(st.Ino)
}

// claim takes the project name for this process. It fails with
// ErrProjectRunning, naming the holder's pid when the kernel can tell it,
// when another process of this user or root holds it. warning is set when
// a process of another user holds the name and the runtime goes on
// without the claim (l is nil then).
func claim(name string) (l *net.UnixListener, warning string, err error) {
	addr := claimAddr(name)
	l, err = net.ListenUnix("unix", addr)
	if err == nil {
		go drainClaim(l)
		return l, "", nil
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		return nil, "", fmt.Errorf("claim the project name %q: %w", name, err)
	}
	pid, uid, known := claimHolder(addr)
	if !known {
		// A wattd listens on its claim and accepts what connects: a
		// holder that does not is no wattd.
		return nil, fmt.Sprintf("the claim on this project (abstract socket %s) is held by a process that does not answer on it, which is no wattd; going on without it", addr.Name), nil
	}
	if uid != os.Getuid() && uid != 0 {
		return nil, fmt.Sprintf("the claim on this project (abstract socket %s) is held by pid %d of uid %d, which can be no wattd of this user or root's; going on without it", addr.Name, pid, uid), nil
	}
	who := "another wattd"
	if pid > 0 {
		who = fmt.Sprintf("another wattd (pid %d: %s)", pid, procnet.Command(pid))
	}
	return nil, "", fmt.Errorf("%w: %s runs it, from another runtime directory; stop that one first (`wattd ctl stop`, with its %s or --socket)",
		ErrProjectRunning, who, EnvRuntimeDir)
}

// drainClaim accepts and closes what connects to the claim (the probes of
// claimHolder), so that they never fill its backlog; it ends with l.
func drainClaim(l *net.UnixListener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond) // out of descriptors: no busy loop
			continue
		}
		c.Close()
	}
}

// claimHolder is the pid and uid of the process listening on addr; known
// is false when the kernel does not tell.
func claimHolder(addr *net.UnixAddr) (pid, uid int, known bool) {
	c, err := net.DialUnix("unix", nil, addr)
	if err != nil {
		return 0, 0, false
	}
	defer c.Close()
	cred := peerCred(c)
	if cred == nil {
		return 0, 0, false
	}
	return int(cred.Pid), int(cred.Uid), true
}

// PeerPID is the pid of the process at the other end of a Unix socket
// connection, as this process sees it: the kernel translates it into this
// process's pid namespace, where the pid a wattd in a container reports of
// itself is its own namespace's (1 as the container's init). 0 when the
// kernel cannot tell or the peer is not visible from here.
func PeerPID(c *net.UnixConn) int {
	if cred := peerCred(c); cred != nil {
		return int(cred.Pid)
	}
	return 0
}

// peerCred is the SO_PEERCRED of c, nil if unknown.
func peerCred(c *net.UnixConn) *unix.Ucred {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var cred *unix.Ucred
	_ = rc.Control(func(fd uintptr) {
		if uc, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			cred = uc
		}
	})
	return cred
}
