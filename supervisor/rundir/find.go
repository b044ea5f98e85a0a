package rundir

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotRunning is matched by Find's error when no live runtime exists.
var ErrNotRunning = errors.New("no wattd runtime is running")

// ErrUnreachable is matched by Find's error when the runtime for the
// current directory (or of the name asked for) is running but does not
// answer on its admin socket: the socket was deleted (a tmp cleaner under
// $TMPDIR) or the process is wedged. Find then picks no other runtime.
var ErrUnreachable = errors.New("the wattd runtime does not answer on its admin socket")

// ErrOtherUsers is matched by Find's error when the runtime for the
// current directory is root's and the caller is not root.
var ErrOtherUsers = errors.New("the project's wattd is root's, not yours")

// ErrAmbiguous is matched by Find's error when several runtimes are live
// and none is for the current directory.
var ErrAmbiguous = errors.New("several wattd runtimes are running")

// probeTimeout bounds the liveness check of one admin socket. A connect to
// a listening Unix socket completes in the kernel without the server's
// help, so this only matters for a wedged, full backlog.
const probeTimeout = time.Second

// FindOptions says how `wattd ctl` chooses a runtime.
type FindOptions struct {
	Socket string // --socket: used as is when set
	Name   string // --name: the live runtime of that name
	Cwd    string // directory to match against project directories; "" means os.Getwd
}

// Find returns the admin socket `wattd ctl` should talk to: opts.Socket if
// set; else the live runtime called opts.Name if that is set; else the live runtime whose project directory is Cwd or the closest
// ancestor of it; else the only live runtime. Otherwise the error matches
// ErrNotRunning or ErrAmbiguous and says what to do.
func Find(opts FindOptions) (string, error) {
	if opts.Socket != "" {
		return opts.Socket, nil
	}
	cwd := opts.Cwd
	if cwd == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("find wattd runtime: current directory: %w", err)
		}
		cwd = wd // the shell's $PWD when it names this directory: its symlinks kept
	}
	here := place{real: canonical(cwd), given: absolute(cwd)}

	live, err := List()
	if err != nil {
		return "", err
	}
	if opts.Name != "" {
		s, err := findByName(live, opts.Name)
		if errors.Is(err, ErrNotRunning) {
			if i, ok := unreachable(live, func(i Info) bool { return i.Name == opts.Name }); ok {
				return "", unreachableError(i)
			}
		}
		return s, err
	}
	if s, ok := pick(live, here); ok {
		return s, nil
	}
	// The project of this directory runs but cannot be reached: falling
	// back to "the only runtime" would send this command (a stop, a
	// reload) to another project.
	if i, ok := unreachable(live, func(i Info) bool { return here.in(i) > 0 }); ok {
		return "", unreachableError(i)
	}
	switch len(live) {
	case 0:
		if err := projectNotReachable(live, here); err != nil {
			return "", err
		}
		base, _ := basePath()
		return "", fmt.Errorf("%w (no live admin socket under %s); start one with wattd start, or pass --socket if it uses another runtime directory%s", ErrNotRunning, base, rootHint(base))
	case 1:
		// Nor when this directory's project ran and is no longer
		// reachable by its directory: the only runtime left is another
		// project's (a unit's ExecStop=wattd ctl stop after its wattd was
		// killed would stop that one).
		if err := projectNotReachable(live, here); err != nil {
			return "", err
		}
		return live[0].Socket, nil
	}
	return "", fmt.Errorf("%w and none is for %s; choose one with --name NAME (or --socket PATH), or run wattd ctl from its project directory:%s", ErrAmbiguous, cwd, describe(live))
}

// unreachable returns a runtime directory under the base that match
// selects, that is not among the live ones, and whose wattd process is
// still alive (runtime.json's pid): a running wattd whose admin socket is
// gone or does not accept.
func unreachable(live []Info, match func(Info) bool) (Info, bool) {
	return notLive(live, func(i Info) bool { return i.PID > 0 && match(i) && held(i.Dir, i.PID) })
}

