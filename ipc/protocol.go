// Package ipc owns the control protocol between wattd and its workers: the
// framing, the message types and the version handshake, defined once here and
// specified in docs/worker-protocol.md. It also holds the Go worker SDK
// (sdk.go): the calls a Go program makes to take its sockets and report
// readiness.
//
// The channel is one end of a Unix SOCK_STREAM socketpair that wattd passes
// to the worker as an extra file descriptor, named by WATTD_CONTROL_FD.
// A stream socket (not SOCK_SEQPACKET) is used because Node.js can wrap a
// stream socket fd in a net.Socket but has no seqpacket support; message
// boundaries therefore come from the framing below.
//
//	worker                                   wattd
//	  |                                        |
//	  | ---- hello {versions:[1], pid} ------> |  first frame, sent at once
//	  | <--- welcome {version:1, app, worker}  |  or error {error}, close, kill
//	  |                                        |
//	  | ---- ready {listeners:["http"]} -----> |  once serving
//	  |                                        |
//	  |   a standby worker (WATTD_STANDBY=1) instead, before ready:
//	  | ---- standby ------------------------> |  loaded, its listen() held
//	  | <--- promote {worker} ---------------- |  take that slot's sockets
//	  | ---- ready {listeners:["http"]} -----> |  serving the slot
//	  | ---- stats {elu, heapUsed, ...} -----> |  every few seconds (+ metrics when on)
//	  |                                        |
//	  | <--- mesh {mesh:{apps, timeoutMs}} ---- |  after welcome, then on every change
//	  |                                        |
//	  | ---- checkSet {check:{kind}} --------> |  the app registered a custom check
//	  | <--- check {check:{id, kind}} -------- |  run it (health checks, readiness)
//	  | ---- checked {check:{id, ok, ...}} --> |  its result
//	  | ---- healthSignals {signals} --------> |  the app's health signals, batched
//	  | ---- spans {spans:[...]} ------------> |  finished trace spans, batched (spans.go)
//	  | ---- binary spans frame -------------> |  version 2: HTTP spans, binary (spanbin.go)
//	  |                                        |
//	  | <--- drain {timeoutMs} --------------- |  stop accepting, finish in-flight
//	  | ---- drained ------------------------> |  nothing in flight any more
//	  |                                        |  (wattd then sends SIGTERM)
//	  |                                        |
//	  | ---- exiting {exitCode} -------------> |  optional: the process is ending
//
// A standby holds every slot's sockets ("http.N", "mesh.N"), accepts on
// none and says standby instead of ready; promote names the slot it is to
// serve, and it closes the other slots' copies, listens on that slot's and
// says ready. See docs/worker-protocol.md, "Standby workers".
//
// Messaging between applications (optional; see docs/worker-protocol.md):
// wattd routes a message from a worker of one application to one ready
// worker of another, round robin, and the answer back. Ids are the sender's
// own on its channel and wattd's own on the receiver's, so no worker sees,
// or can answer, another worker's ids.
//
//	sender                      wattd                       receiver
//	  | -- message {id:7, to, name, data} -> |                    |
//	  |                         | -- message {id:42, from, name, data} -> |
//	  |                         | <- reply {id:42, data | fault} -------- |
//	  | <- reply {id:7, data | fault} ------ |                    |
//	  | -- notify {to, name, data} -------> | -- notify {from, name, data} -> every ready worker
//
// Each frame is a 4-byte big-endian length followed by that many bytes of a
// UTF-8 JSON object with a "type" member, or, from version 2, of a binary
// spans frame: a payload whose first byte is SpansBinaryTag (spanbin.go). Unknown types and unknown members
// are ignored by both sides, so a minor addition needs no version bump.
// Anything else (a frame over MaxFrame, a payload that is not such an
// object) is a bad frame, ErrBadFrame: wattd fails a worker that sends one.
package ipc

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
)

// ProtocolVersion is the newest protocol version this build speaks.
const ProtocolVersion = 5

// MaxFrame bounds one frame's payload, so a confused peer cannot make the
// other side allocate without limit.
const MaxFrame = 1 << 20

