package devwatch

import (
	"regexp"
	"strings"
)

// Filter is an application's "watch" globs, relative to its folder, as
// Watt reads them: a changed file counts when it matches one of Allow
// (any file when Allow is empty) and none of Ignore. A leading "./" is
// dropped. In a glob, "*" and "?" stand for characters other than "/",
// and "**" for any number of folders ("data/**", "**/*.db").
type Filter struct {
	allow, ignore []*regexp.Regexp
}

// NewFilter compiles allow and ignore; every glob compiles.
func NewFilter(allow, ignore []string) Filter {
	return Filter{allow: compileGlobs(allow), ignore: compileGlobs(ignore)}
}

// Counts tells whether a change to rel (a path relative to the folder,
// with "/" between its parts) counts.
func (f Filter) Counts(rel string) bool {
	if len(f.allow) > 0 && !anyMatch(f.allow, rel) {
		return false
	}
	return !anyMatch(f.ignore, rel)
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

func compileGlobs(globs []string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, 0, len(globs))
	for _, g := range globs {
		out = append(out, regexp.MustCompile(globExpr(strings.TrimPrefix(g, "./"))))
	}
	return out
}

// globExpr is the regular expression of a glob. "dir/**" matches dir
// itself too, as a folder that appears is a change in it.
func globExpr(g string) string {
	if base, ok := strings.CutSuffix(g, "/**"); ok && base != "" {
		return strings.TrimSuffix(globExpr(base), "$") + "(?:/.*)?$"
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; {
		case c == '*' && i+1 < len(g) && g[i+1] == '*':
			i++
			if i+1 < len(g) && g[i+1] == '/' {
				i++
				b.WriteString("(?:.*/)?") // "**/": no folder, or any
			} else {
				b.WriteString(".*")
			}
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return b.String()
}
