package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wattd/wattd/capabilities"
)

// Config is a loaded, validated watt.json with defaults applied, paths made
// absolute and durations converted.
type Config struct {
	File         string        // absolute path of the configuration file
	Dir          string        // absolute directory of the configuration file; relative paths resolve against it
	Schema       string        // the $schema value, informational
	Entrypoint   string        // id of the application that receives public traffic
	Applications []Application // explicit entries in file order (applications, then services, then web), then autoloaded ones by directory name; disabled ones left out
	Workers      int           // default worker count per application
	// Disabled are the ids of the applications turned off ("enabled":
	// false, or not for this environment), so that a call to one can say
	// so rather than call it unknown.
	Disabled []string
	// Scaler is the dynamic scaler's runtime-wide settings: the runtime's
	// "workers" object and Watt's older "verticalScaler".
	Scaler Scaler
	Server Server
	// SharePort allows other programs to listen on the entrypoint's port
	// with SO_REUSEPORT beside wattd's workers (watt.json's reuseTcpPorts
	// set to true). Otherwise wattd refuses to start while a socket it
	// does not own listens there.
	SharePort bool
	Logger    Logger
	// Env is given to every application: the project's .env and the
	// runtime envfile (only the variables the process environment does not
	// set), then the runtime env block, later ones winning; plus NODE_ENV
	// (unless set), PLT_ENVIRONMENT and PLT_DEV when Options.Environment
	// is given.
	Env              map[string]string
	RestartOnError   RestartOnError
	GracefulShutdown GracefulShutdown
	StartTimeout     time.Duration // how long an application gets to become ready
	// StartupConcurrency is how many workers may be starting at once
	// (Watt's startupConcurrency); 0 leaves the choice to the runtime:
	// twice the CPUs wattd may use.
	StartupConcurrency int
	// ApplicationTimeout bounds one request between applications on the
	// mesh; 0 means no limit.
	ApplicationTimeout time.Duration
	// MessagingTimeout bounds one messaging.send between applications,
	// from the send to its reply (Watt's key of the same name).
	MessagingTimeout time.Duration
	Restart          RestartPolicy // wattd extension, key "restart"
	// Resources are the runtime-wide worker limits (key "resources"),
	// already folded into each Application's; kept for reports.
	Resources Resources
	Cgroups   Cgroups // wattd extension, key "cgroups"
	// Telemetry is the "telemetry" key: tracing, exported by wattd.
	Telemetry Telemetry
	// Scheduler are the enabled jobs of Watt's "scheduler".
	Scheduler []SchedulerJob
	// Health is the runtime's "health" block over Watt's defaults; each
	// application's Health is what applies to it.
	Health  Health
	Metrics Metrics // key "metrics": the Prometheus endpoint and probes
	// Probes, when set, is a server of the probes' own (Watt's
	// "healthProbes" at an address other than the metrics server's).
	Probes   *ProbesServer
	Warnings []string // Watt options ignored, old names used, and the like
	// NoWatch is Watt's "watch": false: wattd dev restarts nothing on
	// change.
	NoWatch bool
	// ManagementAPI is Watt's "managementApi": the socket wattpm finds
	// running runtimes by (on by default, as in Watt).
	ManagementAPI ManagementAPI
	// Sources are the project's files the configuration is read from: the
	// configuration file, the .env files looked for beside it and in the
	// project directory (whether or not they exist: one created counts),
	// or the --env file, and the runtime envfile. Applications' own
	// files are not in it. wattd dev reloads when one changes.
	Sources []string `json:"-"`
	// Resolved is the configuration file's JSON with its placeholders
	// replaced and the Watt options wattd ignores left out; secrets are
	// in it as written.
	Resolved json.RawMessage `json:"-"`
	// lifts is set when File is a single application's configuration:
	// where its runtime settings are in it (see Pointer).
	lifts map[string][]string
	// lines is the line of each value of File, by JSON pointer; nil when
	// its format does not say (see Problem).
	lines map[string]int
}