// Environment variables wattd sets for every worker.
const (
	EnvControlFD  = "WATTD_CONTROL_FD" // fd number of the control socket
	EnvApp        = "WATTD_APP_ID"     // application id from watt.json
	EnvWorker     = "WATTD_WORKER_ID"  // worker slot index, from 0
	EnvEntrypoint = "WATTD_ENTRYPOINT" // "1" for the entrypoint application
	EnvMeshDir    = "WATTD_MESH_DIR"   // directory of the mesh sockets
	EnvMeshProxy  = "WATTD_MESH_PROXY" // http://wattd:TOKEN@127.0.0.1:PORT, the mesh HTTP proxy
	EnvAppInfo    = "WATTD_APP_INFO"   // path of the application's info file (AppInfo, JSON)
	EnvProtocol   = "WATTD_PROTOCOL"   // ProtocolVersion as a decimal string
	EnvListenFDs  = "LISTEN_FDS"       // systemd socket-activation convention
	EnvListenPID  = "LISTEN_PID"       // set by the exec helper to the worker's own pid
	EnvParentPID  = "WATTD_PARENT_PID" // wattd's pid, instead of LISTEN_PID, for a worker started without the helper
	EnvListenName = "LISTEN_FDNAMES"   // colon-separated names, e.g. "http:mesh"
	EnvStandby    = "WATTD_STANDBY"    // "1" for a standby worker (see TypePromote)
)

// StandbyWorker is the WATTD_WORKER_ID (and welcome's worker) of a standby
// until it is promoted: it belongs to no slot yet.
const StandbyWorker = -1

// StandbyListener names a standby's copy of one slot's socket in
// LISTEN_FDNAMES: "http.1" is slot 1's public socket, "mesh.1" its mesh
// socket. A standby holds every slot's, since it may take any of them.
func StandbyListener(name string, worker int) string {
	return name + "." + strconv.Itoa(worker)
}

// EnvMeshProxySocket is the mesh proxy's Unix socket, for clients that can
// dial one: it needs no credentials, as its directory admits only wattd's
// user.
const EnvMeshProxySocket = "WATTD_MESH_PROXY_SOCKET"

// Listener names used in LISTEN_FDNAMES.
const (
	ListenerHTTP = "http" // public TCP listener (entrypoint only)
	ListenerMesh = "mesh" // the worker slot's mesh Unix socket
)

// Message types.
const (
	TypeHello   = "hello"
	TypeWelcome = "welcome"
	TypeReady   = "ready"
	TypeStats   = "stats"
	TypeMesh    = "mesh"
	TypeDrain   = "drain"
	TypeDrained = "drained"
	TypeError   = "error"

	// Messaging between applications; both directions use the same names.
	TypeMessage = "message" // a request that wants a reply
	TypeReply   = "reply"   // the answer to a message, by its id
	TypeNotify  = "notify"  // a one-way message to every ready worker of an app

	// Custom checks and health signals (optional: a worker that never
	// sends checkSet is never sent check).
	TypeCheckSet      = "checkSet"
	TypeCheck         = "check"
	TypeChecked       = "checked"
	TypeHealthSignals = "healthSignals"

	// Tracing (optional): finished spans for wattd to export. See Span.
	TypeSpans = "spans"

	// Standby workers (optional; only workers started with WATTD_STANDBY=1).
	// A standby loads its app but holds the app's listen() and sends
	// standby instead of ready; it accepts nothing. promote (Worker: the
	// slot) makes it the slot's worker: it listens on that slot's sockets
	// ("http.N", "mesh.N") and sends ready as any worker does. A standby
	// may send standby again, with Warm, once it has warmed its HTTP code
	// up; wattd only logs it.
	TypeStandby = "standby"
	TypePromote = "promote"

	// Exiting (optional) says the process is ending, with the exit code it
	// will have, before the process is gone: a worker's end takes the
	// kernel milliseconds (tens for a large heap) after its last
	// instruction, and wattd replaces it in the meantime. A worker that
	// says exiting and is still running after the application's graceful
	// shutdown time is killed.
	TypeExiting = "exiting"

	// Shed (optional, wattd to worker) asks a worker to end each client
	// connection open now after one of its next responses ("Connection:
	// close"; spread over a quarter of a second), so that its clients connect
	// again and the kernel spreads them over every worker's socket. wattd sends it to an entrypoint's other
	// workers once a slot that new connections were steered around (its
	// worker died, or backs off) serves again: the clients that went to
	// them meanwhile would otherwise stay there, kept alive. A worker that
	// ignores it only keeps that imbalance.
	TypeShed = "shed"

	// Diagnostics (optional; only to a worker whose hello listed the kind
	// in Diagnostics). diagnose asks the worker for a heap snapshot
	// (Diagnose.Kind DiagHeapSnapshot) written to Diagnose.Path, a file
	// in a directory wattd made for it, or starts or stops a CPU profile;
	// diagnosed answers by the same ID, with Error set when it failed. Meanwhile the worker's event loop may
	// be blocked for seconds: wattd does not hold that against it.
	TypeDiagnose  = "diagnose"
	TypeDiagnosed = "diagnosed"
)

