package config

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/supervisor/logs"
)

// rawConfig is the validated tree in Go form; pointers tell "absent" from
// zero so defaults can be applied.
type rawConfig struct {
	Schema       string       `json:"$schema"`
	Entrypoint   string       `json:"entrypoint"`
	Applications []rawApp     `json:"applications"`
	Services     []rawApp     `json:"services"`
	Web          []rawApp     `json:"web"`
	Autoload     *rawAutoload `json:"autoload"`
	Workers      *rawWorkers  `json:"workers"`
	Vertical     *rawVertical `json:"verticalScaler"`
	Server       struct {
		Hostname *string      `json:"hostname"`
		Port     *json.Number `json:"port"`
	} `json:"server"`
	Logger struct {
		Level     string          `json:"level"`
		RequestID json.RawMessage `json:"requestId"`
		Redact    *struct {
			Paths  []string `json:"paths"`
			Censor *string  `json:"censor"`
		} `json:"redact"`
		OpenTelemetryExporter *struct {
			Protocol string `json:"protocol"`
			URL      string `json:"url"`
		} `json:"openTelemetryExporter"`
	} `json:"logger"`
	Env              map[string]string `json:"env"`
	RestartOnError   json.RawMessage   `json:"restartOnError"`
	GracefulShutdown struct {
		Runtime     *json.Number `json:"runtime"`
		Application *json.Number `json:"application"`
	} `json:"gracefulShutdown"`
	ReuseTCPPorts      *bool        `json:"reuseTcpPorts"`
	StartTimeout       *json.Number `json:"startTimeout"`
	StartupConcurrency *json.Number `json:"startupConcurrency"`
	ApplicationTimeout *json.Number `json:"applicationTimeout"`
	MessagingTimeout   *json.Number `json:"messagingTimeout"`
	Restart            struct {
		InitialDelay *json.Number `json:"initialDelay"`
		MaxDelay     *json.Number `json:"maxDelay"`
		ResetAfter   *json.Number `json:"resetAfter"`
		MaxRestarts  *json.Number `json:"maxRestarts"`
	} `json:"restart"`
	Health    *rawHealth      `json:"health"`
	Resources *rawResources   `json:"resources"`
	Preload   json.RawMessage `json:"preload"`
	// CompileCache is read by compileCacheOf.
	CompileCache json.RawMessage `json:"compileCache"`
	SourceMaps   *bool           `json:"sourceMaps"`
	// Watch is Watt's runtime "watch": a boolean, or "true"/"false".
	Watch   any `json:"watch"`
	Cgroups struct {
		Root string `json:"root"`
	} `json:"cgroups"`
	Metrics      json.RawMessage `json:"metrics"`
	HealthProbes json.RawMessage `json:"healthProbes"`
	// Telemetry is read by buildTelemetry.
	Telemetry json.RawMessage `json:"telemetry"`
	// Scheduler is read by buildScheduler.
	Scheduler json.RawMessage `json:"scheduler"`
	// ManagementAPI is Watt's "managementApi": a boolean, "true" or
	// "false" (a placeholder's value), or an object.
	ManagementAPI any `json:"managementApi"`
}

// rawResources is a "resources" object; sizes stay raw because they may be
// numbers or strings with units.
type rawResources struct {
	Memory     json.RawMessage `json:"memory"`
	MemoryHigh json.RawMessage `json:"memoryHigh"`
	CPUs       *json.Number    `json:"cpus"`
	Pids       *json.Number    `json:"pids"`
}

// rawApp is an application entry or an autoload mapping.
type rawApp struct {
	ID          string            `json:"id"`
	Path        string            `json:"path"`
	Enabled     json.RawMessage   `json:"enabled"`
	Workers     *rawWorkers       `json:"workers"`
	Env         map[string]string `json:"env"`
	Envfile     string            `json:"envfile"`
	NodeOptions string            `json:"nodeOptions"`
	Capability  string            `json:"capability"`
	Command     json.RawMessage   `json:"command"`
	ListenFDs   bool              `json:"listenFds"`
	// WorkerProtocol says the program speaks the worker protocol.
	WorkerProtocol bool `json:"workerProtocol"`
	// Standby is how many standby workers the application keeps.
	Standby *json.Number `json:"standby"`
	// ReuseTCPPorts matters on the entrypoint only: see Config.SharePort.
	ReuseTCPPorts *bool `json:"reuseTcpPorts"`
	// Dependencies names applications this one needs: started and built
	// before it.
	Dependencies []string `json:"dependencies"`
	// RestartOnError overrides the runtime's for this application.
	RestartOnError json.RawMessage `json:"restartOnError"`
	// Resources override the runtime's limits key by key.
	Resources *rawResources `json:"resources"`
	// Health overrides the runtime's health keys one by one.
	Health *rawHealth `json:"health"`
	// Config names the application's own configuration file.
	Config     string          `json:"config"`
	Preload    json.RawMessage `json:"preload"`
	ExecArgv   []string        `json:"execArgv"`
	Arguments  []string        `json:"arguments"`
	SourceMaps *bool           `json:"sourceMaps"`
	// CompileCache overrides the runtime's compileCache key by key.
	CompileCache json.RawMessage `json:"compileCache"`
	Permissions  *rawPermissions `json:"permissions"`
}

