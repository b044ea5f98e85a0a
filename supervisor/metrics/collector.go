package metrics

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/procnet"
)

// Source is what the collector and the probes read: the runtime.
type Source interface {
	Status() supervisor.RuntimeStatus
	Apps() []supervisor.AppStatus
}

// Labels every per-worker series carries, Watt's names. appLabel is the
// application label's place in a family's label list: the collector names
// it as the configuration's applicationLabel says (withAppLabel).
const (
	appLabel    = "applicationId"
	workerLabel = "workerId"
)

// withAppLabel is labels with the application label named name.
func withAppLabel(labels []string, name string) []string {
	if name == appLabel || !slices.Contains(labels, appLabel) {
		return labels
	}
	out := slices.Clone(labels)
	out[slices.Index(out, appLabel)] = name
	return out
}

// collector turns one status snapshot into series at each scrape.
type collector struct {
	src Source

	workers, restarts, dropped                    *prometheus.Desc
	logExported, logExportDropped                 *prometheus.Desc
	appRestarts, oomKills, wattRestarts           *prometheus.Desc
	cpu, rss, fds, memory, memoryLimit, up        *prometheus.Desc
	startTime, cpuUser, cpuSystem                 *prometheus.Desc
	vsize, heapBytes, maxFDs, nodeVersion         *prometheus.Desc
	elu, heapUsed, heapTotal, activeConns, uptime *prometheus.Desc

	own       ownFamilies     // cgroup.go
	spans     spanFamilies    // spans.go
	sched     schedFamilies   // scheduler.go
	process   processFamilies // nodeprocess.go
	threadCPU *cpuFamilies    // threadcpu.go

	// What Node workers report with metrics on.
	requests, clientRequests, gc *prometheus.Desc
	requestsSummary              *prometheus.Desc // summary.go
	nRequestLabels               int              // labels of requests past status_code
	lag                          []lagGauge

	// appTexts are the app registries' texts the last Collect saw, for
	// the gatherer that merges them (appmetrics.go).
	appTexts atomic.Pointer[[]workerText]
	// names are those of every family the collector exports, whether or
	// not a scrape has series of it: app metrics may not take them.
	names []string
}

// lagGauge is one of prom-client's event-loop lag gauges and where its
// value is in a report.
type lagGauge struct {
	desc  *prometheus.Desc
	value func(*ipc.EventLoopLag) float64
}

