package config

import (
	"encoding/json"
	"strconv"
)

// ProbesServer is a server that answers the readiness and liveness
// probes only, on an address of its own: Watt's "healthProbes" object
// when its hostname and port are not the metrics server's, or when the
// metrics are off. It speaks plain HTTP and asks for no credentials.
type ProbesServer struct {
	Hostname  string
	Port      int
	Readiness Probe
	Liveness  Probe
}

type rawHealthProbes struct {
	Enabled   json.RawMessage `json:"enabled"`
	Hostname  *string         `json:"hostname"`
	Port      *json.Number    `json:"port"`
	Readiness json.RawMessage `json:"readiness"`
	Liveness  json.RawMessage `json:"liveness"`
}

// buildHealthProbes reads Watt's "healthProbes" value and decides where
// the probes are served, as Watt does:
//
//   - absent or true: on the metrics server, when there is one, with the
//     metrics' "readiness" and "liveness";
//   - false, or an object with "enabled": false: nowhere (the metrics
//     server still serves the metrics);
//   - an object: at its hostname and port, each defaulting to the
//     metrics server's (0.0.0.0 and 9090 without one). When that is the
//     metrics server's own address and the metrics are on, that server
//     answers them; otherwise a server of their own does, and the
//     metrics server answers none. Its "readiness" and "liveness" replace
//     the metrics' when given.
//
// m is the built "metrics" value; buildHealthProbes turns its probes off
// when they are served elsewhere or nowhere, or replaces them.
func buildHealthProbes(raw json.RawMessage, m *Metrics) (*ProbesServer, []issue) {
	const ptr = "/healthProbes"
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	off := func() (*ProbesServer, []issue) {
		m.Readiness.Disabled, m.Liveness.Disabled = true, true
		return nil, nil
	}
	var r rawHealthProbes
	if raw[0] != '{' {
		on, err := enabledValue(raw)
		if err != nil {
			return nil, []issue{issuef(ptr, "expected true, false or an object, got %s", raw)}
		}
		if !on {
			return off()
		}
		return nil, nil
	}
	if problem := decodeNumbers(ptr, raw, &r); problem != nil {
		return nil, problem
	}
	if on, problems := enabledAt(ptr+"/enabled", r.Enabled); problems != nil {
		return nil, problems
	} else if !on {
		return off()
	}
	var problems []issue
	s := &ProbesServer{Hostname: m.Hostname, Port: m.Port, Readiness: m.Readiness, Liveness: m.Liveness}
	if r.Hostname != nil {
		s.Hostname = *r.Hostname
		if msg := checkHostname(s.Hostname); msg != "" {
			problems = append(problems, issuef(ptr+"/hostname", "%s", msg))
		}
	}
	if r.Port != nil {
		p, err := strconv.Atoi(r.Port.String())
		if err != nil || p < 0 || p > 65535 {
			problems = append(problems, issuef(ptr+"/port", "%s is not a port number (0-65535)", r.Port))
		} else {
			s.Port = p
		}
	}
	// ptrs are where each probe's endpoint was given, for messages.
	ptrs := map[string]string{"readiness": "/metrics/readiness/endpoint", "liveness": "/metrics/liveness/endpoint"}
	own := false
	for _, p := range []struct {
		name, def string
		raw       json.RawMessage
		probe     *Probe
	}{{"readiness", DefaultReadinessPath, r.Readiness, &s.Readiness}, {"liveness", DefaultLivenessPath, r.Liveness, &s.Liveness}} {
		if len(p.raw) == 0 || string(p.raw) == "null" {
			continue
		}
		var probeProblems []issue
		*p.probe, probeProblems = buildProbe(ptr+"/"+p.name, p.raw, Probe{Endpoint: p.def})
		problems = append(problems, probeProblems...)
		ptrs[p.name] = ptr + "/" + p.name + "/endpoint"
		own = true
	}
	if m.Enabled && s.Hostname == m.Hostname && s.Port == m.Port {
		m.Readiness, m.Liveness = s.Readiness, s.Liveness
		if own {
			problems = append(problems, checkProbePaths(m.Endpoint, s.Readiness, ptrs["readiness"], s.Liveness, ptrs["liveness"])...)
		}
		return nil, problems
	}
	m.Readiness.Disabled, m.Liveness.Disabled = true, true
	if own {
		problems = append(problems, checkProbePaths("", s.Readiness, ptrs["readiness"], s.Liveness, ptrs["liveness"])...)
	}
	if m.Enabled && s.Port == m.Port && s.Port != 0 && (isWildcard(s.Hostname) || isWildcard(m.Hostname)) {
		problems = append(problems, issuef(ptr+"/port", "port %d on %s is also the metrics server's (on %s): give both the same hostname to share one server, or another port",
			s.Port, s.Hostname, m.Hostname))
	}
	if s.Readiness.Disabled && s.Liveness.Disabled {
		return nil, problems
	}
	return s, problems
}

// isWildcard tells whether a hostname means every address of the host.
func isWildcard(host string) bool {
	return host == "0.0.0.0" || host == "::" || host == ""
}
