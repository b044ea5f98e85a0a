package config

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// Telemetry is Watt's "telemetry" key: tracing of every application's
// requests, exported by wattd.
type Telemetry struct {
	// Enabled is true when watt.json has a "telemetry" object that does
	// not say "enabled": false (a boolean, or a string such as a
	// placeholder's value "false"), as in Watt.
	Enabled bool
	// ApplicationName prefixes every application's service.name (Watt's
	// "applicationName"; "serviceName" in Watt 2). See ServiceName.
	ApplicationName string
	Version         string // service.version, when set
	Skip            []TraceSkip
	// Exporters are where spans go, in file order; never empty when
	// Enabled (Watt's default is one console exporter).
	Exporters []Exporter
	// Sampler decides which traces are recorded, by its OpenTelemetry
	// name, from OTEL_TRACES_SAMPLER: SamplerParentAlwaysOn (the default,
	// every trace, as Watt records every request) or another Sampler*
	// constant. Ratio is the traceidratio samplers' probability
	// (OTEL_TRACES_SAMPLER_ARG, default 1).
	Sampler string
	Ratio   float64
	// DiagLogger is Watt's "diagLogger": the OpenTelemetry SDK's own
	// diagnostics, and a line for every export, go to wattd's log.
	DiagLogger bool
}

// The samplers of OTEL_TRACES_SAMPLER that wattd's workers apply. A root
// span (no traceparent came in) is decided by the sampler itself; under
// the parentbased_* samplers a span with a parent follows the parent's
// sampled flag, under the others it is decided as a root is.
const (
	SamplerAlwaysOn        = "always_on"
	SamplerAlwaysOff       = "always_off"
	SamplerRatio           = "traceidratio"
	SamplerParentAlwaysOn  = "parentbased_always_on"
	SamplerParentAlwaysOff = "parentbased_always_off"
	SamplerParentRatio     = "parentbased_traceidratio"
	envTracesSampler       = "OTEL_TRACES_SAMPLER"
	envTracesSamplerArg    = "OTEL_TRACES_SAMPLER_ARG"
	samplersList           = "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
)

// sampler reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG from
// wattd's environment, as the OpenTelemetry SDKs do. Where those only warn
// and fall back to the default, wattd refuses a value it cannot apply: a
// mistyped sampler would otherwise record every trace unnoticed.
func (l *loader) sampler() (name string, ratio float64, problems []issue) {
	name, ratio = SamplerParentAlwaysOn, 1
	v := strings.ToLower(strings.TrimSpace(l.environ[envTracesSampler]))
	switch v {
	case "":
	case SamplerAlwaysOn, SamplerAlwaysOff, SamplerRatio, SamplerParentAlwaysOn, SamplerParentAlwaysOff, SamplerParentRatio:
		name = v
	case "jaeger_remote", "parentbased_jaeger_remote", "xray":
		return name, ratio, []issue{issuef("/telemetry", "%s=%s: that sampler is not supported by wattd; use %s",
			envTracesSampler, l.environ[envTracesSampler], samplersList)}
	default:
		return name, ratio, []issue{issuef("/telemetry", "%s=%q: expected %s",
			envTracesSampler, l.environ[envTracesSampler], samplersList)}
	}
	arg, set := l.environ[envTracesSamplerArg]
	if name != SamplerRatio && name != SamplerParentRatio || !set || strings.TrimSpace(arg) == "" {
		return name, ratio, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		return name, ratio, []issue{issuef("/telemetry", "%s=%q: expected the probability of %s, a number from 0 to 1",
			envTracesSamplerArg, arg, name)}
	}
	return name, f, nil
}

// ServiceName is the service.name of application id's spans: as in Watt,
// "<applicationName>-<id>", or the id alone when no name is set.
func (t Telemetry) ServiceName(id string) string {
	if t.ApplicationName == "" {
		return id
	}
	return t.ApplicationName + "-" + id
}

// TraceSkip is a request that gets no span: Path is an exact path, or a
// regular expression between slashes ("/^\/health/"); Method, when set,
// limits the rule to one method.
type TraceSkip struct {
	Path   string
	Method string
}

