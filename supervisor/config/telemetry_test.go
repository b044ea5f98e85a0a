package config

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestTelemetryConfig(t *testing.T) {
	console := []Exporter{{Type: ExporterConsole, Pointer: "/telemetry/exporter"}}
	tests := []struct {
		name      string
		telemetry string // the value of "telemetry", "" for none
		environ   []string
		want      Telemetry
		requestID RequestID
		warnings  []string // each is in one of the warnings
	}{
		{name: "absent: off", want: Telemetry{}},
		{name: "present: on, console by default, with a warning", telemetry: `{"applicationName": "shop"}`,
			want: Telemetry{Enabled: true, Sampler: SamplerParentAlwaysOn, Ratio: 1, ApplicationName: "shop", Exporters: console}, requestID: RequestID{Enabled: true, Header: "x-request-id"},
			warnings: []string{`/telemetry: no "exporter"`}},
		{name: "enabled false", telemetry: `{"enabled": false, "applicationName": "shop", "exporter": {"type": "console"}}`,
			want: Telemetry{ApplicationName: "shop", Exporters: console}},
		{name: "enabled from a placeholder", telemetry: `{"enabled": "{TRACING}", "exporter": {"type": "console"}}`, environ: []string{"TRACING=false"},
			want: Telemetry{Exporters: console}},
		{name: "Watt 2's serviceName", telemetry: `{"serviceName": "old", "exporter": {}}`,
			want: Telemetry{Enabled: true, Sampler: SamplerParentAlwaysOn, Ratio: 1, ApplicationName: "old", Exporters: console}, requestID: RequestID{Enabled: true, Header: "x-request-id"}},
		{name: "sampler from the environment", telemetry: `{"exporter": {"type": "console"}}`,
			environ: []string{"OTEL_TRACES_SAMPLER=ParentBased_TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG= 0.125 "},
			want:    Telemetry{Enabled: true, Sampler: SamplerParentRatio, Ratio: 0.125, Exporters: console}, requestID: RequestID{Enabled: true, Header: "x-request-id"}},
		{name: "a sampler without a ratio ignores its argument", telemetry: `{"exporter": {"type": "console"}}`,
			environ: []string{"OTEL_TRACES_SAMPLER=always_off", "OTEL_TRACES_SAMPLER_ARG=whatever"},
			want:    Telemetry{Enabled: true, Sampler: SamplerAlwaysOff, Ratio: 1, Exporters: console}, requestID: RequestID{Enabled: true, Header: "x-request-id"}},
		{name: "traceidratio without its argument samples everything", telemetry: `{"exporter": {"type": "console"}}`,
			environ: []string{"OTEL_TRACES_SAMPLER=traceidratio"},
			want:    Telemetry{Enabled: true, Sampler: SamplerRatio, Ratio: 1, Exporters: console}, requestID: RequestID{Enabled: true, Header: "x-request-id"}},
		{name: "a user and password in the URL: a Basic Authorization header, unless the headers have one",
			telemetry: `{"exporter": [
				{"type": "otlp", "options": {"url": "https://alice:pa55@collector:4318/v1/traces", "headers": {"X-Tenant": "a"}}},
				{"type": "zipkin", "options": {"url": "http://bob:x@zipkin:9411/api/v2/spans", "headers": {"authorization": "Bearer t"}}}]}`,
			want: Telemetry{Enabled: true, Sampler: SamplerParentAlwaysOn, Ratio: 1, Exporters: []Exporter{
				{Type: ExporterOTLP, Protocol: ProtocolHTTP, URL: "https://collector:4318/v1/traces", Headers: map[string]string{"X-Tenant": "a", "Authorization": "Basic YWxpY2U6cGE1NQ=="}, Pointer: "/telemetry/exporter/0"},
				{Type: ExporterZipkin, URL: "http://zipkin:9411/api/v2/spans", Headers: map[string]string{"authorization": "Bearer t"}, Pointer: "/telemetry/exporter/1"},
			}}, requestID: RequestID{Enabled: true, Header: "x-request-id"}},
		{name: "tracing off: the sampler is not read", telemetry: `{"enabled": false, "exporter": {"type": "console"}}`,
			environ: []string{"OTEL_TRACES_SAMPLER=nonsense"},
			want:    Telemetry{Exporters: console}},
		{name: "every key", telemetry: `{"applicationName": "shop", "version": "1.2.3", "diagLogger": true,
			"skip": [{"path": "/health", "method": "GET"}, {"path": "/^\\/static(?=\\/)/"}, {"method": "OPTIONS"}],
			"exporter": [
				{"type": "otlp", "options": {"url": "https://collector:4318/v1/traces", "headers": {"Authorization": "Bearer x"}, "timeoutMillis": 100}},
				{"type": "otlp", "options": {"url": "http://127.0.0.1:4317", "transport": "grpc"}},
				{"type": "file", "options": {"path": "traces/spans.jsonl"}},
				{"type": "file"},
				{"type": "memory"},
				{"type": "zipkin", "options": {"url": "http://zipkin:9411/api/v2/spans", "headers": {"X-Tenant": "a"}}},
				{"type": "zipkin"}
			]}`,
			want: Telemetry{Enabled: true, Sampler: SamplerParentAlwaysOn, Ratio: 1, ApplicationName: "shop", Version: "1.2.3", DiagLogger: true,
				Skip: []TraceSkip{{Path: "/health", Method: "GET"}, {Path: `/^\/static(?=\/)/`}, {Method: "OPTIONS"}},
				Exporters: []Exporter{
					{Type: ExporterOTLP, Protocol: ProtocolHTTP, URL: "https://collector:4318/v1/traces", Headers: map[string]string{"Authorization": "Bearer x"}, Pointer: "/telemetry/exporter/0"},
					{Type: ExporterOTLP, Protocol: ProtocolGRPC, URL: "http://127.0.0.1:4317", Pointer: "/telemetry/exporter/1"},
					{Type: ExporterFile, Path: "traces/spans.jsonl", Pointer: "/telemetry/exporter/2"},
					{Type: ExporterFile, Path: DefaultSpansFile, Pointer: "/telemetry/exporter/3"},
					{Type: ExporterMemory, Pointer: "/telemetry/exporter/4"},
					{Type: ExporterZipkin, URL: "http://zipkin:9411/api/v2/spans", Headers: map[string]string{"X-Tenant": "a"}, Pointer: "/telemetry/exporter/5"},
					{Type: ExporterZipkin, URL: DefaultZipkinURL, Pointer: "/telemetry/exporter/6"},
				}},
			requestID: RequestID{Enabled: true, Header: "x-request-id"},
			warnings: []string{
				`/telemetry/exporter/0/options/timeoutMillis: Watt option "timeoutMillis" is not supported by wattd; ignored: wattd's exporters take url, headers, path and protocol`,
				"/telemetry/exporter/4/type: the memory exporter",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"entrypoint": "a", "applications": [{"id": "a", "path": "a"}]`
			if tt.telemetry != "" {
				doc += `, "telemetry": ` + tt.telemetry
			}
			cfg, err := loadProject(t, doc+"}", tt.environ...)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range cfg.Telemetry.Exporters {
				if e.Path != "" {
					rel, err := filepath.Rel(cfg.Dir, e.Path)
					if err != nil || !filepath.IsAbs(e.Path) {
						t.Errorf("file path %q is not absolute under %s", e.Path, cfg.Dir)
					}
					cfg.Telemetry.Exporters[i].Path = rel
				}
			}
			if !reflect.DeepEqual(cfg.Telemetry, tt.want) {
				t.Errorf("Telemetry =\n %+v\nwant\n %+v", cfg.Telemetry, tt.want)
			}
			if cfg.Logger.RequestID != tt.requestID {
				t.Errorf("RequestID = %+v, want %+v", cfg.Logger.RequestID, tt.requestID)
			}
			for _, want := range tt.warnings {
				if !slices.ContainsFunc(cfg.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
					t.Errorf("no warning with %q in %q", want, cfg.Warnings)
				}
			}
		})
	}
}

func TestTelemetryServiceName(t *testing.T) {
	if got := (Telemetry{ApplicationName: "shop"}).ServiceName("api"); got != "shop-api" {
		t.Errorf("with a name: %q", got)
	}
	if got := (Telemetry{}).ServiceName("api"); got != "api" {
		t.Errorf("without: %q", got)
	}
}

func TestTelemetryConfigInvalid(t *testing.T) {
	tests := []struct{ telemetry, want string }{
		{`{"enabled": "maybe"}`, `/telemetry/enabled: "maybe" is not true or false`},
		{`{"applicationName": "a", "serviceName": "b"}`, `/telemetry/serviceName: "serviceName" is Watt 2's name`},
		{`{"skip": [{}]}`, `/telemetry/skip/0`},
		{`{"skip": [{"path": "/a", "method": "BREW"}]}`, `/telemetry/skip/0/method`},
		{`{"skip": [{"path": "/(unclosed/"}]}`, `/telemetry/skip/0/path: "/(unclosed/" is a regular expression`},
		{`{"exporter": []}`, `/telemetry/exporter: the exporter list is empty`},
		{`{"exporter": {"type": "jaeger"}}`, `/telemetry/exporter`},
		{`{"exporter": {"type": "otlp", "options": {"url": "collector:4318"}}}`, `/telemetry/exporter/options/url: "collector:4318" is not an http:// or https:// URL`},
		{`{"exporter": {"type": "otlp", "options": {"url": "http:///v1/traces"}}}`, `/telemetry/exporter/options/url: "http:///v1/traces" has no host`},
		{`{"exporter": [{"type": "otlp", "options": {"protocol": "http", "transport": "grpc"}}]}`, `/telemetry/exporter/0/options/transport: "transport" ("grpc") is an alias of "protocol"`},
		{`{"exporter": {"type": "otlp", "options": {"protocol": "udp"}}}`, `/telemetry/exporter/options/protocol`},
		{`{"exporter": {"type": "otlp", "options": {"headers": {"bad header": "x"}}}}`, `/telemetry/exporter/options/headers/bad header: "bad header" is not an HTTP header name`},
		{`{"exporter": {"type": "otlp", "options": {"headers": {"a/b": "x"}}}}`, `/telemetry/exporter/options/headers/a~1b`},
		{`{"exporter": {"type": "otlp", "options": {"headers": {"x": {}}}}}`, `/telemetry/exporter/options/headers/x`},
		{`{"exporter": {"type": "otlp", "options": {"headers": {"x": "a\nb"}}}}`, `line break`},
		{`{"exporter": {"type": "file", "options": {"path": ""}}}`, `/telemetry/exporter/options/path`},
		{`{"exporter": [{"type": "console"}, {"type": "zipkin", "options": {"url": "zipkin:9411"}}]}`, `/telemetry/exporter/1/options/url: "zipkin:9411" is not an http:// or https:// URL`},
		{`{"exporter": {"type": "zipkin", "options": {"headers": {"bad header": "x"}}}}`, `/telemetry/exporter/options/headers/bad header`},
		{`{"tracing": true}`, `/telemetry/tracing`},
		{`"yes"`, `/telemetry`},
	}
	for _, tt := range tests {
		t.Run(tt.telemetry, func(t *testing.T) {
			_, err := loadProject(t, `{"entrypoint": "a", "applications": [{"id": "a", "path": "a"}], "telemetry": `+tt.telemetry+`}`)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestTelemetrySamplerInvalid: a sampler wattd cannot apply is refused,
// naming the variable, its value and what it takes.
func TestTelemetrySamplerInvalid(t *testing.T) {
	tests := []struct {
		environ []string
		want    string
	}{
		{[]string{"OTEL_TRACES_SAMPLER=traceidration"}, `/telemetry: OTEL_TRACES_SAMPLER="traceidration": expected always_on, always_off, traceidratio,`},
		{[]string{"OTEL_TRACES_SAMPLER=jaeger_remote"}, `/telemetry: OTEL_TRACES_SAMPLER=jaeger_remote: that sampler is not supported by wattd`},
		{[]string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=10%"}, `/telemetry: OTEL_TRACES_SAMPLER_ARG="10%": expected the probability of traceidratio, a number from 0 to 1`},
		{[]string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=1.5"}, `OTEL_TRACES_SAMPLER_ARG="1.5": expected the probability of parentbased_traceidratio`},
		{[]string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=NaN"}, `OTEL_TRACES_SAMPLER_ARG="NaN"`},
		{[]string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=-0.1"}, `OTEL_TRACES_SAMPLER_ARG="-0.1"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.environ, " "), func(t *testing.T) {
			_, err := loadProject(t, `{"entrypoint": "a", "applications": [{"id": "a", "path": "a"}], "telemetry": {"exporter": {"type": "console"}}}`, tt.environ...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(withoutLine(err.Error(), ""), "watt.json: ") {
				t.Errorf("error = %v, want one naming the file and containing %q", err, tt.want)
			}
		})
	}
}

func TestRequestIDConfig(t *testing.T) {
	tests := []struct {
		logger string
		want   RequestID
		err    string
	}{
		{`{}`, RequestID{}, ""},
		{`{"requestId": true}`, RequestID{Enabled: true, Header: "x-request-id", Respond: true}, ""},
		{`{"requestId": false}`, RequestID{}, ""},
		{`{"requestId": "X-Correlation-ID"}`, RequestID{Enabled: true, Header: "x-correlation-id", Respond: true}, ""},
		{`{"requestId": "bad header"}`, RequestID{}, `/logger/requestId: "bad header" is not an HTTP header name`},
		{`{"requestId": {"header": "x"}}`, RequestID{}, `/logger/requestId`},
	}
	for _, tt := range tests {
		t.Run(tt.logger, func(t *testing.T) {
			cfg, err := loadProject(t, `{"entrypoint": "a", "applications": [{"id": "a", "path": "a"}], "logger": `+tt.logger+`}`)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Logger.RequestID != tt.want {
				t.Errorf("RequestID = %+v, want %+v", cfg.Logger.RequestID, tt.want)
			}
		})
	}
}

// TestLogExportConfig: logger.openTelemetryExporter is read as Watt's,
// under telemetry's service name, and only while telemetry is on.
func TestLogExportConfig(t *testing.T) {
	const apps = `"entrypoint": "a", "applications": [{"id": "a", "path": "a"}]`
	cfg, err := loadProject(t, `{`+apps+`, "telemetry": {"applicationName": "shop", "version": "2.0.0", "exporter": {"type": "console"}},
		"logger": {"openTelemetryExporter": {"protocol": "grpc", "url": "http://collector:4317"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if e := cfg.Logger.Export; e == nil || *e != (LogExport{Protocol: "grpc", URL: "http://collector:4317", ServiceName: "shop", Version: "2.0.0"}) {
		t.Errorf("export %+v", cfg.Logger.Export)
	}
	for _, w := range cfg.Warnings {
		if strings.Contains(w, "openTelemetryExporter") {
			t.Errorf("warning %q", w)
		}
	}
	cfg, err = loadProject(t, `{`+apps+`, "logger": {"openTelemetryExporter": {"protocol": "http", "url": "http://collector:4318/v1/logs"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger.Export != nil || !strings.Contains(strings.Join(cfg.Warnings, "\n"), `/logger/openTelemetryExporter: log entries are exported only while "telemetry" is on`) {
		t.Errorf("without telemetry: export %+v, warnings %q", cfg.Logger.Export, cfg.Warnings)
	}
	for _, tt := range []struct{ exporter, want string }{
		{`{"protocol": "http", "url": "collector:4318"}`, `/logger/openTelemetryExporter/url: "collector:4318" is not an http:// or https:// URL`},
		{`{"protocol": "udp", "url": "http://collector:4318"}`, `/logger/openTelemetryExporter/protocol`},
		{`{"url": "http://collector:4318"}`, `/logger/openTelemetryExporter`},
		{`{"protocol": "http", "url": "http://c:4318", "headers": {}}`, `/logger/openTelemetryExporter`},
	} {
		_, err := loadProject(t, `{`+apps+`, "telemetry": {"exporter": {"type": "console"}}, "logger": {"openTelemetryExporter": `+tt.exporter+`}}`)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want one containing %q", tt.exporter, err, tt.want)
		}
	}
}
