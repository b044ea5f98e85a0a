package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

// The app info file (ipc.AppInfo) tells a worker's runtime API what Watt
// tells its applications through globalThis.platformatic: the ids, the
// public address, the log level and the configuration objects. It is a
// file rather than a control message because apps read these at their
// first line, before any message on the channel can have arrived; and it
// is a file rather than environment variables because these are typed
// settings, which the environment would flatten into strings.
//
// The objects are in Watt's shapes and names, filled with what wattd
// applies (durations in milliseconds, as Watt writes them); keys wattd has
// no value for are left out.

// appInfos builds every application's info; public is the entrypoint's
// bound address (nil when there is none yet).
func appInfos(cfg *config.Config, mode capabilities.Mode, port int) map[string]ipc.AppInfo {
	apps := make([]any, 0, len(cfg.Applications))
	appConfigs := map[string]map[string]any{}
	for _, ac := range cfg.Applications {
		m := applicationConfig(ac, mode)
		appConfigs[ac.ID] = m
		apps = append(apps, m)
	}
	level := pinoLevelName(cfg.Logger.Level)
	logger := map[string]any{"level": level}
	var redact *ipc.Redact
	if r := cfg.Logger.Redact; r != nil {
		redact = &ipc.Redact{Paths: r.Paths, Censor: r.Censor}
		logger["redact"] = map[string]any{"paths": r.Paths, "censor": r.Censor}
	}
	runtime := map[string]any{
		"entrypoint":         cfg.Entrypoint,
		"workers":            workersConfig(cfg.Workers, cfg.Scaler.Dynamic, cfg.Scaler.Minimum, cfg.Scaler.Maximum),
		"server":             serverConfig(cfg.Server.Hostname, port),
		"logger":             logger,
		"restartOnError":     restartOnErrorValue(cfg.RestartOnError),
		"gracefulShutdown":   map[string]any{"runtime": ms(cfg.GracefulShutdown.Runtime), "application": ms(cfg.GracefulShutdown.Application)},
		"startTimeout":       ms(cfg.StartTimeout),
		"applicationTimeout": ms(cfg.ApplicationTimeout),
		"messagingTimeout":   ms(cfg.MessagingTimeout),
		"env":                runtimeEnvConfig(cfg.Env),
		"health":             healthConfig(cfg.Health),
		"applications":       apps,
	}
	if m := cfg.Metrics; m.Enabled {
		// Where the metrics are served, as watt.json says it (with the
		// defaults filled in); its credentials stay out.
		runtime["metrics"] = map[string]any{"hostname": m.Hostname, "port": m.Port, "endpoint": m.Endpoint}
	}
	out := make(map[string]ipc.AppInfo, len(cfg.Applications))
	for _, ac := range cfg.Applications {
		// The application's own level, as Watt gives its logger; wattd's
		// level still applies on top.
		appLevel := level
		if ac.LogLevel != "" {
			appLevel = pinoLevelName(ac.LogLevel)
		}
		info := ipc.AppInfo{
			ApplicationID:        ac.ID,
			Entrypoint:           ac.ID == cfg.Entrypoint,
			Root:                 ac.Path,
			Host:                 true,
			Port:                 true,
			BasePath:             capabilities.BasePath(ac.Watt.BasePath),
			LogLevel:             appLevel,
			Redact:               redact,
			WantsAbsoluteURLs:    ac.Watt.AbsoluteURL,
			RuntimeConfig:        runtime,
			ApplicationConfig:    appConfigs[ac.ID],
			Config:               ownConfig(ac.Watt),
			NoServer:             ac.Watt.NoServer,
			Preload:              ac.Watt.Preload,
			Metrics:              cfg.Metrics.Enabled,
			EventLoopDelay:       ac.Health.JudgesDelay(),
			BufferPoolSize:       ac.Health.BufferPoolSize,
			DefaultHighWaterMark: ac.Health.HighWaterMark,
		}
		if info.Metrics {
			info.ClientMetrics = cfg.Metrics.ClientMetrics
			for _, l := range cfg.Metrics.RequestLabels {
				info.RequestLabels = append(info.RequestLabels, ipc.RequestLabel{Name: l.Name, Header: l.Header, Default: l.Default})
			}
		}
		if info.Entrypoint {
			info.Host, info.Port = cfg.Server.Hostname, port
		}
		info.Tracing, info.RequestID = tracingInfo(cfg, ac.ID)
		out[ac.ID] = info
	}
	return out
}

// tracingInfo is what the application's workers need to trace requests
// and carry request ids; nil for what is off.
func tracingInfo(cfg *config.Config, id string) (*ipc.TracingInfo, *ipc.RequestIDInfo) {
	var tr *ipc.TracingInfo
	if t := cfg.Telemetry; t.Enabled {
		tr = &ipc.TracingInfo{ServiceName: t.ServiceName(id), Skip: []ipc.TraceSkip{}, Sampler: t.Sampler}
		if t.Sampler == config.SamplerRatio || t.Sampler == config.SamplerParentRatio {
			tr.Ratio = &t.Ratio
		}
		for _, s := range t.Skip {
			tr.Skip = append(tr.Skip, ipc.TraceSkip{Path: s.Path, Method: s.Method})
		}
	}
	var rid *ipc.RequestIDInfo
	if r := cfg.Logger.RequestID; r.Enabled {
		rid = &ipc.RequestIDInfo{Header: r.Header, Response: r.Respond}
	}
	return tr, rid
}

