package config

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestSchemaEmbedded(t *testing.T) {
	onDisk, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != string(Schema) {
		t.Error("Schema differs from schema.json")
	}
	if !json.Valid(Schema) {
		t.Fatal("Schema is not valid JSON")
	}
	if _, err := loadSchema(); err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
}

// TestWattOnlyOptionsNotInSchema keeps the two lists of keys apart: an
// option wattd implements must leave wattOnlyOptions when it enters
// schema.json, or it would be stripped before validation.
func TestWattOnlyOptionsNotInSchema(t *testing.T) {
	s, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	locations := map[string]string{
		"":                              "#",
		"/server":                       "#/properties/server",
		"/logger":                       "#/properties/logger",
		"/gracefulShutdown":             "#/properties/gracefulShutdown",
		"/workers":                      "#/$defs/runtimeWorkers/anyOf/1",
		"/verticalScaler":               "#/properties/verticalScaler",
		"/managementApi":                "#/properties/managementApi/anyOf/2",
		"@app":                          "#/$defs/application",
		"@app/workers":                  "#/$defs/workers/anyOf/1",
		"/health":                       "#/$defs/health",
		"@app/health":                   "#/$defs/health",
		"/metrics":                      "#/properties/metrics/anyOf/1",
		"/telemetry":                    "#/properties/telemetry",
		"/telemetry/exporter":           "#/$defs/traceExporter",
		"/telemetry/exporter/*":         "#/$defs/traceExporter",
		"/telemetry/exporter/options":   "#/$defs/traceExporter/properties/options",
		"/telemetry/exporter/*/options": "#/$defs/traceExporter/properties/options",
	}
	for _, o := range wattOnlyOptions {
		loc, ok := locations[o.at]
		if !ok {
			t.Errorf("no schema location known for %q; add it to this test", o.at)
			continue
		}
		props, _ := s.node(loc)["properties"].(map[string]any)
		if len(props) == 0 {
			t.Errorf("%s has no properties", loc)
		}
		for _, k := range o.keys {
			if _, clash := props[k]; clash {
				t.Errorf("%q at %q is both a wattd key and an ignored Watt option", k, o.at)
			}
		}
		for _, k := range o.except {
			if _, ok := props[k]; !ok {
				t.Errorf("exception %q at %q is not a wattd key", k, o.at)
			}
		}
	}
}

func TestCoerceScalar(t *testing.T) {
	tests := []struct {
		in     any
		wanted []string
		want   any
	}{
		{"3000", []string{"integer"}, json.Number("3000")},
		{" 42 ", []string{"integer"}, json.Number("42")},
		{"1.5", []string{"number"}, json.Number("1.5")},
		{"abc", []string{"integer"}, "abc"},
		{"", []string{"integer"}, ""},
		{"0x10", []string{"integer"}, "0x10"},
		{"NaN", []string{"number"}, "NaN"},
		{"true", []string{"boolean"}, true},
		{"false", []string{"boolean", "number"}, false},
		{"500", []string{"boolean", "number"}, json.Number("500")},
		{"yes", []string{"boolean"}, "yes"},
		{"true", []string{"boolean", "string"}, "true"}, // a wanted type is never touched
		{json.Number("3"), []string{"string"}, "3"},
		{true, []string{"string"}, "true"},
		{json.Number("3"), []string{"integer"}, json.Number("3")},
		{json.Number("3"), []string{"boolean"}, json.Number("3")},
		{"x", nil, "x"},
	}
	for _, tt := range tests {
		if got := coerceScalar(tt.in, tt.wanted); got != tt.want {
			t.Errorf("coerceScalar(%#v, %v) = %#v, want %#v", tt.in, tt.wanted, got, tt.want)
		}
	}
}

