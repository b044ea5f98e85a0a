package supervisor

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/wattd/wattd/ipc"
)

// RuntimeStatus is what `wattd ctl status` shows and the admin API serves
// at GET /v1/status.
type RuntimeStatus struct {
	// PID is wattd's pid, as wattd's own pid namespace numbers it when the
	// admin API serves it; the admin client replaces it with the pid as
	// its own process sees it, 0 when wattd is not visible from there
	// (PIDSeen false).
	PID        int       `json:"pid"`
	PIDSeen    bool      `json:"-"`
	Version    string    `json:"version"`
	ProjectDir string    `json:"projectDir"`
	ConfigFile string    `json:"configFile"`
	Entrypoint string    `json:"entrypoint"`
	URL        string    `json:"url"`   // public address, e.g. http://127.0.0.1:3042
	State      string    `json:"state"` // starting, running, stopping
	StartedAt  time.Time `json:"startedAt"`
	Uptime     float64   `json:"uptimeSeconds"`
	Apps       int       `json:"apps"`
	Workers    int       `json:"workers"`      // configured worker slots
	Ready      int       `json:"readyWorkers"` // slots whose current worker is ready
	FailedApps []string  `json:"failedApps,omitempty"`

	// MeshProxy is the mesh proxy's connection count; nil before it serves.
	MeshProxy *ProxyStatus `json:"meshProxy,omitempty"`
	// LogLinesDropped counts log entries that could not be written because
	// wattd's output was closed (a pipe whose reader went away).
	LogLinesDropped uint64 `json:"logLinesDropped"`
	// LogExport counts the entries sent to the OTLP logs endpoint and those
	// dropped (queue full, or their batch failed); nil without
	// logger.openTelemetryExporter.
	LogExport *LogExportStatus `json:"logExport,omitempty"`
}

// LogExportStatus is the OTLP log exporter's counts.
type LogExportStatus struct {
	Exported uint64 `json:"exported"`
	Dropped  uint64 `json:"dropped"`
}

// ProxyStatus describes the mesh proxy's connections, both listeners
// together.
type ProxyStatus struct {
	Open     int    `json:"open"`     // connections open now
	Refused  uint64 `json:"refused"`  // closed at once: over the cap, or descriptors short
	MaxConns int    `json:"maxConns"` // the cap of each listener
}

// AppStatus is one application in `wattd ctl ps` (GET /v1/apps).
type AppStatus struct {
	ID         string         `json:"id"`
	Entrypoint bool           `json:"entrypoint"`
	Capability string         `json:"capability"`
	State      string         `json:"state"` // running, failed, stopped
	Reason     string         `json:"reason,omitempty"`
	Workers    []WorkerStatus `json:"workers"`
	// Standby is the configured number of standby workers; Standbys are
	// those running, and StandbyRestarts counts those that died and were
	// replaced (standby.go).
	Standby         int             `json:"standby,omitempty"`
	Standbys        []StandbyStatus `json:"standbys,omitempty"`
	StandbyRestarts int             `json:"standbyRestarts,omitempty"`
	// Spans counts the spans the application's workers sent; nil while
	// tracing is off.
	Spans *SpanCounts `json:"spans,omitempty"`
	// Scaling is the dynamic scaler's view of the application and the last
	// change of its worker count (dynamic, ctl scale or reload); nil for
	// an application whose count never changed and is not dynamic.
	Scaling *ScalingStatus `json:"scaling,omitempty"`
	// Former are the counters of the worker slots a scale-down took away;
	// nil before any. The application's totals are its workers' and
	// these.
	Former *FormerCounts `json:"formerWorkers,omitempty"`
}

// FormerCounts are the counters of worker slots that are gone, summed:
// the fields of WorkerStatus of the same names.
type FormerCounts struct {
	RestartsBy         map[string]int `json:"restartsBy,omitempty"`
	Starts             int            `json:"starts"`
	StartTime          float64        `json:"startSecondsTotal"`
	StartsWithin       []uint64       `json:"startsWithin,omitempty"`
	Replacements       int            `json:"replacements"`
	ReplacementTime    float64        `json:"replacementSecondsTotal"`
	ReplacementsWithin []uint64       `json:"replacementsWithin,omitempty"`
}

