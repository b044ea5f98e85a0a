package config

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEditorSchemaTakesWhatWattdLoads: the schema wattd schema prints
// accepts the files wattd loads as they are written (placeholders, numbers
// and booleans as strings, Watt's options wattd ignores with a warning,
// unknown keys in an application entry), and still refuses what wattd
// refuses (an unknown key of the runtime, a wrong type, a typo).
func TestEditorSchemaTakesWhatWattdLoads(t *testing.T) {
	s, err := newSchemaSet(EditorSchema())
	if err != nil {
		t.Fatal(err)
	}
	valid := func(t *testing.T, name string, text []byte) []string {
		t.Helper()
		d := json.NewDecoder(bytes.NewReader(text))
		d.UseNumber()
		var tree any
		if err := d.Decode(&tree); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var problems []string
		for _, i := range s.validate(tree) {
			problems = append(problems, i.ptr+": "+i.msg)
		}
		return problems
	}
	files, _ := filepath.Glob("../../testdata/examples/*/watt.json")
	for _, p := range []string{"express", "fastify", "generated", "next", "node"} {
		files = append(files, "../../testdata/watt/"+p+"/watt.json")
	}
	more, _ := filepath.Glob("testdata/valid/*/watt.json")
	files = append(files, more...)
	if len(files) < 15 {
		t.Fatalf("only %d files found: %v", len(files), files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if p := valid(t, f, b); len(p) > 0 {
			t.Errorf("%s is refused:\n%s", f, strings.Join(p, "\n"))
		}
	}

	// Written as wattd accepts them, each loading (warnings aside).
	loads := map[string]string{
		"placeholders and strings": `{"server": {"hostname": "{HOST}", "port": "{PORT}"}, "workers": "2", "restartOnError": "false",
			"sourceMaps": "true", "entrypoint": "web", "applications": [{"id": "web", "path": "web", "workers": "{W}"}]}`,
		"Watt 2's options": `{"allowCycles": true, "hotReload": false, "logger": {"level": "info", "transport": {"target": "pino-pretty"}},
			"server": {"port": 3000, "http2": true}, "services": [{"id": "web", "path": "web", "useHttp": true, "url": "x"}]}`,
		"unknown keys of an application": `{"applications": [{"id": "web", "path": "web", "somethingNew": 1}]}`,
		"Watt's exporter options": `{"telemetry": {"applicationName": "a", "exporter": [{"type": "otlp", "options": {"url": "http://x", "keepAlive": true}}]},
			"applications": [{"id": "web", "path": "web"}]}`,
	}
	for name, text := range loads {
		t.Run(name, func(t *testing.T) {
			if _, _, err := loadWattProject(t, map[string]string{"watt.json": text, "web/index.js": ""},
				Options{Environ: []string{"HOST=127.0.0.1", "PORT=3000", "W=2"}}); err != nil {
				t.Fatalf("wattd does not load it: %v", err)
			}
			if p := valid(t, name, []byte(text)); len(p) > 0 {
				t.Errorf("refused:\n%s", strings.Join(p, "\n"))
			}
		})
	}
	refused := map[string]string{
		"an unknown key of the runtime": `{"bogus": 1, "applications": []}`,
		"a typo":                        `{"server": {"prot": 3000}}`,
		"a wrong type":                  `{"server": {"port": [3000]}}`,
		"an application without an id":  `{"applications": [{"path": "web"}]}`,
	}
	for name, text := range refused {
		t.Run(name, func(t *testing.T) {
			if len(valid(t, name, []byte(text))) == 0 {
				t.Error("accepted")
			}
		})
	}
}
