package metrics

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
)

// snapshot is a fixed runtime status, as the runtime would report it.
type snapshot struct{ apps []supervisor.AppStatus }

func (s snapshot) Status() supervisor.RuntimeStatus {
	return supervisor.RuntimeStatus{State: "running", LogLinesDropped: 7, LogExport: &supervisor.LogExportStatus{Exported: 5, Dropped: 2}}
}
func (s snapshot) Apps() []supervisor.AppStatus { return s.apps }

func gather(t *testing.T, src Source) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(newCollector(src, appLabel, prometheus.Labels{"env": "t"})); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func series(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			if l.GetName() != "env" {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
		}
		out[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return out
}

func TestCollector(t *testing.T) {
	pid := os.Getpid()
	src := snapshot{apps: []supervisor.AppStatus{
		{ID: "node", Workers: []supervisor.WorkerStatus{
			{Index: 0, PID: pid, State: "ready", Started: 1.7e9 + 0.25, Restarts: 3, RSS: 1 << 20, ELU: 0.25, HeapUsed: 10, HeapTotal: 20, CPU: 1.5, OpenFDs: 9,
				CPUUser: 1.25, CPUSystem: 0.25, VirtualMemory: 1 << 30,
				Process:    &ipc.NodeProcess{Version: "v24.11.1"},
				RestartsBy: map[string]int{"oom": 2, "unhealthy": 1}, OOMKills: 2, Starts: 4, StartTime: 2.5, Replacements: 2},
			{Index: 1, State: "backoff", Restarts: 1, RestartsBy: map[string]int{"exit": 1},
				Leaving: []supervisor.LeavingWorker{{PID: pid + 2, State: "draining"}, {PID: pid + 3, State: "exiting"}}},
		}, Standby: 2, Standbys: []supervisor.StandbyStatus{{PID: pid, State: "standby"}, {PID: pid + 1, State: "starting"}}},
		{ID: "go", Workers: []supervisor.WorkerStatus{{Index: 0, PID: pid, State: "ready", RSS: 1 << 20, CPU: 0.5, OpenFDs: 4}},
			// A slot that a scale-down took away still counts in the
			// application's totals.
			Former: &supervisor.FormerCounts{RestartsBy: map[string]int{"signal": 3}, Starts: 2, StartTime: 0.5}},
	}}
	fams := gather(t, src)
	if got := series(fams["wattd_application_restarts_total"])["applicationId=go,reason=signal,"]; got != 3 {
		t.Errorf("wattd_application_restarts_total{go,signal} = %v, want 3 (the former slot's)", got)
	}
	for _, m := range fams["wattd_worker_start_duration_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "go" && (m.GetHistogram().GetSampleCount() != 2 || m.GetHistogram().GetSampleSum() != 0.5) {
			t.Errorf("wattd_worker_start_duration_seconds{go} count %d sum %v, want the former slot's 2 and 0.5", m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum())
		}
	}

	if got := series(fams["wattd_log_lines_dropped_total"]); got[""] != 7 {
		t.Errorf("wattd_log_lines_dropped_total = %v, want 7", got)
	}
	if e, d := series(fams["wattd_log_records_exported_total"]), series(fams["wattd_log_records_dropped_total"]); e[""] != 5 || d[""] != 2 {
		t.Errorf("log export: exported %v, dropped %v; want 5 and 2", e, d)
	}
	restarts := series(fams["wattd_worker_restarts_total"])
	if restarts["applicationId=node,workerId=0,"] != 3 || restarts["applicationId=node,workerId=1,"] != 1 {
		t.Errorf("restarts = %v", restarts)
	}
	byReason := series(fams["wattd_application_restarts_total"])
	if byReason["applicationId=node,reason=oom,"] != 2 || byReason["applicationId=node,reason=exit,"] != 1 ||
		byReason["applicationId=node,reason=unhealthy,"] != 1 || len(byReason) != 2*len(supervisor.RestartKinds) {
		t.Errorf("wattd_application_restarts_total = %v", byReason)
	}
	if oom := series(fams["wattd_worker_oom_kills_total"]); oom["applicationId=node,workerId=0,"] != 2 {
		t.Errorf("wattd_worker_oom_kills_total = %v", oom)
	}
	states := series(fams["wattd_workers"])
	if states["applicationId=node,state=ready,"] != 1 || states["applicationId=node,state=backoff,"] != 1 ||
		states["applicationId=go,state=ready,"] != 1 {
		t.Errorf("wattd_workers = %v", states)
	}
	// Every state is exported, zeros included, so series do not vanish.
	if v, ok := states["applicationId=go,state=failed,"]; !ok || v != 0 {
		t.Errorf("wattd_workers{go,failed} = %v (present %v), want 0", v, ok)
	}
	// Former workers not gone yet are counted beside the slots, by what
	// they do; the slot counts as its own state.
	if states["applicationId=node,state=draining,"] != 1 || states["applicationId=node,state=exiting,"] != 1 {
		t.Errorf("wattd_workers{node,draining|exiting} = %v, %v, want 1 and 1",
			states["applicationId=node,state=draining,"], states["applicationId=node,state=exiting,"])
	}
	if v, ok := states["applicationId=go,state=exiting,"]; !ok || v != 0 {
		t.Errorf("wattd_workers{go,exiting} = %v (present %v), want 0", v, ok)
	}
	// Standby workers are counted beside the slots, loading or not.
	if states["applicationId=node,state=standby,"] != 2 {
		t.Errorf("wattd_workers{node,standby} = %v, want 2", states["applicationId=node,state=standby,"])
	}
	if v, ok := states["applicationId=go,state=standby,"]; !ok || v != 0 {
		t.Errorf("wattd_workers{go,standby} = %v (present %v), want 0", v, ok)
	}
	cpu := series(fams["process_cpu_seconds_total"])
	if len(cpu) != 2 || cpu["applicationId=node,workerId=0,"] != 1.5 || cpu["applicationId=go,workerId=0,"] != 0.5 {
		t.Errorf("process_cpu_seconds_total = %v, want node/0 1.5 and go/0 0.5 only", cpu)
	}
	// prom-client's process_start_time_seconds, which Node.js dashboards
	// read for restarts and uptime: the worker process's exact start, so
	// that it changes only when the process does.
	if st := series(fams["process_start_time_seconds"]); len(st) != 1 || st["applicationId=node,workerId=0,"] != 1.7e9+0.25 {
		t.Errorf("process_start_time_seconds = %v, want node/0 = 1700000000.25 only", st)
	}
	// Watt's restart counter: replacements that became ready (2 after an
	// exit, 1 for health), not every attempt (the 3 restarts).
	if r := series(fams["platformatic_application_restarts_total"]); len(r) != 2 || r["applicationId=node,"] != 3 || r["applicationId=go,"] != 0 {
		t.Errorf("platformatic_application_restarts_total = %v, want node 3, go 0", r)
	}
	for v, ok := range map[string]bool{"v24.11.1": true, "v25.0.0-pre": true, "v24.1": false, "24.x.1": false, "": false, "v24.1.0-\xff": false} {
		if _, got := nodeVersion(v); got != ok {
			t.Errorf("nodeVersion(%q) ok = %v, want %v", v, got, ok)
		}
	}
	// prom-client's other process figures, which Node.js dashboards read.
	if u, s := series(fams["process_cpu_user_seconds_total"]), series(fams["process_cpu_system_seconds_total"]); len(u) != 1 || u["applicationId=node,workerId=0,"] != 1.25 || s["applicationId=node,workerId=0,"] != 0.25 {
		t.Errorf("process_cpu_user/system_seconds_total = %v %v, want node/0 1.25 and 0.25 only", u, s)
	}
	if v := series(fams["process_virtual_memory_bytes"]); v["applicationId=node,workerId=0,"] != 1<<30 {
		t.Errorf("process_virtual_memory_bytes = %v", v)
	}
	// Read from /proc for the pid, this process here.
	if h := series(fams["process_heap_bytes"]); len(h) != 2 || h["applicationId=go,workerId=0,"] <= 0 {
		t.Errorf("process_heap_bytes = %v, want node/0 and go/0 from /proc", h)
	}
	if m := series(fams["process_max_fds"]); len(m) != 2 || m["applicationId=node,workerId=0,"] <= 0 {
		t.Errorf("process_max_fds = %v, want node/0 and go/0 from /proc", m)
	}
	if v := series(fams["nodejs_version_info"]); len(v) != 1 || v["applicationId=node,major=24,minor=11,patch=1,version=v24.11.1,workerId=0,"] != 1 {
		t.Errorf("nodejs_version_info = %v", v)
	}
	fds := series(fams["process_open_fds"])
	if len(fds) != 2 || fds["applicationId=go,workerId=0,"] != 4 {
		t.Errorf("process_open_fds = %v, want node/0 and go/0 only", fds)
	}
	if up := series(fams["wattd_worker_up"]); up["applicationId=node,workerId=1,"] != 0 || up["applicationId=node,workerId=0,"] != 1 {
		t.Errorf("wattd_worker_up = %v", up)
	}
	// Only the worker that reported Node.js figures has Node.js series.
	for name, want := range map[string]float64{
		"nodejs_eventloop_utilization": 0.25, "nodejs_heap_size_used_bytes": 10, "nodejs_heap_size_total_bytes": 20,
	} {
		got := series(fams[name])
		if len(got) != 1 || got["applicationId=node,workerId=0,"] != want {
			t.Errorf("%s = %v, want only node/0 = %v", name, got, want)
		}
	}
}

