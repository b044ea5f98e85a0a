package procnet

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestReadFileMatchesOS(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000) // over the 4 KiB buffer, twice over
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/proc/self/cmdline", "/proc/self/statm", big, empty, big} {
		got, err := ReadFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		want, _ := os.ReadFile(p)
		if p == big && !bytes.Equal(got, want) || len(got) != len(want) {
			t.Errorf("%s: %d bytes, want %d", p, len(got), len(want))
		}
	}
	// The buffer is reused: what was returned must not change with it.
	first, _ := ReadFile(big)
	if _, err := ReadFile("/proc/self/statm"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, data) {
		t.Error("a returned file changed when the buffer was reused")
	}
	_, err := ReadFile(filepath.Join(t.TempDir(), "missing"))
	var pe *os.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Op != "open" {
		t.Errorf("missing file: %v, want a *PathError that is fs.ErrNotExist", err)
	}
	if _, err := ReadFile(t.TempDir()); err == nil {
		t.Error("a directory was read as a file")
	}
}

func TestCountEntriesMatchesReaddir(t *testing.T) {
	dir := t.TempDir()
	// Enough names of all lengths to take several getdents calls.
	for i := range 600 {
		name := strconv.Itoa(i) + string(bytes.Repeat([]byte{'x'}, i%40))
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{dir, t.TempDir(), "/proc/self/fd"} {
		f, err := os.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		n, err := countEntries(d)
		// /proc/self/fd holds one more fd while Readdirnames runs.
		if err != nil || n != len(names) && !(d == "/proc/self/fd" && n == len(names)-1) {
			t.Errorf("%s: %d entries (%v), Readdirnames %d", d, n, err, len(names))
		}
	}
	if _, err := countEntries(filepath.Join(dir, "0")); err == nil {
		t.Error("a file was counted as a directory")
	}
}