// notLive returns the first runtime directory under the base, not among
// the live ones, whose runtime.json reads and that keep selects, with its
// Dir and Socket filled in.
func notLive(live []Info, keep func(Info) bool) (Info, bool) {
	base, err := basePath()
	if err != nil {
		return Info{}, false
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return Info{}, false
	}
	isLive := map[string]bool{}
	for _, i := range live {
		isLive[i.Dir] = true
	}
	for _, e := range entries {
		dir := filepath.Join(base, e.Name())
		if !e.IsDir() || isLive[dir] || isSocketsDir(e.Name()) {
			continue
		}
		info, err := readInfo(dir)
		if err != nil {
			continue
		}
		info.Dir, info.Socket = dir, filepath.Join(dir, adminSocketName)
		if keep(info) {
			return info, true
		}
	}
	return Info{}, false
}

// held reports whether a running wattd holds the runtime directory: its
// lock file is locked (in /proc/locks), which a crashed wattd's is not,
// even when its pid has gone to another process since. Where /proc/locks
// cannot be read, whether pid is alive.
func held(dir string, pid int) bool {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, lockFileName), &st); err != nil {
		return false
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		err := syscall.Kill(pid, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
	return flockHeld(string(locks), unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
}

// flockHeld finds a flock() lock on the file (device major:minor, inode)
// in the text of /proc/locks, whose lines read
// "1: FLOCK  ADVISORY  WRITE 4711 fd:01:1234 0 EOF".
func flockHeld(locks string, major, minor uint32, ino uint64) bool {
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	for line := range strings.SplitSeq(locks, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == want {
			return true
		}
	}
	return false
}

// projectNotReachable says why the project of the place here cannot be
// reached when it had a runtime: its runtime directory is left from a
// wattd that ended without removing it (killed), or it is gone while the
// project's wattd runs (a cleaner removed it: wattd makes it again
// within its check period), which the project's claim tells. nil when
// neither is so.
func projectNotReachable(live []Info, here place) error {
	base, err := basePath()
	if err != nil {
		return nil
	}
	if info, ok := notLive(live, func(i Info) bool { return here.in(i) > 0 && !held(i.Dir, i.PID) }); ok {
		return fmt.Errorf("%w for %s: its wattd (pid %d) ended without removing its runtime directory %s (killed?). wattd ctl does not fall back to another project's runtime: name one with --name NAME (wattd ctl list) or --socket PATH. The project's next wattd start removes the directory",
			ErrNotRunning, info.ProjectDir, info.PID, info.Dir)
	}
	for dir := here.real; ; dir = filepath.Dir(dir) {
		pid, uid, ok := claimHolder(claimAddr(dirName(dir)))
		if ok && uid != os.Getuid() && uid == 0 {
			// Root's wattd, asked about by another user: its runtime is
			// in root's directory, not this user's.
			return fmt.Errorf("%w: the wattd of %s (pid %d) runs as root, and its runtime directory is root's, not under %s: run wattd ctl as root (sudo wattd ctl …)",
				ErrOtherUsers, dir, pid, base)
		}
		if ok && uid == os.Getuid() {
			return fmt.Errorf("%w: the wattd of %s (pid %d) is running, but no runtime directory of it is under %s: it was removed (by a cleaner? wattd makes it again within 10 s), or that wattd uses another one (%s). wattd ctl does not fall back to another project's runtime. Signals still reach it: kill -TERM %d stops it gracefully, kill -HUP %d reloads its configuration",
				ErrUnreachable, dir, pid, base, EnvRuntimeDir, pid, pid)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// checkListedDir checks a base directory whose runtimes are listed: as
// one wattd would make its runtime in (checkPrivateDir), except that root,
// who may administer every user's runtimes, lists another user's base
// (WATTD_RUNTIME_DIR=/tmp/wattd-1001 wattd ctl list) as long as nobody
// but its owner can write to it.
func checkListedDir(dir string) error {
	if os.Geteuid() != 0 {
		fi, err := os.Stat(dir)
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%w: runtime directory %s is in a directory uid %d may not enter, so the wattd that uses it is another user's (root's?): run wattd ctl as that user (sudo wattd ctl …), or set %s to a directory of yours for your own runtimes",
				ErrOtherUsers, dir, os.Geteuid(), EnvRuntimeDir)
		}
		if err == nil && fi.IsDir() && owner(fi) == 0 && fi.Mode().Perm()&0o022 == 0 {
			// Root's own directory (WATTD_RUNTIME_DIR exported in a
			// shared profile, a service's setting copied to a shell):
			// the runtimes in it are root's, which only root may
			// administer, not a directory this user should fix.
			return fmt.Errorf("%w: runtime directory %s is root's, so the wattd that uses it runs as root: run wattd ctl as root (sudo wattd ctl …), or set %s to a directory of yours for your own runtimes",
				ErrOtherUsers, dir, EnvRuntimeDir)
		}
		return checkPrivateDir(dir, true)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("runtime directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("runtime directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("runtime directory %s has mode %04o and is group or world writable: its sockets could be anyone's", dir, perm)
	}
	return nil
}

func unreachableError(i Info) error {
	return fmt.Errorf("%w: the wattd of %s (pid %d) is running, but %s does not accept connections (deleted?); wattd ctl does not fall back to another runtime. Signals still reach it: kill -TERM %d stops it gracefully, kill -HUP %d reloads its configuration",
		ErrUnreachable, i.ProjectDir, i.PID, i.Socket, i.PID, i.PID)
}

// rootHint, for a user other than root whose runtime directory is not
// root's, says where root's runtimes are when that directory exists: a
// wattd started by root (a systemd service) is not listed to anyone else.
func rootHint(base string) string {
	if os.Geteuid() == 0 || base == rootBase {
		return ""
	}
	if _, err := os.Stat(rootBase); err != nil {
		return ""
	}
	return "; those root started are under " + rootBase + ", and only root can administer them (sudo wattd ctl ...)"
}

// pick returns the socket of the runtime whose project directory contains
// cwd most closely. Project directories cannot repeat: the runtime
// directory name is derived from the path and guarded by its lock.
func pick(live []Info, here place) (string, bool) {
	best, bestLen := "", 0
	for _, i := range live {
		if n := here.in(i); n > bestLen {
			best, bestLen = i.Socket, n
		}
	}
	return best, bestLen > 0
}

// place is the directory `wattd ctl` runs in, resolved and as the shell
// names it: after a deploy that moved /srv/app/current to a new release,
// the runtime started there is the one of the path, not of the release.
type place struct{ real, given string }

// in tells whether the place is i's project directory or below it, by
// the length of the directory that matched (0: no match), so that the
// closest project wins.
func (p place) in(i Info) int {
	n := 0
	if i.ProjectDir != "" && within(p.real, i.ProjectDir) {
		n = len(i.ProjectDir)
	}
	if i.ProjectPath != "" && within(p.given, i.ProjectPath) {
		n = max(n, len(i.ProjectPath))
	}
	return n
}

// within reports whether path is dir or below it. Both are clean and
// absolute; comparing with a trailing separator keeps /srv/app from
// claiming /srv/app2.
func within(path, dir string) bool {
	if path == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(path, dir)
}

// List returns the live runtimes under the base directory, sorted by
// project directory. A runtime is live when its admin socket accepts a
// connection; directories left by a crash are skipped. It neither creates
// the base directory nor deletes anything.
func List() ([]Info, error) {
	base, err := basePath()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		if cerr := checkListedDir(base); errors.Is(cerr, ErrOtherUsers) {
			return nil, cerr // another user's: say whose, not "permission denied"
		}
		return nil, fmt.Errorf("list runtimes in %s: %w", base, err)
	}
	// We are about to trust what the sockets say; a base directory others
	// can write to could hold a planted one.
	if err := checkListedDir(base); err != nil {
		return nil, err
	}
	var live []Info
	for _, e := range entries {
		if !e.IsDir() || isSocketsDir(e.Name()) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		sock := filepath.Join(dir, adminSocketName)
		ok, pid := alive(sock)
		if !ok {
			continue
		}
		// A live socket without a readable runtime.json is still listed:
		// it can be picked as the only runtime or with --socket.
		info, _ := readInfo(dir)
		info.Dir, info.Socket = dir, sock
		// As this process sees it (PeerPID); 0 when wattd is not visible
		// from this pid namespace, where runtime.json's would name
		// another process.
		info.PID = pid
		live = append(live, info)
	}
	sort.Slice(live, func(a, b int) bool {
		if live[a].ProjectDir != live[b].ProjectDir {
			return live[a].ProjectDir < live[b].ProjectDir
		}
		return live[a].Dir < live[b].Dir
	})
	return live, nil
}

func alive(sock string) (bool, int) {
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket {
		return false, 0
	}
	c, err := net.DialTimeout("unix", sock, probeTimeout)
	if err != nil {
		return false, 0
	}
	defer c.Close()
	return true, PeerPID(c.(*net.UnixConn))
}

// ErrNameTaken is matched by NameTaken's error.
var ErrNameTaken = errors.New("runtime name already in use")

// ValidName checks a runtime name: 1 to 64 letters, digits, '.', '_' or
// '-', so that it can be typed after --name and printed in a list as is.
func ValidName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("runtime name %q: want 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("runtime name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// NameTaken returns an error matching ErrNameTaken when a live runtime
// other than the one in directory self is called name. Names are how
// `wattd ctl --name` picks a runtime, so a second one of the same name is
// refused rather than left for ctl to trip over.
func NameTaken(name, self string) error {
	live, err := List()
	if err != nil {
		return err
	}
	for _, i := range live {
		if i.Name == name && i.Dir != self {
			return fmt.Errorf("%w: a wattd (pid %d) called %q already runs the project %s; choose another with --name", ErrNameTaken, i.PID, name, i.ProjectDir)
		}
	}
	return nil
}

// describe lists runtimes one a line, for error messages.
func describe(live []Info) string {
	var b strings.Builder
	for _, i := range live {
		name := i.Name
		if name == "" {
			name = "(no name)"
		}
		proj := i.ProjectDir
		if i.ProjectPath != "" {
			proj = i.ProjectPath
		}
		if proj == "" {
			proj = "(unknown project)"
		}
		fmt.Fprintf(&b, "\n  %s: %s (pid %d), socket %s", name, proj, i.PID, i.Socket)
	}
	return b.String()
}

// findByName returns the socket of the live runtime called name.
func findByName(live []Info, name string) (string, error) {
	var found []Info
	for _, i := range live {
		if i.Name == name {
			found = append(found, i)
		}
	}
	switch len(found) {
	case 1:
		return found[0].Socket, nil
	case 0:
		if len(live) == 0 {
			base, _ := basePath()
			return "", fmt.Errorf("%w (no live admin socket under %s), so none is called %q; start it with wattd start --name %s", ErrNotRunning, base, name, name)
		}
		return "", fmt.Errorf("%w called %q; the running ones are:%s", ErrNotRunning, name, describe(live))
	}
	return "", fmt.Errorf("%w called %q; choose one with --socket:%s", ErrAmbiguous, name, describe(found))
}

// NameFor is the default name of the runtime of a project directory: its
// base name as given (/srv/app/current gives current, whatever release
// it points to, so the name stays across deploys), with characters
// ValidName refuses turned into '-'.
func NameFor(projectDir string) string {
	b := []byte(filepath.Base(absolute(projectDir)))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 || string(b) == "-" {
		return "wattd"
	}
	return string(b)
}
