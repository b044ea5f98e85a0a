package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// document is a decoded JSON file that still knows where each value came
// from, so problems can be listed in the order a reader meets them.
type document struct {
	root    any
	offsets map[string]int64 // JSON pointer -> byte offset near the start of the value
	// lines maps pointers to the 1-based line of the value, for formats
	// whose messages carry one (YAML); nil otherwise.
	lines map[string]int
}

// lineOf is the line of ptr or of its nearest ancestor that has one.
func (doc *document) lineOf(ptr string) int {
	if doc == nil || doc.lines == nil {
		return 0
	}
	for {
		if n, ok := doc.lines[ptr]; ok {
			return n
		}
		i := strings.LastIndexByte(ptr, '/')
		if i < 0 {
			return 0
		}
		ptr = ptr[:i]
	}
}

// syntaxError is a JSON syntax problem with its 1-based position.
type syntaxError struct {
	line, col int
	msg       string
}

// decodeJSON parses data into map[string]any / []any / string / json.Number /
// bool / nil. It walks tokens itself instead of calling json.Unmarshal
// because Unmarshal silently keeps the last of two equal keys, and a key
// written twice in a hand-edited config is nearly always a mistake.
func decodeJSON(data []byte) (*document, *syntaxError, []issue) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &syntaxError{line: 1, col: 1, msg: "the file is empty; expected a JSON object"}, nil
	}
	d := &jsonDecoder{
		dec:  json.NewDecoder(bytes.NewReader(data)),
		data: data,
		doc:  &document{offsets: map[string]int64{}},
	}
	d.dec.UseNumber()
	root, err := d.value("")
	if err != nil {
		return nil, d.position(err), nil
	}
	end := d.dec.InputOffset()
	if _, err := d.dec.Token(); err != io.EOF {
		rest := data[end:]
		start := end + int64(len(rest)-len(bytes.TrimLeft(rest, " \t\r\n")))
		line, col := lineColumn(data, start)
		return nil, &syntaxError{line: line, col: col, msg: "unexpected data after the top-level JSON value"}, nil
	}
	d.doc.root = root
	d.doc.lines = linesOf(data, d.doc.offsets)
	return d.doc, nil, d.dups
}

// linesOf gives each pointer the 1-based line its value starts on, from the
// byte offsets the decoder noted (which may stop short of the value, at the
// blanks before it), so that every problem in a JSON file names its line.
func linesOf(data []byte, offsets map[string]int64) map[string]int {
	var newlines []int64 // the offsets where lines end: LF, CRLF or a lone CR
	for i, c := range data {
		if c == '\n' || c == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
			newlines = append(newlines, int64(i))
		}
	}
	lines := make(map[string]int, len(offsets))
	for ptr, off := range offsets {
		for off < int64(len(data)) && (data[off] == ' ' || data[off] == '\t' || data[off] == '\r' || data[off] == '\n' || data[off] == ':' || data[off] == ',') {
			off++
		}
		lines[ptr] = sort.Search(len(newlines), func(i int) bool { return newlines[i] >= off }) + 1
	}
	return lines
}

type jsonDecoder struct {
	dec   *json.Decoder
	data  []byte
	doc   *document
	dups  []issue
	depth int // objects and arrays open around the current value
}

// maxNesting bounds how deep objects and arrays may nest, as in YAML
// files: a configuration needs a few levels, while every level adds to
// the pointer of each value below it, so that a file of a few hundred
// kilobytes of brackets would take gigabytes and minutes to read.
const maxNesting = 64

// nestingError is an object or array opened beyond maxNesting, at offset.
type nestingError struct{ offset int64 }

func (e *nestingError) Error() string {
	return fmt.Sprintf("objects and arrays nested more than %d levels deep", maxNesting)
}

