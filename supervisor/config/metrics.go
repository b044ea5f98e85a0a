package config

import (
	"bytes"
	"encoding/json"
	"regexp"
)

// Metrics is the "metrics" key: wattd's Prometheus endpoint and the
// readiness and liveness probes beside it, on a port of its own.
type Metrics struct {
	// Enabled is true when watt.json has a "metrics" object (or true) and
	// it does not say "enabled": false. As in Watt, an absent key means no
	// metrics server.
	Enabled  bool
	Hostname string // default 0.0.0.0, as Watt: scrapers come from other hosts
	Port     int    // default 9090
	Endpoint string // default /metrics
	// Auth, when set, is the basic-auth user every request must give.
	Auth *BasicAuth
	// Labels are added to every series wattd exports.
	Labels map[string]string
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
	Labels map[string]string `json:"labels"`
}

// labelName is Prometheus's rule for label names; "__" prefixes are
// reserved for Prometheus itself.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reservedLabels are the labels wattd sets on its own series.
var reservedLabels = map[string]bool{"applicationId": true, "workerId": true, "state": true}

func buildMetrics(raw json.RawMessage) (Metrics, []issue) {
	m := Metrics{Hostname: DefaultMetricsHostname, Port: DefaultMetricsPort, Endpoint: DefaultMetricsEndpoint}
	if len(raw) == 0 || string(raw) == "null" {
		return m, nil
	}
	var on bool
	if err := json.Unmarshal(raw, &on); err == nil {
		m.Enabled = on
		return m, nil
	}
	var r rawMetrics
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return m, []issue{issuef("/metrics", "%v", err)}
	}
	var problems []issue
	m.Enabled = r.Enabled == nil || *r.Enabled
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
	for k, v := range r.Labels {
		switch {
		case !labelName.MatchString(k) || len(k) > 1 && k[:2] == "__":
			problems = append(problems, issuef("/metrics/labels/"+k, "%q is not a Prometheus label name", k))
		case reservedLabels[k]:
			problems = append(problems, issuef("/metrics/labels/"+k, "label %q is set by wattd on its series", k))
		default:
			if m.Labels == nil {
				m.Labels = map[string]string{}
			}
			m.Labels[k] = v
		}
	}
	return m, problems
}
