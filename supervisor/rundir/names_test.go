package rundir

import (
	"errors"
	"strings"
	"testing"
)

// named creates a served runtime directory for a fresh project, called name.
func named(t *testing.T, name string) *Dir {
	t.Helper()
	d := mustCreate(t, shortTemp(t))
	d.SetName(name)
	if err := d.WriteInfo("/x/watt.json", "test"); err != nil {
		t.Fatal(err)
	}
	serveAdmin(t, d)
	return d
}

func TestFindByName(t *testing.T) {
	useBase(t)
	a, b := named(t, "alpha"), named(t, "beta")
	for name, d := range map[string]*Dir{"alpha": a, "beta": b} {
		got, err := Find(FindOptions{Name: name, Cwd: "/"})
		if err != nil || got != d.AdminSocket() {
			t.Errorf("Find(name %s) = %q, %v; want %s", name, got, err, d.AdminSocket())
		}
	}
	// The name wins over the directory a ctl runs in.
	if got, err := Find(FindOptions{Name: "beta", Cwd: a.Info().ProjectDir}); err != nil || got != b.AdminSocket() {
		t.Errorf("Find(name beta, in alpha's project) = %q, %v; want beta's", got, err)
	}

	_, err := Find(FindOptions{Name: "gamma", Cwd: "/"})
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "alpha") || !strings.Contains(err.Error(), "beta") {
		t.Errorf("Find(name gamma) error = %v; want ErrNotRunning listing alpha and beta", err)
	}
	_, err = Find(FindOptions{Cwd: "/"})
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "alpha: ") || !strings.Contains(err.Error(), "--name") {
		t.Errorf("Find() error = %v; want ErrAmbiguous listing names and saying --name", err)
	}

	if err := NameTaken("alpha", b.Path); !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), "--name") {
		t.Errorf("NameTaken(alpha) from beta's directory = %v, want ErrNameTaken", err)
	}
	if err := NameTaken("alpha", a.Path); err != nil {
		t.Errorf("NameTaken(alpha) from alpha's own directory = %v", err)
	}
	if err := NameTaken("gamma", b.Path); err != nil {
		t.Errorf("NameTaken(gamma) = %v", err)
	}
}

func TestFindByNameDuplicates(t *testing.T) {
	useBase(t)
	a, b := named(t, "same"), named(t, "same")
	_, err := Find(FindOptions{Name: "same", Cwd: "/"})
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), a.AdminSocket()) || !strings.Contains(err.Error(), b.AdminSocket()) {
		t.Errorf("Find(name same) error = %v; want ErrAmbiguous listing both sockets", err)
	}
}

func TestNames(t *testing.T) {
	for _, n := range []string{"api", "shop-eu.1", "A_b"} {
		if err := ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "a b", "a/b", strings.Repeat("x", 65), "é"} {
		if err := ValidName(n); err == nil {
			t.Errorf("ValidName(%q) = nil, want an error", n)
		}
	}
	for dir, want := range map[string]string{"/srv/shop": "shop", "/srv/my app": "my-app", "/srv/shop/": "shop", "/": "wattd"} {
		if got := NameFor(dir); got != want {
			t.Errorf("NameFor(%q) = %q, want %q", dir, got, want)
		}
		if err := ValidName(NameFor(dir)); err != nil {
			t.Errorf("NameFor(%q) is not valid: %v", dir, err)
		}
	}
}
