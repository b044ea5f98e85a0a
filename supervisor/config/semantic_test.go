package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCheckAppID(t *testing.T) {
	dnsHint := "must be usable as a DNS label: letters, digits and dashes, starting and ending with a letter or digit"
	tests := []struct {
		id   string
		want string
	}{
		{"api", ""},
		{"a", ""},
		{"web-2", ""},
		{"API", ""},
		{"0day", ""},
		{strings.Repeat("a", 63), ""},
		{"", "must not be empty"},
		{strings.Repeat("a", 64), "is 64 characters long; at most 63 fit in a DNS label"},
		{"my_app", dnsHint},
		{"-api", dnsHint},
		{"api-", dnsHint},
		{"api.v2", dnsHint},
		{"@scope/pkg", dnsHint},
		{"héllo", dnsHint},
	}
	for _, tt := range tests {
		if got := checkAppID(tt.id); got != tt.want {
			t.Errorf("checkAppID(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

func TestCheckUniqueIDs(t *testing.T) {
	entry := func(id, ptr string) appEntry {
		return appEntry{id: id, ptr: ptr, idPtr: ptr + "/id"}
	}
	auto := appEntry{id: "api", path: "/p/apps/api", idPtr: "/autoload/path", autoloaded: true}
	tests := []struct {
		name    string
		entries []appEntry
		want    []issue
	}{
		{name: "distinct", entries: []appEntry{entry("api", "/applications/0"), entry("web", "/applications/1")}},
		{name: "same id", entries: []appEntry{entry("api", "/applications/0"), entry("api", "/services/0")},
			want: []issue{issuef("/services/0/id", `application id "api" is already used by the application at /applications/0`)}},
		{name: "case differs", entries: []appEntry{entry("api", "/applications/0"), entry("Api", "/applications/1")},
			want: []issue{issuef("/applications/1/id", `application id "Api" is already used by the application at /applications/0`)}},
		{name: "after an autoloaded one", entries: []appEntry{auto, entry("api", "/web/0")},
			want: []issue{issuef("/web/0/id", `application id "api" is already used by the application autoloaded from /p/apps/api`)}},
		{name: "empty ids are reported elsewhere", entries: []appEntry{entry("", "/applications/0"), entry("", "/applications/1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkUniqueIDs(tt.entries); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckAppDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want string
	}{
		{dir, ""},
		{file, file + " is not a directory"},
		{filepath.Join(dir, "none"), "directory " + filepath.Join(dir, "none") + " does not exist"},
	}
	for _, tt := range tests {
		if got := checkAppDir(tt.path); got != tt.want {
			t.Errorf("checkAppDir(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestCheckWorkers(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{1, ""},
		{512, ""},
		{0, "expected a worker count from 1 to 512, got 0"},
		{513, "expected a worker count from 1 to 512, got 513"},
		{-3, "expected a worker count from 1 to 512, got -3"},
	}
	for _, tt := range tests {
		if got := checkWorkers(tt.n); got != tt.want {
			t.Errorf("checkWorkers(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestCheckHostname(t *testing.T) {
	tests := []struct {
		host string
		want string
	}{
		{"127.0.0.1", ""},
		{"0.0.0.0", ""},
		{"::", ""},
		{"::1", ""},
		{"fe80::1%eth0", ""},
		{"localhost", ""},
		{"api.internal.example.com.", ""},
		{"[::1]", `write the IPv6 address without brackets: "::1"`},
		{"localhost:3000", `"localhost:3000" is neither a valid IP address nor a host name (a port belongs in "port")`},
		{"bad_host", `"bad_host" is neither a valid IP address nor a host name`},
		{"a..b", `"a..b" is neither a valid IP address nor a host name`},
		{strings.Repeat("a.", 127) + "ab", "host name is longer than 253 characters"},
		{"1e100.net", ""},
		{"300.1.1.1", `"300.1.1.1" is not a valid IP address (and, its last part being a number, not a host name)`},
		{"10.1.1", `"10.1.1" is not a valid IP address (and, its last part being a number, not a host name)`},
		{"host.42.", `"host.42." is not a valid IP address (and, its last part being a number, not a host name)`},
	}
	for _, tt := range tests {
		if got := checkHostname(tt.host); got != tt.want {
			t.Errorf("checkHostname(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestCheckRestartPolicy(t *testing.T) {
	tests := []struct {
		p    RestartPolicy
		want string
	}{
		{RestartPolicy{InitialDelay: time.Second, MaxDelay: time.Second}, ""},
		{RestartPolicy{InitialDelay: 0, MaxDelay: 0}, ""},
		{RestartPolicy{InitialDelay: 2 * time.Second, MaxDelay: time.Second}, "maxDelay (1s) is shorter than initialDelay (2s)"},
	}
	for _, tt := range tests {
		if got := checkRestartPolicy(tt.p); got != tt.want {
			t.Errorf("checkRestartPolicy(%+v) = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestResolveEntrypoint(t *testing.T) {
	tests := []struct {
		name     string
		entry    string
		ids      []string
		disabled []string
		gateways []string
		want     string
		wantMsg  string
	}{
		{name: "named", entry: "web", ids: []string{"api", "web"}, want: "web"},
		{name: "only application", ids: []string{"api"}, want: "api"},
		{name: "named but unknown", entry: "ap", ids: []string{"api", "web"},
			wantMsg: `no application has id "ap" (known: api, web; did you mean "api"?)`},
		{name: "unknown, nothing close", entry: "zzz", ids: []string{"api", "web"},
			wantMsg: `no application has id "zzz" (known: api, web)`},
		{name: "named but disabled", entry: "web", ids: []string{"api"}, disabled: []string{"web"},
			wantMsg: `application "web" is disabled ("enabled": false) and cannot be the entrypoint`},
		{name: "several, none named", ids: []string{"api", "web"},
			wantMsg: `"entrypoint" is required when there are several applications; set it to one of: api, web`},
		{name: "several, one gateway", ids: []string{"api", "gw", "web"}, gateways: []string{"gw"}, want: "gw"},
		{name: "several, two gateways", ids: []string{"a", "b"}, gateways: []string{"a", "b"},
			wantMsg: `"entrypoint" is required when there are several applications; set it to one of: a, b`},
		{name: "one application beats a gateway", ids: []string{"api"}, gateways: []string{"gw"}, want: "api"},
		{name: "none at all",
			wantMsg: `no applications to run: list them in "applications" or use "autoload"`},
		{name: "named, none at all", entry: "api",
			wantMsg: `no application has id "api" (known: none)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := resolveEntrypoint(tt.entry, tt.ids, tt.disabled, tt.gateways)
			if got != tt.want || msg != tt.wantMsg {
				t.Errorf("got %q, %q; want %q, %q", got, msg, tt.want, tt.wantMsg)
			}
		})
	}
}
