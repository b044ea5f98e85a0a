package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// EditorSchema is the JSON Schema `wattd schema` prints, for editors and
// for checking files in CI: every file wattd loads is valid against it.
// Schema is what wattd validates a file against once its placeholders are
// resolved, its string values coerced and Watt's options it ignores taken
// out; EditorSchema is the same schema opened up for the file as written:
// a number or boolean may be a string (a "{PORT}" placeholder, or "2"),
// Watt's options that wattd ignores with a warning are known keys (their
// description says what wattd does instead), and an application entry
// takes unknown keys, which wattd warns about too.
var EditorSchema = sync.OnceValue(func() []byte {
	var raw map[string]any
	d := json.NewDecoder(bytes.NewReader(Schema))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		panic(fmt.Sprintf("embedded schema: %v", err))
	}
	e := editorSchema{root: raw, set: &schemaSet{raw: raw}}
	e.loosenTypes(raw)
	for _, o := range wattOnlyOptions {
		e.addWattOnly(o)
	}
	// Unknown keys of an application entry are warned, not refused.
	for _, def := range []string{"application", "mapping"} {
		if m, ok := e.def(def); ok {
			m["additionalProperties"] = true
		}
	}
	raw["description"] = "The Platformatic Watt runtime configuration as wattd reads it: the keys wattd implements, its own \"restart\", \"resources\" and \"cgroups\", and Watt's other options, which wattd accepts with a warning and ignores (their descriptions say so). Any value may be a {NAME} environment placeholder, and a number or a boolean may be written as a string. Other keys of the runtime are errors; other keys of an application entry are warned about."
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(raw); err != nil {
		panic(fmt.Sprintf("editor schema: %v", err))
	}
	return b.Bytes()
})

type editorSchema struct {
	root map[string]any
	set  *schemaSet // the same tree, for its $ref resolution
}

func (e editorSchema) def(name string) (map[string]any, bool) {
	m := e.set.node("#/$defs/" + name)
	return m, m != nil
}

// placeholderSchema is a string holding a {NAME} placeholder, which
// stands for any value until it is resolved.
var placeholderSchema = map[string]any{"type": "string", "pattern": `\{[^{}]+\}`}

// loosenTypes opens every typed schema to what wattd coerces, as Watt
// does: a number, an integer or a boolean may be written as a string, and
// a string as a number or a boolean. A schema that allows only some
// strings (enum, const, pattern) also takes a placeholder.
func (e editorSchema) loosenTypes(v any) {
	switch c := v.(type) {
	case map[string]any:
		for _, x := range c {
			e.loosenTypes(x)
		}
		var types []any
		switch t := c["type"].(type) {
		case string:
			types = []any{t}
		case []any:
			types = t
		}
		for _, t := range slices.Clone(types) {
			switch t {
			case "integer", "number", "boolean":
				if !slices.Contains(types, any("string")) {
					types = append(types, "string")
				}
			case "string":
				for _, more := range []any{"number", "boolean"} {
					if !slices.Contains(types, more) {
						types = append(types, more)
					}
				}
			}
		}
		if len(types) > 0 {
			c["type"] = types
		}
		_, enum := c["enum"]
		_, konst := c["const"]
		_, pattern := c["pattern"]
		if enum || konst || pattern {
			inner := map[string]any{}
			for k, x := range c {
				if k != "description" {
					inner[k] = x
					delete(c, k)
				}
			}
			c["anyOf"] = []any{inner, placeholderSchema}
		}
	case []any:
		for _, x := range c {
			e.loosenTypes(x)
		}
	}
}

// addWattOnly makes the keys of o known where o says they are: a property
// described as ignored, or, for o's "*", any key.
func (e editorSchema) addWattOnly(o wattOnlyOption) {
	var at []map[string]any
	if segs := splitPointer(o.at); len(segs) > 0 && segs[0] == "@app" {
		for _, def := range []string{"application", "mapping"} {
			if m, ok := e.def(def); ok {
				at = append(at, e.walk([]map[string]any{m}, segs[1:])...)
			}
		}
	} else {
		at = e.walk([]map[string]any{e.root}, segs)
	}
	desc := "Watt option that wattd does not implement: accepted with a warning and ignored."
	if o.instead != "" {
		desc = "Watt option that wattd does not implement: accepted with a warning and ignored; " + o.instead + "."
	}
	for _, m := range at {
		if m["type"] == "array" {
			continue
		}
		props, _ := m["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
			m["properties"] = props
		}
		for _, k := range o.keys {
			if k == "*" {
				m["additionalProperties"] = map[string]any{"description": desc}
				continue
			}
			if _, ok := props[k]; !ok {
				props[k] = map[string]any{"description": desc}
			}
		}
	}
}

// walk follows an instance location's segments from schemas through
// their properties ("*": an array's items, or a map's values), looking
// into $ref and the branches of anyOf and oneOf, and returns the object
// schemas found there.
func (e editorSchema) walk(from []map[string]any, segs []string) []map[string]any {
	var objects []map[string]any
	for _, m := range from {
		objects = append(objects, e.objects(m)...)
	}
	if len(segs) == 0 {
		return objects
	}
	var next []map[string]any
	for _, m := range objects {
		if segs[0] == "*" {
			if items, ok := m["items"].(map[string]any); ok {
				next = append(next, items)
			}
			if ap, ok := m["additionalProperties"].(map[string]any); ok {
				next = append(next, ap)
			}
			continue
		}
		props, _ := m["properties"].(map[string]any)
		if p, ok := props[segs[0]].(map[string]any); ok {
			next = append(next, p)
		}
	}
	return e.walk(next, segs[1:])
}

// objects is m, its $ref and its anyOf and oneOf branches, followed
// through, that describe an object or an array.
func (e editorSchema) objects(m map[string]any) []map[string]any {
	var out []map[string]any
	if _, ok := m["$ref"]; ok {
		if target := e.set.deref(m); target != nil {
			out = append(out, e.objects(target)...)
		}
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		branches, _ := m[key].([]any)
		for _, b := range branches {
			if bm, ok := b.(map[string]any); ok {
				out = append(out, e.objects(bm)...)
			}
		}
	}
	if _, ok := m["properties"]; ok {
		out = append(out, m)
	} else if _, ok := m["items"]; ok {
		out = append(out, m)
	} else if m["type"] == "object" {
		out = append(out, m)
	}
	return out
}
