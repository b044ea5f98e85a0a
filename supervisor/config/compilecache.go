package config

import (
	"encoding/json"
	"path/filepath"
)

// DefaultCompileCacheDir is where an application's compile cache goes when
// its "compileCache" names no directory, relative to the application's
// directory, as in Watt.
const DefaultCompileCacheDir = ".plt/compile-cache"

// compileCache is one "compileCache" value: true, false or
// {"enabled", "directory"}. The schema has checked its shape. Fields left
// nil were not written, so that an application's value overrides the
// runtime's key by key.
type compileCache struct {
	enabled   *bool
	directory *string
}

// parseCompileCache reads a "compileCache" value; the boolean form sets
// only "enabled", and the object form is enabled unless it says otherwise
// (Watt's schema default).
func parseCompileCache(raw json.RawMessage) compileCache {
	var c compileCache
	if len(raw) == 0 {
		return c
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		c.enabled = &b
		return c
	}
	var o struct {
		Enabled   *bool   `json:"enabled"`
		Directory *string `json:"directory"`
	}
	if json.Unmarshal(raw, &o) != nil {
		return c
	}
	on := true
	if o.Enabled != nil {
		on = *o.Enabled
	}
	c.enabled = &on
	c.directory = o.Directory
	return c
}

// with returns c overridden by the keys app sets.
func (c compileCache) with(app compileCache) compileCache {
	if app.enabled != nil {
		c.enabled = app.enabled
	}
	if app.directory != nil {
		c.directory = app.directory
	}
	return c
}

// compileCacheDir is the directory of the compile cache c describes for
// the application in appDir: a relative directory is taken from appDir.
// "" when c is off (or appDir is unknown).
func compileCacheDir(c compileCache, appDir string) string {
	if c.enabled == nil || !*c.enabled || appDir == "" {
		return ""
	}
	dir := DefaultCompileCacheDir
	if c.directory != nil && *c.directory != "" {
		dir = *c.directory
	}
	if filepath.IsAbs(dir) {
		return filepath.Clean(dir)
	}
	return filepath.Join(appDir, filepath.FromSlash(dir))
}
