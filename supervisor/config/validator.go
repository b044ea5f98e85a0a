package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The validator checks a configuration tree against the embedded schema.
// It implements the part of JSON Schema (draft 2020-12) that schema.json
// uses, and loadSchema refuses a schema with any other keyword, so a
// keyword added to schema.json without support here fails the tests
// rather than being ignored. Writing it here rather than using a general
// validator keeps every wattd command from paying for one at start-up
// (compiling the meta-schemas of five drafts, about 9 ms and 3 MiB).
//
// The tree is what decodeJSON and the other formats give: objects,
// arrays, strings, json.Number, booleans and nil.

// vfail is one failed keyword.
type vfail struct {
	keyword string // "type", "minimum", "anyOf", "additionalProperties", ...
	at      string // JSON pointer of the value
	schema  string // location of the schema node that has the keyword ("#/$defs/x")
	// keys: the keys additionalProperties refuses, or the ones required
	// that are missing.
	keys []string
	// branches: for anyOf and oneOf, what each alternative found wrong
	// (none when oneOf failed because several matched).
	branches [][]*vfail
}

// annotationKeywords are the keywords the validator reads past; every
// other keyword it implements has its case in checkNode.
var annotationKeywords = map[string]bool{
	"$schema": true, "$defs": true, "$comment": true, "title": true, "description": true,
	"default": true, "examples": true, "deprecated": true, "markdownDescription": true,
}

// checkSchema walks the raw schema and compiles its patterns: it fails on
// a keyword the validator does not implement, a malformed value of one it
// does, a $ref that does not resolve, or a pattern Go cannot compile.
func (s *schemaSet) checkSchema() error {
	s.patterns = map[string]*regexp.Regexp{}
	root, ok := s.raw.(map[string]any)
	if !ok {
		return fmt.Errorf("the schema is not an object")
	}
	return s.checkNode(root, "#")
}

func (s *schemaSet) checkNode(n map[string]any, loc string) error {
	for k, v := range n {
		at := loc + "/" + k
		switch {
		case k == "$defs" || k == "properties":
			m, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: want an object", at)
			}
			for name, sub := range m {
				if err := s.checkSub(sub, at+"/"+pointerToken(name)); err != nil {
					return err
				}
			}
		case k == "additionalProperties" || k == "items":
			if err := s.checkSub(v, at); err != nil {
				return err
			}
		case k == "anyOf" || k == "oneOf" || k == "allOf":
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				return fmt.Errorf("%s: want a non-empty array", at)
			}
			for i, sub := range list {
				if err := s.checkSub(sub, at+"/"+strconv.Itoa(i)); err != nil {
					return err
				}
			}
		case k == "$ref":
			ref, ok := v.(string)
			if !ok || !strings.HasPrefix(ref, "#") || s.at(ref) == nil {
				return fmt.Errorf("%s: %v does not name a schema of this file", at, v)
			}
			// A chain of $refs that comes back to itself would never end.
			seen := map[string]bool{loc: true}
			for next := ref; ; {
				_, frag, _ := strings.Cut(next, "#")
				if seen["#"+frag] {
					return fmt.Errorf("%s: the $ref %s leads back to itself", at, ref)
				}
				seen["#"+frag] = true
				m, _ := s.at(next).(map[string]any)
				if next, ok = m["$ref"].(string); !ok {
					break
				}
			}
		case k == "pattern":
			p, ok := v.(string)
			if !ok {
				return fmt.Errorf("%s: want a string", at)
			}
			re, err := regexp.Compile(p)
			if err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
			s.patterns[p] = re
		case k == "type":
			if len(typeNames(v)) == 0 {
				return fmt.Errorf("%s: want a type name or a list of them", at)
			}
		case k == "enum" || k == "required":
			if _, ok := v.([]any); !ok {
				return fmt.Errorf("%s: want an array", at)
			}
		case k == "minimum" || k == "maximum" || k == "exclusiveMinimum" || k == "exclusiveMaximum" || k == "multipleOf" ||
			k == "minLength" || k == "maxLength" || k == "minItems" || k == "maxItems":
			if _, ok := ratOf(v); !ok {
				return fmt.Errorf("%s: want a number", at)
			}
		case k == "uniqueItems":
			if _, ok := v.(bool); !ok {
				return fmt.Errorf("%s: want a boolean", at)
			}
		case k == "const" || annotationKeywords[k]:
		default:
			return fmt.Errorf("%s: keyword %q is not supported by wattd's validator", at, k)
		}
	}
	return nil
}

