// Package devwatch watches an application's files in development mode and
// says, once a burst of changes has settled, that the application should be
// restarted. Dependency and build folders are not watched: they change by
// the thousand during an install and are not the developer's edits.
package devwatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Skipped lists directory names never watched.
var Skipped = []string{"node_modules", ".git", ".next", "dist", "build", ".wattd", "coverage", ".cache", ".turbo", "__pycache__"}

// Watch watches root (and every directory below it that is not skipped or
// hidden) until ctx ends, and calls onChange with the changed paths once
// no further change has come for debounce; when changes were lost (the
// kernel's event queue overflowed), the path reported is root itself. It returns once the watches
// are set up, watching on until ctx ends, or with an error if root cannot
// be watched. Folders it cannot watch
// (the inotify watch limit reached) do not stop it: it watches the others
// and tells onWarn, once at the start and once more if a folder made later
// cannot be watched either.
func Watch(ctx context.Context, root string, debounce time.Duration, onChange func(paths []string), onWarn func(error)) error {
	// An application folder that is a symbolic link is watched where it
	// points: the walk below does not follow links, not even at the top.
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	missed, err := addTree(w, root)
	if err != nil {
		w.Close()
		return err
	}
	if missed != nil {
		onWarn(missed)
	}
	warnedLater := false
	go debounced(ctx, w, debounce, onChange, func(ev fsnotify.Event) []string {
		if ignored(root, ev.Name) {
			return nil
		}
		if ev.Has(fsnotify.Rename) {
			// A folder renamed (or moved away): drop its watches now, so
			// that the Create of its new name watches it afresh. Left
			// alone, the watch stays under the old name and is removed
			// when the kernel reports the move, leaving the folder
			// unwatched under its new one.
			unwatchTree(w, ev.Name)
		}
		if ev.Has(fsnotify.Create) {
			if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
				// A new folder: watch it too.
				missed, err := addTree(w, ev.Name)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					missed = err // the folder itself
				}
				if missed != nil && !warnedLater {
					warnedLater = true
					onWarn(missed)
				}
			}
		}
		return []string{ev.Name}
	}, func() []string {
		// Folders made meanwhile may be unwatched and a change missed:
		// watch the whole tree again and report root itself, standing
		// for a change that is not known.
		missed, _ := addTree(w, root)
		if missed != nil && !warnedLater {
			warnedLater = true
			onWarn(missed)
		}
		return []string{root}
	})
	return nil
}

// debounced reads w's events until ctx ends and calls onChange with the
// paths changed once no further change has come for debounce. changed
// says which paths an event reports (none: it does not count); lost
// which ones to report when the kernel's queue overflowed (a flood of
// changes, a checkout, while a restart held this loop) and events were
// lost. It closes w when it returns.
func debounced(ctx context.Context, w *fsnotify.Watcher, debounce time.Duration, onChange func([]string), changed func(fsnotify.Event) []string, lost func() []string) {
	defer w.Close()
	var pending []string
	add := func(paths []string) {
		for _, p := range paths {
			if !slices.Contains(pending, p) {
				pending = append(pending, p)
			}
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if paths := changed(ev); len(paths) > 0 {
				add(paths)
				timer.Reset(debounce)
			}
		case err := <-w.Errors:
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				continue // the next event still triggers
			}
			add(lost())
			timer.Reset(debounce)
		case <-timer.C:
			if len(pending) > 0 {
				onChange(pending)
				pending = nil
			}
		}
	}
}

// unwatchTree removes the watches of dir and of the folders below it.
func unwatchTree(w *fsnotify.Watcher, dir string) {
	for _, p := range w.WatchList() {
		if p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) {
			_ = w.Remove(p)
		}
	}
}

// addTree watches root and the folders below it. It fails if root itself
// cannot be watched; folders below it that cannot be are skipped and
// summed up in missed.
func addTree(w *fsnotify.Watcher, root string) (missed error, err error) {
	var first string
	var firstErr error
	n := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return fmt.Errorf("watch %s: %w", root, err)
			}
			return nil // a folder that vanished meanwhile
		}
		if !d.IsDir() {
			return nil
		}
		if p != root && skipDir(d.Name()) {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil {
			if p == root {
				return fmt.Errorf("watch %s: %w", p, limitHint(err))
			}
			if n == 0 {
				first, firstErr = p, err
			}
			n++
		}
		return nil
	})
	if err != nil || n == 0 {
		return nil, err
	}
	if n == 1 {
		return fmt.Errorf("folder %s not watched, a change in it restarts nothing: %w", first, limitHint(firstErr)), nil
	}
	return fmt.Errorf("%d folders not watched (the first: %s), a change in them restarts nothing: %w", n, first, limitHint(firstErr)), nil
}

