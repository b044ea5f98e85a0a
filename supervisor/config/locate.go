package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// configNames are the JSON file names Watt looks for in a project
// directory, in Watt's order of preference. Watt also reads the same names
// as JSON5, YAML and TOML; wattd reads JSON only.
var configNames = []string{"watt.json", "platformatic.json", "watt.runtime.json", "platformatic.runtime.json"}

// otherFormats are the extensions Watt accepts and wattd does not, looked
// for only to explain why nothing was found.
var otherFormats = []string{"json5", "yaml", "yml", "toml", "tml"}

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
			return "", fmt.Errorf("configuration file %s is a directory; pass the directory as the project directory instead", path)
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
	case !info.IsDir():
		return "", fmt.Errorf("project directory %s is not a directory", abs)
	}

	for _, name := range configNames {
		path := filepath.Join(abs, name)
		info, err := os.Stat(path)
		if err == nil && !info.IsDir() {
			return path, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("configuration file: %w", err)
		}
	}

	for _, base := range []string{"watt", "platformatic", "watt.runtime", "platformatic.runtime"} {
		for _, ext := range otherFormats {
			path := filepath.Join(abs, base+"."+ext)
			if _, err := os.Stat(path); err == nil {
				return "", fmt.Errorf("found %s, but wattd reads only JSON configuration files; convert it to %s",
					path, filepath.Join(abs, base+".json"))
			}
		}
	}
	return "", fmt.Errorf("no configuration file: %s does not exist (nor does %s in that directory): %w",
		filepath.Join(abs, configNames[0]), strings.Join(configNames[1:], ", "), fs.ErrNotExist)
}
