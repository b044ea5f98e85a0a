package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestHealthProbesConfig checks where Watt's "healthProbes" puts the
// probes: on the metrics server (its probes in Metrics), on a server of
// their own (Probes), or nowhere.
func TestHealthProbesConfig(t *testing.T) {
	ready, live := Probe{Endpoint: "/ready"}, Probe{Endpoint: "/status"}
	readyOff, liveOff := Probe{Disabled: true, Endpoint: "/ready"}, Probe{Disabled: true, Endpoint: "/status"}
	tests := []struct {
		name          string
		metrics       string // "" for none
		healthProbes  string // "" for none
		environ       []string
		wantReadiness Probe // the metrics server's
		wantLiveness  Probe
		wantProbes    *ProbesServer
	}{
		{"absent: on the metrics server", `true`, ``, nil, ready, live, nil},
		{"true: on the metrics server", `{"port": 9100}`, `true`, nil, ready, live, nil},
		{"false: nowhere", `true`, `false`, nil, readyOff, liveOff, nil},
		{"placeholder false: nowhere", `true`, `"{PROBES}"`, []string{"PROBES=false"}, readyOff, liveOff, nil},
		{"enabled false: nowhere", `true`, `{"enabled": false, "port": 9300}`, nil, readyOff, liveOff, nil},
		{"object at the metrics address: shared, its probes win", `{"hostname": "127.0.0.1", "port": 9100, "readiness": {"endpoint": "/r"}}`,
			`{"hostname": "127.0.0.1", "port": "9100", "liveness": {"endpoint": "/healthz", "fail": {"statusCode": 503}}}`, nil,
			Probe{Endpoint: "/r"}, Probe{Endpoint: "/healthz", Fail: ProbeAnswer{StatusCode: 503}}, nil},
		{"empty object: the metrics address, shared", `{"port": 9100}`, `{}`, nil, ready, live, nil},
		{"another port: a server of their own", `{"hostname": "127.0.0.1", "port": 9100, "readiness": {"endpoint": "/r"}}`, `{"port": 9101}`, nil,
			Probe{Disabled: true, Endpoint: "/r"}, liveOff,
			&ProbesServer{Hostname: "127.0.0.1", Port: 9101, Readiness: Probe{Endpoint: "/r"}, Liveness: live}},
		{"metrics off: a server of their own at the metrics address", `{"enabled": false, "port": 9100}`, `{"readiness": false}`, nil,
			readyOff, liveOff,
			&ProbesServer{Hostname: "0.0.0.0", Port: 9100, Readiness: readyOff, Liveness: live}},
		{"no metrics: Watt's defaults", ``, `{"liveness": {"success": {"body": "alive"}}}`, nil,
			readyOff, liveOff,
			&ProbesServer{Hostname: "0.0.0.0", Port: 9090, Readiness: ready, Liveness: Probe{Endpoint: "/status", Success: ProbeAnswer{Body: "alive"}}}},
		{"both probes off on their own server: no server", `true`, `{"port": 9101, "readiness": false, "liveness": false}`, nil,
			readyOff, liveOff, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"entrypoint": "a", "applications": [{"id": "a", "path": "a"}]`
			if tt.metrics != "" {
				doc += `, "metrics": ` + tt.metrics
			}
			if tt.healthProbes != "" {
				doc += `, "healthProbes": ` + tt.healthProbes
			}
			cfg, err := loadProject(t, doc+"}", tt.environ...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Metrics.Readiness, tt.wantReadiness) || !reflect.DeepEqual(cfg.Metrics.Liveness, tt.wantLiveness) {
				t.Errorf("metrics server's probes = %+v, %+v, want %+v, %+v", cfg.Metrics.Readiness, cfg.Metrics.Liveness, tt.wantReadiness, tt.wantLiveness)
			}
			if !reflect.DeepEqual(cfg.Probes, tt.wantProbes) {
				t.Errorf("Probes = %+v, want %+v", cfg.Probes, tt.wantProbes)
			}
			for _, w := range cfg.Warnings {
				if strings.Contains(w, "healthProbes") {
					t.Errorf("warning %q: healthProbes is implemented", w)
				}
			}
		})
	}
}

func TestHealthProbesConfigInvalid(t *testing.T) {
	tests := []struct{ metrics, healthProbes, want string }{
		{`true`, `"sometimes"`, `/healthProbes: expected true, false or an object, got "sometimes"`},
		{`true`, `42`, `/healthProbes`},
		{`true`, `{"enabled": "maybe"}`, `/healthProbes/enabled`},
		{`true`, `{"port": 70000}`, `/healthProbes/port`},
		{`true`, `{"port": 9090.5}`, `/healthProbes/port`},
		{`true`, `{"hostname": "[::1]"}`, `/healthProbes/hostname`},
		{`true`, `{"readiness": {"endpoint": "ready"}}`, `/healthProbes/readiness/endpoint: endpoint "ready" must start with /`},
		{`true`, `{"liveness": {"endpoint": "/metrics"}}`, `/healthProbes/liveness/endpoint: "/metrics" is already the path of /metrics/endpoint`},
		{`true`, `{"port": 9101, "liveness": {"endpoint": "/ready"}}`, `/healthProbes/liveness/endpoint: "/ready" is already the path of /metrics/readiness/endpoint`},
		{`true`, `{"readiness": {"fail": {"statusCode": 42}}}`, `/healthProbes/readiness/fail/statusCode`},
		{`true`, `{"probes": true}`, `/healthProbes/probes`},
		// The same port on the wildcard address and on one address of it
		// cannot both be bound.
		{`{"hostname": "0.0.0.0", "port": 9100}`, `{"hostname": "127.0.0.1"}`, `/healthProbes/port: port 9100 on 127.0.0.1 is also the metrics server's (on 0.0.0.0)`},
	}
	for _, tt := range tests {
		t.Run(tt.healthProbes, func(t *testing.T) {
			_, err := loadProject(t, `{"entrypoint": "a", "applications": [{"id": "a", "path": "a"}], "metrics": `+tt.metrics+`, "healthProbes": `+tt.healthProbes+`}`)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