// add sums the counters of w, a slot taken away, into f.
func (f *FormerCounts) add(w WorkerStatus) {
	for k, n := range w.RestartsBy {
		if f.RestartsBy == nil {
			f.RestartsBy = map[string]int{}
		}
		f.RestartsBy[k] += n
	}
	f.Starts += w.Starts
	f.StartTime += w.StartTime
	f.StartsWithin = addCumulative(f.StartsWithin, w.StartsWithin)
	f.Replacements += w.Replacements
	f.ReplacementTime += w.ReplacementTime
	f.ReplacementsWithin = addCumulative(f.ReplacementsWithin, w.ReplacementsWithin)
}

// addCumulative adds the counts by bound b into a; either may be nil
// (nothing counted yet).
func addCumulative(a, b []uint64) []uint64 {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return slices.Clone(b)
	}
	for i := range min(len(a), len(b)) {
		a[i] += b[i]
	}
	return a
}

func (f FormerCounts) clone() FormerCounts {
	f.RestartsBy = maps.Clone(f.RestartsBy)
	f.StartsWithin = slices.Clone(f.StartsWithin)
	f.ReplacementsWithin = slices.Clone(f.ReplacementsWithin)
	return f
}

func (f FormerCounts) zero() bool {
	return len(f.RestartsBy) == 0 && f.Starts == 0 && f.Replacements == 0
}

// SpanCounts are an application's span counters since wattd started.
type SpanCounts struct {
	Received uint64 `json:"received"` // arrived in spans messages, valid or not
	// Invalid spans broke the protocol's rules; QueueFull found an
	// exporter's queue full. Both were dropped.
	Invalid   uint64 `json:"invalid"`
	QueueFull uint64 `json:"queueFull"`
	// ExportFailed spans an exporter could not send, once per exporter.
	ExportFailed uint64 `json:"exportFailed"`
}

