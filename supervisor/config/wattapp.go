package config

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// enabledIn reads Watt's "enabled": a boolean, a string (only "false"
// disables) or an object giving the value per environment, true where the
// environment is not named. The loader's environment "" counts as
// production, the environment of wattd start and wattd build. A string
// other than "true" and "false" leaves the application on, as in Watt, and
// comes back as a warning at ptr: "False", "0" or "no" read as off to
// anyone but Watt.
func enabledIn(raw json.RawMessage, environment, ptr string) (bool, *issue) {
	if len(raw) == 0 || string(raw) == "null" {
		return true, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return enabledString(s, ptr)
	}
	var perEnv map[string]bool // the schema has checked the values
	if json.Unmarshal(raw, &perEnv) == nil {
		if environment == "" {
			environment = "production"
		}
		if v, ok := perEnv[environment]; ok {
			return v, nil
		}
	}
	return true, nil
}

// enabledString is enabledIn for a string.
func enabledString(s, ptr string) (bool, *issue) {
	switch strings.TrimSpace(s) {
	case "false":
		return false, nil
	case "true", "":
		return true, nil
	}
	w := issuef(ptr, "%q is neither \"true\" nor \"false\"; only \"false\" turns the application off (as in Watt), so it runs", s)
	return true, &w
}

// stringOrList reads a value the schema allows as one string or an array
// of strings.
func stringOrList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var list []string
	_ = json.Unmarshal(raw, &list)
	return list
}

// preloads resolves preload paths against the directory of the file that
// names them, as Watt's resolvePath does; ptr is where they are written.
// A path where there is no file is a problem of the configuration, found
// at load, rather than six failed starts of every worker.
func (l *loader) preloads(raw json.RawMessage, ptr string) ([]string, []issue) {
	var out []string
	var problems []issue
	list := stringOrList(raw)
	for i, p := range list {
		if strings.TrimSpace(p) == "" {
			continue
		}
		path := l.resolve(l.dir, p)
		out = append(out, path)
		if _, err := os.Stat(path); err != nil {
			at := ptr
			if len(raw) > 0 && raw[0] == '[' {
				at = fmt.Sprintf("%s/%d", ptr, i)
			}
			problems = append(problems, issuef(at, "preload %s: %v", path, unwrapPathError(err)))
		}
	}
	return out, problems
}

// oldName is a key of an older Watt format that Watt 3 still reads by
// moving its value to the new name (@platformatic/runtime's config
// upgrades); wattd does the same, with a warning asking for the new name.
type oldName struct {
	parent, key string // where the old key sits, and its name
	newKey      string // its new name, in the object at newParent
	newParent   string
}

var oldNames = []oldName{
	{parent: "/server", key: "logger", newParent: "", newKey: "logger"},
	{parent: "/gracefulShutdown", key: "service", newParent: "/gracefulShutdown", newKey: "application"},
	{parent: "", key: "serviceTimeout", newParent: "", newKey: "applicationTimeout"},
}

// upgradeOldNames moves values written under an older Watt name to the
// current one, unless the current one is set too, in which case the old
// one is dropped. Each gets one warning.
func upgradeOldNames(root map[string]any) []issue {
	var warnings []issue
	for _, o := range oldNames {
		parentVal, ok := valueAt(root, o.parent)
		parent, isObj := parentVal.(map[string]any)
		if !ok || !isObj {
			continue
		}
		v, ok := parent[o.key]
		if !ok {
			continue
		}
		delete(parent, o.key)
		ptr := childPointer(o.parent, o.key)
		newPtr := childPointer(o.newParent, o.newKey)
		target := root
		if o.newParent != "" {
			t, _ := valueAt(root, o.newParent)
			target, _ = t.(map[string]any)
		}
		if _, set := target[o.newKey]; set {
			warnings = append(warnings, issuef(ptr, "%q is the Watt 2 name of %s, which is also set; this one is ignored", o.key, newPtr))
			continue
		}
		target[o.newKey] = v
		warnings = append(warnings, issuef(ptr, "%q is the Watt 2 name of %s; read as that, rename it", o.key, newPtr))
	}
	return warnings
}

// appEntryPointer matches the pointer of an application entry, whose
// unknown keys Watt's schema accepts.
func isAppEntry(ptr string) bool {
	segs := splitPointer(ptr)
	return len(segs) == 2 && slices.Contains([]string{"applications", "services", "web"}, segs[0])
}

// lenientUnknownKeys turns the schema's "unknown key" problems in
// application entries into warnings: Watt's schema lets an entry carry any
// key (older or third-party ones included), so a project that starts under
// Watt must start here too; the warning keeps the did-you-mean hint.
func (l *loader) lenientUnknownKeys(root map[string]any, problems []issue) []issue {
	var kept []issue
	for _, p := range problems {
		segs := splitPointer(p.ptr)
		if p.unknownKey && len(segs) == 3 && isAppEntry(pointerOf(segs[:2])) {
			if entry, ok := valueAt(root, pointerOf(segs[:2])); ok {
				if m, ok := entry.(map[string]any); ok {
					delete(m, segs[2])
				}
			}
			l.warnings = append(l.warnings, issue{ptr: p.ptr, msg: p.msg + "; Watt accepts any key in an application entry, so it is ignored"})
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// environmentVariables are what Watt sets for the applications of a
// runtime in each environment: NODE_ENV only when unset, the PLT_ ones
// always.
func environmentVariables(environment string) (nodeEnv string, plt map[string]string) {
	switch environment {
	case "production":
		return "production", map[string]string{"PLT_ENVIRONMENT": "production", "PLT_DEV": "false"}
	case "development":
		return "development", map[string]string{"PLT_ENVIRONMENT": "development", "PLT_DEV": "true"}
	}
	return "", nil
}
