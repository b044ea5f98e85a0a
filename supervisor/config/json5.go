package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// JSON5 (watt.json5): wattd rewrites the text as the JSON it means and
// reads that as any JSON file, so placeholders, the schema and every check
// work unchanged. The rewrite keeps every line where it was (a comment's
// line breaks stay, a string continued over lines is joined and its line
// breaks follow it), so every problem names the line of the JSON5 file.
// What JSON5 adds to JSON, per its specification (json5.org):
//
//   - comments, // and /* */;
//   - object keys written as identifiers ({port: 3000}) or in single quotes;
//   - strings in single quotes, continued over lines with a backslash,
//     with the escapes \x41, \v, \0 and any other character escaped as
//     itself;
//   - numbers in hexadecimal (0x1F), with a + sign, or with a leading or
//     trailing decimal point (.5, 5.);
//   - a comma after the last member or element;
//   - more kinds of white space.
//
// Infinity and NaN, which JSON5 also has, have no JSON form and no key of
// the configuration takes them: they are refused, with their line.

// json5ToJSON rewrites src, JSON5, as JSON with the same lines.
func json5ToJSON(src []byte) ([]byte, *syntaxError) {
	c := json5Conv{src: src, lastSig: -1}
	if err := c.run(); err != nil {
		return nil, err
	}
	return c.out.Bytes(), nil
}

type json5Conv struct {
	src []byte
	i   int
	out bytes.Buffer
	// lastSig is where the last token (not white space) was written in out,
	// -1 before the first; a comma there is dropped when } or ] follows.
	lastSig int
}

func (c *json5Conv) fail(at int, format string, args ...any) *syntaxError {
	line, col := lineColumn(c.src, int64(at))
	return &syntaxError{line: line, col: col, msg: fmt.Sprintf(format, args...)}
}

func (c *json5Conv) token(s string) {
	c.lastSig = c.out.Len()
	c.out.WriteString(s)
}

func (c *json5Conv) run() *syntaxError {
	for c.i < len(c.src) {
		b := c.src[c.i]
		switch {
		case b == ' ' || b == '\t' || b == '\n' || b == '\r':
			c.out.WriteByte(b)
			c.i++
		case b == '\v' || b == '\f':
			c.out.WriteByte(' ')
			c.i++
		case b == '/':
			if err := c.comment(true); err != nil {
				return err
			}
		case b == '"' || b == '\'':
			if err := c.str(); err != nil {
				return err
			}
		case b == '{' || b == '[' || b == ':':
			c.token(string(b))
			c.i++
		case b == ',':
			c.token(",")
			c.i++
		case b == '}' || b == ']':
			if c.lastSig >= 0 && c.out.Bytes()[c.lastSig] == ',' {
				c.out.Bytes()[c.lastSig] = ' ' // a trailing comma
			}
			c.token(string(b))
			c.i++
		case b == '-' || b == '+' || b == '.' || b >= '0' && b <= '9':
			if err := c.number(); err != nil {
				return err
			}
		default:
			r, size := utf8.DecodeRune(c.src[c.i:])
			switch {
			case r == utf8.RuneError && size <= 1:
				return c.fail(c.i, "invalid UTF-8 in the file; save it as UTF-8")
			case isJSON5Space(r):
				c.out.WriteByte(' ')
				c.i += size
			case r == '$' || r == '_' || r == '\\' || unicode.IsLetter(r):
				if err := c.identifier(); err != nil {
					return err
				}
			default:
				return c.fail(c.i, "invalid character %q", r)
			}
		}
	}
	return nil
}

// isJSON5Space tells the white space JSON5 allows beyond JSON's: the
// no-break space, the byte order mark, the line and paragraph separators
// and Unicode's space separators.
func isJSON5Space(r rune) bool {
	return r == 0xa0 || r == 0xfeff || r == 0x2028 || r == 0x2029 || unicode.Is(unicode.Zs, r)
}

