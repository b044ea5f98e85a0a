package config

import (
	"encoding/json"
	"reflect"
	"slices"
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
