package config

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestValidatorAgreesWithReference checks the validator against a general
// JSON Schema implementation (used by this test only): every value found
// in the repository's configuration files, plus values of every type and
// edge, against every schema node of schema.json, must be accepted or
// refused by both alike.
func TestValidatorAgreesWithReference(t *testing.T) {
	s, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		t.Fatal(err)
	}
	const url = "urn:wattd:watt.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(url, raw); err != nil {
		t.Fatal(err)
	}

	values := referenceValues(t)
	locations := schemaLocations(s.raw, "#")
	if len(locations) < 200 || len(values) < 300 {
		t.Fatalf("only %d schema nodes and %d values to compare", len(locations), len(values))
	}
	// Whole files and large parts are checked against the root only,
	// which keeps the test to seconds.
	var small []any
	for _, v := range values {
		if b, _ := json.Marshal(v); len(b) <= bigValue {
			small = append(small, v)
		}
	}
	checked, refused := 0, 0
	for _, loc := range locations {
		ref, err := c.Compile(url + loc)
		if err != nil {
			t.Fatalf("reference cannot compile %s: %v", loc, err)
		}
		node := s.node(loc)
		vs := small
		if loc == "#" {
			vs = values
		}
		// Values of a type the node does not admit all fail alike: a few
		// of each such type are enough.
		var admitted []string
		for _, a := range s.alternatives(s.deref(node)) {
			admitted = append(admitted, types(a)...)
		}
		others := map[string]int{}
		for _, v := range vs {
			if t := jsonType(v); len(admitted) > 0 && !admits(admitted, t) {
				if others[t]++; others[t] > 3 {
					continue
				}
			}
			want := ref.Validate(v) == nil
			got := len(s.check(v, "", node, loc)) == 0
			if got != want {
				b, _ := json.Marshal(v)
				t.Errorf("%s: %s: valid %v, the reference says %v", loc, b, got, want)
			}
			checked++
			if !want {
				refused++
			}
		}
	}
	if refused == 0 || refused == checked {
		t.Fatalf("%d checks, %d refused: the values do not exercise the schema", checked, refused)
	}
	t.Logf("%d schema nodes × %d values (%d small): %d checks, %d refused", len(locations), len(values), len(small), checked, refused)
}

// schemaLocations lists the location of every schema node of the tree.
// bigValue is the encoded size past which a value is checked against the
// root schema only; objects past variedValue are not varied.
const (
	bigValue    = 64
	variedValue = 512
)

func schemaLocations(n any, loc string) []string {
	m, ok := n.(map[string]any)
	if !ok {
		return nil
	}
	out := []string{loc}
	for _, k := range sortedKeys(m) {
		switch k {
		case "$defs", "properties":
			children, _ := m[k].(map[string]any)
			for _, name := range sortedKeys(children) {
				out = append(out, schemaLocations(children[name], loc+"/"+k+"/"+pointerToken(name))...)
			}
		case "additionalProperties", "items":
			out = append(out, schemaLocations(m[k], loc+"/"+k)...)
		case "anyOf", "oneOf", "allOf":
			list, _ := m[k].([]any)
			for i, b := range list {
				out = append(out, schemaLocations(b, loc+"/"+k+"/"+strconv.Itoa(i))...)
			}
		}
	}
	return out
}

