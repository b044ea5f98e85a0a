package exechelper

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestLookPathAsOsExec: the helper's own search finds what os/exec finds,
// and refuses what it refuses, for every kind of name and PATH.
func TestLookPathAsOsExec(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	other := filepath.Join(dir, "other")
	for _, d := range []string{bin, other, filepath.Join(bin, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin, "prog"), 0o755)
	write(filepath.Join(other, "prog"), 0o755) // shadowed by bin's
	write(filepath.Join(bin, "plain"), 0o644)  // not executable
	write(filepath.Join(other, "plain"), 0o755)
	write(filepath.Join(dir, "here"), 0o755) // found only through "." or ""
	t.Chdir(dir)

	cases := []struct{ path, file string }{
		{bin + ":" + other, "prog"},
		{other + ":" + bin, "prog"},
		{bin + ":" + other, "plain"}, // skips the file without an execute bit
		{bin, "plain"},
		{bin, "missing"},
		{bin, "sub"}, // a directory
		{"", "prog"}, // empty PATH: nothing is searched
		{":" + bin, "here"},
		{"." + ":" + bin, "here"},
		{bin + "::", "prog"},
		{bin, filepath.Join(bin, "prog")},  // with a slash: as it is
		{bin, filepath.Join(bin, "plain")}, // ... and checked
		{bin, filepath.Join(bin, "nope")},
		{bin, "./here"},
		{bin, "bin/prog"},
	}
	for _, c := range cases {
		t.Setenv("PATH", c.path)
		want, wantErr := exec.LookPath(c.file)
		got, err := lookPath(c.file)
		if (err == nil) != (wantErr == nil) || (err == nil && got != want) {
			t.Errorf("PATH=%q %q: lookPath = %q, %v; os/exec: %q, %v", c.path, c.file, got, err, want, wantErr)
			continue
		}
		if wantErr != nil && errors.Is(wantErr, exec.ErrNotFound) && err.Error() != wantErr.Error() {
			t.Errorf("PATH=%q %q: error %q, os/exec says %q", c.path, c.file, err, wantErr)
		}
	}
}

func TestProgramEnv(t *testing.T) {
	env := []string{"A=1", EnvJoin + "=/sys/fs/cgroup/x", "B=" + EnvJoin + "=kept", EnvJoin + "X=kept"}
	got := ProgramEnv(env, 4242)
	want := []string{"A=1", "B=" + EnvJoin + "=kept", EnvJoin + "X=kept", "LISTEN_PID=4242"}
	if !slices.Equal(got, want) {
		t.Fatalf("ProgramEnv = %q, want %q", got, want)
	}
	if env[1] != EnvJoin+"=/sys/fs/cgroup/x" {
		t.Fatal("ProgramEnv changed its argument")
	}
}

func TestSmallHelpers(t *testing.T) {
	for _, n := range []int{0, 1, 9, 10, 4194304, -7} {
		if got := itoa(n); got != strconv.Itoa(n) {
			t.Errorf("itoa(%d) = %q", n, got)
		}
	}
	for _, s := range []string{"", ":", "a", "a:b", ":a:", "/x/y::/z"} {
		if got := split(s); !slices.Equal(got, strings.Split(s, ":")) {
			t.Errorf("split(%q) = %q", s, got)
		}
	}
}

func TestJoinFailsForAVanishedGroup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	t.Setenv(EnvJoin, dir)
	err := Join()
	if err == nil || !strings.Contains(err.Error(), "join cgroup "+dir) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Join = %v, want a join error naming %s", err, dir)
	}
	if _, ok := os.LookupEnv(EnvJoin); ok {
		t.Fatalf("%s still set", EnvJoin)
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); !os.IsNotExist(err) {
		t.Fatal("the join created a file")
	}
}

// TestJoinWritesThePid joins a "group" that is a plain directory: the
// helper writes its pid into each named directory's cgroup.procs.
func TestJoinWritesThePid(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(EnvJoin, a+"::"+b)
	if err := Join(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{a, b} {
		got, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil || string(got) != strconv.Itoa(os.Getpid()) {
			t.Fatalf("%s/cgroup.procs = %q, %v; want this pid", d, got, err)
		}
	}
}

// TestJoinMovesTheThreadOnV1: the helper's join writes "0" into a v1
// group's tasks file (the calling thread, which then execs), and the pid
// into cgroup.procs where there is no tasks file (v2); Join, for a
// process that goes on running, always moves the process.
func TestJoinMovesTheThreadOnV1(t *testing.T) {
	v1, v2 := t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(v1, "tasks"), filepath.Join(v1, "cgroup.procs"), filepath.Join(v2, "cgroup.procs")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(f string) string {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Setenv(EnvJoin, v1+":"+v2)
	if err := joinEnv(true); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(os.Getpid())
	if got := read(filepath.Join(v1, "tasks")); got != "0" {
		t.Errorf("v1 tasks = %q, want 0 (the calling thread)", got)
	}
	if got := read(filepath.Join(v1, "cgroup.procs")); got != "" {
		t.Errorf("v1 cgroup.procs = %q, want it untouched", got)
	}
	if got := read(filepath.Join(v2, "cgroup.procs")); got != pid {
		t.Errorf("v2 cgroup.procs = %q, want %s", got, pid)
	}
	t.Setenv(EnvJoin, v1)
	if err := Join(); err != nil {
		t.Fatal(err)
	}
	if got := read(filepath.Join(v1, "cgroup.procs")); got != pid {
		t.Errorf("Join: v1 cgroup.procs = %q, want %s", got, pid)
	}
}