// serverConfig is runtimeConfig.server: without a hostname (every
// interface) Watt's has none.
func serverConfig(hostname string, port int) map[string]any {
	if hostname == "" {
		return map[string]any{"port": port}
	}
	return map[string]any{"hostname": hostname, "port": port}
}

// runtimeEnvConfig is the environment the runtime gives every application
// (its env block, .env and envfile values, NODE_ENV and the PLT_
// variables), never nil: Watt's runtimeConfig.env is an object.
func runtimeEnvConfig(env map[string]string) map[string]string {
	if env == nil {
		return map[string]string{}
	}
	return env
}

// workersConfig is a workers setting in the shape Watt gives it to the
// applications, whatever the file said (a count or an object):
// {static, dynamic}, and minimum and maximum when the count is dynamic.
func workersConfig(count int, dynamic bool, minimum, maximum int) map[string]any {
	m := map[string]any{"static": count, "dynamic": dynamic}
	if dynamic {
		m["minimum"], m["maximum"] = minimum, maximum
	}
	return m
}

func applicationConfig(ac config.Application, mode capabilities.Mode) map[string]any {
	deps := ac.Dependencies
	if deps == nil {
		deps = []string{}
	}
	m := map[string]any{
		"id":           ac.ID,
		"path":         ac.Path,
		"workers":      workersConfig(ac.Workers, ac.Scale.Dynamic, ac.Scale.Minimum, ac.Scale.Maximum),
		"entrypoint":   ac.Entrypoint,
		"dependencies": deps,
		"health":       healthConfig(ac.Health),
		"localUrl":     "http://" + ac.ID + ".plt.local",
		"isProduction": mode == capabilities.Production,
	}
	if ac.NodeOptions != "" {
		m["nodeOptions"] = ac.NodeOptions
	}
	if ac.Watt.BasePath != "" {
		m["basePath"] = ac.Watt.BasePath
	}
	return m
}

// ownConfig is the application's own configuration (Watt's "config"): the
// node and application blocks as wattd applies them.
// OwnConfig is an application's own configuration in Watt's shape, as its
// workers see it in globalThis.platformatic.config and as the management
// API answers it (wattpm config PID APP).
func OwnConfig(ac config.Application) map[string]any { return ownConfig(ac.Watt) }

func ownConfig(w capabilities.WattApp) map[string]any {
	node := map[string]any{"hasServer": !w.NoServer, "absoluteUrl": w.AbsoluteURL}
	if w.Main != "" {
		node["main"] = w.Main
	}
	app := map[string]any{}
	if w.BasePath != "" {
		app["basePath"] = w.BasePath
	}
	cmds := map[string]any{}
	for k, v := range map[string]string{"build": w.Commands.Build, "development": w.Commands.Development, "production": w.Commands.Production} {
		if v != "" {
			cmds[k] = v
		}
	}
	if len(cmds) > 0 {
		app["commands"] = cmds
	}
	return map[string]any{"node": node, "application": app}
}

func healthConfig(h config.Health) map[string]any {
	m := map[string]any{
		"enabled":            h.Enabled,
		"interval":           ms(h.Interval),
		"gracePeriod":        ms(h.GracePeriod),
		"maxUnhealthyChecks": h.MaxUnhealthyChecks,
		"maxELU":             h.MaxELU,
		"maxHeapUsed":        h.MaxHeapUsed,
		"maxHeapTotal":       h.MaxHeapTotal,
	}
	if h.MaxEventLoopDelay > 0 {
		m["maxEventLoopDelay"] = ms(h.MaxEventLoopDelay)
	}
	if h.MaxEventLoopDelayP99 > 0 {
		m["maxEventLoopDelayP99"] = ms(h.MaxEventLoopDelayP99)
	}
	return m
}

// restartOnErrorValue is Watt's restartOnError: false, or the delay in ms.
func restartOnErrorValue(r config.RestartOnError) any {
	if !r.Enabled {
		return false
	}
	return ms(r.Delay)
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// pinoLevelName maps wattd's level names onto pino's: the runtime's level
// is what an app's logger starts at.
func pinoLevelName(level string) string {
	switch l := strings.ToLower(strings.TrimSpace(level)); l {
	case "":
		return "info"
	case "warning":
		return "warn"
	default:
		return l
	}
}

// writeAppInfo writes info to path (0600, in a 0700 directory), replacing
// a file left by an earlier run atomically.
func writeAppInfo(path string, info ipc.AppInfo) error {
	data, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("app %q: encode app info: %w", info.ApplicationID, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("app %q: app info: %w", info.ApplicationID, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".app-*.tmp")
	if err != nil {
		return fmt.Errorf("app %q: app info: %w", info.ApplicationID, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("app %q: write app info %s: %w", info.ApplicationID, path, err)
	}
	return nil
}