// referenceValues collects every value (whole files and each of their
// parts) of the repository's JSON configuration files, the smaller
// objects also with a member added or removed, and scalars and containers at every edge the
// schema has (bounds, empty strings, fractions, duplicates).
func referenceValues(t *testing.T) []any {
	seen := map[string]bool{}
	var out []any
	add := func(v any) {
		b, err := json.Marshal(v)
		if err != nil || seen[string(b)] {
			return
		}
		seen[string(b)] = true
		out = append(out, v)
	}
	var walk func(v any)
	walk = func(v any) {
		add(v)
		switch c := v.(type) {
		case map[string]any:
			keys := sortedKeys(c)
			for _, k := range keys {
				walk(c[k])
			}
			if b, _ := json.Marshal(c); len(b) > variedValue {
				return
			}
			for _, k := range keys {
				without := map[string]any{}
				for _, o := range keys {
					if o != k {
						without[o] = c[o]
					}
				}
				add(without)
			}
			with := map[string]any{"zzUnknown": true}
			for k, x := range c {
				with[k] = x
			}
			add(with)
		case []any:
			for _, x := range c {
				walk(x)
			}
			add(append(append([]any{}, c...), c...))
		}
	}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".cache" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") || !strings.Contains(path, "testdata") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		doc, serr, _ := decodeJSON(data)
		if serr == nil {
			walk(doc.root)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"-1", "0", "0.5", "1", "1.0", "2", "100", "511", "512", "513", "1000", "65535", "65536",
		"2147483647", "2147483648", "1e3", "-0", "3.25"} {
		add(json.Number(n))
	}
	for _, v := range []any{nil, true, false, "", "x", " ", "warn", "info", "error", "silent", "true", "false", "GET",
		"http://localhost:4318/v1/traces", "otlp", "console", "file", "memory", "grpc", "http", "a/b", "../x", "é",
		strings.Repeat("x", 300), []any{}, []any{"a"}, []any{"a", "a"}, []any{json.Number("1"), json.Number("1.0")},
		map[string]any{}, map[string]any{"id": "a"}, map[string]any{"id": "a", "path": "p"}, map[string]any{"static": json.Number("2")},
		map[string]any{"static": json.Number("0")}, map[string]any{"enabled": false}, map[string]any{"a": "b"}, map[string]any{"a": json.Number("1")}} {
		add(v)
	}
	return out
}

// TestValidatorRefs checks a $ref whose target has keywords beside its own
// $ref, and that a chain of $refs that loops is refused.
func TestValidatorRefs(t *testing.T) {
	decode := func(text string) any {
		d := json.NewDecoder(strings.NewReader(text))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	s := &schemaSet{raw: decode(`{"$defs":{"a":{"$ref":"#/$defs/b","minimum":3},"b":{"type":"integer"}},"$ref":"#/$defs/a"}`)}
	if err := s.checkSchema(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		v    string
		want []string
	}{{"4", nil}, {"2", []string{"minimum"}}, {`"x"`, []string{"type"}}} {
		var got []string
		for _, f := range s.check(decode(tt.v), "", s.raw, "#") {
			got = append(got, f.keyword)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: failed %v, want %v", tt.v, got, tt.want)
		}
	}
	for _, schema := range []string{
		`{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}`,
		`{"$ref":"#"}`,
	} {
		s := &schemaSet{raw: decode(schema)}
		if err := s.checkSchema(); err == nil || !strings.Contains(err.Error(), "leads back to itself") {
			t.Errorf("%s: checkSchema = %v, want a loop refused", schema, err)
		}
	}
}

// TestValidatorRefusesUnknownKeywords checks that a schema keyword the
// validator does not implement stops the schema from loading, while the
// ones it implements or reads past load.
func TestValidatorRefusesUnknownKeywords(t *testing.T) {
	for schema, ok := range map[string]bool{
		`{"const":1,"description":"d","default":2}`:       true,
		`{"properties":{"a":{"enum":["x"],"title":"t"}}}`: true,
		`{"patternProperties":{"^a":{}}}`:                 false,
		`{"properties":{"a":{"format":"uri"}}}`:           false,
	} {
		d := json.NewDecoder(strings.NewReader(schema))
		d.UseNumber()
		var raw any
		if err := d.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		err := (&schemaSet{raw: raw}).checkSchema()
		if ok && err != nil {
			t.Errorf("%s: %v", schema, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "is not supported")) {
			t.Errorf("%s: checkSchema = %v, want the keyword refused", schema, err)
		}
	}
}