// Diagnostic kinds.
const (
	DiagHeapSnapshot = "heapSnapshot" // V8's heap snapshot, the .heapsnapshot JSON
	// A CPU profile, taken from start (IntervalMicros: the sampling
	// interval) to stop, which writes it to Path: V8's .cpuprofile JSON.
	DiagCPUProfileStart = "cpuProfileStart"
	DiagCPUProfileStop  = "cpuProfileStop"
	// A sampling heap profile, the same way (IntervalBytes: the mean
	// bytes between samples): V8's .heapprofile JSON.
	DiagHeapProfileStart = "heapProfileStart"
	DiagHeapProfileStop  = "heapProfileStop"
	// A REPL inside the worker: wattd listens on the Unix socket Path
	// (in a directory only its own user may enter), the worker connects
	// to it and answers, and runs a read-eval-print loop on that
	// connection until either side closes it. Terminal asks for line
	// editing (the client's terminal is in raw mode), Columns is its
	// width, Prompt the prompt to show.
	DiagREPL = "repl"
)

// SDKDiagnostics are the diagnose kinds a Go program using this package's
// SDK (Dial) offers: Go's own profiles, no heap snapshot, no REPL.
var SDKDiagnostics = []string{DiagCPUProfileStart, DiagCPUProfileStop, DiagHeapProfileStart, DiagHeapProfileStop}

// Check kinds.
const (
	CheckHealth    = "health"    // Watt's setCustomHealthCheck: liveness
	CheckReadiness = "readiness" // Watt's setCustomReadinessCheck
)

// Message is every message of the protocol; which members are set depends on
// Type. A flat struct keeps the JSON trivial to produce from any language.
type Message struct {
	Type string `json:"type"`

	// hello
	Versions []int  `json:"versions,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Runtime  string `json:"runtime,omitempty"` // e.g. "node v20.20.2"
	// Diagnostics lists the diagnose kinds the worker takes.
	Diagnostics []string `json:"diagnostics,omitempty"`

	// welcome; Worker also in promote (the slot to take)
	Version int    `json:"version,omitempty"`
	App     string `json:"app,omitempty"`
	Worker  int    `json:"worker,omitempty"`

	// ready
	Listeners []string `json:"listeners,omitempty"`

	// stats
	Stats *Stats `json:"stats,omitempty"`

	// mesh
	Mesh *MeshTable `json:"mesh,omitempty"`

	// drain
	TimeoutMs int64 `json:"timeoutMs,omitempty"`

	// error
	Error string `json:"error,omitempty"`

	// exiting
	ExitCode int `json:"exitCode,omitempty"`

	// standby, sent again once the standby's warm-up ended (optional)
	Warm *Warm `json:"warm,omitempty"`

	// message, reply, notify. ID numbers a message on one channel: the
	// sender picks it on its own channel, wattd picks the one the receiver
	// sees, and a reply carries the id of the message it answers. To names
	// the target application (worker to wattd); From and FromWorker name the
	// sender (wattd to worker). Data is any JSON value, passed through
	// untouched; absent means undefined. Fault replaces Data in a reply
	// that failed.
	ID         uint64          `json:"id,omitempty"`
	To         string          `json:"to,omitempty"`
	From       string          `json:"from,omitempty"`
	FromWorker int             `json:"fromWorker,omitempty"`
	Name       string          `json:"name,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Fault      *Fault          `json:"fault,omitempty"`

	// checkSet, check, checked
	Check *Check `json:"check,omitempty"`

	// diagnose, diagnosed
	Diagnose *Diagnose `json:"diagnose,omitempty"`

	// healthSignals: JSON objects, each with a string "type"
	Signals []json.RawMessage `json:"signals,omitempty"`

	// spans: an array of Span objects, at most MaxSpansPerMessage. Kept
	// raw so that one malformed span costs that span (DecodeSpans drops
	// and counts it), not the frame and with it the worker.
	Spans json.RawMessage `json:"spans,omitempty"`

	// SpansBinary is the payload of a binary spans frame after its tag
	// (spanbin.go); such a frame reads as a message of type spans.
	SpansBinary []byte `json:"-"`
}

// Warm is how a standby warmed up while it waited to be promoted: the
// requests it served to itself, on a private server, and the time it took.
type Warm struct {
	Requests int   `json:"requests"`
	Ms       int64 `json:"ms"`
	// After is how long the standby waited, once loaded, before it
	// began (for a CPU to spare); absent from older workers.
	After int64 `json:"afterMs,omitempty"`
}

// Fault is a failed reply: the handler threw, there is no handler, or
// wattd could not deliver the message or its answer in time. Code is a
// stable name callers branch on (Watt's codes where Watt has one, such as
// PLT_ITC_HANDLER_FAILED); Cause is the handler's own error when it threw.
type Fault struct {
	Message string `json:"message"`
	Code    string `json:"code,omitempty"`
	Name    string `json:"name,omitempty"`
	Stack   string `json:"stack,omitempty"`
	Cause   *Fault `json:"cause,omitempty"`
}

