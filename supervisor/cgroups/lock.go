package cgroups

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/procnet"
)

// ErrInUse is returned by Open when a live process holds the runtime's
// cgroup subtree: another wattd runs the same project (the subtree is named
// after it), whatever its runtime directory, mount or network namespace.
var ErrInUse = errors.New("the runtime's cgroups belong to a running wattd")

// lockRuntime takes an exclusive flock on the runtime's directory in the
// memory hierarchy (v1) or the unified one (v2), held until Close. The
// subtree is what a start sweeps as a dead instance's leftovers, so only
// the holder of the lock may: a second wattd of the project would
// otherwise kill the first one's workers and remove its groups. The lock
// is on the directory's inode, which every namespace that shares the
// cgroup filesystem shares, and the kernel drops it with the process.
func (m *Manager) lockRuntime() error {
	dir := m.runtime[m.lockKey()]
	if dir == "" {
		return nil
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cgroups: lock %s: %w", dir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := lockHolder(fd)
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s is held by %s; stop that wattd first", ErrInUse, dir, holder)
		}
		return fmt.Errorf("cgroups: lock %s: %w", dir, err)
	}
	m.lockFD = fd
	return nil
}

// lockKey is the key in m.runtime of the directory the lock is on.
func (m *Manager) lockKey() string {
	if m.version == V2 {
		return ""
	}
	return "memory"
}

// unlockRuntime lets the lock go (Close, after the subtree is removed).
func (m *Manager) unlockRuntime() {
	if m.lockFD > 0 {
		unix.Close(m.lockFD)
		m.lockFD = 0
	}
}

// lockHolder names the process that holds a flock on fd's inode, from
// /proc/locks (whose pids are this namespace's), or says it is unknown.
func lockHolder(fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "another process"
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return "another process"
	}
	ino := ":" + strconv.FormatUint(st.Ino, 10)
	for _, line := range strings.Split(string(b), "\n") {
		// "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" || !strings.HasSuffix(f[5], ino) {
			continue
		}
		if pid, err := strconv.Atoi(f[4]); err == nil && pid > 0 {
			return fmt.Sprintf("pid %d (%s)", pid, procnet.Command(pid))
		}
	}
	return "a process this pid namespace cannot see"
}