// newCollector makes the collector of src's series, with the application
// label named appLabelName and constLabels on every series; requestLabels
// are the names of the labels the request durations take from headers
// (httpCustomLabels), in order.
func newCollector(src Source, appLabelName string, constLabels prometheus.Labels, requestLabels ...string) *collector {
	w := []string{appLabel, workerLabel}
	var names []string
	d := func(name, help string, labels []string) *prometheus.Desc {
		names = append(names, name)
		return prometheus.NewDesc(name, help, withAppLabel(labels, appLabelName), constLabels)
	}
	c := &collector{
		src:            src,
		nRequestLabels: len(requestLabels),
		own:            newOwnFamilies(d),
		spans:          newSpanFamilies(d),
		sched:          newSchedFamilies(d),
		process:        newProcessFamilies(d),
		threadCPU:      newCPUFamilies(d),
		workers:        d("wattd_workers", "Worker slots by state; state \"standby\" counts the standby workers, \"draining\" and \"exiting\" also the former workers whose replacement took their slot and whose processes have not ended yet.", []string{appLabel, "state"}),
		restarts:       d("wattd_worker_restarts_total", "Times the worker slot's process was replaced after it exited or was judged unhealthy.", w),
		appRestarts: d("wattd_application_restarts_total", "Worker restarts of the application by kind of reason: exit, signal, oom, memory, start_timeout, control_channel, unhealthy, rolling_restart, other.",
			[]string{appLabel, "reason"}),
		wattRestarts: d("platformatic_application_restarts_total", "Workers of the application replaced by a worker that became ready: after an exit, for health, or in a rolling restart (Watt's counter, counted per worker).",
			[]string{appLabel}),
		oomKills:    d("wattd_worker_oom_kills_total", "Workers of the slot ended for their memory limit, by the kernel's OOM killer in their cgroup or by wattd where there is no cgroup.", w),
		dropped:     d("wattd_log_lines_dropped_total", "Log entries wattd could not write: its output was closed, or not read while 4 MiB of entries waited for it.", nil),
		logExported: d("wattd_log_records_exported_total", "Log entries sent to the OTLP logs endpoint (logger.openTelemetryExporter).", nil),
		logExportDropped: d("wattd_log_records_dropped_total",
			"Log entries not sent to the OTLP logs endpoint: its queue was full, or their batch failed.", nil),
		up:     d("wattd_worker_up", "1 when the worker slot has a process, 0 otherwise.", w),
		uptime: d("wattd_worker_uptime_seconds", "Seconds since the worker's current process started.", w),

		cpu:         d("process_cpu_seconds_total", "User and system CPU time the worker's process spent, in seconds.", w),
		rss:         d("process_resident_memory_bytes", "Resident memory of the worker's process, in bytes.", w),
		fds:         d("process_open_fds", "Open file descriptors of the worker's process.", w),
		startTime:   d("process_start_time_seconds", "Start time of the worker's process since unix epoch in seconds.", w),
		cpuUser:     d("process_cpu_user_seconds_total", "User CPU time the worker's process spent, in seconds.", w),
		cpuSystem:   d("process_cpu_system_seconds_total", "System CPU time the worker's process spent, in seconds.", w),
		vsize:       d("process_virtual_memory_bytes", "Virtual memory size of the worker's process, in bytes.", w),
		heapBytes:   d("process_heap_bytes", "Data segment size of the worker's process (VmData), in bytes.", w),
		maxFDs:      d("process_max_fds", "Open file descriptors the worker's process may have (its soft limit).", w),
		nodeVersion: d("nodejs_version_info", "Node.js version of the worker, as last reported.", []string{appLabel, workerLabel, "version", "major", "minor", "patch"}),
		memory:      d("wattd_worker_memory_bytes", "Memory the worker's cgroup uses (all its processes, page cache included), or its process tree's RSS without cgroups.", w),
		memoryLimit: d("wattd_worker_memory_limit_bytes", "Memory limit the worker is held to; absent when it has none.", w),

		elu:         d("nodejs_eventloop_utilization", "The event loop utilization as a fraction of the loop time, as the worker last reported it. 1 is fully utilized, 0 is fully idle.", w),
		heapUsed:    d("nodejs_heap_size_used_bytes", "V8 heap used by the worker, in bytes, as last reported.", w),
		heapTotal:   d("nodejs_heap_size_total_bytes", "V8 heap allocated by the worker, in bytes, as last reported.", w),
		activeConns: d("wattd_worker_active_connections", "Client connections open on the worker, as last reported.", w),

		requests: d("http_request_all_duration_seconds", "Duration of the HTTP requests the worker's app served since the worker started, in seconds, by method and status code (HEAD, OPTIONS, TRACE and CONNECT left out, as Watt does).",
			append([]string{appLabel, workerLabel, "method", "status_code"}, requestLabels...)),
		requestsSummary: d("http_request_all_summary_seconds", "Quantiles of the duration of the HTTP requests the worker's app served in about the last minute (50 to 60 s, within 2.2%), in seconds, by method and status code; count and sum since the worker started.",
			append([]string{appLabel, workerLabel, "method", "status_code"}, requestLabels...)),
		clientRequests: d("http_client_request_duration_seconds", "Duration of the worker's outgoing HTTP requests made with fetch or undici since the worker started, in seconds, by method, status code (empty without a response), origin and error (empty without one).",
			[]string{appLabel, workerLabel, "method", "status_code", "dispatcher_stats_url", "error_type"}),
		gc: d("nodejs_gc_duration_seconds", "Garbage collection duration by kind, one of major, minor, incremental or weakcb, since the worker started.",
			[]string{appLabel, workerLabel, "kind"}),
		lag: []lagGauge{
			{d("nodejs_eventloop_lag_seconds", "Lag of event loop in seconds: how late one callback ran, measured at the worker's last stats report.", w),
				func(l *ipc.EventLoopLag) float64 { return l.Seconds }},
			{d("nodejs_eventloop_lag_min_seconds", "The minimum recorded event loop delay over the worker's last stats period.", w),
				func(l *ipc.EventLoopLag) float64 { return l.Min }},
			{d("nodejs_eventloop_lag_max_seconds", "The maximum recorded event loop delay over the worker's last stats period.", w),
				func(l *ipc.EventLoopLag) float64 { return l.Max }},
			{d("nodejs_eventloop_lag_mean_seconds", "The mean of the recorded event loop delays over the worker's last stats period.", w),
				func(l *ipc.EventLoopLag) float64 { return l.Mean }},
			{d("nodejs_eventloop_lag_stddev_seconds", "The standard deviation of the recorded event loop delays over the worker's last stats period.", w),
				func(l *ipc.EventLoopLag) float64 { return l.Stddev }},
			{d("nodejs_eventloop_lag_p50_seconds", "The 50th percentile of the recorded event loop delays over the worker's last stats period.", w),
				func(l *ipc.EventLoopLag) float64 { return l.P50 }},
			{d("nodejs_eventloop_lag_p90_seconds", "The 90th percentile of the recorded event loop delays over the worker's last stats period.", w),
				func(l *ipc.EventLoopLag) float64 { return l.P90 }},
			{d("nodejs_eventloop_lag_p99_seconds", "The 99th percentile of the recorded event loop delays over the worker's last stats period.", w),
				func(l *ipc.EventLoopLag) float64 { return l.P99 }},
		},
	}
	c.names = names
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.workers, c.restarts, c.dropped, c.logExported, c.logExportDropped, c.appRestarts, c.oomKills, c.wattRestarts, c.up, c.uptime, c.cpu, c.rss, c.fds, c.startTime,
		c.cpuUser, c.cpuSystem, c.vsize, c.heapBytes, c.maxFDs, c.nodeVersion,
		c.memory, c.memoryLimit, c.elu, c.heapUsed, c.heapTotal, c.activeConns, c.requests, c.requestsSummary, c.clientRequests, c.gc,
	} {
		ch <- d
	}
	c.own.describe(ch)
	c.spans.describe(ch)
	c.sched.describe(ch)
	c.process.describe(ch)
	c.threadCPU.describe(ch)
	for _, g := range c.lag {
		ch <- g.desc
	}
}