func TestCoerceTree(t *testing.T) {
	s, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "server port", in: `{"server":{"port":"80","hostname":"h"}}`, want: `{"server":{"hostname":"h","port":80}}`},
		{name: "workers number or object", in: `{"workers":"2","applications":[{"workers":{"static":"3"}},{"workers":"4"}]}`,
			want: `{"applications":[{"workers":{"static":3}},{"workers":4}],"workers":2}`},
		{name: "restartOnError", in: `{"restartOnError":"false"}`, want: `{"restartOnError":false}`},
		{name: "env values become strings", in: `{"env":{"N":3,"B":true},"applications":[{"env":{"N":1}}]}`,
			want: `{"applications":[{"env":{"N":"1"}}],"env":{"B":"true","N":"3"}}`},
		{name: "strictEnv keeps its string form", in: `{"strictEnv":"true"}`, want: `{"strictEnv":"true"}`},
		{name: "unknown keys untouched", in: `{"zzz":"1","server":{"x":"2"}}`, want: `{"server":{"x":"2"},"zzz":"1"}`},
		{name: "mappings", in: `{"autoload":{"path":"p","mappings":{"a":{"id":"a","enabled":"false"}}}}`,
			want: `{"autoload":{"mappings":{"a":{"enabled":"false","id":"a"}},"path":"p"}}`}, // Watt's enabled takes strings too
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, serr, _ := decodeJSON([]byte(tt.in))
			if serr != nil {
				t.Fatal(serr.msg)
			}
			got, err := json.Marshal(s.coerce(doc.root, s.node("#")))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	s, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		location string
		want     string
	}{
		{"#/properties/server/properties/port", "integer from 0 to 65535"},
		{"#/properties/server/properties/hostname", "string"},
		{"#/properties/entrypoint", "non-empty string"},
		{"#/properties/workers", "integer from 1 to 512 or object"},
		{"#/properties/restartOnError", "boolean or number from 0 to 2147483647"},
		{"#/properties/gracefulShutdown/properties/runtime", "number from 1 to 2147483647"},
		{"#/properties/logger/properties/level", `one of "trace", "debug", "info", "warn", "error", "fatal", "silent"`},
		{"#/properties/strictEnv", `boolean or one of "warn", "true", "false"`},
		{"#/properties/applications", "array"},
		{"#/$defs/env", "object"},
		{"#/nowhere", "a different value"},
	}
	for _, tt := range tests {
		if got := s.describe(s.node(tt.location)); got != tt.want {
			t.Errorf("describe(%s) = %q, want %q", tt.location, got, tt.want)
		}
	}
}

