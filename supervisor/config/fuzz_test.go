package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzNames are the configuration file names FuzzLoad writes its input
// as, picked by the input's first byte: each format's decoder in turn.
var fuzzNames = []string{"watt.json", "platformatic.json", "watt.yaml", "watt.yml", "watt.toml", "platformatic.application.json"}

// fuzzSeeds are the real configurations FuzzLoad starts from: the
// repository's Watt projects, examples and test applications, each with
// its .env when it has one.
func fuzzSeeds(f *testing.F) {
	root, err := filepath.Abs(filepath.Join("..", "..", "testdata"))
	if err != nil {
		f.Fatal(err)
	}
	for _, sub := range []string{"watt", "examples", "apps"} {
		err := filepath.WalkDir(filepath.Join(root, sub), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && path != filepath.Join(root, sub) {
					return filepath.SkipDir
				}
				return nil
			}
			name := d.Name()
			kind := -1
			for i, n := range fuzzNames {
				if n == name {
					kind = i
				}
			}
			if kind < 0 && (strings.HasPrefix(name, "platformatic.") || strings.HasPrefix(name, "watt.")) {
				kind = 0
			}
			if kind < 0 {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			env, _ := os.ReadFile(filepath.Join(filepath.Dir(path), ".env"))
			f.Add(uint8(kind), data, env)
			return nil
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	// Shapes the real files do not have.
	f.Add(uint8(0), []byte("\ufeff{\"applications\":[{\"id\":\"a\",\"path\":\"a\"}]}"), []byte("A=1\r\nexport B=\"x\ny\"\n"))
	f.Add(uint8(0), []byte(`{"workers":"{W}","server":{"port":"{P}"},"applications":[{"id":"{ID}","path":"{DIR}"}]}`), []byte("W=2\nP=0\nID=a\nDIR=a\n"))
	f.Add(uint8(2), []byte("applications:\n  - id: a\n    path: a\n    workers: {W}\n"), []byte("W=1e3\n"))
	f.Add(uint8(4), []byte("workers = 2\n[[applications]]\nid = \"a\"\npath = \"a\"\n"), []byte(nil))
	// Deep nesting once took gigabytes: JSON, YAML and TOML.
	f.Add(uint8(0), []byte(strings.Repeat("[", 30000)+strings.Repeat("]", 30000)), []byte(nil))
	f.Add(uint8(2), []byte("a: "+strings.Repeat("[", 30000)+strings.Repeat("]", 30000)), []byte(nil))
	f.Add(uint8(4), []byte("a = "+strings.Repeat("{b=", 20000)+"1"+strings.Repeat("}", 20000)), []byte(nil))
	f.Add(uint8(0), []byte("\xff\xfe{\x00}\x00"), []byte("A=\x00\n"))
}

// FuzzLoad feeds LoadWith a configuration file (in the format the first
// argument picks) and a .env beside it, in a project with one
// application directory "a". Whatever the input, Load must return within
// two seconds, without panicking, and a failure must name the file it is
// about: a configuration error through Error.File, anything else in its
// message.
func FuzzLoad(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, kind uint8, data, dotenv []byte) {
		if len(data) > 64<<10 || len(dotenv) > 64<<10 {
			return
		}
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a", "index.js"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		name := fuzzNames[int(kind)%len(fuzzNames)]
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if dotenv != nil {
			if err := os.WriteFile(filepath.Join(dir, ".env"), dotenv, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		type result struct {
			cfg *Config
			err error
		}
		done := make(chan result, 1)
		go func() {
			cfg, err := LoadWith(Options{Dir: dir, Environ: []string{"HOME=/nonexistent"}})
			done <- result{cfg, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("Load of a %d-byte %s did not return within 2s", len(data), name)
		}
		if r.err == nil {
			if r.cfg == nil {
				t.Fatal("Load returned neither a configuration nor an error")
			}
			return
		}
		if !errors.Is(r.err, ErrInvalid) {
			if !strings.Contains(r.err.Error(), dir) {
				t.Fatalf("error names no file: %v", r.err)
			}
			return
		}
		var list ErrorList
		var one *Error
		switch {
		case errors.As(r.err, &list):
		case errors.As(r.err, &one):
			list = ErrorList{one}
		default:
			t.Fatalf("ErrInvalid without an *Error: %v", r.err)
		}
		for _, e := range list {
			if e.File == "" || !strings.HasPrefix(e.File, dir) {
				t.Fatalf("error names no file of the project: %q", e.Error())
			}
			if e.Message == "" {
				t.Fatalf("error without a message: %q", e.Error())
			}
		}
	})
}
