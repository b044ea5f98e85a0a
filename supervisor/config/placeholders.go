package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/wattd/wattd/supervisor/secrets"
)

// placeholder matches {NAME} (and {{NAME}}) the way Watt 3 does: any
// letters, digits and underscores, in any case. Watt 1 only replaced PLT_
// names and a small allow list; Watt 3 dropped that restriction, so wattd
// does not restore it.
var placeholder = regexp.MustCompile(`\{{1,2}([A-Za-z0-9_]+)\}{1,2}`)

// envMode is what an unset placeholder variable does (Watt's strictEnv).
type envMode int

const (
	envStrict  envMode = iota // fail loading
	envWarn                   // substitute "" and warn, naming the variable
	envLenient                // substitute "" silently
)

// strictEnvMode reads the strictEnv option from the raw tree, before
// placeholders are resolved since it governs their resolution. Unset, an
// unset variable becomes "" as in Watt, with a warning naming it that
// Watt does not give: an empty port or path fails later with a far less
// obvious message. A value that is itself a placeholder leaves the
// default.
func strictEnvMode(v any) envMode {
	switch c := v.(type) {
	case bool:
		if c {
			return envStrict
		}
		return envLenient
	case string:
		switch strings.TrimSpace(c) {
		case "true":
			return envStrict
		case "false", "":
			return envLenient
		case "warn":
			return envWarn
		}
	}
	return envWarn
}

// resolver replaces placeholders using one lookup, which the loader builds
// from the process environment and the dotenv files.
type resolver struct {
	lookup func(name string) (string, bool)
	mode   envMode
}

// expand replaces every placeholder in s in one pass: a value that itself
// looks like a placeholder is not expanded again, so a variable cannot
// smuggle in a reference to another.
func (r *resolver) expand(s string) (string, []string) {
	matches := placeholder.FindAllStringSubmatchIndex(s, -1)
	if matches == nil {
		return s, nil
	}
	var b strings.Builder
	var missing []string
	last := 0
	for _, m := range matches {
		name := s[m[2]:m[3]]
		b.WriteString(s[last:m[0]])
		if v, ok := r.lookup(name); ok {
			b.WriteString(v)
		} else {
			missing = append(missing, name)
		}
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String(), missing
}

// substitution is the outcome of resolving a whole tree.
type substitution struct {
	errors   []issue
	warnings []issue
	failed   map[string]bool // pointers whose value lost a placeholder
	// from names the variables each substituted value came from, so a
	// problem with the value can say where to fix it.
	from map[string][]string
	// unset names the variables that were not set, where they were
	// replaced by "".
	unset map[string][]string
	// warned indexes the warning of each unset variable in warnings.
	warned map[string]int
	// secrets are the values of the variables with secret names
	// (secrets.IsSecretName) that went into the tree: a problem's message
	// that quotes one shows it masked.
	secrets []string
}

// substitute resolves the placeholders of every string value in the tree,
// in place (object keys are names, not values, and stay as written).
func (r *resolver) substitute(v any, ptr string, out *substitution) any {
	switch c := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(c) {
			c[k] = r.substitute(c[k], childPointer(ptr, k), out)
		}
		return c
	case []any:
		for i, x := range c {
			c[i] = r.substitute(x, childPointer(ptr, strconv.Itoa(i)), out)
		}
		return c
	case string:
		s, missing := r.expand(c)
		for _, m := range placeholder.FindAllStringSubmatch(c, -1) {
			if name := m[1]; !slices.Contains(missing, name) && !slices.Contains(out.from[ptr], name) {
				if out.from == nil {
					out.from = map[string][]string{}
				}
				out.from[ptr] = append(out.from[ptr], name)
				if v, _ := r.lookup(name); secrets.IsSecretName(name) && len(v) >= minMasked && !slices.Contains(out.secrets, v) {
					out.secrets = append(out.secrets, v)
				}
			}
		}
		for _, name := range missing {
			switch r.mode {
			case envStrict:
				out.errors = append(out.errors, issuef(ptr, "environment variable %q is not set", name))
				if out.failed == nil {
					out.failed = map[string]bool{}
				}
				out.failed[ptr] = true
			case envWarn:
				out.warnUnset(ptr, name)
			}
			if r.mode != envStrict {
				if out.unset == nil {
					out.unset = map[string][]string{}
				}
				out.unset[ptr] = append(out.unset[ptr], name)
			}
		}
		return s
	}
	return v
}

// warnUnset gives each unset variable one warning, at its first use,
// naming the other places it is used.
func (s *substitution) warnUnset(ptr, name string) {
	if s.warned == nil {
		s.warned = map[string]int{}
	}
	msg := fmt.Sprintf("environment variable %q is not set; using an empty string", name)
	i, seen := s.warned[name]
	if !seen {
		s.warned[name] = len(s.warnings)
		s.warnings = append(s.warnings, issuef(ptr, "%s", msg))
		return
	}
	if w := &s.warnings[i]; w.ptr != ptr && !strings.Contains(w.msg, " "+ptr+",") && !strings.HasSuffix(w.msg, " "+ptr) {
		if !strings.Contains(w.msg, "; also used at") {
			w.msg += "; also used at " + ptr
		} else {
			w.msg += ", " + ptr
		}
	}
}

// topologyVariable is the name Watt gives the mesh URL of an application:
// PLT_<ID>_URL with the id uppercased and other characters turned into
// underscores.
func topologyVariable(id string) string {
	var b strings.Builder
	b.WriteString("PLT_")
	for _, r := range strings.ToUpper(id) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	b.WriteString("_URL")
	return b.String()
}

// minMasked is the shortest secret value masked in messages: a shorter
// one ("1", "on") would mask unrelated text and tell little.
const minMasked = 3

// maskSecrets masks, in the problems' messages, the values of variables
// with secret names (a password given where a port is expected is quoted
// back as what was got).
func maskSecrets(problems []issue, values []string) []issue {
	for i := range problems {
		for _, v := range values {
			problems[i].msg = strings.ReplaceAll(problems[i].msg, v, secrets.Masked)
			if q := strconv.Quote(v); q[1:len(q)-1] != v {
				problems[i].msg = strings.ReplaceAll(problems[i].msg, q[1:len(q)-1], secrets.Masked)
			}
		}
	}
	return problems
}

// meshURL is where other applications reach an application.
func meshURL(id string) string {
	return "http://" + id + ".plt.local"
}