// Application is one application of the runtime.
type Application struct {
	ID   string // unique; a DNS label, reachable as <ID>.plt.local on the mesh
	Path string // absolute application directory
	// Workers is the application's own value or the runtime default: the
	// count at start, and always unless Scale.Dynamic.
	Workers int
	// Scale is how the dynamic scaler treats the application.
	Scale Scale
	// Env is the runtime Env, then the application's envfile (or its
	// directory's .env; only variables the process environment does not
	// set), then its env block, later ones winning.
	Env         map[string]string
	Entrypoint  bool
	NodeOptions string // appended to NODE_OPTIONS
	// Capability names the launcher explicitly ("node", "next", "command",
	// …); empty means detect it from the application's files.
	Capability string
	// Command is the start command of a "command" application, given as
	// an array; CommandLine is the same given as one string, to be split
	// like a shell would by the capability.
	Command     []string
	CommandLine string
	// ListenFDs says a "command" application takes its sockets by the
	// LISTEN_FDS convention; otherwise it listens on $PORT and wattd
	// forwards to it.
	ListenFDs bool
	// WorkerProtocol says the application's program always speaks the
	// worker protocol: it is ready on its ready message, never taken for
	// a program that does not speak it when its hello is slow to come (the
	// 1 s rule for command and Go programs).
	WorkerProtocol bool
	// Standby is how many standby workers the application keeps (a wattd
	// key): processes past their module loading that take the slot of a
	// worker that died at once. 0, the default, keeps none.
	Standby int
	// Dependencies are the ids of applications this one needs (Watt's
	// "dependencies"): its workers start once theirs are ready, and
	// `wattd build` builds them first.
	Dependencies []string
	// RestartOnError is the entry's own restartOnError; nil means the
	// runtime's applies, as in Watt.
	RestartOnError *RestartOnError
	// Resources are the limits of each of the application's workers: the
	// runtime's "resources", each key overridden by the application's.
	Resources Resources
	// Health is the runtime's health block overridden by the entry's own.
	Health Health
	// Pointer is the JSON pointer of the entry (or autoload mapping) the
	// application came from, for messages about it.
	Pointer string
	// Watch is the application's own "watch" (its watt.json): what wattd
	// dev's restart on change looks at.
	Watch Watch
	// Watt is Watt's application model: node.*, application.* from the
	// application's own watt.json (or platformatic.json), and the entry's
	// preload, execArgv, arguments and basePath.
	Watt capabilities.WattApp
	// Module is the Watt capability package the application's own config
	// names in $schema or "module" (e.g. "@platformatic/node"), "" if none.
	Module string
	// CompileCache is the absolute directory of the application's Node.js
	// module compile cache (Watt's "compileCache": the runtime's, each key
	// overridden by the entry's), or "" when it is off.
	CompileCache string
	// LogLevel is logger.level of the application's own configuration:
	// its lines below it are not logged. "" means the runtime's level.
	LogLevel string
}

// Scaler configures the dynamic scaler (Watt's workers object and
// verticalScaler), which adds and removes workers of the applications
// whose Scale.Dynamic is set, by their event-loop utilisation.
type Scaler struct {
	Dynamic bool // any application scales
	// Total bounds the workers of every application together.
	Total int
	// Minimum, Maximum, ScaleUpELU and ScaleDownELU are the defaults of
	// each application's Scale.
	Minimum, Maximum         int
	ScaleUpELU, ScaleDownELU float64
	// TimeWindow and ScaleDownTimeWindow are the spans of ELU reports
	// averaged for a scale up and for a scale down.
	TimeWindow, ScaleDownTimeWindow time.Duration
	// Cooldown is the pause after a scaling, ScaleInterval the period of the
	// regular checks (a worker above ScaleUpELU triggers one at once), and
	// GracePeriod how long a new worker's reports are not counted.
	Cooldown, ScaleInterval, GracePeriod time.Duration
}

// Scale is one application's dynamic scaling.
type Scale struct {
	Dynamic                  bool // false: the worker count stays Workers
	Minimum, Maximum         int
	ScaleUpELU, ScaleDownELU float64
}

// Server is where the entrypoint listens.
type Server struct {
	Hostname string // a host name or an IP address; IPv6 without brackets; "" for every interface
	Port     int    // 0 lets the kernel choose
}

// Logger configures the runtime logger.
type Logger struct {
	Level string // trace, debug, info, warn, error, fatal or silent
	// RequestID is wattd's "requestId" extension; on with tracing.
	RequestID RequestID
	// Redact masks values in every log line; nil masks nothing.
	Redact *Redact
	// Export, Watt's "openTelemetryExporter", sends every log entry to an
	// OTLP logs endpoint too; nil sends none.
	Export *LogExport
}

// LogExport is where log entries go over OTLP: Protocol "http" (protobuf
// POSTed to URL, used as written) or "grpc" (URL names the collector).
type LogExport struct {
	Protocol string
	URL      string
	// ServiceName and Version are the entries' service.name and
	// service.version: telemetry's applicationName and version, as in Watt.
	ServiceName string
	Version     string
}