// comment skips the comment at c.i, writing its line breaks when write is
// set (a block comment over three lines leaves three lines).
func (c *json5Conv) comment(write bool) *syntaxError {
	start := c.i
	if c.i+1 >= len(c.src) || c.src[c.i+1] != '/' && c.src[c.i+1] != '*' {
		return c.fail(start, "invalid character '/' (a comment starts with // or /*)")
	}
	if c.src[c.i+1] == '/' {
		c.i += 2
		for c.i < len(c.src) && c.src[c.i] != '\n' && c.src[c.i] != '\r' {
			c.i++
		}
		return nil
	}
	end := bytes.Index(c.src[c.i+2:], []byte("*/"))
	if end < 0 {
		return c.fail(start, "a /* comment is not closed")
	}
	body := c.src[c.i+2 : c.i+2+end]
	if write {
		c.out.WriteByte(' ')
		for _, b := range body {
			if b == '\n' || b == '\r' {
				c.out.WriteByte(b)
			}
		}
	}
	c.i += 2 + end + 2
	return nil
}

// next returns the index of the next token in src after white space and
// comments, from i.
func (c *json5Conv) next(i int) int {
	save := c.i
	defer func() { c.i = save }()
	c.i = i
	for c.i < len(c.src) {
		b := c.src[c.i]
		if b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f' {
			c.i++
			continue
		}
		if b == '/' && c.i+1 < len(c.src) && (c.src[c.i+1] == '/' || c.src[c.i+1] == '*') {
			if c.comment(false) != nil {
				return len(c.src)
			}
			continue
		}
		r, size := utf8.DecodeRune(c.src[c.i:])
		if isJSON5Space(r) {
			c.i += size
			continue
		}
		return c.i
	}
	return c.i
}

// str rewrites the single- or double-quoted string at c.i as a JSON string.
func (c *json5Conv) str() *syntaxError {
	start := c.i
	quote := c.src[c.i]
	c.i++
	var s strings.Builder
	s.WriteByte('"')
	var breaks []byte // line breaks of continuations, written after the string
	for {
		if c.i >= len(c.src) {
			return c.fail(start, "a string is not closed")
		}
		b := c.src[c.i]
		switch {
		case b == quote:
			c.i++
			s.WriteByte('"')
			c.token(s.String())
			c.out.Write(breaks)
			return nil
		case b == '\n' || b == '\r':
			return c.fail(c.i, "a string does not end on its line (end the line with a backslash to go on)")
		case b == '"':
			s.WriteString(`\"`)
			c.i++
		case b == '\\':
			lb, err := c.escape(&s)
			if err != nil {
				return err
			}
			breaks = append(breaks, lb...)
		case b < 0x20:
			fmt.Fprintf(&s, `\u%04x`, b)
			c.i++
		default:
			r, size := utf8.DecodeRune(c.src[c.i:])
			if r == utf8.RuneError && size <= 1 {
				return c.fail(c.i, "invalid UTF-8 in the file; save it as UTF-8")
			}
			if r == 0x2028 || r == 0x2029 {
				fmt.Fprintf(&s, `\u%04x`, r)
			} else {
				s.Write(c.src[c.i : c.i+size])
			}
			c.i += size
		}
	}
}

