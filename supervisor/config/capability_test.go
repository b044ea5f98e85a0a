package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCapabilityAndCommandKeys(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"py", "bin"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"entrypoint":"py","applications":[
		{"id":"py","path":"py","capability":"command","command":"python3 -u app.py"},
		{"id":"bin","path":"bin","capability":"command","command":["./server","--flag"],"listenFds":true}]}`)
	cfg, err := Load(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	py, bin := cfg.Applications[0], cfg.Applications[1]
	if py.Capability != "command" || py.CommandLine != "python3 -u app.py" || py.Command != nil || py.ListenFDs || py.Pointer != "/applications/0" {
		t.Errorf("py = %+v", py)
	}
	if !reflect.DeepEqual(bin.Command, []string{"./server", "--flag"}) || bin.CommandLine != "" || !bin.ListenFDs || bin.Pointer != "/applications/1" {
		t.Errorf("bin = %+v", bin)
	}

	for _, bad := range []struct{ body, want string }{
		{`{"applications":[{"id":"a","path":"py","capability":"Next!"}]}`, "/applications/0/capability"},
		{`{"applications":[{"id":"a","path":"py","command":[]}]}`, "/applications/0/command"},
		{`{"applications":[{"id":"a","path":"py","command":3}]}`, "/applications/0/command"},
	} {
		write(bad.body)
		_, err := Load(dir, "", nil)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error at %s", bad.body, err, bad.want)
		}
	}
}

func TestDependencies(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a", "b", "c"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	write := func(body string) {
		os.WriteFile(filepath.Join(dir, "watt.json"), []byte(body), 0o644)
	}
	write(`{"entrypoint":"a","applications":[{"id":"a","path":"a","dependencies":["b","c"]},{"id":"b","path":"b","dependencies":["c"]},{"id":"c","path":"c"}]}`)
	cfg, err := Load(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Applications[0].Dependencies, []string{"b", "c"}) {
		t.Fatalf("%+v", cfg.Applications[0])
	}
	for _, bad := range []struct{ body, want string }{
		{`{"entrypoint":"a","applications":[{"id":"a","path":"a","dependencies":["x"]},{"id":"b","path":"b"}]}`, `/applications/0/dependencies/0: no application has id "x" (known: a, b)`},
		{`{"entrypoint":"a","applications":[{"id":"a","path":"a","dependencies":["a"]}]}`, "cannot depend on itself"},
		{`{"entrypoint":"a","applications":[{"id":"a","path":"a","dependencies":["b"]},{"id":"b","path":"b","dependencies":["c"]},{"id":"c","path":"c","dependencies":["a"]}]}`, "dependency cycle: a -> b -> c -> a"},
		// An unknown dependency elsewhere does not hide the cycle.
		{`{"entrypoint":"a","applications":[{"id":"a","path":"a","dependencies":["b"]},{"id":"b","path":"b","dependencies":["a"]},{"id":"c","path":"c","dependencies":["q"]}]}`, "dependency cycle: a -> b -> a"},
		{`{"entrypoint":"a","applications":[{"id":"a","path":"a","dependencies":["b"]},{"id":"b","path":"b","dependencies":["a"]},{"id":"c","path":"c","dependencies":["q"]}]}`, `no application has id "q"`},
	} {
		write(bad.body)
		_, err := Load(dir, "", nil)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s:\n%v\nwant %q", bad.body, err, bad.want)
		}
	}
}
