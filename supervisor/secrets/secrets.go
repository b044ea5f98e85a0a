// Package secrets decides which configuration and environment values
// `wattd ctl config` and `wattd ctl env` must not show, and masks them.
//
// The rule works on names, because a value alone rarely says it is secret.
// A name is split into words at '_', '-', '.', spaces and lower-to-upper
// case changes (API_KEY, apiKey and api-key all give API KEY). It is
// secret when
//
//   - one of its words is KEY, KEYS, APIKEY, AUTH, AUTHORIZATION, DSN,
//     PRIVATE, COOKIE, SALT, SIGNATURE, PASSPHRASE, PASS or PWD (so
//     KEYBOARD and AUTHOR are not: they are other words), or
//   - the whole name, without separators, contains SECRET, PASSWORD,
//     PASSWD, TOKEN or CREDENTIAL (so GITHUBTOKEN and DB_PASSWORD both
//     are), or
//   - it contains the words CONNECTION STRING, or is DATABASE_URL,
//
// except the variable PWD, spelt so (the shell's working directory), in an
// environment or a configuration's env block. A member of a JSON value has
// no such exception: {"db":{"pwd":"x"}} is masked.
//
// In a configuration tree every value of a Headers map is masked, whatever
// the header's name: exporters' and pushes' headers carry vendors' API keys
// under names of the vendors' choosing.
//
// Matching ignores case. A value that is or holds URLs with passwords
// (postgres://user:pw@host/db, a list of them, a JSON document with
// one), or with query parameters of secret names (?api_key=…), has those
// masked whatever its name, so a
// DATABASE_URL-like variable under another name does not leak them
// either; and a value that is a JSON object or array has the members
// whose names are secret masked (a key file's "private_key"). Masked values read Masked; there is deliberately no way to
// ask for the real ones over the admin API.
package secrets

import (
	"reflect"
	"strings"
	"time"
	"unicode"
)

// Masked replaces a secret value.
const Masked = "[redacted]"

var secretWords = map[string]bool{
	"KEY": true, "KEYS": true, "APIKEY": true, "AUTH": true, "AUTHORIZATION": true,
	"DSN": true, "PRIVATE": true, "COOKIE": true, "SALT": true, "SIGNATURE": true,
	"PASSPHRASE": true, "PASS": true, "PWD": true,
}

// lastWords are secret as a name's last word only: SESSION_SIG, AUTH_JWT
// and X_BEARER hold one, JWT_ISSUER and SIG_ALGORITHM name something about
// one.
var lastWords = map[string]bool{"JWT": true, "BEARER": true, "SIG": true}

var secretParts = []string{"SECRET", "PASSWORD", "PASSWD", "TOKEN", "CREDENTIAL"}

// words splits name as the package comment says, upper-cased.
func words(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToUpper(string(cur)))
			cur = cur[:0]
		}
	}
	var prev rune
	for _, r := range name {
		switch {
		case r == '_' || r == '-' || r == '.' || unicode.IsSpace(r):
			flush()
		case unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev)):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
		prev = r
	}
	flush()
	return out
}

// IsSecretName reports whether a variable or key called name holds a
// secret under the package's rule. The one name exempt from it is PWD,
// spelt so: the shell's working directory, in an environment or in an env
// block of the configuration.
func IsSecretName(name string) bool {
	return name != "PWD" && isSecretMember(name)
}

// isSecretMember is the rule for a member of a JSON value: there no PWD is
// the shell's, and {"db":{"pwd":"x"}} is a password, as MYSQL_PWD is.
func isSecretMember(name string) bool {
	ws := words(name)
	joined := strings.Join(ws, "")
	for _, p := range secretParts {
		if strings.Contains(joined, p) {
			return true
		}
	}
	if len(ws) > 0 && lastWords[ws[len(ws)-1]] {
		return true
	}
	for i, w := range ws {
		if secretWords[w] {
			return true
		}
		if w == "CONNECTION" && i+1 < len(ws) && ws[i+1] == "STRING" {
			return true
		}
	}
	return joined == "DATABASEURL"
}

// Value returns value as it may be shown under name: Masked for a secret
// name, the value with its URL password masked when it has one, else the
// value itself.
func Value(name, value string) string {
	if IsSecretName(name) {
		return Masked
	}
	return maskURLQuery(maskURLPassword(maskJSON(value)))
}

// URL returns u, or any text holding URLs, with the passwords of its URLs
// masked: for the logs and answers that show a configured URL (an
// exporter's, a scheduler job's callback).
func URL(u string) string { return maskURLQuery(maskURLPassword(u)) }

// maskURLQuery masks, in a text holding URLs, the values of query
// parameters whose names are secret (?api_key=…, &token=…, &sig=…): some
// vendors take their keys there.
func maskURLQuery(v string) string {
	if !strings.Contains(v, "://") || !strings.ContainsAny(v, "?&") {
		return v
	}
	var b strings.Builder
	i, from := 0, 0
	for i < len(v) {
		c := v[i]
		i++
		if c != '?' && c != '&' && c != ';' {
			continue
		}
		eq := strings.IndexFunc(v[i:], func(r rune) bool { return r == '=' || r == '&' || r == '#' || r == ';' || isURLEnd(r) })
		if eq < 0 || v[i+eq] != '=' || !isSecretMember(v[i:i+eq]) {
			continue
		}
		start := i + eq + 1
		end := start
		for end < len(v) && v[end] != '&' && v[end] != '#' && v[end] != ';' && !isURLEnd(rune(v[end])) {
			end++
		}
		if end == start {
			continue
		}
		b.WriteString(v[from:start])
		b.WriteString(Masked)
		from, i = end, end
	}
	if from == 0 {
		return v
	}
	b.WriteString(v[from:])
	return b.String()
}