// doneRestarts is what Watt's restart counter counts of a slot: its
// replacements that became ready (after an exit, for health, in a rolling
// restart), not each attempt of a crash loop.
func doneRestarts(replacements int, by map[string]int) int {
	return replacements + by["unhealthy"] + by["rolling_restart"]
}

// nodeVersion splits a Node.js version ("v24.1.0") into the labels of
// nodejs_version_info: version, major, minor, patch, as prom-client sets
// them; ok is false for anything else (a worker that lies).
func nodeVersion(v string) ([]string, bool) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(v) > 64 || len(parts) != 3 || !utf8.ValidString(v) {
		return nil, false
	}
	patch, _, _ := strings.Cut(parts[2], "-") // a pre-release suffix
	for _, p := range []string{parts[0], parts[1], patch} {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			return nil, false
		}
	}
	return []string{v, parts[0], parts[1], patch}, true
}

// workerStates are the states wattd_workers always exports, 0 included,
// so a dashboard's series do not come and go.
var workerStates = func() []string {
	var s []string
	for _, st := range supervisor.States() {
		s = append(s, st.String())
	}
	return append(s, "waiting", "standby", "exiting")
}()

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	st := c.src.Status()
	counter(c.dropped, float64(st.LogLinesDropped))
	if e := st.LogExport; e != nil {
		counter(c.logExported, float64(e.Exported))
		counter(c.logExportDropped, float64(e.Dropped))
	}
	if s, ok := c.src.(SchedulerSource); ok {
		c.sched.collect(ch, s.SchedulerJobs())
	}
	var texts []workerText
	defer func() { c.appTexts.Store(&texts) }()
	host, hostOK := c.threadCPU.hostPercent()
	for _, a := range c.src.Apps() {
		byReason := map[string]int{}
		for _, k := range supervisor.RestartKinds {
			byReason[k] = 0
		}
		byState := map[string]int{}
		for _, s := range workerStates {
			byState[s] = 0
		}
		byState["standby"] = len(a.Standbys)
		replaced := 0 // doneRestarts
		for _, w := range a.Workers {
			replaced += doneRestarts(w.Replacements, w.RestartsBy)
			byState[w.State]++
			// A former worker still on its way out (drained behind its
			// replacement, or exiting on its own) is a process the
			// operator sees in ctl ps; the slot itself counts as its new
			// worker's state.
			for _, l := range w.Leaving {
				byState[l.State]++
			}
			id := strconv.Itoa(w.Index)
			counter(c.restarts, float64(w.Restarts), a.ID, id)
			counter(c.oomKills, float64(w.OOMKills), a.ID, id)
			c.own.collectWorker(ch, a.ID, w)
			for k, n := range w.RestartsBy {
				byReason[k] += n
			}
			if w.PID == 0 {
				gauge(c.up, 0, a.ID, id)
				continue
			}
			gauge(c.up, 1, a.ID, id)
			gauge(c.uptime, w.Uptime, a.ID, id)
			if w.Started > 0 {
				gauge(c.startTime, w.Started, a.ID, id)
			}
			counter(c.cpu, w.CPU, a.ID, id)
			if w.RSS > 0 {
				gauge(c.rss, float64(w.RSS), a.ID, id)
			}
			// Read from /proc/<pid>/stat with them: none when it was not.
			if w.VirtualMemory > 0 {
				counter(c.cpuUser, w.CPUUser, a.ID, id)
				counter(c.cpuSystem, w.CPUSystem, a.ID, id)
				gauge(c.vsize, float64(w.VirtualMemory), a.ID, id)
			}
			if n, ok := procnet.ReadVmData(w.PID); ok {
				gauge(c.heapBytes, float64(n), a.ID, id)
			}
			if n, ok := procnet.MaxOpenFiles(w.PID); ok {
				gauge(c.maxFDs, float64(n), a.ID, id)
			}
			if p := w.Process; p != nil {
				if v, ok := nodeVersion(p.Version); ok {
					gauge(c.nodeVersion, 1, append([]string{a.ID, id}, v...)...)
				}
			}
			if w.OpenFDs > 0 {
				gauge(c.fds, float64(w.OpenFDs), a.ID, id)
			}
			if w.Memory > 0 {
				gauge(c.memory, float64(w.Memory), a.ID, id)
			}
			if w.MemoryLimit > 0 {
				gauge(c.memoryLimit, float64(w.MemoryLimit), a.ID, id)
			}
			// Only Node workers report heap figures; a worker that never
			// reported (a Go or other app) gets no Node.js series rather
			// than zeros that would read as measurements.
			if w.HeapTotal > 0 {
				gauge(c.elu, w.ELU, a.ID, id)
				gauge(c.heapUsed, float64(w.HeapUsed), a.ID, id)
				gauge(c.heapTotal, float64(w.HeapTotal), a.ID, id)
				c.threadCPU.collectWorker(ch, a.ID, id, w.PID, w.Uptime, host, hostOK)
			}
			gauge(c.activeConns, float64(w.ActiveConns), a.ID, id)
			if l := w.Lag; l != nil {
				for _, g := range c.lag {
					gauge(g.desc, g.value(l), a.ID, id)
				}
			}
			requestLabels := func(s ipc.HistogramSeries) []string {
				if len(s.Labels) != c.nRequestLabels {
					return nil // a worker that reports other labels than configured
				}
				return append([]string{a.ID, id, s.Method, strconv.Itoa(s.StatusCode)}, s.Labels...)
			}
			histograms(ch, c.requests, w.Requests, requestLabels)
			summaries(ch, c.requestsSummary, w.Requests, requestLabels)
			histograms(ch, c.clientRequests, w.ClientRequests, func(s ipc.HistogramSeries) []string {
				status := ""
				if s.StatusCode > 0 {
					status = strconv.Itoa(s.StatusCode)
				}
				return []string{a.ID, id, s.Method, status, s.Origin, s.Error}
			})
			histograms(ch, c.gc, w.GC, func(s ipc.HistogramSeries) []string { return []string{a.ID, id, s.Kind} })
			c.process.collectWorker(ch, a.ID, id, w.Process)
			if w.AppMetrics != "" {
				texts = append(texts, workerText{app: a.ID, worker: w.Index, text: w.AppMetrics})
			}
		}
		if f := a.Former; f != nil {
			for k, n := range f.RestartsBy {
				byReason[k] += n
			}
			replaced += doneRestarts(f.Replacements, f.RestartsBy)
		}
		counter(c.wattRestarts, float64(replaced), a.ID)
		c.own.collectApp(ch, a)
		c.spans.collectApp(ch, a)
		for _, k := range slices.Sorted(maps.Keys(byReason)) {
			counter(c.appRestarts, float64(byReason[k]), a.ID, k)
		}
		states := make([]string, 0, len(byState))
		for s := range byState {
			states = append(states, s)
		}
		slices.Sort(states)
		for _, s := range states {
			gauge(c.workers, float64(byState[s]), a.ID, s)
		}
	}
}

