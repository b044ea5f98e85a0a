package capabilities

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// HashedName is prefix-<12 hex digits of content's sha256><ext>: a file name
// that changes with the content, so that a wattd upgrade never runs a stale
// script left by an older binary and an existing file can be reused as is.
func HashedName(prefix, ext string, content []byte) string {
	sum := sha256.Sum256(content)
	return prefix + "-" + hex.EncodeToString(sum[:6]) + ext
}

// WriteRuntimeFile writes content (a script embedded in wattd, such as the
// Node preload) to runtimeDir/name, mode 0600, atomically, and returns its
// path. A file already there with the same size is reused: its name
// carries the content's hash (HashedName).
func WriteRuntimeFile(runtimeDir, name string, content []byte) (string, error) {
	if runtimeDir == "" {
		return "", errors.New("no runtime directory for " + name)
	}
	p := filepath.Join(runtimeDir, name)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() == int64(len(content)) {
		return p, nil
	}
	tmp, err := os.CreateTemp(runtimeDir, "."+name+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Chmod(0o600) // CreateTemp uses 0600 already; say so explicitly
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return p, nil
}

// HashedDirName is prefix-<12 hex digits>: like HashedName, for a set of
// files, hashing every file's name and content in name order.
func HashedDirName(prefix string, files map[string][]byte) string {
	h := sha256.New()
	for _, name := range sortedNames(files) {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name]))
		h.Write(files[name])
	}
	return prefix + "-" + hex.EncodeToString(h.Sum(nil)[:6])
}

// WriteRuntimeDir writes files into runtimeDir/name, a directory of mode
// 0700 whose files are 0600, and returns its path. The directory is filled
// under a temporary name and renamed into place, so a reader never sees it
// half-written; when it is already there (its name carries the content's
// hash, HashedDirName) it is reused once every file is found with its size.
func WriteRuntimeDir(runtimeDir, name string, files map[string][]byte) (string, error) {
	if runtimeDir == "" {
		return "", errors.New("no runtime directory for " + name)
	}
	p := filepath.Join(runtimeDir, name)
	if dirHolds(p, files) {
		return p, nil
	}
	tmp, err := os.MkdirTemp(runtimeDir, "."+name+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	for _, f := range sortedNames(files) {
		if err := os.WriteFile(filepath.Join(tmp, f), files[f], 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", name, err)
		}
	}
	err = os.Rename(tmp, p)
	if err != nil && dirHolds(p, files) {
		// Another worker start put it there first (rename does not replace
		// a non-empty directory): theirs is as good.
		return p, nil
	}
	if err != nil {
		// A damaged copy (a file missing or cut short): move it aside and
		// take its place.
		old, terr := os.MkdirTemp(runtimeDir, "."+name+"-*.old")
		if terr == nil {
			defer os.RemoveAll(old)
			if os.Rename(p, filepath.Join(old, "d")) == nil {
				err = os.Rename(tmp, p)
			}
		}
	}
	if err != nil && !dirHolds(p, files) {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return p, nil
}

// dirHolds reports whether dir has every file with its size.
func dirHolds(dir string, files map[string][]byte) bool {
	for f, b := range files {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || !st.Mode().IsRegular() || st.Size() != int64(len(b)) {
			return false
		}
	}
	return true
}

func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
