package rundir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A runtime directory can go while wattd runs: an operator's rm -rf, or a
// cleaner that ignores its lock. The listening sockets in it keep working,
// but nobody can reach them by name, and worker starts that need files
// there fail. Restore puts back what the runtime owns there.
//
// Files (runtime.json) are written again. A socket cannot be bound again
// to a listener that is already open, but a hard link to its file reaches
// the same listener: so the runtime keeps a second name of each of its
// sockets (admin, mesh proxy, mesh) in a private directory next to the
// runtime directory, <base>/.<name>.sockets, kept in step by keepSockets,
// and Restore links them back. Only a removal of the base directory as well
// loses them.

// socketsDirSuffix names the directory of the sockets' second names.
const socketsDirSuffix = ".sockets"

// socketsDir is where keepSockets keeps the sockets' second names.
func (d *Dir) socketsDir() string {
	return filepath.Join(filepath.Dir(d.Path), "."+filepath.Base(d.Path)+socketsDirSuffix)
}

// isSocketsDir reports whether name, in the base directory, is a runtime's
// directory of second names rather than a runtime directory: runtime
// directories end in -<hash>.
func isSocketsDir(name string) bool { return strings.HasSuffix(name, socketsDirSuffix) }

// sockets returns the runtime's sockets as names relative to the runtime
// directory: admin.sock, proxy.sock and mesh/*.sock, whichever exist.
func (d *Dir) sockets() []string {
	var out []string
	for _, name := range []string{adminSocketName, proxySocketName} {
		if isSocket(filepath.Join(d.Path, name)) {
			out = append(out, name)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(d.Path, meshDirName))
	for _, e := range entries {
		if e.Type() == fs.ModeSocket && strings.HasSuffix(e.Name(), ".sock") {
			out = append(out, filepath.Join(meshDirName, e.Name()))
		}
	}
	return out
}

func isSocket(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().Type() == fs.ModeSocket
}

// spareName is the second name of the socket at rel (admin.sock,
// mesh/api-0.sock): a flat name in socketsDir, admin.sock.link, that a
// search for admin.sock does not take for the runtime's own.
func spareName(rel string) string { return strings.ReplaceAll(rel, "/", "_") + ".link" }

// keepSockets gives every socket of the runtime directory a second name
// in socketsDir, and drops those of sockets that are gone. A socket of the
// runtime's whose name something else holds now (a file, a dangling
// symbolic link) keeps its second name: Restore puts it back once the name
// is free. Called with mu held, once Restore has put back what was
// missing.
func (d *Dir) keepSockets() error {
	spares := d.socketsDir()
	if err := os.Mkdir(spares, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keep the runtime's sockets: %w", err)
	}
	want := map[string]bool{}
	var errs []error
	kept := d.sockets()
	for _, rel := range d.kept {
		if !slices.Contains(kept, rel) && d.blocked[rel] && isSocket(filepath.Join(spares, spareName(rel))) {
			kept = append(kept, rel)
			want[spareName(rel)] = true
		}
	}
	for _, rel := range kept {
		if d.blocked[rel] {
			continue
		}
		name := spareName(rel)
		want[name] = true
		src, dst := filepath.Join(d.Path, rel), filepath.Join(spares, name)
		a, err1 := os.Lstat(src)
		b, err2 := os.Lstat(dst)
		if err1 == nil && err2 == nil && os.SameFile(a, b) {
			continue
		}
		if err2 == nil {
			os.Remove(dst) // a socket that was made again under the same name
		}
		if err := os.Link(src, dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("keep socket %s: %w", src, err))
		}
	}
	entries, _ := os.ReadDir(spares)
	for _, e := range entries {
		if !want[e.Name()] {
			os.Remove(filepath.Join(spares, e.Name()))
		}
	}
	d.kept = kept
	for rel := range d.blocked {
		if !slices.Contains(kept, rel) {
			delete(d.blocked, rel)
		}
	}
	return errors.Join(errs...)
}

// KeepSocket gives the socket at path, one the runtime has just made in
// its directory, its second name, so that a later Restore can put it back.
func (d *Dir) KeepSocket(path string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rel, err := filepath.Rel(d.Path, path)
	if err != nil || !filepath.IsLocal(rel) || d.lock == nil {
		return
	}
	spares := d.socketsDir()
	if err := os.Mkdir(spares, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return // the next Restore says why
	}
	dst := filepath.Join(spares, spareName(rel))
	os.Remove(dst) // a socket made again under the same name
	if os.Link(path, dst) == nil && !slices.Contains(d.kept, rel) {
		d.kept = append(d.kept, rel)
	}
}

// Replaced reports whether the runtime directory, or its lock file, is no
// longer the one the runtime made: removed, or removed and made again by
// someone else. Two stats of each: cheap enough for every worker start.
func (d *Dir) Replaced() bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lock != nil && (!d.sameDir() || !d.sameLock())
}