// Exporter types.
const (
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
	ExporterFile    = "file"
	ExporterZipkin  = "zipkin"
	ExporterMemory  = "memory" // accepted; spans are kept nowhere
)

// DefaultZipkinURL is where the zipkin exporter posts spans when
// options.url is not given: a Zipkin server's v2 API on this host, Watt's
// default.
const DefaultZipkinURL = "http://localhost:9411/api/v2/spans"

// OTLP protocols.
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
)

// DefaultSpansFile is the file exporter's path when options.path is not
// given, relative to the configuration's directory (Watt's name).
const DefaultSpansFile = "spans.log"

// Exporter is one span exporter.
type Exporter struct {
	Type     string // ExporterOTLP, ExporterConsole, ExporterFile, ExporterZipkin or ExporterMemory
	Protocol string // otlp: ProtocolHTTP (default) or ProtocolGRPC
	// URL is the otlp endpoint; "" lets the OpenTelemetry SDK choose from
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT or
	// its default (localhost:4318 for http, :4317 for grpc). zipkin: the
	// collector's span API, DefaultZipkinURL unless options.url says.
	URL     string
	Headers map[string]string // otlp, zipkin: sent with every export
	Path    string            // file: absolute path of the JSON-lines file
	Pointer string            // JSON pointer of the exporter, for messages
}

// RequestID is wattd's "logger.requestId" extension: a request id per
// request, kept from the incoming header or made, passed on mesh calls and
// put on the request's log lines. It is on whenever tracing is.
type RequestID struct {
	Enabled bool
	Header  string // lower case; default x-request-id
	// Respond: the id is also set on the response. Only when the
	// configuration turns request ids on itself: a header set before the
	// app writes its own costs Node's response its fast path.
	Respond bool
}

// DefaultRequestIDHeader is the request id header when none is named.
const DefaultRequestIDHeader = "x-request-id"

type rawTelemetry struct {
	Enabled         json.RawMessage   `json:"enabled"`
	ApplicationName *string           `json:"applicationName"`
	ServiceName     *string           `json:"serviceName"`
	Version         string            `json:"version"`
	Skip            []json.RawMessage `json:"skip"`
	Exporter        json.RawMessage   `json:"exporter"`
	DiagLogger      bool              `json:"diagLogger"`
}

type rawExporter struct {
	Type    string `json:"type"`
	Options struct {
		URL       string            `json:"url"`
		Headers   map[string]string `json:"headers"`
		Path      string            `json:"path"`
		Protocol  string            `json:"protocol"`
		Transport string            `json:"transport"`
	} `json:"options"`
}

