package config

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     any
		wantErr  *syntaxError
		wantDups []issue
	}{
		{name: "object", in: `{"a": [1, "x", true, null], "b": {}}`,
			want: map[string]any{"a": []any{json.Number("1"), "x", true, nil}, "b": map[string]any{}}},
		{name: "byte order mark", in: "\ufeff{}", want: map[string]any{}},
		{name: "empty", in: " \n", wantErr: &syntaxError{1, 1, "the file is empty; expected a JSON object"}},
		{name: "trailing comma", in: "{\n  \"a\": 1,\n}", wantErr: &syntaxError{3, 1, "invalid character '}' looking for beginning of object key string"}},
		{name: "missing colon", in: `{"a" 1}`, wantErr: &syntaxError{1, 6, "invalid character '1' after object key"}},
		{name: "column counts characters", in: "{\"é\": }", wantErr: &syntaxError{1, 7, "invalid character '}' looking for beginning of value"}},
		{name: "truncated", in: "{\"a\": [1,", wantErr: &syntaxError{1, 10, "unexpected end of file; the JSON value is not complete"}},
		{name: "two values", in: "{}\n  {}", wantErr: &syntaxError{2, 3, "unexpected data after the top-level JSON value"}},
		{name: "64 levels", in: strings.Repeat("[", 63) + `{"a": 1}` + strings.Repeat("]", 63),
			want: func() any {
				var v any = map[string]any{"a": json.Number("1")}
				for range 63 {
					v = []any{v}
				}
				return v
			}()},
		{name: "65 levels", in: `{"a":` + strings.Repeat("[", 63) + "{}" + strings.Repeat("]", 63) + "}",
			wantErr: &syntaxError{1, 69, "objects and arrays nested more than 64 levels deep"}},
		// 100,000 levels in 200 kB took 35 s and 10 GB.
		{name: "deep brackets", in: strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
			wantErr: &syntaxError{1, 65, "objects and arrays nested more than 64 levels deep"}},
		{name: "duplicate keys, nested too", in: `{"a": 1, "b": {"c": 1, "c": 2}, "a": 3}`,
			want: map[string]any{"a": json.Number("3"), "b": map[string]any{"c": json.Number("2")}},
			wantDups: []issue{
				issuef("/b/c", `key "c" appears more than once in this object`),
				issuef("/a", `key "a" appears more than once in this object`),
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, serr, dups := decodeJSON([]byte(tt.in))
			if tt.wantErr != nil {
				if serr == nil || *serr != *tt.wantErr {
					t.Fatalf("syntax error: got %+v, want %+v", serr, *tt.wantErr)
				}
				return
			}
			if serr != nil {
				t.Fatalf("unexpected syntax error %+v", *serr)
			}
			if !reflect.DeepEqual(doc.root, tt.want) {
				t.Errorf("got %#v, want %#v", doc.root, tt.want)
			}
			if !slices.Equal(dups, tt.wantDups) {
				t.Errorf("duplicates: got %v, want %v", dups, tt.wantDups)
			}
		})
	}
}

func TestPointers(t *testing.T) {
	tests := []struct {
		segments []string
		ptr      string
	}{
		{nil, ""},
		{[]string{"a"}, "/a"},
		{[]string{"applications", "0", "id"}, "/applications/0/id"},
		{[]string{"a/b", "c~d"}, "/a~1b/c~0d"},
		{[]string{""}, "/"},
	}
	for _, tt := range tests {
		if got := pointerOf(tt.segments); got != tt.ptr {
			t.Errorf("pointerOf(%q) = %q, want %q", tt.segments, got, tt.ptr)
		}
		if got := splitPointer(tt.ptr); !slices.Equal(got, tt.segments) {
			t.Errorf("splitPointer(%q) = %q, want %q", tt.ptr, got, tt.segments)
		}
	}
}