func maskURLPassword(v string) string {
	if !strings.Contains(v, "@") || !strings.Contains(v, "://") {
		return v
	}
	// Not url.Parse: it fails, and so showed the whole value, on a
	// password a client would take anyway (unescaped %, /, ? or #), on a
	// list of URLs (redis://:pw@a,redis://:pw@b) and on a URL inside a
	// larger value (JSON, --db=postgres://…). Every scheme://user:pw@
	// in the text is found instead, and masking more than the password
	// when in doubt is better than showing one.
	var b strings.Builder
	rest := v
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			break
		}
		start := i + len("://")
		if !schemeBefore(rest[:i]) {
			b.WriteString(rest[:start])
			rest = rest[start:]
			continue
		}
		lo, hi, ok := urlPassword(rest[start:])
		if !ok {
			b.WriteString(rest[:start])
			rest = rest[start:]
			continue
		}
		b.WriteString(rest[:start+lo])
		b.WriteString(Masked)
		rest = rest[start+hi:]
	}
	if b.Len() == 0 {
		return v
	}
	b.WriteString(rest)
	return b.String()
}

// schemeBefore reports whether s ends in a URL scheme (a letter, then
// letters, digits, +, - or .).
func schemeBefore(s string) bool {
	j := len(s)
	for j > 0 && isSchemeByte(s[j-1]) {
		j--
	}
	for ; j < len(s); j++ {
		if c := s[j]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

func isSchemeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// urlPassword finds the password in s, the text after a scheme's "://":
// a user name without /, ?, #, @ or spaces, a colon, and the password up
// to the last @ before the URL ends (a space, a quote, or the next
// "://"), so that an unescaped @ in the password does not leave its tail
// shown. lo and hi delimit the password; ok is false without one.
func urlPassword(s string) (lo, hi int, ok bool) {
	colon := strings.IndexFunc(s, func(r rune) bool {
		return r == ':' || r == '/' || r == '?' || r == '#' || r == '@' || isURLEnd(r)
	})
	if colon < 0 || s[colon] != ':' {
		return 0, 0, false
	}
	end := len(s)
	if e := strings.IndexFunc(s[colon:], isURLEnd); e >= 0 {
		end = colon + e
	}
	if e := strings.Index(s[colon:end], "://"); e >= 0 {
		end = colon + e
	}
	at := strings.LastIndexByte(s[colon:end], '@')
	if at < 0 {
		return 0, 0, false
	}
	if port, _, slash := strings.Cut(s[colon+1:colon+at], "/"); slash && port != "" && strings.Trim(port, "0123456789") == "" {
		// host:port/path@…: an @ in the path of a URL without a password.
		return 0, 0, false
	}
	return colon + 1, colon + at, true
}

func isURLEnd(r rune) bool {
	return unicode.IsSpace(r) || r == '"' || r == '\'' || r == '`' || r == '<' || r == '>'
}

// Environ masks the values of an environment in NAME=value form, keeping
// its order.
func Environ(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			out = append(out, kv)
			continue
		}
		out = append(out, name+"="+Value(name, val))
	}
	return out
}

// Tree turns v (a configuration struct) into plain JSON values with
// secrets masked: every string whose map key or struct field name is
// secret, and URL passwords anywhere. Durations become their text
// ("30s"), which reads better than nanoseconds. Unexported fields and
// funcs are left out.
func Tree(v any) any {
	return tree(reflect.ValueOf(v), "")
}

var durationType = reflect.TypeOf(time.Duration(0))

func tree(v reflect.Value, name string) any {
	if !v.IsValid() {
		return nil
	}
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return tree(v.Elem(), name)
	case reflect.Struct:
		if m, ok := v.Interface().(interface{ MarshalText() ([]byte, error) }); ok {
			if b, err := m.MarshalText(); err == nil {
				return maskString(name, string(b))
			}
		}
		out := map[string]any{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			key := f.Name
			if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == "-" {
				continue
			} else if tag != "" {
				key = tag
			}
			out[key] = tree(v.Field(i), f.Name)
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return map[string]any{}
		}
		out := map[string]any{}
		iter := v.MapRange()
		for iter.Next() {
			k := toString(iter.Key())
			if strings.EqualFold(name, "headers") {
				// HTTP headers a push or an export sends: a vendor's API
				// key goes under a name no rule knows (x-honeycomb-team).
				out[k] = Masked
				continue
			}
			out[k] = tree(iter.Value(), k)
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return []any{}
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return Masked // raw bytes: keys, certificates; never useful as JSON numbers
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = tree(v.Index(i), name)
		}
		return out
	case reflect.String:
		return maskString(name, v.String())
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint()
	case reflect.Float32, reflect.Float64:
		return v.Float()
	}
	return nil // chan, func: not configuration
}

func maskString(name, s string) string {
	if name != "" && IsSecretName(name) {
		return Masked
	}
	return maskURLPassword(maskJSON(s))
}

func toString(v reflect.Value) string {
	if v.Kind() == reflect.String {
		return v.String()
	}
	if s, ok := v.Interface().(interface{ String() string }); ok {
		return s.String()
	}
	return reflect.ValueOf(v.Interface()).String()
}
