package config

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"PLT_A": "a", "PORT": "3000", "lower_case": "l", "REF": "{PLT_A}", "EMPTY": ""}
	r := &resolver{lookup: func(n string) (string, bool) { v, ok := env[n]; return v, ok }}
	tests := []struct {
		in      string
		want    string
		missing []string
	}{
		{in: "plain", want: "plain"},
		{in: "{PLT_A}", want: "a"},
		{in: "x{PLT_A}y{PORT}z", want: "xay3000z"},
		{in: "{{PLT_A}}", want: "a"},
		{in: "{lower_case}", want: "l"},
		{in: "{EMPTY}", want: ""},
		{in: "{REF}", want: "{PLT_A}"}, // one pass: values are not expanded again
		{in: "{PLT_NOPE}/{PLT_A}/{OTHER}", want: "/a/", missing: []string{"PLT_NOPE", "OTHER"}},
		{in: "{not a placeholder} {} {a-b}", want: "{not a placeholder} {} {a-b}"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, missing := r.expand(tt.in)
			if got != tt.want || !slices.Equal(missing, tt.missing) {
				t.Errorf("expand(%q) = %q, %q; want %q, %q", tt.in, got, missing, tt.want, tt.missing)
			}
		})
	}
}

func TestSubstitute(t *testing.T) {
	tree := func() any {
		return map[string]any{
			"port": "{PLT_PORT}",
			"list": []any{"{PLT_SET}", json.Number("1"), true, nil},
			"obj":  map[string]any{"{PLT_SET}": "{PLT_UNSET}"},
		}
	}
	env := map[string]string{"PLT_PORT": "8080", "PLT_SET": "yes"}
	lookup := func(n string) (string, bool) { v, ok := env[n]; return v, ok }
	resolved := map[string]any{
		"port": "8080",
		"list": []any{"yes", json.Number("1"), true, nil},
		"obj":  map[string]any{"{PLT_SET}": ""}, // keys stay as written
	}
	tests := []struct {
		name         string
		mode         envMode
		wantErrors   []issue
		wantWarnings []issue
	}{
		{name: "strict", mode: envStrict, wantErrors: []issue{issuef("/obj/{PLT_SET}", `environment variable "PLT_UNSET" is not set`)}},
		{name: "warn", mode: envWarn, wantWarnings: []issue{issuef("/obj/{PLT_SET}", `environment variable "PLT_UNSET" is not set; using an empty string`)}},
		{name: "lenient", mode: envLenient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out substitution
			got := (&resolver{lookup: lookup, mode: tt.mode}).substitute(tree(), "", &out)
			if !reflect.DeepEqual(got, resolved) {
				t.Errorf("tree: got %#v, want %#v", got, resolved)
			}
			if !slices.Equal(out.errors, tt.wantErrors) || !slices.Equal(out.warnings, tt.wantWarnings) {
				t.Errorf("errors %v warnings %v; want %v %v", out.errors, out.warnings, tt.wantErrors, tt.wantWarnings)
			}
			if tt.mode == envStrict && (!out.explains("/obj/{PLT_SET}") || out.explains("/port")) {
				t.Errorf("failed pointers: %v", out.failed)
			}
		})
	}
}

func TestStrictEnvMode(t *testing.T) {
	tests := []struct {
		in   any
		want envMode
	}{
		{nil, envWarn},
		{true, envStrict},
		{false, envLenient},
		{"true", envStrict},
		{"false", envLenient},
		{" warn ", envWarn},
		{"", envLenient},
		{"{PLT_STRICT}", envWarn},
		{json.Number("0"), envWarn},
	}
	for _, tt := range tests {
		if got := strictEnvMode(tt.in); got != tt.want {
			t.Errorf("strictEnvMode(%#v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestTopologyVariable(t *testing.T) {
	tests := []struct{ id, want string }{
		{"api", "PLT_API_URL"},
		{"with-logger", "PLT_WITH_LOGGER_URL"},
		{"Web2", "PLT_WEB2_URL"},
	}
	for _, tt := range tests {
		if got := topologyVariable(tt.id); got != tt.want {
			t.Errorf("topologyVariable(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}
