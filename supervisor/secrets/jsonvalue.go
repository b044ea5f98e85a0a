package secrets

import (
	"bytes"
	"encoding/json"
	"strings"
)

// maskJSON masks, in a value that is a JSON object or array (a service
// account's key file, a client's options, given in one variable), the
// values of members whose names are secret under the package's rule:
// "private_key" and "password" in SERVICE_ACCOUNT={…} are masked though
// the variable's name is not secret. A member's value is replaced where
// it stands, "[redacted]" for a string, a number or a whole object or
// array, so the rest of the text reads as it was written. A string that
// is itself a JSON document ({"options": "{\"password\": …}"}, or the
// whole value a quoted one) is masked the same way. Any other value is
// returned as it is.
func maskJSON(v string) string {
	t := strings.TrimSpace(v)
	if t == "" || t[0] != '{' && t[0] != '[' && t[0] != '"' || !json.Valid([]byte(t)) {
		return v
	}
	m := &jsonMasker{src: []byte(v), dec: json.NewDecoder(strings.NewReader(v))}
	m.dec.UseNumber()
	if err := m.value(plain); err != nil || len(m.cuts) == 0 {
		return v
	}
	var b strings.Builder
	last := 0
	for _, c := range m.cuts {
		b.WriteString(v[last:c.from])
		b.WriteString(c.with)
		last = c.to
	}
	b.WriteString(v[last:])
	return b.String()
}

type jsonMasker struct {
	src  []byte
	dec  *json.Decoder
	cuts []cut // the values masked, in order
}

// cut is a value masked: its byte range, and what it reads instead.
type cut struct {
	from, to int
	with     string
}

// start is where the value after the decoder's offset begins: past the
// blanks, the colon or the comma before it.
func (m *jsonMasker) start() int {
	off := int(m.dec.InputOffset())
	for off < len(m.src) && bytes.IndexByte([]byte(" \t\r\n:,"), m.src[off]) >= 0 {
		off++
	}
	return off
}

// How value treats what it reads.
const (
	plain  = iota // look for secret names among an object's members
	mask          // cut this value out
	inside        // part of a value cut out: nothing to do
)

// value reads one value. A masked one is cut whole, a composite one with
// its members unread for names; null and booleans, which tell nothing, are
// left.
func (m *jsonMasker) value(how int) error {
	from := m.start()
	tok, err := m.dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); ok {
		for m.dec.More() {
			child := inside
			if how == plain {
				child = plain
			}
			if d == '{' {
				key, err := m.dec.Token()
				if err != nil {
					return err
				}
				if name, _ := key.(string); how == plain && isSecretMember(name) {
					child = mask
				}
			}
			if err := m.value(child); err != nil {
				return err
			}
		}
		if _, err := m.dec.Token(); err != nil { // the closing delimiter
			return err
		}
	}
	switch tok := tok.(type) {
	case nil, bool:
		return nil
	case string:
		if how != plain {
			break
		}
		if masked := maskJSON(tok); masked != tok {
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(masked); err != nil {
				return err
			}
			m.cuts = append(m.cuts, cut{from, int(m.dec.InputOffset()), strings.TrimSuffix(b.String(), "\n")})
		}
		return nil
	}
	if how == mask {
		m.cuts = append(m.cuts, cut{from, int(m.dec.InputOffset()), `"` + Masked + `"`})
	}
	return nil
}