// limitHint explains the error inotify gives when the user's watch limit is
// reached ("no space left on device") and how to raise the limit.
func limitHint(err error) error {
	if !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	limit := "?"
	if b, rerr := os.ReadFile("/proc/sys/fs/inotify/max_user_watches"); rerr == nil {
		limit = strings.TrimSpace(string(b))
	}
	return fmt.Errorf("the inotify watch limit is reached (fs.inotify.max_user_watches = %s, shared by every program of the user); raise it, e.g. sysctl -w fs.inotify.max_user_watches=524288: %w", limit, err)
}

func skipDir(name string) bool {
	return strings.HasPrefix(name, ".") || slices.Contains(Skipped, name)
}

// ignored says whether a changed path is in a skipped folder or is an
// editor's temporary file.
func ignored(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return true
	}
	parts := strings.Split(rel, string(filepath.Separator))
	for _, d := range parts[:len(parts)-1] {
		if skipDir(d) {
			return true
		}
	}
	base := parts[len(parts)-1]
	if base != "." && skippedFolder(p, base) {
		return true
	}
	return editorTemp(base)
}

// editorTemp tells an editor's or a desktop's file that no save makes:
// backups (app.js~), Vim's swap files (.app.js.swp, .swo, .swx, … as
// further sessions take the next letter) and the file it writes to probe
// a folder (4913), Emacs's lock and auto-save files (.#app.js, #app.js#),
// JetBrains' save temporaries (app.js___jb_tmp___, ___jb_old___) and
// macOS's .DS_Store.
func editorTemp(base string) bool {
	switch {
	case strings.HasSuffix(base, "~"), strings.HasPrefix(base, ".#"), base == "4913", base == ".DS_Store":
		return true
	case len(base) > 2 && strings.HasPrefix(base, "#") && strings.HasSuffix(base, "#"):
		return true
	case strings.HasSuffix(base, "___jb_tmp___"), strings.HasSuffix(base, "___jb_old___"):
		return true
	}
	// Vim: .<name>.sw[a-p] (swp first, then swo, swn, … and swx while
	// it checks that it may write one).
	if ext := filepath.Ext(base); strings.HasPrefix(base, ".") && len(ext) == 4 && strings.HasPrefix(ext, ".sw") && ext[3] >= 'a' && ext[3] <= 'z' {
		return true
	}
	return strings.HasSuffix(base, ".swp")
}

// skippedFolder tells whether p, whose name is base, is itself a folder
// that is never watched: one made or removed by a build (the go
// capability's .wattd/, dist/, node_modules/) is no edit of the
// developer's. A file of such a name (a .env) still counts; a path that is
// gone counts as the folder when its name is in Skipped.
func skippedFolder(p, base string) bool {
	if !skipDir(base) {
		return false
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return slices.Contains(Skipped, base)
	}
	return fi.IsDir()
}

// WatchFiles watches the given files (absolute paths) until ctx ends, and
// calls onChange with those changed once no further change has come for
// debounce. It watches their folders, not below, so that a file an editor
// replaces (written aside, then renamed over it), removes or creates
// counts. It returns once the watches are set up, or with an error if a
// folder cannot be watched.
func WatchFiles(ctx context.Context, files []string, debounce time.Duration, onChange func(paths []string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", strings.Join(files, ", "), err)
	}
	// By the path events name (the folder's real one): the path given.
	named := map[string]string{}
	for _, f := range files {
		dir := filepath.Dir(f)
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
		if err := w.Add(dir); err != nil {
			w.Close()
			return fmt.Errorf("watch %s: %w", dir, limitHint(err))
		}
		named[filepath.Join(dir, filepath.Base(f))] = f
	}
	go debounced(ctx, w, debounce, onChange, func(ev fsnotify.Event) []string {
		if f, ok := named[ev.Name]; ok {
			return []string{f}
		}
		return nil
	}, func() []string {
		return files // any of them may have changed
	})
	return nil
}