// WorkerStatus is one worker slot and the process currently in it.
type WorkerStatus struct {
	Index    int    `json:"index"`
	PID      int    `json:"pid"` // 0 when no process runs in the slot
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"lastExit,omitempty"` // e.g. "exit status 1", "signal: killed"
	// RetryIn is, in state backoff, the seconds until the next worker
	// starts.
	RetryIn float64 `json:"retryInSeconds,omitempty"`
	// RestartsBy splits Restarts by kind: exit, signal, oom, memory,
	// start_timeout, control_channel, unhealthy, rolling_restart, other.
	RestartsBy map[string]int `json:"restartsBy,omitempty"`
	// OOMKills counts the workers ended for their memory limit: by the
	// kernel in their cgroup ("oom") or by wattd without one ("memory").
	OOMKills int `json:"oomKills,omitempty"`
	// Starts counts the workers that became ready in the slot and
	// StartTime the seconds they took in all, from spawn to ready.
	Starts    int     `json:"starts"`
	StartTime float64 `json:"startSecondsTotal"`
	// WaitingFor names the dependencies a slot in state "waiting" (never
	// started yet) waits for; empty when it waits for its turn only.
	WaitingFor string  `json:"waitingFor,omitempty"`
	Uptime     float64 `json:"uptimeSeconds"` // since the current process started
	// Started is when the current process started, in seconds since the
	// Unix epoch (prom-client's process_start_time_seconds); 0 without one.
	Started float64 `json:"startedUnixSeconds,omitempty"`
	RSS     uint64  `json:"rssBytes"`   // from /proc, 0 if unknown
	CPU     float64 `json:"cpuSeconds"` // user + system CPU time of the process, from /proc
	// CPUUser and CPUSystem split CPU; VirtualMemory is the process's
	// virtual size (all from /proc/<pid>/stat).
	CPUUser       float64 `json:"cpuUserSeconds,omitempty"`
	CPUSystem     float64 `json:"cpuSystemSeconds,omitempty"`
	VirtualMemory uint64  `json:"virtualMemoryBytes,omitempty"`
	OpenFDs       int     `json:"openFds"` // open file descriptors of the process, 0 if unknown
	// InspectPort is the port of the process's Node.js inspector, under
	// wattd start --inspect; 0 without.
	InspectPort int `json:"inspectPort,omitempty"`
	// Memory is what the worker's cgroup uses (all of its processes, page
	// cache included), or the RSS of its process tree where cgroups are
	// not used; MemoryLimit is the limit it is held to, 0 for none.
	Memory      uint64 `json:"memoryBytes,omitempty"`
	MemoryLimit uint64 `json:"memoryLimitBytes,omitempty"`
	// History is the slot's last events, oldest first: each state it
	// entered (with the exit reason on backoff, failed and exited) and
	// each worker replaced in place (rolling restart, health).
	History     []Event `json:"history,omitempty"`
	ELU         float64 `json:"elu"` // last reported event-loop utilisation
	HeapUsed    uint64  `json:"heapUsedBytes"`
	HeapTotal   uint64  `json:"heapTotalBytes"`
	ActiveConns int     `json:"activeConns"` // open client connections, as last reported
	// What a Node worker reports with metrics on (absent otherwise): its
	// requests since start (a count, and their durations by method and
	// status code), its garbage collections by kind, its event-loop lag
	// over the last stats period, and the text of the app's own metrics
	// registry, which only the metrics endpoint reads.
	RequestsDone uint64         `json:"requestsDone,omitempty"`
	Requests     *ipc.Histogram `json:"requests,omitempty"`
	// ClientRequests are its outgoing requests' durations, with the
	// metrics' httpClientMetrics.
	ClientRequests *ipc.Histogram    `json:"clientRequests,omitempty"`
	GC             *ipc.Histogram    `json:"gc,omitempty"`
	Lag            *ipc.EventLoopLag `json:"eventLoopLag,omitempty"`
	AppMetrics     string            `json:"-"`
	// Process are the Node.js process figures of prom-client's default
	// metrics (external memory, heap spaces, active handles), with
	// metrics on.
	Process    *ipc.NodeProcess `json:"process,omitempty"`
	ListenAddr string           `json:"listen,omitempty"`
	// HealthSignals are the latest health signal of each type the app
	// sent with Watt's sendHealthSignal, as sent ({type, timestamp, …}).
	HealthSignals map[string]json.RawMessage `json:"healthSignals,omitempty"`

	// StartsWithin counts, for each bound of StartBuckets, the slot's
	// workers that became ready within it; nil before the first.
	StartsWithin []uint64 `json:"startsWithin,omitempty"`
	// Replacements counts the slot's ready workers that exited and were
	// followed by a ready worker, ReplacementTime the seconds from each
	// exit being seen to that ready worker in all, and ReplacementsWithin,
	// for each bound of ReplacementBuckets, those that took no longer
	// (nil before the first). Rolling and health replacements, which
	// start the new worker before the old one stops, are not counted.
	Replacements       int      `json:"replacements,omitempty"`
	ReplacementTime    float64  `json:"replacementSecondsTotal,omitempty"`
	ReplacementsWithin []uint64 `json:"replacementsWithin,omitempty"`
	// CgroupOOMKills counts the processes the kernel's OOM killer killed
	// in the cgroups of the slot's workers, the current one and those
	// before it; nil without cgroups or where the kernel keeps no count.
	CgroupOOMKills *uint64 `json:"cgroupOomKills,omitempty"`
	// CPUThrottling is the current worker's cgroup CPU bandwidth figures
	// (nil without a CPU controller group) and Pressure its PSI totals
	// (nil on cgroup v1 and without PSI).
	CPUThrottling *CPUThrottling `json:"cpuThrottling,omitempty"`
	Pressure      *Pressure      `json:"pressure,omitempty"`
	// LogLinesDropped counts the slot's output lines lost because the
	// log fell behind, LogLinesTruncated those cut at the line limit.
	LogLinesDropped   uint64 `json:"logLinesDropped"`
	LogLinesTruncated uint64 `json:"logLinesTruncated"`
	// Leaving are the slot's former workers whose processes have not
	// ended yet: one a replacement (rolling restart, health) took the
	// place of, while it drains, and one that said it is exiting.
	Leaving []LeavingWorker `json:"leaving,omitempty"`
	// Replacement is the process a replacement of the current worker
	// (rolling restart, health) started beside it, while it starts
	// (state starting); nil otherwise.
	Replacement *LeavingWorker `json:"replacement,omitempty"`
}

// LeavingWorker is a process of a slot other than its current worker: a
// former one on its way out, or the replacement starting beside it.
type LeavingWorker struct {
	PID    int     `json:"pid"`
	State  string  `json:"state"` // draining or exiting
	Uptime float64 `json:"uptimeSeconds"`
	RSS    uint64  `json:"rssBytes"` // from /proc, 0 if unknown
}

// FormatBytes renders a size in binary units with one decimal: 512 B,
// 1.5 KiB, 43.1 MiB.
func FormatBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := -1
	// Step up while the rounded value would print as 1024.0 or more.
	for v >= 1024-0.05 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}

// Event is one entry of a worker slot's history.
type Event struct {
	At     time.Time `json:"at"`
	State  string    `json:"state"` // a state, or "replaced"
	PID    int       `json:"pid,omitempty"`
	Reason string    `json:"reason,omitempty"`
}