// Redact is Watt's logger.redact: pino's paths, and what replaces the
// values there.
type Redact struct {
	Paths  []string
	Censor string // "[redacted]" when the configuration names none
}

// RestartOnError is Watt's restartOnError: whether a crashed application is
// restarted and after how long.
type RestartOnError struct {
	Enabled bool
	Delay   time.Duration
}

// GracefulShutdown bounds how long stopping may take.
type GracefulShutdown struct {
	Runtime     time.Duration // the whole runtime
	Application time.Duration // one application
}

// Resources are one worker's limits (wattd's "resources" key); zero means
// no limit. The fields match cgroups.Limits, so one converts to the other.
type Resources struct {
	Memory     int64   // bytes
	MemoryHigh int64   // bytes
	CPUs       float64 // CPUs
	Pids       int64   // processes and threads
}

// Cgroups configures where worker cgroups are made (wattd's "cgroups" key).
type Cgroups struct {
	// Root is an absolute cgroup directory; empty picks the default (see
	// docs/resources.md).
	Root string
}

// ManagementAPI is whether wattd serves Watt's management API, and where.
type ManagementAPI struct {
	Enabled bool
	// Socket is the socket's absolute path; "" for Watt's place,
	// TMPDIR/platformatic/runtimes/PID/socket.
	Socket string
}

// RestartPolicy is the crash-loop back-off, configured with the wattd-only
// "restart" key: after a crash the delay starts at InitialDelay and doubles
// up to MaxDelay; a worker that stays up for ResetAfter resets the count;
// after MaxRestarts consecutive unstable restarts the application is
// marked failed (0: never).
type RestartPolicy struct {
	InitialDelay time.Duration
	MaxDelay     time.Duration
	ResetAfter   time.Duration
	MaxRestarts  int
}

// Defaults. Watt's are taken from its runtime schema and documentation;
// the restart policy is wattd's own.
const (
	DefaultWorkers = 1
	// The dynamic scaler's defaults, as Watt's.
	DefaultScaleUpELU          = 0.8
	DefaultScaleDownELU        = 0.2
	DefaultScaleTimeWindow     = 10 * time.Second
	DefaultScaleDownTimeWindow = 60 * time.Second
	DefaultScaleCooldown       = 60 * time.Second
	DefaultScaleInterval       = 60 * time.Second
	DefaultScaleGracePeriod    = 30 * time.Second
	MaxWorkers                 = 512
	// MaxStandby bounds an application's standby workers: each is one
	// more full process, and more than a few only costs memory.
	MaxStandby = 16
	// DefaultHostname "" listens on every interface, as Watt (and Node.js's
	// listen() without a host) does: IPv6 and IPv4 where the machine has
	// IPv6, else IPv4.
	DefaultHostname = ""
	DefaultPort     = 3042
	DefaultLogLevel = "info"
	// DefaultRestartDelay is 0, where Watt waits 5000 ms: a wattd worker
	// slot keeps its socket while the worker is down, so connections the
	// kernel hashes to that slot wait for the replacement; a healthy worker
	// that crashes once must be back at once. Consecutive crashes still
	// back off (RestartPolicy). A number in restartOnError sets the delay.
	DefaultRestartDelay = 0
	// DefaultShutdownTimeout bounds one application's drain and
	// DefaultRuntimeShutdown the whole stop, Watt 3's defaults
	// (gracefulShutdown.application and .runtime).
	DefaultShutdownTimeout    = 10 * time.Second
	DefaultRuntimeShutdown    = 30 * time.Second
	DefaultStartTimeout       = 30 * time.Second
	DefaultApplicationTimeout = 300 * time.Second
	DefaultMessagingTimeout   = 30 * time.Second // as Watt
	DefaultInitialDelay       = 100 * time.Millisecond
	DefaultMaxDelay           = 10 * time.Second
	DefaultResetAfter         = time.Second
	DefaultMaxRestarts        = 10
	// immediateRestartBelow mirrors Watt: a restartOnError under 10 ms
	// means "restart at once".
	immediateRestartBelow = 10 * time.Millisecond
)

// Load finds, reads and validates the configuration of the project in dir.
// file, when not empty, is the configuration file to use instead (relative
// to the working directory). environ is the process environment in
// os.Environ form; it wins over dotenv files when resolving placeholders.
//
// A configuration that is wrong yields a *Error, or an ErrorList when there
// are several problems; both wrap ErrInvalid. Failing to find or read the
// file yields an ordinary error (wrapping fs.ErrNotExist when missing).
func Load(dir, file string, environ []string) (*Config, error) {
	return LoadWith(Options{Dir: dir, File: file, Environ: environ})
}

