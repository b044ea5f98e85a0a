package logs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultCensor replaces redacted values when the configuration names no
// censor; it is the default of Watt's logger.redact.censor.
const DefaultCensor = "[redacted]"

// Redactor masks the values at pino's redact paths in log entries: the
// fields of wattd's own entries and of structured worker lines. The
// syntax is pino's: members joined by dots (a.b), bracketed and quoted
// members for keys that are not identifiers (a["b-c"]), array indexes
// (a[0]) and the wildcard for every member or element (a.*, a[*].b, *.b).
// As in pino, a path that does not exist in an entry adds nothing, and a
// value is replaced only when every member on the way is an object.
type Redactor struct {
	paths  [][]string // "*" is the wildcard
	censor string
	// tops are the first members of the paths, so an entry whose fields
	// none of them names costs one map lookup per field.
	tops     map[string]bool
	wildTop  bool
	wholeTop map[string]bool // top members that a one-member path masks whole
}

// NewRedactor parses paths; censor is used as given, "" included (the
// configuration supplies DefaultCensor when it names none). No paths give
// a nil Redactor, which redacts nothing.
func NewRedactor(paths []string, censor string) (*Redactor, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	r := &Redactor{censor: censor, tops: map[string]bool{}, wholeTop: map[string]bool{}}
	for i, p := range paths {
		segs, err := ParseRedactPath(p)
		if err != nil {
			return nil, fmt.Errorf("redact path %d %q: %w", i, p, err)
		}
		r.paths = append(r.paths, segs)
		if segs[0] == "*" {
			r.wildTop = true
		} else {
			r.tops[segs[0]] = true
		}
		if len(segs) == 1 && segs[0] != "*" {
			r.wholeTop[segs[0]] = true
		}
	}
	return r, nil
}

// Censor is the text that replaces a redacted value.
func (r *Redactor) Censor() string { return r.censor }

// ParseRedactPath splits a path into its members ("*" for the wildcard),
// or says why it is not one.
func ParseRedactPath(p string) ([]string, error) {
	var segs []string
	i := 0
	for i < len(p) {
		switch c := p[i]; {
		case c == '[':
			if i+1 < len(p) && (p[i+1] == '"' || p[i+1] == '\'') {
				// A quoted member may hold dots and brackets.
				q := p[i+1]
				end := strings.IndexByte(p[i+2:], q)
				if end < 0 || i+2+end+1 >= len(p) || p[i+2+end+1] != ']' {
					return nil, fmt.Errorf("unbalanced quotes at offset %d", i)
				}
				segs = append(segs, p[i+2:i+2+end])
				i += 2 + end + 2
			} else {
				end := strings.IndexByte(p[i:], ']')
				if end < 0 {
					return nil, fmt.Errorf("unclosed [ at offset %d", i)
				}
				if end == 1 {
					return nil, fmt.Errorf("empty [] at offset %d", i)
				}
				segs = append(segs, p[i+1:i+end])
				i += end + 1
			}
			if i < len(p) && p[i] == '.' {
				i++
				if i == len(p) {
					return nil, fmt.Errorf("ends with a dot")
				}
			}
		case c == '.':
			return nil, fmt.Errorf("empty member at offset %d", i)
		default:
			end := strings.IndexAny(p[i:], ".[")
			if end < 0 {
				end = len(p) - i
			}
			segs = append(segs, p[i:i+end])
			i += end
			if i < len(p) && p[i] == '.' {
				i++
				if i == len(p) {
					return nil, fmt.Errorf("ends with a dot")
				}
			}
		}
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("empty path")
	}
	return segs, nil
}

// touches tells whether some path may reach into a field called key.
func (r *Redactor) touches(key string) bool {
	return r != nil && (r.wildTop || r.tops[key])
}

// Top redacts one top-level member of an entry: it returns the member's
// value with every path that starts at key applied. v is changed in place
// and must be a fresh value decoded from JSON (maps, slices, scalars).
func (r *Redactor) Top(key string, v any) any {
	root := map[string]any{key: v}
	for _, segs := range r.paths {
		if segs[0] == "*" || segs[0] == key {
			r.apply(root, segs)
		}
	}
	return root[key]
}

// apply masks the members at segs below node.
func (r *Redactor) apply(node any, segs []string) {
	last := len(segs) == 1
	switch n := node.(type) {
	case map[string]any:
		if segs[0] == "*" {
			for k, child := range n {
				if last {
					n[k] = r.censor
				} else {
					r.apply(child, segs[1:])
				}
			}
			return
		}
		child, ok := n[segs[0]]
		if !ok {
			return
		}
		if last {
			n[segs[0]] = r.censor
		} else {
			r.apply(child, segs[1:])
		}
	case []any:
		if segs[0] == "*" {
			for i := range n {
				if last {
					n[i] = r.censor
				} else {
					r.apply(n[i], segs[1:])
				}
			}
			return
		}
		i, err := strconv.Atoi(segs[0])
		if err != nil || i < 0 || i >= len(n) {
			return
		}
		if last {
			n[i] = r.censor
		} else {
			r.apply(n[i], segs[1:])
		}
	}
}