func TestValueAt(t *testing.T) {
	doc, _, _ := decodeJSON([]byte(`{"a": [{"b": "x"}], "c/d": 1}`))
	tests := []struct {
		ptr  string
		want any
		ok   bool
	}{
		{"/a/0/b", "x", true},
		{"/c~1d", json.Number("1"), true},
		{"/a/1", nil, false},
		{"/a/x", nil, false},
		{"/nope", nil, false},
		{"/c~1d/deeper", nil, false},
	}
	for _, tt := range tests {
		got, ok := valueAt(doc.root, tt.ptr)
		if got != tt.want || ok != tt.ok {
			t.Errorf("valueAt(%q) = %#v, %v; want %#v, %v", tt.ptr, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSortIssues(t *testing.T) {
	doc, _, _ := decodeJSON([]byte(`{"z": 1, "a": {"k": 2}, "m": [0, 1]}`))
	in := []issue{
		issuef("/m/1", "m1"),
		issuef("/a/missing", "under a"),
		issuef("/z", "z"),
		issuef("", "root"),
		issuef("/m/1", "m1"),
	}
	want := []string{"root", "z", "under a", "m1"}
	var got []string
	for _, is := range doc.sortIssues(in) {
		got = append(got, is.msg)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestDecodeFileUTF16: a configuration saved as UTF-16, in any format,
// is reported as such, at its start, instead of as an invalid character.
func TestDecodeFileUTF16(t *testing.T) {
	le := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = append(b, byte(r), 0)
		}
		return b
	}
	be := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = append(b, 0, byte(r))
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"watt.json", append([]byte{0xff, 0xfe}, le(`{"workers": 2}`)...), "UTF-16 (little-endian)"},
		{"watt.json", le(`{"workers": 2}`), "UTF-16 (little-endian)"},
		{"watt.json", append([]byte{0xfe, 0xff}, be(`{"workers": 2}`)...), "UTF-16 (big-endian)"},
		{"watt.yaml", append([]byte{0xff, 0xfe}, le("workers: 2\n")...), "UTF-16 (little-endian)"},
		{"watt.toml", be("workers = 2\n"), "UTF-16 (big-endian)"},
	}
	for _, tt := range tests {
		_, syntax, _ := decodeFile(tt.name, tt.data)
		if syntax == nil || syntax.line != 1 || syntax.col != 1 || syntax.msg != "the file is encoded as "+tt.want+"; save it as UTF-8" {
			t.Errorf("decodeFile(%s, % x) = %+v; want %s at 1:1", tt.name, tt.data[:4], syntax, tt.want)
		}
	}
	for _, ok := range []string{"{}", "\xef\xbb\xbf{}", "a: 1\n", "x"} {
		if _, syntax, _ := decodeFile("watt.yaml", []byte(ok)); syntax != nil {
			t.Errorf("decodeFile(%q): %+v", ok, syntax)
		}
	}
}

// TestDecodeTOMLNesting: arrays and inline tables nested beyond
// maxNesting are reported where the first level too many opens, instead
// of exhausting the memory (30,000 levels took over 3 GB), while strings
// and comments holding brackets are not counted.
func TestDecodeTOMLNesting(t *testing.T) {
	for _, in := range []string{
		"a = " + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + "\n",
		"a = " + strings.Repeat("{b=", 30000) + "1" + strings.Repeat("}", 30000) + "\n",
	} {
		_, syntax, _ := decodeTOML([]byte(in))
		if syntax == nil || *syntax != (syntaxError{1, 4 + maxNesting + 1, "objects and arrays nested more than 64 levels deep"}) && *syntax != (syntaxError{1, 4 + 3*maxNesting + 1, "objects and arrays nested more than 64 levels deep"}) {
			t.Errorf("decodeTOML(%.20q…) = %+v", in, syntax)
		}
	}
	ok := "# " + strings.Repeat("[", 100) + "\n" +
		"a = \"" + strings.Repeat("[", 100) + "\"\n" +
		"b = '" + strings.Repeat("{", 100) + "'\n" +
		"c = \"\\\"" + strings.Repeat("[", 100) + "\"\n" +
		"d = [[1, 2], [3]]\n[[applications]]\nid = \"a\"\n"
	if _, syntax, _ := decodeTOML([]byte(ok)); syntax != nil {
		t.Errorf("decodeTOML: %+v", *syntax)
	}
}