func (d *jsonDecoder) value(ptr string) (any, error) {
	d.doc.offsets[ptr] = d.dec.InputOffset()
	tok, err := d.dec.Token()
	if err != nil {
		return nil, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	if d.depth >= maxNesting {
		return nil, &nestingError{offset: d.dec.InputOffset() - 1}
	}
	d.depth++
	defer func() { d.depth-- }()
	switch delim {
	case '{':
		obj := map[string]any{}
		for d.dec.More() {
			keyTok, err := d.dec.Token()
			if err != nil {
				return nil, err
			}
			key := keyTok.(string) // the decoder only yields strings in key position
			child := childPointer(ptr, key)
			if _, dup := obj[key]; dup {
				d.dups = append(d.dups, issuef(child, "key %q appears more than once in this object", key))
			}
			v, err := d.value(child)
			if err != nil {
				return nil, err
			}
			obj[key] = v
		}
		if _, err := d.dec.Token(); err != nil {
			return nil, err
		}
		return obj, nil
	case '[':
		arr := []any{}
		for i := 0; d.dec.More(); i++ {
			v, err := d.value(childPointer(ptr, fmt.Sprint(i)))
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := d.dec.Token(); err != nil {
			return nil, err
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unexpected %q", delim)
}

// position turns a decoder error into a message with line and column.
func (d *jsonDecoder) position(err error) *syntaxError {
	offset := int64(len(d.data))
	var msg string
	var se *json.SyntaxError
	var ne *nestingError
	switch {
	case errors.As(err, &ne):
		offset = ne.offset
		msg = ne.Error()
	case errors.As(err, &se):
		// In token mode the offset is that of the offending byte (or of the
		// value containing it), not the byte after as with Unmarshal.
		offset = se.Offset
		msg = se.Error()
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		msg = "unexpected end of file; the JSON value is not complete"
	default:
		msg = err.Error()
	}
	line, col := lineColumn(d.data, offset)
	return &syntaxError{line: line, col: col, msg: msg}
}

// lineColumn converts a byte offset into a 1-based line and a 1-based
// column counted in characters, which is what editors show.
func lineColumn(data []byte, offset int64) (int, int) {
	offset = min(offset, int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[lineStart:]) + 1
}

// childPointer appends one reference token, escaped as RFC 6901 requires.
func childPointer(parent, token string) string {
	token = strings.ReplaceAll(token, "~", "~0")
	token = strings.ReplaceAll(token, "/", "~1")
	return parent + "/" + token
}

// pointerOf joins the segments of an instance location.
func pointerOf(segments []string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteString(childPointer("", s))
	}
	return b.String()
}

// splitPointer is the inverse of pointerOf.
func splitPointer(ptr string) []string {
	if ptr == "" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	for i, p := range parts {
		p = strings.ReplaceAll(p, "~1", "/")
		parts[i] = strings.ReplaceAll(p, "~0", "~")
	}
	return parts
}

// offsetOf finds where ptr (or its nearest existing ancestor) starts, so
// problems about values that are missing still sort next to their parent.
func (doc *document) offsetOf(ptr string) int64 {
	for {
		if off, ok := doc.offsets[ptr]; ok {
			return off
		}
		i := strings.LastIndexByte(ptr, '/')
		if i < 0 {
			return 0
		}
		ptr = ptr[:i]
	}
}

// sortIssues orders issues as they appear in the file and drops repeats.
func (doc *document) sortIssues(issues []issue) []issue {
	slices.SortStableFunc(issues, func(a, b issue) int {
		oa, ob := doc.offsetOf(a.ptr), doc.offsetOf(b.ptr)
		if oa != ob {
			if oa < ob {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ptr, b.ptr)
	})
	return slices.CompactFunc(issues, func(a, b issue) bool {
		return a.ptr == b.ptr && a.msg == b.msg
	})
}

// valueAt returns the value at ptr, if any.
func valueAt(root any, ptr string) (any, bool) {
	v := root
	for _, seg := range splitPointer(ptr) {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// sortedKeys gives map walks a stable order so warnings and errors do not
// shuffle between runs.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// deepCopy clones a decoded JSON tree.
func deepCopy(v any) any {
	switch c := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(c))
		for k, x := range c {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(c))
		for i, x := range c {
			out[i] = deepCopy(x)
		}
		return out
	default:
		return v
	}
}
