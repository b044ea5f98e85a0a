package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Schema is the JSON Schema (draft 2020-12) that watt.json is validated
// against, exposed so a command can print it for editors.
//
//go:embed schema.json
var Schema []byte

// schemaSet is the schema, as decoded (numbers as json.Number), with its
// patterns compiled (validator.go).
type schemaSet struct {
	raw      any
	patterns map[string]*regexp.Regexp
}

var loadSchema = sync.OnceValues(func() (*schemaSet, error) { return newSchemaSet(Schema) })

// newSchemaSet decodes and checks a schema.
func newSchemaSet(b []byte) (*schemaSet, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var raw any
	if err := d.Decode(&raw); err != nil {
		return nil, fmt.Errorf("embedded schema: %w", err)
	}
	s := &schemaSet{raw: raw}
	if err := s.checkSchema(); err != nil {
		return nil, fmt.Errorf("embedded schema: %w", err)
	}
	return s, nil
}

// node resolves a schema location ("#/properties/server") in the raw
// schema, following $ref.
func (s *schemaSet) node(location string) map[string]any {
	m, _ := s.at(location).(map[string]any)
	return s.deref(m)
}

// at is the schema at a location as written: an object, a boolean, or nil
// when nothing is there.
func (s *schemaSet) at(location string) any {
	_, frag, _ := strings.Cut(location, "#")
	var v any = s.raw
	for _, seg := range splitPointer(frag) {
		switch c := v.(type) {
		case map[string]any:
			v = c[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// deref follows local $refs; the embedded schema has no remote ones.
func (s *schemaSet) deref(n map[string]any) map[string]any {
	for range 16 {
		ref, ok := n["$ref"].(string)
		if !ok {
			return n
		}
		n = s.node(ref)
	}
	return n
}

// alternatives lists the schemas a value may match: the node itself, or its
// anyOf branches.
func (s *schemaSet) alternatives(n map[string]any) []map[string]any {
	branches, ok := n["anyOf"].([]any)
	if !ok {
		return []map[string]any{n}
	}
	var out []map[string]any
	for _, b := range branches {
		if m, ok := b.(map[string]any); ok {
			out = append(out, s.alternatives(s.deref(m))...)
		}
	}
	return out
}

// jsonType names the JSON type of a decoded value as JSON Schema does.
func jsonType(v any) string {
	switch c := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		if isInteger(c) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func isInteger(n json.Number) bool {
	r, ok := new(big.Rat).SetString(string(n))
	return ok && r.IsInt()
}

// types lists the JSON types a schema node admits, including those implied
// by enum or const.
func types(n map[string]any) []string {
	out := typeNames(n["type"])
	if enum, ok := n["enum"].([]any); ok && len(out) == 0 {
		for _, e := range enum {
			out = append(out, jsonType(e))
		}
	}
	return out
}

func admits(typeList []string, t string) bool {
	return slices.Contains(typeList, t) || (t == "integer" && slices.Contains(typeList, "number"))
}

// coerce converts scalar strings into the numbers and booleans the schema
// wants, and numbers or booleans into strings where only strings are
// wanted. Watt validates with Ajv's coerceTypes, and placeholders always
// produce strings, so "port": "{PLT_PORT}" must be accepted as a number.
// Values that cannot be converted are left alone for validation to report.
func (s *schemaSet) coerce(v any, n map[string]any) any {
	if n == nil {
		return v
	}
	alts := s.alternatives(s.deref(n))
	switch c := v.(type) {
	case map[string]any:
		obj := pickAlternative(alts, "object")
		if obj == nil {
			return v
		}
		props, _ := obj["properties"].(map[string]any)
		extra, _ := obj["additionalProperties"].(map[string]any)
		for k, x := range c {
			if p, ok := props[k].(map[string]any); ok {
				c[k] = s.coerce(x, p)
			} else if extra != nil {
				c[k] = s.coerce(x, extra)
			}
		}
		return c
	case []any:
		arr := pickAlternative(alts, "array")
		if arr == nil {
			return v
		}
		items, _ := arr["items"].(map[string]any)
		for i, x := range c {
			c[i] = s.coerce(x, items)
		}
		return c
	}
	var wanted []string
	for _, a := range alts {
		wanted = append(wanted, types(a)...)
	}
	return coerceScalar(v, wanted)
}

func pickAlternative(alts []map[string]any, t string) map[string]any {
	for _, a := range alts {
		if admits(types(a), t) {
			return a
		}
	}
	return nil
}

// coerceScalar applies Ajv's scalar coercions that matter for a config
// file; a value whose type is already wanted is never touched.
func coerceScalar(v any, wanted []string) any {
	if len(wanted) == 0 || admits(wanted, jsonType(v)) {
		return v
	}
	switch c := v.(type) {
	case string:
		t := strings.TrimSpace(c)
		if slices.Contains(wanted, "boolean") && (t == "true" || t == "false") {
			return t == "true"
		}
		if slices.Contains(wanted, "integer") || slices.Contains(wanted, "number") {
			if t != "" && json.Valid([]byte(t)) {
				if _, err := strconv.ParseFloat(t, 64); err == nil {
					return json.Number(t)
				}
			}
		}
	case json.Number:
		if slices.Contains(wanted, "string") {
			return jsNumberString(c)
		}
	case bool:
		if slices.Contains(wanted, "string") {
			return strconv.FormatBool(c)
		}
	}
	return v
}

// validate checks the tree and translates every failure into an issue.
func (s *schemaSet) validate(tree any) []issue {
	fails := s.check(tree, "", s.raw, "#")
	if len(fails) == 0 {
		return nil
	}
	t := &translator{schemas: s, tree: tree}
	for _, f := range fails {
		t.walk(f)
	}
	return t.issues
}

// translator turns the validator's failures into messages phrased in
// terms of the file: where, what was expected, and what was found.
type translator struct {
	schemas *schemaSet
	tree    any
	issues  []issue
}

func (t *translator) walk(f *vfail) {
	ptr := f.at
	switch f.keyword {
	case "anyOf", "oneOf":
		t.alternatives(f)
	case "additionalProperties":
		allowed := t.allowedKeys(f.schema, ptr)
		for _, key := range f.keys {
			kp := childPointer(ptr, key)
			t.issues = append(t.issues, issue{ptr: kp, msg: unknownKeyMessage(key, allowed), rejects: kp, unknownKey: true})
		}
	case "required":
		for _, key := range f.keys {
			t.issues = append(t.issues, issue{ptr: ptr, msg: fmt.Sprintf("missing required key %q", key), rejects: ptr})
		}
	case "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
		"minLength", "maxLength", "pattern":
		t.issues = append(t.issues, issue{ptr: ptr, msg: t.expectation(t.schemas.node(f.schema), ptr), rejects: ptr})
	case "minItems", "maxItems", "uniqueItems":
		t.issues = append(t.issues, issue{ptr: ptr, msg: t.arrayMessage(f), rejects: ptr})
	case "false":
		t.issues = append(t.issues, issue{ptr: ptr, msg: "no value is allowed here", rejects: ptr})
	default:
		t.issues = append(t.issues, issue{ptr: ptr, rejects: ptr,
			msg: fmt.Sprintf("does not satisfy the schema keyword %q", f.keyword)})
	}
}

// arrayMessage phrases what is wrong with the array at f.at as a whole.
func (t *translator) arrayMessage(f *vfail) string {
	v, _ := valueAt(t.tree, f.at)
	items, _ := v.([]any)
	n := t.schemas.node(f.schema)
	if f.keyword == "uniqueItems" {
		if i := firstRepeated(items); i >= 0 {
			return fmt.Sprintf("expected each item once, got %s more than once", describeValue(items[i]))
		}
		return "expected each item once"
	}
	bound, _ := n[f.keyword].(json.Number)
	if f.keyword == "minItems" {
		return fmt.Sprintf("expected at least %s %s, got %d", bound, plural(bound, "item"), len(items))
	}
	return fmt.Sprintf("expected at most %s %s, got %d", bound, plural(bound, "item"), len(items))
}

func plural(n json.Number, word string) string {
	if n == "1" {
		return word
	}
	return word + "s"
}

// alternatives reports an anyOf failure. When the value has the type of
// one branch, that branch's own complaints are the useful ones (workers as
// an object with a typo); when it matches no branch, one "expected A or B"
// says it all.
func (t *translator) alternatives(f *vfail) {
	for _, b := range f.branches {
		if !onlyTypeMismatch(b, f.at) {
			for _, c := range b {
				t.walk(c)
			}
			return
		}
	}
	t.issues = append(t.issues, issue{ptr: f.at, msg: t.expectation(t.schemas.node(f.schema), f.at), rejects: f.at})
}

// onlyTypeMismatch tells whether a branch failed merely because the value
// at has another type.
func onlyTypeMismatch(fails []*vfail, at string) bool {
	if len(fails) == 0 {
		return false
	}
	for _, f := range fails {
		if f.keyword == "type" {
			if f.at != at {
				return false
			}
			continue
		}
		if len(f.branches) == 0 {
			return false
		}
		for _, b := range f.branches {
			if !onlyTypeMismatch(b, at) {
				return false
			}
		}
	}
	return true
}

func (t *translator) expectation(n map[string]any, ptr string) string {
	v, _ := valueAt(t.tree, ptr)
	msg := fmt.Sprintf("expected %s, got %s", t.schemas.describe(n), describeValue(v))
	if got, ok := v.(string); ok && n != nil {
		// "warning" for "warn" deserves the same hint as a misspelt key.
		var words []string
		for _, alt := range t.schemas.alternatives(t.schemas.deref(n)) {
			enum, _ := alt["enum"].([]any)
			for _, e := range enum {
				if w, ok := e.(string); ok {
					words = append(words, w)
				}
			}
		}
		msg = withSuggestion(msg, got, words)
	}
	return msg
}

// allowedKeys lists what may be written in the object at ptr: the schema's
// own keys and the Watt options wattd accepts with a warning, since a
// misspelt Watt option deserves a hint as much as a wattd one.
func (t *translator) allowedKeys(location, ptr string) []string {
	keys := wattOnlyKeysAt(ptr)
	if n := t.schemas.node(location); n != nil {
		if props, ok := n["properties"].(map[string]any); ok {
			keys = append(keys, sortedKeys(props)...)
		}
	}
	return keys
}

// describe phrases a schema node as the kind of value it wants.
func (s *schemaSet) describe(n map[string]any) string {
	if n == nil {
		return "a different value"
	}
	n = s.deref(n)
	if branches, ok := n["anyOf"].([]any); ok {
		var parts []string
		for _, b := range branches {
			if m, ok := b.(map[string]any); ok {
				parts = append(parts, s.describe(m))
			}
		}
		return strings.Join(parts, " or ")
	}
	if enum, ok := n["enum"].([]any); ok {
		vals := make([]string, len(enum))
		for i, e := range enum {
			vals[i] = describeValue(e)
		}
		return "one of " + strings.Join(vals, ", ")
	}
	if c, ok := n["const"]; ok {
		return describeValue(c)
	}
	ts := types(n)
	parts := make([]string, 0, len(ts))
	for _, typ := range ts {
		parts = append(parts, describeType(typ, n))
	}
	if len(parts) == 0 {
		return "a different value"
	}
	return strings.Join(parts, " or ")
}

func describeType(typ string, n map[string]any) string {
	switch typ {
	case "integer", "number":
		lo, hasLo := n["minimum"].(json.Number)
		hi, hasHi := n["maximum"].(json.Number)
		if xlo, ok := n["exclusiveMinimum"].(json.Number); ok {
			if hasHi {
				return fmt.Sprintf("%s above %s and at most %s", typ, xlo, hi)
			}
			return fmt.Sprintf("%s above %s", typ, xlo)
		}
		switch {
		case hasLo && hasHi:
			return fmt.Sprintf("%s from %s to %s", typ, lo, hi)
		case hasLo:
			return fmt.Sprintf("%s of at least %s", typ, lo)
		case hasHi:
			return fmt.Sprintf("%s of at most %s", typ, hi)
		}
		return typ
	case "string":
		if p, ok := n["pattern"].(string); ok {
			return "string matching " + p
		}
		if m, ok := n["minLength"].(json.Number); ok && m == "1" {
			return "non-empty string"
		}
		return "string"
	case "object":
		return "object"
	case "array":
		return "array"
	}
	return typ
}

// describeValue renders what was found, short enough for one line.
func describeValue(v any) string {
	switch c := v.(type) {
	case nil:
		return "null"
	case string:
		if utf8.RuneCountInString(c) > 60 {
			c = string([]rune(c)[:57]) + "..."
		}
		return strconv.Quote(c)
	case json.Number:
		return string(c)
	case bool:
		return strconv.FormatBool(c)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprint(v)
}

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER, 2^53-1.
var maxSafeInteger = new(big.Int).SetInt64(1<<53 - 1)

// jsNumberString is the text JavaScript gives a JSON number turned into a
// string (String(n)), which is what a number written where Watt expects a
// string becomes under Watt's type coercion: 1.50 is "1.5", 1e3 is "1000",
// 1e21 is "1e+21", -0 is "0". An integer beyond 2^53 keeps the digits
// written instead of JavaScript's rounding of them
// (12345678901234567890 would be "12345678901234567000").
func jsNumberString(n json.Number) string {
	if i, ok := new(big.Int).SetString(string(n), 10); ok && i.CmpAbs(maxSafeInteger) > 0 {
		return i.String()
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return string(n)
	}
	if f == 0 {
		return "0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// The shortest digits that read back as f, and the decimal exponent
	// n of ECMAScript's Number::toString: f = 0.digits × 10^n.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, p := len(digits), x+1
	switch {
	case k <= p && p <= 21:
		return sign + digits + strings.Repeat("0", p-k)
	case 0 < p && p <= 21:
		return sign + digits[:p] + "." + digits[p:]
	case -6 < p && p <= 0:
		return sign + "0." + strings.Repeat("0", -p) + digits
	}
	es := "+"
	if p-1 < 0 {
		es = "-"
	}
	if k == 1 {
		return fmt.Sprintf("%s%se%s%d", sign, digits, es, abs(p-1))
	}
	return fmt.Sprintf("%s%s.%se%s%d", sign, digits[:1], digits[1:], es, abs(p-1))
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
