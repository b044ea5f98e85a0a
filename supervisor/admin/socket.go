package admin

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxSocketPath is the longest socket path accepted: sun_path holds 108
// bytes on Linux, and one is kept for a terminating NUL.
const maxSocketPath = 107

// probeTimeout bounds the connect used to tell a live socket from a stale
// one.
const probeTimeout = 2 * time.Second

// listenPrivate listens on path with the socket file at mode 0600 from the
// moment it is reachable.
//
// bind(2) creates the file with 0777 minus the umask, and a chmod after it
// leaves a window in which anyone may connect. Setting the umask instead
// is process-wide and would change the modes of files other goroutines
// create meanwhile. So the socket is bound inside a fresh 0700 directory
// that only we can enter, chmodded there, and then hard-linked to its real
// name. link(2), unlike rename(2), fails if the name exists, so a second
// wattd that got there first is never clobbered.
//
// The returned FileInfo identifies the socket file so Close removes only
// ours.
func listenPrivate(path string) (*net.UnixListener, fs.FileInfo, error) {
	if len(path) > maxSocketPath {
		return nil, nil, fmt.Errorf("admin socket path %s is %d bytes, over the %d a Unix socket allows", path, len(path), maxSocketPath)
	}
	if err := clearStale(path); err != nil {
		return nil, nil, err
	}

	tmpDir, err := privateTempDir(filepath.Dir(path))
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmpDir)
	// "s" keeps the temporary path no longer than the final one whenever
	// the socket's own name is 9 bytes or more (admin.sock is 10).
	tmpSock := filepath.Join(tmpDir, "s")
	if len(tmpSock) > maxSocketPath {
		return nil, nil, fmt.Errorf("admin socket path %s is too long to create safely (temporary name %s is %d bytes)", path, tmpSock, len(tmpSock))
	}

	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpSock, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("listen on admin socket %s: %w", path, err)
	}
	// The temporary name disappears with tmpDir; Close removes the real
	// one itself, after checking it is still ours.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmpSock, 0o600); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("chmod admin socket %s: %w", path, err)
	}
	if err := os.Link(tmpSock, path); err != nil {
		ln.Close()
		if errors.Is(err, fs.ErrExist) {
			// Someone created it after clearStale looked. Say who, if
			// they are live.
			if perr := probe(path); perr != nil {
				return nil, nil, perr
			}
			return nil, nil, fmt.Errorf("admin socket %s appeared while we were creating it: %w", path, err)
		}
		return nil, nil, fmt.Errorf("publish admin socket %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return ln, fi, nil
}

// privateTempDir makes a 0700 directory with a short random name in dir.
// os.MkdirTemp would do, but its names are longer and socket paths are
// tight.
func privateTempDir(dir string) (string, error) {
	for range 10 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("random name: %w", err)
		}
		p := filepath.Join(dir, "."+hex.EncodeToString(b[:]))
		err := os.Mkdir(p, 0o700)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("create temporary directory for the admin socket in %s: %w", dir, err)
		}
	}
	return "", fmt.Errorf("create temporary directory for the admin socket in %s: too many name clashes", dir)
}

// clearStale makes path free for a new socket: nothing there is fine, a
// socket nobody listens on is removed, and a live one is an error naming
// the pid behind it. Anything that is not a socket is left alone: it is
// not ours to delete.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin socket path %s exists and is not a socket (%s); refusing to replace it", path, fi.Mode().Type())
	}
	if err := probe(path); err != nil {
		return err
	}
	// Nobody answered. Remove it only if it is still the file we probed,
	// so a server that replaced it meanwhile keeps its socket. (A runtime
	// directory's lock makes this race moot in wattd; the check costs
	// nothing for other callers.)
	now, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	if !os.SameFile(fi, now) {
		return fmt.Errorf("admin socket %s was replaced while we checked it; is another wattd starting?", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale admin socket %s: %w", path, err)
	}
	return nil
}

// probe connects to the socket at path. It returns nil when nobody
// listens (connection refused, or the file is gone), an error matching
// ErrAlreadyRunning when someone does, and any other failure as is: when
// we cannot tell, we must not delete.
func probe(path string) error {
	c, err := net.DialTimeout("unix", path, probeTimeout)
	if err == nil {
		defer c.Close()
		pid := 0
		if cred, cerr := peerCredentials(c); cerr == nil {
			pid = cred.pid
		}
		return &runningError{pid: pid, socket: path}
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("check whether another wattd is using %s: %w", path, err)
}
