package capabilities

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