// AppCheck checks an application beyond what the configuration alone
// tells, for instance that some launcher recognises its files. It returns
// nil, or the problem and the key of the application entry it concerns
// ("path", "capability", "command"; "" for the entry as a whole), so the
// problem joins the one report Load gives.
type AppCheck func(app Application) (key string, err error)

// LoadChecked is Load that also runs check, when not nil, on every enabled
// application whose entry has no other problem.
func LoadChecked(dir, file string, environ []string, check AppCheck) (*Config, error) {
	return LoadWith(Options{Dir: dir, File: file, Environ: environ, Check: check})
}

// Options are what LoadWith needs besides the files themselves.
type Options struct {
	Dir     string   // project directory; "" is the working directory
	File    string   // configuration file instead of the one found in Dir
	Environ []string // the process environment, os.Environ form
	Check   AppCheck // optional, run on every enabled application
	// Environment is "production" (wattd start) or "development" (wattd
	// dev): it picks an application's "enabled" value when that is given
	// per environment, and sets NODE_ENV (unless set), PLT_ENVIRONMENT and
	// PLT_DEV in Config.Env as Watt does. "" sets none of them and reads
	// per-environment "enabled" values as production.
	Environment string
	// StrictEnv makes an unset {PLACEHOLDER} an error whatever the file's
	// strictEnv says (wattd start --strict-env, WATTD_STRICT_ENV=1).
	StrictEnv bool
	// EnvFile is a dotenv file read instead of the project's .env files
	// (wattd start --env, as wattpm's): relative to the project directory,
	// and it must exist.
	EnvFile string
}

// LoadWith is Load with every option.
func LoadWith(opts Options) (*Config, error) {
	dir, file := opts.Dir, opts.File
	path, err := locate(dir, file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	if dir == "" {
		dir = "."
	}
	projectDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("project directory %s: %w", dir, err)
	}
	schemas, err := loadSchema()
	if err != nil {
		return nil, err
	}
	l := &loader{
		file:        path,
		dir:         filepath.Dir(path),
		projectDir:  projectDir,
		environ:     environMap(opts.Environ),
		schemas:     schemas,
		check:       opts.Check,
		environment: opts.Environment,
		strictEnv:   opts.StrictEnv,
		envFile:     opts.EnvFile,
	}
	return l.load(data)
}

// environMap turns os.Environ entries into a map; as in a shell, a later
// duplicate wins.
func environMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// Watch is an application's own "watch" block, as Watt reads it: off, or
// the globs (relative to the application's folder) of the files whose
// changes count, and of those that do not.
type Watch struct {
	Off    bool
	Allow  []string
	Ignore []string
}

// Single tells whether File is one application's own configuration, run
// alone as the runtime's only application.
func (c *Config) Single() bool { return c.lifts != nil }

// Pointer is the JSON pointer in File of the runtime setting at ptr
// (/server/port, /gracefulShutdown): the same, except in a single
// application's file, where most runtime settings are under /runtime.
func (c *Config) Pointer(ptr string) string {
	return sourcePointer(c.lifts, ptr)
}

// Problem is a problem with the runtime setting at ptr (a pointer as
// Pointer takes it), named as a problem found loading File is: the file,
// the line of the value (or of the nearest enclosing one, for a key the
// file no longer has; never the top-level object's) and the JSON pointer.
// A reload refused for a setting it cannot change is reported so.
func (c *Config) Problem(ptr, msg string) *Error {
	src := c.Pointer(ptr)
	if _, ok := c.lines[src]; !ok {
		// A setting the file writes under its Watt 2 name
		// ("serviceTimeout") is named so.
		for _, o := range oldNames {
			newPtr := childPointer(o.newParent, o.newKey)
			if rest, ok := strings.CutPrefix(ptr, newPtr); ok && (rest == "" || rest[0] == '/') {
				if old := c.Pointer(childPointer(o.parent, o.key) + rest); c.lines[old] > 0 {
					src = old
					break
				}
			}
		}
	}
	line := 0
	for p := src; p != "" && line == 0; p = p[:strings.LastIndexByte(p, '/')] {
		line = c.lines[p]
	}
	return &Error{File: c.File, Pointer: src, Line: line, Message: msg}
}
