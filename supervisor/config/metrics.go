package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Metrics is the "metrics" key: wattd's Prometheus endpoint and the
// readiness and liveness probes beside it, on a port of its own.
type Metrics struct {
	// Enabled is true when watt.json has a "metrics" object (or true) and
	// it does not say "enabled": false. As in Watt, an absent key means no
	// metrics server.
	Enabled bool
	// Off is true when watt.json turns the metrics off ("metrics": false,
	// or "enabled": false in the object): then, as in Watt, not even the
	// management API answers them. Without the key, it does.
	Off      bool
	Hostname string // default 0.0.0.0, as Watt: scrapers come from other hosts
	Port     int    // default 9090
	Endpoint string // default /metrics
	// Auth, when set, is the basic-auth user every request must give.
	Auth *BasicAuth
	// AppLabel is the name of the label that carries the application's id
	// (Watt's "applicationLabel"): applicationId unless set, serviceId for
	// dashboards made for Watt 2.
	AppLabel string
	// Labels are added to every series wattd exports.
	Labels map[string]string
	// Readiness and Liveness are the probes beside the endpoint, Watt's
	// "readiness" and "liveness" keys.
	Readiness Probe
	Liveness  Probe
	// OTLP, when set, pushes every series to an OpenTelemetry collector
	// as well (Watt's "otlpExporter").
	OTLP *OTLPMetrics
	// TLS, when set, makes the server answer HTTPS only (Watt's "https").
	TLS *MetricsTLS
	// RequestLabels are labels of http_request_all_duration_seconds
	// taken from each request's headers (Watt's "httpCustomLabels"), in
	// the order given.
	RequestLabels []RequestLabel
	// ClientMetrics turns on the durations of the Node workers' outgoing
	// HTTP requests (Watt's "httpClientMetrics").
	ClientMetrics bool
}

// RequestLabel is a label of the request histogram whose value is a
// request header's.
type RequestLabel struct {
	Name    string // the label's name
	Header  string // the header, lower case
	Default string // the value when the request has no such header; Watt's "unknown" unless set
}

// DefaultRequestLabelValue is a request label's value without its header,
// Watt's.
const DefaultRequestLabelValue = "unknown"

// MaxRequestLabels bounds the labels "httpCustomLabels" may add: each
// multiplies the series a worker may report.
const MaxRequestLabels = 8

// OTLPMetrics is where and how often the metrics are pushed over
// OTLP/HTTP (protobuf).
type OTLPMetrics struct {
	Endpoint string            // the full URL, such as http://collector:4318/v1/metrics
	Interval time.Duration     // between pushes; default 60 s, as Watt
	Headers  map[string]string // sent with every push (API keys)
	// ServiceName is every resource's service.name; empty, each
	// application's is its id and the runtime's own series are "wattd".
	ServiceName    string
	ServiceVersion string // service.version, when set
}

// DefaultOTLPMetricsInterval is Watt's otlpExporter interval.
const DefaultOTLPMetricsInterval = 60 * time.Second

// Probe is one of the metrics server's probes. As in Watt, false turns
// it off and an object may give another path and other answers.
type Probe struct {
	Disabled bool   // the key was false: the path is not served
	Endpoint string // default /ready or /status
	Success  ProbeAnswer
	Fail     ProbeAnswer
}

// ProbeAnswer is what a probe answers. A zero field takes the default:
// 200 "OK" on success; on failure 500 and, instead of Watt's "ERR", a
// body that says what is not ready.
type ProbeAnswer struct {
	StatusCode int
	Body       string
}

// BasicAuth is a user name and password for HTTP basic authentication.
type BasicAuth struct {
	Username string
	Password string
}

// Defaults of the metrics server, Watt's.
const (
	DefaultMetricsHostname = "0.0.0.0"
	DefaultMetricsPort     = 9090
	DefaultMetricsEndpoint = "/metrics"
	DefaultAppLabel        = "applicationId"
	DefaultReadinessPath   = "/ready"
	DefaultLivenessPath    = "/status"
)

