package config

import (
	"fmt"
	"slices"
	"strings"
)

// suggest picks the candidate the user most likely meant: the closest one
// within an edit distance of 2 (compared case-insensitively, since
// "Entrypoint" for "entrypoint" is the commonest slip), or else one that
// extends, or is extended by, what was typed. It returns "" when nothing
// is close enough to be a helpful guess.
func suggest(got string, candidates []string) string {
	if slices.Contains(candidates, got) {
		return ""
	}
	g := strings.ToLower(got)
	best, bestDist, bestExact := "", 3, 0
	for _, c := range candidates {
		d := editDistance(g, strings.ToLower(c))
		if d > 2 {
			continue
		}
		// Among equally close candidates prefer the one closer as written,
		// so "ap" suggests "api" rather than "API".
		exact := editDistance(got, c)
		if best == "" || d < bestDist || (d == bestDist && (exact < bestExact || (exact == bestExact && c < best))) {
			best, bestDist, bestExact = c, d, exact
		}
	}
	if best != "" {
		return best
	}
	if len(g) < 3 {
		return ""
	}
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		l := strings.ToLower(c)
		if strings.HasPrefix(l, g) || strings.HasPrefix(g, l) {
			return c
		}
	}
	return ""
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance, so a swapped pair of letters counts as one slip.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// withSuggestion appends a did-you-mean hint when one exists.
func withSuggestion(msg, got string, candidates []string) string {
	if s := suggest(got, candidates); s != "" {
		return fmt.Sprintf("%s (did you mean %q?)", msg, s)
	}
	return msg
}

func unknownKeyMessage(key string, allowed []string) string {
	return withSuggestion(fmt.Sprintf("unknown key %q", key), key, allowed)
}