// rawPermissions is Watt's permissions: the file system paths an
// application's workers may read and write.
type rawPermissions struct {
	FS *struct {
		Read  []string `json:"read"`
		Write []string `json:"write"`
	} `json:"fs"`
}

type rawAutoload struct {
	Path     string            `json:"path"`
	Exclude  []string          `json:"exclude"`
	Mappings map[string]rawApp `json:"mappings"`
}

// rawWorkers is a worker count written either as a number or, as Watt
// allows, as an object whose "static" member is the count, with the
// dynamic scaler's settings beside it.
type rawWorkers struct {
	count  *json.Number
	object bool // written as an object: the count may change if the runtime is dynamic
	rawScale
}

type rawScale struct {
	Static       *json.Number `json:"static"`
	Dynamic      *bool        `json:"dynamic"`
	Minimum      *json.Number `json:"minimum"`
	Maximum      *json.Number `json:"maximum"`
	Total        *json.Number `json:"total"`
	Cooldown     *json.Number `json:"cooldown"`
	GracePeriod  *json.Number `json:"gracePeriod"`
	ScaleUpELU   *json.Number `json:"scaleUpELU"`
	ScaleDownELU *json.Number `json:"scaleDownELU"`
}

func (w *rawWorkers) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		w.count = &n
		return nil
	}
	if err := json.Unmarshal(b, &w.rawScale); err != nil {
		return fmt.Errorf("workers: %w", err)
	}
	w.count, w.object = w.Static, true
	return nil
}

// rawVertical is Watt's verticalScaler, which Watt folds into "workers"
// where that leaves a value unset.
type rawVertical struct {
	Enabled                *bool        `json:"enabled"`
	MaxTotalWorkers        *json.Number `json:"maxTotalWorkers"`
	MaxWorkers             *json.Number `json:"maxWorkers"`
	MinWorkers             *json.Number `json:"minWorkers"`
	ScaleUpELU             *json.Number `json:"scaleUpELU"`
	ScaleDownELU           *json.Number `json:"scaleDownELU"`
	TimeWindowSec          *json.Number `json:"timeWindowSec"`
	ScaleDownTimeWindowSec *json.Number `json:"scaleDownTimeWindowSec"`
	CooldownSec            *json.Number `json:"cooldownSec"`
	ScaleIntervalSec       *json.Number `json:"scaleIntervalSec"`
	GracePeriod            *json.Number `json:"gracePeriod"`
	Applications           map[string]struct {
		MinWorkers   *json.Number `json:"minWorkers"`
		MaxWorkers   *json.Number `json:"maxWorkers"`
		ScaleUpELU   *json.Number `json:"scaleUpELU"`
		ScaleDownELU *json.Number `json:"scaleDownELU"`
	} `json:"applications"`
}

// decodeRaw converts the validated tree; it cannot fail on a tree that
// passed the schema, short of a bug.
func decodeRaw(tree map[string]any) (*rawConfig, error) {
	b, err := json.Marshal(tree)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	var raw rawConfig
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &raw, nil
}

// appEntry is an application on its way into the Config, remembering where
// it came from so problems can point at it.
type appEntry struct {
	raw        rawApp
	id         string
	path       string // absolute
	ptr        string // the entry, or the autoload mapping it came from
	idPtr      string // where a wrong id is reported
	pathPtr    string // where a wrong path is reported
	autoloaded bool
}

// origin names the entry in messages about another one.
func (e appEntry) origin() string {
	if e.autoloaded {
		return "the application autoloaded from " + e.path
	}
	return "the application at " + e.ptr
}