// maxWorkerSeries bounds the series of one histogram a worker's report
// may add to a scrape. The Node preload keeps far fewer (500 labelled
// ones and their overflow at most); a worker that sends more is not
// following the protocol, and its report, up to a 1 MiB frame of tiny
// series, must not make every scrape tens of megabytes.
const maxWorkerSeries = 1024

// maxWorkerBounds bounds the buckets of a histogram a worker reports: the
// preload's have 11 (requests) and 6 (GC); a report with thousands would
// make each of its series thousands of lines.
const maxWorkerBounds = 64

// validBounds reports whether bounds can be a histogram's: at most
// maxWorkerBounds, each greater than the one before (a repeated bound
// would merge two buckets into one).
func validBounds(bounds []float64) bool {
	if len(bounds) > maxWorkerBounds {
		return false
	}
	for i := 1; i < len(bounds); i++ {
		if !(bounds[i] > bounds[i-1]) {
			return false
		}
	}
	return true
}

// eachSeries calls fn with each series of h and the labels labels gives
// it, up to maxWorkerSeries, once per label set. A series that is not a
// histogram's (bounds out of order or too many, counts that do not match
// them or whose total does not fit 64 bits, labels refused) is left out:
// the worker's report must not break the scrape.
func eachSeries(h *ipc.Histogram, labels func(ipc.HistogramSeries) []string, fn func(s ipc.HistogramSeries, lv []string)) {
	if h == nil || !validBounds(h.Bounds) {
		return
	}
	seen := map[string]bool{}
	for i, s := range h.Series {
		if i == maxWorkerSeries {
			break
		}
		lv := labels(s)
		key := strings.Join(lv, "\xff")
		if lv == nil || len(s.Counts) != len(h.Bounds)+1 || seen[key] || !countsFit(s.Counts) {
			continue
		}
		seen[key] = true
		fn(s, lv)
	}
}

// countsFit reports whether the running total of counts fits a uint64.
func countsFit(counts []uint64) bool {
	var n uint64
	for _, c := range counts {
		if n+c < n {
			return false
		}
		n += c
	}
	return true
}

// histograms sends one series of d per series of h (see eachSeries); a
// label that is not UTF-8 makes the client library refuse that series.
func histograms(ch chan<- prometheus.Metric, d *prometheus.Desc, h *ipc.Histogram, labels func(ipc.HistogramSeries) []string) {
	eachSeries(h, labels, func(s ipc.HistogramSeries, lv []string) {
		buckets := make(map[float64]uint64, len(h.Bounds))
		var n uint64
		for i, b := range h.Bounds {
			n += s.Counts[i]
			buckets[b] = n
		}
		n += s.Counts[len(h.Bounds)]
		if m, err := prometheus.NewConstHistogram(d, n, s.Sum, buckets, lv...); err == nil {
			ch <- m
		}
	})
}
