package next

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wattd/wattd/capabilities"
)

// TestAfterBuildCopiesStaticIntoStandalone: after a standalone build the
// static chunks and public files sit beside server.js, replacing a stale
// copy, so `wattd start` needs no manual step.
func TestAfterBuildCopiesStaticIntoStandalone(t *testing.T) {
	app := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(app, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".next/BUILD_ID", "b1")
	write(".next/required-server-files.json", `{"relativeAppDir":"web","config":{"output":"standalone","distDir":".next"}}`)
	write(".next/standalone/web/server.js", "// server")
	write(".next/static/chunks/a.js", "chunk")
	write("public/logo.svg", "<svg/>")
	write(".next/standalone/web/.next/static/chunks/stale.js", "old")

	c := &Capability{}
	if err := c.AfterBuild(capabilities.App{ID: "web", Dir: app}); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{
		".next/standalone/web/.next/static/chunks/a.js": "chunk",
		".next/standalone/web/public/logo.svg":          "<svg/>",
	} {
		b, err := os.ReadFile(filepath.Join(app, rel))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v", rel, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(app, ".next/standalone/web/.next/static/chunks/stale.js")); !os.IsNotExist(err) {
		t.Error("a stale chunk from an earlier build survived")
	}
	// The standalone build now starts without complaint.
	b, err := FindBuild(app)
	if err != nil {
		t.Fatal(err)
	}
	if script, _, err := standaloneServer(app, b); err != nil || script == "" {
		t.Fatalf("standalone server after AfterBuild: %q %v", script, err)
	}
}

func TestAfterBuildIgnoresOtherOutputs(t *testing.T) {
	app := t.TempDir()
	os.MkdirAll(filepath.Join(app, ".next"), 0o755)
	os.WriteFile(filepath.Join(app, ".next", "BUILD_ID"), []byte("x"), 0o644)
	if err := (&Capability{}).AfterBuild(capabilities.App{ID: "web", Dir: app}); err != nil {
		t.Fatal(err)
	}
	if err := (&Capability{}).AfterBuild(capabilities.App{ID: "web", Dir: t.TempDir()}); err != nil {
		t.Fatalf("no build at all: %v", err)
	}
}