func (l *loader) build(raw *rawConfig, runtimeEnv map[string]string) (*Config, []issue) {
	var problems []issue
	cfg := &Config{
		File:               l.file,
		Dir:                l.dir,
		Schema:             raw.Schema,
		Workers:            DefaultWorkers,
		Env:                runtimeEnv,
		Logger:             Logger{Level: DefaultLogLevel},
		Server:             Server{Hostname: DefaultHostname, Port: DefaultPort},
		StartTimeout:       l.ms("/startTimeout", raw.StartTimeout, DefaultStartTimeout),
		StartupConcurrency: intOr(raw.StartupConcurrency, 0),
		ApplicationTimeout: l.ms("/applicationTimeout", raw.ApplicationTimeout, DefaultApplicationTimeout),
		MessagingTimeout:   l.ms("/messagingTimeout", raw.MessagingTimeout, DefaultMessagingTimeout),
		GracefulShutdown: GracefulShutdown{
			Runtime:     l.ms("/gracefulShutdown/runtime", raw.GracefulShutdown.Runtime, DefaultRuntimeShutdown),
			Application: l.ms("/gracefulShutdown/application", raw.GracefulShutdown.Application, DefaultShutdownTimeout),
		},
		RestartOnError: l.restartOnError("/restartOnError", raw.RestartOnError),
		Restart: RestartPolicy{
			InitialDelay: l.ms("/restart/initialDelay", raw.Restart.InitialDelay, DefaultInitialDelay),
			MaxDelay:     l.ms("/restart/maxDelay", raw.Restart.MaxDelay, DefaultMaxDelay),
			ResetAfter:   l.ms("/restart/resetAfter", raw.Restart.ResetAfter, DefaultResetAfter),
			MaxRestarts:  intOr(raw.Restart.MaxRestarts, DefaultMaxRestarts),
		},
	}
	problems = append(problems, envIssues("/env", raw.Env)...)
	if raw.Watch != nil {
		on, ok := boolValue(raw.Watch)
		if !ok {
			problems = append(problems, issuef("/watch", "expected true or false, got %s", describeValue(raw.Watch)))
		}
		cfg.NoWatch = !on
	}
	cfg.ManagementAPI, problems = managementAPI(raw.ManagementAPI, cfg.Dir, problems)
	var preloadProblems []issue
	l.runtimePreload, preloadProblems = l.preloads(raw.Preload, "/preload")
	problems = append(problems, preloadProblems...)
	l.sourceMaps = raw.SourceMaps
	l.compileCache = parseCompileCache(raw.CompileCache)
	l.vertical = raw.Vertical
	if raw.Logger.Level != "" {
		cfg.Logger.Level = raw.Logger.Level
	}
	if r := raw.Logger.Redact; r != nil {
		cfg.Logger.Redact = &Redact{Paths: r.Paths, Censor: logs.DefaultCensor}
		if r.Censor != nil {
			cfg.Logger.Redact.Censor = *r.Censor
		}
		for i, p := range r.Paths {
			if _, err := logs.ParseRedactPath(p); err != nil {
				problems = append(problems, issuef(fmt.Sprintf("/logger/redact/paths/%d", i), "%q is not a redact path: %v", p, err))
			}
		}
	}
	if raw.Server.Hostname != nil {
		cfg.Server.Hostname = *raw.Server.Hostname
		// "" is every interface, as in Watt (an unset placeholder gives it).
		if msg := checkHostname(cfg.Server.Hostname); cfg.Server.Hostname != "" && msg != "" {
			problems = append(problems, issuef("/server/hostname", "%s", msg))
		}
	}
	cfg.Server.Port = intOr(raw.Server.Port, DefaultPort)
	if raw.Server.Port == nil {
		// Watt leaves the port to the entrypoint when the configuration
		// names none, and apps (Watt's generated ones too) listen on $PORT.
		// wattd binds the public socket before any worker starts, so it
		// takes $PORT itself.
		if p, err := strconv.Atoi(l.environ["PORT"]); err == nil && p > 0 && p <= 65535 {
			cfg.Server.Port = p
		}
	}
	cfg.Scaler = l.runtimeScaler(raw.Workers, raw.Vertical)
	if raw.Workers != nil && raw.Workers.count != nil {
		cfg.Workers = intOr(raw.Workers.count, DefaultWorkers)
		if msg := checkWorkers(cfg.Workers); msg != "" {
			problems = append(problems, issuef("/workers", "%s", msg))
		}
	} else if cfg.Scaler.Dynamic {
		cfg.Workers = cfg.Scaler.Minimum // Watt's "static" defaults to the minimum
	}
	if msg := checkRestartPolicy(cfg.Restart); msg != "" {
		problems = append(problems, issuef("/restart/maxDelay", "%s", msg))
	}
	cfg.Resources, cfg.Cgroups.Root = Resources{}, raw.Cgroups.Root
	if raw.Resources != nil {
		var resProblems []issue
		cfg.Resources, resProblems = resolveResources(Resources{}, raw.Resources, "/resources")
		problems = append(problems, resProblems...)
	}
	if msg := checkCgroupRoot(raw.Cgroups.Root); msg != "" {
		problems = append(problems, issuef("/cgroups/root", "%s", msg))
	}
	var metricsProblems, metricsWarnings []issue
	cfg.Metrics, metricsProblems, metricsWarnings = buildMetrics(raw.Metrics, func(p string) string { return l.resolve(l.dir, p) })
	problems = append(problems, metricsProblems...)
	l.warnings = append(l.warnings, metricsWarnings...)
	var probesProblems []issue
	cfg.Probes, probesProblems = buildHealthProbes(raw.HealthProbes, &cfg.Metrics)
	problems = append(problems, probesProblems...)
	var telemetryProblems, telemetryWarnings []issue
	cfg.Telemetry, telemetryProblems, telemetryWarnings = l.buildTelemetry(raw.Telemetry)
	problems = append(problems, telemetryProblems...)
	l.warnings = append(l.warnings, telemetryWarnings...)
	var schedulerProblems []issue
	cfg.Scheduler, schedulerProblems = buildScheduler(raw.Scheduler)
	problems = append(problems, schedulerProblems...)
	var requestIDProblems []issue
	cfg.Logger.RequestID, requestIDProblems = buildRequestID(raw.Logger.RequestID, cfg.Telemetry.Enabled)
	problems = append(problems, requestIDProblems...)
	if e := raw.Logger.OpenTelemetryExporter; e != nil {
		// As in Watt: exported under telemetry's service name, so only
		// while telemetry is on.
		if msg := checkHTTPURL(e.URL); msg != "" {
			problems = append(problems, issuef("/logger/openTelemetryExporter/url", "%s", msg))
		} else if !cfg.Telemetry.Enabled {
			l.warnings = append(l.warnings, issuef("/logger/openTelemetryExporter", "log entries are exported only while \"telemetry\" is on (its applicationName is their service.name), as in Watt; none will be"))
		} else {
			cfg.Logger.Export = &LogExport{Protocol: e.Protocol, URL: e.URL, ServiceName: cfg.Telemetry.ApplicationName, Version: cfg.Telemetry.Version}
		}
	}
	var healthProblems []issue
	cfg.Health, healthProblems = l.overlayHealth(DefaultHealth(), raw.Health, "/health")
	problems = append(problems, healthProblems...)

	entries := l.explicitEntries(raw, &problems)
	if raw.Autoload != nil {
		auto, autoProblems := l.autoload(raw.Autoload, entries)
		problems = append(problems, autoProblems...)
		entries = append(entries, auto...)
	}
	problems = append(problems, checkUniqueIDs(entries)...)

	var ids, disabled []string
	for _, e := range entries {
		on, warning := enabledIn(e.raw.Enabled, l.environment, e.ptr+"/enabled")
		if warning != nil {
			l.warnings = append(l.warnings, *warning)
		}
		if !on {
			disabled = append(disabled, e.id)
			continue
		}
		ids = append(ids, e.id)
		app, appProblems, blocked := l.application(e, cfg)
		problems = append(problems, appProblems...)
		if len(appProblems) == 0 && e.path != "" && !blocked {
			problems = append(problems, l.checkApp(e, app)...)
		}
		cfg.Applications = append(cfg.Applications, app)
	}

	l.scalerWarnings(raw, entries, cfg)

	var gateways []string
	for _, a := range cfg.Applications {
		if a.Module == "@platformatic/gateway" || a.Module == "@platformatic/composer" {
			gateways = append(gateways, a.ID)
		}
	}
	entrypoint, msg := resolveEntrypoint(raw.Entrypoint, ids, disabled, gateways)
	cfg.SharePort = sharePort(raw.ReuseTCPPorts, entries, entrypoint)
	// With no application left, the problems above already say why.
	if msg != "" && (len(ids) > 0 || len(problems) == 0) {
		ptr := ""
		if raw.Entrypoint != "" {
			ptr = "/entrypoint"
		}
		problems = append(problems, issuef(ptr, "%s", msg))
	}
	cfg.Entrypoint = entrypoint
	cfg.Disabled = disabled
	for i := range cfg.Applications {
		cfg.Applications[i].Entrypoint = cfg.Applications[i].ID == entrypoint
	}
	problems = append(problems, checkDependencies(cfg.Applications, disabled)...)
	problems = append(problems, l.durationProblems...)
	return cfg, problems
}

