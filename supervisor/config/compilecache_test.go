package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCompileCache(t *testing.T) {
	tests := []struct {
		name    string
		runtime string // the top-level key's JSON, "" for none
		app     string // application a's key, "" for none
		want    string // a's directory, relative to the project; "-" for off
		wantB   string // b (no key of its own)
	}{
		{name: "absent", want: "-", wantB: "-"},
		{name: "runtime true", runtime: `true`, want: "a/.plt/compile-cache", wantB: "b/.plt/compile-cache"},
		{name: "runtime false", runtime: `false`, want: "-", wantB: "-"},
		{name: "object on by default", runtime: `{}`, want: "a/.plt/compile-cache", wantB: "b/.plt/compile-cache"},
		{name: "object off", runtime: `{"enabled":false,"directory":"cc"}`, want: "-", wantB: "-"},
		{name: "relative directory per app", runtime: `{"directory":"cc"}`, want: "a/cc", wantB: "b/cc"},
		{name: "absolute directory", runtime: `{"directory":"/var/cache/x"}`, want: "/var/cache/x", wantB: "/var/cache/x"},
		{name: "app turns it off", runtime: `true`, app: `false`, want: "-", wantB: "b/.plt/compile-cache"},
		{name: "app object off", runtime: `true`, app: `{"enabled":false}`, want: "-", wantB: "b/.plt/compile-cache"},
		{name: "app turns it on", app: `true`, want: "a/.plt/compile-cache", wantB: "-"},
		{name: "app keeps runtime directory", runtime: `{"enabled":false,"directory":"/x"}`, app: `true`, want: "/x", wantB: "-"},
		{name: "app directory wins", runtime: `{"directory":"/x"}`, app: `{"directory":"mine"}`, want: "a/mine", wantB: "/x"},
		{name: "object at app level is on", runtime: `false`, app: `{"directory":"mine"}`, want: "a/mine", wantB: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := ""
			if tt.runtime != "" {
				top = `"compileCache":` + tt.runtime + `,`
			}
			own := ""
			if tt.app != "" {
				own = `,"compileCache":` + tt.app
			}
			dir := writeProject(t, map[string]string{
				"a/index.js": "",
				"b/index.js": "",
				"watt.json":  `{` + top + `"entrypoint":"a","applications":[{"id":"a","path":"a"` + own + `},{"id":"b","path":"b"}]}`,
			})
			cfg, err := Load(dir, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range cfg.Applications {
				want := map[string]string{"a": tt.want, "b": tt.wantB}[a.ID]
				switch {
				case want == "-":
					want = ""
				case !filepath.IsAbs(want):
					want = filepath.Join(dir, want)
				}
				if a.CompileCache != want {
					t.Errorf("app %s: CompileCache = %q, want %q", a.ID, a.CompileCache, want)
				}
			}
			for _, w := range cfg.Warnings {
				if strings.Contains(w, "compileCache") {
					t.Errorf("warning about a key wattd reads: %s", w)
				}
			}
		})
	}
}

func TestCompileCacheAutoloadMapping(t *testing.T) {
	dir := writeProject(t, map[string]string{
		"apps/a/index.js": "",
		"apps/b/index.js": "",
		"watt.json":       `{"entrypoint":"a","autoload":{"path":"apps","mappings":{"b":{"id":"b","compileCache":true}}}}`,
	})
	cfg, err := Load(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range cfg.Applications {
		got[a.ID] = a.CompileCache
	}
	if got["a"] != "" || got["b"] != filepath.Join(dir, "apps/b/.plt/compile-cache") {
		t.Errorf("compile caches = %v; want a off and b in apps/b/.plt/compile-cache", got)
	}
}

func TestCompileCacheInvalid(t *testing.T) {
	for _, tt := range []struct{ cfg, ptr string }{
		{`{"compileCache":"yes","entrypoint":"a","applications":[{"id":"a","path":"a"}]}`, "/compileCache"},
		{`{"compileCache":{"enabled":"yes"},"entrypoint":"a","applications":[{"id":"a","path":"a"}]}`, "/compileCache/enabled"},
		{`{"compileCache":{"dir":"x"},"entrypoint":"a","applications":[{"id":"a","path":"a"}]}`, "/compileCache"},
		{`{"entrypoint":"a","applications":[{"id":"a","path":"a","compileCache":{"directory":""}}]}`, "/applications/0/compileCache"},
	} {
		dir := writeProject(t, map[string]string{"a/index.js": "", "watt.json": tt.cfg})
		_, err := Load(dir, "", nil)
		if err == nil {
			t.Errorf("%s: loaded", tt.cfg)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tt.ptr) || !strings.Contains(msg, "watt.json") {
			t.Errorf("%s: error %q does not name watt.json and %s", tt.cfg, msg, tt.ptr)
		}
	}
}