// TestSpanCounters: span counters per application, only for
// applications that have them (tracing on).
func TestSpanCounters(t *testing.T) {
	src := snapshot{apps: []supervisor.AppStatus{
		{ID: "api", Spans: &supervisor.SpanCounts{Received: 12, Invalid: 3, QueueFull: 2, ExportFailed: 4}},
		{ID: "off"},
	}}
	got := map[string]map[string]float64{}
	for name, f := range gather(t, src) {
		got[name] = series(f)
	}
	if r := got["wattd_spans_received_total"]; len(r) != 1 || r["applicationId=api,"] != 12 {
		t.Errorf("wattd_spans_received_total = %v", r)
	}
	if d := got["wattd_spans_dropped_total"]; len(d) != 3 || d["applicationId=api,reason=invalid,"] != 3 || d["applicationId=api,reason=queue_full,"] != 2 || d["applicationId=api,reason=export_failed,"] != 4 {
		t.Errorf("wattd_spans_dropped_total = %v", d)
	}
}

func TestCollectorNodeMetrics(t *testing.T) {
	pid := os.Getpid()
	bounds := []float64{0.1, 1}
	src := snapshot{apps: []supervisor.AppStatus{{ID: "node", Workers: []supervisor.WorkerStatus{
		{Index: 0, PID: pid, State: "ready", HeapTotal: 1,
			Requests: &ipc.Histogram{Bounds: bounds, Series: []ipc.HistogramSeries{
				{Method: "GET", StatusCode: 200, Counts: []uint64{3, 2, 1}, Sum: 4.2},
				{Method: "POST", StatusCode: 500, Counts: []uint64{0, 1, 0}, Sum: 0.5},
				{Method: "GET", StatusCode: 200, Counts: []uint64{9, 9, 9}, Sum: 1}, // repeated: dropped
				{Method: "PUT", StatusCode: 201, Counts: []uint64{1}, Sum: 1},       // counts do not match the bounds
			}},
			GC:  &ipc.Histogram{Bounds: bounds, Series: []ipc.HistogramSeries{{Kind: "major", Counts: []uint64{1, 0, 0}, Sum: 0.05}}},
			Lag: &ipc.EventLoopLag{Seconds: 0.001, Min: 0.01, Max: 0.05, Mean: 0.02, Stddev: 0.005, P50: 0.02, P90: 0.03, P99: 0.04},
			Process: &ipc.NodeProcess{External: 4096, ActiveRequests: 1,
				HeapSpaces: []ipc.HeapSpace{{Space: "new", Size: 100, Used: 60, Available: 40}, {Space: "old", Size: 300, Used: 200, Available: 50},
					{Space: "old", Size: 1, Used: 1, Available: 1}}, // repeated: dropped
				Handles: map[string]int{"TCP": 2, "Timer": 1},
				// 70 handles in all, of more types than a report names.
				HandlesTotal: 70,
				Requests:     map[string]int{"FSReqCallback": 1},
				Resources:    map[string]int{"TCPWrap": 2, "Timeout": 3, "bad\xff": 1}}}, // not UTF-8: that series left out
		// Bounds out of order: nothing of it is exported.
		{Index: 1, PID: pid, State: "ready", HeapTotal: 1,
			Requests: &ipc.Histogram{Bounds: []float64{1, 0.1}, Series: []ipc.HistogramSeries{{Method: "GET", StatusCode: 200, Counts: []uint64{1, 1, 1}}}}},
		// No metrics reported (metrics off): no such series.
		{Index: 2, PID: pid, State: "ready", HeapTotal: 1},
	}}}}
	fams := gather(t, src)

	reqs := fams["http_request_all_duration_seconds"].GetMetric()
	if len(reqs) != 2 {
		t.Fatalf("http_request_all_duration_seconds: %v, want 2 series", reqs)
	}
	for _, m := range reqs {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		h := m.GetHistogram()
		var cum []uint64
		for _, b := range h.GetBucket() {
			cum = append(cum, b.GetCumulativeCount())
		}
		switch l["method"] + " " + l["status_code"] {
		case "GET 200":
			// Per-bucket counts become cumulative ones.
			if h.GetSampleCount() != 6 || h.GetSampleSum() != 4.2 || fmt.Sprint(cum) != "[3 5]" || l["workerId"] != "0" {
				t.Errorf("GET 200: %v %v", l, h)
			}
		case "POST 500":
			if h.GetSampleCount() != 1 || fmt.Sprint(cum) != "[0 1]" {
				t.Errorf("POST 500: %v", h)
			}
		default:
			t.Errorf("unexpected series %v", l)
		}
	}
	if gc := fams["nodejs_gc_duration_seconds"].GetMetric(); len(gc) != 1 || gc[0].GetHistogram().GetSampleCount() != 1 {
		t.Errorf("nodejs_gc_duration_seconds = %v", gc)
	}
	for name, want := range map[string]map[string]float64{
		"nodejs_external_memory_bytes":           {"applicationId=node,workerId=0,": 4096},
		"nodejs_heap_space_size_total_bytes":     {"applicationId=node,space=new,workerId=0,": 100, "applicationId=node,space=old,workerId=0,": 300},
		"nodejs_heap_space_size_used_bytes":      {"applicationId=node,space=new,workerId=0,": 60, "applicationId=node,space=old,workerId=0,": 200},
		"nodejs_heap_space_size_available_bytes": {"applicationId=node,space=new,workerId=0,": 40, "applicationId=node,space=old,workerId=0,": 50},
		"nodejs_active_handles":                  {"applicationId=node,type=TCP,workerId=0,": 2, "applicationId=node,type=Timer,workerId=0,": 1},
		"nodejs_active_handles_total":            {"applicationId=node,workerId=0,": 70},
		"nodejs_active_requests":                 {"applicationId=node,type=FSReqCallback,workerId=0,": 1},
		"nodejs_active_requests_total":           {"applicationId=node,workerId=0,": 1},
		"nodejs_active_resources":                {"applicationId=node,type=TCPWrap,workerId=0,": 2, "applicationId=node,type=Timeout,workerId=0,": 3},
		"nodejs_active_resources_total":          {"applicationId=node,workerId=0,": 6},
		"active_resources_event_loop":            {"applicationId=node,workerId=0,": 6},
	} {
		if got := series(fams[name]); !maps.Equal(got, want) {
			t.Errorf("%s = %v, want %v (only worker 0 reported its process)", name, got, want)
		}
	}
	for name, want := range map[string]float64{
		"nodejs_eventloop_lag_seconds": 0.001, "nodejs_eventloop_lag_min_seconds": 0.01, "nodejs_eventloop_lag_max_seconds": 0.05,
		"nodejs_eventloop_lag_mean_seconds": 0.02, "nodejs_eventloop_lag_stddev_seconds": 0.005,
		"nodejs_eventloop_lag_p50_seconds": 0.02, "nodejs_eventloop_lag_p90_seconds": 0.03, "nodejs_eventloop_lag_p99_seconds": 0.04,
	} {
		if got := series(fams[name]); len(got) != 1 || got["applicationId=node,workerId=0,"] != want {
			t.Errorf("%s = %v, want only node/0 = %v", name, got, want)
		}
	}
}

