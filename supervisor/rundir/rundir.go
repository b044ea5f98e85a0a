// Package rundir owns the runtime directories: where a running wattd keeps
// its sockets (the admin socket now, mesh sockets later) and the
// runtime.json that describes it, and how `wattd ctl` finds a running
// instance from the current directory.
//
// Layout:
//
//	<base>/                          0700, owned by us
//	  <name>-<hash>/                 one per project, 0700; a shared flock on it
//	                                 keeps systemd-tmpfiles' cleaning out
//	    runtime.lock                 flock held for the life of the runtime
//	    runtime.json                 {pid, projectDir, configFile, startedAt, version}
//	    admin.sock                   the admin API
//	    proxy.sock                   the mesh proxy
//	    mesh/<app>-<worker>.sock     worker mesh sockets
//	    apps/<app>.json              what a worker's runtime API reports (ipc.AppInfo)
//	    diag/                        0700: profiles a worker writes, the FIFO of a heap
//	                                 snapshot, the socket of a REPL (supervisor's diagnose.go)
//	  .<name>-<hash>.sockets/        second names of the sockets above, from which
//	                                 Restore puts them back (restore.go)
//
// The base is $WATTD_RUNTIME_DIR, else $XDG_RUNTIME_DIR/wattd, else
// /run/wattd for root, else $TMPDIR/wattd-<uid>. The per-project name is
// derived from the project path alone, so a second wattd for the same
// project lands in the same directory and is turned away by the lock
// instead of clobbering the first one's sockets.
package rundir

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// EnvRuntimeDir overrides the base directory for all runtimes.
const EnvRuntimeDir = "WATTD_RUNTIME_DIR"

// File names inside a runtime directory.
const (
	adminSocketName = "admin.sock"
	proxySocketName = "proxy.sock"
	infoFileName    = "runtime.json"
	lockFileName    = "runtime.lock"
	meshDirName     = "mesh"
	appsDirName     = "apps"
)

// MaxSocketPath is the longest socket path we accept. sun_path holds 108
// bytes on Linux (104 on the BSDs); keeping one byte for a terminating NUL
// stays compatible with tools that expect one.
const MaxSocketPath = 107

// maxNameLen bounds the readable part of a runtime directory name so that
// deep project paths do not push the socket paths past MaxSocketPath.
const maxNameLen = 32

// ErrAlreadyRunning is matched (errors.Is) by the error Create returns when
// another wattd holds the runtime directory of the same project.
var ErrAlreadyRunning = errors.New("another wattd is already running for this project")

type runningError struct {
	pid int
	dir string
}

func (e *runningError) Error() string {
	if e.pid > 0 {
		return fmt.Sprintf("another wattd (pid %d) is already running for this project (runtime directory %s)", e.pid, e.dir)
	}
	return fmt.Sprintf("another wattd is already running for this project (runtime directory %s)", e.dir)
}

func (e *runningError) Is(target error) bool { return target == ErrAlreadyRunning }

// Info is the content of runtime.json. List fills in Dir and Socket.
type Info struct {
	PID        int    `json:"pid"`
	Name       string `json:"name,omitempty"` // wattd start --name; `wattd ctl --name` finds it
	ProjectDir string `json:"projectDir"`
	// ProjectPath is the project directory as it was given, when that is
	// a path through a symlink: /srv/app/current, where ProjectDir is the
	// release it pointed to at the start. A deploy that moves the link
	// leaves the runtime findable by the path the operator uses.
	ProjectPath string    `json:"projectPath,omitempty"`
	ConfigFile  string    `json:"configFile,omitempty"`
	StartedAt   time.Time `json:"startedAt"`
	Version     string    `json:"version,omitempty"`

	Dir    string `json:"-"` // the runtime directory
	Socket string `json:"-"` // its admin socket
}

