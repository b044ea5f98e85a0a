package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// wattOnlyOption is a group of options Watt defines at one location and
// wattd does not implement.
type wattOnlyOption struct {
	at     string   // location pattern: "*" matches one segment, "@app" any application entry
	keys   []string // "*" stands for every key not in except
	except []string
	// instead says what wattd does in place of the option, for the one
	// warning the option gets; "" for the plain "ignored".
	instead string
}

// wattOnlyOptions lists the options of Watt's runtime schema
// (@platformatic/runtime 2.x and 3.x, and the 1.x names Watt still
// upgrades) that wattd ignores. They load with one warning each, so an
// existing Watt project starts unchanged; a key neither here nor in
// schema.json is an error. This table is the one place to edit when wattd
// implements one of them: remove it here and add it to schema.json.
// docs/watt-compat.md lists every key with its status.
var wattOnlyOptions = []wattOnlyOption{
	{at: "", keys: []string{"extensions"}, instead: "wattd has no runtime extensions"},
	{at: "", keys: []string{"basePath", "resolvedApplicationsBasePath", "resolvedServicesBasePath"},
		instead: "wattd serves the entrypoint at the root; there is no gateway to mount applications under a base path"},
	{at: "", keys: []string{"workersRestartDelay"}, instead: `restarts follow "restartOnError" and wattd's "restart" back-off`},
	{at: "", keys: []string{"exitOnUnhandledErrors"}, instead: "an unhandled error ends the worker process as Node.js does, and wattd restarts it"},
	{at: "", keys: []string{"undici"}, instead: "workers use their own HTTP client settings"},
	{at: "", keys: []string{"httpCache"}, instead: "no shared HTTP cache between applications"},
	{at: "", keys: []string{"hotReload"}, instead: `wattd dev watches and restarts every application ("watch": false turns it off); wattd start never does`},
	{at: "", keys: []string{"allowCycles"}, instead: "wattd rejects dependency cycles"},
	{at: "", keys: []string{"management"}, instead: "applications cannot call the runtime's management operations; wattd ctl and the management API (managementApi) can"},
	{at: "/managementApi", keys: []string{"logs"}, instead: "the management API streams live lines only; wattd ctl logs prints the recent ones wattd keeps in memory"},
	{at: "", keys: []string{"policies"}},
	{at: "/verticalScaler", keys: []string{"maxTotalMemory"}, instead: scaleMemory},
	{at: "", keys: []string{"inspectorOptions"}, instead: "wattd start --inspect opens every Node.js worker's inspector"},
	{at: "", keys: []string{"nodeModulesSourceMaps"}},
	{at: "/server", keys: []string{"portAssignment", "backlog", "http2", "https"}, instead: "the entrypoint listens on plain HTTP/1.1 with the kernel's default backlog"},
	// Watt passes any other logger key through to pino; wattd's own log
	// takes the level, redact and wattd's requestId.
	{at: "/logger", keys: []string{"*"}, except: []string{"level", "redact", "requestId", "openTelemetryExporter"}, instead: `wattd's log takes "level", "redact", "requestId" and "openTelemetryExporter"; it writes pino's JSON lines to stderr`},
	// Watt hands the rest of an exporter's options to the OpenTelemetry
	// JavaScript exporter; "additionalProperties" is a key by mistake in
	// some of Watt's schemas.
	{at: "/telemetry/exporter", keys: []string{"additionalProperties"}},
	{at: "/telemetry/exporter/*", keys: []string{"additionalProperties"}},
	{at: "/telemetry/exporter/options", keys: []string{"*"}, except: telemetryOptions, instead: telemetryOptionsInstead},
	{at: "/telemetry/exporter/*/options", keys: []string{"*"}, except: telemetryOptions, instead: telemetryOptionsInstead},
	{at: "/metrics", keys: []string{"plugins", "opentelemetry", "additionalProperties"},
		instead: "wattd's metrics server takes enabled, hostname, port, endpoint, https, auth, applicationLabel, labels, httpCustomLabels, httpClientMetrics, readiness, liveness and otlpExporter"},
	{at: "/metrics", keys: []string{"timeout"}, instead: "a scrape never waits for a worker: each worker's figures come with its stats reports"},
	{at: "/metrics", keys: []string{"healthChecksTimeouts"}, instead: "Watt 3 deprecated it and no longer reads it either"},
	{at: "/gracefulShutdown", keys: []string{"closeConnections"}, instead: "draining always closes idle keep-alive connections"},
	{at: "/workers", keys: []string{"maxMemory"}, instead: scaleMemory},
	{at: "@app", keys: []string{"url", "gitBranch"}, instead: "wattd runs local applications only"},
	{at: "@app", keys: []string{"useHttp"}, instead: "every worker is always reachable over its mesh socket"},
	{at: "@app", keys: []string{"logger"}, instead: `the runtime's "logger" applies`},
	{at: "@app", keys: []string{"nodeModulesSourceMaps", "packageManager", "management", "websocket", "hotReload"}},
	{at: "@app", keys: []string{"telemetry"}, instead: "wattd's preload makes each request's server span and each mesh call's client span; OpenTelemetry instrumentation packages are not loaded"},
	{at: "/health", keys: []string{"codeRangeSize"}, instead: healthSizes},
	{at: "@app/health", keys: []string{"codeRangeSize"}, instead: healthSizes},
}

// telemetryOptions are the exporter options wattd reads.
var telemetryOptions = []string{"url", "headers", "path", "protocol", "transport"}

const telemetryOptionsInstead = "wattd's exporters take url, headers, path and protocol (or transport)"

const (
	scaleMemory = "the dynamic scaler does not weigh memory; give each worker a limit with \"resources\""
	healthSizes = "it sizes Watt's worker threads' code range; wattd's workers are processes with V8's default"
)

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
	_, ok := findWattOnly(ptr, key)
	return ok
}

func wattOnlyOptionFor(ptr []string, key string) wattOnlyOption {
	o, _ := findWattOnly(ptr, key)
	return o
}

func findWattOnly(ptr []string, key string) (wattOnlyOption, bool) {
	for _, o := range wattOnlyOptions {
		if !o.matches(ptr) {
			continue
		}
		if slices.Contains(o.keys, key) || (slices.Contains(o.keys, "*") && !slices.Contains(o.except, key)) {
			return o, true
		}
	}
	return wattOnlyOption{}, false
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
				msg := fmt.Sprintf("Watt option %q is not supported by wattd; ignored", key)
				if o := wattOnlyOptionFor(ptr, key); o.instead != "" {
					msg += ": " + o.instead
				}
				warnings = append(warnings, issuef(pointerOf(append(slices.Clone(ptr), key)), "%s", msg))
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
