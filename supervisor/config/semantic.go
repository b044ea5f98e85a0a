package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
)

// The checks below are what the schema cannot express. Each returns a
// message, or "" when the value is fine, so callers decide where to point.

// dnsLabel is the grammar Watt's newest loader enforces for ids, because
// an id becomes the mesh host name <id>.plt.local: letters, digits and
// dashes, at most 63 characters, no dash at either end.
var dnsLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func checkAppID(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case len(id) > 63:
		return fmt.Sprintf("is %d characters long; at most 63 fit in a DNS label", len(id))
	case !dnsLabel.MatchString(id):
		return "must be usable as a DNS label: letters, digits and dashes, starting and ending with a letter or digit"
	}
	return ""
}

// checkUniqueIDs reports ids used twice. DNS names ignore case, so "API"
// and "api" would be the same host on the mesh and count as a clash.
func checkUniqueIDs(entries []appEntry) []issue {
	var problems []issue
	seen := map[string]appEntry{}
	for _, e := range entries {
		if e.id == "" {
			continue
		}
		key := strings.ToLower(e.id)
		if first, ok := seen[key]; ok {
			problems = append(problems, issuef(e.idPtr, "application id %q is already used by %s", e.id, first.origin()))
			continue
		}
		seen[key] = e
	}
	return problems
}

// checkAppDir requires an application directory that exists.
func checkAppDir(path string) string {
	info, err := os.Stat(path)
	switch {
	case os.IsNotExist(err):
		return fmt.Sprintf("directory %s does not exist", path)
	case err != nil:
		return fmt.Sprintf("cannot use %s: %v", path, unwrapPathError(err))
	case !info.IsDir():
		return fmt.Sprintf("%s is not a directory", path)
	}
	return ""
}

// checkWorkers keeps worker counts sane; the schema enforces the same
// bounds, this guards values that reach the Config by other routes.
func checkWorkers(n int) string {
	if n < 1 || n > MaxWorkers {
		return fmt.Sprintf("expected a worker count from 1 to %d, got %d", MaxWorkers, n)
	}
	return ""
}

// checkStandby reads a standby count; the schema enforces the same
// bounds, this guards values that reach the Config by other routes.
func checkStandby(raw *json.Number) (int, string) {
	n, err := raw.Int64()
	if err != nil || n < 0 || n > MaxStandby {
		return 0, fmt.Sprintf("expected a standby worker count from 0 to %d, got %s", MaxStandby, raw)
	}
	return int(n), ""
}

// checkHostname accepts what Node's listen accepts: an IP address (IPv6
// written bare, optionally with a zone) or a host name.
func checkHostname(h string) string {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		if _, err := netip.ParseAddr(h[1 : len(h)-1]); err == nil {
			return fmt.Sprintf("write the IPv6 address without brackets: %q", h[1:len(h)-1])
		}
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return ""
	}
	if strings.Contains(h, ":") {
		return fmt.Sprintf("%q is neither a valid IP address nor a host name (a port belongs in \"port\")", h)
	}
	if len(h) > 253 {
		return "host name is longer than 253 characters"
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	for _, label := range labels {
		if !dnsLabel.MatchString(label) {
			return fmt.Sprintf("%q is neither a valid IP address nor a host name", h)
		}
	}
	// No top-level domain is all digits (RFC 3696): "300.1.1.1" or
	// "10.1.1" is a mistyped address, not a name to look up.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Sprintf("%q is not a valid IP address (and, its last part being a number, not a host name)", h)
	}
	return ""
}

// checkRestartPolicy rejects a back-off that could never grow.
func checkRestartPolicy(p RestartPolicy) string {
	if p.MaxDelay < p.InitialDelay {
		return fmt.Sprintf("maxDelay (%v) is shorter than initialDelay (%v)", p.MaxDelay, p.InitialDelay)
	}
	return ""
}

// resolveEntrypoint picks the application that receives public traffic
// as Watt does: the one named; else the only one; else the only gateway
// (Watt 2's composer) among several.
func resolveEntrypoint(name string, ids, disabled, gateways []string) (string, string) {
	switch {
	case name != "" && slices.Contains(ids, name):
		return name, ""
	case name != "" && slices.Contains(disabled, name):
		return "", fmt.Sprintf(`application %q is disabled ("enabled": false) and cannot be the entrypoint`, name)
	case name != "":
		msg := fmt.Sprintf("no application has id %q (known: %s", name, knownIDs(ids))
		if s := suggest(name, ids); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return "", msg + ")"
	case len(ids) == 1:
		return ids[0], ""
	case len(gateways) == 1:
		return gateways[0], ""
	case len(ids) == 0:
		return "", `no applications to run: list them in "applications" or use "autoload"`
	}
	return "", fmt.Sprintf(`"entrypoint" is required when there are several applications; set it to one of: %s`, knownIDs(ids))
}

// checkDependencies requires every dependency to name another application
// of the config and the dependencies to have no cycle; disabled are the
// applications left out by their "enabled", named as such.
func checkDependencies(apps []Application, disabled []string) []issue {
	var problems []issue
	ids := make([]string, 0, len(apps))
	byID := map[string]Application{}
	for _, a := range apps {
		ids = append(ids, a.ID)
		byID[a.ID] = a
	}
	for _, a := range apps {
		for i, d := range a.Dependencies {
			ptr := fmt.Sprintf("%s/dependencies/%d", a.Pointer, i)
			switch _, ok := byID[d]; {
			case d == a.ID:
				problems = append(problems, issuef(ptr, "application %q cannot depend on itself", d))
			case !ok && slices.Contains(disabled, d):
				problems = append(problems, issuef(ptr, `application %q is disabled ("enabled": false) and cannot be a dependency; enable it or remove the dependency`, d))
			case !ok:
				problems = append(problems, issuef(ptr, "no application has id %q (known: %s)", d, knownIDs(ids)))
			}
		}
	}
	// Depth-first search; a node met again while on the stack closes a
	// cycle. The dependencies reported above are left out, so that a
	// cycle among the others is in the same report.
	const (
		unseen = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(id string) []string
	visit = func(id string) []string {
		state[id] = onStack
		stack = append(stack, id)
		for _, d := range byID[id].Dependencies {
			if _, ok := byID[d]; !ok || d == id {
				continue
			}
			switch state[d] {
			case onStack:
				i := slices.Index(stack, d)
				return append(slices.Clone(stack[i:]), d)
			case unseen:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = done
		return nil
	}
	for _, a := range apps {
		if state[a.ID] == unseen {
			if c := visit(a.ID); c != nil {
				return append(problems, issuef(byID[c[0]].Pointer+"/dependencies", "dependency cycle: %s", strings.Join(c, " -> ")))
			}
		}
	}
	return problems
}
