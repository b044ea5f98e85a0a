package logs

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Printable makes what a worker logged safe to print on a terminal: a
// line it logs must not look like another line, nor act on the terminal.
// Every line after the first of a message of several lines (a stack
// trace) is indented, so that none starts like an entry of its own (a
// forged `15:04:05.000 FATAL wattd …`), and control characters other than
// tab (escape sequences, which can recolour, retitle, move the cursor or
// set the clipboard; a carriage return, which overwrites the line's
// start) are shown escaped, as \x1b. So are DEL and the C1 controls;
// bytes that are not UTF-8 become U+FFFD.
func Printable(s string) string {
	clean := utf8.ValidString(s)
	for _, r := range s {
		if r != '\t' && (r < 0x20 || r >= 0x7f && r < 0xa0) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString("\n    ")
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r >= 0x7f && r < 0xa0:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