// sharePort decides whether the entrypoint's port may be shared with other
// programs: only when watt.json says true, at the runtime level or on the
// entrypoint's entry, and neither says false. Watt's default is true, but
// for Watt the flag only decides whether its own workers share the port;
// wattd's workers always do, and an unrelated program joining the group
// would silently take part of the traffic, so wattd asks for it explicitly.
func sharePort(runtime *bool, entries []appEntry, entrypoint string) bool {
	vals := []*bool{runtime}
	for _, e := range entries {
		if e.id == entrypoint {
			vals = append(vals, e.raw.ReuseTCPPorts)
		}
	}
	share := false
	for _, v := range vals {
		if v == nil {
			continue
		}
		if !*v {
			return false
		}
		share = true
	}
	return share
}

// explicitEntries lists "applications", then the "services" and "web"
// aliases, which Watt 3 appends in that order.
func (l *loader) explicitEntries(raw *rawConfig, problems *[]issue) []appEntry {
	var entries []appEntry
	lists := []struct {
		key  string
		apps []rawApp
	}{{"applications", raw.Applications}, {"services", raw.Services}, {"web", raw.Web}}
	for _, list := range lists {
		for i, app := range list.apps {
			ptr := fmt.Sprintf("/%s/%d", list.key, i)
			e := appEntry{raw: app, id: app.ID, ptr: ptr, idPtr: ptr + "/id", pathPtr: ptr + "/path"}
			switch {
			case app.Path == "" && slices.Contains(l.rejected, e.pathPtr):
				// Written but rejected ("path": ""): the schema's
				// problem says so; the key is not missing.
			case app.Path == "":
				msg := `missing required key "path"`
				if l.warnedAbout(ptr + "/url") {
					msg += `; wattd runs local applications only, so "url" cannot replace it`
				}
				*problems = append(*problems, issuef(ptr, "%s", msg))
			default:
				e.path = l.resolve(l.dir, app.Path)
			}
			if msg := checkAppID(app.ID); msg != "" {
				*problems = append(*problems, issuef(e.idPtr, "invalid application id %q: %s", app.ID, msg))
			}
			entries = append(entries, e)
		}
	}
	return entries
}

