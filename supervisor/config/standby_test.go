package config

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

func TestStandbyDefaultAndValue(t *testing.T) {
	dir := writeProject(t, map[string]string{
		"a/index.js":      "",
		"apps/b/index.js": "",
		"apps/c/index.js": "",
		"watt.json": `{"entrypoint":"a","applications":[{"id":"a","path":"a","standby":2}],
			"autoload":{"path":"apps","mappings":{"c":{"id":"c","standby":1}}}}`,
	})
	cfg, err := Load(dir, filepath.Join(dir, "watt.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"a": 2, "b": 0, "c": 1}
	for _, a := range cfg.Applications {
		if a.Standby != want[a.ID] {
			t.Errorf("app %q: standby = %d, want %d", a.ID, a.Standby, want[a.ID])
		}
	}
	if len(cfg.Applications) != 3 {
		t.Errorf("%d applications, want 3", len(cfg.Applications))
	}
}

func TestCheckStandby(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantMsg string
	}{
		{"0", 0, ""},
		{"3", 3, ""},
		{"16", 16, ""},
		{"17", 0, "expected a standby worker count from 0 to 16, got 17"},
		{"-1", 0, "expected a standby worker count from 0 to 16, got -1"},
		{"1.5", 0, "expected a standby worker count from 0 to 16, got 1.5"},
	}
	for _, tt := range tests {
		n := json.Number(tt.in)
		got, msg := checkStandby(&n)
		if got != tt.want || msg != tt.wantMsg {
			t.Errorf("checkStandby(%s) = %d, %q; want %d, %q", tt.in, got, msg, tt.want, tt.wantMsg)
		}
	}
}
