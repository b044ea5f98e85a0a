package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// projectCopy writes into dir a copy of the fixture project's watt.json
// with every application's path made absolute, after edit has changed it:
// edit gets the whole configuration and each application in turn. The
// scenarios that need a variant of a fixture (standby workers, metrics or
// tracing on, a new environment to roll to) run such a copy, so the fixtures
// themselves stay as they are. The file is replaced atomically, because the
// reload scenario rewrites it under a running wattd.
func projectCopy(fixture, dir string, edit func(cfg, app map[string]any)) error {
	src := filepath.Join(fixture, "watt.json")
	raw, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	apps, _ := cfg["applications"].([]any)
	for _, a := range apps {
		app, ok := a.(map[string]any)
		if !ok {
			continue
		}
		if p, ok := app["path"].(string); ok && !filepath.IsAbs(p) {
			app["path"] = filepath.Join(fixture, p)
		}
		if edit != nil {
			edit(cfg, app)
		}
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".watt.json.tmp")
	if err := os.WriteFile(tmp, append(out, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "watt.json"))
}
