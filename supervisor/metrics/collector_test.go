package metrics

import (
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wattd/wattd/supervisor"
)

// snapshot is a fixed runtime status, as the runtime would report it.
type snapshot struct{ apps []supervisor.AppStatus }

func (s snapshot) Status() supervisor.RuntimeStatus {
	return supervisor.RuntimeStatus{State: "running", LogLinesDropped: 7}
}
func (s snapshot) Apps() []supervisor.AppStatus { return s.apps }

func gather(t *testing.T, src Source) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(newCollector(src, prometheus.Labels{"env": "t"})); err != nil {
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
			{Index: 0, PID: pid, State: "ready", Restarts: 3, RSS: 1 << 20, ELU: 0.25, HeapUsed: 10, HeapTotal: 20, CPU: 1.5, OpenFDs: 9,
				RestartsBy: map[string]int{"oom": 2, "unhealthy": 1}, OOMKills: 2, Starts: 4, StartTime: 2.5},
			{Index: 1, State: "backoff", Restarts: 1, RestartsBy: map[string]int{"exit": 1}},
		}},
		{ID: "go", Workers: []supervisor.WorkerStatus{{Index: 0, PID: pid, State: "ready", RSS: 1 << 20, CPU: 0.5, OpenFDs: 4}}},
	}}
	fams := gather(t, src)

	if got := series(fams["wattd_log_lines_dropped_total"]); got[""] != 7 {
		t.Errorf("wattd_log_lines_dropped_total = %v, want 7", got)
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
	for _, m := range fams["wattd_worker_start_duration_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "node" && m.GetLabel()[2].GetValue() == "0" &&
			(m.GetSummary().GetSampleCount() != 4 || m.GetSummary().GetSampleSum() != 2.5) {
			t.Errorf("start duration of node/0: %v", m.GetSummary())
		}
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
	cpu := series(fams["process_cpu_seconds_total"])
	if len(cpu) != 2 || cpu["applicationId=node,workerId=0,"] != 1.5 || cpu["applicationId=go,workerId=0,"] != 0.5 {
		t.Errorf("process_cpu_seconds_total = %v, want node/0 1.5 and go/0 0.5 only", cpu)
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

// TestSpansCollector: span counters per application, only for
// applications that have them (tracing on).
func TestSpansCollector(t *testing.T) {
	src := snapshot{apps: []supervisor.AppStatus{
		{ID: "api", Spans: &supervisor.SpanCounts{Received: 12, Invalid: 3, QueueFull: 2}},
		{ID: "off"},
	}}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(newSpansCollector(src, prometheus.Labels{"env": "t"})); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]float64{}
	for _, f := range fams {
		got[f.GetName()] = series(f)
	}
	if r := got["wattd_spans_received_total"]; len(r) != 1 || r["applicationId=api,"] != 12 {
		t.Errorf("wattd_spans_received_total = %v", r)
	}
	if d := got["wattd_spans_dropped_total"]; len(d) != 2 || d["applicationId=api,reason=invalid,"] != 3 || d["applicationId=api,reason=queue_full,"] != 2 {
		t.Errorf("wattd_spans_dropped_total = %v", d)
	}
}
