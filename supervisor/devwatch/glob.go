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
		for _, e := range expandBraces(strings.TrimPrefix(g, "./")) {
			re, err := regexp.Compile(globExpr(e))
			if err != nil { // a class such as "[z-a]": the glob is literal
				re = regexp.MustCompile("^" + regexp.QuoteMeta(e) + "$")
			}
			out = append(out, re)
		}
	}
	return out
}

// maxBraceAlternatives bounds the globs one pattern's braces expand to:
// "{a,b}{a,b}…" doubles at each pair, and past the bound the first ones
// stand for it, rather than a dev start that never ends.
const maxBraceAlternatives = 256

// expandBraces expands the first "{a,b}" of g (and, recursively, the rest):
// "src/*.{ts,js}" is "src/*.ts" and "src/*.js". Braces without a comma
// between them are literal.
func expandBraces(g string) []string {
	for open := 0; open < len(g); open++ {
		if g[open] != '{' {
			continue
		}
		depth, commas := 0, []int{}
		for i := open; i < len(g); i++ {
			switch g[i] {
			case '{':
				depth++
			case ',':
				if depth == 1 {
					commas = append(commas, i)
				}
			case '}':
				depth--
			}
			if depth > 0 {
				continue
			}
			if len(commas) == 0 {
				break // "{x}": literal, look further on
			}
			var out []string
			start := open + 1
			for _, end := range append(commas, i) {
				if len(out) == maxBraceAlternatives {
					break
				}
				for _, e := range expandBraces(g[:open] + g[start:end] + g[i+1:]) {
					if len(out) == maxBraceAlternatives {
						break
					}
					out = append(out, e)
				}
				start = end + 1
			}
			return out
		}
	}
	return []string{g}
}

// globExpr is the regular expression of a glob. "dir/**" matches dir
// itself too, as a folder that appears is a change in it. "**" is any
// number of folders only as a whole part of the path; elsewhere it is "*".
// "[abc]", "[a-z]" and "[!abc]" (or "[^abc]") are a character of a class.
func globExpr(g string) string {
	if base, ok := strings.CutSuffix(g, "/**"); ok && base != "" {
		return strings.TrimSuffix(globExpr(base), "$") + "(?:/.*)?$"
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		segStart := i == 0 || g[i-1] == '/'
		switch c := g[i]; {
		case c == '*' && i+1 < len(g) && g[i+1] == '*' && segStart && (i+2 == len(g) || g[i+2] == '/'):
			i++
			if i+1 < len(g) && g[i+1] == '/' {
				i++
				b.WriteString("(?:.*/)?") // "**/": no folder, or any
			} else {
				b.WriteString(".*")
			}
		case c == '*':
			for i+1 < len(g) && g[i+1] == '*' {
				i++
			}
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			if class, n := globClass(g[i:]); n > 0 {
				b.WriteString(class)
				i += n - 1
			} else {
				b.WriteString(regexp.QuoteMeta("["))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return b.String()
}

// globClass reads the class at the start of g ("[abc]", "[!a-z]"): its
// regular expression and its length, or 0 if g has no class there (an
// unclosed "[" is literal).
func globClass(g string) (string, int) {
	i, neg := 1, false
	if i < len(g) && (g[i] == '!' || g[i] == '^') {
		neg, i = true, i+1
	}
	var b strings.Builder
	for first := true; i < len(g); i, first = i+1, false {
		c := g[i]
		if c == ']' && !first {
			if neg {
				return "[^/" + b.String() + "]", i + 1
			}
			return "[" + b.String() + "]", i + 1
		}
		if c == '/' {
			return "", 0
		}
		if c == '-' && !first && i+1 < len(g) && g[i+1] != ']' {
			b.WriteByte('-')
			continue
		}
		if c == '\\' && i+1 < len(g) {
			i++
			c = g[i]
		}
		if c == '-' {
			b.WriteString(`\-`)
		} else {
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return "", 0
}
