// Package nproc keeps wattd alive under a max user processes limit
// (RLIMIT_NPROC, `ulimit -u`). The kernel counts every thread of every
// process of a user against it, wattd's own and its workers' alike; a
// Node.js worker alone runs 7 to 11 threads. When the workers take the
// last of it, the Go runtime of wattd cannot start a thread the moment it
// needs one (a goroutine blocked in a system call, the scheduler handing
// off a processor), and a Go runtime that cannot start a thread ends the
// process (`fatal error: newosproc`): the supervisor would die of its
// workers' load and take them with it.
//
// Reserve makes the Go runtime start a number of threads at start, while
// the limit still leaves room, and keep them idle (the runtime never ends
// an idle thread), so that it takes those later instead of asking the
// kernel for new ones. The limit itself is left as it is, for wattd and
// its workers.
package nproc

import (
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/procnet"
)

// Limit returns the soft RLIMIT_NPROC, and false when it does not apply to
// wattd: the limit is infinite, cannot be read, or wattd's real user is
// root, whom the kernel does not hold to it.
func Limit() (uint64, bool) {
	if os.Getuid() == 0 {
		return 0, false
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &lim); err != nil || lim.Cur == ^uint64(0) {
		return 0, false
	}
	return lim.Cur, true
}

// Used counts the threads of the processes whose real user is wattd's,
// what the kernel holds against RLIMIT_NPROC (within wattd's user
// namespace), and false when /proc cannot be read.
func Used() (int, bool) {
	return procnet.UserThreads(os.Getuid())
}

// Reserve has the Go runtime start up to n threads beyond those it has and
// keep them idle, taking no more than a quarter of the room the limit
// leaves (the rest is the workers'). It returns how many it started: 0 when the
// limit does not apply or leaves no room.
func Reserve(n int) int {
	lim, ok := Limit()
	if !ok || n <= 0 {
		return 0
	}
	used, ok := Used()
	if !ok {
		return 0
	}
	room := int(lim) - used
	if room/4 < n {
		n = room / 4
	}
	if n <= 0 {
		return 0
	}
	// Each goroutine locked to its thread and parked keeps that thread to
	// itself, so n of them at once need n threads. Unlocked, they exit
	// and their threads join the runtime's idle ones.
	var locked sync.WaitGroup
	release := make(chan struct{})
	locked.Add(n)
	for range n {
		go func() {
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	close(release)
	return n
}
