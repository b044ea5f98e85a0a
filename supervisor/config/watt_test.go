package config

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

func TestIsWattOnly(t *testing.T) {
	tests := []struct {
		ptr  string
		key  string
		want bool
	}{
		{"", "metrics", false},
		{"/metrics", "timeout", true},
		{"/metrics", "port", false},
		{"", "entrypoint", false},
		{"", "metricz", false},
		{"/server", "https", true},
		{"/server", "port", false},
		{"/logger", "transport", true},
		{"/logger", "anythingPinoTakes", true},
		{"/logger", "level", false},
		{"/workers", "dynamic", false}, // honoured: the dynamic scaler
		{"/workers", "maxMemory", true},
		{"/verticalScaler", "maxTotalMemory", true},
		{"", "verticalScaler", false},
		{"/workers", "static", false},
		{"/applications/3", "useHttp", true},
		{"/services/0", "arguments", false}, // honoured: Application.Watt
		{"/services/0", "logger", true},
		{"/applications/0", "websocket", true},
		{"", "hotReload", true},
		{"", "allowCycles", true},
		{"", "preload", false},
		{"/services/0", "dependencies", false},
		{"/web/0", "telemetry", true},
		{"/autoload/mappings/web", "config", false},
		{"/autoload/mappings/web", "gitBranch", true},
		{"/autoload/mappings/web/workers", "maximum", false},
		{"/applications/0/workers", "maximum", false},
		{"/applications/0/workers", "dynamic", false}, // runtime-level only in Watt
		{"/applications/0", "path", false},
		{"/applications", "useHttp", false},
		{"/autoload", "useHttp", false},
	}
	for _, tt := range tests {
		if got := isWattOnly(splitPointer(tt.ptr), tt.key); got != tt.want {
			t.Errorf("isWattOnly(%q, %q) = %v, want %v", tt.ptr, tt.key, got, tt.want)
		}
	}
}

func TestStripWattOnly(t *testing.T) {
	doc, _, _ := decodeJSON([]byte(`{
		"undici": {"pipelining": 1},
		"server": {"port": 1, "http2": true},
		"applications": [{"id": "a", "gitBranch": "main", "env": {"gitBranch": "kept"}}],
		"env": {"metrics": "kept"}
	}`))
	warnings := stripWattOnly(doc.root, nil)
	want := map[string]any{
		"server":       map[string]any{"port": json.Number("1")},
		"applications": []any{map[string]any{"id": "a", "env": map[string]any{"gitBranch": "kept"}}},
		"env":          map[string]any{"metrics": "kept"},
	}
	if !reflect.DeepEqual(doc.root, want) {
		t.Errorf("tree: got %#v, want %#v", doc.root, want)
	}
	wantWarnings := []issue{
		issuef("/applications/0/gitBranch", `Watt option "gitBranch" is not supported by wattd; ignored: wattd runs local applications only`),
		issuef("/server/http2", `Watt option "http2" is not supported by wattd; ignored: the entrypoint listens on plain HTTP/1.1 with the kernel's default backlog`),
		issuef("/undici", `Watt option "undici" is not supported by wattd; ignored: workers use their own HTTP client settings`),
	}
	if !slices.Equal(warnings, wantWarnings) {
		t.Errorf("warnings: got %v, want %v", warnings, wantWarnings)
	}
}

func TestAliasWarnings(t *testing.T) {
	tests := []struct {
		root map[string]any
		want []issue
	}{
		{root: map[string]any{"applications": []any{}}},
		{root: map[string]any{"services": []any{}, "web": []any{}}, want: []issue{
			issuef("/services", `"services" is the former name of "applications"; rename it to "applications"`),
			issuef("/web", `"web" is an old alias of "applications"; rename it to "applications"`),
		}},
	}
	for _, tt := range tests {
		if got := aliasWarnings(tt.root); !slices.Equal(got, tt.want) {
			t.Errorf("aliasWarnings(%v) = %v, want %v", tt.root, got, tt.want)
		}
	}
}

func TestApplicationConfigKind(t *testing.T) {
	tests := []struct {
		name string
		root map[string]any
		want string
	}{
		{name: "runtime schema", root: map[string]any{"$schema": "https://schemas.platformatic.dev/@platformatic/runtime/3.0.0.json"}},
		{name: "wattpm schema", root: map[string]any{"$schema": "https://schemas.platformatic.dev/wattpm/3.4.0.json"}},
		{name: "old runtime schema", root: map[string]any{"$schema": "https://platformatic.dev/schemas/v1.52.0/runtime"}},
		{name: "any other URL", root: map[string]any{"$schema": "https://example.com/my.json"}},
		{name: "no schema", root: map[string]any{}},
		{name: "node application", root: map[string]any{"$schema": "https://schemas.platformatic.dev/@platformatic/node/2.0.0.json"}, want: "@platformatic/node"},
		{name: "old service", root: map[string]any{"$schema": "https://platformatic.dev/schemas/v1.0.0/service"}, want: "@platformatic/service"},
		{name: "module key", root: map[string]any{"module": "@platformatic/next"}, want: "@platformatic/next"},
		{name: "application schema but lists applications", root: map[string]any{
			"$schema":      "https://schemas.platformatic.dev/@platformatic/service/2.0.0.json",
			"applications": []any{},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := applicationConfigKind(tt.root); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