// buildTelemetry reads the telemetry key; the schema has checked its
// shape, so what is left are the rules a schema cannot say. It returns
// problems and warnings.
func (l *loader) buildTelemetry(raw json.RawMessage) (Telemetry, []issue, []issue) {
	var t Telemetry
	if len(raw) == 0 || string(raw) == "null" {
		return t, nil, nil
	}
	var r rawTelemetry
	if err := json.Unmarshal(raw, &r); err != nil {
		return t, []issue{issuef("/telemetry", "%v", err)}, nil
	}
	var warnings []issue
	on, problems := enabledAt("/telemetry/enabled", r.Enabled)
	t.Enabled = on
	if on {
		var probs []issue
		t.Sampler, t.Ratio, probs = l.sampler()
		problems = append(problems, probs...)
	}
	switch {
	case r.ApplicationName != nil:
		t.ApplicationName = *r.ApplicationName
		if r.ServiceName != nil && *r.ServiceName != *r.ApplicationName {
			problems = append(problems, issuef("/telemetry/serviceName",
				`"serviceName" is Watt 2's name of "applicationName", which is set to another value; keep "applicationName"`))
		}
	case r.ServiceName != nil:
		t.ApplicationName = *r.ServiceName
	}
	t.Version = r.Version
	t.DiagLogger = r.DiagLogger
	for i, s := range r.Skip {
		ptr := fmt.Sprintf("/telemetry/skip/%d", i)
		var sk struct{ Path, Method string }
		if err := json.Unmarshal(s, &sk); err != nil {
			problems = append(problems, issuef(ptr, "%v", err))
			continue
		}
		if sk.Path == "" && sk.Method == "" {
			problems = append(problems, issuef(ptr, "expected a path, a method or both"))
			continue
		}
		if msg := checkSkipPath(sk.Path); sk.Path != "" && msg != "" {
			problems = append(problems, issuef(ptr+"/path", "%s", msg))
			continue
		}
		t.Skip = append(t.Skip, TraceSkip{Path: sk.Path, Method: strings.ToUpper(sk.Method)})
	}

	var items []json.RawMessage
	base := "/telemetry/exporter"
	switch {
	case len(r.Exporter) == 0 || string(r.Exporter) == "null":
		warnings = append(warnings, issuef("/telemetry", `no "exporter": spans are written to wattd's standard output (console), as Watt does`))
		t.Exporters = []Exporter{{Type: ExporterConsole, Pointer: base}}
		return t, problems, warnings
	case strings.HasPrefix(strings.TrimSpace(string(r.Exporter)), "["):
		if err := json.Unmarshal(r.Exporter, &items); err != nil {
			return t, append(problems, issuef(base, "%v", err)), warnings
		}
		if len(items) == 0 {
			problems = append(problems, issuef(base, "the exporter list is empty; name at least one exporter"))
		}
	default:
		items = []json.RawMessage{r.Exporter}
		base = ""
	}
	for i, it := range items {
		ptr := "/telemetry/exporter"
		if base != "" {
			ptr = fmt.Sprintf("%s/%d", base, i)
		}
		e, probs, warns := l.buildExporter(it, ptr)
		problems, warnings = append(problems, probs...), append(warnings, warns...)
		if e != nil {
			t.Exporters = append(t.Exporters, *e)
		}
	}
	return t, problems, warnings
}

func (l *loader) buildExporter(raw json.RawMessage, ptr string) (*Exporter, []issue, []issue) {
	var r rawExporter
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, []issue{issuef(ptr, "%v", err)}, nil
	}
	e := &Exporter{Type: r.Type, Pointer: ptr}
	if e.Type == "" {
		e.Type = ExporterConsole // Watt's default
	}
	o := r.Options
	var problems, warnings []issue
	switch e.Type {
	case ExporterZipkin:
		e.URL = DefaultZipkinURL
		return e, endpointOptions(e, ptr, o.URL, o.Headers), nil
	case ExporterMemory:
		return e, nil, []issue{issuef(ptr+"/type", `the memory exporter keeps spans in a Watt worker for its tests; wattd keeps them nowhere`)}
	case ExporterConsole:
		return e, nil, nil
	case ExporterFile:
		p := o.Path
		if p == "" {
			p = DefaultSpansFile
		}
		e.Path = l.resolve(l.dir, p)
		return e, nil, nil
	case ExporterOTLP:
	default:
		return nil, []issue{issuef(ptr+"/type", "unknown exporter type %q: use otlp, zipkin, console or file", e.Type)}, nil
	}
	e.Protocol = o.Protocol
	if o.Transport != "" {
		if o.Protocol != "" && o.Protocol != o.Transport {
			problems = append(problems, issuef(ptr+"/options/transport", `"transport" (%q) is an alias of "protocol", which says %q; give one of them`, o.Transport, o.Protocol))
		}
		e.Protocol = o.Transport
	}
	switch e.Protocol {
	case "":
		e.Protocol = ProtocolHTTP
	case ProtocolHTTP, ProtocolGRPC:
	default:
		problems = append(problems, issuef(ptr+"/options/protocol", "unknown protocol %q: use http or grpc", e.Protocol))
	}
	problems = append(problems, endpointOptions(e, ptr, o.URL, o.Headers)...)
	return e, problems, warnings
}