// Fields returns fields with the redact paths applied; fields is not
// changed. Fields holding structures (objects, maps, slices) are
// redacted through their JSON form.
func (r *Redactor) Fields(fields []zapcore.Field) []zapcore.Field {
	if r == nil {
		return fields
	}
	var out []zapcore.Field
	for i, f := range fields {
		var (
			nf      zapcore.Field
			changed bool
		)
		if orig, ok := renamedFrom(f); ok {
			// f.Key[:len(clashPrefix)-1] is "worker", the first member of
			// the key spelt with dots.
			if !r.touches(orig) && !r.touches(f.Key) && !r.touches(f.Key[:len(clashPrefix)-1]) {
				continue
			}
			nf, changed = r.renamedField(f, orig)
		} else {
			if !r.touches(f.Key) {
				continue
			}
			nf, changed = r.field(f)
		}
		if !changed {
			continue
		}
		if out == nil {
			out = append(make([]zapcore.Field, 0, len(fields)), fields...)
		}
		out[i] = nf
	}
	if out == nil {
		return fields
	}
	return out
}

func (r *Redactor) field(f zapcore.Field) (zapcore.Field, bool) {
	if f.Type == zapcore.SkipType {
		return f, false
	}
	if r.wholeTop[f.Key] {
		return zap.String(f.Key, r.censor), true
	}
	generic, ok := genericOf(f)
	if !ok {
		return f, false
	}
	red := r.Top(f.Key, generic)
	if s, ok := red.(string); ok && s == r.censor {
		return zap.String(f.Key, s), true
	}
	return zap.Any(f.Key, red), true
}

// renamedField redacts a worker member that parseRecord renamed from orig
// to f.Key (name to worker.name). The paths reach it under its key in the
// app's record, as the app's own pino would, and under the key it is
// logged under, quoted (["worker.name"]) or spelt with dots (worker.name),
// as the reader of wattd's output sees it.
func (r *Redactor) renamedField(f zapcore.Field, orig string) (zapcore.Field, bool) {
	if f.Type == zapcore.SkipType {
		return f, false
	}
	// The value is decoded once, when a path first goes below the member;
	// a string or number has no members, and only a path ending at the
	// member itself changes it.
	var (
		generic             any
		decoded, structured bool
	)
	for _, segs := range r.paths {
		rest, ok := belowRenamed(segs, orig, f.Key)
		switch {
		case !ok:
		case len(rest) == 0:
			return zap.String(f.Key, r.censor), true
		default:
			if !decoded {
				generic, structured = genericOf(f)
				decoded = true
			}
			if structured {
				r.apply(generic, rest)
			}
		}
	}
	if !structured {
		return f, false
	}
	return zap.Any(f.Key, generic), true
}

// belowRenamed gives the rest of path segs once it has reached a member
// renamed from orig to key, and false when the path does not reach it.
func belowRenamed(segs []string, orig, key string) ([]string, bool) {
	if segs[0] == "*" || segs[0] == orig || segs[0] == key {
		return segs[1:], true
	}
	// key's parts between the dots, one path member each.
	left := key
	for i, s := range segs {
		if left == s {
			return segs[i+1:], true
		}
		if len(left) <= len(s) || left[len(s)] != '.' || left[:len(s)] != s {
			return nil, false
		}
		left = left[len(s)+1:]
	}
	return nil, false
}

// genericOf is a structured field's value as fresh maps and slices.
func genericOf(f zapcore.Field) (any, bool) {
	var v any
	switch f.Type {
	case zapcore.ObjectMarshalerType:
		enc := zapcore.NewMapObjectEncoder()
		if err := f.Interface.(zapcore.ObjectMarshaler).MarshalLogObject(enc); err != nil {
			return nil, false
		}
		v = enc.Fields
	case zapcore.ReflectType:
		v = f.Interface
	default:
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	var out any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, false
	}
	switch out.(type) {
	case map[string]any, []any:
		return out, true
	}
	return nil, false
}

// redactCore applies a Redactor to every entry, and to the fields a
// logger is given With, before they reach the encoder.
type redactCore struct {
	zapcore.Core
	r *Redactor
}

func (c redactCore) With(fields []zapcore.Field) zapcore.Core {
	return redactCore{Core: c.Core.With(c.r.Fields(fields)), r: c.r}
}

func (c redactCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c redactCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	return c.Core.Write(ent, c.r.Fields(fields))
}
