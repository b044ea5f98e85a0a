// Package exechelper is wattd's exec helper: the step between the fork of a
// worker and the exec of its program. wattd starts a worker as itself,
// re-executed with argv[1] = Arg, unless the worker needs none of what the
// helper does (a Node.js worker on cgroup v2 or without cgroups, see
// supervisor's workerCommand); the helper moves itself into the worker's
// cgroups (so the program's first instruction runs within its limits), sets
// LISTEN_PID to its own pid (which the parent cannot know before the fork,
// and which the program keeps across the exec) and execs the program.
//
// The helper runs from this package's init function, not from main, so
// that it execs the worker before the rest of wattd initialises: the JSON
// schema compiler, the metrics, tracing and CLI libraries spend tens of
// milliseconds in their init functions on every start (far more on a busy
// machine), and a crashed worker's replacement would wait for them. Go
// runs a package's init as soon as the packages it imports are
// initialised, the lexically first of the ready packages first (the Go
// specification, "Package initialization"). This package therefore imports
// only errors, os, runtime and syscall, which every Go program initialises
// within its first steps; strings and strconv, ready only after most of the
// standard library (their names sort late), are replaced by the few lines
// below. TestHelperSkipsWattdInit keeps it that way.
package exechelper

import (
	"errors"
	"os"
	"runtime"
	"syscall"
)

// Arg is argv[1] of wattd when it runs as the exec helper.
const Arg = "__wattd-exec"

// EnvJoin lists the cgroup directories the helper joins before it execs
// the worker, separated by ':'. Join removes it, so the worker never sees
// it. (cgroups.EnvJoin is this name.)
const EnvJoin = "WATTD_CGROUP_JOIN"

// EnvListenPID is the systemd convention's LISTEN_PID (ipc.EnvListenPID):
// the pid the passed sockets are meant for.
const EnvListenPID = "LISTEN_PID"

func init() {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		Main(os.Args[2:])
	}
}

// Main is the whole exec helper; args are the worker's program and its
// arguments. It never returns: it execs the program, or exits with status
// 127 and the reason on stderr.
func Main(args []string) {
	// The thread that joins the cgroups (see join) is the one that execs.
	runtime.LockOSThread()
	// Into the worker's cgroup before anything of the worker runs, so its
	// limits hold from its first instruction.
	if err := joinEnv(true); err != nil {
		fail("wattd: cannot start worker: " + err.Error())
	}
	if len(args) == 0 {
		fail("wattd exec helper: no command")
	}
	file, err := lookPath(args[0])
	if err != nil {
		fail("wattd: cannot start worker: " + err.Error())
	}
	err = syscall.Exec(file, args, ProgramEnv(os.Environ(), os.Getpid()))
	fail("wattd: cannot start worker: exec " + file + ": " + err.Error())
}

// fail reports why the worker cannot start, with status 127 as a shell
// does for a command it cannot run.
func fail(msg string) {
	_, _ = os.Stderr.WriteString(msg + "\n")
	os.Exit(127)
}

// ProgramEnv is the environment the helper, whose own environment is env
// and pid pid, gives the worker's program: the cgroups to join are
// consumed, and LISTEN_PID is added.
func ProgramEnv(env []string, pid int) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !hasPrefix(kv, EnvJoin+"=") {
			out = append(out, kv)
		}
	}
	return append(out, EnvListenPID+"="+itoa(pid))
}

// Join moves the calling process into the cgroups named by EnvJoin, then
// removes EnvJoin from its environment. When it fails the helper must not
// exec, or the worker would run outside its limits. Without EnvJoin it
// does nothing.
func Join() error { return joinEnv(false) }

// joinEnv is Join; with thread, which the helper sets, a v1 group takes
// the calling thread alone (see join), which must then be the thread that
// execs (runtime.LockOSThread).
func joinEnv(thread bool) error {
	v, ok := os.LookupEnv(EnvJoin)
	if !ok {
		return nil
	}
	if err := os.Unsetenv(EnvJoin); err != nil {
		return err
	}
	pid := itoa(os.Getpid())
	for _, dir := range split(v) {
		if dir == "" {
			continue
		}
		if err := join(dir, pid, thread); err != nil {
			return &os.PathError{Op: "join cgroup", Path: dir, Err: err}
		}
	}
	return nil
}

// join moves the caller into the cgroup directory dir: the process
// (cgroup.procs), or with thread, in a v1 directory (which has a tasks
// file), the calling thread alone ("0" in tasks). The exec that follows
// on that thread makes the worker's process of it only, so the whole
// worker is in the group from its first instruction, and its memory is
// charged there (the new address space belongs to the thread that
// execs). Moving a whole process takes the kernel's lock on every thread
// group, whose write side waits for an RCU grace period: measured on a
// 2-CPU machine, 4 to 16 ms for the first controller of every worker
// start, against 0.3 ms for the thread. A v2 directory has no tasks file
// (a thread may join only a threaded group): the process moves.
func join(dir, pid string, thread bool) error {
	if thread {
		err := writeFile(dir+"/tasks", "0")
		if !errors.Is(err, syscall.ENOENT) {
			return err
		}
	}
	return writeFile(dir+"/cgroup.procs", pid)
}

// writeFile writes s to the existing file path, in one write. No
// O_CREAT: a group that vanished must fail the join, not leave a stray
// file.
func writeFile(path, s string) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_, err = syscall.Write(fd, []byte(s))
	if cerr := syscall.Close(fd); err == nil {
		err = cerr
	}
	return err
}

// lookPath finds the program as os/exec.LookPath does on Unix: a name with
// a slash is taken as it is, any other is searched in the directories of
// PATH, where an empty entry means the working directory and, as in
// os/exec, a program found through a relative entry is refused.
func lookPath(file string) (string, error) {
	if hasSlash(file) {
		if err := executable(file); err != nil {
			return "", errors.New("exec: \"" + file + "\": " + err.Error())
		}
		return file, nil
	}
	var dirs []string
	if path := os.Getenv("PATH"); path != "" { // an empty PATH has no entries
		dirs = split(path)
	}
	for _, dir := range dirs {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + file
		if executable(p) != nil {
			continue
		}
		if p[0] != '/' {
			return "", errors.New("exec: \"" + p + "\": cannot run executable found relative to current directory")
		}
		return p, nil
	}
	return "", errors.New("exec: \"" + file + "\": executable file not found in $PATH")
}

// executable says why file cannot be run, or nil: it must be a file (not a
// directory) with an execute bit. execve has the last word.
func executable(file string) error {
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return syscall.EISDIR
	}
	if st.Mode().Perm()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}

func hasPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && s[:len(prefix)] == prefix
}

func hasSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// split cuts a ':'-separated list, empty entries included.
func split(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