type rawMetrics struct {
	Enabled  *bool        `json:"enabled"`
	Hostname *string      `json:"hostname"`
	Port     *json.Number `json:"port"`
	Endpoint *string      `json:"endpoint"`
	Auth     *struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auth"`
	AppLabel      *string           `json:"applicationLabel"`
	Labels        map[string]string `json:"labels"`
	Readiness     json.RawMessage   `json:"readiness"`
	Liveness      json.RawMessage   `json:"liveness"`
	OTLP          json.RawMessage   `json:"otlpExporter"`
	HTTPS         json.RawMessage   `json:"https"`
	ClientMetrics json.RawMessage   `json:"httpClientMetrics"`
	// RequestLabels is Watt's "httpCustomLabels".
	RequestLabels []struct {
		Name    string  `json:"name"`
		Header  string  `json:"header"`
		Default *string `json:"default"`
	} `json:"httpCustomLabels"`
}

type rawOTLPMetrics struct {
	Enabled        json.RawMessage   `json:"enabled"`
	Endpoint       *string           `json:"endpoint"`
	Interval       *json.Number      `json:"interval"`
	Headers        map[string]string `json:"headers"`
	ServiceName    string            `json:"serviceName"`
	ServiceVersion string            `json:"serviceVersion"`
}

type rawProbe struct {
	Endpoint *string         `json:"endpoint"`
	Success  *rawProbeAnswer `json:"success"`
	Fail     *rawProbeAnswer `json:"fail"`
}

type rawProbeAnswer struct {
	StatusCode *json.Number `json:"statusCode"`
	Body       string       `json:"body"`
}

// labelName is Prometheus's rule for label names; "__" prefixes are
// reserved for Prometheus itself.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// seriesLabels are the names of the labels some of wattd's series carry
// beside the application's and the worker's: a constant label or an
// application label of the same name would clash with them. "le" and
// "quantile" are Prometheus's own, on histograms and summaries. A test
// of the metrics package checks the list against its descriptors.
var seriesLabels = map[string]bool{"state": true, "reason": true, "method": true, "status_code": true, "kind": true,
	"space": true, "type": true, "dispatcher_stats_url": true, "error_type": true, "le": true, "quantile": true,
	"version": true, "major": true, "minor": true, "patch": true, "job_name": true, "result": true}

// SeriesLabels lists seriesLabels, sorted, for the metrics package's
// test that keeps it in step with the series.
func SeriesLabels() []string { return slices.Sorted(maps.Keys(seriesLabels)) }

// workerLabel is the label that carries the worker slot's number.
const workerLabel = "workerId"

