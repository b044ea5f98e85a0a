package capabilities

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// RequireDir returns an error unless dir exists and is a directory; every
// Detect starts with it.
func RequireDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// PackageDeps reads dir/package.json and returns the names in its
// dependencies and devDependencies. ok is false when there is no
// package.json file, or when it is not valid JSON: detection then claims
// nothing and leaves the broken file for the node capability to report.
func PackageDeps(dir string) (deps map[string]bool, ok bool, err error) {
	p := filepath.Join(dir, "package.json")
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil // absent, or a folder of that name
		}
		return nil, false, err
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, false, err
	}
	var pkg struct {
		Dependencies    map[string]json.RawMessage `json:"dependencies"`
		DevDependencies map[string]json.RawMessage `json:"devDependencies"`
	}
	if json.Unmarshal(raw, &pkg) != nil {
		return nil, false, nil
	}
	deps = make(map[string]bool, len(pkg.Dependencies)+len(pkg.DevDependencies))
	for _, m := range []map[string]json.RawMessage{pkg.Dependencies, pkg.DevDependencies} {
		for name := range m {
			deps[name] = true
		}
	}
	return deps, true, nil
}

// FindTool resolves a program a capability runs: the absolute path in the
// environment variable env when it is set, else name from PATH. Resolving
// it up front turns a missing tool into one clear error instead of a
// worker that fails to start over and over; install says what to install.
func FindTool(env, name, install string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("%s=%q must be an absolute path", env, p)
		}
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("%s=%q: %w", env, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in PATH (install %s or set %s): %w", name, install, env, err)
	}
	return p, nil
}

// Ancestors is dir, cleaned, and each directory above it up to the root,
// nearest first: where Node.js looks for node_modules, and where a
// capability looks for a package the application depends on.
func Ancestors(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		out = append(out, d)
		if filepath.Dir(d) == d {
			return out
		}
	}
}
