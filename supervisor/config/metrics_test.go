package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMetricsConfig(t *testing.T) {
	ready, live := Probe{Endpoint: "/ready"}, Probe{Endpoint: "/status"}
	off := Metrics{Hostname: DefaultMetricsHostname, Port: DefaultMetricsPort, Endpoint: DefaultMetricsEndpoint, AppLabel: DefaultAppLabel, Readiness: ready, Liveness: live}
	on := off
	on.Enabled = true
	tests := []struct {
		name    string
		metrics string // the value of "metrics", "" for none
		environ []string
		want    Metrics
	}{
		{"absent: no server, as in Watt", "", nil, off},
		{"true: defaults", `true`, nil, on},
		{"false: off for wattpm metrics too", `false`, nil, Metrics{Off: true, Hostname: "0.0.0.0", Port: 9090, Endpoint: "/metrics", AppLabel: DefaultAppLabel, Readiness: ready, Liveness: live}},
		{"empty object turns it on", `{}`, nil, on},
		{"enabled false", `{"enabled": false, "port": 9100}`, nil, Metrics{Off: true, Hostname: "0.0.0.0", Port: 9100, Endpoint: "/metrics", AppLabel: DefaultAppLabel, Readiness: ready, Liveness: live}},
		{"every key", `{"hostname": "127.0.0.1", "port": "{MPORT}", "endpoint": "/prom",
			"auth": {"username": "u", "password": "p"}, "applicationLabel": "serviceId", "labels": {"env": "prod"},
			"readiness": {"endpoint": "/ready-now", "success": {"statusCode": 204}, "fail": {"statusCode": 503, "body": "not yet"}},
			"liveness": {"success": {"body": "alive"}}}`, []string{"MPORT=9200"},
			Metrics{Enabled: true, Hostname: "127.0.0.1", Port: 9200, Endpoint: "/prom",
				Auth: &BasicAuth{Username: "u", Password: "p"}, AppLabel: "serviceId", Labels: map[string]string{"env": "prod"},
				Readiness: Probe{Endpoint: "/ready-now", Success: ProbeAnswer{StatusCode: 204}, Fail: ProbeAnswer{StatusCode: 503, Body: "not yet"}},
				Liveness:  Probe{Endpoint: "/status", Success: ProbeAnswer{Body: "alive"}}}},
		{"probes off", `{"readiness": false, "liveness": true}`, nil,
			Metrics{Enabled: true, Hostname: "0.0.0.0", Port: 9090, Endpoint: "/metrics", AppLabel: DefaultAppLabel, Readiness: Probe{Disabled: true, Endpoint: "/ready"}, Liveness: live}},
		{"otlpExporter, Watt's example with placeholders", `{"otlpExporter": {"endpoint": "{OTLP_URL}", "interval": "{OTLP_MS}",
			"headers": {"x-api-key": "{OTLP_KEY}"}, "serviceName": "shop", "serviceVersion": "1.0.0"}}`,
			[]string{"OTLP_URL=http://collector:4318/v1/metrics", "OTLP_MS=30000", "OTLP_KEY=s3cret"},
			Metrics{Enabled: true, Hostname: "0.0.0.0", Port: 9090, Endpoint: "/metrics", AppLabel: DefaultAppLabel, Readiness: ready, Liveness: live,
				OTLP: &OTLPMetrics{Endpoint: "http://collector:4318/v1/metrics", Interval: 30 * time.Second,
					Headers: map[string]string{"x-api-key": "s3cret"}, ServiceName: "shop", ServiceVersion: "1.0.0"}}},
		{"otlpExporter with defaults", `{"otlpExporter": {"endpoint": "https://otlp.example.com/v1/metrics"}}`, nil,
			Metrics{Enabled: true, Hostname: "0.0.0.0", Port: 9090, Endpoint: "/metrics", AppLabel: DefaultAppLabel, Readiness: ready, Liveness: live,
				OTLP: &OTLPMetrics{Endpoint: "https://otlp.example.com/v1/metrics", Interval: DefaultOTLPMetricsInterval}}},
		{"otlpExporter disabled by a placeholder", `{"otlpExporter": {"enabled": "{PUSH}", "endpoint": "http://c:4318/v1/metrics"}}`, []string{"PUSH=false"}, on},
		{"httpCustomLabels, Watt's form", `{"httpCustomLabels": [{"name": "tenant", "header": "X-Tenant-Id"}, {"name": "plan", "header": "x-plan", "default": "free"}]}`, nil,
			Metrics{Enabled: true, Hostname: "0.0.0.0", Port: 9090, Endpoint: "/metrics", AppLabel: DefaultAppLabel, Readiness: ready, Liveness: live,
				RequestLabels: []RequestLabel{{Name: "tenant", Header: "x-tenant-id", Default: "unknown"}, {Name: "plan", Header: "x-plan", Default: "free"}}}},
		// A probe turned off frees its path.
		{"liveness off, its path taken", `{"endpoint": "/status", "liveness": false}`, nil,
			Metrics{Enabled: true, Hostname: "0.0.0.0", Port: 9090, Endpoint: "/status", AppLabel: DefaultAppLabel, Readiness: ready, Liveness: Probe{Disabled: true, Endpoint: "/status"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"entrypoint": "a", "applications": [{"id": "a", "path": "a"}]`
			if tt.metrics != "" {
				doc += `, "metrics": ` + tt.metrics
			}
			cfg, err := loadProject(t, doc+"}", tt.environ...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Metrics, tt.want) {
				t.Errorf("Metrics = %+v, want %+v", cfg.Metrics, tt.want)
			}
		})
	}
}

func TestMetricsConfigInvalid(t *testing.T) {
	tests := []struct{ metrics, want string }{
		{`{"labels": {"bad-name": "x"}}`, `/metrics/labels/bad-name: "bad-name" is not a Prometheus label name`},
		{`{"labels": {"__name": "x"}}`, `/metrics/labels/__name: "__name" is not a Prometheus label name`},
		{`{"labels": {"kind": "x"}}`, `/metrics/labels/kind: label "kind" is one wattd's series already carry`},
		{`{"labels": {"le": "x"}}`, `/metrics/labels/le: label "le" is one wattd's series already carry`},
		{`{"labels": {"type": "x"}}`, `/metrics/labels/type: label "type" is one wattd's series already carry`},
		{`{"applicationLabel": "space"}`, `/metrics/applicationLabel: label "space" is one wattd's series already carry`},
		{`{"applicationLabel": "service-id"}`, `/metrics/applicationLabel: "service-id" is not a Prometheus label name`},
		{`{"applicationLabel": "workerId"}`, `/metrics/applicationLabel: label "workerId" is one wattd's series already carry`},
		{`{"applicationLabel": "state"}`, `/metrics/applicationLabel: label "state" is one wattd's series already carry`},
		{`{"applicationLabel": ""}`, `/metrics/applicationLabel`},
		{`{"endpoint": "metrics"}`, `/metrics/endpoint: endpoint "metrics" must start with /`},
		{`{"auth": {"username": "u"}}`, `/metrics/auth`},
		{`{"port": 70000}`, `/metrics/port`},
		{`{"metricz": 1}`, `/metrics/metricz`},
		{`{"readiness": {"endpoint": "ready"}}`, `/metrics/readiness/endpoint: endpoint "ready" must start with /`},
		{`{"liveness": {"endpoint": "/metrics"}}`, `/metrics/liveness/endpoint: "/metrics" is already the path of /metrics/endpoint`},
		{`{"readiness": {"endpoint": "/probe"}, "liveness": {"endpoint": "/probe"}}`, `/metrics/liveness/endpoint: "/probe" is already the path of /metrics/readiness/endpoint`},
		{`{"readiness": {"fail": {"statusCode": 42}}}`, `/metrics/readiness/fail/statusCode`},
		{`{"liveness": {"success": {"statusCode": 200.5}}}`, `/metrics/liveness/success/statusCode`},
		{`{"readiness": {"succes": {}}}`, `/metrics/readiness/succes`},
		{`{"liveness": "yes"}`, `/metrics/liveness`},
		{`{"otlpExporter": {}}`, `/metrics/otlpExporter`},
		{`{"httpCustomLabels": [{"name": "ten-ant", "header": "x-tenant"}]}`, `/metrics/httpCustomLabels/0/name: "ten-ant" is not a Prometheus label name`},
		{`{"httpCustomLabels": [{"name": "method", "header": "x-tenant"}]}`, `/metrics/httpCustomLabels/0/name: label "method" is one wattd's series already carry`},
		{`{"httpCustomLabels": [{"name": "workerId", "header": "x-tenant"}]}`, `/metrics/httpCustomLabels/0/name: label "workerId" is one wattd's series already carry`},
		{`{"labels": {"tenant": "a"}, "httpCustomLabels": [{"name": "tenant", "header": "x-tenant"}]}`, `/metrics/httpCustomLabels/0/name: label "tenant" is also a constant label (/metrics/labels/tenant)`},
		{`{"labels": {"tenant": ""}, "httpCustomLabels": [{"name": "tenant", "header": "x-tenant"}]}`, `/metrics/httpCustomLabels/0/name: label "tenant" is also a constant label (/metrics/labels/tenant)`},
		{`{"httpCustomLabels": [{"name": "t", "header": "x-a"}, {"name": "t", "header": "x-b"}]}`, `/metrics/httpCustomLabels/1/name: label "t" is already the name of /metrics/httpCustomLabels/0`},
		{`{"httpCustomLabels": [{"name": "t", "header": "x tenant"}]}`, `/metrics/httpCustomLabels/0/header: "x tenant" is not an HTTP header name`},
		{`{"httpCustomLabels": [{"name": "t"}]}`, `/metrics/httpCustomLabels/0`},
		{`{"httpCustomLabels": [{"name": "a", "header": "a"}, {"name": "b", "header": "a"}, {"name": "c", "header": "a"}, {"name": "d", "header": "a"}, {"name": "e", "header": "a"}, {"name": "f", "header": "a"}, {"name": "g", "header": "a"}, {"name": "h", "header": "a"}, {"name": "i", "header": "a"}]}`, `/metrics/httpCustomLabels`},
		{`{"otlpExporter": {"endpoint": "collector:4318"}}`, `/metrics/otlpExporter/endpoint: "collector:4318" is not an http:// or https:// URL`},
		{`{"otlpExporter": {"endpoint": "http://c/v1/metrics", "interval": 0}}`, `/metrics/otlpExporter/interval`},
		{`{"otlpExporter": {"endpoint": "http://c/v1/metrics", "headers": {"bad header": "x"}}}`, `/metrics/otlpExporter/headers/bad header: "bad header" is not an HTTP header name`},
		{`{"otlpExporter": {"endpoint": "http://c/v1/metrics", "enabled": "maybe"}}`, `/metrics/otlpExporter/enabled`},
		{`{"otlpExporter": {"endpoint": "http://c/v1/metrics", "protocol": "grpc"}}`, `/metrics/otlpExporter/protocol`},
	}
	for _, tt := range tests {
		t.Run(tt.metrics, func(t *testing.T) {
			_, err := loadProject(t, `{"entrypoint": "a", "applications": [{"id": "a", "path": "a"}], "metrics": `+tt.metrics+`}`)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// A constant label named like the application label or the worker label
// is left out with a warning, as Watt puts the application's id and the
// worker's number in its place: the project still starts.
func TestMetricsLabelsWattSetsItself(t *testing.T) {
	for _, tt := range []struct{ metrics, label string }{
		{`{"labels": {"applicationId": "x", "env": "prod"}}`, "applicationId"},
		{`{"applicationLabel": "serviceId", "labels": {"serviceId": "x", "env": "prod"}}`, "serviceId"},
		{`{"labels": {"workerId": "x", "env": "prod"}}`, "workerId"},
	} {
		t.Run(tt.label, func(t *testing.T) {
			cfg, err := loadProject(t, `{"entrypoint": "a", "applications": [{"id": "a", "path": "a"}], "metrics": `+tt.metrics+`}`)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]string{"env": "prod"}; !reflect.DeepEqual(cfg.Metrics.Labels, want) {
				t.Errorf("Labels = %v, want %v", cfg.Metrics.Labels, want)
			}
			want := "/metrics/labels/" + tt.label + `: label "` + tt.label + `" is left out`
			if !slices.ContainsFunc(cfg.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
				t.Errorf("warnings %q, want one containing %q", cfg.Warnings, want)
			}
		})
	}
}