// endpointOptions checks the url and headers options of an exporter that
// sends over HTTP (otlp, zipkin) and sets them on e; an absent url keeps
// e's. A user and password in the URL (http://user:pw@collector:4318/…)
// become an Authorization: Basic header, as curl and fetch send them,
// unless the headers have an Authorization of their own: the exporters'
// clients would otherwise send neither, and the collector answer 401.
func endpointOptions(e *Exporter, ptr, endpoint string, headers map[string]string) []issue {
	var problems []issue
	if endpoint != "" {
		if msg := checkHTTPURL(endpoint); msg != "" {
			problems = append(problems, issuef(ptr+"/options/url", "%s", msg))
		}
		e.URL = endpoint
		if u, err := url.Parse(endpoint); err == nil && u.User != nil {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(headers)), func(k string) bool { return strings.EqualFold(k, "Authorization") }) {
				pw, _ := u.User.Password()
				headers = maps.Clone(headers)
				if headers == nil {
					headers = map[string]string{}
				}
				headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
			}
			u.User = nil
			e.URL = u.String()
		}
	}
	problems = append(problems, checkHeaders(ptr+"/options/headers", headers)...)
	if len(headers) > 0 {
		e.Headers = headers
	}
	return problems
}

// enabledValue reads Watt's "enabled": a boolean, or a string as a
// placeholder leaves it ("true", "false", "1", "0"). Absent is true.
func enabledValue(raw json.RawMessage) (bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return true, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return b, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return true, errors.New("expected a boolean or a string")
	}
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return true, fmt.Errorf("%q is not true or false", s)
	}
	return b, nil
}

// enabledAt is enabledValue for the value at ptr, with its problem named
// there; a value it cannot read is off, and the load fails on the problem.
func enabledAt(ptr string, raw json.RawMessage) (bool, []issue) {
	on, err := enabledValue(raw)
	if err != nil {
		return false, []issue{issuef(ptr, "%v", err)}
	}
	return on, nil
}

// checkHeaders checks the headers an exporter sends: names HTTP takes,
// values without line breaks or NULs.
func checkHeaders(ptr string, headers map[string]string) []issue {
	var problems []issue
	for k, v := range headers {
		if !headerName.MatchString(k) {
			problems = append(problems, issuef(childPointer(ptr, k), "%q is not an HTTP header name", k))
		} else if strings.ContainsAny(v, "\r\n\x00") {
			problems = append(problems, issuef(childPointer(ptr, k), "the value of header %q contains a line break or NUL", k))
		}
	}
	return problems
}

// checkHTTPURL accepts http and https URLs with a host: the OTLP
// exporters' endpoints and the scheduler's callbackUrl.
func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("%q is not an http:// or https:// URL", s)
	}
	if u.Host == "" {
		return fmt.Sprintf("%q has no host", s)
	}
	return ""
}

// checkSkipPath accepts an exact path or a /regex/. A regular expression
// is written for JavaScript (the Node workers match it); it is checked
// with Go's syntax, except for the JavaScript features Go lacks.
func checkSkipPath(p string) string {
	if p == "" {
		return "the path to skip is empty"
	}
	if len(p) < 3 || !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") {
		return ""
	}
	_, err := regexp.Compile(p[1 : len(p)-1])
	var se *syntax.Error
	if err == nil || errors.As(err, &se) && se.Code == syntax.ErrInvalidPerlOp {
		return ""
	}
	return fmt.Sprintf("%q is a regular expression (it starts and ends with /) that does not compile: %v", p, err)
}

// headerName is RFC 9110's token.
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// buildRequestID reads logger.requestId: true, false or a header name.
func buildRequestID(raw json.RawMessage, tracing bool) (RequestID, []issue) {
	var r RequestID
	if tracing {
		r = RequestID{Enabled: true, Header: DefaultRequestIDHeader}
	}
	if len(raw) == 0 || string(raw) == "null" {
		return r, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		if b {
			r = RequestID{Enabled: true, Header: DefaultRequestIDHeader, Respond: true}
		}
		return r, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return r, []issue{issuef("/logger/requestId", "expected true, false or a header name")}
	}
	if !headerName.MatchString(s) {
		return r, []issue{issuef("/logger/requestId", "%q is not an HTTP header name", s)}
	}
	r.Enabled, r.Header, r.Respond = true, strings.ToLower(s), true
	return r, nil
}
