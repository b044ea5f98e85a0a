package capabilities

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fake recognises a directory holding a file called marker; an empty marker
// matches everything, like a fallback would.
type fake struct {
	id     string
	marker string
	err    error
}

var _ Capability = (*fake)(nil)

func (f *fake) ID() string { return f.id }

func (f *fake) Detect(dir string) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	if f.marker == "" {
		return true, nil
	}
	_, err := os.Stat(filepath.Join(dir, f.marker))
	return err == nil, nil
}

func (f *fake) Prepare(App) (*Launch, error) { return &Launch{Argv: []string{f.id}}, nil }

// The registry is process-wide, so this file registers its fakes once and
// every test reads the same set.
func init() {
	// Registered fallback first and specific ones after, so the test proves
	// the order comes from the ids and not from registration order.
	Register(&fake{id: Fallback})
	Register(&fake{id: "zz-special", marker: "special.marker"})
	Register(&fake{id: "aa-other", marker: "other.marker"})
}

func TestIDsSorted(t *testing.T) {
	got := IDs()
	want := []string{"aa-other", Fallback, "zz-special"}
	if !slices.Equal(got, want) {
		t.Fatalf("IDs() = %v, want %v", got, want)
	}
}

func TestGet(t *testing.T) {
	c, err := Get("zz-special")
	if err != nil || c.ID() != "zz-special" {
		t.Fatalf("Get(zz-special) = %v, %v", c, err)
	}
	_, err = Get("python")
	if err == nil {
		t.Fatal("Get(python) succeeded")
	}
	for _, id := range IDs() {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("error %q does not list known id %q", err, id)
		}
	}
}

func TestRegisterDuplicatePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("registering a duplicate id did not panic")
		}
	}()
	Register(&fake{id: "zz-special"})
}

func TestRegisterEmptyPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("registering an empty id did not panic")
		}
	}()
	Register(&fake{id: ""})
}

func TestDetectOrder(t *testing.T) {
	dir := t.TempDir()
	c, err := Detect(dir)
	if err != nil || c.ID() != Fallback {
		t.Fatalf("plain dir: Detect = %v, %v; want the fallback", c, err)
	}

	// Both specific markers: the first by id wins, and both beat the
	// fallback even though it was registered first.
	for _, m := range []string{"special.marker", "other.marker"} {
		if err := os.WriteFile(filepath.Join(dir, m), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err = Detect(dir)
	if err != nil || c.ID() != "aa-other" {
		t.Fatalf("both markers: Detect = %v, %v; want aa-other", c, err)
	}
	if err := os.Remove(filepath.Join(dir, "other.marker")); err != nil {
		t.Fatal(err)
	}
	c, err = Detect(dir)
	if err != nil || c.ID() != "zz-special" {
		t.Fatalf("special marker: Detect = %v, %v; want zz-special", c, err)
	}
}

func TestDetectError(t *testing.T) {
	boom := errors.New("boom")
	mu.Lock()
	saved := registry["aa-other"]
	registry["aa-other"] = &fake{id: "aa-other", err: boom}
	mu.Unlock()
	defer func() {
		mu.Lock()
		registry["aa-other"] = saved
		mu.Unlock()
	}()
	if _, err := Detect(t.TempDir()); !errors.Is(err, boom) {
		t.Fatalf("Detect error = %v, want it to wrap %v", err, boom)
	}
}

func TestBasePath(t *testing.T) {
	for in, want := range map[string]string{
		"":           "",
		"  ":         "",
		"api":        "/api/",
		"/api":       "/api/",
		"//api//v1/": "/api/v1/",
		"/":          "/",
	} {
		if got := BasePath(in); got != want {
			t.Errorf("BasePath(%q) = %q, want %q", in, got, want)
		}
	}
}