func (s *schemaSet) checkSub(v any, loc string) error {
	switch c := v.(type) {
	case bool:
		return nil
	case map[string]any:
		return s.checkNode(c, loc)
	}
	return fmt.Errorf("%s: want a schema (an object or a boolean)", loc)
}

// pointerToken escapes one token of a schema location.
func pointerToken(s string) string {
	return strings.TrimPrefix(childPointer("", s), "/")
}

// typeNames reads a "type" keyword's value.
func typeNames(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// check validates v (at the pointer at) against the schema sub, found at
// loc; a boolean schema accepts everything (true) or nothing (false).
func (s *schemaSet) check(v any, at string, sub any, loc string) []*vfail {
	switch n := sub.(type) {
	case bool:
		if n {
			return nil
		}
		return []*vfail{{keyword: "false", at: at, schema: loc}}
	case map[string]any:
		return s.checkObject(v, at, n, loc)
	}
	return nil
}

func (s *schemaSet) checkObject(v any, at string, n map[string]any, loc string) []*vfail {
	var out []*vfail
	fail := func(keyword string) { out = append(out, &vfail{keyword: keyword, at: at, schema: loc}) }

	if ref, ok := n["$ref"].(string); ok {
		// The target as written: its own $ref and the keywords beside it
		// both apply.
		_, frag, _ := strings.Cut(ref, "#")
		out = append(out, s.check(v, at, s.at(ref), "#"+frag)...)
	}
	if t, ok := n["type"]; ok && !typeMatches(typeNames(t), v) {
		// Nothing else a schema says about a value applies to one of
		// another type.
		return append(out, &vfail{keyword: "type", at: at, schema: loc})
	}
	if enum, ok := n["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return jsonEqual(e, v) }) {
		fail("enum")
	}
	if c, ok := n["const"]; ok && !jsonEqual(c, v) {
		fail("const")
	}

	switch c := v.(type) {
	case json.Number:
		x, ok := ratOf(c)
		if !ok {
			break
		}
		if b, ok := ratOf(n["minimum"]); ok && x.Cmp(b) < 0 {
			fail("minimum")
		}
		if b, ok := ratOf(n["maximum"]); ok && x.Cmp(b) > 0 {
			fail("maximum")
		}
		if b, ok := ratOf(n["exclusiveMinimum"]); ok && x.Cmp(b) <= 0 {
			fail("exclusiveMinimum")
		}
		if b, ok := ratOf(n["exclusiveMaximum"]); ok && x.Cmp(b) >= 0 {
			fail("exclusiveMaximum")
		}
		if b, ok := ratOf(n["multipleOf"]); ok && b.Sign() > 0 && !new(big.Rat).Quo(x, b).IsInt() {
			fail("multipleOf")
		}
	case string:
		length := int64(utf8.RuneCountInString(c))
		if b, ok := ratOf(n["minLength"]); ok && big.NewRat(length, 1).Cmp(b) < 0 {
			fail("minLength")
		}
		if b, ok := ratOf(n["maxLength"]); ok && big.NewRat(length, 1).Cmp(b) > 0 {
			fail("maxLength")
		}
		if p, ok := n["pattern"].(string); ok && !s.patterns[p].MatchString(c) {
			fail("pattern")
		}
	case map[string]any:
		out = append(out, s.checkProperties(c, at, n, loc)...)
	case []any:
		count := big.NewRat(int64(len(c)), 1)
		if b, ok := ratOf(n["minItems"]); ok && count.Cmp(b) < 0 {
			fail("minItems")
		}
		if b, ok := ratOf(n["maxItems"]); ok && count.Cmp(b) > 0 {
			fail("maxItems")
		}
		if u, _ := n["uniqueItems"].(bool); u && firstRepeated(c) >= 0 {
			fail("uniqueItems")
		}
		if items, ok := n["items"]; ok {
			for i, x := range c {
				out = append(out, s.check(x, childPointer(at, strconv.Itoa(i)), items, loc+"/items")...)
			}
		}
	}

	if all, ok := n["allOf"].([]any); ok {
		for i, b := range all {
			out = append(out, s.check(v, at, b, loc+"/allOf/"+strconv.Itoa(i))...)
		}
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		list, ok := n[kw].([]any)
		if !ok {
			continue
		}
		var branches [][]*vfail
		matched := 0
		for i, b := range list {
			fails := s.check(v, at, b, loc+"/"+kw+"/"+strconv.Itoa(i))
			if len(fails) == 0 {
				matched++
			} else {
				branches = append(branches, fails)
			}
		}
		switch {
		case matched == 0:
			out = append(out, &vfail{keyword: kw, at: at, schema: loc, branches: branches})
		case kw == "oneOf" && matched > 1:
			fail(kw)
		}
	}
	return out
}

// checkProperties applies properties, additionalProperties and required
// to the object o.
func (s *schemaSet) checkProperties(o map[string]any, at string, n map[string]any, loc string) []*vfail {
	var out []*vfail
	props, _ := n["properties"].(map[string]any)
	extra, hasExtra := n["additionalProperties"]
	var refused []string
	for _, k := range sortedKeys(o) {
		if p, ok := props[k]; ok {
			out = append(out, s.check(o[k], childPointer(at, k), p, loc+"/properties/"+pointerToken(k))...)
			continue
		}
		if !hasExtra {
			continue
		}
		if b, ok := extra.(bool); ok {
			if !b {
				refused = append(refused, k)
			}
			continue
		}
		out = append(out, s.check(o[k], childPointer(at, k), extra, loc+"/additionalProperties")...)
	}
	if len(refused) > 0 {
		out = append(out, &vfail{keyword: "additionalProperties", at: at, schema: loc, keys: refused})
	}
	if req, ok := n["required"].([]any); ok {
		var missing []string
		for _, r := range req {
			if k, ok := r.(string); ok {
				if _, has := o[k]; !has {
					missing = append(missing, k)
				}
			}
		}
		if len(missing) > 0 {
			out = append(out, &vfail{keyword: "required", at: at, schema: loc, keys: missing})
		}
	}
	return out
}

// typeMatches tells whether v has one of the JSON types named; "number"
// admits integers, and "integer" any number without a fraction (1.0
// included, as draft 2020-12 says).
func typeMatches(names []string, v any) bool {
	t := jsonType(v)
	for _, name := range names {
		if name == t || (name == "number" && t == "integer") {
			return true
		}
	}
	return false
}

// ratOf reads a JSON number exactly. One whose exponent is too large for
// math/big (past about ten million) is read as a float64: ±Inf becomes
// ±10^400, beyond every bound a schema has, and a fraction too small for
// a float64 becomes 0.
func ratOf(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	if r, ok := new(big.Rat).SetString(string(n)); ok {
		return r, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	switch {
	case math.IsInf(f, 1):
		return new(big.Rat).SetInt(beyondBounds), true
	case math.IsInf(f, -1):
		return new(big.Rat).SetInt(new(big.Int).Neg(beyondBounds)), true
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return nil, false
	}
	return new(big.Rat).SetFloat64(f), true
}

var beyondBounds = new(big.Int).Exp(big.NewInt(10), big.NewInt(400), nil)

// jsonEqual compares two JSON values as JSON Schema does: numbers by
// value, objects by their members, arrays element by element.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case json.Number:
		ra, ok1 := ratOf(x)
		rb, ok2 := ratOf(b)
		return ok1 && ok2 && ra.Cmp(rb) == 0
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, has := y[k]
			if !has || !jsonEqual(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

// firstRepeated is the index of the first item that a later one repeats,
// or -1 when every item differs from the others.
func firstRepeated(items []any) int {
	for i := range items {
		for j := i + 1; j < len(items); j++ {
			if jsonEqual(items[i], items[j]) {
				return i
			}
		}
	}
	return -1
}