func (l *loader) warnedAbout(ptr string) bool {
	return slices.ContainsFunc(l.warnings, func(w issue) bool { return w.ptr == ptr })
}

// application completes one enabled entry.
func (l *loader) application(e appEntry, cfg *Config) (Application, []issue, bool) {
	var problems []issue
	app := Application{
		ID:             e.id,
		Path:           e.path,
		Workers:        cfg.Workers,
		NodeOptions:    e.raw.NodeOptions,
		Capability:     e.raw.Capability,
		Dependencies:   e.raw.Dependencies,
		ListenFDs:      e.raw.ListenFDs,
		WorkerProtocol: e.raw.WorkerProtocol,
		Pointer:        e.ptr,
		Resources:      cfg.Resources,
	}
	if len(e.raw.RestartOnError) > 0 {
		r := l.restartOnError(e.ptr+"/restartOnError", e.raw.RestartOnError)
		app.RestartOnError = &r
	}
	if e.raw.Resources != nil {
		var resProblems []issue
		app.Resources, resProblems = resolveResources(cfg.Resources, e.raw.Resources, e.ptr+"/resources")
		problems = append(problems, resProblems...)
	}
	if len(e.raw.Command) > 0 {
		// The schema allows a string or an array of strings.
		if json.Unmarshal(e.raw.Command, &app.Command) != nil {
			_ = json.Unmarshal(e.raw.Command, &app.CommandLine)
		}
	}
	dirOK := e.path != ""
	if dirOK {
		if msg := checkAppDir(e.path); msg != "" {
			problems = append(problems, issuef(e.pathPtr, "%s", msg))
			dirOK = false
		}
	}
	if e.raw.Workers != nil {
		app.Workers = intOr(e.raw.Workers.count, cfg.Workers)
		if msg := checkWorkers(app.Workers); msg != "" {
			problems = append(problems, issuef(e.ptr+"/workers", "%s", msg))
		}
	}
	if e.raw.Standby != nil {
		n, msg := checkStandby(e.raw.Standby)
		if msg != "" {
			problems = append(problems, issuef(e.ptr+"/standby", "%s", msg))
		}
		app.Standby = n
	}
	app.Scale = l.appScale(cfg.Scaler, e)
	if app.Scale.Dynamic && (e.raw.Workers == nil || e.raw.Workers.count == nil) {
		app.Workers = min(max(app.Workers, app.Scale.Minimum), app.Scale.Maximum)
	}

	// Watt 3 loads an application's envfile relative to the runtime's
	// configuration, the file that names it, and its .env by default.
	var fileVars map[string]string
	if e.raw.Envfile != "" {
		vars, warns, err := readDotenv(l.resolve(l.dir, e.raw.Envfile), true, e.ptr+"/envfile")
		l.foreignWarnings = append(l.foreignWarnings, warns...)
		if err != nil {
			problems = append(problems, l.absorb(err)...)
		}
		fileVars = vars
	} else if dirOK {
		vars, warns, err := readDotenv(filepath.Join(e.path, ".env"), false, "")
		l.foreignWarnings = append(l.foreignWarnings, warns...)
		if err != nil {
			l.foreign = append(l.foreign, err)
		}
		fileVars = vars
	}
	problems = append(problems, envIssues(e.ptr+"/env", e.raw.Env)...)
	app.Env = layered(e.raw.Env, l.withoutProcessEnv(fileVars), cfg.Env)
	var healthProblems []issue
	app.Health, healthProblems = l.overlayHealth(cfg.Health, e.raw.Health, e.ptr+"/health")
	problems = append(problems, healthProblems...)

	appPreload, preloadProblems := l.preloads(e.raw.Preload, e.ptr+"/preload")
	problems = append(problems, preloadProblems...)
	app.Watt.Preload = append(slices.Clone(l.runtimePreload), appPreload...)
	app.Watt.ExecArgv = slices.Clone(e.raw.ExecArgv)
	app.Watt.Arguments = slices.Clone(e.raw.Arguments)
	sourceMaps := l.sourceMaps
	if e.raw.SourceMaps != nil {
		sourceMaps = e.raw.SourceMaps
	}
	app.Watt.SourceMaps = sourceMaps != nil && *sourceMaps
	app.Watt.Permissions = permissions(e.raw.Permissions, e.path)
	app.CompileCache = compileCacheDir(l.compileCache.with(parseCompileCache(e.raw.CompileCache)), e.path)
	blocked := false
	if dirOK {
		var more []issue
		more, blocked = l.readAppConfig(e, &app)
		problems = append(problems, more...)
	}
	return app, problems, blocked
}

