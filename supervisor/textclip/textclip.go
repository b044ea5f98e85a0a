// Package textclip shortens text for messages: an error that quotes a
// body, a status line with a size limit, a worker's bad value in a log.
package textclip

import "unicode/utf8"

// Mark ends text that was cut.
const Mark = "…"

// Clip returns s if it is at most max bytes long, else its longest
// prefix that ends on a rune boundary and fits in max bytes with Mark
// after it, followed by Mark. A max too small for Mark gives Mark alone.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(Mark)
	if cut <= 0 {
		return Mark
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + Mark
}
