package capabilities

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestPackageDeps(t *testing.T) {
	for _, c := range []struct {
		name, pkg string
		dir       bool
		ok        bool
		want      []string
	}{
		{name: "none"},
		{name: "folder named package.json", dir: true},
		{name: "broken", pkg: `{"dependencies":`},
		{name: "both lists", pkg: `{"dependencies":{"next":"16"},"devDependencies":{"vite":"8"}}`, ok: true, want: []string{"next", "vite"}},
		{name: "no deps", pkg: `{"name":"x"}`, ok: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			switch {
			case c.dir:
				os.Mkdir(filepath.Join(d, "package.json"), 0o755)
			case c.pkg != "":
				os.WriteFile(filepath.Join(d, "package.json"), []byte(c.pkg), 0o644)
			}
			deps, ok, err := PackageDeps(d)
			if err != nil || ok != c.ok || len(deps) != len(c.want) {
				t.Fatalf("deps %v ok %v err %v", deps, ok, err)
			}
			for _, w := range c.want {
				if !deps[w] {
					t.Fatalf("missing %s in %v", w, deps)
				}
			}
		})
	}
	if err := RequireDir(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("RequireDir of a missing folder")
	}
}

func TestAncestors(t *testing.T) {
	for dir, want := range map[string][]string{
		"/srv/app/":   {"/srv/app", "/srv", "/"},
		"/srv/./a/..": {"/srv", "/"},
		"/":           {"/"},
		"rel/x":       {"rel/x", "rel", "."},
	} {
		if got := Ancestors(dir); !slices.Equal(got, want) {
			t.Errorf("Ancestors(%q) = %q, want %q", dir, got, want)
		}
	}
}
