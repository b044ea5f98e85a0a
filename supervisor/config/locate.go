package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// configExtensions are the formats Watt reads, in its order of
// preference; wattd reads all of them.
var configExtensions = []string{"json", "json5", "yaml", "yml", "toml", "tml"}

// configNames are the file names Watt looks for in a directory, in its
// order: watt.<ext> and platformatic.<ext> for each extension, then the
// same with a kind suffix (watt.runtime.json, platformatic.application.yaml,
// …). The same list finds an application's own configuration.
var configNames = func() []string {
	var names []string
	for _, ext := range configExtensions {
		names = append(names, "watt."+ext, "platformatic."+ext)
	}
	for _, suffix := range []string{"runtime", "service", "application", "db", "gateway", "composer"} {
		for _, ext := range configExtensions {
			names = append(names, "watt."+suffix+"."+ext, "platformatic."+suffix+"."+ext)
		}
	}
	return names
}()

// ReadsConfigFrom tells whether a file named base can be read by the
// configuration loader: a configuration file under any of Watt's names, a
// dotenv file (.env, .env.local, …) or a package.json, from which an
// application's id and entry come. wattd dev reloads the configuration
// when such a file changes, so that the restart it makes runs with it.
func ReadsConfigFrom(base string) bool {
	return base == "package.json" || base == ".env" || strings.HasPrefix(base, ".env.") || slices.Contains(configNames, base)
}

// Find returns the configuration file wattd start would read in dir
// (the first of Watt's names, in any format), or "" when there is none.
func Find(dir string) (string, error) { return findConfigFile(dir) }

// findConfigFile returns the first of configNames that is a file in dir,
// or "".
func findConfigFile(dir string) (string, error) {
	for _, name := range configNames {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err == nil && !info.IsDir() {
			if !info.Mode().IsRegular() {
				return "", notRegular(path, info)
			}
			return path, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", fmt.Errorf("configuration file: %w", err)
		}
	}
	return "", nil
}

// notRegular refuses a configuration file that is a FIFO, a socket or a
// device: reading a FIFO nobody writes to would hang the start, or a
// reload, and with it every later reload and scale.
func notRegular(path string, info fs.FileInfo) error {
	return fmt.Errorf("configuration file %s is not a regular file (%s)", path, info.Mode().Type())
}

// readRegular reads a file the configuration names (an env file, an
// application's own configuration, a PEM file), refusing a FIFO, a socket
// or a device as notRegular does: a FIFO nobody writes to would hang the
// start or the reload, and /dev/zero would never end.
func readRegular(path string) ([]byte, error) {
	if info, err := os.Stat(path); err == nil && !info.IsDir() && !info.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("not a regular file (%s)", fileKind(info.Mode()))}
	}
	return os.ReadFile(path)
}

// fileKind names what a non-regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// DirError is a configuration file given by name that is a directory.
type DirError struct{ Path string }

func (e *DirError) Error() string {
	return fmt.Sprintf("configuration file %s is a directory; pass the directory as the project directory instead", e.Path)
}

// locate returns the absolute path of the configuration file: file when
// given (relative to the working directory), otherwise the first of
// configNames in dir.
func locate(dir, file string) (string, error) {
	if file != "" {
		path, err := filepath.Abs(file)
		if err != nil {
			return "", fmt.Errorf("configuration file %s: %w", file, err)
		}
		info, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("configuration file %s does not exist: %w", path, fs.ErrNotExist)
		case err != nil:
			return "", fmt.Errorf("configuration file: %w", err)
		case info.IsDir():
			return "", &DirError{Path: path}
		case !info.Mode().IsRegular():
			return "", notRegular(path, info)
		}
		return path, nil
	}

	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("project directory %s: %w", dir, err)
	}
	info, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("project directory %s does not exist: %w", abs, fs.ErrNotExist)
	case err != nil:
		return "", fmt.Errorf("project directory: %w", err)
	case info.Mode().IsRegular():
		return "", fmt.Errorf("project directory %s is a file, not a directory; give its directory, or name the file with --config", abs)
	case !info.IsDir():
		return "", fmt.Errorf("project directory %s is not a directory", abs)
	}

	path, err := findConfigFile(abs)
	if err != nil {
		return "", err
	}
	if path != "" {
		return path, nil
	}
	// A directory of a config file's name is skipped by the search, but
	// "does not exist" would send the operator looking for the wrong thing.
	for _, name := range configNames {
		if p := filepath.Join(abs, name); isDir(p) {
			return "", fmt.Errorf("no configuration file: %s is a directory, not a file (and no other name Watt reads exists in %s): %w", p, abs, fs.ErrNotExist)
		}
	}
	return "", fmt.Errorf("no configuration file: %s does not exist (nor does platformatic.json, watt.yaml, watt.toml or any other name Watt reads in that directory); wattd init writes one for the applications it finds there: %w",
		filepath.Join(abs, configNames[0]), fs.ErrNotExist)
}

func isDir(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}