// variableLabels matches the variable labels in a descriptor's String().
var variableLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)

// TestSeriesLabelsKnownToConfig keeps config.SeriesLabels, the names a
// constant label or the application label may not take, in step with the
// labels wattd's series carry: every variable label of every descriptor
// (but the application's and the worker's) is on the list, and every name
// on it but Prometheus's own le and quantile is some descriptor's.
func TestSeriesLabelsKnownToConfig(t *testing.T) {
	c := newCollector(snapshot{}, config.DefaultAppLabel, nil)
	ch := make(chan *prometheus.Desc, 1000)
	c.Describe(ch)
	close(ch)
	used := map[string]bool{}
	n := 0
	for d := range ch {
		n++
		m := variableLabels.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the labels of %s", d)
		}
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && l != config.DefaultAppLabel && l != workerLabel {
				used[l] = true
			}
		}
	}
	known := config.SeriesLabels()
	for l := range used {
		if !slices.Contains(known, l) {
			t.Errorf("series carry the label %q, which config's seriesLabels lacks: a constant label of that name would pass the config check and break the endpoint", l)
		}
	}
	for _, l := range known {
		if !used[l] && l != "le" && l != "quantile" {
			t.Errorf("config's seriesLabels has %q, which no series carries", l)
		}
	}
	if n < 30 || !used["kind"] || !used["space"] {
		t.Errorf("read %d descriptors, labels %v: the descriptor format may have changed", n, used)
	}
}