// buildMetrics reads the "metrics" value; it returns the problems that
// stop the load and the warnings that do not. resolve makes a file path
// of the configuration absolute.
func buildMetrics(raw json.RawMessage, resolve func(string) string) (Metrics, []issue, []issue) {
	m := Metrics{Hostname: DefaultMetricsHostname, Port: DefaultMetricsPort, Endpoint: DefaultMetricsEndpoint,
		AppLabel:  DefaultAppLabel,
		Readiness: Probe{Endpoint: DefaultReadinessPath}, Liveness: Probe{Endpoint: DefaultLivenessPath}}
	if len(raw) == 0 || string(raw) == "null" {
		return m, nil, nil
	}
	var on bool
	if err := json.Unmarshal(raw, &on); err == nil {
		m.Enabled, m.Off = on, !on
		return m, nil, nil
	}
	var r rawMetrics
	if problem := decodeNumbers("/metrics", raw, &r); problem != nil {
		return m, problem, nil
	}
	var problems, warnings []issue
	m.Enabled = r.Enabled == nil || *r.Enabled
	m.Off = !m.Enabled
	if r.Hostname != nil {
		m.Hostname = *r.Hostname
		if msg := checkHostname(m.Hostname); msg != "" {
			problems = append(problems, issuef("/metrics/hostname", "%s", msg))
		}
	}
	m.Port = intOr(r.Port, DefaultMetricsPort)
	if m.Port < 0 || m.Port > 65535 {
		problems = append(problems, issuef("/metrics/port", "port %d is out of range 0-65535", m.Port))
	}
	if r.Endpoint != nil {
		m.Endpoint = *r.Endpoint
		if m.Endpoint == "" || m.Endpoint[0] != '/' {
			problems = append(problems, issuef("/metrics/endpoint", "endpoint %q must start with /", m.Endpoint))
		}
	}
	if r.Auth != nil {
		m.Auth = &BasicAuth{Username: r.Auth.Username, Password: r.Auth.Password}
	}
	if r.AppLabel != nil {
		m.AppLabel = *r.AppLabel
		switch k := m.AppLabel; {
		case !isLabelName(k):
			problems = append(problems, issuef("/metrics/applicationLabel", "%q is not a Prometheus label name", k))
		case k == workerLabel || seriesLabels[k]:
			problems = append(problems, issuef("/metrics/applicationLabel", "label %q is one wattd's series already carry", k))
		}
	}
	for k, v := range r.Labels {
		switch {
		case !isLabelName(k):
			problems = append(problems, issuef("/metrics/labels/"+k, "%q is not a Prometheus label name", k))
		case k == m.AppLabel || k == workerLabel:
			// Watt takes such a label and puts the application's id (the
			// worker's number) in its place on every series that has one,
			// so a Watt project with it still starts.
			warnings = append(warnings, issuef("/metrics/labels/"+k,
				"label %q is left out: wattd sets it on every series of an application to the application's id or worker's number, as Watt does", k))
		case seriesLabels[k]:
			problems = append(problems, issuef("/metrics/labels/"+k, "label %q is one wattd's series already carry", k))
		default:
			if m.Labels == nil {
				m.Labels = map[string]string{}
			}
			m.Labels[k] = v
		}
	}
	if len(r.RequestLabels) > MaxRequestLabels {
		problems = append(problems, issuef("/metrics/httpCustomLabels", "%d labels; at most %d, as each multiplies the series a worker reports", len(r.RequestLabels), MaxRequestLabels))
	}
	names := map[string]string{}
	for i, l := range r.RequestLabels {
		at := fmt.Sprintf("/metrics/httpCustomLabels/%d", i)
		_, isConst := m.Labels[l.Name]
		switch {
		case !isLabelName(l.Name):
			problems = append(problems, issuef(at+"/name", "%q is not a Prometheus label name", l.Name))
		case l.Name == m.AppLabel || l.Name == workerLabel || seriesLabels[l.Name]:
			problems = append(problems, issuef(at+"/name", "label %q is one wattd's series already carry", l.Name))
		case isConst:
			problems = append(problems, issuef(at+"/name", "label %q is also a constant label (/metrics/labels/%s)", l.Name, l.Name))
		case names[l.Name] != "":
			problems = append(problems, issuef(at+"/name", "label %q is already the name of %s", l.Name, names[l.Name]))
		}
		names[l.Name] = at
		if !headerName.MatchString(l.Header) {
			problems = append(problems, issuef(at+"/header", "%q is not an HTTP header name", l.Header))
		}
		rl := RequestLabel{Name: l.Name, Header: strings.ToLower(l.Header), Default: DefaultRequestLabelValue}
		if l.Default != nil {
			rl.Default = *l.Default
		}
		m.RequestLabels = append(m.RequestLabels, rl)
	}
	// Off unless given: enabledValue takes an absent value as on.
	if len(r.ClientMetrics) > 0 && string(r.ClientMetrics) != "null" {
		var clientProblems []issue
		m.ClientMetrics, clientProblems = enabledAt("/metrics/httpClientMetrics", r.ClientMetrics)
		problems = append(problems, clientProblems...)
	}
	var otlpProblems, tlsProblems, tlsWarnings []issue
	m.OTLP, otlpProblems = buildOTLPMetrics(r.OTLP)
	problems = append(problems, otlpProblems...)
	m.TLS, tlsProblems, tlsWarnings = buildMetricsTLS(r.HTTPS, resolve)
	problems = append(problems, tlsProblems...)
	warnings = append(warnings, tlsWarnings...)
	var probeProblems []issue
	m.Readiness, probeProblems = buildProbe("/metrics/readiness", r.Readiness, m.Readiness)
	problems = append(problems, probeProblems...)
	m.Liveness, probeProblems = buildProbe("/metrics/liveness", r.Liveness, m.Liveness)
	problems = append(problems, probeProblems...)
	problems = append(problems, checkProbePaths(m.Endpoint, m.Readiness, "/metrics/readiness/endpoint", m.Liveness, "/metrics/liveness/endpoint")...)
	return m, problems, warnings
}

