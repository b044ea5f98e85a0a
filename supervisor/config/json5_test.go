package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestJSON5ToJSON(t *testing.T) {
	tests := []struct {
		name, in string
		want     any // what the JSON decodes to
	}{
		{"plain JSON", `{"a": [1, "x", true, null]}`, map[string]any{"a": []any{1.0, "x", true, nil}}},
		{"comments", "{ // one\n  \"a\": /* two */ 1 /* three\n four */ }", map[string]any{"a": 1.0}},
		{"identifier keys", `{port: 1, $x_1: 2, café: 3, true: 4, NaN: 5}`, map[string]any{"port": 1.0, "$x_1": 2.0, "café": 3.0, "true": 4.0, "NaN": 5.0}},
		{"escaped identifier key", `{\u0061b: 1}`, map[string]any{"ab": 1.0}},
		{"single quotes", `{'k': 'it''s'}`, nil}, // two strings: invalid, checked below
		{"single-quoted strings", `{'k': 'say "hi" \'now\''}`, map[string]any{"k": `say "hi" 'now'`}},
		{"escapes", `{a: '\x41\v\0\q\/\u00e9'}`, map[string]any{"a": "A\v\x00q/é"}},
		{"raw tab in a string", "{a: 'x\ty'}", map[string]any{"a": "x\ty"}},
		{"continued string", "{a: 'one \\\ntwo'}", map[string]any{"a": "one two"}},
		{"numbers", `{a: 0x1F, b: -0xff, c: +1, d: .5, e: 5., f: -.5e2, g: 1E3}`,
			map[string]any{"a": 31.0, "b": -255.0, "c": 1.0, "d": 0.5, "e": 5.0, "f": -50.0, "g": 1000.0}},
		{"trailing commas", `{a: [1, 2,], b: {c: 1,},}`, map[string]any{"a": []any{1.0, 2.0}, "b": map[string]any{"c": 1.0}}},
		{"trailing comma before a comment", "{a: 1, // last\n}", map[string]any{"a": 1.0}},
		{"more white space", "{\u00a0a:\v1\f,\u2028b:\ufeff2}", map[string]any{"a": 1.0, "b": 2.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, serr := json5ToJSON([]byte(tt.in))
			if serr != nil {
				t.Fatalf("%d:%d: %s", serr.line, serr.col, serr.msg)
			}
			if strings.Count(string(out), "\n") != strings.Count(tt.in, "\n") {
				t.Errorf("lines moved: %q from %q", out, tt.in)
			}
			var got any
			err := json.Unmarshal(out, &got)
			if tt.want == nil {
				if err == nil {
					t.Errorf("%q became valid JSON %q", tt.in, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: %v", out, err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(tt.want)
			if string(gb) != string(wb) {
				t.Errorf("%q -> %s, want %s", tt.in, gb, wb)
			}
		})
	}
}

func TestJSON5Problems(t *testing.T) {
	tests := []struct {
		in         string
		line, col  int
		msgContent string
	}{
		{"{\n  a: Infinity\n}", 2, 6, "Infinity and NaN"},
		{"{\n  a: -NaN\n}", 2, 6, "Infinity and NaN"},
		{"{\n  a: yes\n}", 2, 6, `invalid value "yes"`},
		{"{\n  a: 'open\n}", 2, 11, "does not end on its line"},
		{"{ /* never closed\n}", 1, 3, "not closed"},
		{"{\n a: 1 / 2 }", 2, 7, "comment starts with"},
		{"{\n a: '\\1'}", 2, 6, `invalid escape \1`},
		{"{\n a: 0x}", 2, 5, "no digits"},
		{"{\n a: 1e}", 2, 6, "exponent"},
		{"{\n a: #}", 2, 5, "invalid character"},
	}
	for _, tt := range tests {
		_, serr := json5ToJSON([]byte(tt.in))
		if serr == nil {
			t.Errorf("%q: no error", tt.in)
			continue
		}
		if serr.line != tt.line || serr.col != tt.col || !strings.Contains(serr.msg, tt.msgContent) {
			t.Errorf("%q: %d:%d %s; want %d:%d and %q", tt.in, serr.line, serr.col, serr.msg, tt.line, tt.col, tt.msgContent)
		}
	}
}

// TestJSON5Project: a watt.json5 loads as the JSON it means, placeholders
// included, and a problem in it names the line of the JSON5 file, past a
// string continued over lines and a block comment.
func TestJSON5Project(t *testing.T) {
	c, _, err := loadWattProject(t, map[string]string{
		"watt.json5": `// the project
{
  entrypoint: 'web',
  workers: 2,
  server: { port: '{PORT}', },
  applications: [
    { id: 'web', path: 'web', env: { GREETING: 'hi', }, },
  ],
}
`,
		"web/index.js": "",
	}, Options{Environ: []string{"PORT=4000"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Entrypoint != "web" || c.Server.Port != 4000 || c.Workers != 2 || len(c.Applications) != 1 || c.Applications[0].Env["GREETING"] != "hi" {
		t.Errorf("got %+v", c)
	}

	_, dir, err := loadWattProject(t, map[string]string{
		"watt.json5": `{
  /* a comment
     over lines */
  server: { hostname: 'a \
b' },
  applications: [{ id: 'web', path: 'web',
    workers: 'many' }],
}
`,
		"web/index.js": "",
	}, Options{})
	if err == nil || !strings.Contains(err.Error(), dir+"/watt.json5:7: /applications/0/workers") {
		t.Errorf("a wrong value: %v", err)
	}
}

// FuzzJSON5ToJSON: any text either is refused with a position inside it,
// or becomes JSON with the same line breaks (so every later message names
// the JSON5 file's line) that a JSON reader accepts or refuses, never a
// panic.
func FuzzJSON5ToJSON(f *testing.F) {
	for _, s := range []string{`{a: 1}`, "{'a': 'b\\\nc', /* x\n */ b: [0x1, .5, +2,],}", `{"a": null}`, `{a: '\x41\u0041\0'}`, "{\u00a0}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, serr := json5ToJSON([]byte(in))
		if serr != nil {
			if serr.line < 1 || serr.line > strings.Count(in, "\n")+1 {
				t.Fatalf("%q: error at line %d", in, serr.line)
			}
			return
		}
		if strings.Count(string(out), "\n") != strings.Count(in, "\n") {
			t.Fatalf("lines moved: %q from %q", out, in)
		}
		var v any
		_ = json.Unmarshal(out, &v)
	})
}