// TestCollectorBoundsLyingWorker: a worker whose report holds far more
// series or types than the preload ever sends (a 1 MiB frame of them)
// adds a bounded number to the scrape, and the totals stay its counts.
func TestCollectorBoundsLyingWorker(t *testing.T) {
	bounds := []float64{1}
	var many []ipc.HistogramSeries
	for i := range 5000 {
		many = append(many, ipc.HistogramSeries{Method: "GET", StatusCode: 200 + i, Counts: []uint64{1, 0}, Sum: 0.1})
	}
	handles := map[string]int{}
	for i := range 1000 {
		handles[fmt.Sprintf("Type%04d", i)] = 1
	}
	src := snapshot{apps: []supervisor.AppStatus{{ID: "node", Workers: []supervisor.WorkerStatus{
		{Index: 0, PID: os.Getpid(), State: "ready", HeapTotal: 1,
			Requests:       &ipc.Histogram{Bounds: bounds, Series: many},
			ClientRequests: &ipc.Histogram{Bounds: bounds, Series: many},
			Process:        &ipc.NodeProcess{Handles: handles, HandlesTotal: 1000}}}}}}
	fams := gather(t, src)
	for _, name := range []string{"http_request_all_duration_seconds", "http_client_request_duration_seconds"} {
		if n := len(fams[name].GetMetric()); n != maxWorkerSeries {
			t.Errorf("%s: %d series from a report of 5000, want %d", name, n, maxWorkerSeries)
		}
	}
	if n := len(fams["nodejs_active_handles"].GetMetric()); n != maxTypes {
		t.Errorf("nodejs_active_handles: %d series from 1000 types, want %d", n, maxTypes)
	}
	if got := series(fams["nodejs_active_handles_total"]); got["applicationId=node,workerId=0,"] != 1000 {
		t.Errorf("nodejs_active_handles_total = %v, want 1000", got)
	}

	// Heap spaces are bounded as the types are; histograms with too many
	// bounds, repeated bounds, or counts whose total overflows are left out.
	var spaces []ipc.HeapSpace
	for i := range 5000 {
		spaces = append(spaces, ipc.HeapSpace{Space: fmt.Sprintf("s%d", i), Size: 1})
	}
	wide := make([]float64, maxWorkerBounds+1)
	for i := range wide {
		wide[i] = float64(i)
	}
	src = snapshot{apps: []supervisor.AppStatus{{ID: "node", Workers: []supervisor.WorkerStatus{
		{Index: 0, PID: os.Getpid(), State: "ready", HeapTotal: 1,
			Process:  &ipc.NodeProcess{HeapSpaces: spaces},
			Requests: &ipc.Histogram{Bounds: wide, Series: []ipc.HistogramSeries{{Method: "GET", StatusCode: 200, Counts: make([]uint64, len(wide)+1)}}},
			GC: &ipc.Histogram{Bounds: []float64{1, 2}, Series: []ipc.HistogramSeries{
				{Kind: "minor", Counts: []uint64{1<<64 - 1, 1, 0}},
			}},
			ClientRequests: &ipc.Histogram{Bounds: []float64{1, 1, 2}, Series: []ipc.HistogramSeries{{Method: "GET", Counts: []uint64{1, 1, 1, 0}}}},
		}}}}}
	fams = gather(t, src)
	if n := len(fams["nodejs_heap_space_size_total_bytes"].GetMetric()); n != maxTypes {
		t.Errorf("nodejs_heap_space_size_total_bytes: %d series from 5000 spaces, want %d", n, maxTypes)
	}
	for _, name := range []string{"http_request_all_duration_seconds", "nodejs_gc_duration_seconds", "http_client_request_duration_seconds"} {
		if got := fams[name].GetMetric(); len(got) != 0 {
			t.Errorf("%s: %v, want nothing from a histogram that is not one", name, got)
		}
	}

	// Header-label values where none are configured: that series is left
	// out, the worker's others stay.
	src = snapshot{apps: []supervisor.AppStatus{{ID: "node", Workers: []supervisor.WorkerStatus{
		{Index: 0, PID: os.Getpid(), State: "ready", HeapTotal: 1,
			Requests: &ipc.Histogram{Bounds: bounds, Series: []ipc.HistogramSeries{
				{Method: "GET", StatusCode: 200, Labels: []string{"acme"}, Counts: []uint64{1, 0}, Sum: 0.1},
				{Method: "GET", StatusCode: 404, Counts: []uint64{1, 0}, Sum: 0.1},
			}}}}}}}
	fams = gather(t, src)
	if got := fams["http_request_all_duration_seconds"].GetMetric(); len(got) != 1 || labelValue(got[0], "status_code") != "404" {
		t.Errorf("requests with stray header labels: %v, want the 404 series alone", got)
	}
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
