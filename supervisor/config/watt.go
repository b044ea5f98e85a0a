package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// wattOnlyOption is a group of options Watt defines at one location and
// wattd does not implement yet.
type wattOnlyOption struct {
	at     string   // location pattern: "*" matches one segment, "@app" any application entry
	keys   []string // "*" stands for every key not in except
	except []string
}

// wattOnlyOptions lists the options of Watt's runtime schema
// (@platformatic/runtime 3.x) that wattd ignores. They load with a warning,
// so an existing Watt project starts unchanged; a key neither here nor in
// schema.json is an error. This table is the one place to edit when wattd
// implements one of them: remove it here and add it to schema.json.
var wattOnlyOptions = []wattOnlyOption{
	{at: "", keys: []string{
		"preload", "extensions", "basePath", "workersRestartDelay",
		"exitOnUnhandledErrors", "healthProbes", "undici", "httpCache", "watch",
		"managementApi", "management", "metrics", "telemetry", "verticalScaler",
		"inspectorOptions", "startupConcurrency", "messagingTimeout",
		"resolvedApplicationsBasePath", "sourceMaps", "nodeModulesSourceMaps", "scheduler",
		"policies", "compileCache",
	}},
	{at: "/server", keys: []string{"portAssignment", "backlog", "http2", "https"}},
	// Watt passes any other logger key through to pino.
	{at: "/logger", keys: []string{"*"}, except: []string{"level"}},
	{at: "/gracefulShutdown", keys: []string{"closeConnections"}},
	{at: "/workers", keys: []string{
		"dynamic", "minimum", "maximum", "total", "maxMemory", "cooldown", "gracePeriod",
		"scaleUpELU", "scaleDownELU",
	}},
	{at: "@app", keys: []string{
		"config", "url", "gitBranch", "useHttp",
		"arguments", "sourceMaps", "nodeModulesSourceMaps", "packageManager",
		"preload", "execArgv", "permissions", "telemetry", "compileCache", "management",
	}},
	{at: "@app/workers", keys: []string{"minimum", "maximum", "scaleUpELU", "scaleDownELU"}},
}

// appLocations are the places an application entry can sit; "@app" in
// wattOnlyOptions expands to each of them.
var appLocations = [][]string{
	{"applications", "*"},
	{"services", "*"},
	{"web", "*"},
	{"autoload", "mappings", "*"},
}

// applicationAliases are the older names of "applications" Watt still
// reads, with the reason to rename them.
var applicationAliases = []struct{ key, why string }{
	{"services", `"services" is the former name of "applications"`},
	{"web", `"web" is an old alias of "applications"`},
}

// matches tells whether the instance location ptr is one of the option's
// locations.
func (o wattOnlyOption) matches(ptr []string) bool {
	pattern := splitPointer(o.at)
	if len(pattern) > 0 && pattern[0] == "@app" {
		for _, loc := range appLocations {
			if segmentsMatch(append(slices.Clone(loc), pattern[1:]...), ptr) {
				return true
			}
		}
		return false
	}
	if o.at == "" {
		return len(ptr) == 0
	}
	return segmentsMatch(pattern, ptr)
}

func segmentsMatch(pattern, ptr []string) bool {
	if len(pattern) != len(ptr) {
		return false
	}
	for i := range pattern {
		if pattern[i] != "*" && pattern[i] != ptr[i] {
			return false
		}
	}
	return true
}

// isWattOnly tells whether key, found in the object at ptr, is a Watt
// option wattd ignores.
func isWattOnly(ptr []string, key string) bool {
	for _, o := range wattOnlyOptions {
		if !o.matches(ptr) {
			continue
		}
		if slices.Contains(o.keys, key) || (slices.Contains(o.keys, "*") && !slices.Contains(o.except, key)) {
			return true
		}
	}
	return false
}

// wattOnlyKeysAt lists the named Watt options at ptr, for did-you-mean
// hints.
func wattOnlyKeysAt(ptr string) []string {
	segs := splitPointer(ptr)
	var keys []string
	for _, o := range wattOnlyOptions {
		if o.matches(segs) {
			for _, k := range o.keys {
				if k != "*" {
					keys = append(keys, k)
				}
			}
		}
	}
	return keys
}

// stripWattOnly removes the Watt options wattd ignores from the tree,
// before placeholders are resolved so that a variable used only by an
// ignored option need not be set, and returns one warning per option.
func stripWattOnly(v any, ptr []string) []issue {
	var warnings []issue
	switch c := v.(type) {
	case map[string]any:
		for _, key := range sortedKeys(c) {
			if isWattOnly(ptr, key) {
				delete(c, key)
				warnings = append(warnings, issuef(pointerOf(append(slices.Clone(ptr), key)),
					"Watt option %q is not supported by wattd yet; ignored", key))
				continue
			}
			warnings = append(warnings, stripWattOnly(c[key], append(slices.Clone(ptr), key))...)
		}
	case []any:
		for i, x := range c {
			warnings = append(warnings, stripWattOnly(x, append(slices.Clone(ptr), fmt.Sprint(i)))...)
		}
	}
	return warnings
}

// aliasWarnings asks for the old names of "applications" to be renamed;
// wattd reads them like Watt 3 does, appended after "applications".
func aliasWarnings(root map[string]any) []issue {
	var warnings []issue
	for _, a := range applicationAliases {
		if _, ok := root[a.key]; ok {
			warnings = append(warnings, issuef("/"+a.key, `%s; rename it to "applications"`, a.why))
		}
	}
	return warnings
}

// platformaticSchema recognises the schema URLs Watt knows, capturing the
// capability: https://schemas.platformatic.dev/@platformatic/<module>/<version>.json,
// https://schemas.platformatic.dev/wattpm/<version>.json and the older
// https://platformatic.dev/schemas/v<version>/<module>.
var platformaticSchema = regexp.MustCompile(
	`^https://(?:schemas\.platformatic\.dev/(?:@platformatic/)?([a-z0-9-]+)/|platformatic\.dev/schemas/[^/]+/([a-z0-9-]+))`)

// applicationConfigKind returns the capability of a file that is the
// configuration of one application (a @platformatic/node watt.json, say)
// rather than of a runtime, or "" when the file is a runtime configuration
// or does not say. Such a file gets one clear error instead of a list of
// unknown keys.
func applicationConfigKind(root map[string]any) string {
	for _, k := range []string{"applications", "services", "web", "autoload"} {
		if _, ok := root[k]; ok {
			return ""
		}
	}
	capability := ""
	if s, ok := root["$schema"].(string); ok {
		if m := platformaticSchema.FindStringSubmatch(s); m != nil {
			capability = m[1] + m[2]
		}
	}
	if m, ok := root["module"].(string); ok && capability == "" {
		capability = m
	}
	switch capability {
	case "", "runtime", "wattpm", "@platformatic/runtime", "wattpm-utils":
		return ""
	}
	if !strings.HasPrefix(capability, "@") {
		capability = "@platformatic/" + capability
	}
	return capability
}