// permissions resolves an application's permissions.fs paths as Watt
// does: a relative one is joined to the application's directory.
func permissions(p *rawPermissions, dir string) capabilities.Permissions {
	if p == nil || p.FS == nil {
		return capabilities.Permissions{}
	}
	abs := func(list []string) []string {
		var out []string
		for _, s := range list {
			if !filepath.IsAbs(s) {
				s = filepath.Join(dir, s)
			}
			out = append(out, s)
		}
		return out
	}
	return capabilities.Permissions{Read: abs(p.FS.Read), Write: abs(p.FS.Write)}
}

// checkApp runs the caller's AppCheck on an application whose entry is
// otherwise sound: a value set aside, say a misspelt capability, would
// make the check report a consequence rather than a cause.
func (l *loader) checkApp(e appEntry, app Application) []issue {
	if l.check == nil || l.echoes(e.ptr) || slices.ContainsFunc(l.rejected, func(r string) bool { return strings.HasPrefix(r, e.ptr+"/") }) {
		return nil
	}
	key, err := l.check(app)
	if err == nil {
		return nil
	}
	if f := l.appFiles[app.ID]; f != nil {
		if ptr, ok := f.keys[key]; ok {
			// A key of the application's own file: reported there.
			l.foreign = append(l.foreign, &Error{File: f.path, Pointer: ptr, Line: f.doc.lineOf(ptr), Message: err.Error(), Err: err})
			return nil
		}
		if len(f.errs) > 0 {
			// Anything else may only repeat the file's own problems (a
			// value it set wrong is left unset).
			return nil
		}
	}
	ptr := e.ptr
	switch {
	case key == "path" || e.autoloaded && (key == "" || e.ptr == e.pathPtr):
		ptr = e.pathPtr
	case key != "": // an explicit entry's key, or its autoload mapping's
		ptr = childPointer(e.ptr, key)
	}
	return []issue{{ptr: ptr, msg: err.Error(), err: err}}
}

// runtimeScaler resolves the dynamic scaler's settings as Watt does:
// "workers" first, then "verticalScaler", then the defaults.
func (l *loader) runtimeScaler(w *rawWorkers, v *rawVertical) Scaler {
	var ws rawScale
	if w != nil {
		ws = w.rawScale
	}
	var vs rawVertical
	if v != nil {
		vs = *v
	}
	sc := Scaler{
		Total:               intOr(firstNumber(ws.Total, vs.MaxTotalWorkers), runtime.NumCPU()),
		Minimum:             intOr(firstNumber(ws.Minimum, vs.MinWorkers), 1),
		ScaleUpELU:          floatOr(firstNumber(ws.ScaleUpELU, vs.ScaleUpELU), DefaultScaleUpELU),
		ScaleDownELU:        floatOr(firstNumber(ws.ScaleDownELU, vs.ScaleDownELU), DefaultScaleDownELU),
		TimeWindow:          l.sec("/verticalScaler/timeWindowSec", vs.TimeWindowSec, DefaultScaleTimeWindow),
		ScaleDownTimeWindow: l.sec("/verticalScaler/scaleDownTimeWindowSec", vs.ScaleDownTimeWindowSec, DefaultScaleDownTimeWindow),
		Cooldown:            l.ms("/workers/cooldown", ws.Cooldown, l.sec("/verticalScaler/cooldownSec", vs.CooldownSec, DefaultScaleCooldown)),
		ScaleInterval:       l.sec("/verticalScaler/scaleIntervalSec", vs.ScaleIntervalSec, DefaultScaleInterval),
		GracePeriod:         l.ms("/workers/gracePeriod", ws.GracePeriod, l.ms("/verticalScaler/gracePeriod", vs.GracePeriod, DefaultScaleGracePeriod)),
	}
	sc.Maximum = intOr(firstNumber(ws.Maximum, vs.MaxWorkers, vs.MaxTotalWorkers), sc.Total)
	switch {
	case ws.Dynamic != nil:
		sc.Dynamic = *ws.Dynamic
	case v != nil:
		// Watt's schema defaults verticalScaler.enabled to true: the block
		// alone turns the scaler on.
		sc.Dynamic = vs.Enabled == nil || *vs.Enabled
	}
	if sc.Maximum < sc.Minimum {
		sc.Minimum, sc.Maximum = sc.Maximum, sc.Minimum // as Watt
	}
	return sc
}