// Dir is the runtime directory of the running process. It holds an
// exclusive lock on the directory until Remove.
type Dir struct {
	Path string // absolute path of the runtime directory
	// Warnings are what Create wants logged (the logger comes later).
	Warnings []string

	// mu guards what Restore may replace (lock, keep, kept) and the
	// writes of runtime.json.
	mu   sync.Mutex
	lock *os.File
	// keep holds a shared flock on the directory itself for the life of
	// the runtime: systemd-tmpfiles, which ages out old files under /tmp
	// (where the base is for a user without XDG_RUNTIME_DIR), skips a
	// directory it cannot lock exclusively. Without it, a runtime whose
	// workers had not restarted for the cleaner's age (10 days for /tmp)
	// would lose its Node preload and runtime.json, and every later
	// worker start would fail.
	keep  *os.File
	claim *net.UnixListener // the project's machine-wide name (claim.go)
	info  Info
	// kept are the sockets (relative names) that have a second name in
	// socketsDir (restore.go).
	kept []string
	// blocked are the sockets of kept whose names something else holds
	// (restore.go), said once.
	blocked map[string]bool
}

// Base returns the base directory for runtimes, creating it (0700) if
// needed and refusing one that another user could tamper with.
func Base() (string, error) {
	base, err := basePath()
	if err != nil {
		return "", err
	}
	if err := ensurePrivateDir(base, true); err != nil {
		return "", err
	}
	return base, nil
}

// basePath picks the base directory without touching the file system
// beyond asking whether /run is writable.
func basePath() (string, error) {
	runWritable := os.Geteuid() == 0 && unix.Access("/run", unix.W_OK) == nil
	p := chooseBase(os.Getenv, os.Geteuid(), runWritable, os.TempDir())
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("runtime base directory %s: %w", p, err)
	}
	return abs, nil
}

// rootBase is the runtime directory of root's runtimes, unless
// WATTD_RUNTIME_DIR or XDG_RUNTIME_DIR says otherwise.
const rootBase = "/run/wattd"

func chooseBase(getenv func(string) string, euid int, runWritable bool, tmp string) string {
	if d := getenv(EnvRuntimeDir); d != "" {
		return filepath.Clean(d)
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "wattd")
	}
	if euid == 0 && runWritable {
		return rootBase
	}
	// Per-uid name: the temporary directory is shared, and another user
	// must not be able to pre-create the directory we will trust.
	return filepath.Join(tmp, "wattd-"+strconv.Itoa(euid))
}

// ensurePrivateDir creates dir with mode 0700 if it is missing, and checks
// that an existing one is ours and not writable by anyone else: sockets and
// runtime.json inside it are trusted, so nobody else may swap them. base is
// true for the base directory, made with its parents, and false for a
// project's directory under it.
func ensurePrivateDir(dir string, base bool) error {
	mkdir := os.Mkdir
	if base {
		mkdir = os.MkdirAll
		if err := checkParents(dir); err != nil {
			return err
		}
	}
	err := mkdir(dir, 0o700)
	if err == nil {
		// The umask can only have narrowed 0700; nothing to fix.
		return checkPrivateDir(dir, base)
	}
	if !errors.Is(err, fs.ErrExist) {
		// Most often a read-only file system: a container's root file
		// system, /tmp included, with readOnlyRootFilesystem.
		return fmt.Errorf("create runtime directory %s: %w; %s", dir, err, cannotCreateAdvice(base))
	}
	return checkPrivateDir(dir, base)
}

