// Package reaper waits for the orphaned processes that end up as wattd's
// children, so they do not stay zombies: every orphan of a container whose
// PID 1 is wattd, and, since wattd makes itself a child subreaper, every
// orphaned descendant of its workers.
//
// wattd's own children (its workers) are not reaped here: os/exec waits for
// each of them, and supervision reads the exit status that wait returns. A
// blanket wait(-1) would race it and steal that status. So every process
// wattd starts goes through Start, which records the child's pid while it
// holds a lock that a reaping pass takes too, and a pass waits only for
// zombie children whose pid is not recorded: a child cannot be forked and
// still be unrecorded while a pass looks.
package reaper

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

var (
	// forking is held shared by Start while it forks and records a child,
	// and exclusively by a reaping pass.
	forking sync.RWMutex
	// own holds the pids of the children that Start started and whose
	// wait has not been reported with Forget.
	own sync.Map
)

// Start starts cmd and records its pid as one that the reaper leaves
// alone. Call Forget with the pid once cmd.Wait has returned.
func Start(cmd *exec.Cmd) error {
	forking.RLock()
	defer forking.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	own.Store(cmd.Process.Pid, struct{}{})
	return nil
}

// Forget is called once the child started with Start has been waited for.
func Forget(pid int) { own.Delete(pid) }

// rescanEvery bounds how long a zombie can wait: SIGCHLDs coalesce, and an
// orphan whose pid was still recorded as a worker's (a reused pid, between
// the worker's wait and Forget) is skipped by the pass that saw it.
const rescanEvery = 5 * time.Second

// Run makes wattd a child subreaper (unless it is PID 1, which reaps by
// nature) and reaps orphans on every SIGCHLD until ctx is done. It returns
// an error only when wattd could not become a subreaper.
func Run(ctx context.Context, log *zap.Logger) error {
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("become a child subreaper: %w", err)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	tick := time.NewTicker(rescanEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sigs:
		case <-tick.C:
		}
		for _, r := range Reap() {
			log.Debug("reaped an orphaned process", zap.Int("pid", r.PID), zap.String("status", r.Status))
		}
	}
}

// AwaitExit returns once the child pid has exited, without waiting for it:
// the caller's cmd.Wait then returns at once, with the exit status. A
// goroutine blocked in wait4 or waitid holds an OS thread for as long as
// the child lives, so a supervisor of hundreds of workers would keep
// hundreds of threads (and every reaping pass reads each thread's list of
// children); a pidfd waits in the runtime's poller and holds none. Where
// pidfds cannot be polled (Linux before 5.10) it returns at once, and
// Wait blocks a thread as it always did.
func AwaitExit(pid int) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	// The poller calls this again each time the pidfd reads as ready, which
	// it does once the process has exited; WNOWAIT leaves the zombie for
	// Wait. An error (no such child, or no P_PIDFD before Linux 5.4) ends
	// the wait too, and Wait reports what it finds.
	_ = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		return err != nil || info.Signo != 0
	})
}

// Reaped is one orphan that a pass waited for.
type Reaped struct {
	PID    int
	Status string // "exit status 0", "signal: killed"
}

// Reap waits for every zombie child of this process that Start did not
// start, and returns them.
//
// The look through every thread's children runs without the lock: most
// SIGCHLDs are a worker's exit, whose replacement's Start would otherwise
// wait for it. A zombie it finds is a candidate only. Under the lock,
// where every child Start forked is recorded, a candidate that Start
// turns out to own is left alone, and the wait does not block (WNOHANG):
// a pid that was waited for meanwhile and taken by a process still
// running is not waited for.
func Reap() []Reaped {
	candidates := zombieChildren(isOwn)
	if len(candidates) == 0 {
		return nil
	}
	forking.Lock()
	defer forking.Unlock()
	var out []Reaped
	for _, pid := range candidates {
		if isOwn(pid) {
			continue
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != nil || got != pid {
			continue
		}
		out = append(out, Reaped{PID: pid, Status: describe(ws)})
	}
	return out
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// isOwn tells whether pid is a child that Start started and whose wait is
// still to be reported.
func isOwn(pid int) bool {
	_, mine := own.Load(pid)
	return mine
}

// zombieChildren lists this process's children that have exited and not
// been waited for, leaving out those skip names. Children belong to the
// thread that forked them (or that inherited them as orphans), so every
// thread's list is read. skip is asked before the child's state is read:
// with hundreds of workers, all of them children, reading each one's
// /proc stat on every pass would be most of what an idle wattd does.
func zombieChildren(skip func(pid int) bool) []int {
	files, _ := filepath.Glob("/proc/self/task/*/children")
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(field)
			if err == nil && !skip(pid) && isZombie(pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// isZombie reads the state field of /proc/PID/stat, which follows the
// command name in parentheses (a name that may itself hold ")").
func isZombie(pid int) bool {
	b, err := readStat(pid)
	return err == nil && state(string(b)) == 'Z'
}

// readStat reads /proc/PID/stat; a variable so that a test can count the
// reads.
var readStat = func(pid int) ([]byte, error) {
	return os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
}

func state(stat string) byte {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0
	}
	return stat[i+2]
}
