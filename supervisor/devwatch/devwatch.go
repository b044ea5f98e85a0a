// Package devwatch watches an application's files in development mode and
// says, once a burst of changes has settled, that the application should be
// restarted. Dependency and build folders are not watched: they change by
// the thousand during an install and are not the developer's edits.
package devwatch

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Skipped lists directory names never watched.
var Skipped = []string{"node_modules", ".git", ".next", "dist", "build", ".wattd", "coverage", ".cache", ".turbo", "__pycache__"}

// Watch watches root (and every directory below it that is not skipped or
// hidden) until ctx ends, and calls onChange with the changed paths once
// no further change has come for debounce. It returns when ctx ends, or at
// once with an error if root cannot be watched.
func Watch(ctx context.Context, root string, debounce time.Duration, onChange func(paths []string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	if err := addTree(w, root); err != nil {
		w.Close()
		return err
	}
	go func() {
		defer w.Close()
		var pending []string
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
				if ignored(root, ev.Name) {
					continue
				}
				if ev.Has(fsnotify.Create) {
					if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
						_ = addTree(w, ev.Name) // a new folder: watch it too
					}
				}
				if !slices.Contains(pending, ev.Name) {
					pending = append(pending, ev.Name)
				}
				timer.Reset(debounce)
			case <-timer.C:
				if len(pending) > 0 {
					onChange(pending)
					pending = nil
				}
			case <-w.Errors:
				// Overflow and the like: the next event still triggers.
			}
		}
	}()
	return nil
}

func addTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
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
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
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
	return strings.HasSuffix(base, "~") || strings.HasSuffix(base, ".swp") || strings.HasPrefix(base, ".#")
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
