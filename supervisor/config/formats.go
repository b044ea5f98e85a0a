package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// Watt reads its configuration files as JSON, JSON5, YAML or TOML, by
// extension. wattd turns JSON5 (json5.go), YAML and TOML into the same
// tree a JSON file gives (objects, arrays, strings, json.Number, booleans,
// null), so placeholders, the schema and every check after them work
// unchanged; the document also keeps where each value was written, for
// messages.

// decodeFile parses a configuration file by its extension.
func decodeFile(path string, data []byte) (*document, *syntaxError, []issue) {
	if enc := utf16Encoding(data); enc != "" {
		return nil, &syntaxError{line: 1, col: 1, msg: "the file is encoded as " + enc + "; save it as UTF-8"}, nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return decodeYAML(data)
	case ".toml", ".tml":
		return decodeTOML(data)
	case ".json5":
		data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
		text, syntax := json5ToJSON(data)
		if syntax != nil {
			return nil, syntax, nil
		}
		return decodeJSON(text)
	}
	return decodeJSON(data)
}

// utf16Encoding names the UTF-16 encoding data is in, by its byte order
// mark or, without one, by a NUL byte beside the first character, or is
// "": the decoders, like Watt's, read UTF-8 only, and would report a
// puzzling invalid character instead.
func utf16Encoding(data []byte) string {
	switch {
	case len(data) < 2:
		return ""
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}), data[0] != 0 && data[1] == 0:
		return "UTF-16 (little-endian)"
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}), data[0] == 0 && data[1] != 0:
		return "UTF-16 (big-endian)"
	}
	return ""
}

// yamlBraces is the placeholder form Watt quotes before parsing YAML, so
// that `port: {PORT}` is the string "{PORT}" and not a flow mapping.
var (
	yamlBraces  = regexp.MustCompile(`(?i)\{(\d+|[a-z$_][\w\-$]*?(?:\.[\w\-$]*?)*?)\}`)
	yamlStrings = regexp.MustCompile(`"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'`)
)

// quoteYAMLPlaceholders does what Watt does to YAML text before parsing:
// a {NAME} outside a quoted string is wrapped in single quotes, so that it
// is a string rather than a flow mapping. Unlike Watt, only a placeholder
// that is a whole value is quoted: inside a plain value
// (url: http://{HOST}/) it already reads as text, and quotes would end up
// in the value. Lines do not move, so line numbers stay true.
func quoteYAMLPlaceholders(raw string) string {
	strs := yamlStrings.FindAllStringIndex(raw, -1)
	return replaceAllIndex(yamlBraces, raw, func(start, end int) string {
		for _, s := range strs {
			if start >= s[0] && start <= s[1] {
				return raw[start:end]
			}
		}
		if !wholeYAMLValue(raw, start, end) {
			return raw[start:end]
		}
		return "'" + raw[start:end] + "'"
	})
}

// wholeYAMLValue tells whether raw[start:end] stands alone as a value:
// after a key's colon, a sequence dash or a flow separator, and followed
// only by blanks, a comment or a flow separator.
func wholeYAMLValue(raw string, start, end int) bool {
	before := strings.TrimRight(raw[strings.LastIndexByte(raw[:start], '\n')+1:start], " \t")
	if before != "" && !strings.ContainsAny(before[len(before)-1:], ":-[,") {
		return false
	}
	after := raw[end:]
	if i := strings.IndexByte(after, '\n'); i >= 0 {
		after = after[:i]
	}
	after = strings.TrimLeft(after, " \t")
	return after == "" || strings.ContainsAny(after[:1], "#,]}\r")
}

func replaceAllIndex(re *regexp.Regexp, s string, repl func(start, end int) string) string {
	var b strings.Builder
	last := 0
	for _, m := range re.FindAllStringIndex(s, -1) {
		b.WriteString(s[last:m[0]])
		b.WriteString(repl(m[0], m[1]))
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// yamlLine finds the line of a yaml.v3 error ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`line (\d+)`)

func decodeYAML(data []byte) (*document, *syntaxError, []issue) {
	text := quoteYAMLPlaceholders(string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = strings.TrimSpace(strings.TrimPrefix(strings.Replace(msg, m[0], "", 1), ":"))
		}
		return nil, &syntaxError{line: line, msg: msg}, nil
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &syntaxError{line: 1, col: 1, msg: "the file is empty; expected a YAML mapping"}, nil
	}
	d := &yamlDecoder{doc: &document{offsets: map[string]int64{}, lines: map[string]int{}}}
	v, err := d.value(root.Content[0], "", 0)
	if err != nil {
		return nil, err, nil
	}
	d.doc.root = v
	return d.doc, nil, d.dups
}

type yamlDecoder struct {
	doc  *document
	dups []issue
}

func (d *yamlDecoder) mark(n *yaml.Node, ptr string) {
	// Line and column make an order as good as a byte offset.
	d.doc.offsets[ptr] = int64(n.Line)<<20 | int64(n.Column)
	d.doc.lines[ptr] = n.Line
}

func (d *yamlDecoder) value(n *yaml.Node, ptr string, depth int) (any, *syntaxError) {
	if depth > 64 {
		return nil, &syntaxError{line: n.Line, col: n.Column, msg: "nested too deeply (an alias loop?)"}
	}
	d.mark(n, ptr)
	switch n.Kind {
	case yaml.AliasNode:
		return d.value(n.Alias, ptr, depth+1)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return d.value(n.Content[0], ptr, depth+1)
	case yaml.MappingNode:
		obj := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				// << merges another mapping's keys, the local ones winning.
				merged, err := d.value(v, ptr, depth+1)
				if err != nil {
					return nil, err
				}
				if m, ok := merged.(map[string]any); ok {
					for mk, mv := range m {
						if _, set := obj[mk]; !set {
							obj[mk] = mv
						}
					}
				}
				continue
			}
			key := k.Value
			child := childPointer(ptr, key)
			if _, dup := obj[key]; dup {
				d.dups = append(d.dups, issuef(child, "key %q appears more than once in this mapping", key))
			}
			x, err := d.value(v, child, depth+1)
			if err != nil {
				return nil, err
			}
			d.mark(k, child)
			obj[key] = x
		}
		return obj, nil
	case yaml.SequenceNode:
		arr := []any{}
		for i, c := range n.Content {
			x, err := d.value(c, childPointer(ptr, strconv.Itoa(i)), depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, x)
		}
		return arr, nil
	case yaml.ScalarNode:
		return yamlScalar(n)
	}
	return nil, &syntaxError{line: n.Line, col: n.Column, msg: "unsupported YAML node"}
}