// escape rewrites the escape at c.i (a backslash) into s, and returns the
// line break it continued over (for a backslash at a line's end).
func (c *json5Conv) escape(s *strings.Builder) ([]byte, *syntaxError) {
	at := c.i
	if c.i+1 >= len(c.src) {
		return nil, c.fail(at, "a string is not closed")
	}
	e := c.src[c.i+1]
	c.i += 2
	switch e {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.WriteByte('\\')
		s.WriteByte(e)
	case '\'':
		s.WriteByte('\'')
	case 'v':
		s.WriteString(`\u000b`)
	case '0':
		if c.i < len(c.src) && c.src[c.i] >= '0' && c.src[c.i] <= '9' {
			return nil, c.fail(at, "invalid escape \\0 before a digit")
		}
		s.WriteString(`\u0000`)
	case 'x':
		if c.i+2 > len(c.src) || !isHex(c.src[c.i:c.i+2]) {
			return nil, c.fail(at, "invalid escape: \\x takes two hexadecimal digits")
		}
		fmt.Fprintf(s, `\u00%s`, c.src[c.i:c.i+2])
		c.i += 2
	case 'u':
		if c.i+4 > len(c.src) || !isHex(c.src[c.i:c.i+4]) {
			return nil, c.fail(at, "invalid escape: \\u takes four hexadecimal digits")
		}
		s.WriteString(`\u`)
		s.Write(c.src[c.i : c.i+4])
		c.i += 4
	case '\n':
		return []byte{'\n'}, nil
	case '\r':
		if c.i < len(c.src) && c.src[c.i] == '\n' {
			c.i++
			return []byte("\r\n"), nil
		}
		return []byte{'\r'}, nil
	case '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return nil, c.fail(at, "invalid escape \\%c", e)
	default:
		c.i-- // the escaped character stands for itself
		r, size := utf8.DecodeRune(c.src[c.i:])
		if r == utf8.RuneError && size <= 1 {
			return nil, c.fail(c.i, "invalid UTF-8 in the file; save it as UTF-8")
		}
		c.i += size
		if r == 0x2028 || r == 0x2029 {
			return nil, nil // a line continuation
		}
		if r < 0x20 {
			fmt.Fprintf(s, `\u%04x`, r)
		} else {
			s.WriteRune(r)
		}
	}
	return nil, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// number rewrites the number at c.i as JSON: no + sign, hexadecimal in
// decimal, a digit on each side of a decimal point.
func (c *json5Conv) number() *syntaxError {
	start := c.i
	neg := false
	if b := c.src[c.i]; b == '+' || b == '-' {
		neg = b == '-'
		c.i++
	}
	rest := c.src[c.i:]
	switch {
	case bytes.HasPrefix(rest, []byte("Infinity")) || bytes.HasPrefix(rest, []byte("NaN")):
		return c.fail(start, "Infinity and NaN have no JSON form, and no key of the configuration takes them")
	case len(rest) > 1 && rest[0] == '0' && (rest[1] == 'x' || rest[1] == 'X'):
		j := 2
		for j < len(rest) && isHex(rest[j:j+1]) {
			j++
		}
		if j == 2 {
			return c.fail(start, "a hexadecimal number has no digits")
		}
		n, _ := new(big.Int).SetString(string(rest[2:j]), 16)
		if neg {
			n.Neg(n)
		}
		c.i += j
		c.token(n.String())
		return nil
	}
	digits := func() string {
		j := c.i
		for c.i < len(c.src) && c.src[c.i] >= '0' && c.src[c.i] <= '9' {
			c.i++
		}
		return string(c.src[j:c.i])
	}
	whole := digits()
	frac, point := "", false
	if c.i < len(c.src) && c.src[c.i] == '.' {
		point = true
		c.i++
		frac = digits()
	}
	if whole == "" && frac == "" {
		return c.fail(start, "invalid number")
	}
	var out strings.Builder
	if neg {
		out.WriteByte('-')
	}
	if whole == "" {
		whole = "0"
	}
	out.WriteString(whole)
	if point && frac != "" {
		out.WriteString("." + frac)
	}
	if c.i < len(c.src) && (c.src[c.i] == 'e' || c.src[c.i] == 'E') {
		j := c.i
		c.i++
		if c.i < len(c.src) && (c.src[c.i] == '+' || c.src[c.i] == '-') {
			c.i++
		}
		if digits() == "" {
			return c.fail(j, "invalid number: an exponent needs digits")
		}
		out.Write(c.src[j:c.i])
	}
	c.token(out.String())
	return nil
}

// identifier rewrites the name at c.i: a key when a colon follows it,
// otherwise true, false or null.
func (c *json5Conv) identifier() *syntaxError {
	start := c.i
	var name strings.Builder
	for c.i < len(c.src) {
		if c.src[c.i] == '\\' {
			if c.i+6 > len(c.src) || c.src[c.i+1] != 'u' || !isHex(c.src[c.i+2:c.i+6]) {
				return c.fail(c.i, "invalid escape in a name: \\u takes four hexadecimal digits")
			}
			v, _ := strconv.ParseUint(string(c.src[c.i+2:c.i+6]), 16, 32)
			name.WriteRune(rune(v))
			c.i += 6
			continue
		}
		r, size := utf8.DecodeRune(c.src[c.i:])
		if !(r == '$' || r == '_' || r == 0x200c || r == 0x200d || unicode.In(r, unicode.Letter, unicode.Nl, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Pc)) {
			break
		}
		name.WriteRune(r)
		c.i += size
	}
	n := name.String()
	if j := c.next(c.i); j < len(c.src) && c.src[j] == ':' {
		q, _ := json.Marshal(n)
		c.token(string(q))
		return nil
	}
	switch n {
	case "true", "false", "null":
		c.token(n)
		return nil
	case "Infinity", "NaN":
		return c.fail(start, "Infinity and NaN have no JSON form, and no key of the configuration takes them")
	case "":
		return c.fail(start, "invalid character")
	}
	return c.fail(start, "invalid value %q (a string needs quotes; a name without them is only a key, before a colon)", n)
}