func TestDescribeValue(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{nil, "null"},
		{"abc", `"abc"`},
		{`a"b`, `"a\"b"`},
		{strings.Repeat("x", 70), `"` + strings.Repeat("x", 57) + `..."`},
		{json.Number("1.5"), "1.5"},
		{false, "false"},
		{[]any{1}, "an array"},
		{map[string]any{}, "an object"},
	}
	for _, tt := range tests {
		if got := describeValue(tt.v); got != tt.want {
			t.Errorf("describeValue(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestValidateMessages(t *testing.T) {
	s, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	// rejecting marks an issue as rejecting the value at its own pointer.
	rejecting := func(is issue) issue { is.rejects = is.ptr; return is }
	unknown := func(is issue) issue { is.rejects, is.unknownKey = is.ptr, true; return is }
	tests := []struct {
		name string
		in   string
		want []issue
	}{
		{name: "valid", in: `{"applications":[{"id":"a","path":"p"}]}`},
		{name: "missing required key rejects the object", in: `{"applications":[{"path":"p"}]}`,
			want: []issue{rejecting(issuef("/applications/0", `missing required key "id"`))}},
		{name: "anyOf with the object branch's own complaint", in: `{"workers":{"statik":2}}`,
			want: []issue{unknown(issuef("/workers/statik", `unknown key "statik" (did you mean "static"?)`))}},
		{name: "anyOf matching no branch", in: `{"workers":"two"}`,
			want: []issue{rejecting(issuef("/workers", `expected integer from 1 to 512 or object, got "two"`))}},
		{name: "typo of an ignored Watt option is hinted too", in: `{"metrix":true}`,
			want: []issue{unknown(issuef("/metrix", `unknown key "metrix" (did you mean "metrics"?)`))}},
		{name: "wrong container type", in: `{"applications":{"id":"a"}}`,
			want: []issue{rejecting(issuef("/applications", "expected array, got an object"))}},
		{name: "a number past math/big's exponents is still bounded", in: `{"gracefulShutdown":{"runtime":1e10000000,"application":-1e10000000}}`,
			want: []issue{
				rejecting(issuef("/gracefulShutdown/application", "expected number from 1 to 2147483647, got -1e10000000")),
				rejecting(issuef("/gracefulShutdown/runtime", "expected number from 1 to 2147483647, got 1e10000000")),
			}},
		{name: "arrays as a whole", in: `{"applications":[{"id":"a","path":"p","dependencies":["b","b"],"command":[]}],` +
			`"metrics":{"httpCustomLabels":[{"name":"a","header":"h"},{"name":"b","header":"h"},{"name":"c","header":"h"},` +
			`{"name":"d","header":"h"},{"name":"e","header":"h"},{"name":"f","header":"h"},{"name":"g","header":"h"},{"name":"h","header":"h"},{"name":"i","header":"h"}]}}`,
			want: []issue{
				rejecting(issuef("/applications/0/command", "expected at least 1 item, got 0")),
				rejecting(issuef("/applications/0/dependencies", `expected each item once, got "b" more than once`)),
				rejecting(issuef("/metrics/httpCustomLabels", "expected at most 8 items, got 9")),
			}},
		{name: "every duration is bounded within time.Duration", in: `{"workers":{"dynamic":true,"cooldown":1e20,"gracePeriod":1e20},` +
			`"verticalScaler":{"cooldownSec":1e10,"timeWindowSec":1e17,"scaleIntervalSec":1e15,"scaleDownTimeWindowSec":1e300,"gracePeriod":1e19},` +
			`"health":{"maxEventLoopDelay":1e16,"maxEventLoopDelayP99":1e16}}`,
			want: []issue{
				rejecting(issuef("/health/maxEventLoopDelay", "expected number from 0 to 2147483647, got 1e16")),
				rejecting(issuef("/health/maxEventLoopDelayP99", "expected number from 0 to 2147483647, got 1e16")),
				rejecting(issuef("/verticalScaler/cooldownSec", "expected number from 0 to 2147483647, got 1e10")),
				rejecting(issuef("/verticalScaler/gracePeriod", "expected number from 0 to 2147483647, got 1e19")),
				rejecting(issuef("/verticalScaler/scaleDownTimeWindowSec", "expected number above 0 and at most 2147483647, got 1e300")),
				rejecting(issuef("/verticalScaler/scaleIntervalSec", "expected number above 0 and at most 2147483647, got 1e15")),
				rejecting(issuef("/verticalScaler/timeWindowSec", "expected number above 0 and at most 2147483647, got 1e17")),
				rejecting(issuef("/workers/cooldown", "expected number from 0 to 2147483647, got 1e20")),
				rejecting(issuef("/workers/gracePeriod", "expected number from 0 to 2147483647, got 1e20")),
			}},
		{name: "key with a slash is escaped in the pointer", in: `{"env":{"a/b":1}}`,
			want: []issue{rejecting(issuef("/env/a~1b", "expected string, got 1"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, serr, _ := decodeJSON([]byte(tt.in))
			if serr != nil {
				t.Fatal(serr.msg)
			}
			got := s.validate(doc.root)
			slices.SortFunc(got, func(a, b issue) int { return strings.Compare(a.ptr, b.ptr) })
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestJSNumberString: a number where a string is expected becomes the text
// JavaScript's String(n) gives it (the values below are Node.js's), but
// for an integer beyond 2^53, which keeps its digits.
func TestJSNumberString(t *testing.T) {
	for in, want := range map[string]string{
		"1.50": "1.5", "1e3": "1000", "-0": "0", "0": "0", "1e21": "1e+21", "1e20": "100000000000000000000",
		"9007199254740991": "9007199254740991", "0.000001": "0.000001", "0.0000001": "1e-7", "1.5e-7": "1.5e-7",
		"-2.5e-10": "-2.5e-10", "123e-20": "1.23e-18", "1.7976931348623157e308": "1.7976931348623157e+308",
		"5e-324": "5e-324", "0.1": "0.1", "100": "100", "-12.3400": "-12.34", "1E2": "100", "3.14159": "3.14159",
		"1e-6": "0.000001", "4.35e+25": "4.35e+25", "-1e+21": "-1e+21",
		// JavaScript: "123456789012345680", "12345678901234567000",
		// "9007199254740992".
		"123456789012345678": "123456789012345678", "12345678901234567890": "12345678901234567890",
		"9007199254740993": "9007199254740993", "-9007199254740993": "-9007199254740993",
	} {
		if got := jsNumberString(json.Number(in)); got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}
