package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestApplicationRestartOnError: an entry's own restartOnError overrides
// the runtime's, in each of Watt's forms; without one the runtime's holds.
func TestApplicationRestartOnError(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"off", "delay", "on", "inherit"} {
		if err := os.MkdirAll(filepath.Join(dir, id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, id, "index.js"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := `{"restartOnError": 2000, "entrypoint": "on", "applications": [
		{"id": "off", "path": "off", "restartOnError": false},
		{"id": "delay", "path": "delay", "restartOnError": 500},
		{"id": "on", "path": "on", "restartOnError": true},
		{"id": "inherit", "path": "inherit"}]}`
	if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	want := map[string]*RestartOnError{
		"off":     {},
		"delay":   {Enabled: true, Delay: 500 * time.Millisecond},
		"on":      {Enabled: true, Delay: DefaultRestartDelay},
		"inherit": nil,
	}
	for _, a := range cfg.Applications {
		got, w := a.RestartOnError, want[a.ID]
		if (got == nil) != (w == nil) || got != nil && *got != *w {
			t.Errorf("app %s: restartOnError %+v, want %+v", a.ID, got, w)
		}
	}
	if cfg.RestartOnError != (RestartOnError{Enabled: true, Delay: 2 * time.Second}) {
		t.Errorf("runtime restartOnError %+v", cfg.RestartOnError)
	}
}