// RemoveSocket removes the socket at path, one of the runtime directory's,
// with its second name, so that Restore does not bring it back. Whatever
// else took the name meanwhile (see Restore) is not wattd's and stays.
func (d *Dir) RemoveSocket(path string) {
	if d == nil {
		removeIfSocket(path)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	removeIfSocket(path)
	if rel, err := filepath.Rel(d.Path, path); err == nil && filepath.IsLocal(rel) {
		os.Remove(filepath.Join(d.socketsDir(), spareName(rel)))
		// Nor takes it for one removed behind the runtime's back.
		d.kept = slices.DeleteFunc(d.kept, func(k string) bool { return k == rel })
		delete(d.blocked, rel)
	}
}

// removeIfSocket removes path when it is a socket.
func removeIfSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		os.Remove(path)
	}
}

// Restored says what Restore made again.
type Restored struct {
	// Dir: the runtime directory itself was missing (or had been replaced)
	// and was made again.
	Dir bool
	// Files are the files and sockets put back, relative to the directory.
	Files []string
	// Lost are the sockets that could not be put back (their second names
	// went too, with the base directory): nobody can connect to them by
	// name until wattd restarts.
	Lost []string
	// Blocked are the sockets whose names something else took (a file, a
	// symbolic link), each with what it is ("admin.sock: a regular file"),
	// said once: they are put back (in Files) once the name is free again.
	Blocked []string
}

// Any reports whether Restore had something to put back, or to say.
func (r Restored) Any() bool {
	return r.Dir || len(r.Files) > 0 || len(r.Lost) > 0 || len(r.Blocked) > 0
}

// Restore makes the runtime directory again, with its lock, runtime.json,
// mesh directory and sockets, when it or one of these is missing, then
// gives any new socket its second name. It is cheap when nothing is
// missing (a few stats and one directory read), so it is called before
// anything that needs the directory and now and then. The caller puts back
// its own files (the workers' preload, the applications' info files) when
// r.Any(). An error says what could not be made; r still lists what was.
func (d *Dir) Restore() (r Restored, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lock == nil {
		return r, nil // removed on purpose
	}
	if !d.sameDir() || !d.sameLock() {
		if _, err := Base(); err != nil {
			return r, err
		}
		lock, err := lockDir(d.Path)
		if err != nil {
			return r, err
		}
		d.lock.Close()
		d.lock = lock
		if !d.sameDir() {
			keep, err := keepDir(d.Path)
			if err != nil {
				return r, err
			}
			if d.keep != nil {
				d.keep.Close()
			}
			d.keep = keep
			r.Dir = true
		} else {
			r.Files = append(r.Files, lockFileName)
		}
	}
	mesh := filepath.Join(d.Path, meshDirName)
	if _, err := os.Lstat(mesh); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(mesh, 0o700); err != nil {
			return r, fmt.Errorf("create mesh directory %s: %w", mesh, err)
		}
		r.Files = append(r.Files, meshDirName+"/")
	}
	if _, err := os.Lstat(filepath.Join(d.Path, infoFileName)); errors.Is(err, fs.ErrNotExist) {
		if err := d.writeInfo(); err != nil {
			return r, err
		}
		r.Files = append(r.Files, infoFileName)
	}
	spares := d.socketsDir()
	for _, rel := range d.kept {
		dst, spare := filepath.Join(d.Path, rel), filepath.Join(spares, spareName(rel))
		fi, err := os.Lstat(dst)
		if err == nil && fi.Mode().Type() != fs.ModeSocket && isSocket(spare) {
			// Something else took the name. It is left alone, as the
			// admin socket's start leaves a file in its way: what the
			// runtime's user or root put there may be wanted, and the
			// socket is back once they remove it.
			if !d.blocked[rel] {
				if d.blocked == nil {
					d.blocked = map[string]bool{}
				}
				d.blocked[rel] = true
				r.Blocked = append(r.Blocked, rel+": "+FileKind(fi.Mode()))
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			delete(d.blocked, rel)
			continue
		}
		delete(d.blocked, rel)
		if err := os.Link(spare, dst); err != nil {
			r.Lost = append(r.Lost, rel)
			continue
		}
		r.Files = append(r.Files, rel)
	}
	return r, d.keepSockets()
}

// FileKind names what a file of mode m is, for messages ("a regular
// file", "a symbolic link").
func FileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	default:
		return "a file of type " + m.Type().String()
	}
}

// sameDir reports whether the runtime directory is still the one Create
// made (the one d.keep holds open). Called with mu held.
func (d *Dir) sameDir() bool {
	if d.keep == nil {
		return true
	}
	return sameFile(d.keep, d.Path)
}

// sameLock reports whether the lock file is still the one d.lock holds.
// Called with mu held.
func (d *Dir) sameLock() bool {
	return sameFile(d.lock, filepath.Join(d.Path, lockFileName))
}

func sameFile(f *os.File, path string) bool {
	held, err1 := f.Stat()
	now, err2 := os.Lstat(path)
	return err1 == nil && err2 == nil && os.SameFile(held, now)
}