// scalerWarnings warns about dynamic-worker bounds the scaler takes but
// cannot honour: a total below what the applications' minimums (and fixed
// counts) add up to, which holds every application at its minimum, and a
// scaleUpELU not above scaleDownELU, which has the scaler add a worker and
// take it away again.
func (l *loader) scalerWarnings(raw *rawConfig, entries []appEntry, cfg *Config) {
	if !cfg.Scaler.Dynamic {
		return
	}
	var ws rawScale
	if raw.Workers != nil {
		ws = raw.Workers.rawScale
	}
	var vs rawVertical
	if raw.Vertical != nil {
		vs = *raw.Vertical
	}
	// written is the pointer of the first key set, by pairs of pointer and
	// value.
	written := func(keys map[string]*json.Number, order ...string) string {
		for _, ptr := range order {
			if keys[ptr] != nil {
				return ptr
			}
		}
		return ""
	}
	keys := map[string]*json.Number{
		"/workers/total": ws.Total, "/verticalScaler/maxTotalWorkers": vs.MaxTotalWorkers,
		"/workers/scaleUpELU": ws.ScaleUpELU, "/verticalScaler/scaleUpELU": vs.ScaleUpELU,
		"/workers/scaleDownELU": ws.ScaleDownELU, "/verticalScaler/scaleDownELU": vs.ScaleDownELU,
	}
	if ptr := written(keys, "/workers/total", "/verticalScaler/maxTotalWorkers"); ptr != "" {
		sum := 0
		for _, a := range cfg.Applications {
			if a.Scale.Dynamic {
				sum += a.Scale.Minimum
			} else {
				sum += a.Workers
			}
		}
		if sum >= cfg.Scaler.Total {
			// The scaler adds a worker only while the runtime has fewer
			// than total, every application's workers counted.
			l.warnings = append(l.warnings, issuef(ptr, "total %d leaves no room above the %d workers the applications' minimums (and fixed counts) add up to: the scaler never adds a worker", cfg.Scaler.Total, sum))
		}
	}
	const flapping = "scaleUpELU %g is not above scaleDownELU %g: the scaler would add a worker and take it away again"
	up, down := cfg.Scaler.ScaleUpELU, cfg.Scaler.ScaleDownELU
	if up <= down {
		ptr := written(keys, "/workers/scaleUpELU", "/verticalScaler/scaleUpELU", "/workers/scaleDownELU", "/verticalScaler/scaleDownELU")
		l.warnings = append(l.warnings, issuef(ptr, flapping, up, down))
	}
	ptrs := map[string]string{}
	for _, e := range entries {
		ptrs[e.id] = e.ptr
	}
	for _, a := range cfg.Applications {
		sc := a.Scale
		if !sc.Dynamic || sc.ScaleUpELU > sc.ScaleDownELU || sc.ScaleUpELU == up && sc.ScaleDownELU == down {
			continue // the runtime's values are warned about above
		}
		ptr := ptrs[a.ID]
		if ptr != "/autoload/path" {
			ptr = childPointer(ptr, "workers")
		}
		l.warnings = append(l.warnings, issuef(ptr, "application %q: "+flapping, a.ID, sc.ScaleUpELU, sc.ScaleDownELU))
	}
}

// appScale is one application's dynamic scaling: its workers object, then
// its verticalScaler.applications entry, then the runtime's. A worker
// count given as a number stays fixed, as in Watt; a fixed application
// has the zero Scale.
func (l *loader) appScale(rt Scaler, e appEntry) Scale {
	if !rt.Dynamic || e.raw.Workers != nil && !e.raw.Workers.object {
		return Scale{}
	}
	var ws rawScale
	if e.raw.Workers != nil {
		ws = e.raw.Workers.rawScale
	}
	var va struct{ min, max, up, down *json.Number }
	if v := l.vertical; v != nil {
		if a, ok := v.Applications[e.id]; ok {
			va.min, va.max, va.up, va.down = a.MinWorkers, a.MaxWorkers, a.ScaleUpELU, a.ScaleDownELU
		}
	}
	sc := Scale{
		Dynamic:      true,
		Minimum:      intOr(firstNumber(ws.Minimum, va.min), rt.Minimum),
		Maximum:      intOr(firstNumber(ws.Maximum, va.max), rt.Maximum),
		ScaleUpELU:   floatOr(firstNumber(ws.ScaleUpELU, va.up), rt.ScaleUpELU),
		ScaleDownELU: floatOr(firstNumber(ws.ScaleDownELU, va.down), rt.ScaleDownELU),
	}
	if sc.Maximum < sc.Minimum {
		sc.Minimum, sc.Maximum = sc.Maximum, sc.Minimum
	}
	return sc
}

