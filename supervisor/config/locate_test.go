package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
		{name: "JSON5", files: []string{"watt.json5"}, want: "watt.json5"},
		{name: "JSON before JSON5", files: []string{"watt.json5", "watt.json"}, want: "watt.json"},
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

// TestLocateConfigNamedDirectory: a watt.json that is a directory (a bad
// bind mount, a mkdir -p gone wrong) is named as such, not "does not exist".
func TestLocateConfigNamedDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "watt.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := locate(dir, "")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "watt.json")+" is a directory") {
		t.Fatalf("locate = %v, want it to say watt.json is a directory", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("locate = %v, want it to still match fs.ErrNotExist", err)
	}
}

// TestLocateRefusesAFIFO: reading a FIFO as the config would block until
// someone writes to it; a reload stuck there holds off every later reload
// and scale.
func TestLocateRefusesAFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "watt.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"", fifo} {
		done := make(chan error, 1)
		go func() { _, err := LoadWith(Options{Dir: dir, File: file}); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("LoadWith(file %q) = %v, want not a regular file", file, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("LoadWith(file %q) blocks on the FIFO", file)
		}
	}
}

// TestLoadRefusesFIFOsItNames: the files the configuration names, or
// finds beside an application, are refused as well when they are a FIFO
// or a device, instead of blocking the load (a FIFO) or reading forever
// (/dev/zero).
func TestLoadRefusesFIFOsItNames(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "index.js"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		config string
		want   string
	}{
		{`{"envfile": "fifo", "applications": [{"id": "a", "path": "a"}]}`,
			"/envfile: cannot read env file " + filepath.Join(dir, "fifo") + ": not a regular file (a named pipe)"},
		{`{"applications": [{"id": "a", "path": "a", "envfile": "fifo"}]}`,
			"/applications/0/envfile: cannot read env file " + filepath.Join(dir, "fifo") + ": not a regular file (a named pipe)"},
		{`{"envfile": "/dev/zero", "applications": [{"id": "a", "path": "a"}]}`,
			"/envfile: cannot read env file /dev/zero: not a regular file (a device)"},
		{`{"applications": [{"id": "a", "path": "a", "config": "../fifo"}]}`,
			filepath.Join(dir, "fifo") + ": cannot read: not a regular file (a named pipe)"},
		{`{"applications": [{"id": "a", "path": "a"}]}`, // .env, a FIFO
			filepath.Join(dir, ".env") + ": cannot read env file: not a regular file (a named pipe)"},
	}
	for _, tt := range tests {
		if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(tt.config), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, ".env"))
		if strings.Contains(tt.want, ".env") {
			if err := os.Symlink("fifo", filepath.Join(dir, ".env")); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error, 1)
		go func() { _, err := LoadWith(Options{Dir: dir}); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: got %v, want %q", tt.config, err, tt.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Load blocks", tt.config)
		}
	}
}

// TestLocateProjectFile: a configuration file given where the project
// directory goes (wattd start watt.json) is named as a file, with the way
// to run it.
func TestLocateProjectFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "watt.json")
	if err := os.WriteFile(file, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := locate(file, "")
	if want := "project directory " + file + " is a file, not a directory; give its directory, or name the file with --config"; err == nil || err.Error() != want {
		t.Errorf("locate(%s) = %v; want %q", file, err, want)
	}
}