// checkParents refuses a base directory inside a directory that another
// user (not root, not us) owns: its owner can rename the base away and put
// one of their own in its place, with a preload that wattd's workers would
// load, as wattd's user. The parents are checked as named and where their
// symbolic links lead.
func checkParents(dir string) error {
	uid := os.Geteuid()
	paths := []string{filepath.Clean(dir)}
	if parent, err := filepath.EvalSymlinks(filepath.Dir(paths[0])); err == nil {
		paths = append(paths, filepath.Join(parent, filepath.Base(paths[0])))
	}
	for _, p := range paths {
		for d := filepath.Dir(p); ; d = filepath.Dir(d) {
			if fi, err := os.Lstat(d); err == nil {
				if o := owner(fi); o != 0 && o != uid && o != -1 {
					return fmt.Errorf("runtime directory %s is inside %s, which uid %d owns: that user could replace it with one of their own; set %s to a directory whose parents only root and wattd's user own", dir, d, o, EnvRuntimeDir)
				}
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return nil
}

// namedBase reports whether base is the directory WATTD_RUNTIME_DIR names:
// then "set WATTD_RUNTIME_DIR" is no advice.
func namedBase(base bool) bool { return base && os.Getenv(EnvRuntimeDir) != "" }

// cannotCreateAdvice says what to change when a runtime directory cannot
// be made or written to.
func cannotCreateAdvice(base bool) string {
	if namedBase(base) {
		return fmt.Sprintf("set %s to a directory wattd's user can write to", EnvRuntimeDir)
	}
	return fmt.Sprintf("set %s to a directory wattd can write to (with a read-only root file system: one on a writable volume, such as a Kubernetes emptyDir)", EnvRuntimeDir)
}

// notPrivateAdvice says what to change when dir exists but is not wattd's
// own: either fix the directory or choose another. WATTD_RUNTIME_DIR naming
// a shared directory (a volume's mount point, owned by root and writable by
// all, as a Kubernetes emptyDir is) works as a sub-directory, which wattd
// then makes private.
func notPrivateAdvice(dir string, base bool, fix string) string {
	if namedBase(base) {
		return fmt.Sprintf("%s must name a directory that only wattd's user can write to, or one it can create: set it to a sub-directory, such as %s=%s", EnvRuntimeDir, EnvRuntimeDir, filepath.Join(dir, "wattd"))
	}
	return fmt.Sprintf("%s or set %s", fix, EnvRuntimeDir)
}

// checkPrivateDir verifies that dir is a directory owned by the effective
// uid and not group- or world-writable. A symlink is accepted only when the
// link itself is ours too (an XDG setup may use one), because in a sticky
// shared directory such as /tmp anyone can plant a link to elsewhere. base
// is as for ensurePrivateDir.
func checkPrivateDir(dir string, base bool) error {
	uid := os.Geteuid()
	lfi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("runtime directory %s: %w", dir, err)
	}
	if lfi.Mode()&fs.ModeSymlink != 0 {
		if owner(lfi) != uid {
			return fmt.Errorf("runtime directory %s is a symlink owned by uid %d, not by us (uid %d); remove it or set %s", dir, owner(lfi), uid, EnvRuntimeDir)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("runtime directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("runtime directory %s is not a directory", dir)
	}
	if o := owner(fi); o != uid {
		return fmt.Errorf("runtime directory %s is owned by uid %d, not by us (uid %d); %s", dir, o, uid, notPrivateAdvice(dir, base, "remove it"))
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("runtime directory %s has mode %04o and is group or world writable; %s", dir, perm, notPrivateAdvice(dir, base, "run chmod 700 on it"))
	}
	return nil
}

func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// Create makes (or takes over) the runtime directory of projectDir,
// locks it for the life of this process, clears whatever a crashed
// predecessor left behind, and writes runtime.json. It fails with an error
// matching ErrAlreadyRunning when another wattd holds it.
func Create(projectDir string) (*Dir, error) {
	if projectDir == "" {
		return nil, errors.New("create runtime directory: empty project directory")
	}
	proj := canonical(projectDir)
	base, err := Base()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(base, dirName(proj))
	if sock := filepath.Join(path, adminSocketName); len(sock) > MaxSocketPath {
		return nil, fmt.Errorf("admin socket path %s is %d bytes, over the %d a Unix socket allows; set %s to a shorter directory", sock, len(sock), MaxSocketPath, EnvRuntimeDir)
	}

	lock, err := lockDir(path)
	if err != nil {
		return nil, err
	}
	cl, warning, err := claim(filepath.Base(path))
	if err != nil {
		_ = os.RemoveAll(path) // as Remove does: the lock goes last
		lock.Close()
		return nil, fmt.Errorf("%s: %w", proj, err)
	}
	keep, err := keepDir(path)
	if err != nil {
		_ = os.RemoveAll(path)
		lock.Close()
		if cl != nil {
			cl.Close()
		}
		return nil, err
	}
	d := &Dir{
		Path:  path,
		lock:  lock,
		keep:  keep,
		claim: cl,
		info:  Info{PID: os.Getpid(), ProjectDir: proj, StartedAt: time.Now()},
	}
	if given := absolute(projectDir); given != proj {
		d.info.ProjectPath = given
	}
	if warning != "" {
		d.Warnings = append(d.Warnings, warning)
	}
	if err := d.reset(); err != nil {
		_ = d.Remove()
		return nil, err
	}
	// A crashed predecessor's second names of its sockets; what is left
	// of them, keepSockets drops.
	_ = os.RemoveAll(d.socketsDir())
	if err := d.writeInfo(); err != nil {
		_ = d.Remove()
		return nil, err
	}
	return d, nil
}

// lockDir creates the runtime directory if needed and takes its lock. The
// lock is what makes the rest safe: whoever holds it knows that any socket
// in the directory is a leftover it may delete.
func lockDir(path string) (*os.File, error) {
	// A previous owner removes the directory (lock file included) before
	// it lets go of the lock, so a lock won on a file that is no longer
	// at the path is worthless: start over. A few rounds are plenty; the
	// loop only turns when a runtime exits exactly as we start.
	for range 5 {
		if err := ensurePrivateDir(path, false); err != nil {
			return nil, err
		}
		lockPath := filepath.Join(path, lockFileName)
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			// A runtime directory left in a read-only image, say.
			return nil, fmt.Errorf("open lock %s: %w; %s", lockPath, err, cannotCreateAdvice(false))
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				pid := 0
				if info, rerr := readInfo(path); rerr == nil {
					pid = info.PID
				}
				return nil, &runningError{pid: pid, dir: path}
			}
			return nil, fmt.Errorf("lock %s: %w", lockPath, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Lstat(lockPath)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("lock runtime directory %s: it kept being removed while we tried to take it", path)
}

// keepDir takes the shared flock on the directory at path that keeps
// systemd-tmpfiles out of it (Dir.keep).
func keepDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open runtime directory %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock runtime directory %s: %w", path, err)
	}
	return f, nil
}

// reset removes what a crashed predecessor may have left: its admin socket
// (admin.Serve would otherwise have to probe it), its mesh proxy socket and
// its mesh sockets.
func (d *Dir) reset() error {
	for _, sock := range []string{d.AdminSocket(), d.ProxySocket()} {
		if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale socket %s: %w", sock, err)
		}
	}
	mesh := filepath.Join(d.Path, meshDirName)
	if err := os.RemoveAll(mesh); err != nil {
		return fmt.Errorf("remove stale mesh sockets %s: %w", mesh, err)
	}
	if err := os.Mkdir(mesh, 0o700); err != nil {
		return fmt.Errorf("create mesh directory %s: %w", mesh, err)
	}
	return nil
}

// AdminSocket is the path of the admin API socket.
func (d *Dir) AdminSocket() string { return filepath.Join(d.Path, adminSocketName) }

// ProxySocket is the path of the mesh proxy's Unix socket.
func (d *Dir) ProxySocket() string { return filepath.Join(d.Path, proxySocketName) }

// MeshSocket is the path of the mesh socket of one worker. App ids are
// sanitised to file-name-safe characters; the caller checks the length
// against MaxSocketPath when it listens.
func (d *Dir) MeshSocket(app string, worker int) string {
	return filepath.Join(d.Path, meshDirName, sanitize(app, 64)+"-"+strconv.Itoa(worker)+".sock")
}

// AppInfoFile is the path of an application's info file (ipc.AppInfo);
// ids are sanitised as for MeshSocket. Its directory is made by whoever
// writes it.
func (d *Dir) AppInfoFile(app string) string {
	return filepath.Join(d.Path, appsDirName, sanitize(app, 64)+".json")
}

// Info returns what runtime.json currently says.
func (d *Dir) Info() Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := d.info
	i.Dir, i.Socket = d.Path, d.AdminSocket()
	return i
}

// SetName records the runtime's name for the next WriteInfo. It does not
// check that the name is free: see NameTaken.
func (d *Dir) SetName(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.info.Name = name
}

// WriteInfo records the config file and version in runtime.json. Create
// already wrote pid, projectDir and startedAt, so the directory describes
// itself from the start; this fills in what is known once the config is
// loaded.
func (d *Dir) WriteInfo(configFile, version string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.info.ConfigFile = configFile
	d.info.Version = version
	return d.writeInfo()
}

// writeInfo replaces runtime.json atomically (temp file and rename) so a
// concurrent `wattd ctl` never reads half a file.
func (d *Dir) writeInfo() error {
	data, err := json.MarshalIndent(d.info, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", infoFileName, err)
	}
	data = append(data, '\n')
	f, err := os.CreateTemp(d.Path, "."+infoFileName+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", infoFileName, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(d.Path, infoFileName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s in %s: %w", infoFileName, d.Path, err)
	}
	return nil
}