func firstNumber(ns ...*json.Number) *json.Number {
	for _, n := range ns {
		if n != nil {
			return n
		}
	}
	return nil
}

// restartOnError reads Watt's boolean-or-milliseconds form at ptr.
func (l *loader) restartOnError(ptr string, raw json.RawMessage) RestartOnError {
	var on bool
	if len(raw) == 0 || json.Unmarshal(raw, &on) == nil {
		if len(raw) == 0 || on {
			return RestartOnError{Enabled: true, Delay: DefaultRestartDelay}
		}
		return RestartOnError{}
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return RestartOnError{Enabled: true, Delay: DefaultRestartDelay}
	}
	d := l.ms(ptr, &n, 0)
	switch {
	case d <= 0:
		return RestartOnError{}
	case d < immediateRestartBelow:
		return RestartOnError{Enabled: true}
	}
	return RestartOnError{Enabled: true, Delay: d}
}

// ms converts the number of milliseconds at ptr, rounding to the
// nanosecond, or returns def when there is none; see duration.
func (l *loader) ms(ptr string, n *json.Number, def time.Duration) time.Duration {
	return l.duration(ptr, n, time.Millisecond, def)
}

// sec converts the number of seconds at ptr (verticalScaler's *Sec keys).
func (l *loader) sec(ptr string, n *json.Number, def time.Duration) time.Duration {
	return l.duration(ptr, n, time.Second, def)
}

// duration converts n units, or returns def for none. The schema bounds
// every duration key; a value it let through that time.Duration cannot
// hold is still a problem at ptr, never a wrapped negative duration (a
// cooldown of 1e20 ms read as none at all).
func (l *loader) duration(ptr string, n *json.Number, unit, def time.Duration) time.Duration {
	d, err := unitDuration(n, unit, def)
	if err != nil {
		l.durationProblems = append(l.durationProblems, issuef(ptr, "%s", err))
		return def
	}
	return d
}

// unitDuration converts n units, or returns def for none; it refuses a
// value that is not a number from 0 to what time.Duration holds (about
// 292 years).
func unitDuration(n *json.Number, unit, def time.Duration) (time.Duration, error) {
	if n == nil {
		return def, nil
	}
	f, err := n.Float64()
	d := math.Round(f * float64(unit))
	// float64(math.MaxInt64) is 2^63, one past the largest Duration.
	if err != nil || !(d >= 0 && d < float64(math.MaxInt64)) {
		return def, fmt.Errorf("expected a duration from 0 to about 292 years, got %s", n)
	}
	return time.Duration(d), nil
}

func intOr(n *json.Number, def int) int {
	if n == nil {
		return def
	}
	f, err := n.Float64()
	if err != nil {
		return def
	}
	return int(f)
}

// knownIDs lists ids for messages.
func knownIDs(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// envIssues rejects the variables of an env block at ptr that no process
// environment can hold: a name that is empty or has "=" or a NUL byte in
// it, a value with a NUL byte. A worker is a process, so "A=B": "x" would
// reach it as A set to "B=x", and a NUL byte would fail every start.
func envIssues(ptr string, env map[string]string) []issue {
	var out []issue
	for _, k := range sortedKeys(env) {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			out = append(out, issuef(childPointer(ptr, k), "invalid environment variable name %q: expected a non-empty name without \"=\" or NUL bytes", k))
		case strings.ContainsRune(env[k], 0):
			out = append(out, issuef(childPointer(ptr, k), "the value of %s contains a NUL byte, which no process environment can hold", k))
		}
	}
	return out
}

// managementAPI reads Watt's "managementApi": on unless false, "false" or
// "" (an unset placeholder); an object turns it on, its "socket" (relative
// to dir) moving the socket.
func managementAPI(v any, dir string, problems []issue) (ManagementAPI, []issue) {
	m := ManagementAPI{Enabled: true}
	switch c := v.(type) {
	case nil:
	case map[string]any:
		if sock, ok := c["socket"].(string); ok && sock != "" {
			if !filepath.IsAbs(sock) {
				sock = filepath.Join(dir, sock)
			}
			m.Socket = sock
		}
	default:
		if str, ok := c.(string); ok && strings.TrimSpace(str) == "" {
			m.Enabled = false
			break
		}
		on, ok := boolValue(v)
		if !ok {
			problems = append(problems, issuef("/managementApi", "expected true, false or an object, got %s", describeValue(v)))
		}
		m.Enabled = on
	}
	return m, problems
}