// buildOTLPMetrics reads "otlpExporter": nil when absent or disabled.
func buildOTLPMetrics(raw json.RawMessage) (*OTLPMetrics, []issue) {
	const ptr = "/metrics/otlpExporter"
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r rawOTLPMetrics
	if problem := decodeNumbers(ptr, raw, &r); problem != nil {
		return nil, problem
	}
	if on, problems := enabledAt(ptr+"/enabled", r.Enabled); !on {
		return nil, problems
	}
	o := &OTLPMetrics{Interval: DefaultOTLPMetricsInterval, ServiceName: r.ServiceName, ServiceVersion: r.ServiceVersion}
	var problems []issue
	switch {
	case r.Endpoint == nil || *r.Endpoint == "":
		problems = append(problems, issuef(ptr+"/endpoint", "the collector's URL is required, such as http://collector:4318/v1/metrics"))
	default:
		if msg := checkHTTPURL(*r.Endpoint); msg != "" {
			problems = append(problems, issuef(ptr+"/endpoint", "%s", msg))
		}
		o.Endpoint = *r.Endpoint
	}
	if r.Interval != nil {
		ms, err := r.Interval.Float64()
		if err != nil || ms < 1 || ms > math.MaxInt32 {
			problems = append(problems, issuef(ptr+"/interval", "%s is not a number of milliseconds from 1 to 2147483647", r.Interval))
		} else {
			o.Interval = time.Duration(ms * float64(time.Millisecond))
		}
	}
	problems = append(problems, checkHeaders(ptr+"/headers", r.Headers)...)
	if len(r.Headers) > 0 {
		o.Headers = r.Headers
	}
	return o, problems
}

// isLabelName tells whether name is a label name Prometheus takes and
// does not keep for itself ("__" prefix).
func isLabelName(name string) bool {
	return labelName.MatchString(name) && !strings.HasPrefix(name, "__")
}

// checkProbePaths refuses two probes, or a probe and the metrics
// endpoint (when not ""), on one path; readyAt and liveAt say where each
// probe's path was given.
func checkProbePaths(endpoint string, readiness Probe, readyAt string, liveness Probe, liveAt string) []issue {
	paths := map[string]string{}
	if endpoint != "" {
		paths[endpoint] = "/metrics/endpoint"
	}
	var problems []issue
	for _, p := range []struct {
		at    string
		probe Probe
	}{{readyAt, readiness}, {liveAt, liveness}} {
		if p.probe.Disabled {
			continue
		}
		if other, ok := paths[p.probe.Endpoint]; ok {
			problems = append(problems, issuef(p.at, "%q is already the path of %s", p.probe.Endpoint, other))
		}
		paths[p.probe.Endpoint] = p.at
	}
	return problems
}

// buildProbe reads a "readiness" or "liveness" value: absent or true
// keeps the defaults in p, false turns the probe off.
func buildProbe(ptr string, raw json.RawMessage, p Probe) (Probe, []issue) {
	if len(raw) == 0 || string(raw) == "null" {
		return p, nil
	}
	var on bool
	if err := json.Unmarshal(raw, &on); err == nil {
		p.Disabled = !on
		return p, nil
	}
	var r rawProbe
	if problem := decodeNumbers(ptr, raw, &r); problem != nil {
		return p, problem
	}
	var problems []issue
	if r.Endpoint != nil {
		p.Endpoint = *r.Endpoint
		if p.Endpoint == "" || p.Endpoint[0] != '/' {
			problems = append(problems, issuef(ptr+"/endpoint", "endpoint %q must start with /", p.Endpoint))
		}
	}
	answer := func(at string, a *rawProbeAnswer) ProbeAnswer {
		if a == nil {
			return ProbeAnswer{}
		}
		out := ProbeAnswer{Body: a.Body}
		if a.StatusCode != nil {
			code, err := a.StatusCode.Int64()
			if err != nil || code < 100 || code > 599 {
				problems = append(problems, issuef(at+"/statusCode", "%s is not an HTTP status code (100-599)", a.StatusCode))
			} else {
				out.StatusCode = int(code)
			}
		}
		return out
	}
	p.Success = answer(ptr+"/success", r.Success)
	p.Fail = answer(ptr+"/fail", r.Fail)
	return p, problems
}

// decodeNumbers decodes the object at ptr into v, numbers as json.Number;
// it returns the one problem when raw does not fit v.
func decodeNumbers(ptr string, raw json.RawMessage, v any) []issue {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return []issue{issuef(ptr, "%v", err)}
	}
	return nil
}
