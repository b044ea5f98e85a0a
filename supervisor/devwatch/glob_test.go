package devwatch

import (
	"strings"
	"testing"
	"time"
)

func TestFilter(t *testing.T) {
	for _, c := range []struct {
		allow, ignore []string
		rel           string
		want          bool
	}{
		{nil, nil, "index.js", true},
		{nil, []string{"data/**"}, "data/app.db", false},
		{nil, []string{"data/**"}, "data/a/b.db", false},
		{nil, []string{"data/**"}, "src/data.js", true},
		{nil, []string{"data/**"}, "data", false}, // the folder itself, made at the first start
		{nil, []string{"data/**"}, "database.js", true},
		{nil, []string{"./*.log"}, "app.log", false},
		{nil, []string{"*.log"}, "logs/app.log", true}, // "*" stays in its folder
		{nil, []string{"**/*.log"}, "logs/app.log", false},
		{nil, []string{"**/*.log"}, "app.log", false},
		{nil, []string{"db.sqlite?"}, "db.sqlite3", false},
		{[]string{"**/*.js"}, nil, "lib/a.js", true},
		{[]string{"**/*.js"}, nil, "README.md", false},
		{[]string{"**/*.js"}, []string{"test/**"}, "test/a.js", false},
		{nil, []string{"a+b.(x)"}, "a+b.(x)", false}, // regexp characters are literal
		{nil, []string{"a+b.(x)"}, "aab.(x)", true},
	} {
		if got := NewFilter(c.allow, c.ignore).Counts(c.rel); got != c.want {
			t.Errorf("allow %q ignore %q: Counts(%q) = %v, want %v", c.allow, c.ignore, c.rel, got, c.want)
		}
	}
}

// TestFilterLikeMatchesGlob holds cases where Node's path.matchesGlob,
// which Watt's watcher uses, answered differently before: braces,
// character classes, and "**" inside a part of the path.
func TestFilterLikeMatchesGlob(t *testing.T) {
	for _, c := range []struct {
		glob, rel string
		ignored   bool
	}{
		{"{a,b}.js", "a.js", true},
		{"{a,b}.js", "c.js", false},
		{"x/{a,b}.js", "x/b.js", true},
		{"src/**/*.{ts,js}", "src/x/y.ts", true},
		{"src/**/*.{ts,js}", "src/y.js", true},
		{"src/**/*.{ts,js}", "src/y.css", false},
		{"{a,{b,c}}.js", "c.js", true},
		{"{x}.js", "{x}.js", true},
		{"[ab].js", "a.js", true},
		{"[ab].js", "c.js", false},
		{"[!a].js", "a.js", false},
		{"[^a].js", "b.js", true},
		{"[a-c].db", "b.db", true},
		{"[a-c].db", "d.db", false},
		{"[z-a].db", "b.db", false}, // an invalid range compiles, literal
		{"[x.js", "[x.js", true},
		{"**.js", "a/b.js", false},
		{"**.js", "b.js", true},
		{"a/**.js", "a/b/c.js", false},
	} {
		if got := !NewFilter(nil, []string{c.glob}).Counts(c.rel); got != c.ignored {
			t.Errorf("ignore %q: %q ignored = %v, want %v", c.glob, c.rel, got, c.ignored)
		}
	}
	// An allow list in braces lets its files through, and only them.
	f := NewFilter([]string{"**/*.{js,json}"}, nil)
	if !f.Counts("lib/a.js") || !f.Counts("config.json") || f.Counts("data/x.db") {
		t.Errorf("allow **/*.{js,json}: lib/a.js %v config.json %v data/x.db %v", f.Counts("lib/a.js"), f.Counts("config.json"), f.Counts("data/x.db"))
	}
}

// TestFilterBoundsBraces: a pattern whose braces would expand to millions
// of globs compiles at once.
func TestFilterBoundsBraces(t *testing.T) {
	done := make(chan Filter, 1)
	go func() { done <- NewFilter(nil, []string{strings.Repeat("{a,b}", 24)}) }()
	select {
	case f := <-done:
		if f.Counts("aaaaaaaaaaaaaaaaaaaaaaaa") {
			t.Error("the first alternative is not ignored")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NewFilter took over 5 s")
	}
}