// YAML 1.2's core schema, which Watt's YAML parser (the yaml package)
// reads numbers with: a leading zero is decimal (010 is 10, where YAML
// 1.1, which yaml.v3 keeps for numbers, reads 8), octal is 0o17, and an
// underscore makes a string.
var (
	yamlDecimal = regexp.MustCompile(`^[-+]?[0-9]+$`)
	yamlOctal   = regexp.MustCompile(`^0o[0-7]+$`)
	yamlHex     = regexp.MustCompile(`^0x[0-9a-fA-F]+$`)
	yamlFloat   = regexp.MustCompile(`^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$`)
)

// yamlCoreNumber reads a plain scalar as YAML 1.2's core schema does: its
// number as JSON writes it, and whether it is one.
func yamlCoreNumber(v string) (json.Number, bool) {
	base, digits := 0, v
	switch {
	case yamlDecimal.MatchString(v):
		base = 10
	case yamlOctal.MatchString(v):
		base, digits = 8, v[2:]
	case yamlHex.MatchString(v):
		base, digits = 16, v[2:]
	case yamlFloat.MatchString(v):
		if json.Valid([]byte(v)) {
			return json.Number(v), true
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsInf(f, 0) {
			return "", false
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), true
	default:
		return "", false
	}
	i, ok := new(big.Int).SetString(strings.TrimPrefix(digits, "+"), base)
	if !ok {
		return "", false
	}
	return json.Number(i.String()), true
}

// yamlScalar turns a scalar into what JSON would have: numbers stay as
// written (as json.Number), timestamps and other tags become strings. A
// plain scalar with no tag written is a number by YAML 1.2's rules
// (yamlCoreNumber), as Watt reads it, not by yaml.v3's.
func yamlScalar(n *yaml.Node) (any, *syntaxError) {
	if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		switch tag := n.ShortTag(); {
		case tag != "!!int" && tag != "!!float" && tag != "!!str":
		default:
			if num, ok := yamlCoreNumber(n.Value); ok {
				return num, nil
			}
			return n.Value, nil
		}
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, &syntaxError{line: n.Line, col: n.Column, msg: err.Error()}
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return json.Number(strconv.FormatInt(i, 10)), nil
		}
		return n.Value, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return n.Value, nil
		}
		if json.Valid([]byte(n.Value)) {
			return json.Number(n.Value), nil
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	}
	return n.Value, nil
}

func decodeTOML(data []byte) (*document, *syntaxError, []issue) {
	if line, col := tomlTooDeep(data); line > 0 {
		return nil, &syntaxError{line: line, col: col, msg: (&nestingError{}).Error()}, nil
	}
	var tree map[string]any
	md, err := toml.Decode(string(data), &tree)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &syntaxError{line: pe.Position.Line, col: pe.Position.Col, msg: pe.Message}, nil
		}
		return nil, &syntaxError{msg: err.Error()}, nil
	}
	doc := &document{offsets: map[string]int64{}}
	// TOML keeps no positions per key; the order keys were written in is
	// what sorting the problems needs.
	for i, key := range md.Keys() {
		doc.offsets[pointerOf(key)] = int64(i + 1)
	}
	doc.root = tomlValue(tree)
	return doc, nil, nil
}

// tomlTooDeep gives the line and column of the first array or inline
// table opened beyond maxNesting, or 0, 0. The TOML decoder recurses once
// per level, and each level costs every value below it later, so a file of
// brackets would exhaust the memory or the stack before any message. It
// skips strings and comments; a table header's brackets count as the
// arrays they look like, which only matters beyond 64.
func tomlTooDeep(data []byte) (int, int) {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			for i++; i < len(data) && data[i] != c && data[i] != '\n'; i++ {
				if c == '"' && data[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			if depth++; depth > maxNesting {
				return lineColumn(data, int64(i))
			}
		case ']', '}':
			depth = max(depth-1, 0)
		}
	}
	return 0, 0
}

func tomlValue(v any) any {
	switch c := v.(type) {
	case map[string]any:
		for k, x := range c {
			c[k] = tomlValue(x)
		}
		return c
	case []map[string]any:
		out := make([]any, len(c))
		for i, x := range c {
			out[i] = tomlValue(x)
		}
		return out
	case []any:
		for i, x := range c {
			c[i] = tomlValue(x)
		}
		return c
	case int64:
		return json.Number(strconv.FormatInt(c, 10))
	case float64:
		if math.IsInf(c, 0) || math.IsNaN(c) {
			return fmt.Sprint(c)
		}
		return json.Number(strconv.FormatFloat(c, 'g', -1, 64))
	case time.Time:
		return c.Format(time.RFC3339Nano)
	}
	return v
}
