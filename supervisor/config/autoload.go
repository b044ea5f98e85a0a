package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// autoloadDirs lists the sub-directories of dir that are applications, by
// name. Hidden directories (.git, .turbo, ...) are skipped: they are never
// applications, and Watt would fail on them later. Like Watt, a symbolic
// link is not followed.
func autoloadDirs(dir string, exclude []string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") || slices.Contains(exclude, name) {
			continue
		}
		names = append(names, name)
	}
	return names, nil
}

// autoload turns the directories under autoload.path into entries. A
// directory already listed explicitly, by path or by id, is left to the
// explicit entry, which is how Watt merges the two.
func (l *loader) autoload(a *rawAutoload, explicit []appEntry) ([]appEntry, []issue) {
	var problems []issue
	dir := l.resolve(l.dir, a.Path)
	names, err := autoloadDirs(dir, a.Exclude)
	if err != nil {
		var msg string
		switch {
		case errors.Is(err, fs.ErrNotExist):
			msg = fmt.Sprintf("directory %s does not exist", dir)
		case errors.Is(err, fs.ErrPermission):
			msg = fmt.Sprintf("directory %s cannot be read: permission denied", dir)
		default:
			msg = fmt.Sprintf("%s is not a readable directory: %v", dir, unwrapPathError(err))
		}
		return nil, []issue{{ptr: "/autoload/path", msg: msg, err: err}}
	}

	var entries []appEntry
	for _, name := range names {
		path := filepath.Join(dir, name)
		mapping, mapped := a.Mappings[name]
		e := appEntry{
			raw:        mapping,
			id:         name,
			path:       path,
			ptr:        "/autoload/path",
			idPtr:      "/autoload/path",
			pathPtr:    "/autoload/path",
			autoloaded: true,
		}
		if mapped {
			e.ptr = childPointer("/autoload/mappings", name)
			e.idPtr = e.ptr + "/id"
			e.id = mapping.ID
		}
		if slices.ContainsFunc(explicit, func(x appEntry) bool { return x.path == path || x.id == e.id }) {
			continue
		}
		if msg := checkAppID(e.id); msg != "" {
			if mapped {
				problems = append(problems, issuef(e.idPtr, "invalid application id %q: %s", e.id, msg))
			} else {
				problems = append(problems, issuef(e.idPtr,
					`directory %q would become application id %q, which is invalid: %s; rename the directory, exclude it, or give it an id in "mappings"`,
					name, e.id, msg))
			}
		}
		entries = append(entries, e)
	}

	for _, name := range sortedKeys(a.Mappings) {
		if !slices.Contains(names, name) && !slices.Contains(a.Exclude, name) {
			l.warnings = append(l.warnings, issuef(childPointer("/autoload/mappings", name),
				"no directory %q in %s; mapping ignored", name, dir))
		}
	}
	return entries, problems
}
