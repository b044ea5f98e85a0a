package config

import "testing"

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "abc", 0},
		{"", "abc", 3},
		{"workerz", "workers", 1},
		{"wokrers", "workers", 1}, // transposition
		{"entrypiont", "entrypoint", 1},
		{"kitten", "sitting", 3},
		{"héllo", "hello", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"applications", "autoload", "entrypoint", "env", "envfile", "server", "workers", "logger"}
	tests := []struct {
		got        string
		candidates []string
		want       string
	}{
		{"workerz", keys, "workers"},
		{"Entrypoint", keys, "entrypoint"},
		{"app", keys, "applications"},              // prefix
		{"applicationsList", keys, "applications"}, // extends a candidate
		{"envs", keys, "env"},                      // env and envfile tie on prefix; distance decides
		{"zzz", keys, ""},
		{"ap", []string{"api", "web"}, "api"},
		{"ap", []string{"API", "api"}, "api"}, // as written beats case-folded
		{"env", keys, ""},                     // exact matches are not suggestions
		{"x", []string{"y"}, "y"},
		{"ab", []string{"abcdef"}, ""}, // too short for a prefix guess
	}
	for _, tt := range tests {
		if got := suggest(tt.got, tt.candidates); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.got, got, tt.want)
		}
	}
}

func TestUnknownKeyMessage(t *testing.T) {
	tests := []struct {
		key     string
		allowed []string
		want    string
	}{
		{"workerz", []string{"id", "workers"}, `unknown key "workerz" (did you mean "workers"?)`},
		{"zzz", []string{"id", "workers"}, `unknown key "zzz"`},
	}
	for _, tt := range tests {
		if got := unknownKeyMessage(tt.key, tt.allowed); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
