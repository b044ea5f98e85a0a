package supervisor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

func TestAppInfos(t *testing.T) {
	cfg := &config.Config{
		Entrypoint:         "web",
		Workers:            2,
		Server:             config.Server{Hostname: "127.0.0.1", Port: 0},
		Logger:             config.Logger{Level: "warning", Redact: &config.Redact{Paths: []string{"secret"}, Censor: "***"}},
		GracefulShutdown:   config.GracefulShutdown{Runtime: 10 * time.Second, Application: 3 * time.Second},
		StartTimeout:       30 * time.Second,
		ApplicationTimeout: 0,
		MessagingTimeout:   7 * time.Second,
		Env:                map[string]string{"GREETING": "hi"},
		Health:             config.DefaultHealth(),
		Applications: []config.Application{
			{ID: "web", Path: "/srv/web", Workers: 2, Entrypoint: true, Health: config.DefaultHealth(),
				Watt: capabilities.WattApp{BasePath: "/app", AbsoluteURL: true, Main: "server.js", NoServer: true,
					Preload: []string{"/srv/tracing.mjs"}, Commands: capabilities.Commands{Production: "node server.js"}}},
			{ID: "api", Path: "/srv/api", Workers: 1, Dependencies: []string{"db"}, Health: config.DefaultHealth(), LogLevel: "debug"},
		},
	}
	infos := appInfos(cfg, capabilities.Production, 3042)
	web, api := infos["web"], infos["api"]
	if web.Host != "127.0.0.1" || web.Port != 3042 || !web.Entrypoint || web.BasePath != "/app/" || !web.WantsAbsoluteURLs ||
		!web.NoServer || !slices.Equal(web.Preload, []string{"/srv/tracing.mjs"}) {
		t.Errorf("web = %+v", web)
	}
	// Watt gives applications other than the entrypoint true for both.
	if api.Host != true || api.Port != true || api.Entrypoint {
		t.Errorf("api = %+v", api)
	}
	if web.LogLevel != "warn" {
		t.Errorf("logLevel %q, want pino's warn", web.LogLevel)
	}
	// An application's own logger.level is its logger's, as in Watt.
	if api.LogLevel != "debug" {
		t.Errorf("api logLevel %q, want its own debug", api.LogLevel)
	}
	if want := (&ipc.Redact{Paths: []string{"secret"}, Censor: "***"}); !reflect.DeepEqual(web.Redact, want) || !reflect.DeepEqual(api.Redact, want) {
		t.Errorf("redact %+v %+v, want the runtime's %+v", web.Redact, api.Redact, want)
	}
	if lg := web.RuntimeConfig["logger"]; !reflect.DeepEqual(lg, map[string]any{"level": "warn", "redact": map[string]any{"paths": []string{"secret"}, "censor": "***"}}) {
		t.Errorf("runtimeConfig.logger = %v", lg)
	}
	rc := web.RuntimeConfig
	if rc["restartOnError"] != false || rc["startTimeout"] != int64(30000) || rc["messagingTimeout"] != int64(7000) ||
		!reflect.DeepEqual(rc["env"], map[string]string{"GREETING": "hi"}) ||
		!reflect.DeepEqual(rc["server"], map[string]any{"hostname": "127.0.0.1", "port": 3042}) ||
		!reflect.DeepEqual(rc["gracefulShutdown"], map[string]any{"runtime": int64(10000), "application": int64(3000)}) {
		t.Errorf("runtimeConfig = %v", rc)
	}
	if apps := rc["applications"].([]any); len(apps) != 2 || apps[1].(map[string]any)["id"] != "api" {
		t.Errorf("runtimeConfig.applications = %v", rc["applications"])
	}
	// workers in Watt's shape, an object whatever the file said.
	if w := rc["workers"]; !reflect.DeepEqual(w, map[string]any{"static": 2, "dynamic": false}) {
		t.Errorf("runtimeConfig.workers = %v, want {static: 2, dynamic: false}", w)
	}
	// The metrics server, when there is one; never its credentials.
	if _, ok := rc["metrics"]; ok {
		t.Errorf("runtimeConfig.metrics without a metrics server: %v", rc["metrics"])
	}
	cfg.Metrics = config.Metrics{Enabled: true, Hostname: "127.0.0.1", Port: 9091, Endpoint: "/metrics", Auth: &config.BasicAuth{Username: "u", Password: "p"}}
	if m := appInfos(cfg, capabilities.Production, 3042)["api"].RuntimeConfig["metrics"]; !reflect.DeepEqual(m,
		map[string]any{"hostname": "127.0.0.1", "port": 9091, "endpoint": "/metrics"}) {
		t.Errorf("runtimeConfig.metrics = %v", m)
	}
	cfg.Metrics = config.Metrics{}
	ac := api.ApplicationConfig
	if w := ac["workers"]; !reflect.DeepEqual(w, map[string]any{"static": 1, "dynamic": false}) {
		t.Errorf("applicationConfig.workers = %v, want {static: 1, dynamic: false}", w)
	}
	cfg.Applications[1].Scale = config.Scale{Dynamic: true, Minimum: 1, Maximum: 4}
	if w := appInfos(cfg, capabilities.Production, 3042)["api"].ApplicationConfig["workers"]; !reflect.DeepEqual(w,
		map[string]any{"static": 1, "dynamic": true, "minimum": 1, "maximum": 4}) {
		t.Errorf("a dynamic application's workers = %v", w)
	}
	if ac["localUrl"] != "http://api.plt.local" || ac["isProduction"] != true || !reflect.DeepEqual(ac["dependencies"], []string{"db"}) {
		t.Errorf("applicationConfig = %v", ac)
	}
	if deps := web.ApplicationConfig["dependencies"]; !reflect.DeepEqual(deps, []string{}) {
		t.Errorf("dependencies without any = %#v, want [] as Watt gives", deps)
	}
	wantOwn := map[string]any{
		"node":        map[string]any{"hasServer": false, "absoluteUrl": true, "main": "server.js"},
		"application": map[string]any{"basePath": "/app", "commands": map[string]any{"production": "node server.js"}},
	}
	if !reflect.DeepEqual(web.Config, wantOwn) {
		t.Errorf("config = %v", web.Config)
	}

	cfg.RestartOnError = config.RestartOnError{Enabled: true, Delay: 250 * time.Millisecond}
	if v := appInfos(cfg, capabilities.Development, 3042)["web"].RuntimeConfig["restartOnError"]; v != int64(250) {
		t.Errorf("restartOnError = %v, want the delay", v)
	}
	// Workers collect what only a metrics endpoint reads when there is one.
	if web.Metrics || api.Metrics {
		t.Error("metrics on in the app info without a metrics key")
	}
	cfg.Metrics.Enabled = true
	for id, info := range appInfos(cfg, capabilities.Production, 3042) {
		if !info.Metrics {
			t.Errorf("%s: metrics off in the app info with metrics on", id)
		}
	}

	// The file is what a worker reads back.
	p := filepath.Join(t.TempDir(), "apps", "web.json")
	if err := writeAppInfo(p, web); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var back ipc.AppInfo
	if err := json.Unmarshal(b, &back); err != nil || back.ApplicationID != "web" || back.Port != 3042.0 {
		t.Errorf("read back %+v: %v", back, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
}

// TestAppInfoTracing: the tracing and requestId fields are there exactly
// when their feature is on, in the shape the workers read.
func TestAppInfoTracing(t *testing.T) {
	cfg := &config.Config{
		Entrypoint:   "web",
		Health:       config.DefaultHealth(),
		Applications: []config.Application{{ID: "web", Path: "/srv/web", Workers: 1, Entrypoint: true}},
	}
	encode := func() string {
		data, err := json.Marshal(appInfos(cfg, capabilities.Production, 3042)["web"])
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		return string(m["tracing"]) + "|" + string(m["requestId"])
	}
	if got := encode(); got != "|" {
		t.Errorf("both off: %s", got)
	}
	cfg.Logger.RequestID = config.RequestID{Enabled: true, Header: "x-trace-req", Respond: true}
	if got := encode(); got != `|{"header":"x-trace-req","response":true}` {
		t.Errorf("request ids alone: %s", got)
	}
	cfg.Logger.RequestID.Respond = false
	cfg.Telemetry = config.Telemetry{Enabled: true, ApplicationName: "shop", Skip: []config.TraceSkip{{Path: "/health", Method: "GET"}, {Path: "/^\\/static/"}},
		Sampler: config.SamplerParentRatio, Ratio: 0.25}
	want := `{"serviceName":"shop-web","skip":[{"path":"/health","method":"GET"},{"path":"/^\\/static/"}],"sampler":"parentbased_traceidratio","ratio":0.25}|{"header":"x-trace-req"}`
	if got := encode(); got != want {
		t.Errorf("tracing:\n got %s\nwant %s", got, want)
	}
	cfg.Telemetry = config.Telemetry{Enabled: true, Sampler: config.SamplerAlwaysOff, Ratio: 1}
	if got := encode(); got != `{"serviceName":"web","skip":[],"sampler":"always_off"}|{"header":"x-trace-req"}` {
		t.Errorf("tracing without applicationName or skip: %s", got)
	}
}
