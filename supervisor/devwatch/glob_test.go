package devwatch

import "testing"

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