// CodeHandlerNotFound is the fault code of a reply to a message whose name
// the receiving worker has no handler for (Watt's).
const CodeHandlerNotFound = "PLT_ITC_HANDLER_NOT_FOUND"

// HandlerNotFound is the fault a worker answers a message named name with
// when nothing handles that name, worded as Watt's.
func HandlerNotFound(name string) *Fault {
	return &Fault{Message: `Handler not found for request: "` + name + `"`, Code: CodeHandlerNotFound, Name: "FastifyError"}
}

// Check is a custom check of the app: announced by the worker (checkSet:
// Kind), asked for by wattd (check: ID, Kind) and answered (checked: the
// same ID and Kind, and the result).
type Check struct {
	ID   uint64 `json:"id,omitempty"`
	Kind string `json:"kind"` // CheckHealth or CheckReadiness
	// OK is the verdict; StatusCode and Body are what the app wants an
	// HTTP probe to answer, when it said. Error is why the check failed
	// to run (it threw, or returned something that is not a verdict).
	OK         bool   `json:"ok,omitempty"`
	StatusCode int    `json:"statusCode,omitempty"`
	Body       string `json:"body,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Diagnose is a diagnostic wattd asks a worker for (diagnose: ID, Kind,
// Path) and the worker's answer (diagnosed: the same ID and Kind, and
// Error when it failed).
type Diagnose struct {
	ID             uint64 `json:"id"`
	Kind           string `json:"kind"`
	Path           string `json:"path,omitempty"`
	IntervalMicros int    `json:"intervalMicros,omitempty"`
	IntervalBytes  int    `json:"intervalBytes,omitempty"`
	Error          string `json:"error,omitempty"`
	// Conflict, in an answer with Error, says the worker refused because
	// of what it is doing, not because something failed: a profile is
	// already being taken at its start, or none is at its stop.
	Conflict bool `json:"conflict,omitempty"`
	// Format, in an answer to a profile's stop, says the file is already
	// pprof ("pprof", as a Go worker writes it) rather than V8's JSON.
	Format string `json:"format,omitempty"`
	// Terminal, Columns and Prompt are a REPL's (DiagREPL).
	Terminal bool   `json:"terminal,omitempty"`
	Columns  int    `json:"columns,omitempty"`
	Prompt   string `json:"prompt,omitempty"`
}

// AppInfo is the content of the file named by WATTD_APP_INFO, written by
// wattd before the application's first worker starts: what a worker's
// runtime API (the Node preload's globalThis.platformatic) reports about
// the application before the control channel has said anything. Objects
// are Watt's shapes (runtimeConfig, applicationConfig, config), filled
// with what wattd applies.
type AppInfo struct {
	ApplicationID string `json:"applicationId"`
	Entrypoint    bool   `json:"entrypoint"`
	Root          string `json:"root"` // absolute application directory
	// Host and Port are the public address for the entrypoint; Watt
	// gives true to other applications ("any").
	Host     any    `json:"host"`
	Port     any    `json:"port"`
	BasePath string `json:"basePath,omitempty"`
	LogLevel string `json:"logLevel"`
	// Redact is the runtime's logger.redact; the app's logger masks the
	// same values wattd does. Absent when nothing is masked.
	Redact            *Redact        `json:"redact,omitempty"`
	WantsAbsoluteURLs bool           `json:"wantsAbsoluteUrls"`
	RuntimeConfig     map[string]any `json:"runtimeConfig"`
	ApplicationConfig map[string]any `json:"applicationConfig"`
	Config            map[string]any `json:"config"`
	// NoServer is node.hasServer false: the app is ready once loaded and
	// serves nothing. Preload lists modules (absolute paths) the app's
	// runtime loads before the app, in order.
	NoServer bool     `json:"noServer,omitempty"`
	Preload  []string `json:"preload,omitempty"`
	// Metrics is true when the runtime exports metrics: the worker then
	// also reports the figures of Stats that only a metrics endpoint
	// reads (request durations, event-loop lag, GC, the app's own
	// registry), which cost it something to collect.
	Metrics bool `json:"metrics,omitempty"`
	// RequestLabels, with Metrics, are the labels the worker adds to its
	// request durations from each request's headers (Watt's
	// httpCustomLabels), in order; HistogramSeries.Labels holds their
	// values.
	RequestLabels []RequestLabel `json:"requestLabels,omitempty"`
	// ClientMetrics, with Metrics, asks the worker for the durations of
	// its outgoing HTTP requests (Watt's httpClientMetrics):
	// Stats.ClientRequests.
	ClientMetrics bool `json:"clientMetrics,omitempty"`
	// EventLoopDelay is true when the app's health checks judge the
	// event-loop delay (health.maxEventLoopDelay, maxEventLoopDelayP99):
	// the worker then samples it and reports Stats.Delay.
	EventLoopDelay bool `json:"eventLoopDelay,omitempty"`
	// BufferPoolSize and DefaultHighWaterMark, when not 0, are what the
	// worker sets Buffer.poolSize and its byte streams' default
	// highWaterMark to before the app loads (the health keys of the same
	// names, as Watt applies them).
	BufferPoolSize       uint64 `json:"bufferPoolSize,omitempty"`
	DefaultHighWaterMark uint64 `json:"defaultHighWaterMark,omitempty"`
	// Tracing is present when wattd exports traces for the application:
	// its workers then make spans and send them in spans messages.
	Tracing *TracingInfo `json:"tracing,omitempty"`
	// RequestID is present when request ids are on (always with tracing):
	// workers keep or make one per request under this header.
	RequestID *RequestIDInfo `json:"requestId,omitempty"`
}

// TracingInfo is what a worker needs to trace its requests.
type TracingInfo struct {
	// ServiceName is the application's service.name, which wattd sets on
	// the resource of its spans; workers may show it, they need not send it.
	ServiceName string `json:"serviceName"`
	// Skip lists requests that get no span. Always present, maybe empty.
	Skip []TraceSkip `json:"skip"`
	// Sampler decides which traces the worker records, by its
	// OTEL_TRACES_SAMPLER name: always_on, always_off, traceidratio, or
	// parentbased_ and one of those (the parent's sampled flag decides
	// when a traceparent came in). "" is parentbased_always_on. Ratio,
	// set for the traceidratio samplers only (nil is 1), is their
	// probability, 0 to 1: a trace is recorded when the
	// last 8 bytes of its id, big-endian, shifted right by one, are below
	// Ratio × 2^63, the rule of OpenTelemetry's Go SDK, so that workers
	// of every language decide a trace alike.
	Sampler string   `json:"sampler,omitempty"`
	Ratio   *float64 `json:"ratio,omitempty"`
}

// TraceSkip is one request kind not to trace. Path is an exact path or,
// when it starts and ends with "/" (and is longer than "/"), the source
// of a regular expression matched against the path, and when empty every
// path (a rule of a method alone); Method, when set, limits the rule to
// that method.
type TraceSkip struct {
	Path   string `json:"path"`
	Method string `json:"method,omitempty"`
}

// RequestIDInfo names the request id header (lower case) and whether the
// worker sets the id on its responses too.
type RequestIDInfo struct {
	Header   string `json:"header"`
	Response bool   `json:"response,omitempty"`
}

// Redact is Watt's logger.redact: pino's paths and the censor.
type Redact struct {
	Paths  []string `json:"paths"`
	Censor string   `json:"censor"`
}

// Stats is a worker's runtime report. Fields a runtime cannot measure are
// left zero; those after RequestsDone are sent only by a worker told that
// metrics are on (AppInfo.Metrics).
type Stats struct {
	ELU         float64 `json:"elu"`         // event-loop utilisation 0..1 since the last report
	HeapUsed    uint64  `json:"heapUsed"`    // bytes
	HeapTotal   uint64  `json:"heapTotal"`   // bytes
	RSS         uint64  `json:"rss"`         // bytes, as the worker sees it
	ActiveConns int     `json:"activeConns"` // open client connections
	// RequestsDone counts the requests received since start, by a worker
	// that counts them: a Node worker only with metrics on, since counting
	// is work on every request.
	RequestsDone uint64 `json:"requestsDone"`
	// Inspector is true while the worker's debugger inspector is open: a
	// debugger may hold its event loop paused at a breakpoint, so missing
	// reports do not mean it is stuck.
	Inspector bool `json:"inspector,omitempty"`

	// Requests are the durations of the HTTP requests the app served
	// since start, by method and status code (Watt's
	// http_request_all_duration_seconds).
	Requests *Histogram `json:"requests,omitempty"`
	// ClientRequests are the durations of the app's outgoing HTTP
	// requests since start, by method, status code (0 without a
	// response), origin and error, when AppInfo.ClientMetrics.
	ClientRequests *Histogram `json:"clientRequests,omitempty"`
	// GC are the garbage collections since start, by kind.
	GC *Histogram `json:"gc,omitempty"`
	// Lag is the event-loop delay since the last report.
	Lag *EventLoopLag `json:"lag,omitempty"`
	// Delay is the event-loop delay the health checks judge, sampled
	// since the last report when AppInfo.EventLoopDelay is set.
	Delay *EventLoopDelay `json:"delay,omitempty"`
	// AppMetrics is what the app registered in its own Prometheus
	// registry, in the Prometheus text format, as of the last report.
	AppMetrics string `json:"appMetrics,omitempty"`
	// Process is what a Node worker with metrics on reports of its
	// process as of the report (prom-client's default metrics).
	Process *NodeProcess `json:"process,omitempty"`
}

// maxLagSeconds bounds an event-loop delay a report may give: a day.
const maxLagSeconds = 86400

// maxMemoryBytes bounds the memory figures a report may give (heap, RSS):
// a pebibyte, beyond any machine's memory. One above it is taken as not
// measured (0).
const maxMemoryBytes = 1 << 50

// Sanitized is st with what no worker can truthfully report made sane,
// so that a worker sending nonsense on its control channel cannot make
// wattd's answers, its health judgement or its scaling absurd (a JSON
// answer cannot even hold an infinite number): the utilisation kept
// within 0..1, negative counts made 0, delays that are negative, not
// numbers or infinite made 0 and longer ones than a day cut to it. It
// tells whether anything was changed.
func (st Stats) Sanitized() (Stats, bool) {
	changed := false
	fix := func(v *float64, lo, hi float64) {
		switch {
		case math.IsNaN(*v) || *v < lo:
			*v, changed = lo, true
		case *v > hi:
			*v, changed = hi, true
		}
	}
	fix(&st.ELU, 0, 1)
	if st.ActiveConns < 0 {
		st.ActiveConns, changed = 0, true
	}
	for _, v := range []*uint64{&st.HeapUsed, &st.HeapTotal, &st.RSS} {
		if *v > maxMemoryBytes {
			*v, changed = 0, true
		}
	}
	if l := st.Lag; l != nil {
		c := *l
		for _, v := range []*float64{&c.Seconds, &c.Min, &c.Max, &c.Mean, &c.Stddev, &c.P50, &c.P90, &c.P99} {
			fix(v, 0, maxLagSeconds)
		}
		st.Lag = &c
	}
	if d := st.Delay; d != nil {
		c := *d
		fix(&c.Max, 0, maxLagSeconds)
		fix(&c.P99, 0, maxLagSeconds)
		st.Delay = &c
	}
	return st, changed
}

// NodeProcess is a Node.js process's memory outside the V8 heap, its heap
// spaces and what keeps its event loop alive, as prom-client's default
// metrics read them.
type NodeProcess struct {
	Version        string         `json:"version,omitempty"` // process.version, "v24.1.0"
	External       uint64         `json:"external"`          // bytes of C++ objects bound to JavaScript ones (process.memoryUsage().external)
	HeapSpaces     []HeapSpace    `json:"heapSpaces"`        // v8.getHeapSpaceStatistics()
	Handles        map[string]int `json:"handles"`           // active handles by type (constructor name), at most 64 types
	HandlesTotal   int            `json:"handlesTotal"`      // all active handles
	Requests       map[string]int `json:"requests"`          // active libuv requests by type (constructor name), at most 64 types
	ActiveRequests int            `json:"activeRequests"`    // all active libuv requests
	Resources      map[string]int `json:"resources"`         // process.getActiveResourcesInfo() by type, at most 64 types
	ResourcesTotal int            `json:"resourcesTotal"`    // all of them
}

// HeapSpace is one V8 heap space, named without its "_space" suffix
// ("new", "old", "code", …), sizes in bytes.
type HeapSpace struct {
	Space     string `json:"space"`
	Size      uint64 `json:"size"`
	Used      uint64 `json:"used"`
	Available uint64 `json:"available"`
}

// Histogram is a worker's histogram: one series per label set, each with
// its count of observations per bucket. Counts[i] is the number of
// observations in (Bounds[i-1], Bounds[i]] (not cumulative), and the last
// count, Counts[len(Bounds)], those above every bound.
type Histogram struct {
	Bounds []float64         `json:"bounds"`
	Series []HistogramSeries `json:"series"`
	// Window, when set, is the scale of each series' Window: the recent
	// distribution of what it counts (Requests only), from which wattd
	// reads the quantiles of http_request_all_summary_seconds.
	Window *WindowScale `json:"window,omitempty"`
}

// WindowScale is the scale of a series' recent distribution: Buckets
// buckets of equal width on a log scale, Sub to each doubling, bucket i
// holding values from 2^(MinExp + i/Sub) to 2^(MinExp + (i+1)/Sub)
// seconds, except that the first also holds everything below and the last
// everything above. The Node preload uses Sub 16, MinExp -20, Buckets 432
// (0.95 µs to 128 s), over the last 50 to 60 s.
type WindowScale struct {
	Sub     int `json:"sub"`
	MinExp  int `json:"minExp"`
	Buckets int `json:"buckets"`
}

// RequestLabel is a label of the request durations whose value is a
// request header's: Header (lower case), or Default when the request has
// none.
type RequestLabel struct {
	Name    string `json:"name"`
	Header  string `json:"header"`
	Default string `json:"default"`
}

// HistogramSeries is one series of a Histogram. Which labels are set
// depends on the histogram: Method and StatusCode for requests, Kind
// (major, minor, incremental, weakcb) for GC.
type HistogramSeries struct {
	Method     string `json:"method,omitempty"`
	StatusCode int    `json:"statusCode,omitempty"`
	// Labels are the values of AppInfo.RequestLabels, in their order.
	Labels []string `json:"labels,omitempty"`
	// Origin and Error are an outgoing request's (ClientRequests):
	// scheme, host and port it went to, and its error's code or name,
	// "" when it had none.
	Origin string   `json:"origin,omitempty"`
	Error  string   `json:"error,omitempty"`
	Kind   string   `json:"kind,omitempty"`
	Counts []uint64 `json:"counts"`
	Sum    float64  `json:"sum"`
	// Window is the series' recent distribution on the histogram's
	// WindowScale, as pairs: bucket, count, bucket, count, … in bucket
	// order, buckets with no count left out.
	Window []uint64 `json:"window,omitempty"`
}

// EventLoopLag is the event-loop delay a worker sampled since its last
// report, in seconds: the distribution of Node's monitorEventLoopDelay,
// and Seconds, how late one callback ran when last measured.
type EventLoopLag struct {
	Seconds float64 `json:"seconds"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
	Stddev  float64 `json:"stddev"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
}

// EventLoopDelay is the event-loop delay a worker sampled for the health
// checks since its last report, in seconds, as Watt measures it: the time
// between two samples 20 ms apart, so about 0.02 when the loop is free.
type EventLoopDelay struct {
	Max float64 `json:"max"`
	P99 float64 `json:"p99"`
}

// MeshTable is the membership of the mesh: for every application, the
// sockets of its workers that are ready now. wattd sends the whole table
// after welcome and again whenever it changes; clients route
// http://<app>.plt.local requests with it and never through wattd.
type MeshTable struct {
	Apps      map[string]MeshApp `json:"apps"`
	TimeoutMs int64              `json:"timeoutMs"`       // per-request timeout (applicationTimeout); 0 = none
	Proxy     string             `json:"proxy,omitempty"` // wattd's mesh proxy, http://wattd:TOKEN@127.0.0.1:PORT
	// ProxySocket is the same proxy on a Unix socket.
	ProxySocket string `json:"proxySocket,omitempty"`
	// Disabled lists the applications the configuration turns off
	// ("enabled": false): not on the mesh, but a client says so.
	Disabled []string `json:"disabled,omitempty"`
}

// MeshApp is one application in the MeshTable.
type MeshApp struct {
	Endpoints []string `json:"endpoints"`        // Unix socket paths of the ready workers, by worker index
	State     string   `json:"state"`            // starting, running, degraded, failed, stopping
	Reason    string   `json:"reason,omitempty"` // why no worker is ready, when none is
}

// ErrBadFrame is wrapped by every error of ReadMessage that means the peer
// broke the framing or sent something that is not a message: a frame over
// MaxFrame, a payload that is not a JSON object of the Message shape, a
// message without a type. The end of the stream (io.EOF between frames,
// io.ErrUnexpectedEOF inside one) and read errors are not bad frames: they
// say the channel ended, not what was on it.
var ErrBadFrame = errors.New("ipc: bad frame")

// ErrFrameTooLarge is returned for a frame over MaxFrame. It wraps
// ErrBadFrame.
var ErrFrameTooLarge = fmt.Errorf("%w: too large", ErrBadFrame)

// ErrNoCommonVersion is returned by Negotiate when the peers share no version.
var ErrNoCommonVersion = errors.New("ipc: no common protocol version")

// WriteMessage frames and writes m. It is not safe for concurrent use on the
// same writer; callers serialise writes.
func WriteMessage(w io.Writer, m *Message) error {
	buf, err := EncodeFrame(m)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// EncodeFrame returns m as one frame, length prefix included. A writer that
// may be cut short (by a deadline) writes the frame itself, so that it
// knows how much of it went out: a frame written in part leaves the stream
// unusable, since the reader would take the next frame's bytes for the
// rest of this one.
func EncodeFrame(m *Message) ([]byte, error) {
	if m.SpansBinary != nil {
		// A binary spans frame: the tag, then the payload as it is.
		if 1+len(m.SpansBinary) > MaxFrame {
			return nil, ErrFrameTooLarge
		}
		buf := make([]byte, 5, 5+len(m.SpansBinary))
		binary.BigEndian.PutUint32(buf, uint32(1+len(m.SpansBinary)))
		buf[4] = SpansBinaryTag
		return append(buf, m.SpansBinary...), nil
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("ipc: encode %s: %w", m.Type, err)
	}
	if len(body) > MaxFrame {
		return nil, ErrFrameTooLarge
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	return buf, nil
}

// ReadMessage reads one frame. It returns io.EOF only on a clean end between
// frames; a frame cut short is io.ErrUnexpectedEOF. Errors about what the
// frame holds wrap ErrBadFrame.
//
// The payload buffer grows with the bytes that actually arrive, so a header
// that announces a large frame costs nothing until the frame is sent.
func ReadMessage(r io.Reader) (*Message, error) {
	n, err := readFrameLen(r)
	if err != nil {
		return nil, err
	}
	body, err := readBody(r, n)
	if err != nil {
		return nil, inFrame(err)
	}
	return decodeBody(body)
}

// readFrameLen reads a frame's length prefix and checks it against
// MaxFrame.
func readFrameLen(r io.Reader) (int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, MaxFrame)
	}
	return int(n), nil
}

// inFrame is a read error inside a frame: there, even a clean end of the
// stream cuts the frame short.
func inFrame(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadMessagePooled is ReadMessage for a reader of many frames: a frame
// larger than a small one is read into a buffer from a pool shared by all
// readers, rather than into memory of its own that the garbage collector
// then has to take back (a worker that traces sends a frame of hundreds
// of kilobytes several times a second). For a binary spans message,
// SpansBinary aliases that buffer until release is called, which the
// caller MUST do once it is done with the message (release is never nil);
// any other message is decoded into values of its own before
// ReadMessagePooled returns.
func ReadMessagePooled(r io.Reader) (m *Message, release func(), err error) {
	n, err := readFrameLen(r)
	if err != nil {
		return nil, noRelease, err
	}
	if n <= firstChunk {
		// Small frames (every JSON message in practice) are read as
		// ReadMessage reads them.
		body, err := readBody(r, n)
		if err != nil {
			return nil, noRelease, inFrame(err)
		}
		m, err := decodeBody(body)
		return m, noRelease, err
	}
	bp := framePool.Get().(*[]byte)
	put := func() {
		if cap(*bp) <= MaxFrame {
			framePool.Put(bp)
		}
	}
	// The pooled buffer is filled with what arrives; it grows (once per
	// size seen) only for a frame larger than any it held before.
	body, err := readInto((*bp)[:0], r, n)
	*bp = body[:0]
	if err != nil {
		put()
		return nil, noRelease, inFrame(err)
	}
	m, err = decodeBody(body)
	if err != nil || m.SpansBinary == nil {
		put()
		return m, noRelease, err
	}
	return m, put, nil
}

func noRelease() {}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 4*firstChunk); return &b }}

// decodeBody makes the message of a frame's payload (see ReadMessage).
func decodeBody(body []byte) (*Message, error) {
	if len(body) > 0 && body[0] == SpansBinaryTag {
		return &Message{Type: TypeSpans, SpansBinary: body[1:]}, nil
	}
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: not a JSON message: %w", ErrBadFrame, err)
	}
	if m.Type == "" {
		return nil, fmt.Errorf("%w: no \"type\"", ErrBadFrame)
	}
	return &m, nil
}

// firstChunk is what readBody allocates before any payload byte arrived:
// every message wattd and its workers exchange in practice fits.
const firstChunk = 64 << 10

// readBody reads exactly n bytes, allocating in step with what arrives.
func readBody(r io.Reader, n int) ([]byte, error) {
	return readInto(make([]byte, 0, min(n, firstChunk)), r, n)
}

// readInto reads exactly n bytes into body (empty, with some capacity),
// growing it in step with what arrives.
func readInto(body []byte, r io.Reader, n int) ([]byte, error) {
	for len(body) < n {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(n-len(body), cap(body)))
		}
		chunk := body[len(body):min(cap(body), n)]
		k, err := io.ReadFull(r, chunk)
		body = body[:len(body)+k]
		if err != nil {
			if err == io.EOF && len(body) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return body, nil
}

// Negotiate picks the highest version offered by the worker that this build
// speaks.
func Negotiate(offered []int) (int, error) {
	best := 0
	for _, v := range offered {
		if v >= 1 && v <= ProtocolVersion && v > best {
			best = v
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("%w: worker offers %v, wattd speaks 1..%d", ErrNoCommonVersion, offered, ProtocolVersion)
	}
	return best, nil
}
