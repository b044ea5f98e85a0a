package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocate(t *testing.T) {
	tests := []struct {
		name    string
		files   []string // created in the project directory
		file    string   // explicit file, relative to the project directory
		want    string   // expected file name, relative to the project directory
		wantErr string   // substring of the error
	}{
		{name: "watt.json", files: []string{"watt.json"}, want: "watt.json"},
		{name: "watt.json preferred", files: []string{"platformatic.json", "watt.json"}, want: "watt.json"},
		{name: "platformatic.json", files: []string{"platformatic.json"}, want: "platformatic.json"},
		{name: "runtime suffix", files: []string{"platformatic.runtime.json"}, want: "platformatic.runtime.json"},
		{name: "plain name before suffix", files: []string{"watt.runtime.json", "platformatic.json"}, want: "platformatic.json"},
		{name: "explicit file", files: []string{"watt.json", "other.json"}, file: "other.json", want: "other.json"},
		{name: "nothing", wantErr: "no configuration file"},
		{name: "YAML only", files: []string{"watt.yml"}, want: "watt.yml"},
		{name: "Watt's order", files: []string{"platformatic.toml", "watt.yaml", "watt.runtime.json"}, want: "watt.yaml"},
		{name: "JSON before YAML", files: []string{"platformatic.json", "watt.yaml"}, want: "platformatic.json"},
		{name: "JSON5 is named", files: []string{"watt.json5"}, wantErr: "is JSON5, which wattd does not read"},
		{name: "kind suffix", files: []string{"platformatic.application.yml"}, want: "platformatic.application.yml"},
		{name: "explicit directory", files: []string{"sub/watt.json"}, file: "sub", wantErr: "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			file := tt.file
			if file != "" {
				file = filepath.Join(dir, file)
			}
			got, err := locate(dir, file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, tt.want); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func TestLocateRelativeFile(t *testing.T) {
	got, err := locate("", "testdata/valid/minimal/watt.json")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs("testdata/valid/minimal/watt.json")
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := locate("", "testdata/valid/minimal/nope.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