// Remove deletes the runtime directory and releases its lock, in that
// order: a starting wattd that opened the lock file just before must,
// once it wins the lock, find that file gone and start over in a fresh
// directory rather than settle in a half-removed one.
func (d *Dir) Remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lock == nil {
		return nil
	}
	os.RemoveAll(d.socketsDir())
	err := os.RemoveAll(d.Path)
	if cerr := d.lock.Close(); err == nil && cerr != nil {
		err = cerr
	}
	d.lock = nil
	if d.keep != nil {
		d.keep.Close()
		d.keep = nil
	}
	if d.claim != nil {
		d.claim.Close()
		d.claim = nil
	}
	if err != nil {
		return fmt.Errorf("remove runtime directory %s: %w", d.Path, err)
	}
	return nil
}

func readInfo(dir string) (Info, error) {
	p := filepath.Join(dir, infoFileName)
	data, err := os.ReadFile(p)
	if err != nil {
		return Info{}, fmt.Errorf("read %s: %w", p, err)
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return Info{}, fmt.Errorf("parse %s: %w", p, err)
	}
	return info, nil
}

// dirName is "<sanitised basename>-<8 hex of sha256(path)>": readable in
// `ls`, unique per project path, and bounded in length.
func dirName(proj string) string {
	sum := sha256.Sum256([]byte(proj))
	return sanitize(filepath.Base(proj), maxNameLen) + "-" + hex.EncodeToString(sum[:4])
}

// sanitize keeps [A-Za-z0-9._-] and replaces everything else with '_', so
// a name cannot add path components or surprise a shell.
func sanitize(s string, max int) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b = append(b, byte(r))
		default:
			b = append(b, '_')
		}
	}
	if len(b) > max {
		b = b[:max]
	}
	meaningful := false
	for _, c := range b {
		if c != '_' && c != '.' {
			meaningful = true
			break
		}
	}
	if !meaningful {
		return "project"
	}
	return string(b)
}

// absolute makes a path absolute and clean, keeping its symlinks.
func absolute(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	return abs
}

// canonical makes a path absolute and resolves symlinks when it can, so
// the same project reached through different paths maps to one runtime
// directory, and `wattd ctl` run in a symlinked checkout still finds it.
func canonical(p string) string {
	abs := absolute(p)
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}
